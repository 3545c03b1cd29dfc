"""Pass 2's per-visit registration and the gate that cannot be fooled.

Why: pass 1 gives each position one median offset, but a mark is re-placed at every visit and a
1 px error leaves the mark's outline twice (17.8 instead of 33.8 dB on generated crops) while the
residual test still passed the frame. So each visit of a mark is registered on its first frame
(``refine.refine_offset``), and every inverted frame is checked for what a viewer would see: the
mark's pattern or its derivative left in the result (``refine.ghost_score``). A frame that keeps
the mark's own pattern gets the opacity that pattern implies; one that still fails is registered
on its own; if it still fails it goes to the inpainter (whole box), reported. The mark's moving
parts (the pupils) are inpainted only where they are dark in the frame (``for_frame``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from orchestrator.pipeline.matte.estimate import MatteEstimate
from orchestrator.pipeline.matte.image import box_mean, fill_rgb
from orchestrator.pipeline.matte.invert import fit_opacity, remove_with_matte
from orchestrator.pipeline.matte.coverage import dilate
from orchestrator.pipeline.matte.refine import LUMA, ghost_parts, high_pass, moving_dark, refine_offset
from orchestrator.pipeline.matte.register import shift_map

LOGGER = logging.getLogger(__name__)

# Share of the mark's pattern (or of its derivative: a misregistration) a frame may keep: a
# correctly registered inversion scores 0.05-0.15 on textured crops, 1 px off about 0.5. The
# floor is the matte's and the fill's error, not the frame's noise: with noise 1.5-8 grey levels
# and opacity 0.3-0.6 correct frames scored at most 0.13, the noise alone (the score's chance
# level) 0.015-0.025, 1 px off 0.47-0.48 (tests/unit/pipeline/matte, bench/README.md).
GHOST_MAX = 0.15
# A frame whose fitted opacity is below this share of the mark's shows no mark at this place (it
# left before the timeline says: a departure not seen, or a visit's box kept by the detector). It
# is left untouched: inpainting it would blur an unmarked background (other_shape 9003, fresh).
ABSENT_OPACITY = 0.25
# Corrections of a frame's opacity from the pattern it leaves (each removes about 2/3 of the error:
# the blend towards the fill hides part of the pattern).
OPACITY_STEPS = 2
# Judge a rejected frame again on its propagated result (``rejected``/``passes``); False: its box
# is inpainted, as before.
RECHECK_PROPAGATED = True
# ... when it also carries no more than this times the background's fine texture around it (3x3
# high-pass energy): a sanity cap on added noise, not a quality predictor. Measured on the
# propagated candidates (tuning): pillarbox 1 first position (a wrong matte, 25-28 dB against 32
# box-inpainted) 0.65-1.14 and 2.0-7.0; username 1 (31-40 dB against 25-29) 0.44-3.3.
TEXTURE_RATIO_MAX = 3.0
RING_PX = (3, 8)  # the ring the background's texture is measured on: px from the mark's support


@dataclass
class VisitTracker:
    """Offsets of the marks' current visits; ``start_frame`` with each frame's mark keys, then
    ``remove`` per mark. ``counts``: visits registered, frames re-registered, frames rejected.
    ``chroma_subsampled``: as ``remove_with_matte`` (False for 4:4:4 / RGB crops)."""

    offsets: dict = field(default_factory=dict)
    counts: dict = field(default_factory=lambda: {"visits": 0, "reopacified": 0, "reregistered": 0,
                                                  "rejected": 0, "absent": 0})
    _live: set = field(default_factory=set)
    chroma_subsampled: bool = True
    _rejected: dict = field(default_factory=dict)  # key -> the last rejected frame's inversion

    def start_frame(self, keys) -> None:
        """A mark absent from the previous frame starts a new visit: it is registered again."""
        keys = set(keys)
        for key in self._live - keys:
            self.offsets.pop(key, None)
        self._live = keys
        self._rejected.clear()

    def absent(self, key, crop: np.ndarray, estimate: MatteEstimate, planned: np.ndarray) -> bool:
        """Whether the frame shows no mark ``key`` at its visit's offset (then leave it untouched):
        the mark's pattern is not in the frame (the residual is then the background's own misfit)."""
        offset = self.offsets.get(key, planned)
        try:
            opacity, _ = fit_opacity(crop, estimate, offset=offset)
        except ValueError:
            return False
        if opacity >= ABSENT_OPACITY:
            return False
        self.counts["absent"] += 1
        return True

    def remove(self, key, crop: np.ndarray, estimate: MatteEstimate,
               planned: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(restored, hole) for the mark ``key`` in ``crop``, or None: inpaint its box."""
        offset = self.offsets.get(key)
        if offset is None:
            offset = _register(crop, estimate, planned)
            self.offsets[key] = offset
            self.counts["visits"] += 1
        result = self._invert(crop, estimate, offset)
        if result is not None and result.score <= GHOST_MAX:
            return result.restored, result.hole
        for _ in range(OPACITY_STEPS if result is not None else 0):  # the mark's own pattern left
            again = self._invert(crop, estimate, offset, result.opacity_fixed)  # (or over-removed)
            if again is None or again.score >= result.score:
                break
            result = again
            if result.score <= GHOST_MAX:
                self.counts["reopacified"] += 1
                return result.restored, result.hole
        own = _register(crop, estimate, offset)  # the mark moved within the visit, or a bad start
        again = self._invert(crop, estimate, own)
        self.counts["reregistered"] += 1
        if again is not None and (result is None or again.score < result.score):
            self.offsets[key] = own
            result = again
        if result is None or result.score > GHOST_MAX:
            self.counts["rejected"] += 1
            LOGGER.debug("matte gate: %s keeps %.2f of the mark: box inpainted", key,
                         float("inf") if result is None else result.score)
            if RECHECK_PROPAGATED:  # kept (a forced inversion if none fitted) to judge after propagation
                self._rejected[key] = result if result is not None else \
                    self._invert(crop, estimate, self.offsets[key], forced=True)
            return None
        return result.restored, result.hole

    def rejected(self, key) -> tuple[np.ndarray, np.ndarray] | None:
        """The inversion this frame's gate rejected for ``key`` (restored, hole), to be judged again
        after temporal propagation (``passes``); None when ``remove`` did not reject it."""
        result = self._rejected.get(key)
        return None if result is None else (result.restored, result.hole)

    def passes(self, key, crop: np.ndarray, estimate: MatteEstimate, restored: np.ndarray,
               hole: np.ndarray) -> bool:
        """Whether ``restored`` (the rejected inversion after propagation) shows no ghost; counted.

        Why: one frame's inversion keeps 0.3-1.3 of the pattern on a textured ceiling (the pooled
        matte's fine-scale error times 1/(1 - a)), which the neighbours' looks average away: the
        gate is applied to what is shown (tuning textured 1: 118 of 118 frames rejected, +3.5 dB
        with them inverted and propagated; bench/README.md, "Textured backgrounds")."""
        result = self._rejected.pop(key, None)
        if result is None:
            return False
        frame = for_frame(crop, estimate, self.offsets[key], result.opacity)
        score, _ = _score(crop, frame, result.opacity, restored, hole)
        if score > GHOST_MAX or _added_texture(crop, restored, frame.support & ~hole, frame.support) > TEXTURE_RATIO_MAX:
            return False
        self.counts["rejected"] -= 1
        self.counts["propagated"] = self.counts.get("propagated", 0) + 1
        return True

    def _invert(self, crop: np.ndarray, estimate: MatteEstimate, offset: np.ndarray,
                opacity: float | None = None, forced: bool = False) -> "_Inverted | None":
        """The inversion at ``offset`` (opacity fitted unless given), or None when the fixed matte
        does not fit the frame (unless ``forced``)."""
        fitted, residual = fit_opacity(crop, estimate, offset=offset)
        if residual > estimate.max_residual and not forced:
            return None
        opacity = fitted if opacity is None else opacity
        frame = for_frame(crop, estimate, offset, opacity)
        restored, hole = remove_with_matte(crop, frame, opacity, chroma_subsampled=self.chroma_subsampled)
        score, own = _score(crop, frame, opacity, restored, hole)
        # restored - B = (o_true / o - 1) * pattern / (1 - a): the pattern's share over the gain
        a = frame.alpha * opacity
        aa = np.where(frame.support & ~hole, a, 0.0) ** 2
        gain = float((aa / np.maximum(1.0 - a, 0.02)).sum() / max(float(aa.sum()), 1e-9))
        return _Inverted(restored, hole, score, opacity * max(0.0, 1.0 + own / max(gain, 1.0)), opacity)


@dataclass(frozen=True)
class _Inverted:
    """One inversion of a crop: the result, its ghost score, and the opacity its pattern implies."""

    restored: np.ndarray
    hole: np.ndarray
    score: float
    opacity_fixed: float
    opacity: float


def _score(crop: np.ndarray, frame: MatteEstimate, opacity: float, restored: np.ndarray,
           hole: np.ndarray) -> tuple[float, float]:
    """``ghost_parts`` of a result for the matte ``frame`` (already moved into the crop)."""
    filled = fill_rgb(crop.astype(np.float32), ~frame.support)
    return ghost_parts(restored, filled, frame.alpha * opacity, frame.color_at(None), frame.support & ~hole)


def _added_texture(crop: np.ndarray, restored: np.ndarray, inside: np.ndarray, support: np.ndarray) -> float:
    """High-pass energy of ``restored`` over ``inside`` relative to the crop's on a ring around
    ``support`` (+1 grey level^2 each); 0 when the ring is too small to say."""
    ring = dilate(support, RING_PX[1]) & ~dilate(support, RING_PX[0])
    if ring.sum() < 16 or not inside.any():
        return 0.0
    e_in = float((high_pass(np.asarray(restored, np.float32) @ LUMA)[inside] ** 2).mean())
    e_ring = float((high_pass(np.asarray(crop, np.float32) @ LUMA)[ring] ** 2).mean())
    return (e_in + 1.0) / (e_ring + 1.0)


def _register(crop: np.ndarray, estimate: MatteEstimate, offset: np.ndarray) -> np.ndarray:
    opacity, _ = fit_opacity(crop, estimate, offset=offset)
    color = estimate.color if estimate.color_map is None else estimate.color_map
    return refine_offset(crop, estimate.alpha, color, offset, max(opacity, 0.3), shift_map)


def for_frame(crop: np.ndarray, estimate: MatteEstimate, offset, opacity: float) -> MatteEstimate:
    """The estimate moved into this crop (offset 0), its moving parts narrowed to where they are
    dark in this frame (``refine.moving_dark``); the rest of their zone is inverted as white."""
    def moved(m):
        return None if m is None else shift_map(m, offset)

    support = estimate.support if estimate.support is not None else estimate.alpha > 0.02
    frame = replace(estimate, alpha=moved(estimate.alpha), alpha_se=moved(estimate.alpha_se),
                    support=moved(support.astype(np.float32)) > 0.5, color_map=moved(estimate.color_map),
                    unstable=None if estimate.unstable is None else moved(estimate.unstable.astype(np.float32)) > 0.3)
    if frame.unstable is None:
        return frame
    zone = frame.unstable
    white = frame.alpha
    if frame.color_map is not None:  # the white share of each pixel's coverage
        white = frame.alpha * (frame.color_map.mean(-1) / max(float(frame.color.mean()), 1e-3))
    a = np.clip(white * opacity, 0.0, 0.98)[..., None]
    restored = (crop.astype(np.float32) - a * frame.color) / (1.0 - a)
    dark = moving_dark(restored @ LUMA, zone, frame.support, box_mean)
    cmap = None if frame.color_map is None else np.where(zone[..., None], frame.color, frame.color_map)
    return replace(frame, alpha=np.where(zone, white, frame.alpha).astype(np.float32),
                   color_map=None if cmap is None else cmap.astype(np.float32), unstable=dark)

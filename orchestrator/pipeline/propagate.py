"""Temporal propagation: the background under a fixed mark, seen in the neighbouring frames.

Why: at the real mark's alpha of about 0.8 one frame's inversion multiplies x264's coding noise by
~5 (bench/README.md, "No ghosts"), so a single frame must lean on a smooth fill and loses texture.
But the camera moves while the mark stays: each background pixel under the mark in frame t is
seen in frames t±k through other parts of the matte, or through none. Warping those looks onto
frame t (one translation per frame pair, fitted on a ring around the mark) and averaging them by
their predicted error gives the texture with a fraction of the noise - flow-guided propagation as
in ProPainter/E2FGVI, simplified to what a fixed overlay allows. A static camera, or a ring that
no translation explains, gives no independent looks: the frame keeps its own result.

Use (pass 2): ``observe`` every decoded frame's marks ``radius`` frames before the frame is
removed, then ``fuse`` the frame's own result (or ``fill`` the box of a frame the matte gate
rejected, from what the neighbours saw unmarked); ``forget`` what falls out of the window.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from orchestrator.pipeline import matte
from orchestrator.pipeline.matte.image import dilate_mask, fill
from orchestrator.pipeline.matte.invert import invert_look, prior_blend
from orchestrator.pipeline.matte.params import PARAMS
from orchestrator.pipeline.matte.refine import texture_prior
from orchestrator.pipeline.propagate_fit import Look, combine as _combine, deblur as _deblur, inverse as _inverse, \
    ring_of as _ring, support_of as _support, translation as _translation, warp as _warp

LOGGER = logging.getLogger(__name__)

@dataclass(frozen=True)
class PropagateParams:
    """Constants of the propagation (tuned on bench/ghosts.py tuning seeds, see bench/README.md)."""

    radius: int = 24  # frames each side that may lend their look (pass 2 runs this far behind decode)
    dense: int = 8  # every frame within this many lends its look; beyond, every ``stride``-th
    stride: int = 2
    margin: int = 16  # px around the matte window: the ring the motion is fitted on, and the reach
    refine_iterations: int = 2  # Gauss-Newton steps refining each pair from the chained consecutive fits
    min_shift: float = 1.0  # px: a look moved less than this sees the same matte pixels (correlated)
    max_ring_rms: float = 3.0  # ring misfit (x the best look's) beyond which a look is not used
    ring_gap: int = 4  # px between the mark's support and the ring (a few px of mark blur/offset)
    reject: float = 3.0  # standard deviations a look may stray from the consensus per pixel
    min_looks: int = 2  # independent looks (besides the frame's own) needed to fuse at all
    min_texture: float = 20.0  # grey levels^2: ring texture below which the fill is as good (own result kept)
    var_floor: float = 1.0  # the fused value is never trusted beyond this many times one clean pixel's noise
    blend: bool = True  # pull the fused value towards a smooth fill by predicted error (invert.prior_blend)
    opacity_snap: float = 0.1  # a visit's median fitted opacity this close to 1 is taken as 1
    opacity_spread: float = 0.15  # a look whose own fit strays further is in a fade: not used
    calibrate_on_mark: bool = True  # scale the predicted variances to the looks' spread on the mark only
    # grey levels^2: below this ring texture the fused variance is scaled up by smooth_texture / tau^2.
    # Why: on smooth backgrounds x264 repeats its error under a static mark from frame to frame (skip
    # blocks), so the looks' errors are correlated and their spread understates the fused error
    # (bright 2, a wall: the fused value lost 2.6 dB to the frame's own; needed 10-30x the variance)
    smooth_texture: float = 80.0
    deblur_sigma: float = 0.7  # px: the blur the fused looks' deblurring undoes
    deblur_limit: float = 0.6  # the most it may add of the fused value's high-pass (0: off)
    zoom: bool = True  # fit the camera's zoom with its translation (propagate_fit.translation)
    # fill the boxes the matte gate rejects (``fill``): off until its losses are understood
    # (bench/README.md, round 2: +1.4 / +2.9 dB on some clips, -2.0 / -0.8 on others)
    fill_rejected: bool = False
    max_spread: float = 2.0  # a rejected frame's pixel is filled only where the looks agree this well


@dataclass(frozen=True, eq=False)
class Fused:
    """A mark's window after propagation: the restored pixels, the hole left for the inpainter,
    and how many independent looks went in."""

    rgb: np.ndarray  # uint8 [h, w, 3]
    hole: np.ndarray  # bool [h, w]
    looks: int


@dataclass
class _Track:
    """The looks of one mark in the window, and the chained camera position of each (px)."""

    looks: dict = field(default_factory=dict)  # index -> Look
    position: dict = field(default_factory=dict)  # index -> np.ndarray [2] (dx, dy) of the camera
    opacity: dict = field(default_factory=dict)  # (index, offset key) -> fitted opacity | None
    inverted: dict = field(default_factory=dict)  # (index, offset, opacity) -> (value, gain2, matte_var)
    gate: dict = field(default_factory=dict)  # index -> whether the matte gate passed the frame
    pairs: dict = field(default_factory=dict)  # (index, neighbour, offset) -> (shift, ring rms) | None
    deblur: float | None = None  # the last fused frame's deblurring strength (propagate_fit.deblur)


@dataclass
class Propagator:
    """The ring buffer of looks per mark (bounded: ``2 * radius + 1`` looks of the grown window each)."""

    params: PropagateParams = field(default_factory=PropagateParams)
    counts: dict = field(default_factory=lambda: {"fused": 0, "static": 0, "flat": 0, "ms": 0.0})
    _tracks: dict = field(default_factory=dict)

    @property
    def radius(self) -> int:
        return self.params.radius

    def observe(self, index: int, key, plan, read, width: int, height: int) -> None:
        """Keep frame ``index``'s pixels around the mark ``key`` (copied: pass 2 edits frames in place)."""
        x0, y0, cw, ch = plan.window
        m = self.params.margin
        ex0, ey0 = max(0, x0 - m) // 2 * 2, max(0, y0 - m) // 2 * 2
        ex1, ey1 = min(width, (x0 + cw + m + 1) // 2 * 2), min(height, (y0 + ch + m + 1) // 2 * 2)
        rgb = np.array(read(ex0, ey0, ex1, ey1), np.uint8)
        look = Look.of(index, (ex0, ey0), rgb)
        track = self._tracks.setdefault(key, _Track())
        prev = track.looks.get(index - 1)
        position = np.zeros(2)
        if prev is not None and prev.origin == look.origin:
            ring = _ring(plan, self.params.margin, look, plan.offset, self.params.ring_gap)
            step = _translation(look, prev, ring, ring, np.zeros(2), zoom=False)
            position = track.position[index - 1] + (step[0][:2] if step is not None else 0.0)
        track.looks[index] = look
        track.position[index] = position

    def forget(self, before: int) -> None:
        """Drop the looks of frames before ``before``."""
        for track in self._tracks.values():
            for index in [i for i in track.looks if i < before]:
                del track.looks[index], track.position[index]
                track.gate.pop(index, None)
            for cache in (track.opacity, track.inverted, track.pairs):
                for k in [k for k in cache if min(k[0], k[1] if cache is track.pairs else k[0]) < before]:
                    del cache[k]

    def fuse(self, index: int, key, plan, offset, crop: np.ndarray, restored: np.ndarray,
             hole: np.ndarray) -> Fused | None:
        """Frame ``index``'s window ``crop`` (its own result ``restored``/``hole``) with the looks of
        its neighbours in the same visit; None when no independent look fits (keep the own result)."""
        track = self._tracks.get(key)
        if track is None or index not in track.looks:
            return None
        t0 = time.perf_counter()
        try:
            return self._fuse(track, index, plan, offset, crop, restored, hole)
        finally:
            self.counts["ms"] += (time.perf_counter() - t0) * 1e3

    def _fuse(self, track: _Track, index: int, plan, offset, crop, restored, hole) -> Fused | None:
        p = self.params
        track.gate[index] = True
        support = _support(plan, offset)
        if _flat(crop, support | hole, p.min_texture):
            self.counts["flat"] += 1
            return None
        moves = self._moves(track, index, plan, offset)
        if len(moves) < p.min_looks:
            self.counts["static"] += 1
            LOGGER.debug("propagate: frame %d has %d independent looks: own result kept", index, len(moves))
            return None
        looks = [(index, np.zeros(3), 0.0)] + moves
        opacity = self._visit_opacity(track, [s for s, _, _ in looks], plan, offset)
        stack = self._stack(track, index, looks, plan, lambda s: self._view(track, s, plan, offset, opacity))
        if stack is None or len(stack[0]) <= p.min_looks:
            self.counts["static"] += 1
            return None
        values, variances, sigma2 = stack
        value, var, _ = _combine(values, np.maximum(variances, 0.25 * sigma2), p.reject,
                                 support if p.calibrate_on_mark else None)
        var = np.maximum(var, p.var_floor * sigma2)  # errors the looks share (matte, clipping) do not average out
        if p.deblur_limit > 0:
            known = ~dilate_mask(support | hole, 2)
            value, track.deblur = _deblur(value, crop, known, p.deblur_sigma, p.deblur_limit, track.deblur)
        self.counts["fused"] += 1
        return _paste(crop, restored, hole, value, var, support, len(values) - 1, p.blend, p.smooth_texture)

    def reject(self, index: int, key) -> None:
        """Frame ``index``'s result for ``key`` was not used (the gate rejected it after ``fuse``):
        its look is not trusted as inverted by ``fill``."""
        track = self._tracks.get(key)
        if track is not None:
            track.gate[index] = False

    def fill(self, index: int, key, plan, offset, crop: np.ndarray, region: np.ndarray) -> Fused | None:
        """A frame the matte gate rejected (its box goes to the inpainter): the pixels of ``region``
        (bool [h, w] in the window: the box, with the mark's support) that neighbours of the visit
        saw unmarked, or through a matte the gate passed, where at least ``min_looks`` of them agree
        (a majority kept by the 3-sigma consensus); the rest stays a hole. None when none is filled."""
        track = self._tracks.get(key)
        if track is None or index not in track.looks:
            return None
        t0 = time.perf_counter()
        try:
            track.gate[index] = False
            return self._fill(track, index, plan, offset, crop, region)
        finally:
            self.counts["ms"] += (time.perf_counter() - t0) * 1e3

    def _fill(self, track: _Track, index: int, plan, offset, crop, region) -> Fused | None:
        p = self.params
        moves = self._moves(track, index, plan, offset)
        if len(moves) < p.min_looks:
            return None
        trusted = [s for s, _, _ in moves if track.gate.get(s)]
        opacity = self._visit_opacity(track, trusted, plan, offset) if trusted else 1.0
        marked = dilate_mask(_support(plan, offset), p.ring_gap)

        def view(s):
            inverted = self._view(track, s, plan, offset, opacity) if track.gate.get(s) else None
            return inverted if inverted is not None else _unmarked(track.looks[s], plan, marked)

        stack = self._stack(track, index, moves, plan, view)
        if stack is None or len(stack[0]) < p.min_looks:
            return None
        values, variances, sigma2 = stack
        value, var, agree = _combine(values, np.maximum(variances, 0.25 * sigma2), p.reject)
        ok = (agree.kept >= p.min_looks) & (2 * agree.kept > agree.valid) & (agree.spread <= p.max_spread) \
            & (var <= PARAMS.hole_variance)
        filled = region & ok & np.isfinite(value[..., 0])
        if not filled.any():
            return None
        out = np.array(crop, np.uint8, copy=True)
        out[filled] = np.clip(np.rint(value[filled]), 0, 255).astype(np.uint8)
        self.counts["filled"] = self.counts.get("filled", 0) + 1
        return Fused(out, region & ~filled, len(values))

    def _moves(self, track: _Track, index: int, plan, offset) -> list[tuple[int, np.ndarray, float]]:
        """(frame, shift onto frame ``index``, ring misfit) of the neighbours that moved enough and
        whose ring the translation explains about as well as the best one's. Each pair is fitted
        once: frame s reuses the reverse of the shift fitted for t (halves the fits' cost)."""
        p = self.params
        own = track.looks[index]
        ring = _ring(plan, p.margin, own, offset, p.ring_gap)  # the same in every look of the visit
        moves = []
        key = _offset_key(offset)
        for s in _visit(track, index, p.radius, p.dense, p.stride):
            fit = track.pairs.get((s, index, key))  # fitted when frame s was fused: the reverse motion
            if fit is not None:
                fit = (_inverse(fit[0]), fit[1])
            elif (index, s, key) not in track.pairs:
                init = track.position[index] - track.position[s]
                fit = _translation(own, track.looks[s], ring, ring, init, p.refine_iterations, p.zoom)
                track.pairs[(index, s, key)] = fit
            if fit is not None and np.hypot(*fit[0][:2]) >= p.min_shift:
                moves.append((s, fit[0], fit[1]))
        if moves:
            best = min(rms for _, _, rms in moves)
            moves = [m for m in moves if m[2] <= p.max_ring_rms * max(best, 0.5)]
        return moves

    def _stack(self, track: _Track, index: int, looks: list, plan, view):
        """The looks' values and predicted variances warped onto frame ``index``'s window, and the
        coding noise sigma^2 the rings imply; None when no move was fitted."""
        if not looks:
            return None
        moved = [rms for s, _, rms in looks if s != index]
        sigma2 = max(1.0, float(np.median([rms * rms for rms in moved])) / 2.0) if moved else 1.0
        x0, y0, cw, ch = plan.window
        own = track.looks[index]
        window = (x0 - own.origin[0], y0 - own.origin[1], cw, ch)
        values = np.empty((len(looks), ch, cw, 3), np.float32)
        variances = np.empty((len(looks), ch, cw), np.float32)
        n = 0
        for s, d, rms in looks:
            v = view(s)
            if v is None:
                continue
            value, gain2, matte_var = v
            extra = max(0.0, rms * rms - 2.0 * sigma2)
            values[n] = _warp(value, d, cv2.INTER_CUBIC, window)
            variances[n] = _warp(sigma2 * gain2 + matte_var + extra, d, cv2.INTER_LINEAR, window)
            n += 1
        return values[:n], variances[:n], sigma2

    def _fitted(self, track: _Track, s: int, plan, offset) -> float | None:
        """Look ``s``'s own least-squares opacity (None: the matte does not fit it), cached."""
        k = (s, _offset_key(offset))
        if k not in track.opacity:
            crop = _window_of(track.looks[s], plan)
            try:
                o, residual = matte.fit_opacity(crop, plan.estimate, offset=offset)
            except ValueError:
                o, residual = 0.0, np.inf
            track.opacity[k] = o if residual <= plan.estimate.max_residual else None
        return track.opacity[k]

    def _visit_opacity(self, track: _Track, frames: list[int], plan, offset) -> float:
        """One opacity for the looks of a visit: the mark does not fade within one, and a single
        frame's fit is pulled by the texture under it (0.93-0.99 measured where the truth was 1,
        which leaves 5-10 grey levels after a gain of 5)."""
        fits = [o for o in (self._fitted(track, s, plan, offset) for s in frames) if o is not None]
        if not fits:
            return 1.0
        o = float(np.median(fits))
        return 1.0 if abs(o - 1.0) <= self.params.opacity_snap else o

    def _view(self, track: _Track, s: int, plan, offset, opacity: float):
        """Look ``s`` inverted with the visit's offset and opacity over its grown area (cached);
        None when its own fit says the mark is not there as in the visit (a fade, a cut)."""
        fitted = self._fitted(track, s, plan, offset)
        if fitted is None or abs(fitted - opacity) > self.params.opacity_spread:
            return None
        k = (s, _offset_key(offset), round(opacity, 3))
        if k not in track.inverted:
            track.inverted[k] = _invert_look(track.looks[s], plan, offset, opacity)
        return track.inverted[k]


def _offset_key(offset) -> tuple:
    return tuple(np.round(np.asarray(offset, np.float32).ravel(), 3).tolist())


def _window_of(look: Look, plan) -> np.ndarray:
    x0, y0, cw, ch = plan.window
    wy, wx = y0 - look.origin[1], x0 - look.origin[0]
    return look.rgb[wy : wy + ch, wx : wx + cw]


def _invert_look(look: Look, plan, offset, opacity: float):
    x0, y0, cw, ch = plan.window
    wy, wx = y0 - look.origin[1], x0 - look.origin[0]
    inner = invert_look(_window_of(look, plan), plan.estimate, opacity, offset=offset)
    value = look.rgb.astype(np.float32)
    gain2 = np.ones(look.gray.shape, np.float32)
    matte_var = np.zeros(look.gray.shape, np.float32)
    for whole, part in zip((value, gain2, matte_var), inner):
        whole[wy : wy + ch, wx : wx + cw] = part
    return value, gain2, matte_var


def _unmarked(look: Look, plan, marked: np.ndarray):
    """A look's own pixels as a view, NaN where the mark (its support grown by a few px) covers
    them: what a neighbour saw of the background without the matte."""
    x0, y0, cw, ch = plan.window
    wy, wx = y0 - look.origin[1], x0 - look.origin[0]
    value = look.rgb.astype(np.float32)
    value[wy : wy + ch, wx : wx + cw][marked] = np.nan
    ones = np.ones(look.gray.shape, np.float32)
    return value, ones, np.zeros_like(ones)


def _visit(track: _Track, index: int, radius: int, dense: int, stride: int) -> list[int]:
    """Frames within ``radius`` of ``index`` with a look of the same visit (no gap, same area):
    every frame within ``dense``, every ``stride``-th beyond (far looks add reach, near ones noise
    reduction)."""
    out = []
    origin = track.looks[index].origin
    for step in (-1, 1):
        s = index + step
        while abs(s - index) <= radius and s in track.looks and track.looks[s].origin == origin:
            if abs(s - index) <= dense or (abs(s - index) - dense) % stride == 0:
                out.append(s)
            s += step
    return out


def _flat(crop: np.ndarray, support: np.ndarray, min_texture: float) -> bool:
    """Whether the background around the mark is so flat that the smooth fill is as close as the
    looks can get (bright walls lost 0.6-2.4 dB to propagation without this; their ring texture
    measured 4-20 grey levels^2, hair and ceilings 30-150)."""
    if min_texture <= 0 or not support.any():
        return False
    tau2 = texture_prior(np.asarray(crop, np.float32), support, PARAMS.ring_px, fill)
    return float(np.median(tau2[support])) < min_texture


def _paste(crop, restored, hole, value, var, support, looks: int, blend: bool = True,
           smooth_texture: float = 0.0) -> Fused:
    """The fused value where the mark is (blended with the fill by predicted error); hole pixels
    the looks cover well enough leave the hole. Pixels off the mark keep the frame's own."""
    has = np.isfinite(var)
    area = (support | hole) & has
    blended = value
    if blend:
        blended = prior_blend(crop, support | hole, np.where(has[..., None], value, 0.0), np.where(has, var, 1e6),
                              smooth_texture=smooth_texture)
    filled = hole & has & (var <= PARAMS.hole_variance)
    use = (area & ~hole) | filled
    out = restored.copy()
    out[use] = np.clip(np.rint(blended[use]), 0, 255).astype(np.uint8)
    return Fused(out, hole & ~filled, looks)

"""Estimation: the mark's matte, colour and per-frame opacity from its crops over many frames.

Model per pixel and frame: ``crop = a*W + (1 - a)*B`` with ``a = alpha * o_t``. The background ``B``
under the mark is guessed by a smooth fill from the pixels around it (first from the crop border,
then from everything outside the current matte's support) or, for crops with a clean reference,
known; alpha, W and o_t are solved by alternating least squares. Fill errors differ from frame to
frame because the background moves, so they average out while the mark does not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from orchestrator.pipeline.matte.image import dilate_mask, fill_frames, to_planes
from orchestrator.pipeline.matte.params import PARAMS, WHITE, MatteParams
from orchestrator.pipeline.matte.references import consistent, fill_weights, reference_backgrounds
from orchestrator.pipeline.matte.refine import two_colour
from orchestrator.pipeline.matte.register import align, register, shift_map, snap
from orchestrator.pipeline.matte.solve import als, effective_frames, fit_residual, regularise_opacity, residuals

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatteEstimate:
    """A mark's matte in reference coordinates plus the per-frame fit of the crops it came from.

    ``alpha`` is the matte at full visibility (the median frame's opacity is 1); the effective
    blend weight of frame ``t`` is ``alpha * frame_opacity[t]``. ``residual`` is the per-frame
    misfit relative to the mark's own signal (0 = perfect; above ``max_residual``, the per-frame
    limit, the frame should go to the inpainter). ``reliable`` False means: do not invert, inpaint the box.
    """

    alpha: np.ndarray  # float32 [h, w] in [0, 1]
    color: np.ndarray  # float32 [3], 0..255
    frame_opacity: np.ndarray  # float32 [N]
    residual: np.ndarray  # float32 [N]
    reliable: bool
    reason: str
    alpha_threshold: float  # a = alpha*opacity above this is always the opaque core -> inpainter
    max_residual: float = 0.5
    offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # [N, 2]
    support: np.ndarray | None = None  # bool [h, w]: where the mark is (dilated)
    opacity_noise: float = 0.0  # scatter of fitted opacities; smaller changes are ignored
    effective_frames: float = 0.0  # independent background samples the estimate rests on
    alpha_se: np.ndarray | None = None  # float32 [h, w]: standard error of alpha (effective frames)
    reference_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # crops whose
    # background came from a clean reference frame
    color_map: np.ndarray | None = None  # float32 [h, w, 3]: W per pixel where the mark has dark parts
    unstable: np.ndarray | None = None  # bool [h, w]: parts that change per frame (the inpainter's)

    def color_at(self, offset=None) -> np.ndarray:
        """W in a crop: [h, w, 3] when the mark has dark parts (moved by ``offset``), else [3]."""
        return self.color if self.color_map is None else shift_map(self.color_map, offset)

    @property
    def references(self) -> int:
        return int(self.reference_index.size)

    @property
    def alpha_shrink(self) -> float:
        """Standard errors the inversion shrinks alpha by (``MatteParams``)."""
        return PARAMS.reference_alpha_shrink if self.references else PARAMS.alpha_shrink

    @property
    def frame_ok(self) -> np.ndarray:
        """Frames whose crop the fixed matte explains well enough to invert."""
        return self.residual <= self.max_residual

    def summary(self) -> dict:
        """A JSON-friendly description for the task's details."""
        return {
            "reliable": self.reliable,
            "reason": self.reason,
            "frames": int(self.frame_opacity.shape[0]),
            "frames_ok": int(self.frame_ok.sum()) if self.residual.size else 0,
            "alpha_max": round(float(self.alpha.max()) if self.alpha.size else 0.0, 3),
            "color": [round(float(c), 1) for c in self.color],
            "median_residual": round(float(np.median(self.residual)), 3) if self.residual.size else None,
            "effective_frames": round(self.effective_frames, 1),
            "references": self.references,
            "dark_px": int((self.color_map.min(-1) < 128).sum()) if self.color_map is not None else 0,
            "unstable_px": int(self.unstable.sum()) if self.unstable is not None else 0,
        }


@dataclass
class _Fit:
    """The estimate's working state over its passes (internal to ``estimate_matte``)."""

    crops: np.ndarray  # uint8 [N, h, w, 3] as given
    offsets: np.ndarray  # [N, 2] snapped registration offsets
    x: np.ndarray  # float32 [N, 3, h, w], aligned
    border: np.ndarray  # bool [h, w]: the crop's 2 px border
    color: np.ndarray  # the mark's colour W
    ridge: float
    opacity: np.ndarray = field(init=False)
    alpha: np.ndarray = field(init=False)
    se: np.ndarray = field(init=False)
    support: np.ndarray = field(init=False)
    known: np.ndarray = field(init=False)
    bg: np.ndarray | None = None
    ref_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ref_bg: np.ndarray | None = None
    ref_valid: np.ndarray | None = None
    ref_registered: np.ndarray | None = None  # ref_valid before the white-only consistency check
    ref_share: np.ndarray | None = None
    weight: np.ndarray | None = None
    n_eff0: float = 0.0

    def __post_init__(self) -> None:
        n, _, h, w = self.x.shape
        self.opacity = np.ones(n, np.float32)
        self.alpha = np.zeros((h, w), np.float32)
        self.se = np.ones((h, w), np.float32)
        self.support = np.zeros((h, w), bool)
        self.known = self.border

    def background(self, filled: np.ndarray) -> np.ndarray:
        """The fill, with the referenced crops' backgrounds replaced where their reference is valid."""
        if not self.ref_idx.size:
            return filled
        bg = filled.copy()
        bg[self.ref_idx] = np.where(self.ref_valid[:, None], self.ref_bg, filled[self.ref_idx])
        return bg

    def solve(self, rounds: int) -> None:
        """Alpha, its standard error and the opacities on the current background (W fixed)."""
        self.alpha, self.se, _, self.opacity = als(self.x, self.bg, self.color, self.opacity, self.alpha,
                                                   fit_color=False, rounds=rounds, ridge=self.ridge,
                                                   weight=self.weight)


def estimate_matte(
    crops: np.ndarray,
    *,
    offsets: np.ndarray | None = None,
    register_crops: bool = True,
    color: np.ndarray | tuple[float, float, float] | None = None,
    min_frames: int = PARAMS.min_frames,
    alpha_threshold: float = PARAMS.alpha_threshold,
    max_residual: float = PARAMS.max_residual,
    min_background_motion: float = PARAMS.min_background_motion,
    iterations: int = PARAMS.iterations,
    inner_rounds: int = PARAMS.inner_rounds,
    references: dict[int, np.ndarray] | None = None,
    params: MatteParams = PARAMS,
    max_shift: float | None = None,
) -> MatteEstimate:
    """Estimate the mark's matte from its crops over many frames (uint8 [N, h, w, 3]).

    ``offsets`` (from ``register``) or ``register_crops=True`` align jittered crops first; the
    returned ``offsets`` are what ``remove_with_matte``/``fit_opacity`` need per crop. ``color``
    fixes W (e.g. white) instead of estimating it. ``references`` maps a crop's index to a clean
    crop of the same window from a nearby frame where the mark is absent: that crop's background
    is then known instead of guessed. The result is ``reliable=False`` with a reason when there are
    too few frames, the background never moves, no consistent mark is found, or the fixed matte
    does not explain the frames (residual too high). ``max_shift`` bounds the registration
    (``register``'s default: a quarter of the smaller side).
    """
    crops = _checked(crops)
    n, h, w, _ = crops.shape
    shape = (n, h, w, alpha_threshold, max_residual)
    if n < min_frames:
        return _unreliable(shape, f"too few frames ({n} < {min_frames})")
    if offsets is None:
        offsets = register(crops, max_shift=max_shift) if register_crops else np.zeros((n, 2), np.float32)
    offsets = snap(np.asarray(offsets, dtype=np.float32).reshape(n, 2))
    x = to_planes(align(crops, offsets))  # [N, 3, h, w]
    border = _border(h, w)
    # Does the background move at all? With a static background the mark cannot be separated.
    motion = float(np.median(x[:, :, border].std(axis=0)))
    if motion < min_background_motion:
        return _unreliable(shape, f"the background does not change under the mark (motion {motion:.1f} < "
                                  f"{min_background_motion})", offsets)
    mark_color = np.asarray(color if color is not None else WHITE, dtype=np.float32).reshape(3)
    # the ridge pulls alpha to 0 where the background never differs from W
    fit = _Fit(crops, offsets, x, border, mark_color, ridge=100.0 * n)
    _refine(fit, references, iterations, inner_rounds, params)
    problem = _support_problem(fit)
    if problem is not None:
        return _unreliable(shape, problem, offsets)
    _resolve_outside_support(fit, x, inner_rounds)
    if color is None:
        _choose_colour(fit, inner_rounds)
    return _result(fit, alpha_threshold, max_residual, params)


def _checked(crops: np.ndarray) -> np.ndarray:
    """The crops as an array, or ValueError when they are not [N, h, w, 3] of at least 8x8."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be [N, h, w, 3], got {crops.shape}")
    h, w = crops.shape[1:3]
    if h < 8 or w < 8:
        raise ValueError(f"crops too small for a matte: {h}x{w}")
    return crops


def _border(h: int, w: int) -> np.ndarray:
    """The crop's outer two pixels: background in every frame, the first guess of what is known."""
    border = np.zeros((h, w), bool)
    border[:2] = border[-2:] = True
    border[:, :2] = border[:, -2:] = True
    return border


def _support_problem(fit: _Fit) -> str | None:
    """Why the refined support is no mark to invert (none, or all of the crop), or None."""
    frac = float(fit.support.mean())
    if fit.alpha.max() < 0.05 or frac < 0.002:
        return "no consistent mark found in the crops"
    if frac > 0.9:
        return "the mark covers the whole crop: no background around it to compare with"
    return None


def _resolve_outside_support(fit: _Fit, x: np.ndarray, inner_rounds: int) -> None:
    """Guess the background once more from everything outside the final support, then re-solve."""
    if not np.array_equal(fit.known, ~fit.support):
        fit.known = ~fit.support
        fit.bg = fit.background(fill_frames(x, fit.known))
        fit.solve(inner_rounds)


def _unreliable(shape: tuple, reason: str, offsets: np.ndarray | None = None) -> MatteEstimate:
    n, h, w, alpha_threshold, max_residual = shape
    LOGGER.info("matte estimate unreliable: %s", reason)
    return MatteEstimate(
        alpha=np.zeros((h, w), np.float32), color=WHITE.copy(),
        frame_opacity=np.zeros(n, np.float32), residual=np.full(n, np.inf, np.float32),
        reliable=False, reason=reason, alpha_threshold=alpha_threshold, max_residual=max_residual,
        offsets=offsets if offsets is not None else np.zeros((n, 2), np.float32),
        support=np.zeros((h, w), bool),
    )


def _refine(fit: _Fit, references, iterations: int, inner_rounds: int, params: MatteParams) -> None:
    """Alternate the background guess and the fit until the mark's support settles; the clean
    references join on the second pass (the first matte tells where the ring around the mark is)."""
    for it in range(max(1, iterations)):
        filled = fill_frames(fit.x, fit.known)
        if it == 1 and references and fit.support.any():
            _attach_references(fit, filled, references, params)
        fit.bg = fit.background(filled)
        fit.solve(inner_rounds)
        if fit.ref_idx.size:  # drop what moved between a reference and its frame, re-weigh
            fit.ref_valid = consistent(fit.x, fit.ref_idx, fit.ref_bg, fit.ref_valid, fit.alpha, fit.color,
                                       fit.opacity, params)
            fit.weight = fill_weights(fit.x, filled, fit.ref_idx, fit.ref_bg, fit.ref_valid, fit.ref_share,
                                      fit.support, fit.n_eff0)
        if _grow_support(fit, it):
            break


def _attach_references(fit: _Fit, filled: np.ndarray, references, params: MatteParams) -> None:
    fit.ref_idx, fit.ref_bg, fit.ref_valid = reference_backgrounds(
        fit.crops, fit.offsets, references, fit.support, fit.alpha, fit.color, params)
    # crops served by the same reference image (by content: callers pass copies or views)
    used = [hash(np.ascontiguousarray(references[int(k)]).tobytes()) for k in fit.ref_idx]
    fit.ref_share = np.array([used.count(u) for u in used], np.float32)
    fit.ref_registered = fit.ref_valid
    if not fit.ref_idx.size:
        return
    fit.n_eff0 = effective_frames(fit.x, fit.bg, fit.alpha, fit.color, fit.opacity, fit.support)
    fit.weight = fill_weights(fit.x, filled, fit.ref_idx, fit.ref_bg, fit.ref_valid, fit.ref_share,
                              fit.support, fit.n_eff0)
    fit.ridge = 100.0 * float(fit.weight.mean(axis=(1, 2)).sum())
    LOGGER.debug("matte: %d of %d references usable", fit.ref_idx.size, len(references))


def _grow_support(fit: _Fit, it: int) -> bool:
    """Update the mark's support from the significant alpha; True when the passes should stop."""
    significant = (fit.alpha > 0.02) & (fit.alpha > 3.0 * fit.se)
    new_support = dilate_mask(significant, 2) & ~fit.border
    if not new_support.any():
        return True
    if it >= 2:
        new_support |= fit.support  # only grow from here on: stops pixels flipping in and out
    changed = int(np.count_nonzero(new_support != fit.support))
    LOGGER.debug("matte pass %d: support %d px, %d changed", it, int(new_support.sum()), changed)
    fit.support = new_support
    fit.known = ~fit.support
    return it > 0 and changed <= max(2, 0.01 * int(fit.support.sum()))  # the guess would hardly change


def _choose_colour(fit: _Fit, inner_rounds: int) -> None:
    """alpha and W trade off against each other when the backgrounds have similar colours: keep
    white (the Sora mark's colour) unless a fitted colour explains the frames clearly better."""
    cand = als(fit.x, fit.bg, fit.color, fit.opacity, fit.alpha, fit_color=True, rounds=2 * inner_rounds,
               ridge=fit.ridge, weight=fit.weight)
    res_white = float(np.median(residuals(fit.x, fit.bg, fit.alpha, fit.color, fit.opacity, fit.support)))
    res_fit = float(np.median(residuals(fit.x, fit.bg, cand[0], cand[2], cand[3], fit.support)))
    LOGGER.debug("matte colour: white residual %.3f, fitted %s residual %.3f", res_white, cand[2], res_fit)
    if res_fit < 0.8 * res_white:
        fit.alpha, fit.se, fit.color, fit.opacity = cand


def _result(fit: _Fit, alpha_threshold: float, max_residual: float, params: MatteParams) -> MatteEstimate:
    """Zero the insignificant alpha, regularise the opacities and judge the fit."""
    n = fit.x.shape[0]
    x, bg, color, se, support = fit.x, fit.bg, fit.color, fit.se, fit.support
    # Slowly moving backgrounds make the fill errors of neighbouring frames alike, so the per-pixel
    # standard error is scaled by the effective number of independent frames.
    n_eff = effective_frames(x, bg, fit.alpha, color, fit.opacity, support)
    # (with references the weights already count the guessed frames as n_eff independent ones)
    se_eff = se if fit.weight is not None else se * np.sqrt(n / n_eff)
    keep = (fit.alpha > 2.0 * se_eff) | (fit.alpha > 0.1)
    alpha = np.clip(np.where(dilate_mask(keep & (fit.alpha > 3.0 * se), 1), fit.alpha, 0.0), 0.0, 1.0)
    alpha = alpha.astype(np.float32)
    opacity, opacity_noise = regularise_opacity(fit.opacity)
    alpha, color_map, unstable, se_dark = _dark_parts(fit, alpha, opacity)
    if se_dark is not None:  # the white-only fit's error says nothing about the dark parts
        se_eff = np.where(support, se_dark if fit.weight is not None else se_dark * np.sqrt(n / n_eff), se_eff)
    residual = residuals(x, bg, alpha, color if color_map is None else color_map, opacity, support)
    med_res = float(np.median(residual))
    # Judged on the frames with a clean reference when there are a few (their residual is the
    # model's own misfit; elsewhere the fill's error dominates it).
    fit_res = fit_residual(residual, fit.ref_idx, params.min_fit_references)
    reliable, reason = True, "ok"
    if fit_res > max_residual:
        reliable = False
        reason = f"the fixed matte does not fit the frames (median residual {fit_res:.2f} > {max_residual})"
    # Per-frame limit: the residual's floor is set by the background guess (high on fine textures
    # under a faint mark), so a frame is a misfit when it stands out from the others.
    frame_limit = float(min(1.0, max(max_residual, 1.5 * med_res)))
    LOGGER.debug("matte: %d frames, alpha max %.2f, W %s, median residual %.3f", n, alpha.max(), color, med_res)
    return MatteEstimate(
        alpha=alpha, color=color.astype(np.float32), frame_opacity=opacity.astype(np.float32),
        residual=residual.astype(np.float32), reliable=reliable, reason=reason,
        alpha_threshold=alpha_threshold, max_residual=frame_limit, offsets=fit.offsets, support=support,
        opacity_noise=opacity_noise, effective_frames=float(n_eff),
        alpha_se=np.where(alpha > 0, np.minimum(se_eff, 0.5), 0.0).astype(np.float32),
        reference_index=fit.ref_idx.astype(np.int64), color_map=color_map, unstable=unstable,
    )


def _dark_parts(fit: _Fit, alpha: np.ndarray, opacity: np.ndarray):
    """``refine.two_colour`` on the references where they registered: the white-only consistency
    check dropped them exactly where the mark has dark parts (its pupils)."""
    bg, weight = fit.bg, fit.weight
    if fit.ref_idx.size:
        filled = fill_frames(fit.x, ~fit.support)
        bg = filled.copy()
        bg[fit.ref_idx] = np.where(fit.ref_registered[:, None], fit.ref_bg, filled[fit.ref_idx])
        weight = fill_weights(fit.x, filled, fit.ref_idx, fit.ref_bg, fit.ref_registered, fit.ref_share,
                              fit.support, fit.n_eff0)
    return two_colour(fit.x, bg, alpha, fit.color, opacity, fit.support, weight=weight, ridge=fit.ridge,
                      ref_idx=fit.ref_idx)

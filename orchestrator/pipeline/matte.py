"""Estimate a semi-transparent mark's alpha matte from the video itself and invert the blend.

Why: the mark attenuates the pixels under it instead of destroying them
(``observed = a*W + (1 - a)*background`` with ``a = alpha * opacity``). When the same mark sits over
many different backgrounds, its matte ``alpha`` and colour ``W`` can be estimated per video (Dekel
et al., CVPR 2017) and the blend inverted exactly; only the near-opaque core still needs the
inpainter. That recovers the real content (no blur, no flicker) at almost no compute.

The background under the mark is what the estimate needs and cannot see. Two sources: a smooth
fill from the pixels around the mark (always there; wrong in a way that repeats over neighbouring
frames, so one position's slowly panning background is worth only a few independent samples), and
clean references: the same window in the frame just before the mark arrives at a position or just
after it leaves (the Sora mark jumps every few seconds, so every visit has two), registered onto
the marked frames nearby. References are exact up to coding noise and motion; the fit weighs each
frame by how much it can be trusted (bench/README.md: +2 to +9 dB on held-out photo clips).

Everything is vectorised numpy (OpenCV's ECC registers the references) and runs inside the
pipeline's worker thread. CPU time per crop: estimation ~4 ms (96x48) / 7-9 ms (160x70),
``remove_with_matte`` ~2.3 / ~5 ms (bench/README.md).

Use: ``estimate_groups`` once per video (one pooled estimate for all of the mark's positions:
unrelated backgrounds; a position that disagrees keeps its own), then per frame ``fit_opacity``
(skip frames whose residual exceeds ``estimate.max_residual``) and ``remove_with_matte``; its
``hole`` goes to the inpainter. ``reliable=False`` (with ``reason``) means: inpaint the box.

Coordinates: ``register`` returns per-crop offsets ``(dy, dx)``: the mark in crop ``i`` sits at
``p + offsets[i]`` where ``p`` is its position in the reference (the matte's) coordinates. The
estimate keeps the matte in reference coordinates; ``remove_with_matte`` and ``fit_opacity`` take
the crop's offset and move the matte to the crop (never resampling the frame itself).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

LOGGER = logging.getLogger(__name__)

WHITE = np.array([255.0, 255.0, 255.0], dtype=np.float32)
# Below this blend weight a pixel is always inverted; above ``alpha_threshold`` always inpainted;
# in between it goes to the inpainter when the inversion's expected error variance (grey levels^2)
# exceeds ``remove_with_matte``'s ``hole_variance`` (the fallback inpainter's error in the holes
# measured ~80-90 in bench/quality.py; 150 was the best trade-off over the five clips).
HOLE_ALPHA_MIN = 0.5
HOLE_VARIANCE = 150.0
# With clean references, below this blend weight the hole test ignores the matte's standard error.
HOLE_SE_FREE_ALPHA = 0.8
# The matte's standard error (``alpha_se``, from the effective frames) understates its real error
# on photos with few independent frames; the inversion shrinks alpha with this many standard errors
# (bench/quality.py: 3 gave +0.4 to +1.9 dB on the photo clips, -0.4 dB on the flat texture clip).
ALPHA_SHRINK = 3.0
# A reference that cannot be registered (flat background) is used unmoved when it differs from its
# frame around the mark by at most this (grey levels, RMS): a few times the coding noise.
REFERENCE_FLAT_RMS = 6.0
# Model error (grey levels, mean over channels) above which a reference pixel is not the frame's
# background (an object moved between the two frames); alpha errors of a few % stay well below.
REFERENCE_MAX_ERROR = 25.0
# A reference must not show the mark: its fitted opacity on the first matte must stay below this.
REFERENCE_MAX_OPACITY = 0.25
# With clean references the standard error is not an understatement (it counts the references and
# the guessed frames as the independent samples they are): plain Wiener shrinkage.
REFERENCE_ALPHA_SHRINK = 1.0
# Width (px) of the ring outside the mark whose texture tells the inversion's excess noise apart.
RING_PX = 4
# Half-width of the window over which the blend measures the texture the inversion shows.
BLEND_RADIUS = 2
# Share of x264's coding-noise variance that the 3x3 high-pass of ``_hf_energy`` sees (0.889 for
# white noise; x264's noise is spatially correlated: 0.18-0.41 measured on bench/quality.py clips).
NOISE_HF_FRACTION = 0.4
# Alpha error the statistics do not see (codec blur of thin strokes, chroma siting), for the blend.
MODEL_ALPHA_ERROR = 0.0  # 0.02-0.05 helped flat backgrounds but cost more on photos


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

    @property
    def references(self) -> int:
        return int(self.reference_index.size)

    @property
    def alpha_shrink(self) -> float:
        """Standard errors the inversion shrinks alpha by (ALPHA_SHRINK / REFERENCE_ALPHA_SHRINK)."""
        return REFERENCE_ALPHA_SHRINK if self.references else ALPHA_SHRINK

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
        }


# --------------------------------------------------------------------------- small image helpers


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation with a (2r+1)^2 square over the last two axes (separable, numpy only)."""
    out = mask.astype(bool)
    for _ in range(max(0, radius)):
        grown = out.copy()
        grown[..., 1:, :] |= out[..., :-1, :]
        grown[..., :-1, :] |= out[..., 1:, :]
        out = grown.copy()
        out[..., :, 1:] |= grown[..., :, :-1]
        out[..., :, :-1] |= grown[..., :, 1:]
    return out


def _pad_edge(x: np.ndarray, r: int) -> np.ndarray:
    """Replicate the last two axes' edges by ``r`` (np.pad costs more than the work on small crops)."""
    x = np.concatenate([x[..., :1, :]] * r + [x] + [x[..., -1:, :]] * r, axis=-2)
    return np.concatenate([x[..., :, :1]] * r + [x] + [x[..., :, -1:]] * r, axis=-1)


def _upsample2(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear x2 upsampling over the last two axes of [M, hc, wc], cropped to [M, h, w]."""
    m, hc, wc = x.shape
    rows = np.empty((m, 2 * hc, wc), np.float32)
    prev = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
    nxt = np.concatenate([x[:, 1:], x[:, -1:]], axis=1)
    rows[:, 0::2] = 0.75 * x + 0.25 * prev
    rows[:, 1::2] = 0.75 * x + 0.25 * nxt
    rows = rows[:, :h]
    out = np.empty((m, rows.shape[1], 2 * wc), np.float32)
    prev = np.concatenate([rows[:, :, :1], rows[:, :, :-1]], axis=2)
    nxt = np.concatenate([rows[:, :, 1:], rows[:, :, -1:]], axis=2)
    out[:, :, 0::2] = 0.75 * rows + 0.25 * prev
    out[:, :, 1::2] = 0.75 * rows + 0.25 * nxt
    return out[:, :, :w]


def _fill(planes: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Push-pull fill of [M, h, w] float32 planes where the shared mask ``known`` [h, w] is False."""
    m, h, w = planes.shape
    wt = known.astype(np.float32)
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    cur_x = np.where(known, planes, 0.0).astype(np.float32)
    cur_w = wt
    while min(cur_x.shape[1], cur_x.shape[2]) > 1:
        levels.append((cur_x, cur_w))
        ph, pw = cur_x.shape[1] % 2, cur_x.shape[2] % 2
        if ph:
            cur_x = np.concatenate([cur_x, cur_x[:, -1:]], axis=1)
            cur_w = np.concatenate([cur_w, np.zeros_like(cur_w[-1:])], axis=0)
        if pw:
            cur_x = np.concatenate([cur_x, cur_x[:, :, -1:]], axis=2)
            cur_w = np.concatenate([cur_w, np.zeros_like(cur_w[:, -1:])], axis=1)
        xw = cur_x * cur_w
        sum_xw = xw[:, 0::2, 0::2] + xw[:, 1::2, 0::2] + xw[:, 0::2, 1::2] + xw[:, 1::2, 1::2]
        sum_w = cur_w[0::2, 0::2] + cur_w[1::2, 0::2] + cur_w[0::2, 1::2] + cur_w[1::2, 1::2]
        cur_x = sum_xw / np.maximum(sum_w, 1e-6)
        cur_w = np.minimum(sum_w, 1.0)
    for fine_x, fine_w in reversed(levels):
        up = _upsample2(cur_x, fine_x.shape[1], fine_x.shape[2])
        cur_x = fine_w * fine_x + (1.0 - fine_w) * up
    return np.where(known, planes, cur_x).astype(np.float32)


def fill_background(images: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill unknown pixels smoothly from known ones (push-pull pyramid, Gortler et al. 1996).

    ``images`` [N, h, w, C]; ``known`` bool [h, w] (True = keep), shared by all frames. Known
    pixels come back unchanged. Why push-pull: O(pixels), vectorised over frames, reaches holes of
    any size; on textured backgrounds it also gave better matte estimates than a harmonic fill.
    """
    x = np.asarray(images, dtype=np.float32)
    n, h, w, c = x.shape
    planes = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n * c, h, w)
    filled = _fill(planes, np.asarray(known, bool))
    return filled.reshape(n, c, h, w).transpose(0, 2, 3, 1)


# --------------------------------------------------------------------------- registration


def _edges(gray: np.ndarray) -> np.ndarray:
    """Gradient magnitude of [N, h, w]: the mark's edges stay put while the background moves."""
    gy = np.zeros_like(gray)
    gx = np.zeros_like(gray)
    gy[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
    gx[:, :, 1:-1] = gray[:, :, 2:] - gray[:, :, :-2]
    return np.sqrt(gx * gx + gy * gy)


def _shift_stack(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sample ``out[i](p) = x[i](p + offsets[i])`` (bilinear, edges clamped); x [N, h, w, ...]."""
    n, h, w = x.shape[:3]
    dy = offsets[:, 0].astype(np.float64)
    dx = offsets[:, 1].astype(np.float64)
    fy = np.arange(h)[None, :] + dy[:, None]  # [N, h]
    fx = np.arange(w)[None, :] + dx[:, None]  # [N, w]
    y0 = np.floor(fy).astype(np.int64)
    x0 = np.floor(fx).astype(np.int64)
    wy = (fy - y0).astype(np.float32)
    wx = (fx - x0).astype(np.float32)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    idx = np.arange(n)[:, None, None]
    extra = (1,) * (x.ndim - 3)

    def gather(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        return x[idx, yi[:, :, None], xi[:, None, :]]

    wy_ = wy.reshape(n, h, 1, *extra)
    wx_ = wx.reshape(n, 1, w, *extra)
    top = gather(y0c, x0c) * (1 - wx_) + gather(y0c, x1c) * wx_
    bottom = gather(y1c, x0c) * (1 - wx_) + gather(y1c, x1c) * wx_
    return (top * (1 - wy_) + bottom * wy_).astype(np.float32)


def _snap(offsets: np.ndarray, tolerance: float = 0.2) -> np.ndarray:
    """Round offsets that are within ``tolerance`` of whole pixels.

    Why: a mark drawn at a fixed place in the video moves by whole pixels between crops cut at
    integer boxes; resampling by a spurious 0.1 px would only blur the crops.
    """
    rounded = np.round(offsets)
    return np.where(np.abs(offsets - rounded) <= tolerance, rounded, offsets).astype(np.float32)


def register(crops: np.ndarray, *, max_shift: float | None = None, iterations: int = 3) -> np.ndarray:
    """Sub-pixel offsets [N, 2] (dy, dx) of the mark in each crop relative to the common reference.

    Phase correlation of each crop's edge map against the median edge map of the (aligned) crops:
    the mark's edges are the only structure common to all crops. The median offset is (about)
    zero, so the reference is the typical box. ``max_shift`` (default a quarter of the smaller
    side) bounds the search. Crops should include a margin around the mark larger than the jitter.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be [N, h, w, 3], got {crops.shape}")
    n, h, w, _ = crops.shape
    if n == 0:
        return np.zeros((0, 2), np.float32)
    limit = max_shift if max_shift is not None else min(h, w) / 4.0
    edges = _edges(crops.astype(np.float32).mean(axis=-1))
    window = (np.hanning(h)[:, None] * np.hanning(w)[None, :]).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    # Phase correlation with a soft low-pass: pure whitening lets pixel noise dominate.
    lowpass = np.exp(-((fy**2 + fx**2) / (2 * 0.15**2))).astype(np.float32)
    f_edges = np.fft.rfft2((edges - edges.mean(axis=(1, 2), keepdims=True)) * window)
    ys = np.fft.fftfreq(h, 1.0 / h)  # signed shifts per index
    xs = np.fft.fftfreq(w, 1.0 / w)
    allowed = (np.abs(ys)[:, None] <= limit) & (np.abs(xs)[None, :] <= limit)
    offsets = np.zeros((n, 2), np.float64)
    for _ in range(max(1, iterations)):
        aligned = _shift_stack(edges, offsets) if np.any(offsets) else edges
        template = np.median(aligned, axis=0)
        f_t = np.fft.rfft2((template - template.mean()) * window)
        cross = f_edges * np.conj(f_t)
        cross = cross / (np.abs(cross) + 1e-6) * lowpass
        corr = np.fft.irfft2(cross, s=(h, w))
        corr = np.where(allowed[None], corr, -np.inf)
        flat = corr.reshape(n, -1).argmax(axis=1)
        py, px = np.unravel_index(flat, (h, w))
        new = np.empty((n, 2), np.float64)
        idx = np.arange(n)
        for axis, (p, size) in enumerate(((py, h), (px, w))):
            if axis == 0:
                c0 = corr[idx, p, px]
                cm = corr[idx, (p - 1) % size, px]
                cp = corr[idx, (p + 1) % size, px]
            else:
                c0 = corr[idx, py, p]
                cm = corr[idx, py, (p - 1) % size]
                cp = corr[idx, py, (p + 1) % size]
            cm = np.where(np.isfinite(cm), cm, c0)
            cp = np.where(np.isfinite(cp), cp, c0)
            denom = cm - 2 * c0 + cp
            frac = np.where(np.abs(denom) > 1e-12, 0.5 * (cm - cp) / np.where(denom == 0, 1, denom), 0.0)
            signed = np.where(p > size // 2, p - size, p)
            new[:, axis] = signed + np.clip(frac, -0.5, 0.5)
        new -= np.round(np.median(new, axis=0))
        if np.allclose(new, offsets, atol=0.05):
            offsets = new
            break
        offsets = new
    return offsets.astype(np.float32)


def align(crops: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Crops resampled into reference coordinates (float32 [N, h, w, 3]); see ``register``."""
    crops = np.asarray(crops, dtype=np.float32)
    offsets = _snap(np.asarray(offsets, dtype=np.float32))
    if not np.any(offsets):
        return crops
    return _shift_stack(crops, offsets)


def shift_map(image: np.ndarray, offset: tuple[float, float] | np.ndarray | None) -> np.ndarray:
    """Move a reference-coordinate map (e.g. the matte, [h, w]) into a crop with ``offset``."""
    if offset is None:
        return image
    off = _snap(np.asarray(offset, dtype=np.float32).reshape(1, 2))
    if not np.any(off):
        return image
    return _shift_stack(image[None], -off)[0]


def pool_crops(groups: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Stack the crops of several mark positions into one set for a single estimate.

    Why: the same mark at another position sees unrelated backgrounds, which is what the estimate
    needs (one position's slowly panning background gives few independent frames; pooling gave
    +1 to +5 dB in bench/quality.py). Each group [n_i, h_i, w_i, 3] is centre-cropped to the
    smallest h and w; returns (crops [sum n_i, h, w, 3], per group the (top, left) trim), so the
    pooled crop k of group g is ``group_g[k][top:top + h, left:left + w]``. ``register`` (called by
    ``estimate_matte``) absorbs the remaining shifts of the mark between groups.
    """
    groups = [np.asarray(g) for g in groups if len(g)]
    if not groups:
        raise ValueError("no crops to pool")
    for g in groups:
        if g.ndim != 4 or g.shape[-1] != 3:
            raise ValueError(f"each group must be [n, h, w, 3], got {g.shape}")
    h = min(g.shape[1] for g in groups)
    w = min(g.shape[2] for g in groups)
    trims = [((g.shape[1] - h) // 2, (g.shape[2] - w) // 2) for g in groups]
    pooled = np.concatenate([g[:, t : t + h, l : l + w] for g, (t, l) in zip(groups, trims)])
    return pooled, trims


@dataclass(frozen=True)
class GroupMatte:
    """The estimate one group of crops (one mark position) uses, and where its crops sit in it.

    Crop ``k`` of the group is ``estimate``'s frame ``start + k`` (its ``offsets``, ``residual``,
    ``frame_opacity``); in matte coordinates it is ``crop[top:top + h, left:left + w]`` with
    ``(top, left) = trim`` and ``(h, w) = estimate.alpha.shape``. ``scope`` is ``"pool"`` (shared
    with other positions) or ``"position"`` (its own).
    """

    estimate: MatteEstimate
    start: int
    trim: tuple[int, int]
    scope: str


def estimate_groups(groups: list[np.ndarray], references: list[dict[int, np.ndarray]] | None = None,
                    **kwargs) -> list[GroupMatte | None]:
    """One matte for the crops of all of a mark's positions, with a guard for positions that disagree.

    Why pool: one position sees one slowly panning background (1-4 independent frames); the same
    mark at its other positions sees unrelated backgrounds (bench/README.md: +1 to +5 dB).
    The guard: a position leaves the pool and uses its own estimate when that is reliable and the
    pooled one is unreliable, or does not fit the position's crops (their median residual above
    the pool's per-frame limit: most of its frames would be box-inpainted); the pool is then
    re-estimated from the positions left. (A relative test - pooled residual > 1.5x the
    position's own - split positions the pool fitted well: an estimate always fits its own crops
    best; -1.6 / -0.9 dB on held-out clips.) Own estimates are only computed when the pool is in
    doubt, so the usual cost is one estimate. Groups with fewer than 2 crops get None.
    ``references[i]`` are group ``i``'s clean references (see ``estimate_matte``), by crop index.
    ``kwargs`` go to ``estimate_matte``; it raises ValueError for crops too small for a matte.
    """
    refs = references or [{} for _ in groups]
    out: list[GroupMatte | None] = [None] * len(groups)
    live = [i for i, g in enumerate(groups) if len(g) >= 2]

    def estimate(members: list[int], scope: str) -> None:
        crops, trims = pool_crops([np.asarray(groups[i]) for i in members])
        pooled_refs, start = {}, 0
        for i, (top, left) in zip(members, trims):
            hh, ww = crops.shape[1:3]
            pooled_refs.update({start + k: np.asarray(r)[top : top + hh, left : left + ww]
                                for k, r in refs[i].items()})
            start += len(groups[i])
        est = estimate_matte(crops, references=pooled_refs or None, **kwargs)
        start = 0
        for i, trim in zip(members, trims):
            out[i] = GroupMatte(est, start, (int(trim[0]), int(trim[1])), scope)
            start += len(groups[i])

    if not live:
        return out
    estimate(live, "pool" if len(live) > 1 else "position")
    if len(live) < 2:
        return out
    pooled = out[live[0]].estimate
    keep: list[int] = []
    split = False
    for i in live:
        part = out[i]
        n = len(groups[i])
        mine = pooled.reference_index[(pooled.reference_index >= part.start)
                                      & (pooled.reference_index < part.start + n)]
        pooled_res = _fit_residual(pooled.residual[part.start : part.start + n], mine - part.start)
        if pooled.reliable and pooled_res <= pooled.max_residual:
            keep.append(i)
            continue
        own = estimate_matte(np.asarray(groups[i]), references=refs[i] or None, **kwargs)
        own_res = _fit_residual(own.residual, own.reference_index)
        LOGGER.info("matte pool check: position %d, %d crops, pooled residual %.3f, own %.3f (%s)",
                    i, n, pooled_res, own_res, "reliable" if own.reliable else own.reason)
        if own.reliable and own_res <= own.max_residual:
            out[i] = GroupMatte(own, 0, (0, 0), "position")
            split = True
        else:
            keep.append(i)
    if split and keep:
        estimate(keep, "pool" if len(keep) > 1 else "position")
    return out


# --------------------------------------------------------------------------- estimation


def _sum_fc(a: np.ndarray) -> np.ndarray:
    """Sum of [N, 3, h, w] over frames and channels (contiguous, so fast)."""
    return a.reshape(-1, a.shape[-2], a.shape[-1]).sum(axis=0)


def _solve_alpha(d: np.ndarray, g: np.ndarray, opacity: np.ndarray, ridge: float,
                 weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel least squares of ``d = alpha * o_t * g`` over frames and channels -> (alpha, se).

    ``d = observed - background`` and ``g = W - background``, both [N, 3, h, w]; ``weight`` [N]
    or [N, h, w] weighs frames (a known background counts more than a guessed one).
    """
    og = g * opacity[:, None, None, None]
    if weight is None:
        wog = og
    else:
        wog = og * (weight[:, None, None, None] if weight.ndim == 1 else weight[:, None])
    den = _sum_fc(wog * og)
    alpha = _sum_fc(d * wog) / (den + ridge)
    resid = d - alpha * og
    if weight is None:
        dof = max(1, d.shape[0] * d.shape[1] - 1)
        se = np.sqrt(_sum_fc(resid * resid) / dof / (den + ridge))
    else:  # the weights are independent-sample equivalents: they set the degrees of freedom
        wt = weight[:, None, None, None] if weight.ndim == 1 else weight[:, None]
        total = weight.sum(0) if weight.ndim == 3 else float(weight.sum())
        dof = np.maximum(1.0, np.asarray(total) * d.shape[1] - 1)
        se = np.sqrt(_sum_fc(resid * resid * wt) / dof / (den + ridge))
    return alpha.astype(np.float32), se.astype(np.float32)


def _to_planes(x: np.ndarray) -> np.ndarray:
    """uint8/float [N, h, w, 3] -> float32 [N, 3, h, w] (channel planes are contiguous)."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 3, 1, 2))


def _fill_frames(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return _fill(x.reshape(n * c, h, w), known).reshape(n, c, h, w)


def _als(x, bg, wcol, opacity, alpha, *, fit_color: bool, rounds: int, ridge: float, weight=None):
    """Alternating least squares of alpha / (W) / per-frame opacity on one background guess.

    Returns (alpha, se, W, opacity) with the opacities normalised to a median of 1.
    """
    d = x - bg
    wcol = wcol.copy()
    se = np.ones_like(alpha)
    for _ in range(max(1, rounds)):
        prev_alpha = alpha
        g = wcol[None, :, None, None] - bg
        alpha, se = _solve_alpha(d, g, opacity, ridge, weight)
        alpha = np.clip(alpha, 0.0, 1.5)
        core = alpha > 0.2
        if not core.any():
            break
        if fit_color:
            # J - (1 - a) B = a W, per channel over the mark's core pixels.
            a_c = alpha[core][None, None, :] * opacity[:, None, None]  # [N, 1, K]
            target = x[:, :, core] - (1 - a_c) * bg[:, :, core]
            wcol = np.clip((a_c * target).sum(axis=(0, 2)) / max(float((a_c * a_c).sum()), 1e-6),
                           0, 255).astype(np.float32)
            g = wcol[None, :, None, None] - bg
        ag = alpha[core][None, None, :] * g[:, :, core]  # [N, 3, K]
        opacity = (d[:, :, core] * ag).sum(axis=(1, 2)) / np.maximum((ag * ag).sum(axis=(1, 2)), 1e-6)
        opacity = np.clip(opacity, 0.0, None).astype(np.float32)
        med = float(np.median(opacity))
        if med <= 1e-3:
            break
        opacity /= med
        alpha = alpha * med
        se = se * med
        if np.abs(alpha - prev_alpha).max() < 2e-3:
            break
    return alpha.astype(np.float32), se.astype(np.float32), wcol, opacity


def _reference_backgrounds(crops, offsets, references, support, alpha, wcol):
    """Backgrounds of the crops that have a clean reference, moved onto them: (index, bg, valid).

    The reference (the same window in a frame where the mark is absent) is registered to the crop
    with a translation found on the pixels around the mark (``cv2.findTransformECC``), then aligned
    like the crop. A reference that fails to register, or that shows the mark itself (a faint fade
    the detector missed), is dropped.
    """
    import cv2  # the orchestrator's dependency (inpaint.py); imported here to keep the module light

    n, h, w = crops.shape[:3]
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    ring = ~_dilate(support, 2)
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    out_i, out_bg, out_valid = [], [], []
    for k, ref in references.items():
        if not 0 <= k < n or np.shape(ref) != crops.shape[1:]:
            continue
        ref = np.asarray(ref, np.float32)
        off = offsets[k]
        mask = shift_map(ring.astype(np.float32), off) > 0.5  # the ring in the crop's coordinates
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            cc, warp = cv2.findTransformECC(crops[k].astype(np.float32) @ luma, ref @ luma, warp,
                                            cv2.MOTION_TRANSLATION, crit, mask.astype(np.uint8), 3)
        except cv2.error:  # does not converge, typically on a flat background
            cc = 0.0
        if cc < 0.5 or np.abs(warp[:, 2]).max() > min(h, w) / 4:
            # No texture to register on: where the background is that flat, the motion hardly
            # matters - keep the reference unmoved if it matches the frame around the mark.
            warp = np.eye(2, 3, dtype=np.float32)
            if float(np.sqrt(((crops[k].astype(np.float32) - ref)[mask] ** 2).mean())) > REFERENCE_FLAT_RMS:
                continue
        moved = cv2.warpAffine(ref, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        inside = cv2.warpAffine(np.ones((h, w), np.float32), warp, (w, h), flags=cv2.INTER_LINEAR
                                | cv2.WARP_INVERSE_MAP, borderValue=0.0)
        bg = _to_planes(align(moved[None], off[None]))[0]
        valid = align(inside[None, ..., None].repeat(3, -1), off[None])[0, ..., 0] > 0.999
        # Does the reference itself show the mark? Fit its opacity on the current matte.
        ref_al = _to_planes(align(ref[None], off[None]))
        fill = _fill_frames(ref_al, ~support)
        core = support & (alpha > 0.05)
        if core.any():
            ag = alpha[core][None] * (wcol[:, None] - fill[0][:, core])
            o = float(((ref_al[0][:, core] - fill[0][:, core]) * ag).sum() / max(float((ag * ag).sum()), 1e-6))
            if o > REFERENCE_MAX_OPACITY:
                LOGGER.debug("matte reference for crop %d shows the mark (opacity %.2f): dropped", k, o)
                continue
        out_i.append(k)
        out_bg.append(bg)
        out_valid.append(valid)
    if not out_i:
        return np.zeros(0, np.int64), np.zeros((0, 3, h, w), np.float32), np.zeros((0, h, w), bool)
    return np.asarray(out_i), np.stack(out_bg), np.stack(out_valid)


def _fill_weights(x, fill, ref_idx, ref_bg, ref_valid, ref_share, support, n_eff) -> np.ndarray:
    """Per-frame weights [N, h, w] in independent-sample equivalents for the alpha fit.

    A reference image counts as one sample, shared by the ``ref_share`` crops it serves (their
    backgrounds are the same sample). A guessed frame gets ``e_ref / (e_ref + e_fill)`` times
    ``n_eff / N``: ``e_fill`` is how far the fill is from the references under the mark (mean
    square, over all of it: per pixel it would be one background's accident), ``e_ref`` how far a
    reference is from its frame around the mark anyway (noise, registration), and N guessed frames
    are worth ``n_eff`` independent ones (the fill errors of neighbouring frames are alike). On
    photos the fill is far off (e_fill 100-400 vs e_ref 7-40 on bench/quality.py clips) and the
    references decide.
    """
    n, _, h, w = x.shape
    valid = ref_valid & support[None]
    err = ((fill[ref_idx] - ref_bg) ** 2).mean(1)  # [K, h, w]
    ring = ref_valid & ~_dilate(support, 2)[None]
    e_ref = float(((x[ref_idx] - ref_bg) ** 2).mean(1)[ring].mean()) if ring.any() else 4.0
    e_ref = max(e_ref, 1.0)
    e_fill = float(np.median(err[valid])) if valid.any() else 0.0
    guessed = (max(1.0, n_eff) / n) * e_ref / (e_ref + e_fill)
    weight = np.full((n, h, w), guessed, np.float32)
    weight[ref_idx] = np.where(ref_valid, 1.0 / ref_share[:, None, None], guessed)
    return weight


def _consistent(x, ref_idx, ref_bg, ref_valid, alpha, wcol, opacity) -> np.ndarray:
    """``ref_valid`` without the pixels the blend model cannot explain with the reference there:
    something moved between the reference and the frame (an object, not the camera)."""
    a = np.clip(alpha[None] * opacity[ref_idx, None, None], 0.0, 1.0)[:, None]
    r = np.abs(x[ref_idx] - a * wcol[None, :, None, None] - (1.0 - a) * ref_bg).mean(1)  # [K, h, w]
    return ref_valid & ~_dilate(r > REFERENCE_MAX_ERROR, 2)


def estimate_matte(
    crops: np.ndarray,
    *,
    offsets: np.ndarray | None = None,
    register_crops: bool = True,
    color: np.ndarray | tuple[float, float, float] | None = None,
    min_frames: int = 8,
    alpha_threshold: float = 0.9,
    max_residual: float = 0.75,
    min_background_motion: float = 1.0,
    iterations: int = 6,
    inner_rounds: int = 8,
    references: dict[int, np.ndarray] | None = None,
) -> MatteEstimate:
    """Estimate the mark's matte from its crops over many frames (uint8 [N, h, w, 3]).

    Model per pixel and frame: ``crop = a*W + (1 - a)*B`` with ``a = alpha * o_t``. The background
    ``B`` under the mark is guessed by a smooth fill from the pixels around the mark (first from
    the crop border, then from everything outside the current matte's support, so the guess gets
    better as the matte sharpens); alpha, the colour W and the opacities o_t are then solved by
    alternating least squares. Fill errors differ from frame to frame because the background
    moves, so they average out over the frames while the mark does not.

    ``offsets`` (from ``register``) or ``register_crops=True`` align jittered crops first; the
    returned ``offsets`` are what ``remove_with_matte``/``fit_opacity`` need per crop. ``color``
    fixes W (e.g. white) instead of estimating it. ``references`` maps a crop's index to a clean
    crop of the same window from a nearby frame where the mark is absent (just before it arrived or
    after it left): that crop's background is then known instead of guessed, which removes the
    fill's bias (the Sora mark leaves every position every few seconds, so each visit has two).
    The result is ``reliable=False`` with a reason
    when there are too few frames, the background never moves, no consistent mark is found, or
    the fixed matte does not explain the frames (residual too high).
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be [N, h, w, 3], got {crops.shape}")
    n, h, w, _ = crops.shape
    if h < 8 or w < 8:
        raise ValueError(f"crops too small for a matte: {h}x{w}")

    def unreliable(reason: str, offs: np.ndarray | None = None) -> MatteEstimate:
        LOGGER.info("matte estimate unreliable: %s", reason)
        return MatteEstimate(
            alpha=np.zeros((h, w), np.float32), color=WHITE.copy(),
            frame_opacity=np.zeros(n, np.float32), residual=np.full(n, np.inf, np.float32),
            reliable=False, reason=reason, alpha_threshold=alpha_threshold,
            max_residual=max_residual,
            offsets=offs if offs is not None else np.zeros((n, 2), np.float32),
            support=np.zeros((h, w), bool),
        )

    if n < min_frames:
        return unreliable(f"too few frames ({n} < {min_frames})")

    if offsets is None:
        offsets = register(crops) if register_crops else np.zeros((n, 2), np.float32)
    offsets = _snap(np.asarray(offsets, dtype=np.float32).reshape(n, 2))
    x = _to_planes(align(crops, offsets))  # [N, 3, h, w]

    border = np.zeros((h, w), bool)
    border[:2] = border[-2:] = True
    border[:, :2] = border[:, -2:] = True
    # Does the background move at all? With a static background the mark cannot be separated.
    motion = float(np.median(x[:, :, border].std(axis=0)))
    if motion < min_background_motion:
        return unreliable(f"the background does not change under the mark (motion {motion:.1f} < "
                          f"{min_background_motion})", offsets)

    fixed_color = color is not None
    wcol = np.asarray(color if fixed_color else WHITE, dtype=np.float32).reshape(3)
    opacity = np.ones(n, np.float32)
    known = border
    ridge = 100.0 * n  # pulls alpha to 0 where the background never differs from W
    alpha = np.zeros((h, w), np.float32)
    se = np.ones((h, w), np.float32)
    support = np.zeros((h, w), bool)
    ref_idx = np.zeros(0, np.int64)
    weight = None

    def background(fill: np.ndarray) -> np.ndarray:
        """The fill, with the referenced crops' backgrounds replaced where their reference is valid."""
        if not ref_idx.size:
            return fill
        bg = fill.copy()
        bg[ref_idx] = np.where(ref_valid[:, None], ref_bg, fill[ref_idx])
        return bg

    for it in range(max(1, iterations)):
        fill = _fill_frames(x, known)
        if it == 1 and references and support.any():
            ref_idx, ref_bg, ref_valid = _reference_backgrounds(crops, offsets, references, support,
                                                                alpha, wcol)
            # crops served by the same reference image (by content: callers pass copies or views)
            used = [hash(np.ascontiguousarray(references[int(k)]).tobytes()) for k in ref_idx]
            ref_share = np.array([used.count(u) for u in used], np.float32)
            if ref_idx.size:
                n_eff0 = _effective_frames(x, bg, alpha, wcol, opacity, support)
                weight = _fill_weights(x, fill, ref_idx, ref_bg, ref_valid, ref_share, support, n_eff0)
                ridge = 100.0 * float(weight.mean(axis=(1, 2)).sum())
                LOGGER.debug("matte: %d of %d references usable", ref_idx.size, len(references))
        bg = background(fill)
        alpha, se, _, opacity = _als(x, bg, wcol, opacity, alpha, fit_color=False, rounds=inner_rounds,
                                     ridge=ridge, weight=weight)
        if ref_idx.size:  # drop what moved between a reference and its frame, re-weigh
            ref_valid = _consistent(x, ref_idx, ref_bg, ref_valid, alpha, wcol, opacity)
            weight = _fill_weights(x, fill, ref_idx, ref_bg, ref_valid, ref_share, support, n_eff0)
        significant = (alpha > 0.02) & (alpha > 3.0 * se)
        new_support = _dilate(significant, 2) & ~border
        if not new_support.any():
            break
        if it >= 2:
            new_support |= support  # only grow from here on: stops pixels flipping in and out
        changed = int(np.count_nonzero(new_support != support))
        LOGGER.debug("matte pass %d: support %d px, %d changed", it, int(new_support.sum()), changed)
        support = new_support
        known = ~support
        if it > 0 and changed <= max(2, 0.01 * int(support.sum())):
            break  # the background guess would hardly change

    frac = float(support.mean())
    if alpha.max() < 0.05 or frac < 0.002:
        return unreliable("no consistent mark found in the crops", offsets)
    if frac > 0.9:
        return unreliable("the mark covers the whole crop: no background around it to compare with", offsets)

    if not np.array_equal(known, ~support):
        known = ~support
        bg = background(_fill_frames(x, known))
        alpha, se, _, opacity = _als(x, bg, wcol, opacity, alpha, fit_color=False, rounds=inner_rounds,
                                     ridge=ridge, weight=weight)
    if not fixed_color:
        # alpha and W trade off against each other when the backgrounds have similar colours:
        # keep white (the Sora mark's colour) unless a fitted colour explains the frames clearly better.
        cand = _als(x, bg, wcol, opacity, alpha, fit_color=True, rounds=2 * inner_rounds, ridge=ridge,
                    weight=weight)
        res_white = float(np.median(_residuals(x, bg, alpha, wcol, opacity, support)))
        res_fit = float(np.median(_residuals(x, bg, cand[0], cand[2], cand[3], support)))
        LOGGER.debug("matte colour: white residual %.3f, fitted %s residual %.3f", res_white, cand[2], res_fit)
        if res_fit < 0.8 * res_white:
            alpha, se, wcol, opacity = cand
    # Zero the matte where it is not significant. Slowly moving backgrounds make the fill errors of
    # neighbouring frames alike, so the per-pixel standard error is scaled by the effective number
    # of independent frames (lag-1 autocorrelation of the fit residuals).
    n_eff = _effective_frames(x, bg, alpha, wcol, opacity, support)
    # (with references the weights already count the guessed frames as n_eff independent ones)
    se_eff = se if weight is not None else se * np.sqrt(n / n_eff)
    keep = (alpha > 2.0 * se_eff) | (alpha > 0.1)
    alpha = np.clip(np.where(_dilate(keep & (alpha > 3.0 * se), 1), alpha, 0.0), 0.0, 1.0).astype(np.float32)

    opacity, opacity_noise = _regularise_opacity(opacity)
    residual = _residuals(x, bg, alpha, wcol, opacity, support)
    med_res = float(np.median(residual))
    # Whether the fixed matte fits: judged on the frames with a clean reference when there are a
    # few (their residual is the model's own misfit; elsewhere the fill's error dominates it).
    fit_res = _fit_residual(residual, ref_idx)
    reliable, reason = True, "ok"
    if fit_res > max_residual:
        reliable = False
        reason = f"the fixed matte does not fit the frames (median residual {fit_res:.2f} > {max_residual})"
    # Per-frame limit: the residual's floor is set by the background guess (high on fine textures
    # under a faint mark), so a frame is a misfit when it stands out from the others.
    frame_limit = float(min(1.0, max(max_residual, 1.5 * med_res)))
    LOGGER.debug("matte: %d frames, alpha max %.2f, W %s, median residual %.3f", n, alpha.max(), wcol, med_res)
    return MatteEstimate(
        alpha=alpha, color=wcol.astype(np.float32), frame_opacity=opacity.astype(np.float32),
        residual=residual.astype(np.float32), reliable=reliable, reason=reason,
        alpha_threshold=alpha_threshold, max_residual=frame_limit, offsets=offsets, support=support,
        opacity_noise=opacity_noise, effective_frames=float(n_eff),
        alpha_se=np.where(alpha > 0, np.minimum(se_eff, 0.5), 0.0).astype(np.float32),
        reference_index=ref_idx.astype(np.int64),
    )


# Frames with a clean reference needed before the fit is judged on them alone.
MIN_FIT_REFERENCES = 3


def _fit_residual(residual: np.ndarray, ref_idx: np.ndarray) -> float:
    """Median misfit, over the frames with a clean reference when there are enough of them."""
    if ref_idx.size >= MIN_FIT_REFERENCES:
        return float(np.median(residual[ref_idx]))
    return float(np.median(residual)) if residual.size else float("inf")


def _effective_frames(x, bg, alpha, wcol, opacity, support) -> float:
    """Independent frames among N, from the lag-1 autocorrelation of the fit residuals over time."""
    n = x.shape[0]
    if n < 3 or not support.any():
        return float(max(1, n))
    b = bg[:, :, support]
    r = (x[:, :, support] - b) - alpha[support][None, None, :] * opacity[:, None, None] * (wcol[None, :, None] - b)
    r = r - r.mean(axis=0, keepdims=True)
    rho = float((r[1:] * r[:-1]).sum() / max(float((r * r).sum()), 1e-6))
    rho = min(max(rho, 0.0), 0.99)
    return float(np.clip(n * (1 - rho) / (1 + rho), 1.0, n))


def _regularise_opacity(opacity: np.ndarray) -> tuple[np.ndarray, float]:
    """Keep only opacity changes that stand out of the fit's noise; returns (opacity, noise).

    Why: per-frame opacities fitted against a guessed background scatter by a few percent even
    when the mark's opacity is constant, and inverting with that scatter costs 1-1.5 dB and adds
    flicker. Real changes (fades around the mark's jumps) are much larger than the scatter.
    """
    dev = opacity - 1.0
    noise = max(0.01, 1.4826 * float(np.median(np.abs(dev))))
    out = np.where(np.abs(dev) > 3.0 * noise, opacity, 1.0).astype(np.float32)
    return out, noise


def _residuals(x, bg, alpha, wcol, opacity, support) -> np.ndarray:
    """Per-frame misfit ||J - B - a(W - B)|| relative to the full-visibility mark ||alpha(W - B)||.

    ``x``, ``bg`` [N, 3, h, w]. Normalised by the mark at full opacity so that faded frames
    (nothing to remove) do not count as misfits; background-guess errors set its floor (about
    0.1-0.3 on textured backgrounds).
    """
    sel = support & (alpha > 0.05)
    if not sel.any():
        return np.zeros(x.shape[0], np.float32)
    b = bg[:, :, sel]
    g = wcol[None, :, None] - b
    a = alpha[sel][None, None, :]
    r = (x[:, :, sel] - b) - a * opacity[:, None, None] * g
    num = (r * r).sum(axis=(1, 2))
    den = ((a * g) ** 2).sum(axis=(1, 2))
    return np.sqrt(num / np.maximum(den, 1e-6)).astype(np.float32)


def fit_opacity(crop: np.ndarray, estimate: MatteEstimate, *, offset=None) -> tuple[float, float]:
    """Least-squares opacity of one frame's crop on the fixed matte, and its residual.

    Lets the pipeline handle frames that were not part of the estimate (or re-check any frame):
    a residual above ``estimate.max_residual`` means the frame should go to the inpainter.
    """
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[-1] != 3 or crop.shape[:2] != estimate.alpha.shape:
        raise ValueError(f"crop must be [h, w, 3] with the matte's size {estimate.alpha.shape}, got {crop.shape}")
    alpha = shift_map(estimate.alpha, offset)
    support = estimate.support if estimate.support is not None else estimate.alpha > 0.02
    support = shift_map(support.astype(np.float32), offset) > 0.5
    if not support.any():
        return 0.0, 0.0
    x = _to_planes(crop[None])
    bg = _fill_frames(x, ~support)
    g = estimate.color[None, :, None, None] - bg
    core = alpha > 0.2
    if not core.any():
        core = support
    ag = alpha[core][None, None, :] * g[:, :, core]
    d = (x - bg)[:, :, core]
    o = max(0.0, float((d * ag).sum() / max(float((ag * ag).sum()), 1e-6)))
    if abs(o - 1.0) <= 3.0 * estimate.opacity_noise:
        o = 1.0
    res = _residuals(x, bg, alpha, estimate.color, np.array([o], np.float32), support)
    return o, float(res[0])


def _box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of the last two axes (edges replicated), via integral images."""
    k = 2 * r + 1
    c = _pad_edge(x, r).cumsum(-2).cumsum(-1)
    c = np.concatenate([np.zeros_like(c[..., :1, :]), c], axis=-2)
    c = np.concatenate([np.zeros_like(c[..., :, :1]), c], axis=-1)
    return (c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]) / float(k * k)


# BT.601 full-range RGB -> Y, Cb, Cr (centred). Any fixed linear split into luma and chroma works:
# it only has to separate what the codec keeps at full resolution from what it subsamples.
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_YCC_INV = np.linalg.inv(_YCC).astype(np.float32)
# Chroma in 4:2:0 video is averaged over 2x2 and interpolated back: it sees a blurred matte.
_CHROMA_KERNEL = np.array([1, 4, 6, 4, 1], np.float32) / 16.0


def _hf_energy(img: np.ndarray) -> np.ndarray:
    """Per-pixel high-pass energy of [h, w, 3]: (pixel - its 3x3 mean)^2, averaged over channels."""
    planes = np.ascontiguousarray(img.transpose(2, 0, 1))
    hf = planes - _box_mean(planes, 1)
    return (hf * hf).mean(0)


def _excess_noise(x, restored, marked, support, gain) -> float:
    """Coding-noise variance (before the inversion gain) that the inversion shows beyond the texture
    of the background around the mark (a ring outside ``support``); 0 when it shows none."""
    ring = _dilate(support, RING_PX) & ~support
    if ring.sum() < 16 or marked.sum() < 16:
        return 0.0
    e_ring = float(_hf_energy(x)[ring].mean())
    e_rest = _hf_energy(restored)[marked]
    g2 = gain[marked] ** 2
    return max(0.0, float((e_rest - e_ring).sum() / g2.sum()) / NOISE_HF_FRACTION)


def _blur(a: np.ndarray, kernel: np.ndarray = _CHROMA_KERNEL) -> np.ndarray:
    r = len(kernel) // 2
    h, w = a.shape
    p = _pad_edge(a, r)
    rows = sum(k * p[j : j + h, :] for j, k in enumerate(kernel))
    return sum(k * rows[:, j : j + w] for j, k in enumerate(kernel)).astype(np.float32)


def _invert_ycc(x: np.ndarray, a: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Invert the blend in luma/chroma: luma with the matte, chroma with the matte as 4:2:0 saw it.

    Why: per-RGB inversion of a thin white stroke over a saturated background leaves coloured
    fringes (about 4 dB lost on a red background), because the codec stored the stroke's colour at
    half resolution.
    """
    ycc = x @ _YCC.T
    wycc = _YCC @ np.asarray(color, np.float32)
    ac = np.minimum(_blur(a), 0.98)
    out = np.empty_like(ycc)
    out[..., 0] = (ycc[..., 0] - a * wycc[0]) / (1.0 - a)
    out[..., 1:] = (ycc[..., 1:] - ac[..., None] * wycc[1:]) / (1.0 - ac[..., None])
    return out @ _YCC_INV.T


def remove_with_matte(
    crop: np.ndarray,
    estimate: MatteEstimate,
    frame_opacity: float | None = None,
    *,
    offset=None,
    dilate: int = 1,
    noise_sigma: float | None = 2.0,
    chroma_subsampled: bool = True,
    hole_variance: float | None = HOLE_VARIANCE,
    estimate_noise: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Invert the blend on one crop: ``background = (observed - a*W) / (1 - a)``, a = alpha*opacity.

    Returns ``(restored uint8 [h, w, 3], hole bool [h, w])``. ``hole`` marks the pixels where ``a``
    exceeds ``estimate.alpha_threshold``, or exceeds ``HOLE_ALPHA_MIN`` and the inversion's expected
    error variance (coding noise and matte error times ``1/(1 - a)``, against the local background
    colour) exceeds ``hole_variance`` (None: the threshold alone), dilated by ``dilate`` px: the
    caller sends exactly those pixels to the inpainter (the matte, not the box, is the mask). Restored pixels inside ``hole`` are left as observed. ``frame_opacity`` defaults to 1
    (the median frame); ``offset`` is the crop's registration offset.

    Inversion multiplies the video's coding noise by ``1/(1 - a)`` and the matte's error by
    ``(W - B)/(1 - a)``. Where the background under the mark is flat, a smooth fill from around the
    mark is closer to the truth than that, so each pixel is a Wiener blend of the inversion and
    the fill, weighted by the texture the inversion shows against its expected error
    (``noise_sigma`` = coding noise in grey levels; ``None`` = plain inversion). The coding noise
    is larger next to the mark's sharp strokes than elsewhere (x264 spends its error on edges): with
    ``estimate_noise`` the noise variance is raised to what the inversion shows beyond the texture
    of a ring around the mark (``_excess_noise``) - on a flat background that is the amplified
    noise itself, so the blend leans on the fill there (+2.7 dB on the flat red clip, bench/README.md).
    ``chroma_subsampled`` (4:2:0 video, the usual case) inverts chroma with the matte as the
    codec's half-resolution chroma saw it; False for 4:4:4 / RGB sources.
    """
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[-1] != 3 or crop.shape[:2] != estimate.alpha.shape:
        raise ValueError(f"crop must be [h, w, 3] with the matte's size {estimate.alpha.shape}, got {crop.shape}")
    o = 1.0 if frame_opacity is None else max(0.0, float(frame_opacity))
    alpha = shift_map(estimate.alpha, offset)
    se = estimate.alpha_se if estimate.alpha_se is not None else np.zeros_like(alpha)
    se = np.sqrt(shift_map(se, offset) ** 2 + MODEL_ALPHA_ERROR**2)
    if estimate.alpha_shrink > 0:
        # Wiener shrinkage of the matte towards 0 where it is not well above its error: a faint,
        # noisy alpha subtracts the estimate's error times (W - B) from every frame.
        s2 = (estimate.alpha_shrink * se) ** 2
        alpha = alpha * (alpha * alpha / np.maximum(alpha * alpha + s2, 1e-12))
    a = np.clip(alpha * o, 0.0, 1.0)
    se = se * o
    x = crop.astype(np.float32)
    support = a > 0.005
    if estimate.support is not None:
        support |= shift_map(estimate.support.astype(np.float32), offset) > 0.5
    blend = noise_sigma is not None and bool(support.any())
    fill = None
    if blend:
        fill = _fill(np.ascontiguousarray(x.transpose(2, 0, 1)), ~support).transpose(1, 2, 0)
    core = a > estimate.alpha_threshold
    if fill is not None and hole_variance is not None:
        gain0 = 1.0 / np.maximum(1.0 - a, 1e-3)
        # With clean references the matte's error under semi-transparent strokes is mostly the
        # codec's noise, which the standard error (few independent samples) overstates: below
        # HOLE_SE_FREE_ALPHA the hole test then uses the coding noise alone (bench/quality.py flat
        # clip: +4.5 dB; the blend still uses se). Near-opaque edges keep it (+1 dB end to end).
        se_hole = se[..., None]
        if estimate.references:
            se_hole = np.where(a[..., None] < HOLE_SE_FREE_ALPHA, 0.0, se_hole)
        var0 = (noise_sigma**2 + (se_hole * (estimate.color - fill)) ** 2).mean(-1) * gain0**2
        core |= (a > min(HOLE_ALPHA_MIN, estimate.alpha_threshold)) & (var0 > hole_variance)
    hole = _dilate(core, dilate) if dilate else core
    a_inv = np.where(hole, 0.0, a)
    if chroma_subsampled:
        restored = _invert_ycc(x, a_inv, estimate.color)
    else:
        restored = (x - a_inv[..., None] * estimate.color) / (1.0 - a_inv[..., None])
    a_inv = a_inv[..., None]
    # The blend covers the mark's whole support (not only a > 0): x264's noise from the strokes
    # spills into their neighbours, and on a flat background the fill is closer there too.
    marked = support & ~hole
    if blend and marked.any():
        if (hole & ~support).any():  # the dilated hole reached outside: fill around it as well
            support = support | hole
            fill = _fill(np.ascontiguousarray(x.transpose(2, 0, 1)), ~support).transpose(1, 2, 0)
        gain = 1.0 / (1.0 - a_inv[..., 0])
        sigma2 = noise_sigma**2
        if estimate_noise:
            sigma2 = max(sigma2, _excess_noise(x, restored, marked, support, gain))
        var_inv = (sigma2 + (se[..., None] * (estimate.color - fill)) ** 2).mean(-1) * gain**2
        diff = restored - fill
        local = _box_mean((diff * diff).mean(-1), BLEND_RADIUS)
        signal = np.maximum(local - var_inv, 0.0)
        weight = (signal / np.maximum(signal + var_inv, 1e-6))[..., None]
        restored = np.where(marked[..., None], fill + weight * diff, restored)
    restored = np.where(hole[..., None], x, restored)
    return np.clip(np.rint(restored), 0, 255).astype(np.uint8), hole

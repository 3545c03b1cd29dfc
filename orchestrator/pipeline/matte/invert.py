"""Inversion: the background under the mark from one frame's crop and the estimated matte.

``background = (observed - a*W) / (1 - a)`` with ``a = alpha * opacity``. Inversion multiplies the
video's coding noise by ``1/(1 - a)`` and the matte's error by ``(W - B)/(1 - a)``, so each pixel is
a Wiener blend of the inversion and a smooth fill from around the mark, and the near-opaque core
(where the expected error is too large) becomes a hole for the inpainter.
"""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline.matte.estimate import MatteEstimate
from orchestrator.pipeline.matte.image import YCC, YCC_INV, blur, box_mean, dilate_mask, fill, fill_frames, \
    fill_rgb, hf_energy, to_planes
from orchestrator.pipeline.matte.refine import texture_prior
from orchestrator.pipeline.matte.params import PARAMS, MatteParams
from orchestrator.pipeline.matte.register import shift_map
from orchestrator.pipeline.matte.solve import residuals


def _check_crop(crop: np.ndarray, estimate: MatteEstimate) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[-1] != 3 or crop.shape[:2] != estimate.alpha.shape:
        raise ValueError(f"crop must be [h, w, 3] with the matte's size {estimate.alpha.shape}, got {crop.shape}")
    return crop


def fit_opacity(crop: np.ndarray, estimate: MatteEstimate, *, offset=None) -> tuple[float, float]:
    """Least-squares opacity of one frame's crop on the fixed matte, and its residual.

    Lets the pipeline handle frames that were not part of the estimate (or re-check any frame):
    a residual above ``estimate.max_residual`` means the frame should go to the inpainter.
    """
    crop = _check_crop(crop, estimate)
    alpha = shift_map(estimate.alpha, offset)
    support = estimate.support if estimate.support is not None else estimate.alpha > 0.02
    support = shift_map(support.astype(np.float32), offset) > 0.5
    if not support.any():
        return 0.0, 0.0
    x = to_planes(crop[None])
    bg = fill_frames(x, ~support)
    color = estimate.color_at(offset)
    g = (color[None, :, None, None] if color.ndim == 1 else color.transpose(2, 0, 1)[None]) - bg
    core = alpha > 0.2
    if not core.any():
        core = support
    ag = alpha[core][None, None, :] * g[:, :, core]
    d = (x - bg)[:, :, core]
    o = max(0.0, float((d * ag).sum() / max(float((ag * ag).sum()), 1e-6)))
    if abs(o - 1.0) <= 3.0 * estimate.opacity_noise:
        o = 1.0
    res = residuals(x, bg, alpha, color, np.array([o], np.float32), support)
    return o, float(res[0])


def remove_with_matte(
    crop: np.ndarray,
    estimate: MatteEstimate,
    frame_opacity: float | None = None,
    *,
    offset=None,
    dilate: int = 1,
    noise_sigma: float | None = 2.0,
    chroma_subsampled: bool = True,
    hole_variance: float | None = PARAMS.hole_variance,
    estimate_noise: bool = True,
    params: MatteParams = PARAMS,
) -> tuple[np.ndarray, np.ndarray]:
    """Invert the blend on one crop; returns ``(restored uint8 [h, w, 3], hole bool [h, w])``.

    ``hole``: pixels where ``a`` exceeds ``estimate.alpha_threshold``, or exceeds
    ``hole_alpha_min`` and the inversion's expected error variance exceeds ``hole_variance``
    (None: the threshold alone), dilated by ``dilate`` px; the caller sends exactly those pixels to
    the inpainter (the matte, not the box, is the mask); they are left as observed.
    ``frame_opacity`` defaults to 1 (the median frame); ``offset`` is the crop's registration
    offset. ``noise_sigma`` is the coding noise in grey levels for the Wiener blend (None: plain
    inversion); ``estimate_noise`` raises it to what the inversion shows beyond the texture of a
    ring around the mark (x264 spends its error on the mark's sharp strokes).
    ``chroma_subsampled`` (4:2:0 video) inverts chroma with the matte as the codec's
    half-resolution chroma saw it; False for 4:4:4 / RGB sources.
    """
    crop = _check_crop(crop, estimate)
    o = 1.0 if frame_opacity is None else max(0.0, float(frame_opacity))
    alpha, se = _shrunk_alpha(estimate, offset)
    a = np.clip(alpha * o, 0.0, 1.0)
    se = se * o
    x = crop.astype(np.float32)
    color = estimate.color_at(offset)
    support = a > 0.005
    if estimate.support is not None:
        support |= shift_map(estimate.support.astype(np.float32), offset) > 0.5
    blend = noise_sigma is not None and bool(support.any())
    filled = fill_rgb(x, ~support) if blend else None
    hole = _hole(a, se, filled, color, estimate, offset, noise_sigma, hole_variance, dilate, params)
    a_inv = np.where(hole, 0.0, a)
    if chroma_subsampled:
        restored = _invert_ycc(x, a_inv, color)
    else:
        restored = (x - a_inv[..., None] * color) / (1.0 - a_inv[..., None])
    # The blend covers the mark's whole support (not only a > 0): x264's noise from the strokes
    # spills into their neighbours, and on a flat background the fill is closer there too.
    marked = support & ~hole
    if blend and marked.any():
        if (hole & ~support).any():  # the dilated hole reached outside: fill around it as well
            support = support | hole
            filled = fill_rgb(x, ~support)
        restored = _wiener_blend(x, restored, filled, a_inv, se, support, marked, color, noise_sigma,
                                 estimate_noise, params)
    restored = np.where(hole[..., None], x, restored)
    return np.clip(np.rint(restored), 0, 255).astype(np.uint8), hole


def invert_look(crop: np.ndarray, estimate: MatteEstimate, frame_opacity: float, *, offset=None,
                params: MatteParams = PARAMS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One crop's plain inversion as a look for temporal propagation: ``(value float32 [h, w, 3],
    gain2, matte_var)``; the error variance of ``value`` is ``sigma^2 * gain2 + matte_var`` for
    coding noise ``sigma``; NaN values where the matte cannot be inverted (opaque core, parts that
    change per frame)."""
    crop = _check_crop(crop, estimate)
    alpha, se = _shrunk_alpha(estimate, offset)
    o = max(0.0, float(frame_opacity))
    a = np.clip(alpha * o, 0.0, 1.0)
    color = estimate.color_at(offset)
    hole = _hole(a, se * o, None, color, estimate, offset, None, None, 1, params)
    a_inv = np.where(hole, 0.0, a)
    value = _invert_ycc(crop.astype(np.float32), a_inv, color)
    gain2 = 1.0 / np.maximum(1.0 - a_inv, 1e-3) ** 2
    matte_var = ((se[..., None] * o * (color - value)) ** 2).mean(-1) * gain2
    value[hole] = np.nan
    return value, gain2.astype(np.float32), matte_var.astype(np.float32)


def prior_blend(crop: np.ndarray, support: np.ndarray, value: np.ndarray, var: np.ndarray,
                params: MatteParams = PARAMS, smooth_texture: float = 0.0) -> np.ndarray:
    """Each pixel of ``value`` (error variance ``var``) pulled towards a smooth fill from around
    ``support`` by predicted errors alone (``blend="prior"``): float32 [h, w, 3].
    ``smooth_texture`` (grey levels^2): where the background's texture prior is below it, ``var``
    is scaled up by their ratio (see ``propagate.PropagateParams.smooth_texture``)."""
    x = np.asarray(crop, np.float32)
    filled = fill_rgb(x, ~support)
    tau2 = texture_prior(x, support, params.ring_px, fill)
    if smooth_texture > 0:
        var = var * np.maximum(1.0, smooth_texture / np.maximum(tau2, 1e-3))
    weight = tau2 / np.maximum(tau2 + var, 1e-6)
    return filled + weight[..., None] * (value - filled)


def _shrunk_alpha(estimate: MatteEstimate, offset) -> tuple[np.ndarray, np.ndarray]:
    """The matte and its standard error in the crop, alpha Wiener-shrunk towards 0 where it is not
    well above its error (a faint, noisy alpha subtracts its error times (W - B) from every frame)."""
    alpha = shift_map(estimate.alpha, offset)
    se = estimate.alpha_se if estimate.alpha_se is not None else np.zeros_like(alpha)
    se = shift_map(se, offset)
    if estimate.alpha_shrink > 0:
        s2 = (estimate.alpha_shrink * se) ** 2
        alpha = alpha * (alpha * alpha / np.maximum(alpha * alpha + s2, 1e-12))
    return alpha, se


def _hole(a, se, filled, color, estimate: MatteEstimate, offset, noise_sigma, hole_variance, dilate: int,
          params: MatteParams) -> np.ndarray:
    """The opaque core plus the pixels whose inversion would cost more than inpainting them."""
    core = a > estimate.alpha_threshold
    if filled is not None and hole_variance is not None:
        gain0 = 1.0 / np.maximum(1.0 - a, 1e-3)
        # With clean references the matte's error under semi-transparent strokes is mostly the
        # codec's noise, which the standard error (few independent samples) overstates: below
        # hole_se_free_alpha the hole test then uses the coding noise alone (the blend still uses se).
        se_hole = se[..., None]
        if estimate.references:
            se_hole = np.where(a[..., None] < params.hole_se_free_alpha, 0.0, se_hole)
        var0 = (noise_sigma**2 + (se_hole * (color - filled)) ** 2).mean(-1) * gain0**2
        core |= (a > min(params.hole_alpha_min, estimate.alpha_threshold)) & (var0 > hole_variance)
    if estimate.unstable is not None:  # parts that change from frame to frame: no one matte fits them
        core |= shift_map(estimate.unstable.astype(np.float32), offset) > 0.3
    return dilate_mask(core, dilate) if dilate else core


def _wiener_blend(x, restored, filled, a_inv, se, support, marked, color, noise_sigma, estimate_noise: bool,
                  params: MatteParams) -> np.ndarray:
    """Each marked pixel between the fill and the inversion, by the texture the inversion shows
    against its expected error (on a flat background the fill is closer than the amplified noise)."""
    gain = 1.0 / (1.0 - a_inv)
    sigma2 = noise_sigma**2
    if estimate_noise:
        sigma2 = max(sigma2, _excess_noise(x, restored, marked, support, gain, params))
    var_inv = (sigma2 + (se[..., None] * (color - filled)) ** 2).mean(-1) * gain**2
    diff = restored - filled
    if params.blend == "prior":
        # by predicted errors alone: the fill's (the texture around the mark) against the
        # inversion's; the inversion's own look is no evidence (its matte errors look like texture)
        tau2 = texture_prior(x, support, params.ring_px, fill)
        weight = tau2 / np.maximum(tau2 + var_inv, 1e-6)
    else:
        local = box_mean((diff * diff).mean(-1), params.blend_radius)
        signal = np.maximum(local - var_inv, 0.0)
        weight = signal / np.maximum(signal + var_inv, 1e-6)
    return np.where(marked[..., None], filled + weight[..., None] * diff, restored)


def _excess_noise(x, restored, marked, support, gain, params: MatteParams) -> float:
    """Coding-noise variance (before the inversion gain) that the inversion shows beyond the texture
    of the background around the mark (a ring outside ``support``); 0 when it shows none."""
    ring = dilate_mask(support, params.ring_px) & ~support
    if ring.sum() < 16 or marked.sum() < 16:
        return 0.0
    e_ring = float(hf_energy(x)[ring].mean())
    e_rest = hf_energy(restored)[marked]
    g2 = gain[marked] ** 2
    return max(0.0, float((e_rest - e_ring).sum() / g2.sum()) / params.noise_hf_fraction)


def _invert_ycc(x: np.ndarray, a: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Invert the blend in luma/chroma: luma with the matte, chroma with the matte as 4:2:0 saw it.

    Why: per-RGB inversion of a thin white stroke over a saturated background leaves coloured
    fringes, because the codec stored the stroke's colour at half resolution.
    """
    ycc = x @ YCC.T
    wycc = np.asarray(color, np.float32) @ YCC.T  # [3] or [h, w, 3]
    ac = np.minimum(blur(a), 0.98)
    out = np.empty_like(ycc)
    out[..., 0] = (ycc[..., 0] - a * wycc[..., 0]) / (1.0 - a)
    out[..., 1:] = (ycc[..., 1:] - ac[..., None] * wycc[..., 1:]) / (1.0 - ac[..., None])
    return out @ YCC_INV.T

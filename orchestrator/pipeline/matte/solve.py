"""The blend model's least squares: ``crop = a*W + (1 - a)*B`` with ``a = alpha * o_t``, and its misfit."""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline.matte.params import PARAMS


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


def als(x, bg, color, opacity, alpha, *, fit_color: bool, rounds: int, ridge: float, weight=None):
    """Alternating least squares of alpha / (W) / per-frame opacity on one background guess.

    Returns (alpha, se, W, opacity) with the opacities normalised to a median of 1.
    """
    d = x - bg
    color = color.copy()
    se = np.ones_like(alpha)
    for _ in range(max(1, rounds)):
        prev_alpha = alpha
        g = color[None, :, None, None] - bg
        alpha, se = _solve_alpha(d, g, opacity, ridge, weight)
        alpha = np.clip(alpha, 0.0, 1.5)
        core = alpha > 0.2
        if not core.any():
            break
        if fit_color:
            # J - (1 - a) B = a W, per channel over the mark's core pixels.
            a_c = alpha[core][None, None, :] * opacity[:, None, None]  # [N, 1, K]
            target = x[:, :, core] - (1 - a_c) * bg[:, :, core]
            color = np.clip((a_c * target).sum(axis=(0, 2)) / max(float((a_c * a_c).sum()), 1e-6),
                           0, 255).astype(np.float32)
            g = color[None, :, None, None] - bg
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
    return alpha.astype(np.float32), se.astype(np.float32), color, opacity


def fit_residual(residual: np.ndarray, ref_idx: np.ndarray,
                 min_references: int = PARAMS.min_fit_references) -> float:
    """Median misfit, over the frames with a clean reference when there are enough of them."""
    if ref_idx.size >= min_references:
        return float(np.median(residual[ref_idx]))
    return float(np.median(residual)) if residual.size else float("inf")


def effective_frames(x, bg, alpha, color, opacity, support) -> float:
    """Independent frames among N, from the lag-1 autocorrelation of the fit residuals over time."""
    n = x.shape[0]
    if n < 3 or not support.any():
        return float(max(1, n))
    b = bg[:, :, support]
    r = (x[:, :, support] - b) - alpha[support][None, None, :] * opacity[:, None, None] * (color[None, :, None] - b)
    r = r - r.mean(axis=0, keepdims=True)
    rho = float((r[1:] * r[:-1]).sum() / max(float((r * r).sum()), 1e-6))
    rho = min(max(rho, 0.0), 0.99)
    return float(np.clip(n * (1 - rho) / (1 + rho), 1.0, n))


def regularise_opacity(opacity: np.ndarray) -> tuple[np.ndarray, float]:
    """Keep only opacity changes that stand out of the fit's noise; returns (opacity, noise).

    Why: per-frame opacities fitted against a guessed background scatter by a few percent even
    when the mark's opacity is constant, and inverting with that scatter loses quality and adds
    flicker. Real changes (fades around the mark's jumps) are much larger than the scatter.
    """
    dev = opacity - 1.0
    noise = max(0.01, 1.4826 * float(np.median(np.abs(dev))))
    out = np.where(np.abs(dev) > 3.0 * noise, opacity, 1.0).astype(np.float32)
    return out, noise


def color_planes(color: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """W as [1, 3, K] over the pixels ``sel``, from a colour [3] or a colour map [h, w, 3]."""
    color = np.asarray(color, np.float32)
    return color[None, :, None] if color.ndim == 1 else color[sel].T[None]


def residuals(x, bg, alpha, color, opacity, support) -> np.ndarray:
    """Per-frame misfit ||J - B - a(W - B)|| relative to the full-visibility mark ||alpha(W - B)||.

    ``x``, ``bg`` [N, 3, h, w]. Normalised by the mark at full opacity so that faded frames
    (nothing to remove) do not count as misfits; background-guess errors set its floor (about
    0.1-0.3 on textured backgrounds).
    """
    sel = support & (alpha > 0.05)
    if not sel.any():
        return np.zeros(x.shape[0], np.float32)
    b = bg[:, :, sel]
    g = color_planes(color, sel) - b
    a = alpha[sel][None, None, :]
    r = (x[:, :, sel] - b) - a * opacity[:, None, None] * g
    num = (r * r).sum(axis=(1, 2))
    den = ((a * g) ** 2).sum(axis=(1, 2))
    return np.sqrt(num / np.maximum(den, 1e-6)).astype(np.float32)


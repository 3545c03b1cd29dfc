"""The mark's dark parts as a second, black coverage beside the white matte (``refine.two_colour``).

Model per pixel: ``J = a_w W + (1 - a_w - a_k) B`` (times the frame's opacity), so the matte carries a
per-pixel colour ``W_p = a_w W / (a_w + a_k)``. Why here: the real mark is two-coloured (white
body, dark pupils) and a dark shadow is the same layer; the fit's failure modes (an ill-conditioned
pair over uniform backgrounds, a biased fill) need the physics the estimate alone does not know:
one layer of one opacity (``coverage_cap``) and a visible white-only misfit (``_visible``).
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# The white + black coverage of a pixel is at most this percentile of the white matte (``coverage_cap``).
CAP_PERCENTILE = 99.0
CAP_ENABLED = True  # (the tests switch it off to show what it prevents)
# Dark coverage starts only where the white-only fit's misfit exceeds the joint fit's median misfit
# over the mark by this factor (``_visible``; 0 switches it off); hysteresis grows it from there.
VISIBLE = 3.0
# Black coverage below this (or below 3 standard errors) is not a dark part of the mark.
DARK_MIN = 0.1
# Fewer dark pixels than this are noise, not a part of the mark (the pillarboxed mark's pupils
# are about 2x2 px each).
DARK_MIN_PX = 6
ROBUST_ROUNDS = 2
ROBUST_C = 2.0
# Steps by which significant dark coverage grows into weaker neighbours (``_significant``).
HYSTERESIS_STEPS = 3


def _sum_fc(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-2], a.shape[-1]).sum(axis=0)


def dark_component(x: np.ndarray, bg: np.ndarray, alpha: np.ndarray, wcol: np.ndarray,
                   opacity: np.ndarray, support: np.ndarray, *, weight: np.ndarray | None = None,
                   ridge: float = 0.0, rounds: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Black coverage per pixel beside the white matte: (white alpha, black alpha, its std error).

    ``x``, ``bg`` [N, 3, h, w] (observed, background guess), ``alpha`` the white-only matte, ``wcol``
    [3], ``opacity`` [N], ``weight`` [N] or [N, h, w] as in the white fit. Alternates the two
    per-pixel least squares ``x - B = a_w (W - B) + a_k (0 - B)`` (times the frame's opacity);
    ``a_k`` is kept only where it is significant, else the white matte comes back unchanged.
    A dark pixel must be significant in luma as well: 4:2:0 chroma fringes around white strokes
    would pass for dark coverage in the colour channels.
    """
    luma = LUMA[None, :, None, None]
    wl = np.asarray([float(np.asarray(wcol, np.float32) @ LUMA)], np.float32)
    cap = coverage_cap(alpha, support)
    luma_dark = _fit_dark((x * luma).sum(1, keepdims=True), (bg * luma).sum(1, keepdims=True), alpha, wl,
                          opacity, support, weight, ridge, rounds, cap=cap)[3]
    a_w, a_k, se, dark = _fit_dark(x, bg, alpha, np.asarray(wcol, np.float32), opacity, support, weight, ridge,
                                   rounds, allowed=luma_dark, cap=cap)
    if dark.sum() < DARK_MIN_PX:
        return alpha.astype(np.float32), np.zeros_like(a_w), se
    return a_w, np.where(dark, a_k, 0.0).astype(np.float32), se


def coverage_cap(alpha: np.ndarray, support: np.ndarray) -> float:
    """The most a pixel's white + black coverage may be: the body's peak alpha (the white-only
    matte's 99th percentile over the mark). Why: the mark is one layer of one opacity, so a pupil is
    covered by the body's alpha; unbounded, the joint fit traded coverage for colour along its
    ill-conditioned direction (a uniform background) and reached 0.9-1.0 over white letters whose
    true alpha was 0.77, with W 190 (pillarbox 1), and the gate then passed ghosts."""
    sel = support & (alpha > 0.05)
    if CAP_ENABLED is False or sel.sum() < 8:
        return 1.0
    return float(min(1.0, np.percentile(alpha[sel], CAP_PERCENTILE)))


def _fit_dark(x, bg, alpha, wcol, opacity, support, weight, ridge, rounds, allowed=None, cap: float = 1.0):
    """(a_w, a_k, standard error, significant dark mask) of the two-coverage least squares.

    Solved jointly per pixel (2x2 normal equations): ``g_k = g_w - W`` is strongly correlated
    with ``g_w`` over frames, so alternating the two coverages converged too slowly and left a
    shadow's 0.1-0.15 coverage at the stroke's edge unseen (the white one bent around it)."""
    o = opacity[:, None, None, None]
    if weight is None:
        wt = np.ones(x.shape[0], np.float32)[:, None, None, None]
    else:
        wt = weight[:, None, None, None] if weight.ndim == 1 else weight[:, None]
    d = x - bg
    g_w = (wcol[None, :, None, None] - bg) * o
    g_k = -bg * o
    wt0 = wt
    for it in range(ROBUST_ROUNDS + 1):
        s_ww = _sum_fc(g_w * g_w * wt) + ridge
        s_kk = _sum_fc(g_k * g_k * wt) + ridge
        s_wk = _sum_fc(g_w * g_k * wt)
        s_dw = _sum_fc(d * g_w * wt)
        s_dk = _sum_fc(d * g_k * wt)
        det = np.maximum(s_ww * s_kk - s_wk * s_wk, 1e-6 * s_ww * s_kk)
        a_w, a_k = _nonneg_pair(s_ww, s_kk, s_wk, s_dw, s_dk, det, cap)
        if it < ROBUST_ROUNDS:
            rr = np.sqrt(((d - a_w * g_w - a_k * g_k) ** 2).mean(1, keepdims=True))  # [N, 1, h, w]
            c = ROBUST_C * np.maximum(np.median(rr, axis=0, keepdims=True), 1.0)
            wt = wt0 / (1.0 + (rr / c) ** 2)
    resid = d - a_w * g_w - a_k * g_k
    total_w = weight.sum(0) if weight is not None and weight.ndim == 3 else float(wt.sum())
    dof = np.maximum(1.0, np.asarray(total_w) * x.shape[1] - 2.0)
    var = _sum_fc(resid * resid * wt) / dof
    se_k = np.sqrt(var * s_ww / det)  # the joint fit's error of a_k (the correlation inflates it)
    allowed = support if allowed is None else support & allowed
    dark = _significant(a_k, se_k, allowed, _visible(d, g_w, resid, wt, s_dw, s_ww, allowed, alpha, support))
    if not dark.any():
        return alpha.astype(np.float32), np.zeros_like(a_w), se_k.astype(np.float32), dark
    # where the white coverage is not significant beside the dark one, black alone is fitted
    se_w = np.sqrt(var * s_kk / det)
    black = dark & (a_w < 2.0 * se_w)
    a_w = np.where(black, 0.0, a_w)
    a_k = np.where(black, np.clip(s_dk / s_kk, 0.0, cap), a_k)
    a_k = np.where(dark, a_k, 0.0)
    # elsewhere the white-only fit stands (its own least squares, with the ridge)
    a_w = np.where(dark, a_w, np.clip(s_dw / s_ww, 0.0, 1.0))
    a_w = np.where(support, a_w, alpha)
    resid = d - a_w * g_w - a_k * g_k
    var = _sum_fc(resid * resid * wt) / dof
    se = np.sqrt(var * np.where(dark, s_ww / det, 1.0 / s_ww))  # the error of the coverage that carries the pixel
    return a_w.astype(np.float32), a_k.astype(np.float32), se.astype(np.float32), dark


def _visible(d, g_w, resid, wt, s_dw, s_ww, allowed, alpha, support) -> np.ndarray | None:
    """Where dark coverage may start (``_significant``'s seeds): pixels that the white-only fit
    misses (rms over the frames) by more than VISIBLE times the joint fit's median misfit over the
    mark; None (anywhere) when switched off. Why: over a uniform background the two coverages are
    nearly collinear and the fill's bias found a significant 0.19 "dark" layer over pillarbox 1's
    white letters (white-only misfit 2x the body's; pupils 13x, a shadow's core several times)."""
    body = support & (alpha > 0.05)
    if VISIBLE <= 0 or body.sum() < 8:
        return None
    n = np.broadcast_to(wt, (d.shape[0], 1) + d.shape[2:]).sum(axis=(0, 1)) * d.shape[1]
    rms_w = np.sqrt(_sum_fc((d - np.clip(s_dw / s_ww, 0.0, 1.0) * g_w) ** 2 * wt) / np.maximum(n, 1.0))
    rms_j = np.sqrt(_sum_fc(resid * resid * wt) / np.maximum(n, 1.0))
    return allowed & (rms_w > VISIBLE * float(np.median(rms_j[body])))


def _nonneg_pair(s_ww, s_kk, s_wk, s_dw, s_dk, det, cap: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the least squares (a_w, a_k) with both >= 0 and a_w + a_k <= ``cap``: the joint
    solution where it is feasible, else the better of white alone and black alone (their sums of
    squares compared), moved onto the line a_w + a_k = cap where it exceeds the cap."""
    j_w = (s_kk * s_dw - s_wk * s_dk) / det
    j_k = (s_ww * s_dk - s_wk * s_dw) / det
    w_only = np.maximum(s_dw / s_ww, 0.0)
    k_only = np.maximum(s_dk / s_kk, 0.0)
    # the sum of squares up to a constant: a^2 S - 2 a S_d for one coverage
    white_better = (w_only * w_only * s_ww - 2 * w_only * s_dw) <= (k_only * k_only * s_kk - 2 * k_only * s_dk)
    joint = (j_w >= 0) & (j_k >= 0)
    a_w = np.where(joint, j_w, np.where(white_better, w_only, 0.0))
    a_k = np.where(joint, j_k, np.where(white_better, 0.0, k_only))
    a_w = np.clip(a_w, 0.0, 1.0)
    a_k = np.clip(a_k, 0.0, 1.0 - a_w)
    over = a_w + a_k > cap
    if over.any():  # on the line: x - B - cap g_k = a_w (g_w - g_k)
        s_dd = s_ww - 2.0 * s_wk + s_kk
        t = np.clip((s_dw - s_dk - cap * (s_wk - s_kk)) / np.maximum(s_dd, 1e-9), 0.0, cap)
        a_w = np.where(over, t, a_w)
        a_k = np.where(over, cap - t, a_k)
    return a_w, a_k


def _significant(a_k: np.ndarray, se_k: np.ndarray, allowed: np.ndarray, seeds=None) -> np.ndarray:
    """Dark coverage well above its error, grown by hysteresis into neighbours where it is weaker
    (a shadow's anti-aliased rim beside a stroke: 0.1-0.15 coverage at 3-4 standard errors)."""
    strong = (allowed if seeds is None else seeds) & (a_k > DARK_MIN) & (a_k > 3.0 * se_k)
    weak = allowed & (a_k > 0.5 * DARK_MIN) & (a_k > 2.0 * se_k)
    for _ in range(HYSTERESIS_STEPS):
        grown = strong | (dilate(strong, 1) & weak)
        if np.array_equal(grown, strong):
            break
        strong = grown
    return strong


def color_map(a_w: np.ndarray, a_k: np.ndarray, wcol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total alpha [h, w], per-pixel colour [h, w, 3]) of a white + black coverage."""
    total = a_w + a_k
    share = np.where(total > 1e-6, a_w / np.maximum(total, 1e-6), 1.0)
    return total.astype(np.float32), (share[..., None] * np.asarray(wcol, np.float32)).astype(np.float32)


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
        out |= p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:]
    return out

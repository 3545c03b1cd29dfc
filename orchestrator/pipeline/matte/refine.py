"""What a single white matte misses: dark parts, parts that change per frame, per-frame registration.

Why: the real mark is two-coloured (a white body with dark pupils that move from frame to frame),
and pass 2 inverted every visit of a position with one median offset. A 1 px registration error,
moving pupils or a dark shadow each leave a ghost (17-20 dB instead of 26-34 on generated crops)
while the white-only fit still called the frame "reliable". Here:

- ``dark_component``: per pixel, a black coverage ``a_k`` beside the white ``a_w`` (the model
  ``J = a_w W + (1 - a_w - a_k) B``), so the matte carries a per-pixel colour
  ``W_p = a_w W / (a_w + a_k)``: dark pupils and shadows are inverted like the body. Solved
  jointly per pixel, robust to the fill's heavy-tailed errors (a shadow came out 2.5 dB short).
- ``two_colour``: the dark part's misfit over the frames against the rest of the mark's, and
  ``dark_outliers`` (pixels inside the body often far darker than the white matte predicts): the
  parts that move (the pupils) go to the inpainter instead of being inverted with an average;
  ``moving_dark`` narrows that zone per frame to where they are.
- ``texture_prior``: how far the background may stray from a smooth fill (a ring around the
  mark), for the inversion's blend by predicted errors.
- ``refine_offset``: per frame, the sub-pixel offset that leaves the least high-pass energy in
  the inverted crop (a misregistered inversion adds the mark's edges twice, with opposite signs).
- ``ghost_score``: how much of the mark's pattern (and of its x/y derivatives, the signature of a
  misregistration) an inverted crop still shows, relative to the mark: the per-frame gate.
"""

from __future__ import annotations

import logging

import numpy as np

LOGGER = logging.getLogger(__name__)

# The white + black coverage of a pixel is at most this percentile of the white matte (``coverage_cap``).
CAP_PERCENTILE = 99.0
CAP_ENABLED = True  # (switched off by the tests to show what it does)
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
# Search radius (px) of the per-visit registration.
REFINE_RADIUS = 1.5
# Blend weights above this are not inverted in the registration search (the hole's pixels).
REFINE_ALPHA_MAX = 0.9
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 mean over the last two axes (edges replicated)."""
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    h, w = x.shape[-2:]
    return sum(p[..., i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


def _hp(x: np.ndarray) -> np.ndarray:
    return x - _box3(x)


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
        grown = strong | (_dilate(strong, 1) & weak)
        if np.array_equal(grown, strong):
            break
        strong = grown
    return strong


def color_map(a_w: np.ndarray, a_k: np.ndarray, wcol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total alpha [h, w], per-pixel colour [h, w, 3]) of a white + black coverage."""
    total = a_w + a_k
    share = np.where(total > 1e-6, a_w / np.maximum(total, 1e-6), 1.0)
    return total.astype(np.float32), (share[..., None] * np.asarray(wcol, np.float32)).astype(np.float32)


# The dark part is animated (the real mark's pupils) when its misfit over the frames exceeds the
# rest of the mark's by this factor; a static dark part (a shadow) is inverted like the body.
ANIMATED_RATIO = 1.5
# The animated zone: the dark part grown by this (the pupils move by a pixel or two).
ZONE_PX = 2
# Frames with a clean reference needed to judge the dark part on them alone.
MIN_REFERENCES = 3


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
        out |= p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:]
    return out


def two_colour(x: np.ndarray, bg: np.ndarray, alpha: np.ndarray, wcol: np.ndarray, opacity: np.ndarray,
               support: np.ndarray, *, weight=None, ridge: float = 0.0, ref_idx=None):
    """The white matte plus its dark parts: (alpha, colour map, unstable mask, the joint fit's
    standard error); the last three are None when the fit finds no dark part.

    Where the fit finds significant black coverage the matte gets a per-pixel colour. When that
    dark part's misfit over the frames stands out of the rest of the mark's (it moves: the pupils),
    its pixels (dilated by 1) are returned as ``unstable``: the inversion leaves them to the
    inpainter. Judged on the frames with a clean reference when there are enough of them.
    """
    a_w, a_k, se_k = dark_component(x, bg, alpha, wcol, opacity, support, weight=weight, ridge=ridge)
    dark = a_k > 0
    if not dark.any():
        spots = dark_outliers(x, bg, alpha, wcol, opacity, support)
        if spots.sum() < DARK_MIN_PX:
            return alpha, None, None, None
        LOGGER.info("matte: %d px darker than the white matte in many frames (moving dark parts): inpainted",
                    int(spots.sum()))
        return alpha, None, _dilate(spots, ZONE_PX) & support, None
    total, cmap = color_map(a_w, a_k, wcol)
    frames = np.asarray(ref_idx if ref_idx is not None and len(ref_idx) >= MIN_REFERENCES
                        else np.arange(x.shape[0]))
    col = cmap.transpose(2, 0, 1)[None]
    a = total[None, None] * opacity[frames, None, None, None]
    r = x[frames] - a * col - (1.0 - a) * bg[frames]
    rms = np.sqrt((r * r).mean(axis=(0, 1)))
    zone = _dilate(dark, ZONE_PX) & support
    rest = support & (total > 0.05) & ~_dilate(dark, 2)
    ratio = float(np.median(rms[zone]) / max(float(np.median(rms[rest])), 1e-3)) if rest.sum() >= 8 else 0.0
    animated = ratio > ANIMATED_RATIO
    LOGGER.info("matte: dark part %d px (misfit %.2fx the rest's: %s)", int(dark.sum()), ratio,
                "animated, inpainted" if animated else "static, inverted")
    return total, cmap, (zone if animated else None), se_k


# A pixel is a moving dark part when it is this much darker than the white matte predicts (in
# robust standard deviations of the misfit under the mark, at least DARK_OUTLIER_MIN grey levels)
# in at least DARK_OUTLIER_SHARE of the frames.
DARK_OUTLIER_SIGMA = 4.0
DARK_OUTLIER_MIN = 15.0
DARK_OUTLIER_SHARE = 0.15
DARK_OUTLIER_MAX_SHARE = 0.1  # of the mark's body: the pupils are a small part of it


def dark_outliers(x: np.ndarray, bg: np.ndarray, alpha: np.ndarray, wcol: np.ndarray, opacity: np.ndarray,
                  support: np.ndarray) -> np.ndarray:
    """Pixels of the mark that are often far darker than the white matte predicts: moving pupils,
    whose average coverage is too smeared for the dark fit to find (bool [h, w])."""
    a = alpha[None] * opacity[:, None, None]
    wl = float(np.asarray(wcol, np.float32) @ LUMA)
    xl = (x * LUMA[None, :, None, None]).sum(1)
    bl = (bg * LUMA[None, :, None, None]).sum(1)
    r = xl - a * wl - (1.0 - a) * bl  # [N, h, w]
    sel = support & (alpha > 0.05)
    if sel.sum() < 16:
        return np.zeros_like(support)
    vals = r[:, sel]
    sigma = 1.4826 * float(np.median(np.abs(vals - np.median(vals))))
    low = r < -max(DARK_OUTLIER_SIGMA * sigma, DARK_OUTLIER_MIN)
    # pupils sit inside the white body; a dark background's own shadows fall anywhere
    body = alpha > 0.5 * float(alpha.max())
    spots = body & support & (low.mean(0) >= DARK_OUTLIER_SHARE)
    if spots.sum() > DARK_OUTLIER_MAX_SHARE * max(1, int(body.sum())):
        return np.zeros_like(support)  # not a small part of the mark: the background guess is off
    return spots


# A pixel of the moving parts' zone is dark in this frame when its white-only inversion is darker
# than its surroundings (3x3 mean against a 7x7 one) by this many robust standard deviations of
# the same statistic over the rest of the mark, measured on the frame itself.
MOVING_SIGMA = 3.0
MOVING_RADIUS = 3


def moving_dark(restored_luma: np.ndarray, zone: np.ndarray, support: np.ndarray, box_mean) -> np.ndarray:
    """The pixels of ``zone`` (where the mark's moving dark parts may be) that are dark in this
    frame: inverted as white they stand out of their surroundings by more than the frame's own
    noise (bool [h, w]). ``box_mean(x, r)`` is the matte module's window mean.

    Why: inpainting the whole zone (the pupils' every position, about 2.5x their area) cost
    about 3 dB against still pupils; these pixels (dilated by one) alone cost nothing measurable.
    """
    zone = _dilate(zone, 1)
    contrast = box_mean(box_mean(restored_luma, MOVING_RADIUS) - restored_luma, 1)
    other = support & ~_dilate(zone, 2)
    if other.sum() < 16:
        return zone
    vals = contrast[other]
    sigma = max(1.4826 * float(np.median(np.abs(vals - np.median(vals)))), 1.0)
    return _dilate(zone & (contrast > MOVING_SIGMA * sigma), 1)


def texture_prior(x: np.ndarray, support: np.ndarray, ring_px: int, fill) -> np.ndarray:
    """How far the background under the mark may stray from a smooth fill: per pixel, grey levels^2.

    Measured on a ring around the mark (the fill's own error there, with the ring left out of
    it) and spread inwards. Why: a flat sky's fill is within a grey level or two, so inverting
    (coding noise times 1/(1 - a)) can only add error there; a texture's fill is far off.
    ``fill(planes [M, h, w], known [h, w])`` is the matte module's push-pull fill.
    """
    grown = _dilate(support, ring_px)
    ring = grown & ~support
    planes = np.ascontiguousarray(x.transpose(2, 0, 1))
    if ring.sum() < 16 or (~grown).sum() < 16:
        return np.full(support.shape, 1e6, np.float32)
    guess = fill(planes, ~grown)
    err = ((planes - guess) ** 2).mean(0)
    return fill(np.where(ring, err, 0.0)[None].astype(np.float32), ring)[0]


def _luma_energy(y: np.ndarray, a: np.ndarray, wy: np.ndarray, sel: np.ndarray) -> float:
    a = np.where(a > REFINE_ALPHA_MAX, 0.0, a)
    restored = (y - a * wy) / (1.0 - a)
    hp = _hp(restored)
    return float((hp * hp)[sel].sum())


def refine_offset(crop: np.ndarray, alpha: np.ndarray, color: np.ndarray, offset, opacity: float,
                  shift_map, *, radius: float = REFINE_RADIUS) -> np.ndarray:
    """The offset near ``offset`` whose inversion leaves the least high-pass energy under the mark.

    ``shift_map(map, offset)`` moves a reference-coordinate map into the crop (the matte module's).
    Coarse integer grid within ``radius``, then a parabola per axis through the best point's
    neighbours at half a pixel. Returns (dy, dx) float32.
    """
    base = np.asarray(offset if offset is not None else (0.0, 0.0), np.float32).reshape(2)
    y = np.asarray(crop, np.float32) @ LUMA
    col = np.asarray(color, np.float32)
    wmap = col @ LUMA if col.ndim == 3 else np.full(alpha.shape, float(col @ LUMA), np.float32)
    sel = alpha > 0.01
    sel = np.pad(sel, 2)[1:-3, 1:-3] | np.pad(sel, 2)[3:-1, 3:-1] | sel  # a little margin

    def energy(off: np.ndarray) -> float:
        a = shift_map(alpha, off) * opacity
        w = shift_map(wmap, off) if col.ndim == 3 else wmap
        m = shift_map(sel.astype(np.float32), off) > 0.5
        return _luma_energy(y, a, w, m | sel)

    r = int(np.floor(radius))
    grid = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    scores = {g: energy(base + np.array(g, np.float32)) for g in grid}
    best = np.array(min(scores, key=scores.get), np.float32)
    e0 = scores[tuple(int(v) for v in best)]
    out = best.copy()
    for axis in (0, 1):
        step = np.zeros(2, np.float32)
        step[axis] = 0.5
        em, ep = energy(base + best - step), energy(base + best + step)
        denom = em - 2 * e0 + ep
        if denom > 1e-9:
            out[axis] += float(np.clip(0.5 * 0.5 * (em - ep) / denom, -0.5, 0.5))
    return (base + out).astype(np.float32)


def ghost_score(restored: np.ndarray, fill: np.ndarray, alpha: np.ndarray, color: np.ndarray,
                valid: np.ndarray) -> float:
    """Share of the mark's pattern left in ``restored`` (0 gone, 1 untouched; abs of the largest).

    Projects the high-pass of ``restored - fill`` onto the high-pass of the mark's predicted
    contribution ``alpha (W - fill)`` and onto its x/y derivatives (a misregistered inversion
    leaves the mark's derivative), over ``valid`` pixels; [h, w(, 3)] in one coordinate frame.
    (The background's own texture is not the pattern: projecting on ``observed - fill`` called a
    clean result on a textured ceiling a ghost.)
    """
    return ghost_parts(restored, fill, alpha, color, valid)[0]


def ghost_parts(restored: np.ndarray, fill: np.ndarray, alpha: np.ndarray, color: np.ndarray,
                valid: np.ndarray) -> tuple[float, float]:
    """(``ghost_score``, the signed share of the mark's own pattern): positive when the mark is
    under-removed (the frame's opacity is higher than used), negative when over-removed."""
    y_r = (np.asarray(restored, np.float32) - fill) @ LUMA
    y_m = (alpha[..., None] * (np.asarray(color, np.float32) - fill)) @ LUMA
    hr, hm = _hp(y_r), _hp(y_m)
    gy = np.zeros_like(hm)
    gx = np.zeros_like(hm)
    gy[1:-1] = 0.5 * (hm[2:] - hm[:-2])
    gx[:, 1:-1] = 0.5 * (hm[:, 2:] - hm[:, :-2])
    sel = valid
    den = float((hm[sel] ** 2).sum())
    if den <= 1e-6:
        return 0.0, 0.0
    # A derivative pattern d of strength s leaves s * d; score it on the mark's scale.
    scores = []
    for basis in (hm, gy, gx):
        b = basis[sel]
        bb = float((b * b).sum())
        if bb <= 1e-9:
            scores.append(0.0)
            continue
        scores.append(float((hr[sel] * b).sum()) / bb * np.sqrt(bb / den))
    return float(max(abs(v) for v in scores)), scores[0]

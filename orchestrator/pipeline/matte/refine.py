"""What a single white matte misses: dark parts, parts that change per frame, per-frame registration.

Why: the real mark is two-coloured (a white body with dark pupils that move from frame to frame),
and pass 2 inverted every visit of a position with one median offset. A 1 px registration error,
moving pupils or a dark shadow each leave a ghost (17-20 dB instead of 26-34 on generated crops)
while the white-only fit still called the frame "reliable". Here:

- ``coverage.dark_component``: per pixel, a black coverage ``a_k`` beside the white ``a_w`` (the
  model ``J = a_w W + (1 - a_w - a_k) B``), so the matte carries a per-pixel colour
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

from orchestrator.pipeline.matte.coverage import DARK_MIN_PX, LUMA, color_map, dark_component, dilate as _dilate

LOGGER = logging.getLogger(__name__)

# Search radius (px) of the per-visit registration.
REFINE_RADIUS = 1.5
# Blend weights above this are not inverted in the registration search (the hole's pixels).
REFINE_ALPHA_MAX = 0.9


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 mean over the last two axes (edges replicated)."""
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    h, w = x.shape[-2:]
    return sum(p[..., i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


def high_pass(x: np.ndarray) -> np.ndarray:
    """The detail a 3x3 mean removes: what a ghost of the mark's edges and added noise show up in."""
    return x - _box3(x)


# The dark part is animated (the real mark's pupils) when its misfit over the frames exceeds the
# rest of the mark's by this factor; a static dark part (a shadow) is inverted like the body.
ANIMATED_RATIO = 1.5
# The animated zone: the dark part grown by this (the pupils move by a pixel or two).
ZONE_PX = 2
# Frames with a clean reference needed to judge the dark part on them alone.
MIN_REFERENCES = 3


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
    hp = high_pass(restored)
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
    hr, hm = high_pass(y_r), high_pass(y_m)
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

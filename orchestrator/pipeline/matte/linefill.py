"""A line fill across a box (ffmpeg ``delogo``'s idea) and the choice between it and the push-pull fill.

Why: the push-pull fill is isotropic, so a stripe or an edge crossing the mark (a wall's dark
stripe, a door frame) comes out as a blurred blob, and a frame the matte gate rejects there was
box-inpainted the same way. Interpolating each box pixel along its row and its column between the
box's edges, the shorter span weighted more, carries a stripe across. On flat walls it is a little
behind push-pull, so ``choose_line_fill`` uses it only where a check on a ring around the box says
it is clearly better (figures: bench/README.md, "Flat backgrounds").
"""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline.matte.image import dilate_mask, fill_rgb

# The line fill replaces push-pull when its error on the check ring is below this share of push-pull's.
LINE_GAIN = 0.5
# Width (px) of the ring around the box that both fills are checked on.
CHECK_RING = 6


def _nearest(known: np.ndarray, reverse: bool) -> np.ndarray:
    """Per pixel, the column of the nearest known pixel to its left (or right when ``reverse``):
    -1 (or w) where there is none."""
    h, w = known.shape
    if not reverse:
        idx = np.where(known, np.arange(w)[None, :], -1)
        return np.maximum.accumulate(idx, axis=1)
    idx = np.where(known, np.arange(w)[None, :], w)
    return np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]


def _along_rows(x: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation along rows between the nearest known pixels: (value, weight); the
    weight 1/(d_left * d_right) favours short spans, 0 where a side has no known pixel."""
    h, w = known.shape
    left, right = _nearest(known, False), _nearest(known, True)
    cols = np.arange(w)[None, :]
    rows = np.arange(h)[:, None]
    ok = (left >= 0) & (right < w)
    dl = (cols - left).astype(np.float32)
    dr = (right - cols).astype(np.float32)
    lv = x[rows, np.clip(left, 0, w - 1)]
    rv = x[rows, np.clip(right, 0, w - 1)]
    value = (lv * dr[..., None] + rv * dl[..., None]) / np.maximum(dl + dr, 1.0)[..., None]
    return value, np.where(ok, 1.0 / np.maximum(dl * dr, 1.0), 0.0).astype(np.float32)


def line_fill(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``x`` [h, w, 3] with the pixels where ``known`` is False interpolated along their row and
    column from the nearest known pixels (push-pull where neither line has known pixels on both sides)."""
    x = np.asarray(x, np.float32)
    known = np.asarray(known, bool)
    hv, hw = _along_rows(x, known)
    vv, vw = _along_rows(x.transpose(1, 0, 2), known.T)
    vv, vw = vv.transpose(1, 0, 2), vw.T
    total = hw + vw
    value = (hv * hw[..., None] + vv * vw[..., None]) / np.maximum(total, 1e-12)[..., None]
    if (total <= 0).any():
        value = np.where((total > 0)[..., None], value, fill_rgb(x, known))
    return np.where(known[..., None], x, value).astype(np.float32)


def choose_line_fill(x: np.ndarray, box: np.ndarray, ring: int = CHECK_RING,
                     gain: float = LINE_GAIN) -> np.ndarray | None:
    """The line fill of ``box`` (bool [h, w]) in ``x`` when it is clearly closer than push-pull,
    else None. Both fill the box grown by ``ring`` px; the pixels of that ring are known, so each
    fill's error there predicts its error inside (a stripe is carried by the line fill alone)."""
    x = np.asarray(x, np.float32)
    grown = dilate_mask(box, ring)
    check = grown & ~box
    if check.sum() < 16 or (~grown).sum() < 16:
        return None
    e_line = float(((line_fill(x, ~grown) - x) ** 2)[check].mean())
    e_push = float(((fill_rgb(x, ~grown) - x) ** 2)[check].mean())
    if e_line >= gain * e_push:
        return None
    return line_fill(x, ~box)

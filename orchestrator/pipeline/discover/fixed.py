"""A fixed overlay (a channel logo) that never jumps: no step to fit, so its white-overlay fit
comes from how the picture moves under it.

Inside a white overlay of opacity α a pixel is J = 255·α + (1 − α)·B: it follows the picture
beside it with (1 − α) of its swing and is lifted towards white. On each side of the place's
static edges (the template's gradient points from the outside to the brighter inside) the
temporal spread and mean over the buffered frames give α twice: from the spread ratio and from
the lift. Both agree, within the overlay range, only for a semi-transparent white overlay: a
static edge of the picture has the spread of its surroundings (α ≈ 0), an opaque caption none
(α ≈ 1), and where the picture does not move there is nothing to measure. An overlay's lift is
also the same in the first and the second half of the frames (within 0.015 on generated logos),
while a picture's edge that happens to agree once drifts as the picture moves (0.04-0.09 on the
mark-free clip clean 9002, whose spread and lift agreed within 0.114 of the 0.12 allowed).
"""

from __future__ import annotations

import numpy as np

from orchestrator.pipeline.discover.features import grey
from orchestrator.pipeline.discover.tracks import ALPHA_RANGE, Track

COVER = 0.9  # share of the video a fixed overlay's presence covers
STILL = 0.9  # median presence score over it
MOVING = 4.0  # grey levels: the least median spread beside the edges (the picture must move)
AGREE = 0.12  # α from the spread and α from the lift agree this well
STEADY = 0.03  # α from the lift in the first and the second half of the frames agree this well
OFFSET = 2  # px from an edge pixel to its inside and outside samples
MIN_EDGES = 12
MIN_FRAMES = 20


def fixed_places(loose: list[tuple[Track, np.ndarray]], scores: dict, buffer) -> list[tuple[Track, np.ndarray]]:
    """The places with no step (``loose``: track, presence; ``scores`` by track id) that hold a
    fixed white overlay; each gets its α (``Track.fixed``). ``buffer``: the small frames kept."""
    loose = [(t, on) for t, on in loose if candidate(t, on, scores[id(t)])]
    if not loose:
        return []
    greys = [(f.index, grey(f.rgb)) for f in buffer]
    out = []
    for track, on in loose:
        track.fixed = fixed_alpha(track, on, greys)
        if track.fixed is not None:
            if on[track.first_frame]:  # fixed: there before it was watched too
                on = on.copy()
                on[: track.first_frame] = True
            out.append((track, on))
    return out


def candidate(track: Track, on: np.ndarray, scores: np.ndarray) -> bool:
    """A place that may hold a fixed overlay: no step, there nearly all the time it was watched
    (tracks start a few chunks into the video), still."""
    seen = on[track.first_frame:]
    return (not track.confirmed and seen.size >= MIN_FRAMES and seen.mean() >= COVER
            and float(np.median(scores[on])) >= STILL)


def fixed_alpha(track: Track, on: np.ndarray, greys: list[tuple[int, np.ndarray]]) -> float | None:
    """α of a fixed white overlay at the track's place, or None. ``greys`` are the buffered small
    frames' (index, grey); ``on`` the track's presence."""
    greys = [g for i, g in greys if i < on.size and on[i]]
    if len(greys) < MIN_FRAMES:
        return None
    inside, outside = _samples(track, greys)
    if inside is None:
        return None
    spread_in, spread_out = inside.std(0), outside.std(0)
    if float(np.median(spread_out)) < MOVING:
        return None
    from_spread = 1.0 - float(np.median(spread_in / np.maximum(spread_out, 1.0)))
    from_lift = _lift(inside, outside)
    half = len(greys) // 2
    drift = abs(_lift(inside[:half], outside[:half]) - _lift(inside[half:], outside[half:]))
    lo, hi = ALPHA_RANGE
    if abs(from_spread - from_lift) > AGREE or not (lo <= from_spread <= hi and lo <= from_lift <= hi):
        return None
    if drift > STEADY:
        return None
    return round((from_spread + from_lift) / 2, 3)


def _lift(inside: np.ndarray, outside: np.ndarray) -> float:
    """α from how far the inside samples are lifted towards white over the outside ones."""
    mean_in, mean_out = inside.mean(0), outside.mean(0)
    return float(np.median((mean_in - mean_out) / np.maximum(255.0 - mean_out, 1.0)))


def _samples(track: Track, greys: list[np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Grey levels [frames, edges] just inside and just outside the template's strong edges."""
    keep = (track.tgx != 0) | (track.tgy != 0)
    mag = np.hypot(track.tgx, track.tgy)
    keep &= mag >= np.percentile(mag[keep], 50) if keep.any() else keep
    ys, xs = np.nonzero(keep)
    if ys.size < MIN_EDGES:
        return None, None
    ux, uy = track.tgx[ys, xs] / mag[ys, xs], track.tgy[ys, xs] / mag[ys, xs]
    x0, y0, x1, y1 = track.box
    h, w = greys[0].shape
    pts = []
    for sign in (1, -1):
        px = np.clip(np.round(x0 + xs + sign * OFFSET * ux).astype(int), 0, w - 1)
        py = np.clip(np.round(y0 + ys + sign * OFFSET * uy).astype(int), 0, h - 1)
        pts.append((py, px))
    inside = np.empty((len(greys), ys.size), np.float32)
    outside = np.empty_like(inside)
    for k, g in enumerate(greys):
        inside[k], outside[k] = g[pts[0]], g[pts[1]]
    return inside, outside

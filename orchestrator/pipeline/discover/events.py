"""Jump events: a compact region that changes in one frame far beyond how it changes in the
frames around (the overlay arriving at or leaving a place), fitted as a white overlay.

Static-edge blobs need the overlay to hold still for a while before a track starts; a visit cut
short by the start or the end of the video (or a mark on a flat sky) may never give one. A jump
is visible in two frames, so each fitting event starts a track at once (scored back over the
buffer), at the place it left and at the place it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from orchestrator.pipeline.discover.features import blobs, gradients, grey
from orchestrator.pipeline.discover.tracks import Track

STEP = 12  # grey levels a pixel must change at the event (whole numbers: compared in integers)...
RATIO = 3  # ...and this many times more than in the frames just before and after
MAX_SHARE = 0.05  # more of the picture than this changing at once is a cut or a flash
EDGE_LEVEL = 8.0  # mean gradient of an event template's edges
# An overlay's stepped pixels keep their level over its visit (only the picture under it moves,
# through 1 − α); a moving white object's do not. Tuning seeds: kept marks' drift ≤ 0.11 of the
# step, about half of the fitting events on faces and captions above 0.35 (bench/README.md).
DRIFT = 0.3


@dataclass(frozen=True)
class Event:
    """An overlay's step at frame ``frame`` (between frame-1 and frame): ``arrive`` or leave."""

    frame: int
    box: tuple[int, int, int, int]
    mask: np.ndarray
    arrive: bool


def find_events(g0: np.ndarray, g1: np.ndarray, g2: np.ndarray, g3: np.ndarray, frame: int,
                area: tuple[int, int, int, int]) -> list[Event]:
    """Events between g1 and g2 (frame ``frame`` = g2's), judged against g0→g1 and g2→g3."""
    return step_events(np.abs(g1 - g0), g2 - g1, np.abs(g3 - g2), frame, area)


def step_events(before: np.ndarray, step: np.ndarray, after: np.ndarray, frame: int,
                area: tuple[int, int, int, int], step_abs: np.ndarray | None = None) -> list[Event]:
    """``find_events`` from the frame-to-frame differences (each computed once as frames come:
    |g1 − g0|, g2 − g1, |g3 − g2|; ``step_abs``: |g2 − g1| when at hand). Only the window around
    the pixels that changed by ``STEP`` is looked at (an event's pixels all did; a frame with
    fewer than 10 holds none)."""
    x0, y0, x1, y1 = area
    iy0, ix0 = y0 + 3, x0 + 3
    iy1, ix1 = max(iy0, y1 - 3), max(ix0, x1 - 3)
    changed = (np.abs(step) if step_abs is None else step_abs)[iy0:iy1, ix0:ix1] > STEP
    if int(np.count_nonzero(changed)) < 10:
        return []
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    # The changed pixels' box, grown by the blobs' dilation reach (their boxes are the dilated
    # components'): every event and its box come out as on the whole frame.
    wy0, wy1 = max(0, iy0 + rows[0] - 3), min(step.shape[0], iy0 + rows[-1] + 4)
    wx0, wx1 = max(0, ix0 + cols[0] - 3), min(step.shape[1], ix0 + cols[-1] + 4)
    win = (slice(wy0, wy1), slice(wx0, wx1))
    inner = (slice(max(iy0, wy0) - wy0, min(iy1, wy1) - wy0), slice(max(ix0, wx0) - wx0, min(ix1, wx1) - wx0))
    found = _events(before[win], step[win], after[win], inner, (x1 - x0, y1 - y0))
    return [Event(frame, (bx0 + wx0, by0 + wy0, bx1 + wx0, by1 + wy0), mask, arrive)
            for (bx0, by0, bx1, by1), mask, arrive in found]


def _events(before: np.ndarray, step: np.ndarray, after: np.ndarray, inner: tuple[slice, slice],
            picture: tuple[int, int]) -> list[tuple[tuple[int, int, int, int], np.ndarray, bool]]:
    """(box, mask, arrive) of the events in a window; ``inner``: the picture's inside there."""
    calm = cv2.dilate(np.maximum(before, after), np.ones((3, 3), np.uint8))
    if calm.dtype in (np.int16, np.uint8):  # differences of uint8 luma: the same comparisons in integers
        level = np.maximum(calm.astype(np.int16, copy=False) * np.int16(RATIO), np.int16(STEP))  # (≤ 3 × 255)
    else:
        level = np.maximum(STEP, RATIO * calm)
    out = []
    inside = np.zeros(step.shape, bool)
    inside[inner] = True
    for arrive, mask in ((True, step > level), (False, -step > level)):
        mask &= inside
        count = int(mask.sum())
        if count < 10 or count > MAX_SHARE * max(picture[0] * picture[1], 1):
            continue
        for blob in blobs(mask, (0, 0, picture[0], picture[1]), min_pixels=10):
            out.append((blob.box, blob.mask, arrive))
    return out


def event_track(event: Event, frames: list[np.ndarray], first_frame: int, pad: int = 2) -> Track | None:
    """A track from the small frames where the overlay is (after an arrival, before a
    departure); its template keeps the edges of what stepped, not the picture's edges around it."""
    x0, y0, x1, y1 = event.box
    h, w = frames[0].shape[:2]
    wx0, wy0, wx1, wy1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    sgx = np.zeros((wy1 - wy0, wx1 - wx0), np.float32)
    sgy = np.zeros_like(sgx)
    for rgb in frames:
        gx, gy = gradients(grey(rgb[wy0:wy1, wx0:wx1]))
        sgx += gx
        sgy += gy
    mean_g = [np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)]
    mean_g[0][wy0:wy1, wx0:wx1] = sgx / len(frames)
    mean_g[1][wy0:wy1, wx0:wx1] = sgy / len(frames)
    stepped = cv2.dilate(event.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    strong = (np.hypot(mean_g[0], mean_g[1])[y0:y1, x0:x1] > EDGE_LEVEL) & stepped
    if strong.sum() < 8:
        return None
    return Track.from_blob(event.box, (mean_g[0], mean_g[1]), strong, pad, (h, w), first_frame)


def holds_still(event: Event, on: np.ndarray, far: np.ndarray, off: np.ndarray) -> bool:
    """Whether the event's stepped pixels hold their level from the frame next to the step
    (``on``, luma) to the farthest frame of its template (``far``), against the step itself
    (``on`` − ``off``): a cheap look before a track is built and scored over the buffer."""
    x0, y0, x1, y1 = event.box
    box = (slice(y0, y1), slice(x0, x1))
    a, b, c = (np.asarray(g[box], np.float32)[event.mask] for g in (on, far, off))
    if a.size == 0:
        return True
    return float(np.median(np.abs(a - b))) <= DRIFT * max(float(np.median(np.abs(a - c))), 1.0)

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

from orchestrator.pipeline.discover.features import blobs

STEP = 12.0  # grey levels a pixel must change at the event...
RATIO = 3.0  # ...and this many times more than in the frames just before and after
MAX_SHARE = 0.05  # more of the picture than this changing at once is a cut or a flash


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
    step = g2 - g1
    calm = cv2.dilate(np.maximum(np.abs(g1 - g0), np.abs(g3 - g2)), np.ones((3, 3), np.uint8))
    level = np.maximum(STEP, RATIO * calm)
    out = []
    x0, y0, x1, y1 = area
    inside = np.zeros(step.shape, bool)
    inside[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3] = True
    picture = max((x1 - x0) * (y1 - y0), 1)
    for arrive, mask in ((True, step > level), (False, -step > level)):
        mask &= inside
        count = int(mask.sum())
        if count < 10 or count > MAX_SHARE * picture:
            continue
        for blob in blobs(mask, area, min_pixels=10):
            out.append(Event(frame, blob.box, blob.mask, arrive))
    return out

"""The active picture area: where the frame is not a black bar (pillarbox / letterbox).

Real uploads are often a portrait picture padded to a landscape frame. Bars are dark in every
frame, so a running maximum per column and per row over the video finds them; an inpainter
window must never pull colour from them, and their straight edges are not a mark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A bar is darker than this in every frame (limited-range black is 16; coding noise adds a few).
BAR_LEVEL = 28.0
# Bars thinner than this share of the frame are ignored (a dark edge line, not padding).
MIN_BAR_SHARE = 0.02


@dataclass(frozen=True)
class PictureArea:
    """The picture inside the frame, in frame pixels (x1/y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int
    width: int
    height: int

    @classmethod
    def full(cls, width: int, height: int) -> "PictureArea":
        return cls(0, 0, width, height, width, height)

    @property
    def has_bars(self) -> bool:
        return (self.x0, self.y0, self.x1, self.y1) != (0, 0, self.width, self.height)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    def clip_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes [n,4] clipped to the picture; boxes left empty are dropped."""
        b = np.asarray(boxes).reshape(-1, 4).copy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(self.x0, self.x1)
        b[:, [1, 3]] = b[:, [1, 3]].clip(self.y0, self.y1)
        return b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]

    def summary(self) -> dict:
        return {"box": list(self.box), "bars": self.has_bars}


class PictureAccumulator:
    """Running per-column / per-row maxima of small grey frames -> ``PictureArea``."""

    def __init__(self) -> None:
        self.col_max: np.ndarray | None = None
        self.row_max: np.ndarray | None = None

    def add(self, grey: np.ndarray) -> None:
        cols, rows = grey.max(0), grey.max(1)
        if self.col_max is None:
            self.col_max, self.row_max = cols.astype(np.float32), rows.astype(np.float32)
        else:
            np.maximum(self.col_max, cols, out=self.col_max)
            np.maximum(self.row_max, rows, out=self.row_max)

    def work_area(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the picture in the small frames seen so far, None before any."""
        if self.col_max is None:
            return None
        x0, x1 = _span(self.col_max)
        y0, y1 = _span(self.row_max)
        return x0, y0, x1, y1

    def area(self, width: int, height: int) -> PictureArea:
        """The picture in frame pixels; a bar's edge column is counted as bar (rounded inwards)."""
        work = self.work_area()
        if work is None:
            return PictureArea.full(width, height)
        sx, sy = width / len(self.col_max), height / len(self.row_max)
        x0, y0, x1, y1 = work
        fx0 = 0 if x0 == 0 else min(width, math.ceil((x0 + 1) * sx))
        fy0 = 0 if y0 == 0 else min(height, math.ceil((y0 + 1) * sy))
        fx1 = width if x1 == len(self.col_max) else max(fx0, math.floor((x1 - 1) * sx))
        fy1 = height if y1 == len(self.row_max) else max(fy0, math.floor((y1 - 1) * sy))
        if fx1 <= fx0 or fy1 <= fy0:  # a black video: no bars to speak of
            return PictureArea.full(width, height)
        return PictureArea(fx0, fy0, fx1, fy1, width, height)


def _span(profile: np.ndarray) -> tuple[int, int]:
    """[first, last+1) of the bright part of a max profile, ignoring bars thinner than the minimum."""
    n = len(profile)
    bright = np.flatnonzero(profile > BAR_LEVEL)
    if bright.size == 0:
        return 0, n
    lo, hi = int(bright[0]), int(bright[-1]) + 1
    min_bar = max(1, int(n * MIN_BAR_SHARE))
    if lo < min_bar:
        lo = 0
    if n - hi < min_bar:
        hi = n
    return lo, hi

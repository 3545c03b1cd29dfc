"""Clean references pass 1 can give the matte beyond the detector's change points.

Why: a clean reference (the mark's window just before it arrives or after it leaves) is what
makes the matte exact (bench/README.md), and two cases had none. Large frames (1080p and up) keep
only the detector's resized image between samples (whole decoded frames would not fit the memory
budget), so a change point between samples found no full-resolution frame: ``PartialFrame`` keeps
full-resolution windows around the known mark positions instead. And regions with time ranges
(the user's exact boxes) are change points too: ``RegionReferences`` reports them.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from orchestrator.pipeline import boxes as bx

# Full-resolution context kept around a known mark window (px): the reference is cut from a
# window centred on the detection, which may sit a little off the first one.
PARTIAL_MARGIN = 32


def area_rgb(frame, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """RGB pixels of an area of a decoded frame, converting only that area for yuv420p."""
    import cv2  # the orchestrator's dependency (inpaint.py)

    if getattr(getattr(frame, "format", None), "name", None) == "yuv420p":
        x0, y0 = x0 - x0 % 2, y0 - y0 % 2
        x1, y1 = x1 + x1 % 2, y1 + y1 % 2
        h, w = frame.height, frame.width
        planes = [np.frombuffer(p, np.uint8, count=p.line_size * rows).reshape(rows, p.line_size)[:, :cols]
                  for p, rows, cols in zip(frame.planes, (h, h // 2, h // 2), (w, w // 2, w // 2))]
        bw, bh = x1 - x0, y1 - y0
        buf = np.concatenate([planes[0][y0:y1, x0:x1].ravel(),
                              planes[1][y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].ravel(),
                              planes[2][y0 // 2 : y1 // 2, x0 // 2 : x1 // 2].ravel()])
        return cv2.cvtColor(buf.reshape(bh * 3 // 2, bw), cv2.COLOR_YUV2RGB_I420), (x0, y0)
    return frame.to_ndarray(format="rgb24")[y0:y1, x0:x1], (x0, y0)


class PartialFrame:
    """A frame between samples: the detector's resized image plus full-resolution windows around
    the mark positions known so far. ``rgb()`` rebuilds a frame (zeros elsewhere) for references."""

    def __init__(self, resized: np.ndarray, frame, windows: list[np.ndarray]) -> None:
        self.resized = resized
        self.shape = (frame.height, frame.width, 3)
        self.parts: list[tuple[int, int, np.ndarray]] = []
        for win in windows:
            x0, y0 = max(0, int(win[0]) - PARTIAL_MARGIN), max(0, int(win[1]) - PARTIAL_MARGIN)
            x1, y1 = min(frame.width, int(win[2]) + PARTIAL_MARGIN), min(frame.height, int(win[3]) + PARTIAL_MARGIN)
            if x1 > x0 and y1 > y0:
                rgb, (ax, ay) = area_rgb(frame, x0, y0, x1, y1)
                self.parts.append((ax, ay, rgb))

    def rgb(self) -> np.ndarray | None:
        if not self.parts:
            return None
        full = np.zeros(self.shape, np.uint8)
        for x0, y0, rgb in self.parts:
            full[y0 : y0 + rgb.shape[0], x0 : x0 + rgb.shape[1]] = rgb
        return full


class RegionReferences:
    """Clean references at the ends of time-ranged regions: the frame before a region starts (or
    after it ends) shows its window without the mark, when no other region covers it then."""

    def __init__(self, listener) -> None:
        self.listener = listener
        self.partners = max(1, int(getattr(listener, "reference_partners", 3)))
        self.recent: deque = deque(maxlen=self.partners + 1)  # (index, frame, boxes)
        self.waiting: list[list] = []  # [clean index, clean rgb, box, partners still wanted]

    def take(self, index: int, frame, boxes: np.ndarray) -> None:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if self.recent:
            _, prev_frame, prev_boxes = self.recent[-1]
            for box in boxes:  # arrived: the previous frame is clean there
                if not _covered(box, prev_boxes):
                    self.waiting.append([index - 1, prev_frame.to_ndarray(format="rgb24"), box, self.partners])
            for box in prev_boxes:  # left: this frame is clean there, the last ones are its partners
                if not _covered(box, boxes):
                    self._left(index, frame, box)
        for item in self.waiting:
            if _covered(item[2], boxes):
                self.listener.on_clean(item[0], item[1], item[2], index, frame.to_ndarray(format="rgb24"))
            item[3] -= 1
        self.waiting = [w for w in self.waiting if w[3] > 0]
        self.recent.append((index, frame, boxes))

    def _left(self, index: int, frame, box: np.ndarray) -> None:
        clean = frame.to_ndarray(format="rgb24")
        for partner_index, partner, partner_boxes in reversed(self.recent):
            if _covered(box, partner_boxes):
                self.listener.on_clean(index, clean, box, partner_index, partner.to_ndarray(format="rgb24"))


def _covered(box: np.ndarray, boxes: np.ndarray) -> bool:
    if not len(boxes):
        return False
    return bool(bx.iou_matrix(np.asarray(box, np.float64)[None], np.asarray(boxes, np.float64)).max() > 0.1)

"""The detector as pass 1 calls it: frames -> letterboxed uint8 batches -> boxes in frame pixels.

A portrait picture pillarboxed into a landscape frame holds a mark sized to the picture: 60×20 px
in a 1280×704 frame, ≈30×10 after the whole frame's 640 letterbox, too small for the detector. So
once the first frames show black bars, the detector sees the picture alone (``View``: the frame
scaled so the picture fills the letterbox, the bars cut off) and its boxes are mapped back. The
view is judged from the first frame that shows a picture on (a false place on the first frames
when they went whole: held-out pillarbox 8003) and may still change over ``BARS_LOOK`` frames (a
picture whose edge is dark at first); each image is decoded with the view it was cut with. A frame whose bars are not
dark (a fade, a white mark over a bar) is sent whole: nothing bright is ever cut from the
detector's view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from orchestrator.pipeline import boxes as bx
from orchestrator.pipeline.decode import Decoded, letterbox_params
from orchestrator.pipeline.discover.picture import PictureAccumulator

LOGGER = logging.getLogger(__name__)

DETECTOR_SIZE = 640
PAD_VALUE = 114
BARS_LOOK = 2  # frames showing a picture over which its view may still change (it applies from frame 0)
BARS_WAIT = 60  # frames of black (or of a mark over black) after which no picture is looked for
MIN_PICTURE = 0.25  # of the frame's width and height: a smaller bright area is not yet a picture (a mark over black)
BARS_MAX_SHARE = 0.9  # crop only when the picture is at most this share of the frame's width or height
BARS_DARK = 48  # a frame's bars are used as bars while no pixel of them is brighter (RGB)
BARS_MARGIN = 2  # px of the scaled frame next to the picture not checked (scaling blends the edge)


@dataclass(frozen=True)
class View:
    """One way of showing the frame to the detector: the frame scaled by ``scale`` to
    (``full_w``, ``full_h``), of which the window (``x0``, ``y0``, ``w``, ``h``) is letterboxed."""

    scale: float
    full_w: int
    full_h: int
    x0: int
    y0: int
    w: int
    h: int

    @classmethod
    def whole(cls, width: int, height: int, size: int = DETECTOR_SIZE) -> "View":
        r, new_w, new_h, _, _ = letterbox_params(width, height, size)
        return cls(r, new_w, new_h, 0, 0, new_w, new_h)

    @classmethod
    def picture(cls, box: tuple[int, int, int, int], width: int, height: int, size: int = DETECTOR_SIZE) -> "View":
        """The picture ``box`` (x0, y0, x1, y1 in frame pixels) filling the letterbox."""
        x0, y0, x1, y1 = box
        s = min(size / (x1 - x0), size / (y1 - y0))
        full_w, full_h = max(1, round(width * s)), max(1, round(height * s))
        sx0, sy0 = min(round(x0 * s), full_w - 1), min(round(y0 * s), full_h - 1)
        w = max(1, min(round((x1 - x0) * s), full_w - sx0, size))
        h = max(1, min(round((y1 - y0) * s), full_h - sy0, size))
        return cls(s, full_w, full_h, sx0, sy0, w, h)

    @property
    def pad_x(self) -> int:
        return (DETECTOR_SIZE - self.w) // 2

    @property
    def pad_y(self) -> int:
        return (DETECTOR_SIZE - self.h) // 2

    @property
    def shape(self) -> tuple[int, int]:
        return self.h, self.w

    def bars_dark(self, scaled: np.ndarray) -> bool:
        """True when the scaled frame is dark everywhere outside the window (its bars are bars)."""
        m = BARS_MARGIN
        parts = (scaled[:, : max(0, self.x0 - m)], scaled[:, self.x0 + self.w + m :],
                 scaled[: max(0, self.y0 - m)], scaled[self.y0 + self.h + m :])
        return all(p.size == 0 or int(p.max()) <= BARS_DARK for p in parts)

    def decode(self, output: np.ndarray, *, conf: float, iou: float, width: int, height: int) -> np.ndarray:
        """The detector's output for an image of this view -> [n,5] boxes in frame pixels."""
        # frame x = (letterbox x - pad_x + x0) / scale: the window's offset folds into the padding
        return bx.decode_detections(output, conf=conf, iou=iou, scale=self.scale, pad_x=self.pad_x - self.x0,
                                    pad_y=self.pad_y - self.y0, width=width, height=height)


class Detector:
    """Decoded frames -> letterboxed uint8 NHWC batches -> per-image [n,5] boxes (frame pixels)
    after NMS; the picture inside black bars alone once the first frames show bars (module doc)."""

    def __init__(self, client, *, width: int, height: int, conf: float = 0.25, iou: float = 0.45,
                 model: str = "detector", batch: int = 8, crop_bars: bool = True) -> None:
        self.client = client
        self.model = model
        self.batch = max(1, batch)
        self.conf, self.iou = conf, iou
        self.width, self.height = width, height
        self.whole = View.whole(width, height)
        self.view: View | None = None  # the picture's view, once bars were seen
        self._views: dict[tuple[int, int], View] = {}  # every view cut with, by its image's shape
        self._bars: PictureAccumulator | None = PictureAccumulator() if crop_bars else None
        self._looked = 0  # frames that showed a picture
        self._waited = 0  # frames looked at
        self.images_sent = 0
        self.cropped = 0  # images sent as the picture alone

    def resize(self, decoded: Decoded) -> np.ndarray:
        """The detector's image of a frame (without the letterbox's padding): [h, w, 3]."""
        small = None
        if self._bars is not None:
            small = self._whole(decoded)
            self._look(small)
        view = self.view
        if view is not None:
            scaled = decoded.frame.reformat(width=view.full_w, height=view.full_h, format="rgb24",
                                            interpolation="BILINEAR").to_ndarray()
            if view.bars_dark(scaled):
                self.cropped += 1
                return scaled[view.y0 : view.y0 + view.h, view.x0 : view.x0 + view.w]
        return self._whole(decoded) if small is None else small

    def _whole(self, decoded: Decoded) -> np.ndarray:
        whole = self.whole
        return decoded.frame.reformat(width=whole.w, height=whole.h, format="rgb24",
                                      interpolation="BILINEAR").to_ndarray()

    def _look(self, small: np.ndarray) -> None:
        """Judge the picture area on the whole images seen so far (up to ``BARS_LOOK`` showing one); the
        view applies to the image just seen too. A view whose image shape another view already
        has is not taken (an image's shape says which view cut it)."""
        self._bars.add(small.max(2))
        self._waited += 1
        area = self._bars.area(self.width, self.height)
        x0, y0, x1, y1 = area.box
        if x1 - x0 < MIN_PICTURE * self.width or y1 - y0 < MIN_PICTURE * self.height:
            if self._waited >= BARS_WAIT:
                self._bars = None
            return  # black so far, or a mark over black: no picture to judge yet
        self._looked += 1
        if self._looked >= BARS_LOOK:
            self._bars = None
        view = picture_view(area.box, self.width, self.height) if area.has_bars else None
        if view is not None and self._views.setdefault(view.shape, view) != view:
            return
        if view != self.view and view is not None:
            LOGGER.info("detector: black bars, the picture %s alone is letterboxed", area.box)
        self.view = view

    def _view_of(self, image: np.ndarray) -> View:
        return self._views.get(image.shape[:2], self.whole)

    def _batch(self, images: list[np.ndarray]) -> np.ndarray:
        out = np.full((len(images), DETECTOR_SIZE, DETECTOR_SIZE, 3), PAD_VALUE, np.uint8)
        for i, img in enumerate(images):
            v = self._view_of(img)
            out[i, v.pad_y : v.pad_y + v.h, v.pad_x : v.pad_x + v.w] = img
        return out

    def submit(self, images: list[np.ndarray]) -> list:
        """Send ``images`` in batches; returns the futures (with each image's view) in order."""
        futures = []
        for start in range(0, len(images), self.batch):
            chunk = images[start : start + self.batch]
            views = [self._view_of(img) for img in chunk]
            futures.append((self.client.submit(self.model, {"images": self._batch(chunk)}, ["output0"]), views))
            self.images_sent += len(chunk)
        return futures

    def collect(self, futures: list) -> list[np.ndarray]:
        results = []
        for future, views in futures:
            for out, view in zip(future.result()["output0"], views):
                results.append(view.decode(out, conf=self.conf, iou=self.iou, width=self.width, height=self.height))
        return results

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return self.collect(self.submit(images)) if images else []


def picture_view(box: tuple[int, int, int, int], width: int, height: int) -> View | None:
    """The view of the picture inside bars, or None when cropping gains little (or is degenerate)."""
    x0, y0, x1, y1 = box
    if x1 - x0 > BARS_MAX_SHARE * width and y1 - y0 > BARS_MAX_SHARE * height:
        return None
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    view = View.picture(box, width, height)
    return None if view.shape == View.whole(width, height).shape else view

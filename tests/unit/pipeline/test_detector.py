"""The detector's view of a frame: the picture inside black bars alone, boxes mapped back to the frame."""

from __future__ import annotations

from concurrent.futures import Future

import av
import numpy as np

from orchestrator.pipeline.decode import Decoded
from orchestrator.pipeline.detector import DETECTOR_SIZE, Detector, View, picture_view

W, H = 1280, 704
PICTURE = (442, 0, 838, 704)  # a 396-px portrait picture pillarboxed in 1280x704
MARK = (520, 250, 580, 270)  # a 60x20 mark inside it


class BrightBoxModel:
    """Stands in for the detector model: one box around the bright pixels of each letterboxed image."""

    def __init__(self):
        self.images = []

    def submit(self, model, inputs, outputs):
        batch = inputs["images"]
        self.images += list(batch)
        out = np.zeros((len(batch), 5, 8400), np.float32)
        for i, img in enumerate(batch):
            ys, xs = np.nonzero(img.min(2) > 200)
            if len(xs):
                x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
                out[i, :, 0] = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.9]
        future = Future()
        future.set_result({"output0": out})
        return future


def frame(mark=MARK, bar_value=16, picture_value=90) -> Decoded:
    rgb = np.full((H, W, 3), bar_value, np.uint8)
    x0, y0, x1, y1 = PICTURE
    rgb[y0:y1, x0:x1] = picture_value
    if mark is not None:
        rgb[mark[1] : mark[3], mark[0] : mark[2]] = 255
    return Decoded(0, 0, av.VideoFrame.from_ndarray(rgb, format="rgb24"))


def test_picture_view_maps_letterbox_boxes_back_to_the_frame():
    view = View.picture(PICTURE, W, H)
    assert view.h == DETECTOR_SIZE and abs(view.w - 396 * 640 / 704) <= 1
    # A box drawn in the view's letterbox at the mark's scaled place comes back at the mark.
    s = view.scale
    lx0, ly0 = MARK[0] * s - view.x0 + view.pad_x, MARK[1] * s - view.y0 + view.pad_y
    w, h = (MARK[2] - MARK[0]) * s, (MARK[3] - MARK[1]) * s
    out = np.zeros((5, 8400), np.float32)
    out[:, 0] = [lx0 + w / 2, ly0 + h / 2, w, h, 0.9]
    boxes = view.decode(out, conf=0.25, iou=0.45, width=W, height=H)
    np.testing.assert_allclose(boxes[0, :4], MARK, atol=1.0)


def test_whole_view_is_the_plain_letterbox():
    view = View.whole(640, 360)
    assert (view.scale, view.w, view.h, view.pad_x, view.pad_y) == (1.0, 640, 360, 0, 140)
    assert picture_view((0, 0, 640, 360), 640, 360) is None  # no bars: nothing to crop
    assert picture_view((2, 0, 638, 360), 640, 360) is None  # a thin edge: not worth a crop


def test_detector_crops_to_the_picture_from_the_first_frame_and_maps_boxes_back():
    model = BrightBoxModel()
    det = Detector(model, width=W, height=H)
    img = det.resize(frame())  # frame 0: judged and cut at once (whole, it made a false place)
    assert det.view is not None
    assert img.shape[:2] == det.view.shape  # the picture alone, bars cut off
    boxes = det.detect([img])[0]
    np.testing.assert_allclose(boxes[0, :4], MARK, atol=2.5)
    # The mark is 1.8x wider in the detector's image than in the whole frame's letterbox (30 px).
    lit = np.nonzero(model.images[-1].min(2) > 200)[1]
    assert lit.max() - lit.min() + 1 >= 1.7 * 60 * det.whole.scale


def test_a_frame_with_something_bright_in_the_bars_is_sent_whole():
    model = BrightBoxModel()
    det = Detector(model, width=W, height=H)
    for _ in range(2):
        det.resize(frame(mark=None))
    in_bar = (100, 300, 160, 320)  # a white overlay over the left bar
    img = det.resize(frame(mark=in_bar))
    assert img.shape[:2] == det.whole.shape
    boxes = det.detect([img])[0]
    np.testing.assert_allclose(boxes[0, :4], in_bar, atol=3.0)


def test_no_crop_without_bars_or_when_disabled():
    det = Detector(BrightBoxModel(), width=W, height=H)
    for _ in range(2):
        det.resize(frame(mark=None, bar_value=90))
    assert det.view is None
    off = Detector(BrightBoxModel(), width=W, height=H, crop_bars=False)
    for _ in range(3):
        assert off.resize(frame(mark=None)).shape[:2] == off.whole.shape
    assert off.view is None


def test_black_first_frames_wait_for_the_picture_and_every_image_keeps_its_view():
    model = BrightBoxModel()
    det = Detector(model, width=W, height=H)
    black = det.resize(frame(mark=None, picture_value=16))
    over_black = det.resize(frame(picture_value=16))  # a mark over black is not a picture
    assert black.shape[:2] == over_black.shape[:2] == det.whole.shape and det.view is None
    first = det.resize(frame())
    assert det.view is not None and first.shape[:2] == det.view.shape
    # Boxes come back at the mark for the whole images sent before the view and the cut ones after.
    boxes = det.detect([over_black, first, det.resize(frame())])
    for b in boxes:
        np.testing.assert_allclose(b[0, :4], MARK, atol=3.0)


def test_a_view_judged_on_the_first_frame_widens_when_the_picture_does_and_old_images_keep_theirs():
    model = BrightBoxModel()
    det = Detector(model, width=W, height=H)
    narrow = (400, 0, 880, 704)  # frame 0's picture has dark edges: frame 1 shows it wider
    rgb = np.full((H, W, 3), 16, np.uint8)
    rgb[:, PICTURE[0] + 40 : PICTURE[2] - 40] = 90
    rgb[MARK[1] : MARK[3], MARK[0] : MARK[2]] = 255
    first = det.resize(Decoded(0, 0, av.VideoFrame.from_ndarray(rgb, format="rgb24")))
    rgb[:, narrow[0] : narrow[2]] = 90
    rgb[MARK[1] : MARK[3], MARK[0] : MARK[2]] = 255
    second = det.resize(Decoded(1, 1, av.VideoFrame.from_ndarray(rgb, format="rgb24")))
    assert first.shape != second.shape and second.shape[:2] == det.view.shape
    for b in det.detect([first, second]):
        np.testing.assert_allclose(b[0, :4], MARK, atol=3.0)

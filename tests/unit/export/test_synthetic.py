"""Detector training samples (export.synthetic) and the detection scoring (export.eval_detector)."""

from __future__ import annotations

import numpy as np
import pytest

from export import eval_detector, synthetic
from export import watermark as wm


def test_samples_are_deterministic_and_labelled_inside_the_crop():
    a = synthetic.make_sample(3, 0, 5, crop=192)
    b = synthetic.make_sample(3, 0, 5, crop=192)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes
    assert a.image.shape == (192, 192, 3)
    for k in range(30):
        for cx, cy, w, h in synthetic.make_sample(3, 0, k, crop=192).boxes:
            assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1
            assert 0.8 < w / h < 7.0  # the cloud alone (~1) up to a long @username line


def test_negatives_carry_no_label_and_positives_carry_the_mark():
    pos = [synthetic.make_sample(1, 0, k, negative_rate=0.0) for k in range(6)]
    neg = [synthetic.make_sample(1, 0, k, negative_rate=1.0) for k in range(6)]
    assert all(len(s.boxes) == 1 for s in pos) and not any(s.boxes for s in neg)
    for s in pos:  # the labelled box holds bright mark pixels
        cx, cy, w, h = s.boxes[0]
        x1, y1 = int((cx - w / 2) * 640), int((cy - h / 2) * 640)
        x2, y2 = int(np.ceil((cx + w / 2) * 640)), int(np.ceil((cy + h / 2) * 640))
        assert s.image[y1:y2, x1:x2].max() > 150


def test_bar_layouts_put_black_bars_around_the_picture():
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(40):
        fw, fh, (px, py, pw, ph) = synthetic._layout(rng)
        assert px + pw <= fw and py + ph <= fh
        seen += (pw, ph) != (fw, fh)
    assert 5 <= seen <= 25  # about BARS_RATE of the frames
    with_bars = [synthetic._render_frame(np.random.default_rng([9, k]), (), True)[0] for k in range(30)]
    assert any(f[:, :8].max() <= 30 and f[:, -8:].max() <= 30 and f.mean() > 20 for f in with_bars)


def test_other_logos_are_not_the_ring_and_leave_the_frame_shape():
    img = np.zeros((200, 300, 3), np.uint8) + 60
    for k in range(8):
        out = synthetic._other_logo(img, np.random.default_rng(k))
        assert out.shape == img.shape and (out != img).any()


class _BoxSession:
    """Stands in for onnxruntime: scores 0.9 at given 640-letterbox boxes (x1, y1, x2, y2)."""

    def __init__(self, boxes_640):
        self.boxes = boxes_640

    def run(self, _names, feeds):
        n = feeds["images"].shape[0]
        out = np.zeros((n, 5, 8400), np.float32)
        for k, (x1, y1, x2, y2) in enumerate(self.boxes):
            out[:, :, k] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.9)
        return [out]


def test_scoring_counts_hits_misses_and_false_detections():
    truth = wm.ClipTruth(640, 360, 30.0, 4, seed=0, jitter=0)
    box = truth.boxes[0]
    r, left, top = 1.0, 0, 140  # 640x360 letterboxed into 640x640
    on = (box[0] * r + left, box[1] * r + top, box[2] * r + left, box[3] * r + top)
    frames = [truth.marked_frame(i) for i in range(4)]
    hit = eval_detector.evaluate_clip(_BoxSession([on]), truth, frames)
    assert hit["recall"] == 1.0 and hit["precision"] == 1.0 and hit["frames_with_false_detection"] == 0
    off = (10, 150, 60, 170)
    both = eval_detector.evaluate_clip(_BoxSession([on, off]), truth, frames)
    assert both["recall"] == 1.0 and both["precision"] == pytest.approx(0.5)
    assert both["frames_with_false_detection"] == 4
    miss = eval_detector.evaluate_clip(_BoxSession([off]), truth, frames)
    assert miss["recall"] == 0.0 and miss["precision"] == 0.0

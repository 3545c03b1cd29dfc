"""Template → synthetic data → YOLO training → ONNX export, and the committed demo detector at work.

No Triton here: these check the training pipeline end to end on a tiny set (seconds of training) and
that ``export/assets/detector_demo.onnx`` finds the mark on a freshly generated H.264 clip.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from export import detector, synthetic, train_detector
from export import watermark as wm


def test_dataset_labels_match_the_composited_mark(tmp_path):
    data_yaml = synthetic.generate_dataset(tmp_path / "ds", n_train=12, n_val=3, crop=320, seed=5)
    assert "watermark" in data_yaml.read_text()
    labels = sorted((tmp_path / "ds" / "labels" / "train").glob("*.txt"))
    images = sorted((tmp_path / "ds" / "images" / "train").glob("*.jpg"))
    assert len(labels) == len(images) == 12
    rows = [line.split() for p in labels for line in p.read_text().splitlines()]
    assert rows, "some images must carry the mark"
    for cls, *xywh in rows:
        cx, cy, w, h = map(float, xywh)
        assert cls == "0" and 0 < w < 0.6 and 0 < h < 0.4
        assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1
    # Regenerating a sample is deterministic and its box covers the bright mark pixels.
    a = synthetic.make_sample(5, 0, 0, crop=320)
    b = synthetic.make_sample(5, 0, 0, crop=320)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes


def test_quick_training_exports_a_contract_onnx(tmp_path):
    out = tmp_path / "detector.onnx"
    report = train_detector.train_detector(out, work_dir=tmp_path / "work", n_train=16, n_val=4, crop=128,
                                           time_minutes=None, epochs=1, batch=8, evaluate=False)
    detector.check_onnx(out)
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["training"]["epochs_run"] == 1 and written["dataset"]["train"] == 16
    assert report["onnx"]["bytes"] == out.stat().st_size < 8_000_000
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    pred = session.run(["output0"], {"images": np.zeros((2, 640, 640, 3), np.uint8)})[0]
    assert pred.shape == (2, 5, 8400) and np.isfinite(pred).all()


def test_demo_detector_finds_the_mark_on_a_generated_clip(tmp_path):
    onnx_path = train_detector.DEMO_ONNX
    assert onnx_path.exists(), "export/assets/detector_demo.onnx is committed; re-create: python -m export.train_detector"
    detector.check_onnx(onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    path = tmp_path / "clip.mp4"
    # Background held out of training; 3 s at 20 fps crosses one jump of the mark.
    truth = wm.make_clip(path, width=640, height=360, fps=20, seconds=3.0, seed=7, opacity=0.7,
                         background="photo:chelsea", audio=False)
    result = train_detector.evaluate_clip(session, truth, train_detector.decode_rgb(path))
    assert result["marked_frames"] == 60
    assert result["recall"] >= 0.9, result
    assert result["mean_iou"] >= 0.65, result
    assert result["precision_on_mark"] >= 0.95, result  # no detections off the mark
    # A clean clip (same kind of content, no mark) yields (almost) no detections.
    clean = tmp_path / "clean.mp4"
    wm.make_clip(clean, width=640, height=360, fps=20, seconds=1.0, seed=8, background="photo:grace_hopper",
                 audio=False, marked=False)
    dets = train_detector.detect(session, train_detector.decode_rgb(clean))
    assert sum(1 for d in dets if d) <= 2

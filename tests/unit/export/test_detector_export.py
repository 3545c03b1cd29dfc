"""YOLO → ONNX export (export.detector): contract tensors, dynamic batch, ONNX Runtime == PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export import detector


@pytest.fixture(scope="module")
def random_yolo11n(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "detector.onnx"
    return detector.export_detector(path, random_init=True, model_yaml="yolo11n.yaml")


def test_onnx_has_the_contract_tensors(random_yolo11n):
    detector.check_onnx(random_yolo11n)
    model = onnx.load(str(random_yolo11n))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert out.name == "output0" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [640, 640, 3]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim][1:] == [5, 8400]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["imgsz"] == "640" and "random-init" in meta["source"]


def test_dynamic_batch_and_onnxruntime_matches_torch(random_yolo11n):
    session = ort.InferenceSession(str(random_yolo11n), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 640, 640, 3), dtype=np.uint8)
    one = session.run(["output0"], {"images": images[:1]})[0]
    three = session.run(["output0"], {"images": images})[0]
    assert one.shape == (1, 5, 8400) and three.shape == (3, 5, 8400) and three.dtype == np.float32
    assert np.allclose(three[:1], one, atol=1e-3)  # batching does not change a frame's result

    # Reference: the UNfused Ultralytics model on float NCHW input in [0, 1].
    model = detector.load_detection_model(random_init=True, model_yaml="yolo11n.yaml")
    with torch.no_grad():
        ref = model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)[0].numpy()
    assert ref.shape == three.shape
    assert np.abs(three[:, :4] - ref[:, :4]).max() < 0.05  # pixels
    assert np.abs(three[:, 4] - ref[:, 4]).max() < 1e-3
    assert np.all((three[:, 4] >= 0) & (three[:, 4] <= 1))  # scores are already sigmoid


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        detector.export_detector(tmp_path / "x.onnx", weights=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="exactly one"):
        detector.export_detector(tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="multiple of 32"):
        detector.export_detector(tmp_path / "x.onnx", random_init=True, imgsz=600)
    assert detector.main(["--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()

"""Every exported graph keeps UINT8 at its edges (input → Cast, Cast → output): TensorRT builds no
other form. Walks the committed assets and fresh exports of each model kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from export.graphs import cast_inputs_first, main, uint8_violations

ASSETS = Path(__file__).resolve().parents[2] / "export" / "assets"


@pytest.mark.parametrize("path", sorted(ASSETS.glob("*.onnx")), ids=lambda p: p.name)
def test_committed_assets_have_uint8_only_at_the_edges(path):
    assert uint8_violations(onnx.load(str(path))) == []


def test_fresh_exports_have_uint8_only_at_the_edges(tmp_path):
    from export.fallback import export_fallback
    from export.inpainter import export_lama
    from export.lama import LamaConfig

    fallback = export_fallback(tmp_path / "fallback.onnx", crop=64)
    lama = export_lama(tmp_path / "lama.onnx", weights=None, random_init=True, crop=64,
                       config=LamaConfig(ngf=8, n_blocks=1))
    for path in (fallback, lama):
        assert uint8_violations(onnx.load(str(path))) == [], path.name


def test_fresh_detector_export_has_uint8_only_at_the_edges(tmp_path):
    from export.detector import export_detector

    path = export_detector(tmp_path / "det.onnx", random_init=True, model_yaml="yolo11n.yaml", imgsz=64,
                           verify=False)
    model = onnx.load(str(path))
    assert uint8_violations(model) == []
    first = [n for n in model.graph.node if "images" in n.input]
    assert [n.op_type for n in first] == ["Cast"]


def _model(nodes, inputs, outputs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _u8(name, shape=(1, 4, 4, 3)):
    return helper.make_tensor_value_info(name, TensorProto.UINT8, list(shape))


def _f32(name, shape=(1, 3, 4, 4)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def test_the_check_names_each_bad_form():
    transpose_first = _model([helper.make_node("Transpose", ["images"], ["t"], perm=[0, 3, 1, 2]),
                              helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT)],
                             [_u8("images")], [_f32("y")])
    problems = uint8_violations(transpose_first)
    assert any("feeds Transpose" in p for p in problems)
    where_on_raw = _model([helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
                           helper.make_node("Greater", ["f", "f"], ["g"]),
                           helper.make_node("Cast", ["f"], ["p"], to=TensorProto.UINT8),
                           helper.make_node("Where", ["g", "p", "image"], ["output"])],
                          [_u8("image")], [_u8("output")])
    problems = uint8_violations(where_on_raw)
    assert any("feeds Where" in p for p in problems)
    assert any("'output' comes from Where" in p for p in problems)
    assert any("used inside the graph" in p for p in problems)
    good = _model([helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
                   helper.make_node("Cast", ["f"], ["output"], to=TensorProto.UINT8)],
                  [_u8("image")], [_u8("output")])
    assert uint8_violations(good) == []


def test_cast_inputs_first_repairs_transpose_then_cast_with_the_same_result(tmp_path):
    model = _model([helper.make_node("Transpose", ["images"], ["t"], perm=[0, 3, 1, 2]),
                    helper.make_node("Cast", ["t"], ["c"], to=TensorProto.FLOAT),
                    helper.make_node("Relu", ["c"], ["y"])],
                   [_u8("images")], [_f32("y")])
    x = np.random.default_rng(0).integers(0, 256, (1, 4, 4, 3), dtype=np.uint8)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"images": x})[0]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert main([str(path)]) == 1  # the CLI reports it
    assert main(["--fix", str(path)]) == 0
    fixed = onnx.load(str(path))
    onnx.checker.check_model(fixed)
    assert uint8_violations(fixed) == []
    got = ort.InferenceSession(fixed.SerializeToString()).run(None, {"images": x})[0]
    np.testing.assert_array_equal(got, want)
    assert cast_inputs_first(fixed) == 0  # nothing left to do

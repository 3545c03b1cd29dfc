"""A CPU model repository for the pipeline tests: the committed weight-free inpainters (512, 256)
and the committed demo detector when present, else a detector that never finds anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.repository import write_repository

ASSETS = Path(__file__).resolve().parents[2] / "export" / "assets"


def _batch_detector_onnx(path: Path, name: str, fill: onnx.NodeProto, extra: tuple = ()) -> Path:
    """images uint8 [B,640,640,3] -> output0 float32 [B,5,8400], made by ``fill`` from ``out_shape``."""
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "one"], ["batch"]),
        helper.make_node("Concat", ["batch", "tail"], ["out_shape"], axis=0),
        fill,
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("tail", TensorProto.INT64, [2], [5, 8400]),
        *extra,
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["B", 640, 640, 3])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["B", 5, 8400])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def blind_detector_onnx(path: Path) -> Path:
    """A detector whose output is all zeros (no detections)."""
    fill = helper.make_node("ConstantOfShape", ["out_shape"], ["output0"],
                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]))
    return _batch_detector_onnx(path, "blind_detector", fill)


def fixed_box_detector_onnx(path: Path, box: tuple[float, float, float, float], score: float = 0.9) -> Path:
    """A detector that reports one box (cx, cy, w, h in letterbox pixels) in every image: the
    false position a weak detector finds on clean footage."""
    const = np.zeros((1, 5, 8400), np.float32)
    const[0, :4, 0] = box
    const[0, 4, 0] = score
    fill = helper.make_node("Expand", ["det", "out_shape"], ["output0"])
    return _batch_detector_onnx(path, "fixed_box_detector", fill, (numpy_helper.from_array(const, "det"),))


def demo_detector() -> Path | None:
    path = ASSETS / "detector_demo.onnx"
    return path if path.is_file() else None


def make_pipeline_repository(root: Path, *, detector: Path | None = None, sizes=(512, 256),
                             weights: str | None = None) -> Path:
    """``weights``: the detector's provenance parameter (``demo`` lets discovery lead)."""
    root.mkdir(parents=True, exist_ok=True)
    det = detector or blind_detector_onnx(root.parent / "blind_detector.onnx")
    write_repository(root, target="cpu", detector_onnx=det,
                     inpainter_onnx={s: ASSETS / f"inpainter_fallback_{s}.onnx" for s in sizes},
                     cpu_threads=1, detector_weights=weights)
    return root

"""Ultralytics YOLO detector → ONNX with the tensors the Triton ``detector`` model serves.

Contract (docs/CONTRACTS.md): input ``images`` UINT8 [B, 640, 640, 3] (NHWC RGB, letterboxed by the
pipeline), output ``output0`` FP32 [B, 5, 8400] = cx, cy, w, h (input pixels), sigmoid score of
class 0. The uint8 → float /255 and NHWC → NCHW live in the graph so clients send raw frames.
NMS stays in the orchestrator (one implementation for every backend, easy to tune).

We export the torch module ourselves (a thin wrapper around ``model.model``) instead of calling
Ultralytics' exporter, so the graph has exactly our input/output tensors with no post-hoc surgery.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "output0"
OPSET = 17


class DetectorExportError(RuntimeError):
    """The exported graph does not match the contract or disagrees with PyTorch."""


def load_detection_model(*, weights: Path | None = None, random_init: bool = False,
                         model_yaml: str = "yolo11s.yaml", nc: int = 1):
    """The Ultralytics ``DetectionModel`` (torch) from a ``.pt`` file or randomly initialised.

    Random init builds the architecture from Ultralytics' bundled yaml: no download.
    """
    import torch
    from ultralytics.nn.tasks import DetectionModel

    if (weights is None) == (not random_init):
        raise ValueError("give exactly one of weights=PATH or random_init=True")
    if random_init:
        torch.manual_seed(0)
        model = DetectionModel(model_yaml, nc=nc, verbose=False)
    else:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"detector weights not found: {weights}")
        from ultralytics import YOLO

        model = YOLO(str(weights)).model
        if not hasattr(model, "yaml"):
            raise ValueError(f"{weights} does not hold an Ultralytics detection model")
    return model.float().eval()


def _wrapper(model, imgsz: int):
    import torch
    from ultralytics.nn.modules.head import Detect

    for m in model.modules():
        if isinstance(m, Detect):
            m.export = True  # return only the decoded [B, 4+nc, N] tensor
            m.format = "onnx"
            m.dynamic = False  # anchors depend only on H, W which are fixed at imgsz
    if hasattr(model, "fuse"):
        model = model.fuse(verbose=False) if "verbose" in model.fuse.__code__.co_varnames else model.fuse()

    class UInt8NHWC(torch.nn.Module):
        """uint8 NHWC RGB in → YOLO's float NCHW in [0, 1] → first output."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, images):
            # Cast first: TensorRT takes a UINT8 input only into a Cast (export.graphs).
            x = images.float().permute(0, 3, 1, 2) / 255.0
            y = self.inner(x)
            return y[0] if isinstance(y, (list, tuple)) else y

    wrapped = UInt8NHWC(model).eval()
    with torch.no_grad():  # builds the anchor grid for imgsz once
        wrapped(torch.zeros(1, imgsz, imgsz, 3, dtype=torch.uint8))
    return wrapped


def check_onnx(path: Path, *, imgsz: int = 640, nc: int = 1) -> None:
    """Raise :class:`DetectorExportError` unless ``path`` has the contract's tensors."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ins, outs = model.graph.input, model.graph.output
    if [i.name for i in ins] != [INPUT_NAME] or [o.name for o in outs] != [OUTPUT_NAME]:
        raise DetectorExportError(f"tensors {[i.name for i in ins]} -> {[o.name for o in outs]}, "
                                  f"want [{INPUT_NAME}] -> [{OUTPUT_NAME}]")
    if ins[0].type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        raise DetectorExportError("input must be UINT8")

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    in_dims, out_dims = dims(ins[0]), dims(outs[0])
    if in_dims[1:] != [imgsz, imgsz, 3] or not isinstance(in_dims[0], str):
        raise DetectorExportError(f"input dims {in_dims}, want [batch, {imgsz}, {imgsz}, 3]")
    anchors = sum((imgsz // s) ** 2 for s in (8, 16, 32))
    if out_dims[1:] != [4 + nc, anchors]:
        raise DetectorExportError(f"output dims {out_dims}, want [batch, {4 + nc}, {anchors}]")


def export_detector(out_path: str | Path, *, weights: Path | None = None, random_init: bool = False,
                    model_yaml: str = "yolo11s.yaml", imgsz: int = 640, verify: bool = True,
                    atol: float = 5e-3) -> Path:
    """Export YOLO weights (or a random-init ``model_yaml``) to ONNX; returns ``out_path``.

    With ``verify`` the ONNX file is run with onnxruntime on a batch of 2 and compared with the
    (fused) torch model: boxes within ``atol`` pixels * scale, scores within ``atol``.
    """
    import torch

    if imgsz % 32:
        raise ValueError(f"imgsz must be a multiple of 32, got {imgsz}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_detection_model(weights=weights, random_init=random_init, model_yaml=model_yaml)
    nc = int(getattr(model, "nc", None) or model.yaml.get("nc", 1))
    if nc != 1:
        raise ValueError(f"the detector contract has one class (watermark); these weights have {nc}")
    wrapped = _wrapper(model, imgsz)
    dummy = torch.zeros(1, imgsz, imgsz, 3, dtype=torch.uint8)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with torch.no_grad():
        torch.onnx.export(
            wrapped, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
    import onnx

    proto = onnx.load(str(tmp))
    meta = {
        "source": str(weights) if weights else f"random-init {model_yaml}",
        "imgsz": str(imgsz), "names": "{0: 'watermark'}", "stride": "32",
        "input": "uint8 NHWC RGB letterboxed (pad 114); /255 in graph",
        "output": "cx,cy,w,h (input pixels), sigmoid score; no NMS",
    }
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    # The TorchScript exporter leaves the output's static dims symbolic: state them (Triton and
    # TensorRT read them from the graph).
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    for dim, value in zip(list(out_dims)[1:], (4 + nc, sum((imgsz // s) ** 2 for s in (8, 16, 32)))):
        dim.Clear()
        dim.dim_value = value
    from export.graphs import uint8_violations

    problems = uint8_violations(proto)
    if problems:
        raise DetectorExportError("TensorRT could not build this graph: " + "; ".join(problems))
    onnx.save(proto, str(tmp))
    check_onnx(tmp, imgsz=imgsz, nc=nc)
    if verify:
        _verify(tmp, wrapped, imgsz, atol)
    tmp.replace(out_path)
    LOGGER.info("exported detector %s (%s) in %.1f s, %.1f MB", out_path, meta["source"],
                time.perf_counter() - t0, out_path.stat().st_size / 1e6)
    return out_path


def _verify(path: Path, wrapped, imgsz: int, atol: float) -> None:
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, imgsz, imgsz, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    with torch.no_grad():
        want = wrapped(torch.from_numpy(images)).numpy()
    if got.shape != want.shape:
        raise DetectorExportError(f"onnxruntime shape {got.shape} != torch {want.shape}")
    box_err = float(np.abs(got[:, :4] - want[:, :4]).max())
    score_err = float(np.abs(got[:, 4:] - want[:, 4:]).max())
    if box_err > atol * imgsz / 10 or score_err > atol:
        raise DetectorExportError(f"onnxruntime disagrees with torch: box {box_err:.4g} px, score {score_err:.4g}")
    LOGGER.info("onnxruntime matches torch: max box error %.2g px, score error %.2g", box_err, score_err)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", type=Path, help="Ultralytics .pt file (one class)")
    src.add_argument("--random-init", action="store_true", help="random weights, no download")
    parser.add_argument("--model-yaml", default="yolo11s.yaml", help="architecture for --random-init")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime vs torch check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = export_detector(args.out, weights=args.weights, random_init=args.random_init,
                               model_yaml=args.model_yaml, imgsz=args.imgsz, verify=not args.no_verify)
    except (ValueError, FileNotFoundError, DetectorExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

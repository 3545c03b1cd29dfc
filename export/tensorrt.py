"""TensorRT engines (FP16, batch optimisation profiles) for the GPU repository, plus their configs.

Run on the GPU host, inside NVIDIA's Triton container (engines are specific to the GPU model and
TensorRT version that build them):

    python -m export.prepare --target gpu                 # ONNX + onnxruntime/TRT configs
    python -m export.tensorrt --repository deploy/gpu/model_repository [--benchmark]

For each model it reads ``<repo>/<name>/1/model.onnx``, builds ``1/model.plan`` with the TensorRT
Python API (or ``trtexec`` when the ``tensorrt`` module is absent) with one optimisation profile
min 1 / opt 8 / max 16 on the batch axis, and rewrites ``config.pbtxt`` as ``tensorrt_plan``.
``--benchmark`` times each engine with ``trtexec --loadEngine`` at batch 1, 8 and 16.

The inpainter graphs have no DFT op (LaMa's FFT is matmuls, see export/lama.py), so TensorRT
takes them whole. On a machine without an NVIDIA GPU this stops with a clear message.
Not run in this repository's CI (no GPU there).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from export.repository import TRT_PROFILE, ModelSpec, detector_spec, inpainter_spec, profile_shapes, write_model

LOGGER = logging.getLogger(__name__)

PROFILE = TRT_PROFILE  # min, opt, max batch (the onnxruntime configs use the same)
TRTEXEC_PATHS = ("trtexec", "/usr/src/tensorrt/bin/trtexec")


class TensorRTError(RuntimeError):
    """No GPU / no TensorRT / a failed build; the message says which."""


def find_gpus() -> list[str]:
    """Names of the NVIDIA GPUs here (``nvidia-smi -L``); raises TensorRTError when there are none."""
    smi = shutil.which("nvidia-smi")
    if smi is None and not Path("/dev/nvidiactl").exists():
        raise TensorRTError(
            "no NVIDIA GPU found (no nvidia-smi, no /dev/nvidiactl): TensorRT engines are built on the "
            "GPU that will run them. Run this inside the Triton container on the GPU host, or serve "
            "deploy/gpu/model_repository as is (onnxruntime backend with the TensorRT accelerator).")
    try:
        out = subprocess.run([smi or "nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TensorRTError(f"no usable NVIDIA GPU: nvidia-smi failed: {exc}") from exc
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    if out.returncode != 0 or not gpus:
        raise TensorRTError(f"no usable NVIDIA GPU: nvidia-smi -L said: {(out.stdout + out.stderr).strip()}")
    return gpus


def find_trtexec() -> str | None:
    for candidate in TRTEXEC_PATHS:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def _shape(spec: ModelSpec, batch: int) -> str:
    return profile_shapes(spec, batch)


def trtexec_build_command(trtexec: str, onnx_file: Path, plan: Path, spec: ModelSpec, *,
                          workspace_mb: int = 4096, profile: tuple[int, int, int] = PROFILE) -> list[str]:
    low, opt, high = profile
    return [
        trtexec, f"--onnx={onnx_file}", f"--saveEngine={plan}", "--fp16",
        f"--minShapes={_shape(spec, low)}", f"--optShapes={_shape(spec, opt)}", f"--maxShapes={_shape(spec, high)}",
        f"--memPoolSize=workspace:{workspace_mb}", "--skipInference",
    ]


def _build_with_python_api(onnx_file: Path, plan: Path, spec: ModelSpec, workspace_mb: int,
                           profile: tuple[int, int, int]) -> None:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT cannot parse {onnx_file}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for t in spec.inputs:
        opt_profile.set_shape(t.name, *[(b, *t.dims) for b in profile])
    config.add_optimization_profile(opt_profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise TensorRTError(f"TensorRT failed to build an engine from {onnx_file} (see its log above)")
    plan.write_bytes(bytes(engine))


@dataclass
class Built:
    model: str
    plan: Path
    seconds: float
    size_mb: float


def build_engine(onnx_file: Path, plan: Path, spec: ModelSpec, *, workspace_mb: int = 4096,
                 profile: tuple[int, int, int] = PROFILE) -> Built:
    start = time.monotonic()
    if importlib.util.find_spec("tensorrt") is not None:
        _build_with_python_api(onnx_file, plan, spec, workspace_mb, profile)
    else:
        trtexec = find_trtexec()
        if trtexec is None:
            raise TensorRTError("neither the tensorrt Python module nor trtexec is installed "
                                "(both are in nvcr.io/nvidia/tritonserver:<ver>-py3 images)")
        result = subprocess.run(trtexec_build_command(trtexec, onnx_file, plan, spec, workspace_mb=workspace_mb,
                                                      profile=profile), capture_output=True, text=True)
        if result.returncode != 0:
            raise TensorRTError(f"trtexec failed for {onnx_file}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return Built(spec.name, plan, time.monotonic() - start, plan.stat().st_size / 1e6)


def benchmark(plan: Path, spec: ModelSpec, batches=(1, 8, 16)) -> dict[int, float]:
    """Mean GPU compute time (ms) per batch with ``trtexec --loadEngine``."""
    trtexec = find_trtexec()
    if trtexec is None:
        raise TensorRTError("--benchmark needs trtexec")
    times = {}
    for batch in batches:
        out = subprocess.run([trtexec, f"--loadEngine={plan}", f"--shapes={_shape(spec, batch)}", "--duration=5"],
                             capture_output=True, text=True)
        match = re.search(r"GPU Compute Time: min = [\d.]+ ms, max = [\d.]+ ms, mean = ([\d.]+) ms", out.stdout)
        if out.returncode != 0 or not match:
            raise TensorRTError(f"trtexec benchmark failed for {plan} at batch {batch}:\n{out.stdout[-2000:]}")
        times[batch] = float(match.group(1))
    return times


def specs_in(repo: Path) -> list[ModelSpec]:
    specs = []
    if (repo / "detector").is_dir():
        specs.append(detector_spec())
    for path in sorted(repo.glob("inpainter*")):
        crop = 512 if path.name == "inpainter" else int(path.name.rsplit("_", 1)[1])
        specs.append(inpainter_spec(crop))
    return specs


def build_repository(repo: Path, *, workspace_mb: int = 4096, bench: bool = False) -> list[Built]:
    gpus = find_gpus()
    LOGGER.info("building TensorRT engines on %s", gpus[0])
    built = []
    for spec in specs_in(repo):
        onnx_file = repo / spec.name / "1" / "model.onnx"
        if not onnx_file.is_file():
            raise TensorRTError(f"{onnx_file} is missing: run python -m export.prepare --target gpu --repository {repo}")
        plan = repo / spec.name / "1" / "model.plan"
        result = build_engine(onnx_file, plan, spec, workspace_mb=workspace_mb)
        write_model(repo, spec, plan, target="gpu-plan")  # config -> tensorrt_plan
        LOGGER.info("%s: %.1f MB engine in %.0f s", spec.name, result.size_mb, result.seconds)
        if bench:
            LOGGER.info("%s: mean GPU compute ms per batch %s", spec.name, benchmark(plan, spec))
        built.append(result)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=Path("deploy/gpu/model_repository"))
    parser.add_argument("--workspace-mb", type=int, default=4096)
    parser.add_argument("--benchmark", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        built = build_repository(args.repository, workspace_mb=args.workspace_mb, bench=args.benchmark)
    except TensorRTError as exc:
        print(f"export.tensorrt: {exc}", file=sys.stderr)
        return 2
    for b in built:
        print(f"{b.model}: {b.plan} ({b.size_mb:.1f} MB, built in {b.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

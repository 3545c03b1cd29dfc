"""TensorRT script: what can be checked without a GPU (no GPU here, so engines are never built)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.repository import inpainter_spec, parse_config, write_model
from export.tensorrt import TensorRTError, find_gpus, trtexec_build_command

ROOT = Path(__file__).resolve().parents[2]


def test_no_gpu_stops_with_a_clear_message(tmp_path):
    if shutil.which("nvidia-smi") or Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA GPU")
    with pytest.raises(TensorRTError, match="no NVIDIA GPU found"):
        find_gpus()
    result = subprocess.run([sys.executable, "-m", "export.tensorrt", "--repository", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert "no NVIDIA GPU found" in result.stderr and "Traceback" not in result.stderr


def test_build_command_has_fp16_and_batch_profile(tmp_path):
    spec = inpainter_spec(256)
    cmd = trtexec_build_command("trtexec", tmp_path / "m.onnx", tmp_path / "m.plan", spec)
    assert "--fp16" in cmd
    assert "--minShapes=image:1x3x256x256,mask:1x1x256x256" in cmd
    assert "--optShapes=image:8x3x256x256,mask:8x1x256x256" in cmd
    assert "--maxShapes=image:16x3x256x256,mask:16x1x256x256" in cmd


def test_plan_config_is_tensorrt_plan(tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"engine bytes")
    write_model(tmp_path / "repo", inpainter_spec(512), plan, target="gpu-plan")
    cfg = parse_config((tmp_path / "repo" / "inpainter" / "config.pbtxt").read_text())
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 16
    assert (tmp_path / "repo" / "inpainter" / "1" / "model.plan").read_bytes() == b"engine bytes"
    assert [w.batch_size for w in cfg.model_warmup] == [1, 16]

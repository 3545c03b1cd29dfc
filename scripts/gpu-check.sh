#!/usr/bin/env bash
# The GPU check (issue 17): TensorRT plans + TensorRT-EP engines built and timed, perf_analyzer on
# the detector and the inpainter (batch 1/8/16, concurrency 1/4), a 704x1280 10 s clip end to end,
# peak GPU memory; one table on stdout, within 10 minutes on one H100-class GPU.
#
# Run it inside the RunPod image (Triton + the orchestrator's /opt/venv) with this checkout mounted:
#   docker run --gpus all --rm -v "$PWD":/src -w /src --entrypoint bash sora-unmark-runpod scripts/gpu-check.sh
# (perf_analyzer is not in the -py3 image: `pip install tritonclient==2.49.0` beside it, or use
# the -py3-sdk image's binary; without it that part of the table stays empty and says why.)
# or on any machine with NVIDIA's tritonserver on PATH, TensorRT, perf_analyzer and the project's
# venv (PY=.venv/bin/python). Put the table in bench/README.md; never copy figures from elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [[ -x /opt/venv/bin/python ]] && echo /opt/venv/bin/python || echo .venv/bin/python )}
exec timeout "${GPU_CHECK_TIMEOUT_S:-600}" "$PY" -m perf.gpu_check "$@"

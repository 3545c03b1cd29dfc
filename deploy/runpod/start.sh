#!/usr/bin/env bash
# RunPod load-balancing worker: Triton and the orchestrator in ONE container (Dockerfile.triton,
# target `runpod`). RunPod routes HTTP to $PORT and polls /ping on $PORT_HEALTH (default $PORT):
# the orchestrator answers 204 while Triton starts and the models load, 200 once they are ready.
#
# Either process ending ends the worker (with its exit code), so RunPod replaces it instead of
# routing requests to half a server. SIGTERM stops both.
set -euo pipefail

export PORT=${PORT:-80}
export TRITON_GRPC_URL=${TRITON_GRPC_URL:-127.0.0.1:8001}
if [[ -z ${DATA_DIR:-} ]]; then
    # A network volume (mounted at /runpod-volume) keeps tasks and results across workers' lives.
    if [[ -d /runpod-volume ]]; then DATA_DIR=/runpod-volume/sora-unmark; else DATA_DIR=/data; fi
fi
export DATA_DIR
mkdir -p "$DATA_DIR"
# TensorRT engines/plans beside the data (on the network volume when there is one): a cold start
# then loads them instead of rebuilding for minutes.
export TRT_CACHE_DIR=${TRT_CACHE_DIR:-$DATA_DIR/trt_cache}

"${TRITON_ENTRYPOINT:-/opt/sora-unmark/entrypoint.sh}" &
triton=$!
"${ORCHESTRATOR_PYTHON:-/opt/venv/bin/python}" -m orchestrator &
orchestrator=$!
echo "start.sh: tritonserver pid $triton, orchestrator pid $orchestrator on port $PORT (data $DATA_DIR)"

stop() {
    kill -TERM "$orchestrator" "$triton" 2>/dev/null || true
    wait "$orchestrator" "$triton" 2>/dev/null || true
}
trap 'stop; exit 143' TERM INT

set +e
wait -n "$triton" "$orchestrator"
status=$?
set -e
if kill -0 "$triton" 2>/dev/null; then who=orchestrator; else who=tritonserver; fi
echo "start.sh: $who exited with status $status; stopping the worker" >&2
stop
exit "$status"

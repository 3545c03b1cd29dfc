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
# Several workers behind one endpoint share the queue and the files only through PostgreSQL
# (DATABASE_URL=postgresql+asyncpg://...) and an S3 bucket (S3_BUCKET, S3_ENDPOINT, keys): then
# DATA_DIR is this worker's scratch. Without DATABASE_URL, SQLite lives under DATA_DIR (one
# worker per endpoint; a network volume keeps its tasks across the worker's replacements).
if [[ -n ${DATABASE_URL:-} ]]; then
    export NODE_ID=${NODE_ID:-${RUNPOD_POD_ID:-$(hostname)}}
    DATA_DIR=${DATA_DIR:-/data}
    [[ -n ${S3_BUCKET:-} ]] || echo "start.sh: DATABASE_URL without S3_BUCKET: results stay on this worker's disk" >&2
elif [[ -z ${DATA_DIR:-} ]]; then
    if [[ -d /runpod-volume ]]; then DATA_DIR=/runpod-volume/sora-unmark; else DATA_DIR=/data; fi
fi
if [[ -z ${DATABASE_URL:-} && $DATA_DIR == /runpod-volume/* ]]; then
    echo "start.sh: SQLite on the network volume: keep Max workers = 1 (set DATABASE_URL and S3_* for more)" >&2
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

#!/usr/bin/env bash
# `make perf`: perf_analyzer sweep of the Triton models; writes perf/out/<time>/{results.csv,summary.md}.
#
#   bash perf/run.sh                       # local Triton on ./model_repository (prepared if empty)
#   bash perf/run.sh -u gpu-box:8001       # any running Triton (or TRITON_URL=host:port)
#   bash perf/run.sh -u host:8001 --profile gpu --batch detector=1,8,16 -- --collect-metrics \
#        --metrics-url host:8002/metrics     # extra perf_analyzer flags after --
#
# perf_analyzer comes from the tritonclient 2.49.0 wheel, installed into its own small venv
# (perf/.tools/venv) so the project's newer tritonclient stays as it is. Later builds need
# glibc 2.38 and do not run on Debian 12; this one needs libb64 and the CUDA 12 runtime library
# (even without a GPU), installed here too.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
TOOLS=perf/.tools/venv
PA_VERSION=2.49.0

if [[ ! -x $TOOLS/bin/perf_analyzer ]]; then
    echo "perf: installing perf_analyzer (tritonclient==$PA_VERSION) into $TOOLS"
    rm -rf "$TOOLS"
    "$PY" -m venv "$TOOLS" 2>/dev/null || python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --no-deps "tritonclient==$PA_VERSION" "nvidia-cuda-runtime-cu12"
fi
if ! ldconfig -p | grep -q libb64.so.0d; then
    echo "perf: libb64 is missing; run 'bash scripts/install-system-deps.sh' (needs root/sudo)" >&2
    exit 1
fi

# Without a server URL the local Triton serves ./model_repository: fill it first if empty.
# (Not when a server URL or another --repository is given.)
own_server=${TRITON_URL:-}
for arg in "$@"; do
    case $arg in -u|--url|--url=*|--repository|--repository=*) own_server=1 ;; esac
done
if [[ -z $own_server ]] && ! compgen -G "model_repository/*/[0-9]*/model.*" >/dev/null; then
    echo "perf: model_repository has no model files; running export.prepare --target cpu"
    "$PY" -m export.prepare --target cpu
fi

exec "$PY" -m perf.bench "$@"

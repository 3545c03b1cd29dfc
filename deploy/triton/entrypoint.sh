#!/usr/bin/env bash
# Starts Triton in explicit model-control mode on the repository of this image (Dockerfile.triton).
#
#   MODEL_FORMAT=onnx (default)  serve /models as built: onnxruntime backend + TensorRT accelerator;
#                                engines are built on first load into /tmp/trt_cache (a volume).
#   MODEL_FORMAT=plan            build TensorRT plans with this image's trtexec on this GPU first
#                                (python3 -m export.tensorrt; cached in $PLAN_REPOSITORY), then
#                                serve those (platform tensorrt_plan).
#   LOAD_MODELS=detector,...     load these at start (otherwise the orchestrator loads what it needs).
# Extra arguments are passed to tritonserver.
set -euo pipefail

repo=${MODEL_REPOSITORY:-/models}
case ${MODEL_FORMAT:-onnx} in
    onnx) ;;
    plan)
        plans=${PLAN_REPOSITORY:-/tmp/trt_cache/plan_repository}
        echo "entrypoint: building TensorRT plans from $repo into $plans (skipped when up to date)"
        python3 -m export.tensorrt --source "$repo" --repository "$plans"
        repo=$plans
        ;;
    *) echo "entrypoint: MODEL_FORMAT must be onnx or plan, not '${MODEL_FORMAT}'" >&2; exit 2 ;;
esac

args=(
    --model-repository="$repo"
    --model-control-mode=explicit
    --http-port=8000 --grpc-port=8001 --metrics-port=8002
    --allow-metrics=true --allow-gpu-metrics=true --allow-cpu-metrics=true
    --strict-readiness=true
    --exit-on-error=false
)
IFS=, read -ra load <<< "${LOAD_MODELS:-}"
for model in "${load[@]}"; do
    [[ -n $model ]] && args+=(--load-model="$model")
done
exec tritonserver "${args[@]}" "$@"

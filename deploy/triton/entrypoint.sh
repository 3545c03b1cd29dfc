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
        # Plans only fit the GPU model and TensorRT (= Triton image) version that built them, and
        # the ONNX they came from: rebuild when any of the three changed, else reuse (minutes saved).
        plans=${PLAN_REPOSITORY:-/tmp/trt_cache/plan_repository}
        gpu=$(nvidia-smi -L 2>/dev/null | head -n 1 | sed 's/ (UUID.*//' || true)
        onnx=$(cat "$repo"/*/1/model.onnx | md5sum | cut -d' ' -f1)
        stamp="$gpu | triton ${TRITON_SERVER_VERSION:-unknown} | onnx $onnx"
        if [[ -f $plans/.built-for && $(cat "$plans/.built-for") == "$stamp" ]]; then
            echo "entrypoint: TensorRT plans in $plans are up to date ($stamp)"
        else
            echo "entrypoint: building TensorRT plans in $plans for $stamp"
            rm -rf "$plans"
            mkdir -p "$(dirname "$plans")"
            cp -r "$repo" "$plans"
            python3 -m export.tensorrt --repository "$plans"
            echo "$stamp" > "$plans/.built-for"
        fi
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

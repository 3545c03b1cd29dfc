#!/usr/bin/env bash
# Starts Triton in explicit model-control mode on the repository of this image (Dockerfile.triton).
#
#   MODEL_FORMAT=onnx (default)  serve /models as built: onnxruntime backend + TensorRT accelerator;
#                                engines are built on first load into $TRT_CACHE_DIR (a volume).
#   MODEL_FORMAT=plan            build TensorRT plans with this image's trtexec on this GPU first
#                                (python3 -m export.tensorrt; cached in $PLAN_REPOSITORY), then
#                                serve those (platform tensorrt_plan).
#   LOAD_MODELS=detector,...     load these at start (otherwise the orchestrator loads what it needs).
#   TRT_CACHE_DIR=/path          where TensorRT engines and plans are kept (default /tmp/trt_cache;
#                                on RunPod the network volume, so a cold start reuses them).
# Extra arguments are passed to tritonserver.
set -euo pipefail

repo=${MODEL_REPOSITORY:-/models}
cache=${TRT_CACHE_DIR:-/tmp/trt_cache}
mkdir -p "$cache"
if [[ $cache != /tmp/trt_cache ]]; then
    # Triton does not expand variables in config.pbtxt: serve a copy whose engine cache paths point
    # at $cache (model files are symlinked, only the configs are rewritten).
    runtime=${RUNTIME_REPOSITORY:-/tmp/model_repository}
    rm -rf "$runtime"
    cp -rs "$(cd "$repo" && pwd)" "$runtime"
    for config in "$runtime"/*/config.pbtxt; do
        sed "s#\"/tmp/trt_cache/#\"$cache/#" "$(readlink -f "$config")" > "$config.new"
        rm "$config" && mv "$config.new" "$config"
    done
    repo=$runtime
fi
case ${MODEL_FORMAT:-onnx} in
    onnx) ;;
    plan)
        # Plans only fit the GPU model and TensorRT (= Triton image) version that built them, and
        # the ONNX they came from: rebuild when any of the three changed, else reuse (minutes saved).
        plans=${PLAN_REPOSITORY:-$cache/plan_repository}
        gpu=$(nvidia-smi -L 2>/dev/null | head -n 1 | sed 's/ (UUID.*//' || true)
        onnx=$(cat "$repo"/*/1/model.onnx | md5sum | cut -d' ' -f1)
        stamp="$gpu | triton ${TRITON_SERVER_VERSION:-unknown} | onnx $onnx"
        if [[ -f $plans/.built-for && $(cat "$plans/.built-for") == "$stamp" ]]; then
            echo "entrypoint: TensorRT plans in $plans are up to date ($stamp)"
        else
            echo "entrypoint: building TensorRT plans in $plans for $stamp"
            rm -rf "$plans"
            mkdir -p "$(dirname "$plans")"
            cp -rL "$repo" "$plans"
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

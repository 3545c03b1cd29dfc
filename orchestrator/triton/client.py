"""The one module that sends inference requests to Triton (gRPC).

A thin typed wrapper over the synchronous ``tritonclient.grpc`` client, shared by a small thread
pool so several requests are in flight at once (the gRPC channel is thread-safe and the call
releases the GIL while it waits). The pipeline's stages are threads, not coroutines, so the sync
client fits without an event loop; ``tritonclient.grpc.aio`` was not benchmarked against it (on
the CPU the model, not the transport, dominates a request: ~1 s per YOLO11s image here).

Every call has a deadline (``settings.grpc_timeout_s``); every failure becomes
``TritonUnavailableError`` (the worker retries those); latencies and errors go to Prometheus.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from orchestrator.errors import TritonUnavailableError
from orchestrator.triton.deadlines import DeadlinePolicy, shared
from orchestrator.metrics import TRITON_REQUEST_ERRORS, TRITON_REQUEST_SECONDS
from orchestrator.triton.channel import channel_args, grpc_target

LOGGER = logging.getLogger(__name__)

@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a loaded model."""

    name: str
    inputs: dict[str, list[int]]  # tensor name -> dims without the batch axis
    max_batch_size: int


class TritonClient:
    """Inference over gRPC with deadlines, metrics and a pool for concurrent requests."""

    def __init__(self, url: str, *, timeout_s: float = 60.0, max_in_flight: int = 2,
                 deadlines: DeadlinePolicy | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s  # metadata calls; inference deadlines come from self.deadlines
        self.deadlines = shared(url, deadlines or DeadlinePolicy(floor_s=timeout_s))
        try:
            self._client = grpcclient.InferenceServerClient(grpc_target(url), channel_args=channel_args())
        except Exception as exc:  # noqa: BLE001 - bad URL etc.
            raise TritonUnavailableError(
                "cannot connect to the inference server", detail=f"{url}: {exc}"
            ) from exc
        self._pool = ThreadPoolExecutor(max(1, max_in_flight), thread_name_prefix="triton-rpc")

    @classmethod
    def from_settings(cls, settings) -> "TritonClient":
        return cls(
            settings.triton_grpc_url,
            timeout_s=settings.grpc_timeout_s,
            max_in_flight=settings.requests_in_flight,
            deadlines=DeadlinePolicy(floor_s=settings.grpc_timeout_s, first_s=settings.grpc_first_timeout_s,
                                     factor=settings.grpc_deadline_factor),
        )

    # -- inference ------------------------------------------------------------------------------
    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """One blocking request; raises TritonUnavailableError on any failure or deadline."""
        tensors = []
        for name, array in inputs.items():
            array = np.ascontiguousarray(array)
            tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        batch = int(tensors[0].shape()[0]) if tensors and tensors[0].shape() else 1
        start = time.perf_counter()
        try:
            result = self._client.infer(
                model, tensors, outputs=requested, client_timeout=self.deadlines.timeout_s(model, batch)
            )
            arrays = {name: result.as_numpy(name) for name in outputs}
            self.deadlines.observe(model, batch, time.perf_counter() - start)
        except InferenceServerException as exc:
            TRITON_REQUEST_ERRORS.labels(model).inc()
            raise TritonUnavailableError(
                "inference server request failed", detail=f"{model}: {exc.status()} {exc.message()}"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - grpc transport errors surface in many types
            TRITON_REQUEST_ERRORS.labels(model).inc()
            raise TritonUnavailableError("inference server request failed", detail=f"{model}: {exc}") from exc
        finally:
            TRITON_REQUEST_SECONDS.labels(model).observe(time.perf_counter() - start)
        for name, array in arrays.items():
            if array is None or array.size == 0:
                # The python backend with numpy 2 returns empty tensors without an error.
                TRITON_REQUEST_ERRORS.labels(model).inc()
                raise TritonUnavailableError(
                    "inference server returned an empty result", detail=f"{model}: output {name} empty"
                )
        return arrays

    def submit(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> "Future[dict[str, np.ndarray]]":
        """Start a request on the pool; the future raises what ``infer`` raises."""
        return self._pool.submit(self.infer, model, inputs, outputs)

    # -- metadata -------------------------------------------------------------------------------
    def ready_models(self) -> set[str]:
        """Names of the models Triton reports READY (from the repository index)."""
        try:
            index = self._client.get_model_repository_index(client_timeout=self.timeout_s, as_json=True)
        except InferenceServerException as exc:
            raise TritonUnavailableError("inference server unreachable", detail=str(exc)) from exc
        return {m["name"] for m in index.get("models", []) if m.get("state") == "READY"}

    def model_info(self, model: str) -> ModelInfo:
        try:
            config = self._client.get_model_config(model, client_timeout=self.timeout_s, as_json=True)
        except InferenceServerException as exc:
            raise TritonUnavailableError(f"model {model} unavailable", detail=str(exc)) from exc
        config = config.get("config", config)
        inputs = {i["name"]: [int(d) for d in i.get("dims", [])] for i in config.get("input", [])}
        return ModelInfo(model, inputs, int(config.get("max_batch_size", 0) or 0))

    def model_parameters(self, model: str) -> dict[str, str]:
        """The string parameters of a model's config (e.g. the detector's ``weights``)."""
        try:
            config = self._client.get_model_config(model, client_timeout=self.timeout_s, as_json=True)
        except InferenceServerException as exc:
            raise TritonUnavailableError(f"model {model} unavailable", detail=str(exc)) from exc
        params = config.get("config", config).get("parameters", {}) or {}
        return {k: str(v.get("string_value", "")) for k, v in params.items() if isinstance(v, dict)}

    def inpainter_sizes(self, prefix: str = "inpainter") -> dict[int, str]:
        """Crop size -> model name for every READY inpainter (``inpainter``, ``inpainter_256``...)."""
        sizes: dict[int, str] = {}
        for name in sorted(self.ready_models()):
            if name != prefix and not name.startswith(prefix + "_"):
                continue
            dims = self.model_info(name).inputs.get("image")
            if not dims or dims[-1] <= 0:
                LOGGER.warning("inpainter %s has no fixed crop size (%s); skipped", name, dims)
                continue
            sizes.setdefault(int(dims[-1]), name)
        return sizes

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a broken channel
            LOGGER.debug("closing the gRPC client failed", exc_info=True)

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

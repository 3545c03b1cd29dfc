"""Model manager: brings the required models up in Triton (explicit mode) and tracks readiness.

Runs in the background so startup never waits for Triton. State machine:

    starting (Triton not reachable yet) -> loading -> ready
                     +-> degraded (a required model failed to load after bounded retries,
                                   or Triton unreachable for longer than the deadline)

While ready it polls each model: a model unloaded behind our back is loaded again (state goes
back to ``loading``), Triton going away turns the state to ``starting`` and, past
``settings.triton_live_deadline_s``, to ``degraded``; when Triton returns everything is loaded
again. A failed load is retried after ``model_retry_interval_s`` so a fixed repository recovers
without restarting the service. Server-level readiness is never used: an empty Triton in explicit
mode reports ready.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator import metrics
from orchestrator.settings import Settings
from orchestrator.triton.channel import channel_args, grpc_target

LOGGER = logging.getLogger(__name__)

class ModelState(str, enum.Enum):
    starting = "starting"
    loading = "loading"
    ready = "ready"
    degraded = "degraded"


@dataclass
class ModelStatus:
    """What the manager knows about one model (reported by /ping)."""

    name: str
    required: bool
    ready: bool = False
    state: str = "unknown"  # unknown | loading | ready | failed | unavailable
    error: str | None = None
    load_attempts: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ready": self.ready, "state": self.state, "required": self.required}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Snapshot:
    state: ModelState
    error: str | None
    load_failed: bool
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    replicas: dict[str, Any] | None = None  # several Triton replicas: see triton/replicas.py


class ModelManager:
    """Owns the background loop; everything else only reads ``snapshot()`` or waits on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = ModelState.starting
        self.error: str | None = None
        self.load_failed = False  # degraded because a required model cannot load
        self.models = {name: ModelStatus(name, True) for name in settings.required_models}
        for name in settings.optional_models:
            self.models.setdefault(name, ModelStatus(name, False))
        metrics.init_model_series(self.models)
        self._client = None
        self._grpc_aio = None
        self._task: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._poke = asyncio.Event()
        self._gone_since: float | None = time.monotonic()
        self._retry_at = 0.0
        self._optional_tried = False
        self._stopping = False

    # -- reading ---------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state is ModelState.ready

    def snapshot(self) -> Snapshot:
        return Snapshot(self.state, self.error, self.load_failed,
                        {name: m.as_dict() for name, m in self.models.items()})

    def ready_models(self) -> set[str]:
        return {name for name, m in self.models.items() if m.ready}

    async def wait_changed(self, timeout: float) -> None:
        """Sleep until the state changes or ``timeout`` passes."""
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _set_state(self, state: ModelState, error: str | None = None, *, load_failed: bool = False) -> None:
        if state is not self.state or error != self.error:
            log = LOGGER.error if state is ModelState.degraded else LOGGER.info
            log("models: %s -> %s%s", self.state.value, state.value, f" ({error})" if error else "")
        self.state, self.error, self.load_failed = state, error, load_failed
        for name, model in self.models.items():
            metrics.MODEL_READY.labels(model=name).set(1 if model.ready else 0)
        self._changed.set()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="model-manager")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - the channel may already be broken
                LOGGER.debug("closing the Triton client failed", exc_info=True)

    async def _get_client(self):
        if self._grpc_aio is None:
            # Imported in a thread: grpc/numpy imports take ~1 s and must not stall /ping.
            self._grpc_aio = await asyncio.to_thread(importlib.import_module, "tritonclient.grpc.aio")
        if self._client is None:
            self._client = self._grpc_aio.InferenceServerClient(
                grpc_target(self.settings.triton_grpc_url), channel_args=channel_args()
            )
        return self._client

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive anything
                LOGGER.exception("model manager step failed")
            self._poke.clear()
            try:
                await asyncio.wait_for(self._poke.wait(), self.settings.model_poll_interval_s if self.ready else 0.5)
            except asyncio.TimeoutError:
                pass

    def poke(self) -> None:
        """Check Triton now (the worker saw it fail) instead of at the next poll."""
        self._poke.set()

    # -- one poll --------------------------------------------------------------------------------
    async def _live(self) -> bool:
        try:
            client = await self._get_client()
            return bool(await client.is_server_live(client_timeout=self.settings.triton_ping_timeout_s))
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable now"
            LOGGER.debug("Triton not live: %s", exc)
            return False

    async def _model_ready(self, name: str) -> bool:
        client = await self._get_client()
        return bool(await client.is_model_ready(name, client_timeout=self.settings.triton_ping_timeout_s))

    async def _step(self) -> None:
        now = time.monotonic()
        if not await self._live():
            if self._gone_since is None:
                self._gone_since = now
                LOGGER.warning("Triton at %s is not reachable", self.settings.triton_grpc_url)
                await self._close_client()  # a fresh channel reconnects at once when it returns
            for model in self.models.values():
                model.ready, model.state = False, "unavailable"
            gone_for = now - self._gone_since
            if gone_for > self.settings.triton_live_deadline_s:
                self._set_state(ModelState.degraded,
                                f"Triton at {self.settings.triton_grpc_url} unreachable for {gone_for:.0f} s")
            elif not self.load_failed:
                self._set_state(ModelState.starting)
            self._optional_tried = False
            return
        if self._gone_since is not None:
            LOGGER.info("Triton at %s is live", self.settings.triton_grpc_url)
            self._gone_since = None
            if not self.load_failed:
                self._set_state(ModelState.loading)
            self._retry_at = 0.0  # a (re)started Triton deserves a fresh try

        missing = []
        for name in self.settings.required_models:
            ready = await self._model_ready(name)
            model = self.models[name]
            if ready:
                model.ready, model.state, model.error = True, "ready", None
            else:
                if model.ready:
                    LOGGER.warning("model %s is no longer ready in Triton; loading it again", name)
                model.ready = False
                missing.append(name)
        if not missing:
            if not self._optional_tried:
                await self._load_optional()
            else:
                for name in self.settings.optional_models:
                    if self.models[name].ready and not await self._model_ready(name):
                        self.models[name].ready, self.models[name].state = False, "unavailable"
                        self._optional_tried = False  # try once more on the next poll
            self._set_state(ModelState.ready)
            return
        if self.load_failed and now < self._retry_at:
            return  # stay degraded until the next retry
        if not self.load_failed:
            self._set_state(ModelState.loading)
        errors = []
        for name in missing:
            error = await self._load_with_retries(name)
            if error:
                errors.append(f"model '{name}' failed to load: {error}")
        if errors:
            self._retry_at = time.monotonic() + self.settings.model_retry_interval_s
            self._set_state(ModelState.degraded, "; ".join(errors), load_failed=True)
        else:
            self._set_state(ModelState.loading)  # ready is confirmed by the next poll

    async def _load_with_retries(self, name: str) -> str | None:
        """Load ``name`` up to ``model_load_retries`` times; returns the last error or None."""
        model = self.models[name]
        error = None
        for attempt in range(1, max(1, self.settings.model_load_retries) + 1):
            model.state, model.load_attempts = "loading", model.load_attempts + 1
            try:
                client = await self._get_client()
                LOGGER.info("loading model %s (attempt %d)", name, attempt)
                await client.load_model(name, client_timeout=self.settings.model_load_timeout_s)
                if await self._model_ready(name):
                    model.ready, model.state, model.error = True, "ready", None
                    LOGGER.info("model %s is ready", name)
                    return None
                error = "Triton accepted the load but the model is not ready"
            except Exception as exc:  # noqa: BLE001 - InferenceServerException, gRPC errors
                error = _message(exc)
                if not await self._live():
                    model.state, model.error = "unavailable", error
                    return None  # Triton went away: not a load failure; the next poll sees it
                if await self._wait_while_loading(name):
                    model.ready, model.state, model.error = True, "ready", None
                    LOGGER.info("model %s is ready (its load outlasted the call's deadline)", name)
                    return None
            LOGGER.warning("loading model %s failed (attempt %d): %s", name, attempt, error)
            await asyncio.sleep(min(5.0, 0.5 * 2 ** (attempt - 1)))
        model.ready, model.state, model.error = False, "failed", error
        return error

    async def repository_state(self, name: str) -> str:
        """Triton's state for ``name`` in its repository index (``READY``, ``LOADING``, ``UNAVAILABLE``
        ...; ``""`` when not listed or unknown)."""
        try:
            client = await self._get_client()
            index = await client.get_model_repository_index(
                as_json=True, client_timeout=self.settings.triton_ping_timeout_s)
        except Exception as exc:  # noqa: BLE001 - unknown is not LOADING
            LOGGER.debug("repository index unavailable: %s", exc)
            return ""
        models = index.get("models", []) if isinstance(index, dict) else []
        return next((str(m.get("state", "")) for m in models if m.get("name") == name), "")

    async def _wait_while_loading(self, name: str) -> bool:
        """A load call that hit its deadline while Triton still builds the model (a first TensorRT
        build can take longer than any fixed deadline) is not a failure: wait as long as Triton
        says LOADING. Returns whether the model ended READY."""
        waited = 0.0
        while (state := await self.repository_state(name)) == "LOADING" and not self._stopping:
            if waited == 0.0:
                LOGGER.info("model %s is still loading in Triton; waiting for it", name)
            self.models[name].state = "loading"
            await asyncio.sleep(self.settings.model_poll_interval_s)
            waited += self.settings.model_poll_interval_s
        return state == "READY" and await self._model_ready(name)

    async def _load_optional(self) -> None:
        """Optional models (e.g. a smaller inpainter) are tried once per Triton lifetime."""
        self._optional_tried = True
        for name in self.settings.optional_models:
            model = self.models[name]
            try:
                if not await self._model_ready(name):
                    client = await self._get_client()
                    await client.load_model(name, client_timeout=self.settings.model_load_timeout_s)
                model.ready = await self._model_ready(name)
                model.state, model.error = ("ready", None) if model.ready else ("unavailable", None)
            except Exception as exc:  # noqa: BLE001 - optional: log and go on
                model.ready, model.state, model.error = False, "unavailable", _message(exc)
                LOGGER.info("optional model %s not available: %s", name, model.error)


def _message(exc: BaseException) -> str:
    """The useful text of a tritonclient/gRPC error."""
    for attr in ("message",):
        fn = getattr(exc, attr, None)
        if callable(fn):
            try:
                text = fn()
                if text:
                    return str(text)
            except Exception:  # noqa: BLE001
                pass
    return str(exc) or type(exc).__name__

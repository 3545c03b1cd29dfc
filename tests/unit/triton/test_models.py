"""ModelManager's state machine against a fake Triton client (the real one: tests/integration).

The fake keeps what a Triton in explicit mode keeps: whether the server is live and each model's
repository state; ``load_model`` can fail, or outlast its deadline while the model stays LOADING
(a first TensorRT build).
"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.settings import Settings
from orchestrator.triton.models import ModelManager, ModelState


class FakeError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def message(self) -> str:
        return self.text


class FakeTriton:
    def __init__(self) -> None:
        self.live = True
        self.states: dict[str, str] = {}
        self.fail: dict[str, str] = {}  # model -> load error
        self.slow: dict[str, int] = {}  # model -> index polls it stays LOADING after a timed-out load
        self.loads: list[str] = []

    # the slice of tritonclient.grpc.aio.InferenceServerClient the manager uses
    async def is_server_live(self, client_timeout=None):
        if not self.live:
            raise FakeError("connection refused")
        return True

    async def is_model_ready(self, name, client_timeout=None):
        if not self.live:
            raise FakeError("connection refused")
        return self.states.get(name) == "READY"

    async def load_model(self, name, client_timeout=None):
        if not self.live:
            raise FakeError("connection refused")
        self.loads.append(name)
        if name in self.fail:
            self.states[name] = "UNAVAILABLE"
            raise FakeError(self.fail[name])
        if name in self.slow:
            self.states[name] = "LOADING"
            raise FakeError("Deadline Exceeded")
        self.states[name] = "READY"

    async def get_model_repository_index(self, as_json=False, client_timeout=None):
        models = []
        for name, state in self.states.items():
            if state == "LOADING":
                self.slow[name] -= 1
                if self.slow[name] <= 0:
                    self.states[name] = state = "READY"
                    del self.slow[name]
            models.append({"name": name, "state": state})
        return {"models": models}

    async def close(self):
        pass


def _manager(fake: FakeTriton, **overrides) -> ModelManager:
    settings = Settings(required_models=("detector", "inpainter"), optional_models=("inpainter_256",),
                        model_poll_interval_s=0.01, model_retry_interval_s=0.2, model_load_retries=2,
                        triton_live_deadline_s=0.3, **overrides)
    manager = ModelManager(settings)

    class Module:
        @staticmethod
        def InferenceServerClient(url, channel_args=None):  # noqa: N802 - tritonclient's name
            return fake

    manager._grpc_aio = Module
    return manager


async def _until(manager: ModelManager, state: ModelState, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while manager.state is not state:
        assert asyncio.get_running_loop().time() < deadline, f"state {manager.state}, wanted {state}"
        await asyncio.sleep(0.01)


async def test_loads_required_and_optional_models_then_ready():
    fake = FakeTriton()
    manager = _manager(fake)
    assert manager.state is ModelState.starting
    manager.start()
    try:
        await _until(manager, ModelState.ready)
        assert {"detector", "inpainter"} <= set(fake.loads)
        assert manager.ready_models() >= {"detector", "inpainter"}
        snapshot = manager.snapshot()
        assert snapshot.models["detector"] == {"ready": True, "state": "ready", "required": True}
        assert snapshot.models["inpainter_256"]["required"] is False
    finally:
        await manager.stop()


async def test_a_failed_required_load_degrades_with_its_reason_and_is_retried():
    fake = FakeTriton()
    fake.fail["inpainter"] = "onnx runtime error: bad file"
    manager = _manager(fake)
    manager.start()
    try:
        await _until(manager, ModelState.degraded)
        assert manager.load_failed and "inpainter" in manager.error and "bad file" in manager.error
        assert fake.loads.count("inpainter") == 2  # model_load_retries
        del fake.fail["inpainter"]  # the repository was fixed: the retry brings it up
        await _until(manager, ModelState.ready)
    finally:
        await manager.stop()


async def test_a_model_triton_reports_loading_never_times_out_into_failed():
    fake = FakeTriton()
    fake.slow["inpainter"] = 20  # its load call hits the deadline; Triton says LOADING for 20 polls
    manager = _manager(fake)
    manager.start()
    try:
        seen = set()
        while manager.state is not ModelState.ready:
            seen.add(manager.state)
            assert manager.state is not ModelState.degraded, manager.error
            await asyncio.sleep(0.005)
        assert ModelState.degraded not in seen
        assert fake.loads.count("inpainter") == 1  # waited instead of loading again
        assert manager.models["inpainter"].state == "ready"
    finally:
        await manager.stop()


async def test_triton_gone_starting_then_degraded_past_the_deadline_then_back():
    fake = FakeTriton()
    manager = _manager(fake)
    manager.start()
    try:
        await _until(manager, ModelState.ready)
        fake.live = False
        fake.states.clear()  # a restarted Triton in explicit mode has nothing loaded
        await _until(manager, ModelState.starting)
        assert not manager.ready_models()
        await _until(manager, ModelState.degraded)
        assert "unreachable" in manager.error and not manager.load_failed
        fake.live = True
        await _until(manager, ModelState.ready)
        assert fake.loads.count("detector") == 2  # loaded again after the restart
    finally:
        await manager.stop()


async def test_a_model_unloaded_behind_our_back_is_loaded_again():
    fake = FakeTriton()
    manager = _manager(fake)
    manager.start()
    try:
        await _until(manager, ModelState.ready)
        fake.states["detector"] = "UNAVAILABLE"
        await asyncio.sleep(0.2)
        await _until(manager, ModelState.ready)
        assert fake.loads.count("detector") == 2
    finally:
        await manager.stop()


@pytest.mark.parametrize("index, want", [({"models": [{"name": "detector", "state": "LOADING"}]}, "LOADING"),
                                         ({"models": []}, ""), ({}, "")])
async def test_repository_state_reads_the_index(index, want):
    fake = FakeTriton()

    async def get_index(as_json=False, client_timeout=None):
        return index

    fake.get_model_repository_index = get_index
    assert await _manager(fake).repository_state("detector") == want

"""ReplicaSet: /ping's state from each replica's own model manager."""

from __future__ import annotations

import pytest

from orchestrator.settings import Settings
from orchestrator.triton.models import ModelManager, ModelState
from orchestrator.triton.replicas import ReplicaSet, model_manager

URL = "127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003"


def _set(states, min_ready=1) -> ReplicaSet:
    replicas = ReplicaSet(Settings(triton_grpc_url=URL, triton_min_ready=min_ready))
    for manager, state in zip(replicas.managers.values(), states):
        manager.state = state
        manager.error = "detector failed to load" if state is ModelState.degraded else None
        manager.load_failed = state is ModelState.degraded
    return replicas


def test_one_address_keeps_the_plain_manager():
    assert isinstance(model_manager(Settings(triton_grpc_url="127.0.0.1:9001")), ModelManager)
    assert isinstance(model_manager(Settings(triton_grpc_url=URL)), ReplicaSet)


@pytest.mark.parametrize("states, min_ready, expected, ready", [
    ((ModelState.ready, ModelState.degraded, ModelState.starting), 1, ModelState.ready, 1),
    ((ModelState.ready, ModelState.ready, ModelState.loading), 2, ModelState.ready, 2),
    ((ModelState.ready, ModelState.loading, ModelState.starting), 2, ModelState.loading, 1),
    ((ModelState.starting, ModelState.starting, ModelState.degraded), 1, ModelState.starting, 0),
    ((ModelState.ready, ModelState.degraded, ModelState.degraded), 2, ModelState.degraded, 1),
])
def test_state_follows_how_many_replicas_are_ready(states, min_ready, expected, ready):
    replicas = _set(states, min_ready)
    snapshot = replicas.snapshot()
    assert snapshot.state is expected
    assert snapshot.replicas["ready"] == ready and snapshot.replicas["needed"] == min_ready
    assert [e["state"] for e in snapshot.replicas["each"].values()] == [s.value for s in states]
    if expected is ModelState.degraded:
        assert snapshot.error.startswith(f"{ready} of {min_ready} required Triton replicas ready")
        assert "detector failed to load" in snapshot.error and snapshot.load_failed


def test_inference_goes_to_the_ready_replicas_only():
    replicas = _set((ModelState.loading, ModelState.ready, ModelState.ready))
    assert replicas.ready_url() == "127.0.0.1:9002,127.0.0.1:9003"
    assert _set((ModelState.starting,) * 3).ready_url() == URL  # none ready: all (the calls say why)

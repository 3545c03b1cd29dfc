"""Several Triton replicas behind one ``TRITON_GRPC_URL`` (``a:8001,b:8001``).

Each replica gets its own ``ModelManager`` (its own channel, model loading and readiness); the
set is ready while at least ``triton_min_ready`` replicas are. Inference goes round-robin over the
replicas that are ready (``ready_url``), so a replica still loading or gone takes no requests.
A ``dns:///`` URL is one entry: gRPC spreads calls over its addresses, readiness is checked
through the same balanced channel.
"""

from __future__ import annotations

import asyncio

from orchestrator.settings import Settings
from orchestrator.triton.channel import replicas
from orchestrator.triton.models import ModelManager, ModelState, Snapshot

_PROGRESS = (ModelState.loading, ModelState.starting)


class ReplicaSet:
    """The model manager's interface over one manager per replica."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.addresses = replicas(settings.triton_grpc_url)
        self.managers = {a: ModelManager(settings.with_overrides(triton_grpc_url=a)) for a in self.addresses}

    @property
    def min_ready(self) -> int:
        return max(1, min(self.settings.triton_min_ready, len(self.managers)))

    def ready_addresses(self) -> list[str]:
        return [a for a, m in self.managers.items() if m.snapshot().state is ModelState.ready]

    def ready_url(self) -> str:
        """``TRITON_GRPC_URL`` for inference now: the ready replicas (all of them when none is)."""
        return ",".join(self.ready_addresses() or self.addresses)

    @property
    def ready(self) -> bool:
        return self.snapshot().state is ModelState.ready

    def snapshot(self) -> Snapshot:
        shots = {a: m.snapshot() for a, m in self.managers.items()}
        ready = [a for a, s in shots.items() if s.state is ModelState.ready]
        summary = {
            "ready": len(ready), "needed": self.min_ready,
            "each": {a: {"state": s.state.value, **({"error": s.error} if s.error else {})} for a, s in shots.items()},
        }
        models = shots[ready[0] if ready else self.addresses[0]].models
        if len(ready) >= self.min_ready:
            return Snapshot(ModelState.ready, None, False, models, replicas=summary)
        waiting = [s.state for s in shots.values() if s.state in _PROGRESS]
        if waiting:
            state = ModelState.loading if ModelState.loading in waiting else ModelState.starting
            return Snapshot(state, None, False, models, replicas=summary)
        error = f"{len(ready)} of {self.min_ready} required Triton replicas ready: " + "; ".join(
            f"{a}: {s.error or s.state.value}" for a, s in shots.items() if s.state is not ModelState.ready)
        return Snapshot(ModelState.degraded, error, any(s.load_failed for s in shots.values()), models,
                        replicas=summary)

    def ready_models(self) -> set[str]:
        ready = self.ready_addresses()
        return self.managers[ready[0]].ready_models() if ready else set()

    async def wait_changed(self, timeout: float) -> None:
        waits = [asyncio.create_task(m.wait_changed(timeout)) for m in self.managers.values()]
        _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    def start(self) -> None:
        for manager in self.managers.values():
            manager.start()

    async def stop(self) -> None:
        await asyncio.gather(*(m.stop() for m in self.managers.values()))

    def poke(self) -> None:
        for manager in self.managers.values():
            manager.poke()


class NoModels:
    """An ``api``-role node talks to no Triton: always ready, no models (its /ping says the HTTP
    side and the store are up)."""

    ready = True

    def snapshot(self) -> Snapshot:
        return Snapshot(ModelState.ready, None, False, {})

    def ready_models(self) -> set[str]:
        return set()

    async def wait_changed(self, timeout: float) -> None:
        await asyncio.sleep(timeout)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def poke(self) -> None:
        pass


def model_manager(settings: Settings) -> ModelManager | ReplicaSet | NoModels:
    """None for an ``api`` node; one manager for one address; a ``ReplicaSet`` for several."""
    if settings.role == "api":
        return NoModels()
    return ReplicaSet(settings) if len(replicas(settings.triton_grpc_url)) > 1 else ModelManager(settings)

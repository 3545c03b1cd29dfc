"""The worker on a real SQLite queue with a fake pipeline (no Triton, no video): the ``rig``
fixture starts workers and submits tasks; ``until`` waits for a task's status."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from orchestrator.errors import TaskCancelledError
from orchestrator.settings import Settings
from orchestrator.tasks.store import TaskStore
from orchestrator.tasks.worker import Worker
from orchestrator.triton.models import ModelState, Snapshot


class FakeModels:
    """What the worker reads of the model manager: a state it can be told."""

    def __init__(self, state: ModelState = ModelState.ready) -> None:
        self.state = state
        self.pokes = 0

    def snapshot(self) -> Snapshot:
        return Snapshot(self.state, None if self.state is ModelState.ready else "detector failed to load",
                        self.state is ModelState.degraded)

    def poke(self) -> None:
        self.pokes += 1


class FakePipeline:
    """Stands in for ``process_video``: does what ``behaviour(call number)`` says."""

    def __init__(self, behaviour) -> None:
        self.behaviour = behaviour
        self.calls = 0
        self.started = threading.Event()

    def __call__(self, input_path: Path, output_path: Path, options, *, settings, progress, should_cancel):
        self.calls += 1
        self.started.set()
        return self.behaviour(self.calls, output_path, progress, should_cancel)


def write_result(output: Path, progress) -> dict:
    progress(type("P", (), {"percent": 50.0, "stage": "remove", "fps": 1.0, "frames_done": 1, "frames_total": 2})())
    output.write_bytes(b"video")
    return {"frames": 2}


def wait_cancel(should_cancel, limit_s: float = 10.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if should_cancel():
            raise TaskCancelledError("cancelled")
        time.sleep(0.02)
    raise AssertionError("never asked to stop")


@pytest.fixture
async def rig(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", port=1, lease_s=1.5, progress_interval_s=0.05,
                        task_retry_backoff_s=0.05, max_task_attempts=3, janitor_interval_s=3600)
    store = TaskStore(settings.effective_database_url)
    await store.init()
    workers: list[Worker] = []

    async def start(behaviour, models=None, shared_queue=None, **overrides) -> tuple[Worker, FakePipeline]:
        pipeline = FakePipeline(behaviour)
        worker = Worker(settings.with_overrides(**overrides), store, models or FakeModels(), pipeline=pipeline)
        if shared_queue is not None:
            worker.shared_queue = shared_queue  # as on a PostgreSQL queue
        await worker.start()
        workers.append(worker)
        return worker, pipeline

    async def submit() -> str:
        upload = settings.data_dir / "uploads" / f"in{time.monotonic_ns()}.mp4"
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_bytes(b"input")
        task = await store.create(options={}, input_path=str(upload), output_path="/unused")
        for worker in workers:
            worker.wake()
        return task.id

    yield start, submit, store, settings
    for worker in workers:
        await worker.stop()
    await store.close()


async def until(store: TaskStore, task_id: str, *statuses: str, limit_s: float = 15.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        task = await store.get(task_id)
        if task.status in statuses:
            return task
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} still {task.status} (wanted {statuses})")

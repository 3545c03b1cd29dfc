"""The worker's failure handling on a real SQLite queue, with the pipeline replaced by a fake
(no Triton, no video): retries with a counted attempt, final failures with their reason, cancels
requested through the database, a lost lease that records nothing, a degraded node that claims
nothing, and a shutdown that hands the task back without using an attempt."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from orchestrator.errors import InputError, TaskCancelledError, TritonUnavailableError
from orchestrator.settings import Settings
from orchestrator.tasks.lease import LeaseQueue
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


def _write(output: Path, progress) -> dict:
    progress(type("P", (), {"percent": 50.0, "stage": "remove", "fps": 1.0, "frames_done": 1, "frames_total": 2})())
    output.write_bytes(b"video")
    return {"frames": 2}


def _wait_cancel(should_cancel, limit_s: float = 10.0):
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

    async def start(behaviour, models=None, **overrides) -> tuple[Worker, FakePipeline]:
        pipeline = FakePipeline(behaviour)
        worker = Worker(settings.with_overrides(**overrides), store, models or FakeModels(), pipeline=pipeline)
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


async def _until(store: TaskStore, task_id: str, *statuses: str, limit_s: float = 15.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        task = await store.get(task_id)
        if task.status in statuses:
            return task
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} still {task.status} (wanted {statuses})")


async def test_success_records_this_attempts_own_file_and_removes_the_input(rig):
    start, submit, store, _ = rig
    await start(lambda n, out, progress, _c: _write(out, progress))
    task_id = await submit()
    before = await store.get(task_id)
    task = await _until(store, task_id, "finished")
    assert task.output_path.endswith(f"{task_id}.a1.mp4") and Path(task.output_path).read_bytes() == b"video"
    assert task.details == {"frames": 2} and task.progress == 100 and task.lease_until is None
    assert task.input_path is None and not Path(before.input_path).exists()


async def test_triton_unavailable_is_retried_then_gives_up_with_the_reason(rig):
    start, submit, store, _ = rig

    def always_down(n, out, progress, _c):
        raise TritonUnavailableError("inference server request failed")

    worker, pipeline = await start(always_down)
    task_id = await submit()
    task = await _until(store, task_id, "failed")
    assert pipeline.calls == 3 and task.attempts == 3 and worker.models.pokes == 3
    assert task.error == "gave up after 3 attempts: inference server request failed"


async def test_retry_succeeds_on_the_next_attempt(rig):
    start, submit, store, _ = rig

    def flaky(n, out, progress, _c):
        if n == 1:
            raise TritonUnavailableError("inference server request failed")
        return _write(out, progress)

    await start(flaky)
    task_id = await submit()
    task = await _until(store, task_id, "finished")
    assert task.attempts == 2 and task.output_path.endswith(".a2.mp4")


@pytest.mark.parametrize("error, message", [
    (InputError("the file is not a video"), "the file is not a video"),
    (ZeroDivisionError("boom"), "internal error while processing (ZeroDivisionError); see the server log"),
])
async def test_other_errors_fail_at_once_and_leave_no_result(rig, error, message):
    start, submit, store, settings = rig

    def broken(n, out, progress, _c):
        out.write_bytes(b"half")
        raise error

    _, pipeline = await start(broken)
    task_id = await submit()
    task = await _until(store, task_id, "failed")
    assert task.error == message and pipeline.calls == 1 and task.attempts == 1
    assert not list((settings.data_dir / "results").glob(f"{task_id}*"))


async def test_success_without_a_file_is_a_failure(rig):
    start, submit, store, _ = rig
    await start(lambda n, out, progress, _c: {})
    task = await _until(store, await submit(), "failed")
    assert task.error == "the pipeline reported success but wrote no result"


async def test_cancel_written_by_another_node_stops_the_pipeline(rig):
    start, submit, store, _ = rig
    _, pipeline = await start(lambda n, out, progress, should_cancel: _wait_cancel(should_cancel))
    task_id = await submit()
    await asyncio.to_thread(pipeline.started.wait, 10)
    await store.request_cancel(task_id)  # what DELETE on any node does
    task = await _until(store, task_id, "cancelled")
    assert task.error == "cancelled by the user"


async def test_a_worker_that_lost_its_lease_records_nothing(rig):
    start, submit, store, settings = rig
    release = threading.Event()

    def stalled(n, out, progress, _c):
        release.wait(20)
        out.write_bytes(b"late")
        return {"late": True}

    _, pipeline = await start(stalled)
    task_id = await submit()
    await asyncio.to_thread(pipeline.started.wait, 10)
    # Another node decides this attempt is dead (as its sweep would after a missed lease) and
    # claims the task as attempt 2.
    first = await store.get(task_id)
    await store.update_fields(task_id, status="queued", owner=None, lease_until=None)
    peer = LeaseQueue(store, "peer:2#b", lease_s=60)
    task, _lease = await peer.claim()
    assert task.id == task_id and task.attempts == 2
    release.set()
    await asyncio.sleep(1.0)
    after = await store.get(task_id)
    assert after.status == "processing" and after.owner == "peer:2#b" and after.attempts == 2
    assert Path(first.input_path).exists()  # the new attempt still needs it
    assert not (settings.data_dir / "results" / f"{task_id}.a1.mp4").exists()


async def test_expired_leases_are_requeued_and_live_ones_kept(rig):
    start, submit, store, _ = rig
    dead = LeaseQueue(store, "gone:1#x", lease_s=0.3)
    live = LeaseQueue(store, "busy:1#y", lease_s=60)
    dead_id, live_id = await submit(), await submit()
    (a, _), (b, live_lease) = await dead.claim(), await live.claim()
    assert (a.id, b.id) == (dead_id, live_id)
    await asyncio.sleep(0.4)
    reclaimed = await live.sweep(max_attempts=3)
    assert reclaimed.requeued == [dead_id] and reclaimed.ended == []
    assert await live.heartbeat(live_lease, progress=10, stage="x") is False
    assert await dead.heartbeat(type(live_lease)(dead_id, "gone:1#x", 1)) is None


async def test_a_degraded_node_claims_nothing_and_fails_no_one(rig):
    start, submit, store, _ = rig
    models = FakeModels(ModelState.degraded)
    _, pipeline = await start(lambda n, out, progress, _c: _write(out, progress), models=models)
    task_id = await submit()
    await asyncio.sleep(1.5)
    task = await store.get(task_id)
    assert task.status == "queued" and task.attempts == 0 and pipeline.calls == 0
    models.state = ModelState.ready
    assert (await _until(store, task_id, "finished")).attempts == 1


async def test_shutdown_hands_the_task_back_without_using_an_attempt(rig):
    start, submit, store, _ = rig
    worker, pipeline = await start(lambda n, out, progress, should_cancel: _wait_cancel(should_cancel))
    task_id = await submit()
    await asyncio.to_thread(pipeline.started.wait, 10)
    await worker.stop()
    task = await store.get(task_id)
    assert task.status == "queued" and task.attempts == 0 and task.owner is None and task.input_path

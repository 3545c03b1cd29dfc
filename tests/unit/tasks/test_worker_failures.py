"""The worker's failure handling on a real SQLite queue, with the pipeline replaced by a fake
(no Triton, no video): retries with a counted attempt, final failures with their reason, cancels
requested through the database, a lost lease that records nothing, a degraded node that claims
nothing, and a shutdown that hands the task back without using an attempt."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from conftest import FakeModels, until, wait_cancel, write_result

from orchestrator.errors import InputError, TritonUnavailableError
from orchestrator.tasks.lease import LeaseQueue
from orchestrator.triton.models import ModelState


async def test_success_records_this_attempts_own_file_and_removes_the_input(rig):
    start, submit, store, _ = rig
    await start(lambda n, out, progress, _c: write_result(out, progress))
    task_id = await submit()
    before = await store.get(task_id)
    task = await until(store, task_id, "finished")
    assert task.output_path.endswith(f"{task_id}.a1.mp4") and Path(task.output_path).read_bytes() == b"video"
    assert task.details == {"frames": 2} and task.progress == 100 and task.lease_until is None
    assert task.input_path is None and not Path(before.input_path).exists()


async def test_triton_unavailable_is_retried_then_gives_up_with_the_reason(rig):
    start, submit, store, _ = rig

    def always_down(n, out, progress, _c):
        raise TritonUnavailableError("inference server request failed")

    worker, pipeline = await start(always_down)
    task_id = await submit()
    task = await until(store, task_id, "failed")
    assert pipeline.calls == 3 and task.attempts == 3 and worker.models.pokes == 3
    assert task.error == "gave up after 3 attempts: inference server request failed"


async def test_retry_succeeds_on_the_next_attempt(rig):
    start, submit, store, _ = rig

    def flaky(n, out, progress, _c):
        if n == 1:
            raise TritonUnavailableError("inference server request failed")
        return write_result(out, progress)

    await start(flaky)
    task_id = await submit()
    task = await until(store, task_id, "finished")
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
    task = await until(store, task_id, "failed")
    assert task.error == message and pipeline.calls == 1 and task.attempts == 1
    assert not list((settings.data_dir / "results").glob(f"{task_id}*"))


async def test_success_without_a_file_is_a_failure(rig):
    start, submit, store, _ = rig
    await start(lambda n, out, progress, _c: {})
    task = await until(store, await submit(), "failed")
    assert task.error == "the pipeline reported success but wrote no result"


async def test_cancel_written_by_another_node_stops_the_pipeline(rig):
    start, submit, store, _ = rig
    _, pipeline = await start(lambda n, out, progress, should_cancel: wait_cancel(should_cancel))
    task_id = await submit()
    await asyncio.to_thread(pipeline.started.wait, 10)
    await store.request_cancel(task_id)  # what DELETE on any node does
    task = await until(store, task_id, "cancelled")
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


async def test_a_degraded_node_on_a_shared_queue_claims_nothing_and_fails_no_one(rig):
    start, submit, store, _ = rig
    models = FakeModels(ModelState.degraded)
    _, pipeline = await start(lambda n, out, progress, _c: write_result(out, progress), models=models,
                              shared_queue=True)
    task_id = await submit()
    await asyncio.sleep(1.5)
    task = await store.get(task_id)
    assert task.status == "queued" and task.attempts == 0 and pipeline.calls == 0
    models.state = ModelState.ready
    assert (await until(store, task_id, "finished")).attempts == 1


async def test_the_sole_worker_of_an_embedded_queue_fails_waiting_tasks_with_the_reason(rig):
    start, submit, store, _ = rig
    await start(lambda n, out, progress, _c: write_result(out, progress), models=FakeModels(ModelState.degraded))
    task = await until(store, await submit(), "failed")
    assert task.error == "cannot process: detector failed to load" and task.attempts == 0


async def test_shutdown_hands_the_task_back_without_using_an_attempt(rig):
    start, submit, store, _ = rig
    worker, pipeline = await start(lambda n, out, progress, should_cancel: wait_cancel(should_cancel))
    task_id = await submit()
    await asyncio.to_thread(pipeline.started.wait, 10)
    await worker.stop()
    task = await store.get(task_id)
    assert task.status == "queued" and task.attempts == 0 and task.owner is None and task.input_path

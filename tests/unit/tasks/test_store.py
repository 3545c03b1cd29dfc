"""TaskStore on a real SQLite file: atomic claims, recovery after a crash, retries, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from orchestrator.tasks.lease import LeaseQueue
from orchestrator.tasks.store import TaskStatus, TaskStore, utcnow


async def _store(tmp_path) -> TaskStore:
    store = TaskStore(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'tasks.db'}")
    await store.init()
    return store


async def test_schema_persists_and_uses_wal(tmp_path):
    store = await _store(tmp_path)
    task = await store.create(options={"detect": True}, input_path="/in", output_path="/out", source_name="a.mp4")
    await store.close()
    store = await _store(tmp_path)  # a second start: schema creation is idempotent, data kept
    again = await store.get(task.id)
    assert again.options == {"detect": True} and again.status == "queued" and again.created_at.tzinfo
    async with store.engine.connect() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
    assert mode == "wal"
    await store.close()


async def test_claims_are_atomic_and_in_order(tmp_path):
    store = await _store(tmp_path)
    ids = [(await store.create(options={}, input_path=f"/in{i}", output_path="/o")).id for i in range(5)]
    waiting = await store.create(options={}, input_path=None, output_path="/o", source_url="http://x")
    claimed = await asyncio.gather(*(store.claim_next() for _ in range(8)))
    got = [t.id for t in claimed if t is not None]
    assert sorted(got) == sorted(ids) and len(set(got)) == 5  # each once; the download-pending one never
    assert all(t.status == "processing" and t.attempts == 1 for t in claimed if t)
    assert (await store.get(waiting.id)).status == "queued"
    await store.close()


async def test_recover_requeue_and_retry_delay(tmp_path):
    store = await _store(tmp_path)
    a = await store.create(options={}, input_path="/a", output_path="/o")
    b = await store.create(options={}, input_path="/b", output_path="/o")
    c = await store.create(options={}, input_path="/c", output_path="/o")
    earlier = LeaseQueue(store, "node:1#old", lease_s=60)
    for _ in range(3):
        await earlier.claim()
    await store.update_fields(b.id, attempts=3)
    await store.update_fields(c.id, cancel_requested=True)
    restarted = LeaseQueue(store, "node:1#new", lease_s=60)
    reclaimed = await restarted.recover_own("node:1", max_attempts=3)
    assert reclaimed.requeued == [a.id] and sorted(reclaimed.ended) == sorted([b.id, c.id])
    assert (await store.get(b.id)).error == (
        "gave up after 3 attempts: the service stopped while the task was processing")
    assert (await store.get(c.id)).status == "cancelled"

    task, lease = await restarted.claim()
    assert task.id == a.id and task.attempts == 2 and task.owner == "node:1#new"
    assert await restarted.requeue(lease, delay_s=60, error="Triton unavailable")
    assert await store.claim_next() is None  # not before its retry time
    assert (await store.next_wakeup()) > utcnow()
    await store.update_fields(a.id, not_before=utcnow() - timedelta(seconds=1))
    assert (await store.claim_next()).attempts == 3
    await store.close()


async def test_cancel_finish_and_expiry(tmp_path):
    store = await _store(tmp_path)
    q = await store.create(options={}, input_path="/q", output_path="/o1")
    p = await store.create(options={}, input_path="/p", output_path="/o2")
    assert (await store.request_cancel(q.id)).status == "cancelled"
    await store.claim_next()
    after = await store.request_cancel(p.id)
    assert after.status == "processing" and after.cancel_requested
    assert await store.finish(p.id, TaskStatus.finished, details={"frames": 3}, progress=100)
    assert not await store.finish(p.id, TaskStatus.failed)  # final states are final
    assert await store.expired(utcnow() - timedelta(hours=1)) == []
    expired = await store.expired(utcnow() + timedelta(seconds=1))
    assert {t.id for t in expired} == {q.id, p.id}
    counts = await store.count_by_status()
    assert counts == {"cancelled": 1, "finished": 1}
    tasks, total = await store.list(status="finished")
    assert total == 1 and tasks[0].details == {"frames": 3}
    assert await store.delete(p.id) and await store.get(p.id) is None
    await store.close()


async def test_details_with_non_finite_numbers_are_stored_as_null(tmp_path):
    store = await _store(tmp_path)
    task = await store.create(options={}, input_path="/i", output_path="/o")
    await store.update_fields(task.id, details={"psnr": float("inf"), "gain": [1.5, float("nan")]})
    assert (await store.get(task.id)).details == {"psnr": None, "gain": [1.5, None]}
    await store.close()

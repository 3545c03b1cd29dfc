"""Download leases on a real SQLite queue: one holder per download, renewals, adoption of the
downloads whose node stopped, and a restarted node taking back its own at once."""

from __future__ import annotations

import asyncio

from orchestrator.tasks.lease import LeaseQueue, boot_owner, node_id
from orchestrator.tasks.store import TaskStore


async def _store(tmp_path) -> TaskStore:
    store = TaskStore(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    await store.init()
    return store


def test_node_ids():
    assert node_id("pod-1", 80) == "pod-1" and node_id(None, 5354).endswith(":5354")
    assert boot_owner("n").startswith("n#") and boot_owner("n") != boot_owner("n")


async def test_one_node_holds_a_download_until_its_lease_expires(tmp_path):
    store = await _store(tmp_path)
    task = await store.create(options={}, input_path=None, output_path="/o", source_url="http://x/v.mp4")
    a, b = LeaseQueue(store, "a:1#1", lease_s=0.4), LeaseQueue(store, "b:1#1", lease_s=0.4)
    assert await a.orphaned_downloads() == [task.id]
    assert await a.claim_download(task.id) and not await b.claim_download(task.id)
    assert await a.claim_download(task.id)  # a renewal
    assert await b.orphaned_downloads() == []
    await asyncio.sleep(0.5)  # a stopped renewing
    assert await b.orphaned_downloads() == [task.id] and await b.claim_download(task.id)
    assert not await a.claim_download(task.id)
    await store.close()


async def test_a_restarted_node_takes_back_its_downloads_at_once(tmp_path):
    store = await _store(tmp_path)
    task = await store.create(options={}, input_path=None, output_path="/o", source_url="http://x/v.mp4")
    other = await store.create(options={}, input_path=None, output_path="/o", source_url="http://x/w.mp4")
    assert await LeaseQueue(store, "n:1#old", lease_s=60).claim_download(task.id)
    assert await LeaseQueue(store, "peer:1#p", lease_s=60).claim_download(other.id)
    restarted = LeaseQueue(store, "n:1#new", lease_s=60)
    await restarted.recover_own("n:1", max_attempts=3)
    assert await restarted.orphaned_downloads() == [task.id]  # the live peer's stays its own
    await store.close()


def test_a_worker_node_may_listen_anywhere_without_a_key():
    """Its HTTP port serves /ping and /metrics only; the API roles still need API_KEY."""
    from orchestrator.settings import Settings

    assert Settings(host="0.0.0.0", role="worker").exposure_refusal() is None
    assert Settings(host="0.0.0.0", role="api").exposure_refusal() is not None

"""Issue 16, item 1: two orchestrators on one real PostgreSQL queue (leases), on loopback.

- A task submitted to A is read, cancelled and downloaded through B.
- A node frozen past its lease: the other takes the task as the next attempt and finishes it once;
  the frozen node's late outcome is rejected. A node SIGKILLed mid-task: the same, attempt 2.
- A restarting node does not take the tasks a live peer is running.
- 40 tasks over two workers: each finishes exactly once, nothing lost.
"""

from __future__ import annotations

import asyncio

import pytest

from reliability_support import all_final, clip_bytes, frame_count, wait_until
from scale_support import REGIONS, node_of, owner_of, start_nodes

from orchestrator.cluster.postgres import LocalPostgres, pg_bin
from orchestrator.triton.local import free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL server binaries not installed")]

LONG, SHORT = 150, 8
# Frames of a task the test acts on mid-run (a cancel, a freeze): it must still be running when the
# action lands (150 frames finished first on a quiet clean-clone run).
RUNNING = 600


@pytest.fixture
def postgres():
    with LocalPostgres(free_port()) as pg:
        yield pg


async def _ready(nodes) -> None:
    for node in nodes:
        async with node.client() as client:
            await wait_until(lambda: _ping_ok(client), 180, f"/ping 200 on {node.name}", interval_s=0.2)


async def _ping_ok(client) -> bool:
    return (await client.get("/ping")).status_code == 200


async def _submit(node, clip: bytes, name: str = "clip.mp4") -> str:
    async with node.client() as client:
        r = await client.post("/v1/tasks", files={"video": (name, clip)}, data={"regions": REGIONS, "detect": "false"})
    assert r.status_code == 202, r.text
    return r.json()["task_id"]


async def _task(node, task_id: str) -> dict | None:
    async with node.client() as client:
        r = await client.get(f"/v1/tasks/{task_id}")
    return r.json() if r.status_code == 200 else None


async def _processing(node, task_id: str, *, min_progress: float = 10.0, attempts: int = 1):
    task = await _task(node, task_id)
    ok = task and task["status"] == "processing" and task["attempts"] == attempts and task["progress"] >= min_progress
    return task if ok else None


async def _final(node, task_id: str):
    task = await _task(node, task_id)
    return task if task and task["status"] in ("finished", "failed", "cancelled") else None


async def _running(nodes, postgres, clip: bytes, via: int = 0):
    """Submit ``clip`` to ``nodes[via]`` and wait (through the other node) until it runs:
    (task id, the node running it, the other node)."""
    task_id = await _submit(nodes[via], clip)
    await wait_until(lambda: _processing(nodes[1 - via], task_id), 120, "the task running")
    runner = node_of(nodes, (await owner_of(postgres, task_id))[0])
    return task_id, runner, nodes[1] if runner is nodes[0] else nodes[0]


def _stop(nodes) -> None:
    for node in nodes:
        node.thaw() if node.process.proc.poll() is None else None
        node.process.stop()


async def test_read_cancel_and_download_through_the_other_node(tmp_path, triton_factory, pipeline_repo, postgres):
    triton = triton_factory(pipeline_repo)
    a, b = nodes = start_nodes(tmp_path, postgres, triton.grpc_url)
    short = clip_bytes(tmp_path / "short.mp4", width=160, height=96, frames=SHORT)
    long = clip_bytes(tmp_path / "long.mp4", width=320, height=180, frames=RUNNING)
    try:
        await _ready(nodes)
        done_id = await _submit(a, short)
        task = await wait_until(lambda: _final(b, done_id), 120, "the short task, read through B")
        assert task["status"] == "finished" and task["attempts"] == 1, task
        async with b.client() as client:
            r = await client.get(task["result_url"])
        assert r.status_code == 200
        (tmp_path / "out.mp4").write_bytes(r.content)
        assert frame_count(tmp_path / "out.mp4") == SHORT

        long_id = await _submit(a, long)
        await wait_until(lambda: _processing(b, long_id, min_progress=5), 120, "the long task running")
        owner, _ = await owner_of(postgres, long_id)
        runner = node_of(nodes, owner)
        other = b if runner is a else a
        async with other.client() as client:  # cancelled through the node NOT running it
            r = await client.delete(f"/v1/tasks/{long_id}")
        assert r.status_code == 200 and r.json()["status"] == "processing", r.text
        task = await wait_until(lambda: _final(other, long_id), 30, "the cancel to reach the running node")
        assert task["status"] == "cancelled" and task["error"] == "cancelled by the user", task
        assert f"task {long_id}: cancelled" in runner.log()  # the running worker stopped it
    finally:
        _stop(nodes)


async def test_failover_takes_the_next_attempt_once_and_rejects_the_late_one(tmp_path, triton_factory,
                                                                               pipeline_repo, postgres):
    triton = triton_factory(pipeline_repo)
    nodes = start_nodes(tmp_path, postgres, triton.grpc_url)
    running = clip_bytes(tmp_path / "running.mp4", width=320, height=180, frames=RUNNING)
    try:
        await _ready(nodes)
        # 1. The running node freezes (SIGSTOP) past its lease, then wakes up.
        frozen_id, runner, peer = await _running(nodes, postgres, running)
        runner.freeze()
        await wait_until(lambda: _processing(peer, frozen_id, min_progress=0, attempts=2), 150,
                         "the peer to take attempt 2 after the lease expired")
        assert node_of(nodes, (await owner_of(postgres, frozen_id))[0]) is peer
        runner.thaw()
        task = await wait_until(lambda: _final(peer, frozen_id), 240, "attempt 2 to finish")
        assert task["status"] == "finished" and task["attempts"] == 2, task
        await wait_until(lambda: _logged(runner, "lost its lease"), 30, "the late attempt to be rejected")
        assert await runner.finished_count() == 0 and await peer.finished_count() == 1
        results = sorted(p.name for p in (tmp_path / "data" / "results").iterdir() if frozen_id in p.name)
        assert results == [f"{frozen_id}.a2.mp4"], results

        # 2. The running node is SIGKILLed: the other one finishes the task as attempt 2.
        killed_id, victim, survivor = await _running(nodes, postgres, running, via=nodes.index(peer))
        before = await survivor.finished_count()
        victim.process.kill()
        task = await wait_until(lambda: _final(survivor, killed_id), 240, "the survivor to finish it")
        assert task["status"] == "finished" and task["attempts"] == 2, task
        assert await survivor.finished_count() == before + 1
        async with survivor.client() as client:
            r = await client.get(task["result_url"])
        (tmp_path / "killed.mp4").write_bytes(r.content)
        assert frame_count(tmp_path / "killed.mp4") == RUNNING
    finally:
        _stop(nodes)


async def test_a_restarting_node_does_not_take_a_live_peers_task(tmp_path, triton_factory, pipeline_repo, postgres):
    triton = triton_factory(pipeline_repo)
    nodes = start_nodes(tmp_path, postgres, triton.grpc_url)
    long = clip_bytes(tmp_path / "long.mp4", width=320, height=180, frames=LONG)
    try:
        await _ready(nodes)
        task_id, runner, restarting = await _running(nodes, postgres, long)
        owner, _ = await owner_of(postgres, task_id)
        restarting.process.stop()
        restarting.restart()
        await _ready([restarting])
        task = await wait_until(lambda: _final(restarting, task_id), 240, "the task to finish")
        assert task["status"] == "finished" and task["attempts"] == 1, task
        assert (await owner_of(postgres, task_id))[0] == owner  # never changed hands
        assert await runner.finished_count() == 1 and await restarting.finished_count() == 0
    finally:
        _stop(nodes)


async def test_forty_tasks_over_two_workers_each_finish_exactly_once(tmp_path, triton_factory, pipeline_repo,
                                                                     postgres):
    triton = triton_factory(pipeline_repo)
    nodes = start_nodes(tmp_path, postgres, triton.grpc_url)
    clip = clip_bytes(tmp_path / "tiny.mp4", width=128, height=72, frames=4)
    try:
        await _ready(nodes)
        ids = await asyncio.gather(*(_submit(nodes[i % 2], clip, f"t{i}.mp4") for i in range(40)))
        async with nodes[0].client() as client:
            tasks = await wait_until(lambda: all_final(client, ids), 600, "all 40 tasks to end", interval_s=1.0)
        assert all(t["status"] == "finished" and t["attempts"] == 1 for t in tasks.values()), tasks
        counts = [await node.finished_count() for node in nodes]
        assert sum(counts) == 40 and min(counts) > 0, counts
        results = sorted(p.name for p in (tmp_path / "data" / "results").iterdir())
        assert results == sorted(f"{i}.a1.mp4" for i in ids)
        assert not list((tmp_path / "data" / "uploads").iterdir())
    finally:
        _stop(nodes)


async def _logged(node, text: str) -> bool:
    return text in node.log()


async def test_api_and_worker_roles_split_the_work(tmp_path, triton_factory, pipeline_repo, postgres):
    """``--role api`` serves the API without Triton; ``--role worker`` runs tasks and serves only
    /ping and /metrics; a task submitted to the API is run by the worker."""
    from reliability_support import OrchestratorProcess
    from scale_support import Node, node_env

    triton = triton_factory(pipeline_repo)
    api = Node("api", OrchestratorProcess(tmp_path / "data", f"127.0.0.1:{free_port()}", tmp_path / "api.log",
                                          ROLE="api", **node_env(postgres)).start())
    worker = Node("worker", OrchestratorProcess(tmp_path / "data", triton.grpc_url, tmp_path / "worker.log",
                                                ROLE="worker", **node_env(postgres)).start())
    clip = clip_bytes(tmp_path / "short.mp4", width=160, height=96, frames=SHORT)
    try:
        await _ready([api, worker])  # the API is ready although its TRITON_GRPC_URL leads nowhere
        async with worker.client() as client:
            assert (await client.get("/v1/tasks")).status_code == 404
            assert (await client.get("/metrics")).status_code == 200
        task_id = await _submit(api, clip)
        task = await wait_until(lambda: _final(api, task_id), 120, "the worker to run the API's task")
        assert task["status"] == "finished", task
        assert await worker.finished_count() == 1 and await api.finished_count() == 0
    finally:
        _stop([api, worker])

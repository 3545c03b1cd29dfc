"""Issue 8, item 3: ``python -m orchestrator`` SIGKILLed with one task processing and others queued.

After a restart on the same data directory every task finishes exactly once (the interrupted one
on its second attempt, the queued ones on their first, a ``video_url`` task cut mid-download
fetched again), results are complete videos, a partial
output is never served (409 while not finished), and the temp file of the interrupted attempt does
not stay behind. (A single interrupted task is in test_service_pipeline.py.)
"""

from __future__ import annotations

import httpx
import pytest

from reliability_support import OrchestratorProcess, SourceServer, all_final, clip_bytes, frame_count, wait_until

pytestmark = pytest.mark.integration

REGIONS = "[[20, 20, 120, 60]]"
LONG, SHORT = 200, 12


async def test_sigkill_with_queue_loses_nothing_and_runs_nothing_twice(tmp_path, triton_factory, pipeline_repo):
    triton = triton_factory(pipeline_repo)
    long_clip = clip_bytes(tmp_path / "long.mp4", width=320, height=180, frames=LONG)
    short_clip = clip_bytes(tmp_path / "short.mp4", width=160, height=96, frames=SHORT)
    data_dir = tmp_path / "data"
    env = {"ALLOW_PRIVATE_URLS": "true", "PRESET": "ultrafast", "PROGRESS_INTERVAL_S": "0.1",
           "MODEL_POLL_INTERVAL_S": "0.3"}
    first = OrchestratorProcess(data_dir, triton.grpc_url, tmp_path / "orchestrator.log", **env)
    second = OrchestratorProcess(data_dir, triton.grpc_url, tmp_path / "orchestrator.log", **env)
    second.port, second.url, second.env["PORT"] = first.port, first.url, first.env["PORT"]
    source = SourceServer(short_clip).__enter__()
    try:
        first.start()
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            await wait_until(lambda: _ping_ok(client), 120, "/ping 200", interval_s=0.1)
            r = await client.post("/v1/tasks", files={"video": ("long.mp4", long_clip)},
                                  data={"regions": REGIONS, "detect": "false"})
            long_id = r.json()["task_id"]
            short_ids = []
            for i in range(3):
                r = await client.post("/v1/tasks", files={"video": (f"s{i}.mp4", short_clip)},
                                      data={"regions": REGIONS, "detect": "false"})
                assert r.status_code == 202, r.text
                short_ids.append(r.json()["task_id"])

            # A video_url task whose download is under way (half received) when the process dies.
            r = await client.post("/v1/tasks", data={"video_url": f"{source.url}/held.mp4"})
            assert r.status_code == 202, r.text
            url_id = r.json()["task_id"]
            assert (await client.get(f"/v1/tasks/{url_id}")).json()["stage"] == "downloading"

            async def long_in_progress():
                task = (await client.get(f"/v1/tasks/{long_id}")).json()
                assert task["status"] in ("queued", "processing"), task
                if task["status"] == "processing":
                    assert (await client.get(f"/v1/tasks/{long_id}/result")).status_code == 409
                return task if task["status"] == "processing" and task["progress"] > 45 else None

            for task_id in short_ids:
                assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "queued"
            await wait_until(long_in_progress, 180, "the long task in pass 2", interval_s=0.05)
        first.kill()
        source.release.set()
        results = data_dir / "results"
        partial = [p for p in results.iterdir() if p.name.endswith(".tmp")]
        assert partial, "expected the interrupted attempt's temp file (killed in pass 2, mid-encode)"

        second.start()
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            # Served as soon as the process is up (the database is the queue), before the models.
            task = await wait_until(lambda: _get(client, long_id), 60, "the restarted service")
            assert task["status"] in ("queued", "processing") and task["stage"] in ("requeued", "starting", "remove"), task
            assert (await client.get(f"/v1/tasks/{long_id}/result")).status_code == 409
            assert (await client.get(f"/download/{long_id}")).status_code == 409

            ids = [long_id, *short_ids, url_id]
            tasks = await wait_until(lambda: all_final(client, ids), 300, "every task to end")
            for task_id, task in tasks.items():
                assert task["status"] == "finished", task
                assert task["attempts"] == (2 if task_id == long_id else 1), task
                r = await client.get(task["result_url"])
                assert r.status_code == 200
                out = tmp_path / f"{task_id}.mp4"
                out.write_bytes(r.content)
                assert frame_count(out) == (LONG if task_id == long_id else SHORT)
            metrics = (await client.get("/metrics")).text
            assert 'unmark_tasks_total{status="finished"} 5.0' in metrics  # each ran to the end once
            listing = (await client.get("/v1/tasks", params={"limit": 50})).json()
            assert listing["total"] == 5
        assert sorted(p.name for p in results.iterdir()) == sorted(
            f"{i}.a{2 if i == long_id else 1}.mp4" for i in ids)  # one result per task: its last attempt's
        assert not list((data_dir / "uploads").iterdir())
    finally:
        source.__exit__(None, None, None)
        first.stop()
        assert second.stop() in (0, None), second.log_tail()


async def _ping_ok(client):
    return (await client.get("/ping")).status_code == 200


async def _get(client, task_id):
    """The task's view; None while the restarted process answers 503 ``starting``."""
    r = await client.get(f"/v1/tasks/{task_id}")
    if r.status_code == 503 and r.json()["error"]["code"] == "starting":
        return None
    assert r.status_code == 200, r.text
    return r.json()

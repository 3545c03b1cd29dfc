"""The service end to end with the real pipeline and a real Triton (weight-free inpainters,
blind detector + given regions): tasks queued before the models load, /ping latency while a
video is processed, cancel mid-task, and a SIGKILLed orchestrator resuming its task.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time

import av
import httpx
import pytest

from media import make_clip
from service_support import ROOT, running_app, test_settings, wait_for

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration

REGIONS = "[[20, 20, 120, 60]]"


def _clip(path, frames: int, width: int = 320, height: int = 180):
    make_clip(path, width=width, height=height, frames=frames)
    return path.read_bytes()


def _frames(data: bytes, tmp_path) -> int:
    path = tmp_path / "out-check.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


async def _status(client, task_id, *wanted):
    task = (await client.get(f"/v1/tasks/{task_id}")).json()
    return task if task["status"] in wanted else None


async def _start_long_task(client, clip: bytes) -> str:
    """Submit the clip (regions only) and wait until the worker is processing it."""
    task_id = (await client.post("/v1/tasks", files={"video": ("long.mp4", clip)},
                                 data={"regions": REGIONS, "detect": "false"})).json()["task_id"]
    await wait_for(lambda: _status(client, task_id, "processing"), 120, 0.05, what="processing")
    return task_id


async def test_task_queued_before_models_ready_runs_after_and_ping_stays_fast(tmp_path, triton_factory, pipeline_repo):
    ports = (free_port(), free_port(), free_port())
    settings = test_settings(tmp_path, triton_grpc_url=f"127.0.0.1:{ports[1]}", optional_models=("inpainter_256",))
    clip = _clip(tmp_path / "in.mp4", frames=90)
    async with running_app(settings) as app, app.client() as client:
        r = await client.post("/v1/tasks", files={"video": ("in.mp4", clip, "video/mp4")},
                              data={"regions": REGIONS, "detect": "false"})
        task_id = r.json()["task_id"]
        compat_id = (await client.post("/submit_remove_task", files={"video": ("c.mp4", clip)})).json()["task_id"]
        await asyncio.sleep(1.0)
        assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "queued"

        triton_factory(pipeline_repo, ports=ports)
        # /ping latency from a second connection while the video is processed
        latencies: list[float] = []
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as pinger:
            await wait_for(lambda: _status(client, task_id, "processing", "finished"), 120, 0.05,
                           what="processing")
            while (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "processing":
                for _ in range(5):
                    t0 = time.perf_counter()
                    assert (await pinger.get("/ping")).status_code == 200
                    latencies.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.02)
        task = await wait_for(lambda: _status(client, task_id, "finished", "failed"), 120, what="finished")
        assert task["status"] == "finished", task
        assert task["progress"] == 100 and task["result_url"] == f"/v1/tasks/{task_id}/result"
        assert task["details"]["frames"] == 90
        result = await client.get(task["result_url"])
        assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
        assert _frames(result.content, tmp_path) == 90

        compat = await wait_for(lambda: _compat_done(client, compat_id), 120, what="compat task")
        assert compat == {"percentage": 100, "status": "FINISHED", "download_url": f"/download/{compat_id}"}
        assert (await client.get(compat["download_url"])).status_code == 200

        if latencies:
            latencies.sort()
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"/ping while processing: n={len(latencies)} p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms")
            assert p99 < 1.0

        metrics = (await client.get("/metrics")).text
        assert 'unmark_tasks_total{status="finished"}' in metrics
        assert "unmark_queue_wait_seconds_count" in metrics


async def _ping_not_200(client):
    return (await client.get("/ping")).status_code != 200


async def _compat_done(client, task_id):
    body = (await client.get("/get_results", params={"remove_task_id": task_id})).json()
    return body if body["status"] in ("FINISHED", "ERROR") else None


async def test_cancel_while_processing(tmp_path, triton_factory, pipeline_repo):
    triton = triton_factory(pipeline_repo)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, optional_models=("inpainter_256",))
    clip = _clip(tmp_path / "long.mp4", frames=300)
    async with running_app(settings) as app, app.client() as client:
        task_id = await _start_long_task(client, clip)
        r = await client.delete(f"/v1/tasks/{task_id}")
        assert r.status_code == 200 and r.json()["status"] in ("processing", "cancelled")
        task = await wait_for(lambda: _status(client, task_id, "cancelled", "finished", "failed"), 60,
                              what="cancelled")
        assert task["status"] == "cancelled", task
        assert (await client.get(f"/v1/tasks/{task_id}/result")).status_code == 409
        assert not list((settings.data_dir / "results").glob(f"{task_id}*"))


def test_sigkilled_orchestrator_resumes_its_task(tmp_path, triton_factory, pipeline_repo):
    triton = triton_factory(pipeline_repo)
    port = free_port()
    env = dict(os.environ, PORT=str(port), DATA_DIR=str(tmp_path / "data"), TRITON_GRPC_URL=triton.grpc_url,
               LOG_LEVEL="warning")
    cmd = [sys.executable, "-m", "orchestrator", "--host", "127.0.0.1"]
    base = f"http://127.0.0.1:{port}"
    clip = _clip(tmp_path / "long.mp4", frames=300)

    def wait(predicate, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    first = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        wait(lambda: httpx.get(f"{base}/ping").status_code == 200, 120, "ready")
        task_id = httpx.post(f"{base}/v1/tasks", files={"video": ("long.mp4", clip)},
                             data={"regions": REGIONS, "detect": "false"}).json()["task_id"]
        wait(lambda: httpx.get(f"{base}/v1/tasks/{task_id}").json().get("status") == "processing", 120,
             "processing")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()

    second = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        def ended():
            r = httpx.get(f"{base}/v1/tasks/{task_id}")  # 503 "starting" until the store is open
            return r.json() if r.status_code == 200 and r.json()["status"] in ("finished", "failed") else None

        task = wait(ended, 300, "finished after restart")
        assert task["status"] == "finished", task
        assert task["attempts"] == 2
        result = httpx.get(f"{base}/v1/tasks/{task_id}/result")
        assert result.status_code == 200 and _frames(result.content, tmp_path) == 300
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(30)
        finally:
            if second.poll() is None:
                second.kill()


async def test_triton_killed_mid_task_is_retried_when_it_returns(tmp_path, triton_factory, pipeline_repo):
    ports = (free_port(), free_port(), free_port())
    triton = triton_factory(pipeline_repo, ports=ports)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, optional_models=("inpainter_256",),
                             task_retry_backoff_s=0.5, triton_live_deadline_s=60.0)
    clip = _clip(tmp_path / "long.mp4", frames=300)
    async with running_app(settings) as app, app.client() as client:
        task_id = await _start_long_task(client, clip)
        triton.kill()
        requeued = await wait_for(lambda: _status(client, task_id, "queued", "failed", "finished"), 60,
                                  what="requeued after the kill")
        assert requeued["status"] == "queued", requeued
        await wait_for(lambda: _ping_not_200(client), 10, what="/ping leaving 200")

        triton_factory(pipeline_repo, ports=ports)
        task = await wait_for(lambda: _status(client, task_id, "finished", "failed"), 180, what="finished")
        assert task["status"] == "finished", task
        assert task["attempts"] == 2
        result = await client.get(task["result_url"])
        assert _frames(result.content, tmp_path) == 300


async def test_graceful_stop_puts_the_running_task_back_without_using_an_attempt(tmp_path, triton_factory,
                                                                                   pipeline_repo):
    from orchestrator.tasks.store import TaskStore

    triton = triton_factory(pipeline_repo)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, optional_models=("inpainter_256",))
    clip = _clip(tmp_path / "long.mp4", frames=300)
    async with running_app(settings) as app, app.client() as client:
        task_id = await _start_long_task(client, clip)
    # the app has stopped (lifespan shutdown) while the task was running
    store = TaskStore(settings.effective_database_url)
    await store.init()
    task = await store.get(task_id)
    await store.close()
    assert task.status == "queued" and task.attempts == 0, task
    assert task.input_path and not list((settings.data_dir / "results").glob(f"*{task_id}*"))

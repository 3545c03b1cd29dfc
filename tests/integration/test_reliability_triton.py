"""Issue 8, item 2: Triton faults while a task is processing, against the real Triton binary.

- Triton frozen (SIGSTOP) mid-task: every gRPC call has a deadline, so the task is requeued (its
  attempt counted, backoff) and /ping leaves 200 within seconds instead of hanging; while Triton
  does not answer no attempt is burnt and no partial result exists; after SIGCONT it finishes.
- A model unloaded behind the service's back mid-task: reloaded, the task retried and finished.
- A task that keeps meeting an unavailable Triton fails after ``max_task_attempts`` with a reason.
(Triton SIGKILLed mid-task and restarted on the same ports: test_service_pipeline.py; /ping
across a Triton restart and an unload: test_service.py.)
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import tritonclient.grpc as grpcclient

from reliability_support import clip_bytes, frame_count, wait_until
from service_support import running_app, test_settings

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration

REGIONS = "[[20, 20, 120, 60]]"
FRAMES = 150


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return clip_bytes(tmp_path_factory.mktemp("clip") / "c.mp4", width=320, height=180, frames=FRAMES)


def fault_settings(tmp_path, grpc_port: int, **kw):
    base = dict(triton_grpc_url=f"127.0.0.1:{grpc_port}", grpc_timeout_s=4.0, grpc_first_timeout_s=4.0,
                triton_ping_timeout_s=1.0,
                task_retry_backoff_s=0.5, max_task_attempts=3, triton_live_deadline_s=120.0,
                model_poll_interval_s=0.3, preset="ultrafast", optional_models=())
    base.update(kw)
    return test_settings(tmp_path, **base)


async def _task(client, task_id):
    return (await client.get(f"/v1/tasks/{task_id}")).json()


async def _ping(client, *wanted):
    r = await client.get("/ping")
    return r if r.status_code in wanted else None


async def _submit_and_wait_processing(client, clip, min_progress: float = 0.0) -> str:
    """Submit the clip; return once it is processing past ``min_progress`` (pass 2, where every
    chunk calls the inpainter, starts at 35 %)."""
    r = await client.post("/v1/tasks", files={"video": ("c.mp4", clip, "video/mp4")},
                          data={"regions": REGIONS, "detect": "false"})
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]

    async def started():
        task = await _task(client, task_id)
        assert task["status"] in ("queued", "processing"), task  # not done before the fault
        return task if task["status"] == "processing" and task["progress"] > min_progress else None

    await wait_until(started, 180, "the task to be processing", interval_s=0.05)
    return task_id


async def _check_finished(client, task_id, tmp_path, attempts: int) -> dict:
    async def ended():
        task = await _task(client, task_id)
        return task if task["status"] in ("finished", "failed", "cancelled") else None

    task = await wait_until(ended, 300, "the task to end")
    assert task["status"] == "finished", task
    assert task["attempts"] == attempts, task
    r = await client.get(task["result_url"])
    assert r.status_code == 200
    out = tmp_path / f"{task_id}.mp4"
    out.write_bytes(r.content)
    assert frame_count(out) == FRAMES
    return task


async def test_frozen_triton_hits_deadlines_and_unloaded_model_is_reloaded(tmp_path, triton_factory, pipeline_repo, clip):
    ports = (free_port(), free_port(), free_port())
    triton = triton_factory(pipeline_repo, ports=ports)
    async with running_app(fault_settings(tmp_path, ports[1])) as app, app.client() as client:
        await wait_until(lambda: _ping(client, 200), 120, "/ping 200")

        # 1. SIGSTOP: Triton accepts connections (the kernel does) but answers nothing.
        task_id = await _submit_and_wait_processing(client, clip)
        os.kill(triton.pid, signal.SIGSTOP)
        try:
            await wait_until(lambda: _ping(client, 204, 503), 15, "/ping to leave 200 (deadline)")

            async def requeued():
                task = await _task(client, task_id)
                return task if task["status"] == "queued" else None

            task = await wait_until(requeued, 30, "the frozen task to hit its deadline and be requeued")
            assert task["attempts"] == 1 and task["details"]["last_error"], task
            assert (await client.get(f"/v1/tasks/{task_id}/result")).status_code == 409
            assert not list((app.settings.data_dir / "results").iterdir()), "a partial result was left"
            # While Triton does not answer, the task waits: no attempt is spent on it.
            await asyncio.sleep(3)
            assert (await _task(client, task_id))["attempts"] == 1
            assert (await client.get("/ping")).status_code in (204, 503)
        finally:
            os.kill(triton.pid, signal.SIGCONT)
        await wait_until(lambda: _ping(client, 200), 60, "/ping 200 after SIGCONT")
        await _check_finished(client, task_id, tmp_path, attempts=2)

        # 2. The inpainter unloaded behind the service's back while a task uses it.
        task_id = await _submit_and_wait_processing(client, clip, min_progress=40)
        grpcclient.InferenceServerClient(triton.grpc_url).unload_model("inpainter")
        await _check_finished(client, task_id, tmp_path, attempts=2)
        assert grpcclient.InferenceServerClient(triton.grpc_url).is_model_ready("inpainter")
        assert (await client.get("/ping")).status_code == 200


async def test_retries_are_bounded(tmp_path, triton_factory, pipeline_repo, clip):
    """Triton keeps failing the task (the inpainter vanishes on every attempt): after
    ``max_task_attempts`` the task fails and says why; the service stays healthy."""
    ports = (free_port(), free_port(), free_port())
    triton = triton_factory(pipeline_repo, ports=ports)
    settings = fault_settings(tmp_path, ports[1], max_task_attempts=2)
    async with running_app(settings) as app, app.client() as client:
        await wait_until(lambda: _ping(client, 200), 120, "/ping 200")
        task_id = await _submit_and_wait_processing(client, clip, min_progress=40)
        admin = grpcclient.InferenceServerClient(triton.grpc_url)
        admin.unload_model("inpainter")

        async def second_attempt_or_end():
            task = await _task(client, task_id)
            if task["status"] in ("failed", "finished"):
                return task
            running = task["status"] == "processing" and task["attempts"] == 2 and task["progress"] > 40
            return task if running else None

        task = await wait_until(second_attempt_or_end, 180, "the second attempt", interval_s=0.05)
        assert task["status"] != "finished", task
        if task["status"] == "processing":
            admin.unload_model("inpainter")

        async def failed():
            task = await _task(client, task_id)
            return task if task["status"] in ("failed", "finished") else None

        task = await wait_until(failed, 120, "the task to fail")
        assert task["status"] == "failed", task
        assert task["error"].startswith("gave up after 2 attempts") and "inference server" in task["error"], task
        assert (await client.get(f"/v1/tasks/{task_id}/result")).status_code == 409
        await wait_until(lambda: _ping(client, 200), 60, "/ping 200 again")

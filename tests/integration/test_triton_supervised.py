"""The embedded Triton is supervised (issue 17): SIGKILL the local Triton under a running
``python -m orchestrator --local-triton`` mid-task (as an OOM kill would), and the service itself
restarts it, loads the models again, /ping goes back to 200 and the task finishes. Nothing in the
test starts Triton. And with no Triton at all, waiting tasks fail after ``TRITON_WAIT_S`` with a
reason instead of waiting forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import av
import httpx
import psutil
import pytest

from media import make_clip
from service_support import ROOT, running_app, test_settings, wait_for

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration

REGIONS = "[[20, 20, 120, 60]]"


def _tritons(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "tritonserver" in p.name()]


async def _status(client, task_id, *wanted):
    task = (await client.get(f"/v1/tasks/{task_id}")).json()
    return task if task["status"] in wanted else None


async def _ping(client, *wanted):
    try:
        return (await client.get("/ping")).status_code in wanted
    except httpx.TransportError:
        return False


async def test_sigkilled_local_triton_is_restarted_and_the_task_finishes(tmp_path, pipeline_repo):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "info",
           "TRITON_HTTP_PORT": str(free_port()), "TRITON_GRPC_PORT": str(free_port()),
           "TRITON_METRICS_PORT": str(free_port()), "TASK_RETRY_BACKOFF_S": "0.5"}
    env.pop("API_KEY", None)
    log = (tmp_path / "service.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--local-triton", "--model-repository",
                             str(pipeline_repo)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    make_clip(tmp_path / "long.mp4", width=320, height=180, frames=300)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await wait_for(lambda: _ping(client, 200), 180, 0.2, what="/ping 200")
            (first,) = _tritons(proc.pid)
            with (tmp_path / "long.mp4").open("rb") as f:
                task_id = (await client.post("/v1/tasks", files={"video": ("long.mp4", f)},
                                             data={"regions": REGIONS, "detect": "false"})).json()["task_id"]
            await wait_for(lambda: _status(client, task_id, "processing"), 120, 0.05, what="processing")
            first.send_signal(signal.SIGKILL)  # as the OOM killer would
            await wait_for(lambda: _ping(client, 204, 503), 15, 0.05, what="/ping leaving 200")
            task = await wait_for(lambda: _status(client, task_id, "finished", "failed"), 300, what="finished")
            assert task["status"] == "finished", task
            await wait_for(lambda: _ping(client, 200), 60, 0.2, what="/ping back to 200")
            (second,) = _tritons(proc.pid)
            assert second.pid != first.pid, "the same tritonserver: it was never killed"
            result = await client.get(task["result_url"])
            out = tmp_path / "out.mp4"
            out.write_bytes(result.content)
            with av.open(str(out)) as container:
                assert sum(1 for _ in container.decode(video=0)) == 300
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    text = (tmp_path / "service.log").read_text(errors="replace")
    assert "tritonserver exited (signal 9); starting it again" in text and "Triton restarted" in text


async def test_tasks_fail_with_a_reason_when_no_triton_comes(tmp_path):
    clip = tmp_path / "c.mp4"
    make_clip(clip, width=64, height=48, frames=6)
    settings = test_settings(tmp_path, triton_wait_s=1.5, triton_live_deadline_s=0.5)
    async with running_app(settings) as app, app.client() as client:
        task_id = (await client.post("/v1/tasks", files={"video": ("c.mp4", clip.read_bytes())})).json()["task_id"]
        task = await wait_for(lambda: _status(client, task_id, "failed"), 30, what="failed")
        assert "no inference server for" in task["error"] and "TRITON_WAIT_S" in task["error"]

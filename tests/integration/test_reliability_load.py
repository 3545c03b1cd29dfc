"""Issue 8, item 4: load and storage faults.

- 20 concurrent short submissions to ``python -m orchestrator`` (a real process, so /ping is
  measured on the server's own event loop) all finish with decodable results of the right length,
  while a poller process hits /ping every 50 ms: every answer is a 200 within 2 s. p50/p99 are
  printed beside those of a trivial HTTP server polled at the same time, which show what the
  machine's load alone costs (the 100 ms target is a benchmark figure, not asserted on a shared
  2-core CI machine).
- Disk full (results on a full tmpfs) and an unusable results directory (a file in its place: root
  ignores permission bits) → the task fails with a reason naming the problem, /ping stays 200,
  and the next task finishes once the storage is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reliability_support import (
    OrchestratorProcess, PingPoller, all_final, clip_bytes, frame_count, wait_until,
)
from service_support import running_app, test_settings

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration

REGIONS = "[[8, 8, 60, 40]]"
N_TASKS = 20


async def test_twenty_concurrent_submissions_and_ping_latency(tmp_path, triton_factory, pipeline_repo):
    triton = triton_factory(pipeline_repo)
    clips = {n: clip_bytes(tmp_path / f"c{n}.mp4", width=96, height=64, frames=n) for n in (8, 12, 16)}
    service = OrchestratorProcess(tmp_path / "data", triton.grpc_url, tmp_path / "orchestrator.log",
                                  PRESET="ultrafast", LOG_LEVEL="warning")
    service.start()
    try:
        with contextlib.ExitStack() as stack:
            await _load(tmp_path, service, clips, stack)
    finally:
        assert service.stop() == 0, service.log_tail()


async def _load(tmp_path, service, clips, stack: contextlib.ExitStack) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
        await wait_until(lambda: _ping_is(client, 200), 120, "/ping 200", interval_s=0.1)
        async with PingPoller(service.url, interval_s=0.05, timeout_s=10) as idle:
            await asyncio.sleep(3)  # the machine's own noise, for comparison
        print(f"\nidle service: {idle.summary()}")
        # A trivial HTTP server in its own process, polled alongside: what the machine's load
        # alone does to latency (CI shares 2 cores), to read the /ping figures against.
        control_port = free_port()
        (tmp_path / "empty").mkdir()
        control = subprocess.Popen([sys.executable, "-m", "http.server", str(control_port), "--bind",
                                    "127.0.0.1", "--directory", str(tmp_path / "empty")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(control.wait, 10)
        stack.callback(control.terminate)
        async with PingPoller(service.url, interval_s=0.05, timeout_s=10) as poller, \
                PingPoller(f"http://127.0.0.1:{control_port}", interval_s=0.05, path="/") as machine:
            lengths = [(8, 12, 16)[i % 3] for i in range(N_TASKS)]

            async def submit(i: int, frames: int) -> str:
                fields = {"regions": REGIONS, "detect": "true" if i % 4 == 0 else "false"}
                r = await client.post("/v1/tasks", files={"video": (f"v{i}.mp4", clips[frames])}, data=fields)
                assert r.status_code == 202, r.text
                return r.json()["task_id"]

            ids = await asyncio.gather(*(submit(i, n) for i, n in enumerate(lengths)))
            assert len(set(ids)) == N_TASKS
            tasks = await wait_until(lambda: all_final(client, ids), 600, "all 20 tasks to end",
                                     interval_s=0.5)
        print(f"{N_TASKS} concurrent tasks: {poller.summary()}")
        print(f"trivial server in another process meanwhile: {machine.summary()}")
        for task_id, frames in zip(ids, lengths):
            task = tasks[task_id]
            assert task["status"] == "finished" and task["attempts"] == 1, task
            r = await client.get(task["result_url"])
            assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
            out = tmp_path / f"{task_id}.mp4"
            out.write_bytes(r.content)
            assert frame_count(out) == frames
    assert len(poller.latencies) > 20
    bad = [s for s in poller.statuses if s != 200]
    assert not bad, f"/ping answered {bad[:5]} under load"
    assert max(poller.latencies) < 2.0, poller.summary()


@contextlib.contextmanager
def full_tmpfs(path: Path):
    """A 256 KiB tmpfs, filled: writes there fail with ENOSPC as on a full disk."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        with open(path / "filler", "wb", buffering=0) as f:
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_disk_full_and_unusable_results_dir_fail_the_task_clearly(tmp_path, triton_factory, pipeline_repo):
    triton = triton_factory(pipeline_repo)
    clip = clip_bytes(tmp_path / "c.mp4", width=96, height=64, frames=12)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, preset="ultrafast",
                             optional_models=("inpainter_256",))
    results = settings.data_dir / "results"

    async def run_task(client) -> dict:
        r = await client.post("/v1/tasks", files={"video": ("c.mp4", clip)},
                              data={"regions": REGIONS, "detect": "false"})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        tasks = await wait_until(lambda: all_final(client, [task_id]), 120, "the task to end")
        return tasks[task_id]

    async with running_app(settings) as app, app.client() as client:
        await wait_until(lambda: _ping_is(client, 200), 120, "/ping 200")

        # 1. Disk full: results/ is a full filesystem.
        with full_tmpfs(tmp_path / "full") as full:
            shutil.rmtree(results)
            results.symlink_to(full, target_is_directory=True)
            task = await run_task(client)
            assert task["status"] == "failed", task
            assert "No space left on device" in task["error"], task
            assert (await client.get(f"/v1/tasks/{task['task_id']}/result")).status_code == 409
            assert sorted(p.name for p in full.iterdir()) == ["filler"], "a partial result was left"
            assert (await client.get("/ping")).status_code == 200
            results.unlink()

        # 2. results/ replaced by a file: the directory cannot be created or written.
        results.write_bytes(b"not a directory")
        task = await run_task(client)
        assert task["status"] == "failed", task
        assert "results directory" in task["error"] and "internal error" not in task["error"], task
        assert (await client.get("/ping")).status_code == 200

        # 3. Storage back: the next task finishes.
        results.unlink()
        task = await run_task(client)
        assert task["status"] == "finished", task
        assert (await client.get(task["result_url"])).status_code == 200


async def _ping_is(client, status: int):
    return (await client.get("/ping")).status_code == status

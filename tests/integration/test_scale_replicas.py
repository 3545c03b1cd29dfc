"""Issue 16, item 2: one orchestrator, two real Triton replicas in TRITON_GRPC_URL.

Each replica loads its models and reports its own readiness in /ping; inference is spread over
both (each replica's own metrics count requests); with one replica killed /ping stays 200 (one is
enough by default, and the JSON says so) and tasks still finish.
"""

from __future__ import annotations

import httpx
import pytest

from reliability_support import all_final, clip_bytes
from service_support import running_app, test_settings, wait_for

pytestmark = pytest.mark.integration

REGIONS = "[[20, 20, 120, 60]]"


def _inferences(triton) -> float:
    text = httpx.get(triton.metrics_url, timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("nv_inference_request_success{") and 'model="inpainter' in line)


async def _submit_all(client, clip: bytes, count: int) -> list[str]:
    ids = []
    for i in range(count):
        r = await client.post("/v1/tasks", files={"video": (f"c{i}.mp4", clip)},
                              data={"regions": REGIONS, "detect": "false"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["task_id"])
    return ids


async def test_two_replicas_share_the_work_and_one_can_die(tmp_path, triton_factory, pipeline_repo):
    first, second = triton_factory(pipeline_repo), triton_factory(pipeline_repo)
    settings = test_settings(tmp_path, triton_grpc_url=f"{first.grpc_url},{second.grpc_url}",
                             optional_models=("inpainter_256",), model_poll_interval_s=0.3, preset="ultrafast")
    clip = clip_bytes(tmp_path / "clip.mp4", width=160, height=96, frames=24)
    async with running_app(settings) as app, app.client() as client:
        async def both_ready():
            r = await client.get("/ping")
            return r.json() if r.status_code == 200 and r.json()["replicas"]["ready"] == 2 else None

        body = await wait_for(both_ready, 120, what="both replicas ready")
        assert body["replicas"]["needed"] == 1
        assert set(body["replicas"]["each"]) == {first.grpc_url, second.grpc_url}
        assert all(e["state"] == "ready" for e in body["replicas"]["each"].values())

        ids = await _submit_all(client, clip, 4)
        tasks = await wait_for(lambda: all_final(client, ids), 240, what="4 tasks on two replicas")
        assert all(t["status"] == "finished" for t in tasks.values()), tasks
        assert _inferences(first) > 0 and _inferences(second) > 0  # round-robin reached both

        first.kill()

        async def one_left():
            r = await client.get("/ping")
            return r if r.status_code == 200 and r.json()["replicas"]["ready"] == 1 else None

        r = await wait_for(one_left, 30, what="/ping 200 with one replica ready")
        assert r.json()["replicas"]["each"][first.grpc_url]["state"] != "ready"
        served_before = _inferences(second)
        ids = await _submit_all(client, clip, 3)
        tasks = await wait_for(lambda: all_final(client, ids), 240, what="3 tasks on the surviving replica")
        assert all(t["status"] == "finished" and t["attempts"] == 1 for t in tasks.values()), tasks
        assert _inferences(second) > served_before

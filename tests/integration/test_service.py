"""The orchestrator against a real local Triton: /ping states, load failures, Triton restarts.

Models here are tiny identity graphs served by the python backend: these tests are about
readiness and the service's reactions, not about video processing.
"""

from __future__ import annotations

import time

import pytest

from service_support import RunningApp, make_tiny_repository, running_app, test_settings, wait_for

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration


async def test_ping_204_at_once_without_triton_then_200_when_models_load(tmp_path, triton_factory):
    ports = (free_port(), free_port(), free_port())
    settings = test_settings(tmp_path, triton_grpc_url=f"127.0.0.1:{ports[1]}")
    app = RunningApp(settings)
    async with app.client() as client:  # made first: the client's TLS setup is not the server's time
        t0 = time.perf_counter()
        await app.start()
        try:
            first = await client.get("/ping")
            first_answer_s = time.perf_counter() - t0
            assert first.status_code == 204 and first.content == b""
            assert first_answer_s < 1.0, f"first /ping took {first_answer_s:.2f} s after start"
            await _ready_later(app, client, triton_factory, tmp_path, ports)
        finally:
            await app.stop()


async def _ready_later(app, client, triton_factory, tmp_path, ports):
    """Triton appears later on the configured port; the service loads the models by itself."""
    triton = triton_factory(make_tiny_repository(tmp_path / "repo"), ports=ports)
    await wait_for(lambda: _is(client, 200), 90, what="/ping 200")
    body = (await client.get("/ping")).json()
    assert body["status"] == "healthy" and body["models_ready"] is True
    assert body["models"]["detector"]["ready"] and body["models"]["inpainter"]["ready"]
    assert triton.is_running()

    metrics = (await client.get("/metrics")).text
    assert 'unmark_model_ready{model="detector"} 1.0' in metrics


async def test_broken_model_gives_503_with_error_and_fails_tasks(tmp_path, triton_factory):
    repo = make_tiny_repository(tmp_path / "repo", broken=("detector",))
    triton = triton_factory(repo)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, model_load_retries=2,
                             model_retry_interval_s=3.0)
    async with running_app(settings) as app, app.client() as client:
        response = await client.post("/v1/tasks", files={"video": ("clip.mp4", b"\0" * 1000, "video/mp4")})
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]

        async def degraded():
            r = await client.get("/ping")
            return r if r.status_code == 503 else None

        r = await wait_for(degraded, 120, what="/ping 503")
        body = r.json()
        assert body["status"] == "degraded"
        assert "detector" in body["error"] and "failed to load" in body["error"]
        assert body["models"]["detector"]["state"] == "failed"
        assert body["models"]["inpainter"]["ready"] is True

        async def failed():
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            return task if task["status"] == "failed" else None

        task = await wait_for(failed, 10, what="task failed")
        assert "model 'detector' failed to load" in task["error"]

        # The repository is fixed: the periodic retry brings the service back without a restart.
        good = make_tiny_repository(tmp_path / "good")
        (repo / "detector" / "1" / "model.onnx").write_bytes((good / "detector" / "1" / "model.onnx").read_bytes())
        await wait_for(lambda: _is(client, 200), 60, what="/ping 200 after the fix")


async def test_triton_killed_then_restarted_on_same_ports(tmp_path, triton_factory):
    ports = (free_port(), free_port(), free_port())
    repo = make_tiny_repository(tmp_path / "repo")
    triton = triton_factory(repo, ports=ports)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, triton_live_deadline_s=3.0)
    async with running_app(settings) as app, app.client() as client:
        await wait_for(lambda: _is(client, 200), 90, what="/ping 200")

        triton.kill()
        assert await wait_for(lambda: _is(client, 204), 10, what="/ping 204 after the kill")
        r = await wait_for(lambda: _is(client, 503), 15, what="/ping 503 past the deadline")
        assert "unreachable" in r.json()["error"]

        triton_factory(repo, ports=ports)
        await wait_for(lambda: _is(client, 200), 90, what="/ping 200 after the restart")


async def test_model_unloaded_behind_our_back_is_reloaded(tmp_path, triton_factory):
    import tritonclient.grpc as grpcclient

    triton = triton_factory(make_tiny_repository(tmp_path / "repo"))
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url)
    async with running_app(settings) as app, app.client() as client:
        await wait_for(lambda: _is(client, 200), 90, what="/ping 200")
        grpcclient.InferenceServerClient(triton.grpc_url).unload_model("inpainter")
        await wait_for(lambda: _is(client, 204), 10, what="/ping leaves 200 after the unload")
        await wait_for(lambda: _is(client, 200), 60, what="/ping 200 after the reload")
        assert grpcclient.InferenceServerClient(triton.grpc_url).is_model_ready("inpainter")


async def _is(client, status: int):
    r = await client.get("/ping")
    return r if r.status_code == status else None

"""Secure defaults (issue 17): per-task tokens, the list behind the key, the anonymous mode, the
refusal to start open on a public address, the queue limit and the disk floor. No Triton: tasks
stay queued, which is all these rules need."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from reliability_support import clip_bytes
from service_support import ROOT, ping_port, running_app, test_settings

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration

KEY = "the-operators-key"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return clip_bytes(tmp_path_factory.mktemp("clip") / "c.mp4", width=64, height=48, frames=6)


async def _submit(client, clip, **headers) -> dict:
    r = await client.post("/v1/tasks", headers=headers, files={"video": ("a.mp4", clip)})
    assert r.status_code == 202, r.text
    body = r.json()
    assert len(body["token"]) >= 40 and body["token"] != body["task_id"]
    return body


async def test_with_a_key_each_task_opens_with_its_own_token_and_no_other(tmp_path, clip):
    key = {"Authorization": f"Bearer {KEY}"}
    async with running_app(test_settings(tmp_path, api_key=KEY)) as app, app.client() as client:
        a, b = await _submit(client, clip, **key), await _submit(client, clip, **key)
        own = {"X-Task-Token": a["token"]}
        assert (await client.get(f"/v1/tasks/{a['task_id']}", headers=own)).json()["status"] == "queued"
        assert (await client.get(f"/v1/tasks/{a['task_id']}?token={a['token']}")).status_code == 200
        assert (await client.get(f"/v1/tasks/{a['task_id']}/result", headers=own)).status_code == 409
        assert (await client.get(f"/get_results?remove_task_id={a['task_id']}&token={a['token']}")).status_code == 200
        # Another task's token: 404, exactly as for an id that does not exist.
        for path in (f"/v1/tasks/{b['task_id']}", f"/v1/tasks/{b['task_id']}/result", f"/download/{b['task_id']}",
                     f"/get_results?remove_task_id={b['task_id']}", "/v1/tasks/0123456789abcdef"):
            r = await client.get(path, headers=own)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
        assert (await client.delete(f"/v1/tasks/{b['task_id']}", headers=own)).status_code == 404
        assert (await client.get(f"/v1/tasks/{b['task_id']}", headers=key)).json()["status"] == "queued"
        # A token opens its task, never the list or a submission.
        assert (await client.get("/v1/tasks", headers=own)).status_code == 401
        r = await client.post("/v1/tasks", headers=own, files={"video": ("a.mp4", clip)})
        assert r.status_code == 401
        assert (await client.delete(f"/v1/tasks/{a['task_id']}", headers=own)).json()["status"] == "cancelled"
        listed = (await client.get("/v1/tasks", headers=key)).json()
        assert listed["total"] == 2 and all("token" not in item for item in listed["items"])


async def test_anonymous_public_mode_has_no_list_and_needs_tokens(tmp_path, clip):
    settings = test_settings(tmp_path, host="0.0.0.0", allow_anonymous=True)
    async with running_app(settings) as app, app.client() as client:
        a = await _submit(client, clip)
        b = await _submit(client, clip)
        task = f"/v1/tasks/{a['task_id']}"
        r = await client.get(task)
        assert r.status_code == 401 and "token" in r.json()["error"]["message"]
        assert (await client.get(task, headers={"X-Task-Token": b["token"]})).status_code == 404
        assert (await client.get(task, headers={"X-Task-Token": a["token"]})).status_code == 200
        r = await client.get("/v1/tasks")
        assert r.status_code == 401 and "no task list" in r.json()["error"]["message"]
        r = await client.post("/submit_remove_task", files={"video": ("a.mp4", clip)})
        compat = r.json()
        assert r.status_code == 200 and compat["token"]
        r = await client.get(f"/get_results?remove_task_id={compat['task_id']}&token={compat['token']}")
        assert r.status_code == 200 and r.json()["status"] == "PROCESSING"
        assert (await client.get(f"/get_results?remove_task_id={compat['task_id']}")).status_code == 401


async def test_open_on_loopback_without_a_key_as_before(tmp_path, clip):
    async with running_app(test_settings(tmp_path)) as app, app.client() as client:
        a = await _submit(client, clip)
        assert (await client.get(f"/v1/tasks/{a['task_id']}")).status_code == 200
        assert (await client.get("/v1/tasks")).json()["total"] == 1


async def test_queue_limit_is_429_with_retry_after(tmp_path, clip):
    async with running_app(test_settings(tmp_path, max_queued_tasks=2)) as app, app.client() as client:
        await _submit(client, clip)
        await _submit(client, clip)
        r = await client.post("/v1/tasks", files={"video": ("a.mp4", clip)})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "MAX_QUEUED_TASKS" in r.json()["error"]["message"]
        assert not list((tmp_path / "data" / "uploads").glob("*.part"))
        first = (await client.get("/v1/tasks")).json()["items"][0]["task_id"]
        await client.delete(f"/v1/tasks/{first}")  # one fewer waiting: accepted again
        await _submit(client, clip)


async def test_disk_floor_is_507_before_anything_is_stored(tmp_path, clip):
    settings = test_settings(tmp_path, min_free_disk_mb=10**9)  # a petabyte must stay free
    async with running_app(settings) as app, app.client() as client:
        r = await client.post("/v1/tasks", files={"video": ("a.mp4", clip)})
        assert r.status_code == 507 and "MIN_FREE_DISK_MB" in r.json()["error"]["message"]
        assert not [p for p in (tmp_path / "data" / "uploads").glob("*") if p.is_file()]
        assert (await client.get("/v1/tasks")).json()["total"] == 0


def test_a_public_bind_without_a_key_refuses_to_start_unless_allowed(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"API_KEY", "ALLOW_ANONYMOUS", "HOST"}}
    env.update(PORT=str(port), DATA_DIR=str(tmp_path / "data"), TRITON_GRPC_URL=f"127.0.0.1:{free_port()}")
    refused = subprocess.run([sys.executable, "-m", "orchestrator", "--host", "0.0.0.0"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API_KEY" in refused.stderr and "ALLOW_ANONYMOUS=1" in refused.stderr
    assert ping_port(port) is None  # it never listened
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--host", "0.0.0.0"], cwd=ROOT,
                            env={**env, "ALLOW_ANONYMOUS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while ping_port(port) != 204:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()  # never leave a server behind a failed test


async def test_a_video_url_download_is_written_whole_and_stops_at_the_disk_floor(tmp_path, monkeypatch):
    from reliability_support import SourceServer

    from orchestrator import download as download_module
    from orchestrator.errors import InputError
    from orchestrator.settings import Settings

    payload = bytes(range(256)) * 12_000  # 3 MB: several write batches
    with SourceServer(payload) as source:
        dest = tmp_path / "ok.mp4"
        size = await download_module.download(f"{source.url}/ok.mp4", dest, Settings(allow_private_urls=True))
        assert size == len(payload) and dest.read_bytes() == payload
        monkeypatch.setattr(download_module, "DISK_CHECK_BYTES", 1)  # check after every chunk
        floor = Settings(allow_private_urls=True, min_free_disk_mb=10**9)
        with pytest.raises(InputError, match="short of disk space"):
            await download_module.download(f"{source.url}/ok.mp4", tmp_path / "no.mp4", floor)
        assert not list(tmp_path.glob("no.mp4*"))

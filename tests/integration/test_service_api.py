"""The HTTP surface without video processing: shapes, auth, limits, path safety, URL fetching,
cancel/delete, and restart recovery of the persisted queue. Triton is absent on purpose here
(tasks stay queued), so these run in seconds; readiness against a real Triton is in test_service.py.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from pathlib import Path

import pytest

from media import make_clip
from service_support import running_app, test_settings, wait_for

from orchestrator.tasks.store import TaskStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path, width=64, height=48, frames=10)
    return path.read_bytes()


async def test_submit_get_list_and_compat_shapes(tmp_path, clip):
    async with running_app(test_settings(tmp_path)) as app, app.client() as client:
        r = await client.post("/v1/tasks", files={"video": ("clip.mp4", clip, "video/mp4")},
                              data={"regions": "[[1,2,30,20]]", "detect": "true"})
        assert r.status_code == 202 and r.json()["status"] == "queued"
        task_id = r.json()["task_id"]
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        assert {"task_id", "status", "progress", "error", "result_url", "stage", "attempts"} <= task.keys()
        assert task["status"] == "queued" and task["progress"] == 0 and task["result_url"] is None

        listing = (await client.get("/v1/tasks", params={"limit": 10})).json()
        assert listing["total"] == 1 and listing["items"][0]["task_id"] == task_id

        r = await client.get(f"/v1/tasks/{task_id}/result")
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
        r = await client.get("/v1/tasks/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

        # SoraWatermarkCleaner-compatible routes
        r = await client.post("/submit_remove_task", files={"video": ("a.mp4", clip, "video/mp4")})
        assert r.status_code == 200 and set(r.json()) == {"task_id", "message", "token"}  # token: issue 17
        compat_id = r.json()["task_id"]
        r = await client.get("/get_results", params={"remove_task_id": compat_id})
        assert r.status_code == 200 and r.json() == {"percentage": 0, "status": "PROCESSING", "download_url": None}
        assert (await client.get(f"/download/{compat_id}")).status_code == 409
        assert (await client.get("/get_results", params={"remove_task_id": "x"})).status_code == 404

        # bad options -> 400 naming the field; nothing stored
        r = await client.post("/v1/tasks", files={"video": ("c.mp4", clip, "video/mp4")}, data={"regions": "[1,2"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("regions:")
        r = await client.post("/v1/tasks", data={})
        assert r.status_code == 400
        assert (await client.get("/v1/tasks")).json()["total"] == 2
        assert sorted(p.name for p in (app.settings.data_dir / "uploads").iterdir()) == sorted(
            [f"{task_id}.mp4", f"{compat_id}.mp4"])

        schema = (await client.get("/openapi.json")).json()
        assert "TaskView" in schema["components"]["schemas"]
        assert "multipart/form-data" in schema["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]


async def test_api_key_guards_task_routes_only(tmp_path, clip):
    async with running_app(test_settings(tmp_path, api_key="s3cret")) as app, app.client() as client:
        assert (await client.get("/ping")).status_code == 204
        assert (await client.get("/metrics")).status_code == 200
        r = await client.get("/v1/tasks")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        assert (await client.get("/v1/tasks", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.post("/submit_remove_task", files={"video": ("a.mp4", clip)})).status_code == 401
        assert (await client.get("/get_results", params={"remove_task_id": "x"})).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert (await client.get("/v1/tasks", headers=ok)).status_code == 200
        r = await client.post("/v1/tasks", headers=ok, files={"video": ("a.mp4", clip)})
        assert r.status_code == 202


async def test_upload_limit_and_path_safe_names(tmp_path, clip):
    async with running_app(test_settings(tmp_path, max_upload_mb=1)) as app, app.client() as client:
        big = b"\0" * (3 * 1024 * 1024)
        r = await client.post("/v1/tasks", files={"video": ("big.mp4", big, "video/mp4")})
        assert r.status_code == 413 and "1 MB" in r.json()["error"]["message"]

        # Chunked body without Content-Length: the limit is enforced while streaming.
        boundary = "xyz"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="s.mp4"\r\n'
                "Content-Type: video/mp4\r\n\r\n").encode()

        async def body():
            yield head
            for _ in range(3):
                yield b"\1" * (1024 * 1024)
            yield f"\r\n--{boundary}--\r\n".encode()

        r = await client.post("/v1/tasks", content=body(),
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413

        r = await client.post("/v1/tasks", files={"video": ("../../x.mp4", clip, "video/mp4")})
        assert r.status_code == 202
        task = (await client.get(f"/v1/tasks/{r.json()['task_id']}")).json()
        assert task["filename"] == "x.mp4"
        uploads = app.settings.data_dir / "uploads"
        assert [p.name for p in uploads.iterdir()] == [f"{task['task_id']}.mp4"]
        assert not (tmp_path / "x.mp4").exists() and not (app.settings.data_dir / "x.mp4").exists()

        r = await client.post("/v1/tasks", files={"video": ("empty.mp4", b"", "video/mp4")})
        assert r.status_code == 400 and "empty" in r.json()["error"]["message"]


class _Handler(http.server.BaseHTTPRequestHandler):
    payloads: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/redirect"):] or "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.payloads.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_source(clip):
    _Handler.payloads = {"/clip.mp4": clip, "/big.mp4": b"\0" * (2 * 1024 * 1024)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_video_url_rules(tmp_path, http_source):
    async with running_app(test_settings(tmp_path)) as app, app.client() as client:
        for url in ("file:///etc/passwd", "ftp://example.com/a.mp4", "gopher://x"):
            r = await client.post("/v1/tasks", data={"video_url": url})
            assert r.status_code == 400 and "http" in r.json()["error"]["message"], url
        r = await client.post("/v1/tasks", data={"video_url": f"{http_source}/clip.mp4"})
        assert r.status_code == 400 and "private or local" in r.json()["error"]["message"]

    settings = test_settings(tmp_path / "b", allow_private_urls=True, url_max_mb=1)
    async with running_app(settings) as app, app.client() as client:
        ids = {}
        for name in ("clip.mp4", "big.mp4", "missing.mp4", "redirect/clip.mp4", "to-file"):
            r = await client.post("/v1/tasks", data={"video_url": f"{http_source}/{name}"})
            assert r.status_code == 202, r.text
            ids[name] = r.json()["task_id"]

        async def settled():
            tasks = {n: (await client.get(f"/v1/tasks/{i}")).json() for n, i in ids.items()}
            done = tasks["clip.mp4"]["stage"] is None and tasks["redirect/clip.mp4"]["stage"] is None and all(
                tasks[n]["status"] == "failed" for n in ("big.mp4", "missing.mp4", "to-file"))
            return tasks if done else None

        tasks = await wait_for(settled, 20, what="downloads to settle")
        assert tasks["clip.mp4"]["status"] == "queued" and tasks["clip.mp4"]["source"] == "url"
        assert "1 MB limit" in tasks["big.mp4"]["error"]
        assert "HTTP 404" in tasks["missing.mp4"]["error"]
        assert tasks["redirect/clip.mp4"]["status"] == "queued"  # redirects are followed ...
        assert "only http and https" in tasks["to-file"]["error"]  # ... and checked
        stored = await app.services.store.get(ids["clip.mp4"])
        assert Path(stored.input_path).read_bytes() == _Handler.payloads["/clip.mp4"]


async def test_cancel_queued_then_delete(tmp_path, clip):
    async with running_app(test_settings(tmp_path)) as app, app.client() as client:
        task_id = (await client.post("/v1/tasks", files={"video": ("a.mp4", clip)})).json()["task_id"]
        r = await client.delete(f"/v1/tasks/{task_id}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["deleted"] is False
        assert not list((app.settings.data_dir / "uploads").iterdir())
        r = await client.delete(f"/v1/tasks/{task_id}")
        assert r.json()["deleted"] is True
        assert (await client.get(f"/v1/tasks/{task_id}")).status_code == 404


async def test_restart_puts_processing_tasks_back_in_the_queue(tmp_path, clip):
    settings = test_settings(tmp_path, max_task_attempts=2)
    async with running_app(settings) as app, app.client() as client:
        first = (await client.post("/v1/tasks", files={"video": ("a.mp4", clip)})).json()["task_id"]
        second = (await client.post("/v1/tasks", files={"video": ("b.mp4", clip)})).json()["task_id"]

    # The state a crash leaves behind: both claimed, the second one already on its last attempt.
    store = TaskStore(settings.effective_database_url)
    await store.init()
    assert (await store.claim_next()).id == first
    assert (await store.claim_next()).id == second
    await store.update_fields(second, attempts=2)
    await store.close()

    async with running_app(settings) as app, app.client() as client:
        a = (await client.get(f"/v1/tasks/{first}")).json()
        b = (await client.get(f"/v1/tasks/{second}")).json()
        assert a["status"] == "queued" and a["attempts"] == 1 and a["stage"] == "requeued"
        assert b["status"] == "failed" and b["error"].startswith("gave up after 2 attempts")


async def test_finished_results_expire_after_the_ttl(tmp_path):
    settings = test_settings(tmp_path, result_ttl_s=1.0, janitor_interval_s=0.2)
    store = TaskStore(settings.effective_database_url)
    await store.init()
    out = settings.data_dir / "results" / "done.mp4"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"result bytes")
    task = await store.create(options={}, input_path=None, output_path=str(out), source_name="a b.mp4")
    await store.claim_next()  # no input: not claimable, so finish it directly
    from orchestrator.tasks.store import TaskStatus

    await store.finish(task.id, TaskStatus.finished, progress=100)
    await store.close()
    async with running_app(settings) as app, app.client() as client:
        r = await client.get(f"/v1/tasks/{task.id}/result")
        if r.status_code == 200:  # served until the janitor runs past the TTL
            assert r.content == b"result bytes" and "a%20b-unmarked.mp4" in r.headers["content-disposition"]
        await wait_for(lambda: _gone(client, task.id), 10, what="result removed by the janitor")
        assert not out.exists()
        view = (await client.get(f"/v1/tasks/{task.id}")).json()
        assert view["status"] == "finished" and view["result_url"] is None and view["details"]["result_expired"]


async def _gone(client, task_id):
    r = await client.get(f"/v1/tasks/{task_id}/result")
    return r.status_code == 404 and "retention" in r.json()["error"]["message"]


async def test_cors_and_stalled_upload(tmp_path, clip):
    settings = test_settings(tmp_path, cors_origins=("http://ui.example",), upload_idle_timeout_s=0.5)
    async with running_app(settings) as app, app.client() as client:
        r = await client.options("/v1/tasks", headers={"Origin": "http://ui.example",
                                                       "Access-Control-Request-Method": "POST"})
        assert r.headers.get("access-control-allow-origin") == "http://ui.example"
        r = await client.get("/ping", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers

        async def stalled():
            yield b'--b\r\nContent-Disposition: form-data; name="video"; filename="s.mp4"\r\n\r\n'
            yield clip[:1000]
            await asyncio.sleep(3)
            yield b"\r\n--b--\r\n"

        r = await client.post("/v1/tasks", content=stalled(),
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 408 and "stalled" in r.json()["error"]["message"]
        assert not list((settings.data_dir / "uploads").iterdir())


async def test_unusable_upload_directory_is_a_clear_507(tmp_path, clip):
    settings = test_settings(tmp_path)
    async with running_app(settings) as app, app.client() as client:
        await client.get("/v1/tasks")  # the worker has created its directories
        uploads = settings.data_dir / "uploads"
        uploads.rmdir()
        uploads.write_bytes(b"")  # a file where the directory should be (works as root too)
        r = await client.post("/v1/tasks", files={"video": ("a.mp4", clip)})
        assert r.status_code == 507 and "could not store" in r.json()["error"]["message"]
        assert (await client.get("/ping")).status_code == 204  # still serving

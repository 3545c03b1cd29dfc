"""Issue 8, item 5: access control beyond test_service_api.py (which checks 401 on the list and
submit routes, /ping and /metrics open, loopback ``video_url`` refused, upload limits; CORS basics
and the stalled-upload 408 are there too).

Here: every route that takes a task id needs the key; malformed or non-ASCII Authorization
headers are a 401, never a 500; CORS preflights work with a key set (browsers send no key on
them) and CORS is off by default; nothing is served by path; the SSRF rule covers every private
form of an address, not just 127.0.0.1; an upload trickled to dodge the idle timeout hits a total
deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from reliability_support import clip_bytes
from service_support import running_app, test_settings

pytestmark = pytest.mark.integration

KEY = "k3y-\u00e9t\u00e9-0123456789"  # non-ASCII on purpose: compared as UTF-8 bytes


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return clip_bytes(tmp_path_factory.mktemp("clip") / "c.mp4", width=64, height=48, frames=6)


async def test_every_task_route_needs_the_key_and_bad_headers_are_401(tmp_path, clip):
    settings = test_settings(tmp_path, api_key=KEY)
    good = {"Authorization": b"Bearer " + KEY.encode()}
    async with running_app(settings) as app, app.client() as client:
        r = await client.post("/v1/tasks", headers=good, files={"video": ("a.mp4", clip)})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        routes = [("GET", f"/v1/tasks/{task_id}"), ("GET", f"/v1/tasks/{task_id}/result"),
                  ("DELETE", f"/v1/tasks/{task_id}"), ("GET", f"/download/{task_id}"),
                  ("GET", f"/get_results?remove_task_id={task_id}"), ("GET", "/v1/tasks"),
                  ("POST", "/v1/tasks"), ("POST", "/submit_remove_task")]
        wrong = [
            {},
            {"Authorization": ""},
            {"Authorization": "Bearer"},
            {"Authorization": b"Bearer " + KEY.encode()[:-1]},  # a prefix
            {"Authorization": b"Bearer " + KEY.encode() + b"0"},  # longer
            {"Authorization": b"Basic " + KEY.encode()},  # right key, wrong scheme
            {"Authorization": b"Bearer \xff\xfe binary"},  # not UTF-8
            {"Authorization": "Bearer " + "x" * 8000},
            {"X-API-Key": KEY.encode()},
        ]
        for method, path in routes:
            for headers in wrong:
                r = await client.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] == "unauthorized"
        # The task was untouched by all of that, and the key opens every route.
        assert (await client.get(f"/v1/tasks/{task_id}", headers=good)).json()["status"] == "queued"
        lower = {"Authorization": b"bearer " + KEY.encode()}
        assert (await client.get(f"/v1/tasks/{task_id}/result", headers=lower)).status_code == 409
        assert (await client.get(f"/download/{task_id}", headers=good)).status_code == 409
        assert (await client.delete(f"/v1/tasks/{task_id}", headers=good)).json()["status"] == "cancelled"
        # Open routes stay open.
        for path in ("/ping", "/metrics", "/"):
            assert (await client.get(path)).status_code in (200, 204), path


async def test_cors_with_a_key_and_off_by_default(tmp_path):
    origin = "https://ui.example"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    settings = test_settings(tmp_path, api_key=KEY, cors_origins=(origin,))
    async with running_app(settings) as app, app.client() as client:
        r = await client.options("/v1/tasks", headers=preflight)
        assert r.status_code == 200, r.text  # no key on a preflight, and no 401 for it
        assert r.headers["access-control-allow-origin"] == origin
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        # A refused request still carries CORS headers, so the page can show the error.
        r = await client.get("/v1/tasks", headers={"Origin": origin})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == origin
        r = await client.options("/v1/tasks", headers={**preflight, "Origin": "https://evil.example"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers

    async with running_app(test_settings(tmp_path / "b")) as app, app.client() as client:
        r = await client.options("/v1/tasks", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await client.get("/v1/tasks", headers={"Origin": origin})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_nothing_is_served_by_path(tmp_path, clip):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    async with running_app(test_settings(tmp_path)) as app, app.client() as client:
        r = await client.post("/v1/tasks", files={"video": ("../../../secret.txt", clip)})
        task_id = r.json()["task_id"]
        probes = [
            f"/v1/tasks/{task_id}/..%2F..%2F..%2Fsecret.txt",
            "/v1/tasks/..%2F..%2Fsecret.txt/result",
            "/download/..%2F..%2Fsecret.txt",
            "/download/%2E%2E%2F%2E%2E%2Fsecret.txt",
            "/web/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
            "/web/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            f"/web/{'..%2F' * 12}{str(secret).lstrip('/')}",
        ]
        for path in probes:
            r = await client.get(path)
            assert r.status_code in (404, 405), (path, r.status_code)
            assert b"do not serve" not in r.content and b"root:" not in r.content, path
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        assert task["filename"] == "secret.txt"  # the name is kept for display only
        assert (await client.get(f"/v1/tasks/{task_id}/result")).status_code == 409


async def test_ssrf_rule_covers_private_address_forms(tmp_path):
    async with running_app(test_settings(tmp_path)) as app, app.client() as client:
        refused = [
            "http://localhost:8000/a.mp4",
            "http://127.1/a.mp4",  # short form of 127.0.0.1
            "http://2130706433/a.mp4",  # decimal form of 127.0.0.1
            "http://0.0.0.0/a.mp4",
            "http://[::1]/a.mp4",
            "http://[::ffff:127.0.0.1]/a.mp4",
            "http://10.1.2.3/a.mp4",
            "http://172.16.0.1/a.mp4",
            "http://192.168.1.1/a.mp4",
            "http://169.254.169.254/latest/meta-data/",  # cloud metadata
            "http://100.64.0.1/a.mp4",  # carrier-grade NAT
            "http://[fd00::1]/a.mp4",
            "http://224.0.0.1/a.mp4",
        ]
        for url in refused:
            r = await client.post("/v1/tasks", data={"video_url": url})
            assert r.status_code == 400, (url, r.text)
            assert "private or local" in r.json()["error"]["message"], (url, r.json())
        for url in ("http://user:pw@example.com/a.mp4", "https:///a.mp4", "javascript:alert(1)",
                    "//example.com/a.mp4", "http://" + "a" * 5000 + ".com/a.mp4"):
            r = await client.post("/v1/tasks", data={"video_url": url})
            assert r.status_code == 400, (url, r.text)
        assert (await client.get("/v1/tasks")).json()["total"] == 0


async def test_trickled_upload_hits_the_total_deadline(tmp_path, clip):
    """A body that never stalls long enough for the idle timeout (slowloris) still ends: 408."""
    settings = test_settings(tmp_path, upload_idle_timeout_s=5.0, upload_timeout_s=2.0)
    async with running_app(settings) as app, app.client() as client:
        uploads = settings.data_dir / "uploads"
        seen: dict[str, list[str]] = {}

        async def trickle():
            yield b'--b\r\nContent-Disposition: form-data; name="video"; filename="t.mp4"\r\n\r\n'
            for i in range(30):  # 6 s at 5 chunks/s: never idle for 5 s
                yield clip[i : i + 1]
                await asyncio.sleep(0.2)
                if i == 5:
                    seen["receiving"] = [p.name for p in uploads.iterdir()]
                if i == 20:  # 4 s in: the server gave up on it at 2 s
                    seen["after"] = [p.name for p in uploads.iterdir()]
            yield b"\r\n--b--\r\n"

        r = await client.post("/v1/tasks", content=trickle(),
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 408 and "longer than 2 s" in r.json()["error"]["message"], r.text
        assert len(seen["receiving"]) == 1 and seen["receiving"][0].endswith(".part"), seen
        assert seen["after"] == [], seen
        assert not list((settings.data_dir / "uploads").iterdir())
        assert (await client.get("/v1/tasks")).json()["total"] == 0

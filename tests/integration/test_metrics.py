"""Metrics after a real task: the orchestrator's /metrics and Triton's metrics port, scraped live.

One task runs through the app (uvicorn) and the real pipeline against the local Triton (blind
detector, weight-free 512 inpainter, a given region plus detection so both models are called).
Scrapes before and after give deltas, because the orchestrator's registry is process-wide. The
dashboard check then proves that every series Grafana queries is one these services export, and
the container healthcheck commands are run against the live services.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from deploy_support import (
    GPU_ONLY_TRITON_METRICS, ROOT, dashboard_metric_names, scrape_series_names, scrape_value,
)
from media import make_clip
from pipeline_support import make_pipeline_repository
from service_support import running_app, test_settings, wait_for

from orchestrator.triton.local import LocalTriton, free_port

pytestmark = pytest.mark.integration

FRAMES = 24
REGIONS = "[[40, 30, 140, 70]]"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _healthcheck(dockerfile: str) -> list[str]:
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    match = re.search(r"HEALTHCHECK[^\n]*CMD\s+(\[[^\n]*\])", text)
    return [sys.executable if c in ("python", "python3") else c for c in json.loads(match.group(1))]


async def _scenario(tmp: Path, triton: LocalTriton) -> dict:
    settings = test_settings(tmp, triton_grpc_url=triton.grpc_url, optional_models=())
    clip_path = tmp / "in.mp4"
    make_clip(clip_path, width=320, height=180, frames=FRAMES)
    clip = clip_path.read_bytes()
    async with running_app(settings) as app, app.client() as client:
        async def ready():
            return (await client.get("/ping")).status_code == 200

        await wait_for(ready, 120, what="/ping 200")
        before = {"app": (await client.get("/metrics")).text, "triton": _get(triton.metrics_url)}
        r = await client.post("/v1/tasks", files={"video": ("in.mp4", clip, "video/mp4")},
                              data={"regions": REGIONS, "detect": "true"})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]

        async def final():
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            return task if task["status"] in ("finished", "failed", "cancelled") else None

        task = await wait_for(final, 240, what="task final status")
        # Triton refreshes its metrics page about every second.
        await asyncio.sleep(2.5)
        after = {"app": (await client.get("/metrics")).text, "triton": _get(triton.metrics_url)}
        port = settings.port
        # In a thread: the app is served by this event loop.
        health = (await asyncio.to_thread(subprocess.run, _healthcheck("Dockerfile.orchestrator"),
                                          capture_output=True, timeout=30,
                                          env={"PORT": str(port), "PATH": "/usr/bin:/bin"})).returncode
    return {"task": task, "before": before, "after": after, "clip_bytes": len(clip), "app_health_rc": health}


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    repo = make_pipeline_repository(tmp / "repo", sizes=(512,))
    triton = LocalTriton(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                         runtime_dir=tmp / "triton-runtime")
    triton.start(timeout_s=60)
    try:
        result = asyncio.run(_scenario(tmp, triton))
        cmd = [c.replace("127.0.0.1:8000", triton.http_url) for c in _healthcheck("Dockerfile.triton")]
        result["triton_health_rc"] = subprocess.run(cmd, capture_output=True, timeout=30).returncode
        result["triton_log"] = triton.log_tail(60)
        yield result
    finally:
        triton.stop()


def _delta(observed: dict, source: str, name: str, **labels: str) -> float:
    return (scrape_value(observed["after"][source], name, **labels)
            - scrape_value(observed["before"][source], name, **labels))


def test_task_finished(observed):
    task = observed["task"]
    assert task["status"] == "finished", f"{task}\n{observed['triton_log']}"
    assert task["details"]["frames"] == FRAMES


def test_orchestrator_task_frame_and_upload_metrics_increased(observed):
    assert _delta(observed, "app", "unmark_tasks_submitted_total") == 1
    assert _delta(observed, "app", "unmark_tasks_total", status="finished") == 1
    assert _delta(observed, "app", "unmark_tasks_total", status="failed") == 0
    assert _delta(observed, "app", "unmark_frames_processed_total") == FRAMES
    assert _delta(observed, "app", "unmark_upload_bytes_total") == observed["clip_bytes"]
    assert _delta(observed, "app", "unmark_task_duration_seconds_count") == 1
    assert _delta(observed, "app", "unmark_queue_wait_seconds_count") == 1
    after = observed["after"]["app"]
    assert scrape_value(after, "unmark_queue_depth") == 0
    assert scrape_value(after, "unmark_tasks_in_progress") == 0
    assert scrape_value(after, "unmark_model_ready", model="detector") == 1
    assert scrape_value(after, "unmark_model_ready", model="inpainter") == 1


def test_orchestrator_stage_histograms_observed_the_task(observed):
    for stage in ("decode", "detect", "encode", "total"):
        assert _delta(observed, "app", "unmark_stage_duration_seconds_count", stage=stage) == 1, stage
    # The inpainting stage: "inpaint" in orchestrator/metrics.py; the pipeline may name its wait.
    inpaint = (_delta(observed, "app", "unmark_stage_duration_seconds_count", stage="inpaint")
               + _delta(observed, "app", "unmark_stage_duration_seconds_count", stage="inpaint_wait"))
    assert inpaint >= 1
    assert _delta(observed, "app", "unmark_stage_duration_seconds_sum", stage="total") > 0


def test_orchestrator_saw_triton_requests_for_both_models(observed):
    for model in ("detector", "inpainter"):
        assert _delta(observed, "app", "unmark_triton_request_duration_seconds_count", model=model) >= 1, model
        assert _delta(observed, "app", "unmark_triton_request_errors_total", model=model) == 0, model


def test_triton_success_counters_increased_for_detector_and_inpainter(observed):
    for model in ("detector", "inpainter"):
        requests = _delta(observed, "triton", "nv_inference_request_success", model=model)
        assert requests >= 1, f"nv_inference_request_success{{model={model!r}}} did not increase"
        assert _delta(observed, "triton", "nv_inference_count", model=model) >= requests
        assert _delta(observed, "triton", "nv_inference_request_failure", model=model) == 0
    # Orchestrator and Triton agree on how many requests were sent.
    for model in ("detector", "inpainter"):
        assert _delta(observed, "triton", "nv_inference_request_success", model=model) == \
            _delta(observed, "app", "unmark_triton_request_duration_seconds_count", model=model)


def test_every_metric_the_dashboard_queries_is_exported(observed):
    exported = scrape_series_names(observed["after"]["app"]) | scrape_series_names(observed["after"]["triton"])
    missing = sorted(n for n in dashboard_metric_names() if n not in exported and n not in GPU_ONLY_TRITON_METRICS)
    assert not missing, f"the Grafana dashboard queries series nobody exports: {missing}"


def test_container_healthchecks_pass_against_the_live_services(observed):
    assert observed["app_health_rc"] == 0, "Dockerfile.orchestrator HEALTHCHECK failed on a healthy app"
    assert observed["triton_health_rc"] == 0, "Dockerfile.triton HEALTHCHECK failed on a live Triton"

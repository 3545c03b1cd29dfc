"""Prometheus metrics of the orchestrator (one registry; names follow Prometheus conventions).

Defined in one module so every stage records into the same objects; no task ids as labels.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

TASKS_SUBMITTED = Counter(
    "unmark_tasks_submitted_total", "Tasks accepted by the API.", registry=REGISTRY
)
TASKS_FINISHED = Counter(
    "unmark_tasks_total",
    "Tasks that reached a final status.",
    ["status"],  # finished | failed | cancelled
    registry=REGISTRY,
)
TASK_RETRIES = Counter(
    "unmark_task_retries_total", "Task attempts re-queued after a retryable failure.", registry=REGISTRY
)
QUEUE_DEPTH = Gauge("unmark_queue_depth", "Tasks waiting in the queue.", registry=REGISTRY)
TASKS_IN_PROGRESS = Gauge("unmark_tasks_in_progress", "Tasks being processed now.", registry=REGISTRY)
FRAMES_PROCESSED = Counter(
    "unmark_frames_processed_total", "Video frames written to results.", registry=REGISTRY
)
STAGE_SECONDS = Histogram(
    "unmark_stage_duration_seconds",
    "Time spent per pipeline stage and task.",
    ["stage"],  # decode | detect | matte | inpaint | encode | total
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
TASK_SECONDS = Histogram(
    "unmark_task_duration_seconds",
    "Wall time of a task from start of processing to its final status.",
    buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT_SECONDS = Histogram(
    "unmark_queue_wait_seconds", "Time tasks waited before processing started.", buckets=_STAGE_BUCKETS,
    registry=REGISTRY,
)
TRITON_REQUEST_SECONDS = Histogram(
    "unmark_triton_request_duration_seconds",
    "Latency of inference requests to Triton as seen by the client.",
    ["model"],
    buckets=_RPC_BUCKETS,
    registry=REGISTRY,
)
TRITON_REQUEST_ERRORS = Counter(
    "unmark_triton_request_errors_total",
    "Inference requests to Triton that failed.",
    ["model"],
    registry=REGISTRY,
)
MODEL_READY = Gauge(
    "unmark_model_ready", "1 when the model is loaded and ready in Triton.", ["model"], registry=REGISTRY
)
UPLOAD_BYTES = Counter(
    "unmark_upload_bytes_total", "Bytes of video received (uploads and video_url downloads).",
    registry=REGISTRY,
)

# Series that exist from the start at 0: a labelled metric has no series until its first use, so
# dashboards would show "no data" (and rate() nothing) instead of 0 for e.g. failed tasks.
TASK_FINAL_STATUSES = ("finished", "failed", "cancelled")
for _status in TASK_FINAL_STATUSES:
    TASKS_FINISHED.labels(status=_status)


def init_model_series(models: Iterable[str]) -> None:
    """Create the per-model series (at 0) for the models the service uses; the model manager calls it."""
    for name in models:
        TRITON_REQUEST_ERRORS.labels(model=name)
        TRITON_REQUEST_SECONDS.labels(model=name)
        MODEL_READY.labels(model=name)

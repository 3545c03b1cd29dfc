"""One attempt at a task on this worker, and the loop that keeps its lease while it runs."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.settings import Settings
from orchestrator.tasks.lease import Lease, LeaseQueue
from orchestrator.tasks.store import Task

LOGGER = logging.getLogger(__name__)


@dataclass
class Running:
    task: Task
    lease: Lease
    output: Path  # this attempt's own result file
    latest: Any = None  # last Progress from the pipeline thread (a plain attribute write)
    cancel: bool = False
    lost: bool = False  # the lease was lost: another attempt owns the task now
    input: Path | None = None  # the local input (a scratch copy when it lives in a bucket)
    location: str | None = None  # where the result was uploaded (object storage)
    started: float = 0.0
    handle: asyncio.Task | None = None  # a reference keeps the asyncio task from being collected


async def keep_lease(running: Running, queue: LeaseQueue, settings: Settings) -> None:
    """Renew the lease with the newest progress at a bounded rate (the pipeline thread only
    sets an attribute), at least every third of the lease; stop the pipeline when a cancel was
    requested (on any node) or the lease was lost."""
    written, renewed = None, time.monotonic()
    renew_every = settings.lease_s / 3
    while True:
        await asyncio.sleep(min(settings.progress_interval_s, renew_every))
        latest = running.latest
        fresh = latest is not None and latest is not written
        if not fresh and time.monotonic() - renewed < renew_every:
            continue
        values: dict[str, Any] = {}
        if fresh:
            written = latest
            info = {k: getattr(latest, k, None) for k in ("fps", "frames_done", "frames_total")}
            values = {"progress": float(getattr(latest, "percent", 0.0)),
                      "stage": getattr(latest, "stage", None), "details": {"progress": info}}
        try:
            answer = await queue.heartbeat(running.lease, **values)
        except Exception:  # noqa: BLE001 - the next renewal may succeed before the lease ends
            LOGGER.warning("task %s: lease renewal failed", running.task.id, exc_info=True)
            continue
        renewed = time.monotonic()
        if answer is None:
            LOGGER.warning("task %s: attempt %d lost its lease; stopping it", running.task.id,
                           running.lease.attempt)
            running.lost = running.cancel = True
            return
        if answer:
            running.cancel = True

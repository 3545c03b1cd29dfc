"""Admission limits, so a flood of submissions cannot fill the queue or the disk.

``MAX_QUEUED_TASKS``: a submission while that many tasks wait is answered 429 with Retry-After.
``MIN_FREE_DISK_MB``: a submission that would leave less free space than this under ``DATA_DIR``
(by its declared size) is answered 507 before any byte is stored; the upload also stops with 507
if the floor is reached while it streams (see ``upload.DiskFloor``).
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING

from fastapi import Request

from orchestrator.errors import TooManyTasksError

if TYPE_CHECKING:
    from orchestrator.api.deps import Services

RETRY_AFTER_S = 30


def free_mb(path) -> float:
    return shutil.disk_usage(path).free / (1024 * 1024)


async def check_capacity(request: Request, services: "Services") -> None:
    from orchestrator.api.upload import StorageError  # the 507 of this module's disk check

    settings = services.settings
    if settings.max_queued_tasks > 0:
        counts = await services.store.count_by_status()
        if counts.get("queued", 0) >= settings.max_queued_tasks:
            raise TooManyTasksError(f"{settings.max_queued_tasks} tasks are already waiting (MAX_QUEUED_TASKS); "
                                    f"try again in {RETRY_AFTER_S} s", retry_after_s=RETRY_AFTER_S)
    if settings.min_free_disk_mb > 0:
        declared = request.headers.get("content-length", "")
        need_mb = settings.min_free_disk_mb + (int(declared) / (1024 * 1024) if declared.isdigit() else 0)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        free = await asyncio.to_thread(free_mb, settings.data_dir)
        if free < need_mb:
            raise StorageError(f"not enough disk space on the server for this upload ({free:.0f} MB free, "
                               f"{settings.min_free_disk_mb} MB must stay free: MIN_FREE_DISK_MB)")

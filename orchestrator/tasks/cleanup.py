"""Files on the local disk that no task needs any more: leftovers of a killed process (at start)
and the files of tasks past their retention time (the janitor)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path

from orchestrator.storage import Storage
from orchestrator.tasks.store import TaskStatus, TaskStore, utcnow

LOGGER = logging.getLogger(__name__)


def unlink(path: str | None) -> None:
    if path:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            LOGGER.warning("could not remove %s: %s", path, exc)


def _older(path: Path, min_age_s: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime >= min_age_s
    except OSError:
        return False


async def remove_leftovers(store: TaskStore, uploads_dir: Path, results_dir: Path, *, min_age_s: float = 0.0) -> int:
    """Files a killed process left behind, removed at start (before anything runs again): the temp
    result of an interrupted attempt (``.<task>.a<n>.mp4.<hex>.tmp``) of a task no longer
    processing, upload/download ``.part`` files, and uploads whose task was never recorded.
    ``min_age_s`` spares files that may still be arriving at a peer sharing the directory."""
    removed: list[Path] = []
    for path in results_dir.glob(".*.tmp"):
        task = await store.get(path.name[1:].split(".", 1)[0])
        if task is None or task.status != TaskStatus.processing.value:
            removed.append(path)
    for path in uploads_dir.iterdir():
        if not _older(path, min_age_s):
            continue
        if path.name.endswith(".part") or await store.get(path.name.split(".", 1)[0]) is None:
            removed.append(path)
    for path in removed:
        unlink(str(path))
    if removed:
        LOGGER.info("removed %d files left by an interrupted run: %s", len(removed), [p.name for p in removed])
    return len(removed)


async def remove_expired(store: TaskStore, result_ttl_s: float, storage: Storage) -> int:
    """Delete files (or objects) of tasks that ended more than ``result_ttl_s`` ago; returns how many."""
    cutoff = utcnow() - timedelta(seconds=result_ttl_s)
    expired = await store.expired(cutoff)
    for task in expired:
        # Forget the paths before deleting: a download racing the janitor then gets the clear
        # "expired" answer instead of a path whose file has just gone.
        details = dict(task.details)
        details["result_expired"] = True
        await store.update_fields(task.id, output_path=None, input_path=None, details=details)
        await asyncio.to_thread(storage.remove, task.output_path)
        await asyncio.to_thread(storage.remove, task.input_path)
    if expired:
        LOGGER.info("removed files of %d expired tasks", len(expired))
    return len(expired)

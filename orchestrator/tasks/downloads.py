"""``video_url`` tasks: the video is fetched in the background (on an API node), stored where
uploads go (the data directory or the bucket), and the task becomes claimable."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from orchestrator import metrics
from orchestrator.download import download
from orchestrator.errors import AppError
from orchestrator.settings import Settings
from orchestrator.storage import Storage
from orchestrator.tasks.lease import LeaseQueue
from orchestrator.tasks.store import Task, TaskStatus

LOGGER = logging.getLogger(__name__)


class Downloads:
    """Each download is held on a lease (``LeaseQueue.claim_download``), renewed while it runs,
    so of several API nodes exactly one fetches a URL, and a node that dies mid-download leaves it
    to another (``adopt``) instead of every node restarting every pending download."""

    def __init__(self, settings: Settings, queue: LeaseQueue, storage: Storage, on_ready: Callable[[], None]) -> None:
        self.settings = settings
        self.queue = queue
        self.store = queue.store
        self.storage = storage
        self.on_ready = on_ready
        self.uploads_dir = settings.data_dir / "uploads"
        self._tasks: dict[str, asyncio.Task] = {}

    def start(self, task: Task) -> None:
        if task.id in self._tasks or not task.source_url:
            return
        self._tasks[task.id] = asyncio.create_task(self._held(task), name=f"download-{task.id}")

    async def adopt(self) -> None:
        """Start the downloads nobody holds (at start, then periodically)."""
        for task_id in await self.queue.orphaned_downloads():
            task = await self.store.get(task_id)
            if task is not None:
                self.start(task)

    async def _held(self, task: Task) -> None:
        if not await self.queue.claim_download(task.id):
            self._tasks.pop(task.id, None)
            return  # another node holds it
        renew = asyncio.create_task(self._renew(task.id))
        try:
            await self._download(task)
        finally:
            renew.cancel()

    async def _renew(self, task_id: str) -> None:
        while True:
            await asyncio.sleep(self.queue.lease_s / 3)
            try:
                await self.queue.claim_download(task_id)
            except Exception:  # noqa: BLE001 - the next renewal may work before the lease ends
                LOGGER.warning("task %s: download lease renewal failed", task_id, exc_info=True)

    def cancel(self, task_id: str) -> None:
        running = self._tasks.get(task_id)
        if running is not None:
            running.cancel()

    async def stop(self) -> None:
        for running in list(self._tasks.values()):
            running.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _download(self, task: Task) -> None:
        dest = self.uploads_dir / f"{task.id}.video"
        try:
            size = await download(task.source_url, dest, self.settings)
            location = await asyncio.to_thread(self.storage.put, dest, f"uploads/{dest.name}")
            if location != str(dest):
                dest.unlink(missing_ok=True)
            if not await self.store.update_fields(task.id, only_status=(TaskStatus.queued.value,),
                                                  input_path=location, stage=None, owner=None, lease_until=None):
                await asyncio.to_thread(self.storage.remove, location)  # cancelled meanwhile
                return
            LOGGER.info("task %s: downloaded %d bytes from its video_url", task.id, size)
            self.on_ready()
        except asyncio.CancelledError:
            dest.unlink(missing_ok=True)
            raise
        except AppError as exc:
            dest.unlink(missing_ok=True)
            if await self.store.finish(task.id, TaskStatus.failed, error=exc.public_message):
                metrics.TASKS_FINISHED.labels(status="failed").inc()
            LOGGER.warning("task %s: download failed: %s", task.id, exc.public_message)
        except Exception as exc:  # noqa: BLE001
            LOGGER.exception("task %s: download failed", task.id)
            if await self.store.finish(task.id, TaskStatus.failed,
                                       error=f"video_url: download failed ({type(exc).__name__})"):
                metrics.TASKS_FINISHED.labels(status="failed").inc()
        finally:
            self._tasks.pop(task.id, None)

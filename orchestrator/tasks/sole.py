"""What the only worker of an embedded (SQLite) queue does when it cannot run tasks: nobody else
will, so waiting tasks fail with the reason instead of waiting forever — at once when a required
model failed to load, after ``triton_wait_s`` without any Triton (time while Triton is live and
loading models does not count). On a shared (PostgreSQL) queue a node that cannot run tasks only
stops claiming; its peers run them."""

from __future__ import annotations

import asyncio
import logging
import time

from orchestrator import metrics
from orchestrator.settings import Settings
from orchestrator.storage import storage_for
from orchestrator.tasks.store import TaskStatus, TaskStore
from orchestrator.triton.models import ModelState, Snapshot

LOGGER = logging.getLogger(__name__)


class SoleWorker:
    def __init__(self, settings: Settings, store: TaskStore) -> None:
        self.settings = settings
        self.store = store
        self._no_triton_since: float | None = None

    def reset(self) -> None:
        self._no_triton_since = None

    async def fail_waiting(self, snapshot: Snapshot) -> None:
        if snapshot.state is ModelState.degraded and snapshot.load_failed:
            await self._fail_queued(f"cannot process: {snapshot.error}")
            return
        if snapshot.state is ModelState.loading:
            self._no_triton_since = None
            return
        now = time.monotonic()
        if self._no_triton_since is None:
            self._no_triton_since = now
        elif now - self._no_triton_since > self.settings.triton_wait_s:
            await self._fail_queued(f"no inference server for {now - self._no_triton_since:.0f} s "
                                    f"(TRITON_WAIT_S={self.settings.triton_wait_s:.0f}): "
                                    f"{snapshot.error or 'Triton at ' + self.settings.triton_grpc_url + ' unreachable'}")

    async def _fail_queued(self, reason: str) -> None:
        for task_id in await self.store.queued_ids():
            task = await self.store.get(task_id)
            if task and await self.store.finish(task_id, TaskStatus.failed, error=reason):
                LOGGER.warning("task %s failed: %s", task_id, reason)
                metrics.TASKS_FINISHED.labels(status="failed").inc()
                await asyncio.to_thread(storage_for(self.settings).remove, task.input_path)
                await self.store.update_fields(task_id, input_path=None)

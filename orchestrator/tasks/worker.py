"""The worker: claims queued tasks from the database (on a lease) and runs the pipeline.

A node whose models are not ready (loading, or a load failed) claims nothing: queued tasks stay
for the nodes that can run them. ``TritonUnavailableError`` requeues the task with a doubling
delay, bounded by ``max_task_attempts``. The pipeline runs in a dedicated thread pool so the event
loop (and /ping) never waits on video work. Its progress reaches the database at most every
``progress_interval_s``; that write renews the lease and brings back a cancel requested on any
node. Each attempt writes its own result file, so an attempt that lost its lease never touches
the result of the attempt that replaced it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import metrics
from orchestrator.download import download
from orchestrator.errors import AppError, InputError, OutputError, TaskCancelledError, TritonUnavailableError
from orchestrator.settings import Settings
from orchestrator.tasks import cleanup
from orchestrator.tasks.cleanup import unlink as _unlink
from orchestrator.tasks.lease import Lease, LeaseQueue, boot_owner, node_id
from orchestrator.tasks.store import Task, TaskStatus, TaskStore, utcnow
from orchestrator.triton.models import ModelManager, ModelState

LOGGER = logging.getLogger(__name__)


@dataclass
class _Running:
    task: Task
    lease: Lease
    output: Path  # this attempt's own result file
    latest: Any = None  # last Progress from the pipeline thread (a plain attribute write)
    cancel: bool = False
    lost: bool = False  # the lease was lost: another attempt owns the task now
    started: float = 0.0
    handle: asyncio.Task | None = None  # a reference keeps the asyncio task from being collected


def _import_pipeline():
    """The pipeline's modules (numpy, PyAV, tritonclient: ~0.6 s), imported in a thread: on the
    event loop the first task's import stalled /ping for ~300 ms."""
    import orchestrator.triton.client  # noqa: F401 - imported by process_video; preloaded here
    from orchestrator.pipeline.run import process_video

    return process_video


async def _preload_pipeline() -> None:
    try:
        await asyncio.to_thread(_import_pipeline)
    except ImportError as exc:  # reported by each task that needs it
        LOGGER.error("the video pipeline cannot be imported: %s", exc)


class Worker:
    def __init__(self, settings: Settings, store: TaskStore, models: ModelManager, *, pipeline=None) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.node = node_id(settings.node_id, settings.port)
        self.queue = LeaseQueue(store, boot_owner(self.node), settings.lease_s)
        self._pipeline = pipeline  # process_video's signature; None = the real pipeline
        self._claiming = True
        self.uploads_dir = settings.data_dir / "uploads"
        self.results_dir = settings.data_dir / "results"
        self._running: dict[str, _Running] = {}
        self._downloads: dict[str, asyncio.Task] = {}
        self._background: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, settings.max_concurrent_tasks), thread_name_prefix="pipeline"
        )

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        await self.queue.recover_own(self.node, self.settings.max_task_attempts)
        await self.queue.sweep(self.settings.max_task_attempts)
        await self.remove_leftovers()
        for task_id in await self.store.queued_ids(waiting_for_input=True):
            task = await self.store.get(task_id)
            if task and task.source_url:
                self.start_download(task)
        self._background = [
            asyncio.create_task(_preload_pipeline(), name="worker-preload"),
            asyncio.create_task(self._loop(), name="worker-loop"),
            asyncio.create_task(self._janitor(), name="worker-janitor"),
            asyncio.create_task(self._sweeper(), name="worker-sweeper"),
        ]
        LOGGER.info("worker %s started (lease %.0f s)", self.queue.owner, self.settings.lease_s)

    async def stop(self) -> None:
        """Running pipelines are asked to stop; their tasks go back to the queue (not cancelled)."""
        self._stopping = True
        for running in self._running.values():
            running.cancel = True
        for task in list(self._downloads.values()) + self._background:
            task.cancel()
        await asyncio.gather(*self._background, *self._downloads.values(), return_exceptions=True)
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._running:
            LOGGER.warning("tasks still running at shutdown: %s (they are resumed on restart)",
                           list(self._running))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    @property
    def running_ids(self) -> list[str]:
        return list(self._running)

    # -- API hooks -------------------------------------------------------------------------------
    def start_download(self, task: Task) -> None:
        """Fetch a task's ``video_url`` in the background; the task is claimable once it has input."""
        if task.id in self._downloads or not task.source_url:
            return
        self._downloads[task.id] = asyncio.create_task(self._download(task), name=f"download-{task.id}")

    async def cancel(self, task_id: str) -> Task | None:
        before = await self.store.get(task_id)
        if before is None or before.is_final:
            return before
        task = await self.store.request_cancel(task_id)
        running = self._running.get(task_id)
        if running is not None:
            running.cancel = True
        download_task = self._downloads.get(task_id)
        if download_task is not None:
            download_task.cancel()
        if task is not None and task.status == TaskStatus.cancelled.value:
            if running is None:
                _unlink(task.input_path)
            metrics.TASKS_FINISHED.labels(status="cancelled").inc()
        await self._update_queue_gauge()
        return task

    # -- the loop --------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the worker alive
                LOGGER.exception("worker iteration failed")
                await asyncio.sleep(1.0)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass

    async def _tick(self) -> None:
        await self._update_queue_gauge()
        snapshot = self.models.snapshot()
        ready = snapshot.state is ModelState.ready
        if ready != self._claiming and (ready or snapshot.state is ModelState.degraded):
            LOGGER.warning("worker %s: %s", self.queue.owner, "claiming tasks again" if ready else
                           f"stops claiming tasks while degraded ({snapshot.error})")
        self._claiming = ready
        if not ready:
            return
        while len(self._running) < max(1, self.settings.max_concurrent_tasks) and not self._stopping:
            claimed = await self.queue.claim()
            if claimed is None:
                return
            task, lease = claimed
            output = (self.results_dir / f"{task.id}.a{task.attempts}.mp4").resolve()
            running = _Running(task=task, lease=lease, output=output, started=time.monotonic())
            self._running[task.id] = running
            metrics.QUEUE_WAIT_SECONDS.observe(max(0.0, (utcnow() - task.created_at).total_seconds()))
            running.handle = asyncio.create_task(self._run(running), name=f"task-{task.id}")

    async def _update_queue_gauge(self) -> None:
        counts = await self.store.count_by_status()
        metrics.QUEUE_DEPTH.set(counts.get(TaskStatus.queued.value, 0))
        metrics.TASKS_IN_PROGRESS.set(len(self._running))

    # -- one task --------------------------------------------------------------------------------
    async def _run(self, running: _Running) -> None:
        task = running.task
        LOGGER.info("task %s: processing (attempt %d)", task.id, task.attempts)
        metrics.TASKS_IN_PROGRESS.set(len(self._running))
        flusher = asyncio.create_task(self._keep_lease(running))
        try:
            try:
                details = await self._call_pipeline(running)
            except BaseException as exc:  # noqa: BLE001 - every outcome is recorded
                await self._record_failure(running, exc)
            else:
                await self._end(running, TaskStatus.finished, details=details, progress=100.0)
        except Exception:  # noqa: BLE001 - e.g. the database went away: the task stays processing
            LOGGER.exception("task %s: could not record its outcome; it is retried when its lease expires",
                             task.id)
        finally:
            flusher.cancel()
            self._running.pop(task.id, None)
            metrics.TASKS_IN_PROGRESS.set(len(self._running))
            self.wake()

    async def _call_pipeline(self, running: _Running) -> dict:
        from orchestrator.pipeline.options import TaskOptions

        try:
            process_video = self._pipeline or await asyncio.to_thread(_import_pipeline)
        except ImportError as exc:
            raise AppError("the video pipeline is not installed on this server", detail=str(exc)) from exc
        task = running.task
        options = TaskOptions.model_validate(task.options or {})
        if not task.input_path or not Path(task.input_path).exists():
            raise InputError("the uploaded video is no longer on the server")
        try:
            running.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. a file in its place, a read-only or full disk
            raise OutputError(f"the server cannot write results: cannot create the results directory "
                              f"({exc.strerror or type(exc).__name__})", detail=str(exc)) from exc

        def progress(p: Any) -> None:
            running.latest = p

        def should_cancel() -> bool:
            return running.cancel

        # Several Triton replicas: this task's requests go round-robin over the ones ready now.
        ready_url = getattr(self.models, "ready_url", None)
        settings = self.settings.with_overrides(triton_grpc_url=ready_url()) if ready_url else self.settings
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self._executor,
            lambda: process_video(Path(task.input_path), running.output, options,
                                  settings=settings, progress=progress, should_cancel=should_cancel),
        )
        return dict(result or {})

    async def _keep_lease(self, running: _Running) -> None:
        """Renew the lease with the newest progress at a bounded rate (the pipeline thread only
        sets an attribute), at least every third of the lease; stop the pipeline when a cancel was
        requested (on any node) or the lease was lost."""
        written, renewed = None, time.monotonic()
        renew_every = self.settings.lease_s / 3
        while True:
            await asyncio.sleep(min(self.settings.progress_interval_s, renew_every))
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
                answer = await self.queue.heartbeat(running.lease, **values)
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

    async def _record_failure(self, running: _Running, exc: BaseException) -> None:
        task = running.task
        if running.lost:
            _unlink(str(running.output))
            LOGGER.warning("task %s: attempt %d ended (%s) after losing its lease; nothing recorded",
                           task.id, running.lease.attempt, type(exc).__name__)
            return
        if isinstance(exc, TaskCancelledError) or (running.cancel and isinstance(exc, asyncio.CancelledError)):
            if self._stopping and not (await self._cancel_requested(task.id)):
                # Shutdown, not the user: the interrupted attempt does not count.
                if await self.queue.release(running.lease):
                    LOGGER.info("task %s: back to the queue (shutdown)", task.id)
                return
            await self._end(running, TaskStatus.cancelled, error="cancelled by the user")
            return
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        if isinstance(exc, TritonUnavailableError):
            self.models.poke()
            if task.attempts < self.settings.max_task_attempts:
                delay = self.settings.task_retry_backoff_s * 2 ** (task.attempts - 1)
                LOGGER.warning("task %s: Triton unavailable (%s); retry in %.1f s", task.id,
                               exc.public_message, delay)
                metrics.TASK_RETRIES.inc()
                await self.queue.requeue(running.lease, delay_s=delay, error=exc.public_message)
                return
            await self._end(running, TaskStatus.failed,
                            error=f"gave up after {task.attempts} attempts: {exc.public_message}")
            return
        if isinstance(exc, AppError):
            LOGGER.warning("task %s failed: %s%s", task.id, exc.public_message,
                           f" ({exc.detail})" if exc.detail else "")
            await self._end(running, TaskStatus.failed, error=exc.public_message)
            return
        LOGGER.error("task %s: unexpected error", task.id, exc_info=exc)
        await self._end(running, TaskStatus.failed,
                        error=f"internal error while processing ({type(exc).__name__}); see the server log")

    async def _cancel_requested(self, task_id: str) -> bool:
        task = await self.store.get(task_id)
        return bool(task and task.cancel_requested)

    async def _end(self, running: _Running, status: TaskStatus, *, error: str | None = None,
                   details: dict | None = None, progress: float | None = None) -> None:
        """Record this attempt's outcome, fenced by its lease: an attempt that lost the task to a
        newer one writes nothing and removes only its own result file."""
        task, output = running.task, running.output
        if status is TaskStatus.finished and not output.exists():
            status, error = TaskStatus.failed, "the pipeline reported success but wrote no result"
        if status is not TaskStatus.finished:
            _unlink(str(output))
        recorded = await self.queue.finish(
            running.lease, status, error=error, details=details, progress=progress,
            output_path=str(output) if status is TaskStatus.finished else None)
        if not recorded:
            _unlink(str(output))
            LOGGER.warning("task %s: attempt %d lost its lease; its outcome (%s) was not recorded",
                           task.id, running.lease.attempt, status.value)
            return
        _unlink(task.input_path)
        metrics.TASKS_FINISHED.labels(status=status.value).inc()
        metrics.TASK_SECONDS.observe(time.monotonic() - running.started)
        LOGGER.info("task %s: %s%s", task.id, status.value, f" ({error})" if error else "")

    # -- downloads and cleanup -------------------------------------------------------------------
    async def _download(self, task: Task) -> None:
        dest = self.uploads_dir / f"{task.id}.video"
        try:
            size = await download(task.source_url, dest, self.settings)
            if not await self.store.update_fields(task.id, only_status=(TaskStatus.queued.value,),
                                                  input_path=str(dest), stage=None):
                _unlink(str(dest))  # cancelled meanwhile
                return
            LOGGER.info("task %s: downloaded %d bytes from its video_url", task.id, size)
            self.wake()
        except asyncio.CancelledError:
            dest.unlink(missing_ok=True)
            raise
        except AppError as exc:
            if await self.store.finish(task.id, TaskStatus.failed, error=exc.public_message):
                metrics.TASKS_FINISHED.labels(status="failed").inc()
            LOGGER.warning("task %s: download failed: %s", task.id, exc.public_message)
        except Exception as exc:  # noqa: BLE001
            LOGGER.exception("task %s: download failed", task.id)
            if await self.store.finish(task.id, TaskStatus.failed,
                                       error=f"video_url: download failed ({type(exc).__name__})"):
                metrics.TASKS_FINISHED.labels(status="failed").inc()
        finally:
            self._downloads.pop(task.id, None)

    async def _sweeper(self) -> None:
        """Requeue tasks whose worker stopped renewing its lease (on any node)."""
        while True:
            await asyncio.sleep(max(0.2, self.settings.lease_s / 2))
            try:
                if (await self.queue.sweep(self.settings.max_task_attempts)).requeued:
                    self.wake()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                LOGGER.warning("lease sweep failed", exc_info=True)

    async def _janitor(self) -> None:
        while True:
            try:
                await self.remove_expired()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                LOGGER.exception("janitor failed")
            await asyncio.sleep(self.settings.janitor_interval_s)

    async def remove_leftovers(self) -> int:
        shared = self.store.engine.dialect.name != "sqlite"  # peers may be writing uploads
        return await cleanup.remove_leftovers(self.store, self.uploads_dir, self.results_dir,
                                              min_age_s=self.settings.upload_idle_timeout_s if shared else 0.0)

    async def remove_expired(self) -> int:
        return await cleanup.remove_expired(self.store, self.settings.result_ttl_s)

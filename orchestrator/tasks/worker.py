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
from typing import Any

from orchestrator import metrics
from orchestrator.errors import AppError, InputError, OutputError, TaskCancelledError, TritonUnavailableError
from orchestrator.settings import Settings
from orchestrator.storage import ObjectStoreError, storage_for
from orchestrator.tasks import cleanup
from orchestrator.tasks.child import ChildDiedError
from orchestrator.tasks.downloads import Downloads
from orchestrator.tasks.attempt import Running, keep_lease
from orchestrator.tasks.cleanup import unlink as _unlink
from orchestrator.tasks.sole import SoleWorker
from orchestrator.tasks.lease import LeaseQueue, boot_owner, node_id
from orchestrator.tasks.store import Task, TaskStatus, TaskStore, utcnow
from orchestrator.triton.models import ModelManager, ModelState

LOGGER = logging.getLogger(__name__)


def _import_pipeline():
    """The pipeline's entry point (numpy, PyAV, tritonclient: ~0.6 s), imported in a thread: on
    the event loop the first task's import stalled /ping for ~300 ms. Imported here even when tasks
    run in child processes: an import that fails is then reported by /ping."""
    import orchestrator.triton.client  # noqa: F401 - imported by process_video; preloaded here
    from orchestrator.pipeline.run import process_video

    return process_video


def _task_runner(in_child: bool):
    if in_child:
        from orchestrator.tasks.child import run_in_child

        return run_in_child
    return _import_pipeline()


async def _preload_pipeline(in_child: bool) -> str | None:
    """None once the pipeline imports; otherwise why not (also reported by each task)."""
    try:
        await asyncio.to_thread(_import_pipeline)
        if in_child:
            from orchestrator.tasks.child import preload

            await asyncio.to_thread(preload)
    except ImportError as exc:
        LOGGER.error("the video pipeline cannot be imported: %s", exc)
        return f"the video pipeline cannot be imported: {exc}"
    return None


class Worker:
    def __init__(self, settings: Settings, store: TaskStore, models: ModelManager, *, pipeline=None) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.node = node_id(settings.node_id, settings.port)
        self.queue = LeaseQueue(store, boot_owner(self.node), settings.lease_s)
        self._pipeline = pipeline  # process_video's signature; None = the real pipeline
        self._claiming = True
        # A PostgreSQL queue is shared: a node that cannot run tasks leaves them to the others.
        self.shared_queue = store.engine.dialect.name != "sqlite"
        self.sole = SoleWorker(settings, store)
        self.uploads_dir = settings.data_dir / "uploads"
        self.results_dir = settings.data_dir / "results"
        self._running: dict[str, Running] = {}
        self.storage = storage_for(settings)
        self.scratch_dir = settings.data_dir / "scratch"
        self.downloads = Downloads(settings, self.queue, self.storage, self.wake)
        self._background: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, settings.max_concurrent_tasks), thread_name_prefix="pipeline"
        )

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Role ``api`` only fetches ``video_url`` downloads; ``worker`` only runs tasks; ``all`` both."""
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        role = self.settings.role
        if self.storage.remote:
            try:
                await asyncio.to_thread(self.storage.ensure_bucket)
            except ObjectStoreError as exc:  # each task meeting it retries; say it once here
                LOGGER.error("object store: %s (%s)", exc.public_message, exc.detail)
        if role != "api":
            await self.queue.recover_own(self.node, self.settings.max_task_attempts)
            await self.queue.sweep(self.settings.max_task_attempts)
            await self.remove_leftovers()
            self._background = [
                asyncio.create_task(_preload_pipeline(self.settings.task_process), name="worker-preload"),
                asyncio.create_task(self._loop(), name="worker-loop"),
                asyncio.create_task(self._every(self.settings.janitor_interval_s, self.remove_expired, "janitor",
                                                first_wait=False), name="worker-janitor"),
                asyncio.create_task(self._every(max(0.2, self.settings.lease_s / 2), self._sweep, "lease sweep",
                                                first_wait=True), name="worker-sweeper"),
            ]
        if role != "worker":
            self._background.append(asyncio.create_task(self._every(
                self.settings.lease_s / 2, self.downloads.adopt, "adopting downloads", first_wait=False)))
        LOGGER.info("node %s started as %s (lease %.0f s)", self.queue.owner, role, self.settings.lease_s)

    async def stop(self) -> None:
        """Running pipelines are asked to stop; their tasks go back to the queue (not cancelled)."""
        self._stopping = True
        for running in self._running.values():
            running.cancel = True
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, self.downloads.stop(), return_exceptions=True)
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._running:
            LOGGER.warning("tasks still running at shutdown: %s (they are resumed on restart)",
                           list(self._running))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    # -- health (/ping) ------------------------------------------------------------------------------
    def health_worker(self) -> str:
        """``ok`` while the claim loop runs (an ``api`` node has none), else why not."""
        if self.settings.role == "api":
            return "ok"
        loop = next((t for t in self._background if t.get_name() == "worker-loop"), None)
        if loop is None:
            return "starting"
        if loop.done():
            error = None if loop.cancelled() else loop.exception()
            return f"the worker loop stopped: {error!r}" if error else "the worker loop stopped"
        return "ok"

    def health_pipeline(self) -> str:
        """``ok`` once the pipeline imported, ``starting`` while it imports, else why it cannot."""
        if self.settings.role == "api":
            return "ok"
        preload = next((t for t in self._background if t.get_name() == "worker-preload"), None)
        if preload is None or not preload.done():
            return "starting"
        error = None if preload.cancelled() else (preload.exception() or preload.result())
        return "ok" if error is None else str(error)

    @property
    def running_ids(self) -> list[str]:
        return list(self._running)

    # -- API hooks -------------------------------------------------------------------------------
    def start_download(self, task: Task) -> None:
        """Fetch a task's ``video_url`` in the background; the task is claimable once it has input."""
        self.downloads.start(task)

    async def cancel(self, task_id: str) -> Task | None:
        before = await self.store.get(task_id)
        if before is None or before.is_final:
            return before
        task = await self.store.request_cancel(task_id)
        running = self._running.get(task_id)
        if running is not None:
            running.cancel = True
        self.downloads.cancel(task_id)
        if task is not None and task.status == TaskStatus.cancelled.value:
            if running is None:
                await asyncio.to_thread(self.storage.remove, task.input_path)
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
            if not self.shared_queue:  # the only worker of its queue: waiting tasks would wait forever
                await self.sole.fail_waiting(snapshot)
            return
        self.sole.reset()
        while len(self._running) < max(1, self.settings.max_concurrent_tasks) and not self._stopping:
            claimed = await self.queue.claim()
            if claimed is None:
                return
            task, lease = claimed
            where = self.scratch_dir if self.storage.remote else self.results_dir
            output = (where / f"{task.id}.a{task.attempts}.mp4").resolve()
            running = Running(task=task, lease=lease, output=output, started=time.monotonic())
            self._running[task.id] = running
            metrics.QUEUE_WAIT_SECONDS.observe(max(0.0, (utcnow() - task.created_at).total_seconds()))
            running.handle = asyncio.create_task(self._run(running), name=f"task-{task.id}")

    async def _update_queue_gauge(self) -> None:
        counts = await self.store.count_by_status()
        metrics.QUEUE_DEPTH.set(counts.get(TaskStatus.queued.value, 0))
        metrics.TASKS_IN_PROGRESS.set(len(self._running))

    # -- one task --------------------------------------------------------------------------------
    async def _run(self, running: Running) -> None:
        task = running.task
        LOGGER.info("task %s: processing (attempt %d)", task.id, task.attempts)
        metrics.TASKS_IN_PROGRESS.set(len(self._running))
        flusher = asyncio.create_task(keep_lease(running, self.queue, self.settings))
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
            if self.storage.remote:  # scratch copies; the bucket holds the originals
                _unlink(str(running.output))
                if running.input is not None:
                    _unlink(str(running.input))
            self._running.pop(task.id, None)
            metrics.TASKS_IN_PROGRESS.set(len(self._running))
            self.wake()

    async def _call_pipeline(self, running: Running) -> dict:
        from orchestrator.pipeline.options import TaskOptions

        try:
            process_video = self._pipeline or await asyncio.to_thread(_task_runner, self.settings.task_process)
        except ImportError as exc:
            raise AppError("the video pipeline is not installed on this server", detail=str(exc)) from exc
        task = running.task
        options = TaskOptions.model_validate(task.options or {})
        if not task.input_path:
            raise InputError("the uploaded video is no longer on the server")
        running.input = await asyncio.to_thread(self.storage.fetch, task.input_path,
                                                self.scratch_dir / f"{task.id}.a{task.attempts}.in")
        if not running.input.exists():
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
            lambda: process_video(running.input, running.output, options,
                                  settings=settings, progress=progress, should_cancel=should_cancel),
        )
        if self.storage.remote and running.output.exists():  # under this attempt's own key
            running.location = await asyncio.to_thread(
                self.storage.put, running.output, f"results/{running.output.name}")
        return dict(result or {})

    async def _record_failure(self, running: Running, exc: BaseException) -> None:
        task = running.task
        if running.lost:
            await self._discard(running)
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
        if isinstance(exc, (TritonUnavailableError, ChildDiedError, ObjectStoreError)):
            if isinstance(exc, TritonUnavailableError):
                self.models.poke()
            if task.attempts < self.settings.max_task_attempts:
                delay = self.settings.task_retry_backoff_s * 2 ** (task.attempts - 1)
                LOGGER.warning("task %s: %s; retry in %.1f s", task.id,
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

    async def _end(self, running: Running, status: TaskStatus, *, error: str | None = None,
                   details: dict | None = None, progress: float | None = None) -> None:
        """Record this attempt's outcome, fenced by its lease: an attempt that lost the task to a
        newer one writes nothing and removes only its own result (file or object)."""
        task = running.task
        result = running.location or str(running.output)
        if status is TaskStatus.finished and not (running.location or running.output.exists()):
            status, error = TaskStatus.failed, "the pipeline reported success but wrote no result"
        if status is not TaskStatus.finished:
            await self._discard(running)
        recorded = await self.queue.finish(
            running.lease, status, error=error, details=details, progress=progress,
            output_path=result if status is TaskStatus.finished else None)
        if not recorded:
            await self._discard(running)
            LOGGER.warning("task %s: attempt %d lost its lease; its outcome (%s) was not recorded",
                           task.id, running.lease.attempt, status.value)
            return
        await asyncio.to_thread(self.storage.remove, task.input_path)
        metrics.TASKS_FINISHED.labels(status=status.value).inc()
        metrics.TASK_SECONDS.observe(time.monotonic() - running.started)
        LOGGER.info("task %s: %s%s", task.id, status.value, f" ({error})" if error else "")

    async def _discard(self, running: Running) -> None:
        """Remove this attempt's own result: the local file and, if uploaded, its object."""
        _unlink(str(running.output))
        if running.location:
            await asyncio.to_thread(self.storage.remove, running.location)

    # -- background loops ------------------------------------------------------------------------
    async def _sweep(self) -> None:
        """Requeue tasks whose worker stopped renewing its lease (on any node)."""
        if (await self.queue.sweep(self.settings.max_task_attempts)).requeued:
            self.wake()

    async def _every(self, interval_s: float, step, what: str, *, first_wait: bool) -> None:
        while True:
            if first_wait:
                await asyncio.sleep(interval_s)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                LOGGER.warning("%s failed", what, exc_info=True)
            if not first_wait:
                await asyncio.sleep(interval_s)

    async def remove_leftovers(self) -> int:
        shared = self.store.engine.dialect.name != "sqlite"  # peers may be writing uploads
        return await cleanup.remove_leftovers(self.store, self.uploads_dir, self.results_dir,
                                              min_age_s=self.settings.upload_idle_timeout_s if shared else 0.0)

    async def remove_expired(self) -> int:
        return await cleanup.remove_expired(self.store, self.settings.result_ttl_s, self.storage)

"""The worker: claims queued tasks from the database and runs the pipeline in a thread.

Tasks wait while the models are not ready; when a required model failed to load they fail with
that reason instead of waiting forever. ``TritonUnavailableError`` requeues the task with a
doubling delay, bounded by ``max_task_attempts``. The pipeline runs in a dedicated thread pool so
the event loop (and /ping) never waits on video work; its progress reaches the database at most
every ``progress_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator import metrics
from orchestrator.download import download
from orchestrator.errors import AppError, InputError, OutputError, TaskCancelledError, TritonUnavailableError
from orchestrator.settings import Settings
from orchestrator.tasks.store import Task, TaskStatus, TaskStore, utcnow
from orchestrator.triton.models import ModelManager, ModelState

LOGGER = logging.getLogger(__name__)


@dataclass
class _Running:
    task: Task
    latest: Any = None  # last Progress from the pipeline thread (a plain attribute write)
    cancel: bool = False
    started: float = 0.0
    handle: asyncio.Task | None = None  # a reference keeps the asyncio task from being collected


def _unlink(path: str | None) -> None:
    if path:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            LOGGER.warning("could not remove %s: %s", path, exc)


def _import_pipeline():
    """The pipeline's modules (numpy, PyAV, tritonclient: ~0.6 s), imported in a thread: on the
    event loop the first task's import stalled /ping for ~300 ms."""
    import orchestrator.triton.client  # noqa: F401 - imported by process_video; preloaded here
    from orchestrator.pipeline.run import process_video

    return process_video


async def _preload_pipeline() -> str | None:
    """None once the pipeline imports; otherwise why not (also reported by each task)."""
    try:
        await asyncio.to_thread(_import_pipeline)
    except ImportError as exc:
        LOGGER.error("the video pipeline cannot be imported: %s", exc)
        return f"the video pipeline cannot be imported: {exc}"
    return None


class Worker:
    def __init__(self, settings: Settings, store: TaskStore, models: ModelManager) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.uploads_dir = settings.data_dir / "uploads"
        self.results_dir = settings.data_dir / "results"
        self._running: dict[str, _Running] = {}
        self._downloads: dict[str, asyncio.Task] = {}
        self._background: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._no_triton_since: float | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, settings.max_concurrent_tasks), thread_name_prefix="pipeline"
        )

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        await self.store.recover(self.settings.max_task_attempts)
        await self.remove_leftovers()
        for task_id in await self.store.queued_ids(waiting_for_input=True):
            task = await self.store.get(task_id)
            if task and task.source_url:
                self.start_download(task)
        self._background = [
            asyncio.create_task(_preload_pipeline(), name="worker-preload"),
            asyncio.create_task(self._loop(), name="worker-loop"),
            asyncio.create_task(self._janitor(), name="worker-janitor"),
        ]

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

    # -- health (/ping) ------------------------------------------------------------------------------
    def health_worker(self) -> str:
        """``ok`` while the claim loop runs, else why not."""
        loop = next((t for t in self._background if t.get_name() == "worker-loop"), None)
        if loop is None:
            return "starting"
        if loop.done():
            error = None if loop.cancelled() else loop.exception()
            return f"the worker loop stopped: {error!r}" if error else "the worker loop stopped"
        return "ok"

    def health_pipeline(self) -> str:
        """``ok`` once the pipeline imported, ``starting`` while it imports, else why it cannot."""
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
        if snapshot.state is ModelState.degraded and snapshot.load_failed:
            await self._fail_queued(f"cannot process: {snapshot.error}")
            return
        if snapshot.state is not ModelState.ready:
            await self._fail_if_no_triton_for_too_long(snapshot)
            return
        self._no_triton_since = None
        while len(self._running) < max(1, self.settings.max_concurrent_tasks) and not self._stopping:
            task = await self.store.claim_next()
            if task is None:
                return
            running = _Running(task=task, started=time.monotonic())
            self._running[task.id] = running
            metrics.QUEUE_WAIT_SECONDS.observe(max(0.0, (utcnow() - task.created_at).total_seconds()))
            running.handle = asyncio.create_task(self._run(running), name=f"task-{task.id}")

    async def _fail_if_no_triton_for_too_long(self, snapshot) -> None:
        """Waiting tasks fail once no Triton was reachable for ``triton_wait_s`` in a row. Time
        while Triton is live and loading models (a first TensorRT build) does not count."""
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

    async def _update_queue_gauge(self) -> None:
        counts = await self.store.count_by_status()
        metrics.QUEUE_DEPTH.set(counts.get(TaskStatus.queued.value, 0))
        metrics.TASKS_IN_PROGRESS.set(len(self._running))

    async def _fail_queued(self, reason: str) -> None:
        for task_id in await self.store.queued_ids():
            task = await self.store.get(task_id)
            if task and await self.store.finish(task_id, TaskStatus.failed, error=reason):
                LOGGER.warning("task %s failed: %s", task_id, reason)
                metrics.TASKS_FINISHED.labels(status="failed").inc()
                _unlink(task.input_path)
                await self.store.update_fields(task_id, input_path=None)

    # -- one task --------------------------------------------------------------------------------
    async def _run(self, running: _Running) -> None:
        task = running.task
        LOGGER.info("task %s: processing (attempt %d)", task.id, task.attempts)
        metrics.TASKS_IN_PROGRESS.set(len(self._running))
        flusher = asyncio.create_task(self._flush_progress(running))
        try:
            try:
                details = await self._call_pipeline(running)
            except BaseException as exc:  # noqa: BLE001 - every outcome is recorded
                await self._record_failure(running, exc)
            else:
                await self._end(running, TaskStatus.finished, details=details, progress=100.0)
        except Exception:  # noqa: BLE001 - e.g. the database went away: the task stays processing
            LOGGER.exception("task %s: could not record its outcome; it is retried after a restart", task.id)
        finally:
            flusher.cancel()
            self._running.pop(task.id, None)
            metrics.TASKS_IN_PROGRESS.set(len(self._running))
            self.wake()

    async def _call_pipeline(self, running: _Running) -> dict:
        from orchestrator.pipeline.options import TaskOptions

        try:
            process_video = await asyncio.to_thread(_import_pipeline)
        except ImportError as exc:
            raise AppError("the video pipeline is not installed on this server", detail=str(exc)) from exc
        task = running.task
        options = TaskOptions.model_validate(task.options or {})
        if not task.input_path or not Path(task.input_path).exists():
            raise InputError("the uploaded video is no longer on the server")
        try:
            Path(task.output_path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. a file in its place, a read-only or full disk
            raise OutputError(f"the server cannot write results: cannot create the results directory "
                              f"({exc.strerror or type(exc).__name__})", detail=str(exc)) from exc

        def progress(p: Any) -> None:
            running.latest = p

        def should_cancel() -> bool:
            return running.cancel

        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self._executor,
            lambda: process_video(Path(task.input_path), Path(task.output_path), options,
                                  settings=self.settings, progress=progress, should_cancel=should_cancel),
        )
        return dict(result or {})

    async def _flush_progress(self, running: _Running) -> None:
        """Write the newest progress at a bounded rate (the pipeline thread only sets an attribute)."""
        written = None
        while True:
            await asyncio.sleep(self.settings.progress_interval_s)
            latest = running.latest
            if latest is None or latest is written:
                continue
            written = latest
            info = {k: getattr(latest, k, None) for k in ("fps", "frames_done", "frames_total")}
            try:
                await self.store.set_progress(running.task.id, float(getattr(latest, "percent", 0.0)),
                                              getattr(latest, "stage", None), {"progress": info})
            except Exception:  # noqa: BLE001 - progress is best effort
                LOGGER.debug("progress write failed", exc_info=True)

    async def _record_failure(self, running: _Running, exc: BaseException) -> None:
        task = running.task
        if isinstance(exc, TaskCancelledError) or (running.cancel and isinstance(exc, asyncio.CancelledError)):
            if self._stopping and not (await self._cancel_requested(task.id)):
                # Shutdown, not the user: the interrupted attempt does not count.
                await self.store.update_fields(task.id, only_status=(TaskStatus.processing.value,),
                                               status=TaskStatus.queued.value, stage="requeued",
                                               attempts=max(0, task.attempts - 1), progress=0.0)
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
                await self.store.requeue(task.id, delay_s=delay, error=exc.public_message)
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
        task = running.task
        if status is TaskStatus.finished and not Path(task.output_path).exists():
            status, error = TaskStatus.failed, "the pipeline reported success but wrote no result"
        if status is not TaskStatus.finished:
            _unlink(task.output_path)
        await self.store.finish(task.id, status, error=error, details=details, progress=progress)
        _unlink(task.input_path)
        await self.store.update_fields(task.id, input_path=None)
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
        """Files a killed process left behind, removed at start (before anything runs again): the
        temp result of an interrupted attempt (``.<task>.mp4.<hex>.tmp``), upload/download
        ``.part`` files, and uploads whose task was never recorded. Returns how many."""
        removed: list[Path] = []
        for path in self.results_dir.glob(".*.tmp"):
            task = await self.store.get(path.name[1:].split(".", 1)[0])
            if task is None or task.status != TaskStatus.processing.value:
                removed.append(path)
        for path in self.uploads_dir.iterdir():
            if path.name.endswith(".part") or await self.store.get(path.name.split(".", 1)[0]) is None:
                removed.append(path)
        for path in removed:
            _unlink(str(path))
        if removed:
            LOGGER.info("removed %d files left by an interrupted run: %s", len(removed),
                        [p.name for p in removed])
        return len(removed)

    async def remove_expired(self) -> int:
        """Delete files of tasks that ended more than ``result_ttl_s`` ago; returns how many."""
        cutoff = utcnow() - timedelta(seconds=self.settings.result_ttl_s)
        expired = await self.store.expired(cutoff)
        for task in expired:
            _unlink(task.output_path)
            _unlink(task.input_path)
            details = dict(task.details)
            details["result_expired"] = True
            await self.store.update_fields(task.id, output_path=None, input_path=None, details=details)
        if expired:
            LOGGER.info("removed files of %d expired tasks", len(expired))
        return len(expired)

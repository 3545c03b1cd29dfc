"""Each task's pipeline in a child process: the service's event loop and /ping never share a GIL
with video work, several tasks use several cores, and a crash in native code (a segfault, an OOM
kill) ends that task's attempt, not the service.

Children come from a forkserver that imported the pipeline once, so a task starts in
milliseconds. The child reports progress and its outcome over a pipe; the parent passes a cancel
through an Event. Linux kills the child if the service dies (parent-death signal), so an
orphan never finishes an attempt that another node took over (see ``_die_with``).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from orchestrator import errors
from orchestrator.tasks import child_metrics

LOGGER = logging.getLogger(__name__)

_CONTEXT: Any = None
_CONTEXT_LOCK = threading.Lock()
PRELOAD = ["orchestrator.pipeline.run", "orchestrator.triton.client"]
PIPELINE = "orchestrator.pipeline.run:process_video"


class ChildDiedError(errors.AppError):
    """The task's process ended without an outcome (killed by a signal, out of memory...)."""

    status_code = 500
    code = "worker_died"


def _context():
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(PRELOAD)
        return _CONTEXT


def _die_with(service_pid: int) -> None:
    """End this child at once when the service that asked for it dies (SIGKILL, OOM): its attempt
    is dead (the lease expires and another node retries it), so it must not finish. The forkserver,
    not the service, is our parent, so the parent-death signal covers only the forkserver dying;
    a watchdog thread checks the service itself."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

    def watch() -> None:
        while True:
            try:
                os.kill(service_pid, 0)
            except ProcessLookupError:
                os._exit(70)
            except PermissionError:
                pass
            time.sleep(0.1)

    threading.Thread(target=watch, name="service-watchdog", daemon=True).start()


def _child_main(entry: str, service_pid: int, input_path: str, output_path: str, options, settings, conn,
                cancel) -> None:
    """Run in the child: the pipeline, with progress and the outcome sent to the parent."""
    _die_with(service_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the parent, which cancels us
    module, _, name = entry.partition(":")
    process_video = getattr(importlib.import_module(module), name)
    buffer = child_metrics.install()
    lock = threading.Lock()  # pipeline and gRPC threads report; one message at a time on the pipe

    def send(kind: str, payload) -> None:
        with lock:
            conn.send((kind, payload, buffer.drain()))

    try:
        result = process_video(Path(input_path), Path(output_path), options, settings=settings,
                               progress=lambda p: send("progress", p), should_cancel=cancel.is_set)
        send("done", dict(result or {}))
    except errors.AppError as exc:
        send("app_error", (type(exc).__name__, exc.public_message, exc.detail))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records the task
        send("crash", (type(exc).__name__, "".join(traceback.format_exception(exc))[-4000:]))
    finally:
        conn.close()


def _rebuild(kind: str, payload: tuple) -> BaseException:
    if kind == "app_error":
        name, message, detail = payload
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.AppError)):
            cls = errors.AppError
        return cls(message, detail=detail)
    name, text = payload
    LOGGER.error("the task's process raised %s:\n%s", name, text)
    return type(name, (RuntimeError,), {})(text.strip().splitlines()[-1] if text.strip() else name)


def _describe(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"the task's process was killed by {name}{hint}"
    return f"the task's process exited with code {exitcode} without a result"


def run_in_child(input_path: Path, output_path: Path, options, *, settings, progress: Callable[[Any], None],
                 should_cancel: Callable[[], bool], entry: str = PIPELINE) -> dict:
    """``process_video``'s signature, run in a child process (blocking: call it from a thread).
    ``entry`` ("module:function") is what the child calls."""
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    cancel = ctx.Event()
    child = ctx.Process(target=_child_main, name="task",
                        args=(entry, os.getpid(), str(input_path), str(output_path), options, settings, sender,
                              cancel))
    child.start()
    sender.close()
    try:
        while True:
            if should_cancel() and not cancel.is_set():
                cancel.set()
            if not receiver.poll(0.1):
                if not child.is_alive() and not receiver.poll(0):
                    break
                continue
            try:
                kind, payload, events = receiver.recv()
            except EOFError:
                break
            child_metrics.replay(events)
            if kind == "progress":
                progress(payload)
            elif kind == "done":
                return payload
            else:
                raise _rebuild(kind, payload)
    finally:
        _reap(child)
        receiver.close()
    raise ChildDiedError(_describe(child.exitcode), detail=f"pid {child.pid}, exit code {child.exitcode}")


def _reap(child, grace_s: float = 5.0) -> None:
    child.join(grace_s)
    if child.is_alive():
        child.kill()
        child.join(5)


def preload() -> None:
    """Start the forkserver now (it imports the pipeline once), not on the first task."""
    ctx = _context()
    started = time.perf_counter()
    child = ctx.Process(target=_noop)
    child.start()
    child.join(120)
    LOGGER.info("task processes ready (forkserver started in %.1f s)", time.perf_counter() - started)


def _noop() -> None:
    pass

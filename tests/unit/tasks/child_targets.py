"""Stand-ins for ``process_video`` run in a task's child process by test_child.py."""

from __future__ import annotations

import os
import signal
import time

from orchestrator.errors import InputError, TaskCancelledError


class P:
    def __init__(self, percent: float) -> None:
        self.percent, self.stage, self.fps, self.frames_done, self.frames_total = percent, "remove", 1.0, 1, 2


def ok(input_path, output_path, options, *, settings, progress, should_cancel):
    progress(P(50.0))
    output_path.write_bytes(input_path.read_bytes() + b" done")
    return {"pid": os.getpid()}


def bad_input(input_path, output_path, options, *, settings, progress, should_cancel):
    raise InputError("the file is not a video", detail="moov atom not found")


def bug(input_path, output_path, options, *, settings, progress, should_cancel):
    return 1 / 0


def segfault(input_path, output_path, options, *, settings, progress, should_cancel):
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)


def wait_cancel(input_path, output_path, options, *, settings, progress, should_cancel):
    for _ in range(500):
        if should_cancel():
            raise TaskCancelledError("cancelled")
        time.sleep(0.02)
    return {}


def pid_then_wait(input_path, output_path, options, *, settings, progress, should_cancel):
    print(os.getpid(), flush=True)
    time.sleep(30)
    output_path.write_bytes(b"an orphan finished")
    return {}


def counts(input_path, output_path, options, *, settings, progress, should_cancel):
    from orchestrator.metrics import FRAMES_PROCESSED, STAGE_SECONDS, TRITON_REQUEST_ERRORS

    FRAMES_PROCESSED.inc(7)
    STAGE_SECONDS.labels(stage="decode").observe(0.3)
    progress(P(50.0))
    TRITON_REQUEST_ERRORS.labels("detector").inc()
    FRAMES_PROCESSED.inc(3)
    return {}

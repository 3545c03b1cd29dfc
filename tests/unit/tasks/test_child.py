"""Tasks in child processes (real processes from the forkserver): outcomes, errors and deaths
come back to the parent as the worker expects them, and a crash only ends that attempt."""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.errors import InputError, TaskCancelledError
from orchestrator.settings import Settings
from orchestrator.tasks.child import ChildDiedError, run_in_child

sys.path.insert(0, str(Path(__file__).parent))  # child_targets, importable in the children too

from conftest import until  # noqa: E402 - the worker rig (fixture ``rig``) is in conftest.py


def _run(tmp_path: Path, target: str, should_cancel=lambda: False):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"input")
    seen = []
    result = run_in_child(src, tmp_path / "out.mp4", {}, settings=Settings(), progress=seen.append,
                          should_cancel=should_cancel, entry=f"child_targets:{target}")
    return result, seen


def test_the_result_and_progress_come_back_from_another_process(tmp_path):
    result, seen = _run(tmp_path, "ok")
    assert result["pid"] != os.getpid() and [p.percent for p in seen] == [50.0]
    assert (tmp_path / "out.mp4").read_bytes() == b"input done"


def test_an_app_error_keeps_its_class_and_message(tmp_path):
    with pytest.raises(InputError, match="the file is not a video") as caught:
        _run(tmp_path, "bad_input")
    assert caught.value.detail == "moov atom not found"


def test_an_unexpected_error_keeps_its_type_name(tmp_path):
    with pytest.raises(RuntimeError) as caught:
        _run(tmp_path, "bug")
    assert type(caught.value).__name__ == "ZeroDivisionError" and "division by zero" in str(caught.value)


def test_a_segfault_is_reported_as_the_process_dying(tmp_path):
    with pytest.raises(ChildDiedError, match="killed by SIGSEGV"):
        _run(tmp_path, "segfault")


def test_cancel_reaches_the_child(tmp_path):
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    with pytest.raises(TaskCancelledError):
        _run(tmp_path, "wait_cancel", should_cancel=flag.is_set)


async def test_a_crashing_task_is_retried_then_failed_and_the_worker_lives_on(rig):
    start, submit, store, _ = rig
    crash = functools.partial(run_in_child, entry="child_targets:segfault")
    ok = functools.partial(run_in_child, entry="child_targets:ok")
    worker, _ = await start(lambda n, out, progress, cancel: None)
    worker._pipeline = crash
    task = await until(store, await submit(), "failed", limit_s=60)
    assert task.attempts == 3
    assert task.error == "gave up after 3 attempts: the task's process was killed by SIGSEGV"
    worker._pipeline = ok  # the same worker runs the next task
    assert (await until(store, await submit(), "finished", limit_s=60)).attempts == 1


def test_the_child_dies_with_the_service(tmp_path):
    """The service SIGKILLed mid-task: its child stops within a fraction of a second instead of
    finishing an attempt another node will redo."""
    import signal
    import subprocess
    import time

    script = tmp_path / "service.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from pathlib import Path\n"
        "from orchestrator.settings import Settings\n"
        "from orchestrator.tasks.child import run_in_child\n"
        "if __name__ == '__main__':\n"
        f"    src = Path({str(tmp_path / 'in')!r}); src.write_bytes(b'x')\n"
        f"    run_in_child(src, Path({str(tmp_path / 'out')!r}), {{}}, settings=Settings(), progress=print,\n"
        "                 should_cancel=lambda: False, entry='child_targets:pid_then_wait')\n")
    service = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child_pid = int(service.stdout.readline())
    service.send_signal(signal.SIGKILL)
    service.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child_pid):
        time.sleep(0.05)
    assert not _alive(child_pid), "the task's process outlived the service"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_metrics_recorded_in_the_child_reach_the_services_registry(tmp_path):
    from orchestrator.metrics import REGISTRY

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("unmark_frames_processed_total"), value("unmark_stage_duration_seconds_count", stage="decode"),
              value("unmark_stage_duration_seconds_sum", stage="decode"),
              value("unmark_triton_request_errors_total", model="detector"))
    _run(tmp_path, "counts")
    after = (value("unmark_frames_processed_total"), value("unmark_stage_duration_seconds_count", stage="decode"),
             value("unmark_stage_duration_seconds_sum", stage="decode"),
             value("unmark_triton_request_errors_total", model="detector"))
    assert [round(a - b, 6) for a, b in zip(after, before)] == [10.0, 1.0, 0.3, 1.0]

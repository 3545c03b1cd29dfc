"""``python -m orchestrator`` as a real process: fast first /ping, health port, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from service_support import ROOT, make_tiny_repository, ping_port

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration


def _wait_ping(port: int, want: set[int], timeout_s: float, proc: subprocess.Popen) -> tuple[int, float]:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]
        status = ping_port(port)
        if status in want:
            return status, time.perf_counter() - t0
        time.sleep(0.02)
    raise AssertionError(f"/ping on {port} never answered {want} within {timeout_s} s")


def _start(tmp_path, args: list[str], **env) -> tuple[subprocess.Popen, int, int]:
    port, health = free_port(), free_port()
    full_env = dict(os.environ, PORT=str(port), PORT_HEALTH=str(health), DATA_DIR=str(tmp_path / "data"),
                    LOG_LEVEL="info", **env)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--host", "127.0.0.1", *args],
                            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)
    return proc, port, health


def _default_sigint() -> None:
    """Give the service SIGINT's default action, as a terminal's Ctrl-C finds it. A test run started
    as a shell's background job inherits SIGINT ignored, and a SIGINT sent before uvicorn installs
    its handlers would then be lost (the test hung on it 30 s)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_process_answers_ping_quickly_without_triton(tmp_path):
    t0 = time.perf_counter()
    proc, port, health = _start(tmp_path, [], TRITON_GRPC_URL=f"127.0.0.1:{free_port()}")
    try:
        status, _ = _wait_ping(port, {204}, 30, proc)
        since_start = time.perf_counter() - t0
        print(f"first /ping {status} {since_start:.2f} s after process start")
        # The design target is < 1 s; imports on a loaded 2-core CI box can take longer.
        assert since_start < 10
        assert ping_port(health) == 204
    finally:
        assert _stop(proc) == 0


def test_a_stop_signal_during_startup_stops_the_service_even_when_sigint_was_inherited_ignored(tmp_path):
    # A background job (`make test &`, nohup) inherits SIGINT ignored; the early /ping answers
    # before uvicorn installs its handlers. A signal in that window was lost (or, with the default
    # handler, interrupted the imports and left the process hanging): the service must stop.
    for sig in (signal.SIGINT, signal.SIGTERM):
        port = free_port()
        env = dict(os.environ, PORT=str(port), DATA_DIR=str(tmp_path / "data"), TRITON_GRPC_URL=f"127.0.0.1:{free_port()}")
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--host", "127.0.0.1"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            _wait_ping(port, {204}, 30, proc)
            proc.send_signal(sig)
            assert proc.wait(30) == 0, proc.stderr.read().decode(errors="replace")[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()


def test_local_triton_mode_serves_and_ctrl_c_stops_triton_too(tmp_path):
    repo = make_tiny_repository(tmp_path / "repo")
    proc, port, _ = _start(
        tmp_path, ["--local-triton", "--model-repository", str(repo)],
        TRITON_HTTP_PORT=str(free_port()), TRITON_GRPC_PORT=str(free_port()),
        TRITON_METRICS_PORT=str(free_port()),
    )
    try:
        _wait_ping(port, {200}, 120, proc)
        tritons = [p for p in psutil.Process(proc.pid).children(recursive=True) if "tritonserver" in p.name()]
        assert tritons, "no tritonserver child process"
    finally:
        rc = _stop(proc)
    assert rc == 0
    out = proc.stdout.read().decode()
    assert "Triton running" in out and f"http://127.0.0.1:{port}" in out
    gone, alive = psutil.wait_procs(tritons, timeout=15)
    assert not alive, "tritonserver outlived the orchestrator"


def test_local_triton_that_cannot_start_stops_the_service_with_an_error(tmp_path):
    (tmp_path / "empty-repo").mkdir()
    busy = free_port()
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", busy))
    blocker.listen()
    try:
        proc, port, _ = _start(tmp_path, ["--local-triton", "--model-repository", str(tmp_path / "empty-repo")],
                               TRITON_HTTP_PORT=str(busy), TRITON_GRPC_PORT=str(free_port()),
                               TRITON_METRICS_PORT=str(free_port()))
        try:
            rc = proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        blocker.close()
    assert rc == 1
    assert "Triton did not start" in proc.stderr.read().decode()

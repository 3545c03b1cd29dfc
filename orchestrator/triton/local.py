"""The embedded Triton: runs the ``tritonserver`` binary shipped inside the ``nvidia-pytriton`` wheel.

Used by ``make run`` and by the test fixture. Triton is a supervised child process: it gets a
parent-death signal so it never outlives us, its log goes to a file that is kept, and stopping it
is SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOGGER = logging.getLogger(__name__)


RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


class TritonNotFoundError(RuntimeError):
    """The pytriton wheel (and so the tritonserver binary) is not installed."""


class TritonStartError(RuntimeError):
    """Triton exited or did not become live in time; the message carries the log tail."""


class TritonStartTimeout(TritonStartError):
    """Triton kept running but was not live in time (it has been stopped)."""


def _site_root() -> Path:
    try:
        import pytriton  # noqa: F401  (only its location is needed)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise TritonNotFoundError(
            "nvidia-pytriton is not installed; install the 'triton' extra (pip install -e '.[triton]')"
        ) from exc
    return Path(pytriton.__file__).resolve().parent.parent


@dataclass(frozen=True)
class TritonDistribution:
    """Where the pieces of the wheel's Triton live."""

    server_binary: Path
    backends_dir: Path
    stub: Path
    libs_dir: Path

    @classmethod
    def find(cls) -> "TritonDistribution":
        site = _site_root()
        root = site / "pytriton" / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        dist = cls(
            server_binary=root / "bin" / "tritonserver",
            backends_dir=root / "backends",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            libs_dir=site / "nvidia_pytriton.libs",
        )
        for path in (dist.server_binary, dist.backends_dir / "python", dist.stub):
            if not path.exists():
                raise TritonNotFoundError(f"incomplete pytriton install: {path} is missing")
        return dist


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare_backends(dist: TritonDistribution, runtime_dir: Path) -> Path:
    """Copy the python backend beside the stub for this Python (the wheel keeps them apart)."""
    target = runtime_dir / "backends"
    python_backend = target / "python"
    stub_target = python_backend / "triton_python_backend_stub"
    if not stub_target.exists():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(dist.backends_dir, target, symlinks=True)
        shutil.copy2(dist.stub, stub_target)
        stub_target.chmod(0o755)
    return target


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGKILL Triton when the process that started it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class LocalTriton:
    """A local ``tritonserver`` in explicit model-control mode."""

    def __init__(
        self,
        model_repository: Path | str,
        *,
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        runtime_dir: Path | str | None = None,
        log_path: Path | str | None = None,
        load_models: tuple[str, ...] = (),
        extra_args: tuple[str, ...] = (),
        verbose: bool = False,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.runtime_dir = Path(runtime_dir or Path("data") / "triton-runtime").resolve()
        self.log_path = Path(log_path or self.runtime_dir / "tritonserver.log").resolve()
        self.load_models = load_models
        self.extra_args = extra_args
        self.verbose = verbose
        self._process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self, dist: TritonDistribution, backends: Path) -> list[str]:
        cmd = [
            str(dist.server_binary),
            f"--model-repository={self.model_repository}",
            "--model-control-mode=explicit",
            f"--backend-directory={backends}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            "--allow-cpu-metrics=true",
            "--strict-readiness=false",
            "--exit-on-error=false",
            f"--log-verbose={1 if self.verbose else 0}",
        ]
        cmd += [f"--load-model={name}" for name in self.load_models]
        cmd += list(self.extra_args)
        return cmd

    def environment(self, dist: TritonDistribution) -> dict[str, str]:
        env = dict(os.environ)
        libdirs = [str(dist.libs_dir), sysconfig.get_config_var("LIBDIR") or ""]
        if env.get("LD_LIBRARY_PATH"):
            libdirs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = ":".join(d for d in libdirs if d)
        # The python-backend stub imports numpy/onnxruntime from the first `python3` on PATH:
        # put this interpreter's bin/ (the venv) first, or models fail with "No module named numpy".
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        # Keep the stub's numeric libraries to the cores we give it (no oversubscription).
        env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
        return env

    def start(self, timeout_s: float = 60.0, *, attempts: int = 2) -> "LocalTriton":
        """Start and wait until live. A start that dies by a signal (seen once under load: gRPC's
        epoll aborting on a bad descriptor right at startup) is tried again; an exit with an error
        code (bad flags, busy port) is not."""
        dist = TritonDistribution.find()
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        backends = _prepare_backends(dist, self.runtime_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command(dist, backends)
        for attempt in range(1, attempts + 1):
            if self._log_file is None:
                self._log_file = open(self.log_path, "ab")
            LOGGER.info("starting Triton: %s (log: %s)", " ".join(cmd), self.log_path)
            self._process = subprocess.Popen(
                cmd,
                env=self.environment(dist),
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_set_parent_death_signal,
            )
            try:
                self.wait_live(timeout_s)
                return self
            except TritonStartTimeout:
                raise
            except TritonStartError:
                crashed = self._process.returncode is not None and self._process.returncode < 0
                if not crashed or attempt == attempts:
                    raise
                LOGGER.warning("tritonserver died at startup (signal %d); starting it again",
                               -self._process.returncode)
        return self

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def is_live(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/live", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_live(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.is_running():
                raise TritonStartError(
                    f"tritonserver exited with code {self._process.returncode}:\n{self.log_tail()}"
                )
            if self.is_live():
                LOGGER.info("Triton live on gRPC %s", self.grpc_url)
                return
            time.sleep(0.1)
        self.stop()
        raise TritonStartTimeout(f"tritonserver not live after {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, wait ``grace_s``, then SIGKILL. Returns the exit code."""
        proc = self._process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                LOGGER.warning("Triton ignored SIGTERM for %.0f s; killing it", grace_s)
                proc.kill()
                proc.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return proc.returncode

    def supervise(self, stop: threading.Event, *, backoff_s: tuple[float, ...] = RESTART_BACKOFF_S,
                  healthy_after_s: float = 60.0) -> int:
        """Keep Triton running until ``stop`` is set: a server that died (an OOM kill, a crash) is
        started again on the same ports after a pause that grows with each failure in a row (reset
        once it has run ``healthy_after_s``). The orchestrator's model manager sees it come back and
        loads the models again. Call from the thread that started it (the parent-death signal is
        tied to that thread). Returns how many restarts it made."""
        failures, restarts, since = 0, 0, time.monotonic()
        while not stop.wait(0.5):
            if self.is_running():
                if failures and time.monotonic() - since > healthy_after_s:
                    failures = 0
                continue
            delay = backoff_s[min(failures, len(backoff_s) - 1)]
            code = self._process.returncode if self._process is not None else None
            LOGGER.error("tritonserver exited (%s); starting it again in %.0f s",
                         f"signal {-code}" if code is not None and code < 0 else f"code {code}", delay)
            failures += 1
            if stop.wait(delay):
                break
            try:
                self.start()
            except TritonStartError as exc:
                LOGGER.error("restarting Triton failed: %s", exc)
                continue
            restarts += 1
            since = time.monotonic()
            LOGGER.warning("Triton restarted (restart %d); the models are loaded again", restarts)
        return restarts

    def kill(self) -> None:
        """Hard kill, for fault-injection tests."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> "LocalTriton":
        return self.start() if not self.is_running() else self

    def __exit__(self, *exc) -> None:
        self.stop()

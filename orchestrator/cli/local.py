"""``--local``: the embedded stack (local Triton + orchestrator) for one run."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from orchestrator.cli.client import ServiceClient
from orchestrator.cli.errors import EXIT_UNREACHABLE, EXIT_USAGE, CliError

LOGGER = logging.getLogger(__name__)


class LocalStack:
    """``python -m orchestrator --local-triton`` as a child process on a free port, in a temp data dir.

    A subprocess (not threads in this process) so that stopping it is one signal and nothing it
    loads stays behind. Its log is kept and its tail shown if it fails to become ready.
    """

    def __init__(self, *, repository: Path | None = None, timeout_s: float = 300.0,
                 console: Console | None = None) -> None:
        self.repository = (repository or Path("model_repository")).resolve()
        self.timeout_s = timeout_s
        self.console = console or Console(stderr=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="sora-unmark-local-")
        self.data_dir = Path(self._tmp.name)
        self.log_path = self.data_dir / "orchestrator.log"
        from orchestrator.triton.local import free_port

        self.port = free_port()
        self.triton_ports = {name: free_port() for name in ("http", "grpc", "metrics")}
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        self._log = None

    def check_repository(self) -> None:
        """Fail early, with the fix, when the models were never prepared."""
        missing = [name for name in ("detector", "inpainter")
                   if not any((self.repository / name).glob("[0-9]*/model.*"))]
        if missing:
            raise CliError(f"no prepared models in {self.repository} (missing: {', '.join(missing)}); "
                           "run `make models` (python -m export.prepare --target cpu) or pass "
                           "--model-repository", EXIT_USAGE)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "orchestrator", "--local-triton", "--port", str(self.port),
                "--model-repository", str(self.repository)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PORT=str(self.port), DATA_DIR=str(self.data_dir), HOST="127.0.0.1",
                   **{f"TRITON_{name.upper()}_PORT": str(port) for name, port in self.triton_ports.items()})
        for name in ("API_KEY", "PORT_HEALTH", "DATABASE_URL", "TRITON_GRPC_URL"):
            env.pop(name, None)  # a private, open, throw-away service
        return env

    def start(self) -> "LocalStack":
        self.check_repository()
        self._log = self.log_path.open("ab")
        LOGGER.info("starting the local stack: %s", " ".join(self.command()))
        from orchestrator.triton.local import _set_parent_death_signal

        # Parent-death signal: the service (and through it Triton) never outlives this command.
        self._process = subprocess.Popen(self.command(), env=self.environment(), stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_set_parent_death_signal)
        deadline = time.monotonic() + self.timeout_s
        with ServiceClient(self.url) as client, self.console.status(
                "starting the local service (Triton + orchestrator)…"):
            while True:
                if self._process.poll() is not None:
                    raise CliError(f"the local service exited with code {self._process.returncode}:\n"
                                   f"{self.log_tail()}", EXIT_UNREACHABLE)
                try:
                    code, body = client.ping()
                except CliError:
                    code, body = 0, {}
                if code == 200:
                    return self
                if code == 503:
                    raise CliError(f"the local service is degraded: {body.get('error') or body}\n"
                                   f"{self.log_tail()}", EXIT_UNREACHABLE)
                if time.monotonic() > deadline:
                    raise CliError(f"the local service was not ready after {self.timeout_s:.0f} s:\n"
                                   f"{self.log_tail()}", EXIT_UNREACHABLE)
                time.sleep(0.5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(20)
            except subprocess.TimeoutExpired:
                LOGGER.warning("local service did not stop in 20 s; killing it")
                self._process.kill()
                self._process.wait(5)
        if self._log is not None:
            self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> "LocalStack":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

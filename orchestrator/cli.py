"""``sora-unmark``: command-line client of the service (submit videos, follow them, download results).

    sora-unmark process a.mp4 b.mp4 -o out/ [--url URL] [--api-key KEY] [--regions JSON]
    sora-unmark process a.mp4 -o out/ --local      # starts Triton + the orchestrator itself
    sora-unmark status TASK_ID
    sora-unmark list

It talks to the HTTP API of DESIGN.md only (httpx), so it works the same against a local service,
a container or a rented GPU. Exit codes: 0 all done, 1 a task failed, 2 bad usage or input,
3 service unreachable / not starting, 4 authentication refused, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import httpx
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

LOGGER = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:5344"
TERMINAL = {"finished", "failed", "cancelled"}
UNREACHABLE_GRACE_S = 60.0  # how long `process` keeps polling a service that went away

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class CliError(Exception):
    """A failure to report to the user as one clear line, with the exit code it maps to."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def error_message(response: httpx.Response) -> str:
    """The service's public error text, whatever the body shape; falls back to the status line."""
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip()[:300]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail:
            return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
        if isinstance(body.get("message"), str):
            return body["message"]
    if isinstance(body, str) and body:
        return body
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


class ServiceClient:
    """The few calls the CLI needs, with errors turned into ``CliError``s that say what to do."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.tokens: dict[str, str] = {}  # task id -> its access token (kept for the tasks we submitted)
        self._http = httpx.Client(base_url=self.url, headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout_s, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(f"the service at {self.url} did not answer in time ({exc.__class__.__name__})",
                           EXIT_UNREACHABLE) from exc
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the service at {self.url}: {exc or exc.__class__.__name__}. "
                "Is it running? (start one with `make run`, or use --local)", EXIT_UNREACHABLE,
            ) from exc
        if response.status_code in (401, 403):
            raise CliError(
                f"the service refused the API key ({response.status_code}: {error_message(response)}); "
                "pass --api-key or set API_KEY", EXIT_AUTH,
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise CliError(f"{method} {path}: {error_message(response)}")
        return response.json()

    def ping(self) -> tuple[int, dict]:
        """(status code, body) of /ping: 200 ready, 204 loading, 503 degraded."""
        response = self._request("GET", "/ping")
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    def submit(self, path: Path, *, regions: str | None = None, detect: bool | None = None,
               method: str | None = None, on_upload: Callable[[int, int], None] | None = None) -> dict:
        data: dict[str, str] = {}
        if regions:
            data["regions"] = regions
        if detect is not None:
            data["detect"] = "true" if detect else "false"
        if method:
            data["method"] = method
        with path.open("rb") as raw:
            fh = _ReadProgress(raw, path.stat().st_size, on_upload) if on_upload else raw
            # Uploads can be large: no overall timeout on writing the body.
            response = self._request("POST", "/v1/tasks", data=data,
                                     files={"video": (path.name, fh, "application/octet-stream")},
                                     timeout=httpx.Timeout(None, connect=5.0))
        if response.status_code >= 400:
            raise CliError(f"{path.name}: rejected by the service: {error_message(response)}")
        body = response.json()
        if body.get("token"):
            self.tokens[body["task_id"]] = body["token"]
        return body

    def _task_headers(self, task_id: str) -> dict[str, str]:
        token = self.tokens.get(task_id)
        return {"X-Task-Token": token} if token else {}

    def get(self, task_id: str) -> dict:
        return self._json("GET", f"/v1/tasks/{task_id}", headers=self._task_headers(task_id))

    def list(self, *, limit: int = 50, status: str | None = None) -> list[dict]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return _items(self._json("GET", "/v1/tasks", params=params))

    def download(self, task: dict, dest: Path) -> int:
        """Stream the result to ``dest`` through a temporary file; returns the size in bytes."""
        path = task.get("result_url") or f"/v1/tasks/{task['task_id']}/result"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.stream("GET", path, headers=self._task_headers(task["task_id"]),
                                   timeout=httpx.Timeout(120.0, connect=5.0)) as response:
                if response.status_code in (401, 403):
                    response.read()
                    raise CliError(f"the service refused the API key: {error_message(response)}", EXIT_AUTH)
                if response.status_code >= 400:
                    response.read()
                    raise CliError(f"download of {task['task_id']} failed: {error_message(response)}")
                size = 0
                with tmp.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
            tmp.replace(dest)
            return size
        except httpx.TransportError as exc:
            raise CliError(f"download of {task['task_id']} interrupted: {exc}", EXIT_UNREACHABLE) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def queue_positions(self) -> dict[str, int]:
        """task id -> place in the queue (0 = next), from the queued list (newest first)."""
        try:
            body = self._json("GET", "/v1/tasks", params={"status": "queued", "limit": 200})
        except CliError:
            return {}
        items = _items(body)
        total = body.get("total") if isinstance(body, dict) else None
        total = total if isinstance(total, int) else len(items)
        return {str(t.get("task_id")): total - 1 - i for i, t in enumerate(items)}


class _ReadProgress:
    """A file wrapper that reports bytes read, so the upload can show a progress bar."""

    def __init__(self, raw: BinaryIO, total: int, callback: Callable[[int, int], None]) -> None:
        self._raw, self._total, self._callback = raw, total, callback
        self.name = getattr(raw, "name", "video")

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._callback(self._raw.tell(), self._total)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()


def _items(body: Any) -> list[dict]:
    """The task list, whether the API returns a bare list or a page object."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("items", "tasks", "results", "data"):
            if isinstance(body.get(key), list):
                return body[key]
    return []


# ---- output names -------------------------------------------------------------------------------

def output_names(inputs: list[Path], out_dir: Path) -> list[Path]:
    """``<stem>.clean.mp4`` per input; inputs with the same stem get ``-2``, ``-3``... suffixes."""
    taken: set[str] = set()
    names = []
    for path in inputs:
        base = path.stem or "video"
        name, n = f"{base}.clean.mp4", 1
        while name in taken:
            n += 1
            name = f"{base}-{n}.clean.mp4"
        taken.add(name)
        names.append(out_dir / name)
    return names


# ---- the embedded stack (--local) ---------------------------------------------------------------

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


# ---- process ------------------------------------------------------------------------------------

@dataclass
class _Job:
    source: Path
    dest: Path
    bar: TaskID
    task_id: str | None = None
    submitted_at: float = 0.0
    status: str = "pending"
    error: str | None = None
    last: dict = field(default_factory=dict)


def _describe(task: dict, position: int | None) -> str:
    status = task.get("status", "?")
    if status == "queued":
        pos = task.get("queue_position", position)
        return f"queued (#{int(pos) + 1} in line)" if isinstance(pos, int) else "queued"
    if status == "processing":
        stage = task.get("stage")
        live = (task.get("details") or {}).get("progress") or {}
        fps = live.get("fps") if isinstance(live, dict) else None
        text = f"processing: {stage}" if stage else "processing"
        return f"{text} {float(fps):.1f} fps" if isinstance(fps, (int, float)) and fps else text
    return status


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[name]}", justify="left"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
    )


def run_process(client: ServiceClient, inputs: list[Path], out_dir: Path, *, regions: str | None,
                detect: bool | None, method: str | None, poll_s: float, console: Console,
                err: Console) -> int:
    """Submit every file, follow them all until they end, download results. Returns the exit code."""
    code, body = client.ping()
    if code == 503:
        err.print(f"[yellow]warning:[/] the service reports its models unavailable: "
                  f"{escape(str(body.get('error') or body))}; tasks may fail")
    elif code == 204:
        console.print("models are still loading; tasks wait in the queue until they are ready")

    out_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[_Job] = []
    with _progress(console) as progress:
        for src, dest in zip(inputs, output_names(inputs, out_dir)):
            jobs.append(_Job(src, dest, progress.add_task("", total=100, name=src.name, state="uploading")))
        for job in jobs:
            try:
                job.task_id = client.submit(
                    job.source, regions=regions, detect=detect, method=method,
                    on_upload=lambda done, total, bar=job.bar: progress.update(
                        bar, completed=100.0 * done / max(total, 1)),
                )["task_id"]
                job.submitted_at = time.monotonic()
                job.status = "queued"
                # reset, not update: the elapsed clock restarts at submission too
                progress.reset(job.bar, total=100, completed=0, name=job.source.name, state="queued")
                console.print(f"submitted {escape(job.source.name)} as task {job.task_id}")
            except CliError as exc:
                if exc.exit_code in (EXIT_UNREACHABLE, EXIT_AUTH):
                    raise
                job.status, job.error = "failed", exc.message
                progress.update(job.bar, state="[red]rejected")
                err.print(f"[red]error:[/] {escape(exc.message)}")

        unreachable_since: float | None = None
        while any(j.status not in TERMINAL for j in jobs):
            positions: dict[str, int] | None = None
            for job in jobs:
                if job.status in TERMINAL:
                    continue
                try:
                    task = client.get(job.task_id)
                    unreachable_since = None
                except CliError as exc:
                    if exc.exit_code == EXIT_UNREACHABLE:
                        # Tasks survive a service restart: keep polling for a while before giving up.
                        unreachable_since = unreachable_since or time.monotonic()
                        if time.monotonic() - unreachable_since > UNREACHABLE_GRACE_S:
                            raise CliError(f"{exc.message} (for {UNREACHABLE_GRACE_S:.0f} s; the submitted "
                                           "tasks may still finish: see `sora-unmark list`)",
                                           EXIT_UNREACHABLE) from exc
                        progress.update(job.bar, state="[yellow]service unreachable, retrying")
                        break
                    if exc.exit_code != EXIT_FAILED:
                        raise
                    task = {"status": "failed", "error": exc.message}
                job.last, job.status = task, task.get("status", job.status)
                if job.status == "queued" and "queue_position" not in task and positions is None:
                    positions = client.queue_positions()
                pct = 100.0 if job.status == "finished" else float(task.get("progress") or 0.0)
                progress.update(job.bar, completed=pct,
                                state=_describe(task, (positions or {}).get(job.task_id)))
                if job.status == "finished":
                    try:
                        size = client.download(task, job.dest)
                    except CliError as exc:
                        if exc.exit_code != EXIT_FAILED:
                            raise
                        job.status, job.error = "failed", exc.message
                        progress.update(job.bar, state="[red]download failed")
                        err.print(f"[red]error:[/] {escape(job.source.name)}: {escape(exc.message)}")
                        continue
                    outcome = describe_outcome(task)
                    colour = "green" if outcome.startswith("removed") else "yellow"
                    progress.update(job.bar, state=f"[{colour}]{escape(outcome)}")
                    console.print(f"[{colour}]{escape(outcome)}[/] {escape(job.source.name)} -> "
                                  f"{escape(str(job.dest))} ({size / 1e6:.2f} MB, "
                                  f"{time.monotonic() - job.submitted_at:.1f} s)")
                elif job.status in ("failed", "cancelled"):
                    job.error = task.get("error") or job.status
                    progress.update(job.bar, state=f"[red]{job.status}")
                    err.print(f"[red]error:[/] {escape(job.source.name)}: task {job.task_id} {job.status}: "
                              f"{escape(str(job.error))}")
            if any(j.status not in TERMINAL for j in jobs):
                time.sleep(poll_s)

    failed = [j for j in jobs if j.status != "finished"]
    cleaned = sum(1 for j in jobs if j.status == "finished" and describe_outcome(j.last or {}).startswith("removed"))
    done = len(jobs) - len(failed)
    console.print(f"{done} of {len(jobs)} file(s) processed into {out_dir}: {cleaned} cleaned, "
                  f"{done - cleaned} with no watermark found or removed")
    return EXIT_FAILED if failed else EXIT_OK


def describe_outcome(task: dict) -> str:
    """What a finished task found and did, in words: "removed (1 mark, 3 positions, 6 visits:
    matte 3)", "no watermark found", "nothing removed (...)"."""
    details = task.get("details") or {}
    outcome = details.get("outcome")
    if outcome is None:
        return "removed"  # a service from before outcomes were reported
    if outcome != "removed":
        return outcome if outcome == "no watermark found" else "nothing removed: no overlay where marks were suspected"
    marks = [m for m in details.get("marks") or [] if m.get("method") != "untouched"]
    if not marks:
        return "removed (regions)"
    visits = sum(len(m.get("visits") or [1]) for m in marks)
    groups = len({m.get("mark", 0) for m in marks})
    methods: dict[str, int] = {}
    for m in marks:
        methods[m.get("method", "?")] = methods.get(m.get("method", "?"), 0) + 1
    how = ", ".join(f"{k} {v}" for k, v in methods.items())
    return f"removed ({groups} mark(s), {len(marks)} position(s), {visits} visit(s): {how})"


# ---- status / list ------------------------------------------------------------------------------

def run_status(client: ServiceClient, task_id: str, *, as_json: bool, console: Console) -> int:
    task = client.get(task_id)
    if as_json:
        console.print_json(json.dumps(task))
    else:
        table = Table(show_header=False, box=None)
        for key, value in task.items():
            if value is not None and value != {} and value != []:
                table.add_row(f"[bold]{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value))
        console.print(table)
    return EXIT_FAILED if task.get("status") in ("failed", "cancelled") else EXIT_OK


def run_list(client: ServiceClient, *, limit: int, status: str | None, as_json: bool,
             console: Console) -> int:
    tasks = client.list(limit=limit, status=status)
    if as_json:
        console.print_json(json.dumps(tasks))
        return EXIT_OK
    if not tasks:
        console.print("no tasks")
        return EXIT_OK
    table = Table("task id", "status", "file / error", box=box.SIMPLE_HEAD)
    for column in table.columns[:2]:
        column.no_wrap = True  # the id is what `status` needs: never cut it
    for t in tasks:
        status = str(t.get("status", ""))
        if status == "processing":
            status += f" {float(t.get('progress') or 0):.0f}%"
        text = escape(str(t.get("filename") or t.get("source") or ""))
        if t.get("error"):
            text += f"\n[red]{escape(str(t['error']))}[/]"
        table.add_row(str(t.get("task_id", "")), status, text)
    console.print(table)
    return EXIT_OK


# ---- entry point --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("SORA_UNMARK_URL", DEFAULT_URL),
                        help="service URL (env SORA_UNMARK_URL; default %(default)s)")
    common.add_argument("--api-key", default=os.environ.get("API_KEY") or None,
                        help="API key sent as 'Authorization: Bearer' (env API_KEY)")
    common.add_argument("-v", "--verbose", action="store_true", help="log HTTP calls")

    parser = argparse.ArgumentParser(prog="sora-unmark", description="Remove the Sora watermark from videos.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", parents=[common], help="clean video files and download the results")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN",
                   help="video files, or directories (their .mp4/.mov/.webm/... files)")
    p.add_argument("-o", "--output-dir", type=Path, required=True, metavar="OUT_DIR",
                   help="where <name>.clean.mp4 files are written (existing files are replaced)")
    p.add_argument("--regions", help='JSON list of [x1,y1,x2,y2] boxes (or {"box":[..],"start":s,"end":s})')
    p.add_argument("--detect", dest="detect", action=argparse.BooleanOptionalAction, default=None,
                   help="run the detector (default: on, off when --regions is given)")
    p.add_argument("--method", choices=["auto", "inpaint"], default=None, help="removal method (default auto)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between status checks")
    p.add_argument("--local", action="store_true",
                   help="start the embedded stack (local Triton + orchestrator) for this run, then stop it")
    p.add_argument("--model-repository", type=Path, default=None, help="with --local: the model repository")
    p.add_argument("--local-timeout", type=float, default=300.0, help="with --local: seconds to wait for ready")

    s = sub.add_parser("status", parents=[common], help="show one task")
    s.add_argument("task_id")
    s.add_argument("--token", help="the task's token (printed at submission) when you have no API key")
    s.add_argument("--json", action="store_true", help="print the raw JSON")

    ls = sub.add_parser("list", parents=[common], help="list tasks")
    ls.add_argument("--limit", type=int, default=50, help="how many, newest first (at most 200)")
    ls.add_argument("--status", choices=["queued", "processing", "finished", "failed", "cancelled"])
    ls.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; a directory stands for the videos directly inside it (by suffix, sorted)."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise CliError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) in {path}", EXIT_USAGE)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CliError(f"no such file: {path}", EXIT_USAGE)
    return files


def _check_inputs(args: argparse.Namespace) -> None:
    args.inputs = expand_inputs(args.inputs)
    if args.regions:
        try:
            regions = json.loads(args.regions)
        except json.JSONDecodeError as exc:
            raise CliError(f"--regions is not valid JSON: {exc.msg}", EXIT_USAGE) from exc
        if not isinstance(regions, list):
            raise CliError("--regions must be a JSON list of boxes", EXIT_USAGE)
    if args.detect is False and not args.regions:
        raise CliError("--no-detect needs --regions: there would be nothing to remove", EXIT_USAGE)
    if args.output_dir.exists() and not args.output_dir.is_dir():
        raise CliError(f"{args.output_dir} exists and is not a directory", EXIT_USAGE)


def main(argv: list[str] | None = None, *, console: Console | None = None,
         err_console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = console or Console(soft_wrap=True)
    err = err_console or Console(stderr=True, soft_wrap=True)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    stack: LocalStack | None = None
    try:
        if args.command == "process":
            _check_inputs(args)
            url, key = args.url, args.api_key
            if args.local:
                stack = LocalStack(repository=args.model_repository, timeout_s=args.local_timeout,
                                   console=err).__enter__()
                url, key = stack.url, None
                console.print(f"local service ready at {url}")
            with ServiceClient(url, key) as client:
                return run_process(client, args.inputs, args.output_dir, regions=args.regions,
                                   detect=args.detect, method=args.method, poll_s=args.poll,
                                   console=console, err=err)
        with ServiceClient(args.url, args.api_key) as client:
            if args.command == "status":
                if args.token:
                    client.tokens[args.task_id] = args.token
                return run_status(client, args.task_id, as_json=args.json, console=console)
            return run_list(client, limit=args.limit, status=args.status, as_json=args.json, console=console)
    except CliError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; tasks already submitted keep running on the service"
                  + ("" if stack is None else " (the local service is being stopped)"))
        return EXIT_INTERRUPTED
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())

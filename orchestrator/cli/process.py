"""``process``: submit files, follow them on a progress display, download the results."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

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

from orchestrator.cli.client import ServiceClient
from orchestrator.cli.errors import EXIT_AUTH, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, CliError

TERMINAL = {"finished", "failed", "cancelled"}
UNREACHABLE_GRACE_S = 60.0  # how long `process` keeps polling a service that went away


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


@dataclass(frozen=True)
class _Display:
    """Where ``process`` reports: the progress bars, ordinary lines and error lines."""

    progress: Progress
    console: Console
    err: Console


def run_process(client: ServiceClient, inputs: list[Path], out_dir: Path, *, regions: str | None,
                detect: bool | None, method: str | None, poll_s: float, console: Console,
                err: Console) -> int:
    """Submit every file, follow them all until they end, download results. Returns the exit code."""
    _report_readiness(client, console, err)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _progress(console) as progress:
        view = _Display(progress, console, err)
        jobs = [_Job(src, dest, progress.add_task("", total=100, name=src.name, state="uploading"))
                for src, dest in zip(inputs, output_names(inputs, out_dir))]
        for job in jobs:
            _submit(client, job, view, regions=regions, detect=detect, method=method)
        unreachable_since: float | None = None
        while any(j.status not in TERMINAL for j in jobs):
            unreachable_since = _poll_round(client, jobs, view, unreachable_since)
            if any(j.status not in TERMINAL for j in jobs):
                time.sleep(poll_s)
    return _summarise(jobs, out_dir, console)


def _report_readiness(client: ServiceClient, console: Console, err: Console) -> None:
    """Say before uploading when the service cannot run tasks yet (or at all)."""
    code, body = client.ping()
    if code == 503:
        err.print(f"[yellow]warning:[/] the service reports its models unavailable: "
                  f"{escape(str(body.get('error') or body))}; tasks may fail")
    elif code == 204:
        console.print("models are still loading; tasks wait in the queue until they are ready")


def _submit(client: ServiceClient, job: _Job, view: _Display, *, regions: str | None,
            detect: bool | None, method: str | None) -> None:
    """Upload one file: a rejected file fails alone, an unreachable or refusing service stops all."""
    progress = view.progress
    try:
        job.task_id = client.submit(
            job.source, regions=regions, detect=detect, method=method,
            on_upload=lambda done, total, bar=job.bar: progress.update(
                bar, completed=100.0 * done / max(total, 1)),
        )["task_id"]
    except CliError as exc:
        if exc.exit_code in (EXIT_UNREACHABLE, EXIT_AUTH):
            raise
        job.status, job.error = "failed", exc.message
        progress.update(job.bar, state="[red]rejected")
        view.err.print(f"[red]error:[/] {escape(exc.message)}")
        return
    job.submitted_at = time.monotonic()
    job.status = "queued"
    # reset, not update: the elapsed clock restarts at submission too
    progress.reset(job.bar, total=100, completed=0, name=job.source.name, state="queued")
    view.console.print(f"submitted {escape(job.source.name)} as task {job.task_id}")


def _poll_round(client: ServiceClient, jobs: list[_Job], view: _Display,
                unreachable_since: float | None) -> float | None:
    """Check every unfinished task once; returns since when the service has been unreachable."""
    positions: dict[str, int] | None = None
    for job in jobs:
        if job.status in TERMINAL:
            continue
        try:
            task = client.get(job.task_id)
            unreachable_since = None
        except CliError as exc:
            if exc.exit_code == EXIT_UNREACHABLE:
                unreachable_since = _outage_started(exc, unreachable_since)
                view.progress.update(job.bar, state="[yellow]service unreachable, retrying")
                break
            if exc.exit_code != EXIT_FAILED:
                raise
            task = {"status": "failed", "error": exc.message}
        job.last, job.status = task, task.get("status", job.status)
        if job.status == "queued" and "queue_position" not in task and positions is None:
            positions = client.queue_positions()
        _show(client, job, task, view, (positions or {}).get(job.task_id))
    return unreachable_since


def _outage_started(exc: CliError, since: float | None) -> float:
    """Tasks survive a service restart: keep polling for a while before giving up."""
    since = since or time.monotonic()
    if time.monotonic() - since > UNREACHABLE_GRACE_S:
        raise CliError(f"{exc.message} (for {UNREACHABLE_GRACE_S:.0f} s; the submitted "
                       "tasks may still finish: see `sora-unmark list`)", EXIT_UNREACHABLE) from exc
    return since


def _show(client: ServiceClient, job: _Job, task: dict, view: _Display, position: int | None) -> None:
    """Update the job's bar from its task; download the result once it is finished."""
    pct = 100.0 if job.status == "finished" else float(task.get("progress") or 0.0)
    view.progress.update(job.bar, completed=pct, state=_describe(task, position))
    if job.status == "finished":
        _download(client, job, task, view)
    elif job.status in ("failed", "cancelled"):
        job.error = task.get("error") or job.status
        view.progress.update(job.bar, state=f"[red]{job.status}")
        view.err.print(f"[red]error:[/] {escape(job.source.name)}: task {job.task_id} {job.status}: "
                       f"{escape(str(job.error))}")


def _download(client: ServiceClient, job: _Job, task: dict, view: _Display) -> None:
    try:
        size = client.download(task, job.dest)
    except CliError as exc:
        if exc.exit_code != EXIT_FAILED:
            raise
        job.status, job.error = "failed", exc.message
        view.progress.update(job.bar, state="[red]download failed")
        view.err.print(f"[red]error:[/] {escape(job.source.name)}: {escape(exc.message)}")
        return
    outcome = describe_outcome(task)
    colour = "green" if outcome.startswith("removed") else "yellow"
    view.progress.update(job.bar, state=f"[{colour}]{escape(outcome)}")
    view.console.print(f"[{colour}]{escape(outcome)}[/] {escape(job.source.name)} -> "
                       f"{escape(str(job.dest))} ({size / 1e6:.2f} MB, "
                       f"{time.monotonic() - job.submitted_at:.1f} s)")


def _summarise(jobs: list[_Job], out_dir: Path, console: Console) -> int:
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

"""Argument parsing and input checks, and the ``status`` / ``list`` commands."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.client import DEFAULT_URL, ServiceClient
from orchestrator.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError


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


def check_inputs(args: argparse.Namespace) -> None:
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


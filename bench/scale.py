"""Scale-out figures on this machine: tasks/minute with one vs two workers on one PostgreSQL
queue, and /ping latency while two tasks run (each task in its own process, or in threads).

    python -m bench.scale [--tasks 6] [--seconds 2] [--repository model_repository]

Starts a throwaway PostgreSQL, one local Triton and the orchestrators on loopback; prints a
table. The repository comes from ``make models`` (``python -m export.prepare --target cpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.pipeline import make_input
from orchestrator.cluster.postgres import LocalPostgres
from orchestrator.triton.local import LocalTriton, free_port

ROOT = Path(__file__).resolve().parents[1]


class Node:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, **env, PORT=str(self.port))
        env.pop("API_KEY", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--host", "127.0.0.1"], cwd=ROOT,
                                     env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def wait_ready(self, limit_s: float = 180) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.url} not ready")

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _submit(url: str, clip: Path, regions: list) -> str:
    with clip.open("rb") as f:
        r = httpx.post(f"{url}/v1/tasks", files={"video": (clip.name, f)},
                       data={"regions": json.dumps(regions), "detect": "false"}, timeout=60)
    r.raise_for_status()
    return r.json()["task_id"]


def _wait_all(url: str, ids: list[str], limit_s: float = 1800) -> None:
    deadline = time.monotonic() + limit_s
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for task_id in list(pending):
            task = httpx.get(f"{url}/v1/tasks/{task_id}", timeout=30).json()
            if task["status"] in ("finished", "failed", "cancelled"):
                if task["status"] != "finished":
                    raise RuntimeError(f"task {task_id} {task['status']}: {task['error']}")
                pending.discard(task_id)
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"{len(pending)} tasks not finished")


def _ping_poller(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get(f"{url}/ping")
            out.append(time.perf_counter() - start)
            time.sleep(0.02)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else float("nan")


def throughput(workers: int, base_env: dict, tmp: Path, clip: Path, regions: list, tasks: int) -> float:
    data = tmp / f"data-{workers}w"
    nodes = [Node({**base_env, "DATA_DIR": str(data)}, tmp / f"node-{workers}w-{i}.log") for i in range(workers)]
    try:
        for node in nodes:
            node.wait_ready()
        start = time.perf_counter()
        ids = [_submit(nodes[i % workers].url, clip, regions) for i in range(tasks)]
        _wait_all(nodes[0].url, ids)
        return tasks / ((time.perf_counter() - start) / 60)
    finally:
        for node in nodes:
            node.stop()


def ping_while_two_run(base_env: dict, tmp: Path, clip: Path, regions: list, in_process: bool) -> tuple:
    env = {**base_env, "DATA_DIR": str(tmp / f"data-ping-{in_process}"), "MAX_CONCURRENT_TASKS": "2",
           "TASK_PROCESS": "1" if in_process else "0"}
    node = Node(env, tmp / f"node-ping-{in_process}.log")
    try:
        node.wait_ready()
        idle = _poll_for(node.url, lambda: time.sleep(5))  # the machine's own noise, no task running
        ids = [_submit(node.url, clip, regions) for _ in range(2)]
        busy = _poll_for(node.url, lambda: _wait_all(node.url, ids))
        return _figures(idle), _figures(busy)
    finally:
        node.stop()


def _poll_for(url: str, during) -> list[float]:
    samples: list[float] = []
    stop = threading.Event()
    poller = threading.Thread(target=_ping_poller, args=(url, stop, samples))
    poller.start()
    try:
        during()
    finally:
        stop.set()
        poller.join()
    return samples


def _figures(samples: list[float]) -> tuple[float, float, float, int]:
    return statistics.median(samples) * 1000, _pct(samples, 0.99), max(samples) * 1000, len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    args = parser.parse_args()
    clip, regions = make_input(args.width, args.height, args.seconds, audio=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    triton = LocalTriton(args.repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                         runtime_dir=tmp / "triton")
    triton.start(120)
    try:
        with LocalPostgres(free_port()) as pg:
            env = {"DATABASE_URL": pg.url, "TRITON_GRPC_URL": triton.grpc_url, "PRESET": "veryfast",
                   "MAX_CONCURRENT_TASKS": "1", "LOG_LEVEL": "warning"}
            one = throughput(1, env, tmp, clip, regions, args.tasks)
            two = throughput(2, env, tmp, clip, regions, args.tasks)
            procs = ping_while_two_run(env, tmp, clip, regions, in_process=True)
            threads = ping_while_two_run(env, tmp, clip, regions, in_process=False)
    finally:
        triton.stop()
    print(f"{args.tasks} tasks of {args.width}x{args.height}, {args.seconds:g} s, regions given; "
          f"{os.cpu_count()} CPUs; one local Triton; PostgreSQL queue")
    print("| workers | tasks/minute |\n|---|---|")
    print(f"| 1 | {one:.1f} |\n| 2 | {two:.1f} |")
    print("\n/ping while two tasks run (one node, MAX_CONCURRENT_TASKS=2), poll every 20 ms:")
    print("| tasks run in | while | p50 ms | p99 ms | max ms | samples |\n|---|---|---|---|---|---|")
    for name, (idle, busy) in (("child processes", procs), ("threads", threads)):
        for when, (p50, p99, worst, n) in (("idle (no task)", idle), ("two tasks run", busy)):
            print(f"| {name} | {when} | {p50:.1f} | {p99:.1f} | {worst:.1f} | {n} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""``make cluster``: the scaled-out shape on one machine, all on 127.0.0.1.

PostgreSQL (the queue), SeaweedFS (the S3 store), two Triton replicas and two orchestrators on
ports 5344 and 5354 sharing them. Prints where each runs; Ctrl-C stops everything.

    python -m orchestrator.cluster [--ports 5344,5354] [--model-repository model_repository]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from orchestrator.cluster.postgres import LocalPostgres
from orchestrator.cluster.s3 import LocalS3
from orchestrator.triton.local import LocalTriton, free_port

LOGGER = logging.getLogger("orchestrator.cluster")


def _orchestrator(port: int, name: str, env: dict[str, str], logs: Path) -> subprocess.Popen:
    full = dict(os.environ, **env, PORT=str(port), NODE_ID=name)
    log = (logs / f"{name}.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "--host", "127.0.0.1", "--role", "all"],
                            env=full, stdout=log, stderr=subprocess.STDOUT)


def _wait_ping(url: str, limit_s: float = 300) -> int:
    deadline = time.monotonic() + limit_s
    status = 0
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{url}/ping", timeout=5).status_code
            if status == 200:
                return status
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", default="5344,5354")
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--data-dir", type=Path, default=Path("data/cluster"))
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data = args.data_dir.resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stop = []
    # Ctrl-C (and SIGTERM) stop everything, even when started as a background job, which
    # inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        pg = LocalPostgres(free_port(), root=data / "postgres").start()
        stop.append(pg.remove)  # stops it; removes its files only when they went to /tmp
        s3 = LocalS3(root=data / "s3").start()
        stop.append(s3.stop)
        tritons = []
        for i in range(2):
            triton = LocalTriton(args.model_repository, http_port=free_port(), grpc_port=free_port(),
                                 metrics_port=free_port(), runtime_dir=data / f"triton-{i}")
            tritons.append(triton.start(180))
            stop.append(triton.stop)
        env = {"DATABASE_URL": pg.url, "DATA_DIR": str(data / "node-data"),
               "TRITON_GRPC_URL": ",".join(t.grpc_url for t in tritons), **s3.env()}
        nodes = []
        for i, port in enumerate(int(p) for p in args.ports.split(",")):
            proc = _orchestrator(port, f"node-{'ab'[i]}", env, logs)
            nodes.append((port, proc))
            stop.append(lambda proc=proc: _stop_process(proc))
        for port, _proc in nodes:
            _wait_ping(f"http://127.0.0.1:{port}")
        _print_table(pg, s3, tritons, nodes, logs)
        while all(proc.poll() is None for _port, proc in nodes):
            time.sleep(1)
        LOGGER.error("an orchestrator exited; see %s", logs)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the cluster", flush=True)
        return 0
    finally:
        for fn in reversed(stop):
            try:
                fn()
            except Exception:  # noqa: BLE001 - stop the rest anyway
                LOGGER.exception("stopping failed")


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _print_table(pg, s3, tritons, nodes, logs: Path) -> None:
    rows = [("PostgreSQL (queue)", pg.url.replace("+asyncpg", "")), ("S3 store (SeaweedFS)", f"{s3.endpoint} bucket {s3.bucket}")]
    rows += [(f"Triton replica {i + 1}", f"grpc {t.grpc_url}, metrics {t.metrics_url}") for i, t in enumerate(tritons)]
    rows += [(f"Orchestrator {'AB'[i]}", f"http://127.0.0.1:{port}  (/docs, /ping)") for i, (port, _p) in enumerate(nodes)]
    width = max(len(name) for name, _ in rows)
    print("\nCluster up (Ctrl-C stops everything):", flush=True)
    for name, where in rows:
        print(f"  {name:<{width}}  {where}", flush=True)
    print(f"  {'logs':<{width}}  {logs}\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Two orchestrators sharing one PostgreSQL queue (and one data directory), on loopback."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from reliability_support import OrchestratorProcess

from orchestrator.cluster.postgres import LocalPostgres
from orchestrator.tasks.store import TaskStore
from orchestrator.triton.local import free_port

REGIONS = "[[20, 20, 120, 60]]"


def node_env(pg: LocalPostgres, **extra: str) -> dict[str, str]:
    env = {"DATABASE_URL": pg.url, "LEASE_S": "3", "PROGRESS_INTERVAL_S": "0.1", "PRESET": "ultrafast",
           "MODEL_POLL_INTERVAL_S": "0.3", "SHUTDOWN_GRACE_S": "3"}
    env.update(extra)
    return env


@dataclass
class Node:
    """One orchestrator process; ``restart`` brings the same node back (same port, same node id)."""

    name: str
    process: OrchestratorProcess

    @property
    def url(self) -> str:
        return self.process.url

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    def restart(self) -> None:
        old = self.process
        fresh = OrchestratorProcess(Path(old.env["DATA_DIR"]), old.env["TRITON_GRPC_URL"], old.log_path)
        fresh.env, fresh.port, fresh.url = dict(old.env), old.port, old.url
        self.process = fresh.start()

    def freeze(self) -> None:
        os.kill(self.process.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.proc.pid, signal.SIGCONT)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    async def finished_count(self) -> float:
        async with self.client() as client:
            text = (await client.get("/metrics")).text
        line = next((ln for ln in text.splitlines() if ln.startswith('unmark_tasks_total{status="finished"}')), None)
        return float(line.split()[-1]) if line else 0.0


def start_nodes(tmp_path: Path, pg: LocalPostgres, grpc_url: str, count: int = 2, **extra: str) -> list[Node]:
    nodes = []
    for name in "ABCDEFG"[:count]:
        process = OrchestratorProcess(tmp_path / "data", grpc_url, tmp_path / f"node-{name}.log", **node_env(pg, **extra))
        nodes.append(Node(name, process.start()))
    return nodes


async def owner_of(pg: LocalPostgres, task_id: str) -> tuple[str | None, int]:
    """(owner, attempts) straight from the database: which node holds the task."""
    store = TaskStore(pg.url)
    try:
        task = await store.get(task_id)
        return task.owner, task.attempts
    finally:
        await store.close()


def node_of(nodes: list[Node], owner: str | None) -> Node | None:
    """The node whose id (host:port) starts ``owner``."""
    for node in nodes:
        if owner and owner.split("#", 1)[0].endswith(f":{node.process.port}"):
            return node
    return None


__all__ = ["REGIONS", "Node", "free_port", "node_of", "owner_of", "start_nodes"]

"""Leases on claimed tasks: what lets several workers share one queue safely.

A claim (``TaskStore.claim_next``) gives a worker a lease: ``owner`` (its node id and boot id),
``attempts`` (the fencing token) and ``lease_until``. The progress write renews it and answers
whether a cancel was requested (from any node). Finishing, requeueing and releasing are fenced
by owner and attempt, so a worker that lost its lease (paused, partitioned, presumed dead) cannot
overwrite the attempt that replaced it. A periodic sweep on every worker requeues only tasks whose
lease expired; at start a node requeues at once only what its own earlier boots held.
"""

from __future__ import annotations

import logging
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import String, cast, literal, select, update
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.tasks.store import Task, TaskRow, TaskStatus, TaskStore, utcnow

LOGGER = logging.getLogger(__name__)

PROCESSING = TaskStatus.processing.value


def node_id(configured: str | None, port: int) -> str:
    """The node's stable name: ``NODE_ID``, else host:port (unique per server on one host and a
    pod's name in Kubernetes; a restarted process gets the same one back)."""
    return configured or f"{socket.gethostname()}:{port}"


def boot_owner(node: str) -> str:
    """The owner written on claims: the node plus a per-process boot id."""
    return f"{node}#{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Lease:
    """Proof of a claim: only the holder of this (owner, attempt) may write the outcome."""

    task_id: str
    owner: str
    attempt: int

    @classmethod
    def of(cls, task: Task) -> "Lease":
        return cls(task.id, task.owner or "", task.attempts)


@dataclass(frozen=True)
class Reclaimed:
    """Outcome of a sweep: tasks put back in the queue, and tasks ended (cancelled or failed)."""

    requeued: list[str]
    ended: list[str]


class LeaseQueue:
    """The worker's view of the queue: claim, renew, end, and sweep expired leases."""

    def __init__(self, store: TaskStore, owner: str, lease_s: float) -> None:
        self.store = store
        self.owner = owner
        self.lease_s = lease_s

    def _held(self, lease: Lease) -> ColumnElement[bool]:
        return ((TaskRow.id == lease.task_id) & (TaskRow.owner == lease.owner)
                & (TaskRow.attempts == lease.attempt) & (TaskRow.status == PROCESSING))

    async def _fenced(self, lease: Lease, **values: Any) -> bool:
        values.setdefault("updated_at", utcnow())
        async with self.store._sessions.begin() as session:
            result = await session.execute(update(TaskRow).where(self._held(lease)).values(**values))
            return result.rowcount == 1

    async def claim(self) -> tuple[Task, Lease] | None:
        task = await self.store.claim_next(self.owner, self.lease_s)
        return (task, Lease.of(task)) if task is not None else None

    async def heartbeat(self, lease: Lease, *, progress: float | None = None, stage: str | None = None,
                        details: dict | None = None) -> bool | None:
        """Renew the lease (with the newest progress). Returns whether a cancel was requested,
        or None when the lease is lost (the task was swept, cancelled or finished elsewhere)."""
        now = utcnow()
        values: dict[str, Any] = {"lease_until": now + timedelta(seconds=self.lease_s), "updated_at": now}
        if progress is not None:
            values.update(progress=max(0.0, min(100.0, float(progress))), stage=stage)
        if details is not None:
            values["details"] = details
        stmt = update(TaskRow).where(self._held(lease)).values(**values).returning(TaskRow.cancel_requested)
        async with self.store._sessions.begin() as session:
            row = (await session.execute(stmt)).first()
        return None if row is None else bool(row[0])

    async def finish(self, lease: Lease, status: TaskStatus, *, error: str | None = None,
                     details: dict | None = None, progress: float | None = None,
                     output_path: str | None = None) -> bool:
        """Record the outcome of this attempt; False when the lease was lost (nothing written)."""
        values: dict[str, Any] = {"status": status.value, "error": error, "finished_at": utcnow(),
                                  "stage": None, "lease_until": None, "input_path": None}
        if details is not None:
            values["details"] = details
        if progress is not None:
            values["progress"] = progress
        if output_path is not None:
            values["output_path"] = output_path
        return await self._fenced(lease, **values)

    async def requeue(self, lease: Lease, *, delay_s: float, error: str | None) -> bool:
        """Back to the queue for a retry after ``delay_s`` (this attempt counts)."""
        return await self._fenced(
            lease, status=TaskStatus.queued.value, stage="retry-wait", progress=0.0, owner=None,
            lease_until=None, not_before=utcnow() + timedelta(seconds=delay_s),
            details={"last_error": error} if error else {},
        )

    async def release(self, lease: Lease) -> bool:
        """Back to the queue at once without using an attempt (this node is shutting down)."""
        return await self._fenced(lease, status=TaskStatus.queued.value, stage="requeued", progress=0.0,
                                  owner=None, lease_until=None, attempts=max(0, lease.attempt - 1))

    # -- video_url downloads: a lease on a queued task that has no input yet ----------------------
    def _waiting(self) -> ColumnElement[bool]:
        return ((TaskRow.status == TaskStatus.queued.value) & TaskRow.input_path.is_(None)
                & TaskRow.source_url.is_not(None))

    async def claim_download(self, task_id: str) -> bool:
        """Take (or renew) the download of ``task_id``: free, expired, or already ours."""
        now = utcnow()
        free = (TaskRow.owner.is_(None) | (TaskRow.owner == self.owner) | TaskRow.lease_until.is_(None)
                | (TaskRow.lease_until < now))
        async with self.store._sessions.begin() as session:
            result = await session.execute(
                update(TaskRow).where(TaskRow.id == task_id, self._waiting(), free)
                .values(owner=self.owner, lease_until=now + timedelta(seconds=self.lease_s), updated_at=now))
            return result.rowcount == 1

    async def orphaned_downloads(self) -> list[str]:
        """Downloads nobody holds: never claimed, or their node stopped renewing."""
        now = utcnow()
        async with self.store._sessions() as session:
            rows = await session.scalars(select(TaskRow.id).where(
                self._waiting(), TaskRow.owner.is_(None) | TaskRow.lease_until.is_(None) | (TaskRow.lease_until < now)))
            return list(rows.all())

    async def sweep(self, max_attempts: int) -> Reclaimed:
        """Requeue (or end) the tasks whose lease expired: their worker stopped renewing it."""
        now = utcnow()
        expired = (TaskRow.lease_until.is_(None)) | (TaskRow.lease_until < now)
        return await self._reclaim(expired, max_attempts, "the worker running it stopped (its lease expired)")

    async def recover_own(self, node: str, max_attempts: int) -> Reclaimed:
        """At start: tasks held by this node's earlier boots (or by no one) are not running any
        more; requeue them now instead of waiting for their lease to expire."""
        earlier = (TaskRow.owner.is_(None)) | (
            TaskRow.owner.startswith(f"{node}#", autoescape=True) & (TaskRow.owner != self.owner))
        async with self.store._sessions.begin() as session:  # their downloads, too
            await session.execute(update(TaskRow).where(self._waiting(), TaskRow.owner.is_not(None), earlier)
                                  .values(owner=None, lease_until=None))
        return await self._reclaim(earlier, max_attempts, "the service stopped while the task was processing")

    async def _reclaim(self, which: ColumnElement[bool], max_attempts: int, why: str) -> Reclaimed:
        now = utcnow()
        base = update(TaskRow).where(TaskRow.status == PROCESSING, which)
        gave_up = literal("gave up after ") + cast(TaskRow.attempts, String) + literal(f" attempts: {why}")
        ended_values = {"finished_at": now, "stage": None, "lease_until": None, "updated_at": now}
        async with self.store._sessions.begin() as session:
            cancelled = (await session.execute(
                base.where(TaskRow.cancel_requested.is_(True))
                .values(status=TaskStatus.cancelled.value, **ended_values).returning(TaskRow.id))).scalars().all()
            failed = (await session.execute(
                base.where(TaskRow.cancel_requested.is_not(True), TaskRow.attempts >= max_attempts)
                .values(status=TaskStatus.failed.value, error=gave_up, **ended_values)
                .returning(TaskRow.id))).scalars().all()
            requeued = (await session.execute(
                base.where(TaskRow.cancel_requested.is_not(True), TaskRow.attempts < max_attempts)
                .values(status=TaskStatus.queued.value, stage="requeued", progress=0.0, owner=None,
                        lease_until=None, updated_at=now)
                .returning(TaskRow.id))).scalars().all()
        result = Reclaimed(list(requeued), [*cancelled, *failed])
        if result.requeued or result.ended:
            LOGGER.warning("reclaimed tasks (%s): requeued %s, ended %s", why, result.requeued, result.ended)
        return result

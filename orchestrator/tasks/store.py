"""Tasks persisted with SQLAlchemy (async): SQLite by default (WAL mode), PostgreSQL by URL.

The database is the queue: a worker claims a queued task with one ``UPDATE … RETURNING`` (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL), so a task is never run by two claimers. A claim is a lease
(``owner``, ``attempts``, ``lease_until``); renewing, finishing and expiring leases live in
``orchestrator.tasks.lease``. The schema is managed by Alembic (``orchestrator.tasks.migrations``).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

LOGGER = logging.getLogger(__name__)


class TaskStatus(str, enum.Enum):
    queued = "queued"
    processing = "processing"
    finished = "finished"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATUSES = (TaskStatus.finished.value, TaskStatus.failed.value, TaskStatus.cancelled.value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class Base(DeclarativeBase):
    pass


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default=TaskStatus.queued.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)  # lease holder (node#boot)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    source_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    input_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # SHA-256 (hex) of the task's access token (orchestrator/api/access.py); NULL = key only.
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)


@dataclass(frozen=True)
class Task:
    """A detached snapshot of one row (safe to pass between coroutines and threads)."""

    id: str
    status: str
    progress: float
    stage: str | None
    error: str | None
    attempts: int
    cancel_requested: bool
    owner: str | None
    lease_until: datetime | None
    source_name: str | None
    source_url: str | None
    input_path: str | None
    output_path: str | None
    options: dict
    details: dict
    created_at: datetime
    not_before: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    token: str | None = None  # hash of the task's access token

    @classmethod
    def from_row(cls, row: TaskRow) -> "Task":
        return cls(
            id=row.id, status=row.status, progress=row.progress or 0.0, stage=row.stage,
            error=row.error, attempts=row.attempts or 0, cancel_requested=bool(row.cancel_requested),
            owner=row.owner, lease_until=_aware(row.lease_until), source_name=row.source_name, source_url=row.source_url, input_path=row.input_path,
            output_path=row.output_path, options=dict(row.options or {}),
            details=dict(row.details or {}), created_at=_aware(row.created_at),
            not_before=_aware(row.not_before), started_at=_aware(row.started_at),
            finished_at=_aware(row.finished_at), updated_at=_aware(row.updated_at), token=row.token,
        )

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def _finite(value: Any) -> Any:
    """JSON without NaN/Infinity (PostgreSQL's json type and strict clients refuse them): null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    return json.dumps(_finite(value), allow_nan=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class TaskStore:
    """All task reads and writes. Methods return detached ``Task`` snapshots."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.engine: AsyncEngine = create_async_engine(database_url, json_serializer=json_dumps,
                                                       pool_pre_ping=not database_url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def init(self) -> None:
        """Bring the schema to the newest migration and, for SQLite, create the file's directory."""
        from orchestrator.tasks.migrations import upgrade

        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        await upgrade(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- creation and reads ------------------------------------------------------------------
    async def create(
        self,
        *,
        options: dict,
        input_path: str | None,
        output_path: str,
        source_name: str | None = None,
        source_url: str | None = None,
        task_id: str | None = None,
        stage: str | None = None,
        token: str | None = None,
    ) -> Task:
        row = TaskRow(
            id=task_id or uuid.uuid4().hex, status=TaskStatus.queued.value, progress=0.0,
            stage=stage, attempts=0, cancel_requested=False, source_name=source_name,
            source_url=source_url, input_path=input_path, output_path=output_path,
            options=options, details={}, created_at=utcnow(), updated_at=utcnow(), token=token,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return Task.from_row(row)

    async def get(self, task_id: str) -> Task | None:
        async with self._sessions() as session:
            row = await session.get(TaskRow, task_id)
            return Task.from_row(row) if row else None

    async def list(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Task], int]:
        async with self._sessions() as session:
            query = select(TaskRow)
            count = select(func.count()).select_from(TaskRow)
            if status:
                query = query.where(TaskRow.status == status)
                count = count.where(TaskRow.status == status)
            rows = (await session.scalars(
                query.order_by(TaskRow.created_at.desc(), TaskRow.id).limit(limit).offset(offset)
            )).all()
            total = (await session.execute(count)).scalar_one()
            return [Task.from_row(r) for r in rows], int(total)

    async def count_by_status(self) -> dict[str, int]:
        async with self._sessions() as session:
            result = await session.execute(select(TaskRow.status, func.count()).group_by(TaskRow.status))
            return {status: int(n) for status, n in result.all()}

    # -- queue ----------------------------------------------------------------------------------
    async def claim_next(self, owner: str | None = None, lease_s: float = 30.0) -> Task | None:
        """Move the oldest runnable queued task to ``processing`` for ``owner`` in one statement
        (attempts + 1, lease until now + ``lease_s``). SQLite compiles it without the lock clause:
        its single writer makes the statement atomic anyway."""
        now = utcnow()
        runnable = (
            select(TaskRow.id)
            .where(TaskRow.status == TaskStatus.queued.value, TaskRow.input_path.is_not(None),
                   (TaskRow.not_before.is_(None)) | (TaskRow.not_before <= now))
            .order_by(TaskRow.created_at, TaskRow.id).limit(1)
            .with_for_update(skip_locked=True).scalar_subquery()
        )
        stmt = (
            update(TaskRow)
            .where(TaskRow.id == runnable, TaskRow.status == TaskStatus.queued.value)
            .values(status=TaskStatus.processing.value, attempts=TaskRow.attempts + 1, owner=owner,
                    lease_until=now + timedelta(seconds=lease_s), started_at=now, stage="starting",
                    not_before=None, updated_at=now)
            .returning(TaskRow)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            row = (await session.scalars(stmt)).one_or_none()
            return Task.from_row(row) if row is not None else None

    async def next_wakeup(self) -> datetime | None:
        """Earliest ``not_before`` among queued tasks (the worker sleeps until then at most)."""
        async with self._sessions() as session:
            value = (await session.execute(
                select(func.min(TaskRow.not_before)).where(TaskRow.status == TaskStatus.queued.value)
            )).scalar_one_or_none()
            return _aware(value)

    async def queued_ids(self, *, waiting_for_input: bool | None = None) -> list[str]:
        async with self._sessions() as session:
            query = select(TaskRow.id).where(TaskRow.status == TaskStatus.queued.value)
            if waiting_for_input is True:
                query = query.where(TaskRow.input_path.is_(None))
            elif waiting_for_input is False:
                query = query.where(TaskRow.input_path.is_not(None))
            return list((await session.scalars(query.order_by(TaskRow.created_at))).all())

    # -- updates ---------------------------------------------------------------------------------
    async def update_fields(self, task_id: str, *, only_status: tuple[str, ...] | None = None, **values: Any) -> bool:
        """Update columns of one task; with ``only_status`` only if it is in one of those states."""
        values.setdefault("updated_at", utcnow())
        stmt = update(TaskRow).where(TaskRow.id == task_id)
        if only_status:
            stmt = stmt.where(TaskRow.status.in_(only_status))
        async with self._sessions.begin() as session:
            result = await session.execute(stmt.values(**values))
            return result.rowcount == 1

    async def finish(self, task_id: str, status: TaskStatus, *, error: str | None = None,
                     details: dict | None = None, progress: float | None = None) -> bool:
        """End a task whoever holds it (downloads, admin); workers end theirs through a lease."""
        values: dict[str, Any] = {"status": status.value, "error": error, "finished_at": utcnow(), "stage": None}
        if details is not None:
            values["details"] = details
        if progress is not None:
            values["progress"] = progress
        return await self.update_fields(
            task_id, only_status=(TaskStatus.queued.value, TaskStatus.processing.value), **values
        )

    async def request_cancel(self, task_id: str) -> Task | None:
        """Queued → cancelled now; processing → flag set (the worker stops it). Returns the task."""
        now = utcnow()
        await self.update_fields(task_id, only_status=(TaskStatus.queued.value,),
                                 status=TaskStatus.cancelled.value, finished_at=now, stage=None,
                                 cancel_requested=True)
        await self.update_fields(task_id, only_status=(TaskStatus.processing.value,), cancel_requested=True)
        return await self.get(task_id)

    async def delete(self, task_id: str) -> bool:
        async with self._sessions.begin() as session:
            row = await session.get(TaskRow, task_id)
            if row is None:
                return False
            await session.delete(row)
            return True

    async def expired(self, older_than: datetime) -> list[Task]:
        """Final tasks finished before ``older_than`` that still have files to remove."""
        async with self._sessions() as session:
            rows = (await session.scalars(
                select(TaskRow).where(TaskRow.status.in_(FINAL_STATUSES), TaskRow.finished_at < older_than,
                                      (TaskRow.output_path.is_not(None)) | (TaskRow.input_path.is_not(None)))
            )).all()
            return [Task.from_row(r) for r in rows]

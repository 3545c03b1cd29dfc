"""Alembic migrations on real SQLite files: a fresh database, and one created before migrations
existed (``create_all`` of the old schema) adopted without losing rows."""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.tasks.store import Base, TaskStore


async def _columns(store: TaskStore) -> set[str]:
    async with store.engine.connect() as conn:
        return await conn.run_sync(lambda c: {col["name"] for col in sa.inspect(c).get_columns("tasks")})


async def test_fresh_database_has_every_model_column_and_the_head_revision(tmp_path):
    store = TaskStore(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    await store.init()
    assert {c.name for c in Base.metadata.tables["tasks"].columns} <= await _columns(store)
    assert {"owner", "lease_until", "token"} <= await _columns(store)
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar() == "0002"
    await store.init()  # a second start changes nothing
    await store.close()


async def test_a_database_from_before_migrations_is_adopted(tmp_path):
    path = tmp_path / "old.db"
    old = sa.create_engine(f"sqlite:///{path}")
    with old.begin() as conn:  # the table as create_all made it before leases and tokens
        conn.exec_driver_sql(
            "CREATE TABLE tasks (id VARCHAR(36) PRIMARY KEY, status VARCHAR(16), progress FLOAT, stage VARCHAR(32),"
            " error TEXT, attempts INTEGER, cancel_requested BOOLEAN, source_name VARCHAR(255), source_url TEXT,"
            " input_path TEXT, output_path TEXT, options JSON, details JSON, created_at DATETIME,"
            " not_before DATETIME, started_at DATETIME, finished_at DATETIME, updated_at DATETIME)")
        conn.exec_driver_sql(
            "INSERT INTO tasks VALUES ('t1', 'finished', 100, NULL, NULL, 1, 0, 'a.mp4', NULL, NULL, '/r/t1.mp4',"
            " '{}', '{}', '2026-01-01 00:00:00', NULL, NULL, '2026-01-01 00:01:00', '2026-01-01 00:01:00')")
    old.dispose()
    store = TaskStore(f"sqlite+aiosqlite:///{path}")
    await store.init()
    assert {"owner", "lease_until", "token"} <= await _columns(store)
    task = await store.get("t1")
    assert task.status == "finished" and task.output_path == "/r/t1.mp4" and task.owner is None
    await store.close()

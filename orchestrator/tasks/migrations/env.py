"""Alembic environment: the store passes its connection; the command line builds one from
``DATABASE_URL`` (the same settings as the service)."""

from __future__ import annotations

import asyncio

from alembic import context

from orchestrator.tasks.store import Base


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _from_settings() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from orchestrator.settings import Settings

    engine = create_async_engine(Settings.from_env().effective_database_url)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_from_settings())

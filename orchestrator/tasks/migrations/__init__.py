"""Schema migrations (Alembic), run by ``TaskStore.init`` on every start.

``upgrade(engine)`` runs the scripts under ``versions/`` on the store's own connection; on
PostgreSQL an advisory lock makes nodes that start together migrate one after the other. The
baseline adopts a database made before Alembic (``create_all``): each step adds only what is
missing. The same scripts run from the command line with
``alembic -c orchestrator/tasks/migrations/alembic.ini upgrade head`` (``DATABASE_URL`` set).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

HERE = Path(__file__).parent
LOCK_KEY = 0x50A7_0516  # pg_advisory_xact_lock key for "schema migration in progress"


def config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection, revision: str) -> None:
    from alembic import command

    command.upgrade(config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        await conn.run_sync(_upgrade, revision)

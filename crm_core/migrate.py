"""Schema migrations (Alembic) driven from code: upgrade, downgrade, "is it current"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from crm_core.db import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class SchemaBehindError(RuntimeError):
    """The database is not at the schema this code needs."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision(url: str = "sqlite://") -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (Alembic runs its own event loop)."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)


async def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def ensure_schema(url: str) -> None:
    """Embedded SQLite: upgrade automatically. PostgreSQL: refuse a database that is behind."""
    head = head_revision(url)
    current = await current_revision(url)
    if current == head:
        return
    if url.startswith("sqlite"):
        await upgrade(url)
        return
    raise SchemaBehindError(
        f"the database is at revision {current or 'none (empty)'} but this version needs "
        f"{head}; run `hwcrm db upgrade` first"
    )

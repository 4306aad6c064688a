"""Shared fixtures: a migrated database on SQLite AND on the real PostgreSQL server.

PostgreSQL comes from $HWCRM_TEST_PG_URL (default: the local server's `test` database).
Each test session works in its own schema, so parallel runs do not collide; an unreachable
server is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_core.clock import FixedClock
from crm_core.db import create_engine, create_session_factory
from crm_core.migrate import upgrade
from crm_core.models import metadata

PG_BASE_URL = os.environ.get(
    "HWCRM_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@dataclass
class Database:
    """A migrated, empty database for one test."""

    kind: str  # "sqlite" | "postgres"
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


def _with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A fresh, migrated schema on the real PostgreSQL server for this test session."""
    schema = f"hwcrm_t_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        engine = create_engine(PG_BASE_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await engine.dispose()

    async def drop() -> None:
        engine = create_engine(PG_BASE_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

    asyncio.run(create())
    url = _with_search_path(PG_BASE_URL, schema)
    try:
        asyncio.run(upgrade(url))
        yield url
    finally:
        asyncio.run(drop())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_schema_url: str
) -> AsyncIterator[Database]:
    """A migrated, empty database: once on SQLite, once on PostgreSQL.

    Both session-wide databases are requested up front: they are built with asyncio.run(),
    which must happen before this test's event loop is running.
    """
    if request.param == "sqlite":
        path = tmp_path / "hwcrm.sqlite3"
        shutil.copy(sqlite_template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = pg_schema_url
    engine = create_engine(url)
    if request.param == "postgres":
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    try:
        yield Database(request.param, url, engine, create_session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    """A session on the test database; the test decides when to commit."""
    async with db.sessions() as s:
        yield s


@pytest.fixture
def clock() -> FixedClock:
    """A clock standing at 2026-06-15 12:00 UTC."""
    return FixedClock(datetime(2026, 6, 15, 12, 0, tzinfo=UTC))

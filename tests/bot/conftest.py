"""Fixtures for bot scenario tests: a demo-seeded database on SQLite and PostgreSQL, whose
changes each test rolls back, and the real dispatcher wired to it."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiogram import Bot
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.clock import FixedClock
from crm_core.db import create_engine, unit_of_work
from crm_core.demo import DemoOptions, seed_demo
from crm_core.migrate import upgrade
from tests.conftest import PG_BASE_URL, _with_search_path

DEMO_TODAY = date(2026, 6, 15)
DEMO_CUSTOMERS = 60


async def _migrate_and_seed(url: str) -> None:
    await upgrade(url)
    engine = create_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with unit_of_work(sessions) as session:
        await seed_demo(session, DemoOptions(today=DEMO_TODAY, customers=DEMO_CUSTOMERS))
    await engine.dispose()


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "demo.sqlite3"
    asyncio.run(_migrate_and_seed(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def seeded_postgres() -> Iterator[str]:
    schema = f"hwcrm_bot_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        engine = create_engine(PG_BASE_URL)
        async with engine.begin() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    url = _with_search_path(PG_BASE_URL, schema)
    try:
        asyncio.run(_migrate_and_seed(url))
        yield url
    finally:
        asyncio.run(run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def demo_sessions(
    request: pytest.FixtureRequest, tmp_path: Path, seeded_sqlite: Path, seeded_postgres: str
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a demo-seeded database; everything a test commits is rolled back after it."""
    if request.param == "sqlite":
        path = tmp_path / "demo.sqlite3"
        shutil.copy(seeded_sqlite, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = seeded_postgres
    engine = create_engine(url)
    async with engine.connect() as connection:
        outer = await connection.begin()
        yield async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        await outer.rollback()
    await engine.dispose()


@pytest.fixture
def demo_clock() -> FixedClock:
    """The demo data's "now" (noon UTC on DEMO_TODAY)."""
    return FixedClock(datetime(DEMO_TODAY.year, DEMO_TODAY.month, DEMO_TODAY.day, 12, tzinfo=UTC))


@pytest.fixture
async def offline_bot() -> AsyncIterator[Bot]:
    from app.settings import load_settings
    from bot.fake_telegram import InProcessBotAPI
    from bot.runtime import build_bot

    bot = build_bot(load_settings(), session=InProcessBotAPI())
    yield bot

"""The same Alembic migrations run up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from app.settings import load_settings
from crm_core.db import create_engine
from crm_core.migrate import (
    SchemaBehindError,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from crm_core.models import metadata
from tests.conftest import PG_BASE_URL, _with_search_path


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def _check_up_down(url: str) -> None:
    await upgrade(url)
    assert await current_revision(url) == head_revision()
    assert await _tables(url) == set(metadata.tables)
    await downgrade(url, "base")
    assert await current_revision(url) is None
    assert await _tables(url) == set()
    await upgrade(url)
    assert await _tables(url) == set(metadata.tables)


async def test_migrations_up_and_down_on_sqlite(tmp_path: Path) -> None:
    await _check_up_down(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")


@pytest.mark.postgres
async def test_migrations_up_and_down_on_postgres() -> None:
    schema = f"hwcrm_m_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_BASE_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        await _check_up_down(_with_search_path(PG_BASE_URL, schema))
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def test_embedded_sqlite_is_brought_to_the_current_schema_by_itself(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    await upgrade(url, "base")
    await ensure_schema(url)
    assert await current_revision(url) == head_revision()


@pytest.mark.postgres
async def test_postgres_behind_is_refused_with_the_command_to_run() -> None:
    schema = f"hwcrm_e_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_BASE_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with pytest.raises(SchemaBehindError, match="hwcrm db upgrade"):
            await ensure_schema(_with_search_path(PG_BASE_URL, schema))
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def test_settings_mask_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWCRM_BOT__TOKEN", "123456:SECRET-token")
    monkeypatch.setenv("HWCRM_DB__URL", "postgresql+asyncpg://app:hunter2@db/hwcrm")
    shown = str(load_settings().redacted())
    assert "SECRET-token" not in shown and "hunter2" not in shown
    assert load_settings().bot.token is not None


def test_secret_in_config_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("bot:\n  token: '123:abc'\n", encoding="utf-8")
    monkeypatch.setenv("HWCRM_CONFIG_FILE", str(cfg))
    with pytest.raises(ValueError, match="HWCRM_BOT__TOKEN"):
        load_settings()

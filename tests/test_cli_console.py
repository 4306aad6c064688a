"""`hwcrm apikey create|list|revoke` and `hwcrm staff passwd|disable` against real databases
(the key is printed once and works on the API; a revoked key and a disabled agent stop at
once)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import typer
from sqlalchemy import select

from app import cli_console, cli_staff
from crm_core.access.models import ApiKey, ConsoleSession
from crm_core.access.service import AccessService
from crm_core.clock import SystemClock
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.staff.service import StaffService
from tests.test_cli_staff import db_url, query, run  # noqa: F401  (fixture)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    cli_staff.register(app)
    cli_console.register(app)
    return app


def in_db(url: str, work: Any) -> Any:
    async def go() -> Any:
        engine = create_engine(url)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(cli, db_url) -> None:  # noqa: F811
    result = run(
        cli,
        "apikey",
        "create",
        "--name",
        "ERP sync",
        "--scope",
        "customers:write",
        "--scope",
        "orders:write",
        "--rate-limit",
        "120",
    )
    assert result.exit_code == 0, result.output
    key = next(line for line in result.output.splitlines() if line.startswith("hwk_"))
    [row] = query(db_url, select(ApiKey))
    assert key not in (row.key_hash, row.prefix) and row.scopes == [
        "customers:write",
        "orders:write",
    ]
    assert row.rate_limit_per_minute == 120

    async def check(session: Any) -> Any:
        return await AccessService(session, SystemClock()).authenticate_key(key)

    assert in_db(db_url, check).name == "ERP sync"
    listed = run(cli, "apikey", "list")
    assert "ERP sync" in listed.output and key not in listed.output
    assert run(cli, "apikey", "revoke", str(row.id)).exit_code == 0
    assert in_db(db_url, check) is None
    assert "ERP sync" not in run(cli, "apikey", "list").output
    assert "ERP sync" in run(cli, "apikey", "list", "--all").output


def test_apikey_create_refuses_unknown_scopes(cli, db_url) -> None:  # noqa: F811
    result = run(cli, "apikey", "create", "--name", "x", "--scope", "everything")
    assert result.exit_code == 1 and "unknown scope" in result.output
    assert query(db_url, select(ApiKey)) == []


def test_staff_passwd_and_disable_end_the_console_sessions(cli, db_url, monkeypatch) -> None:  # noqa: F811
    async def setup(session: Any) -> int:
        staff = await StaffService(session, SystemClock()).add_staff("Wang Fang", "agent")
        return staff.id

    staff_id = in_db(db_url, setup)
    monkeypatch.setenv("HWCRM_STAFF_PASSWORD", "first password 1")
    result = run(cli, "staff", "passwd", str(staff_id), "--login", "wang.fang")
    assert result.exit_code == 0, result.output

    async def sign_in(session: Any) -> str | None:
        outcome = await AccessService(session, SystemClock()).login(
            "wang.fang", "first password 1", ip="127.0.0.1"
        )
        return outcome.status

    assert in_db(db_url, sign_in) == "ok"
    monkeypatch.setenv("HWCRM_STAFF_PASSWORD", "second password 2")
    assert run(cli, "staff", "passwd", str(staff_id)).exit_code == 0
    assert in_db(db_url, sign_in) == "invalid"
    assert all(s.revoked_at is not None for s in query(db_url, select(ConsoleSession)))
    result = run(cli, "staff", "disable", str(staff_id))
    assert result.exit_code == 0 and "disabled" in result.output
    monkeypatch.setenv("HWCRM_STAFF_PASSWORD", "x")
    assert run(cli, "staff", "passwd", "999").exit_code == 1

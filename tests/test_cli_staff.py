"""`hwcrm staff add/list/deactivate` and `hwcrm customer find` against real databases."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from argon2 import PasswordHasher
from sqlalchemy import select, text
from typer.testing import CliRunner

from app import cli_staff
from app.settings import CrmSection
from crm_core.audit.models import AuditEntry
from crm_core.clock import SystemClock
from crm_core.customers.schemas import CustomerCreate
from crm_core.customers.service import CustomerService
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.models import metadata
from crm_core.staff.models import StaffUser
from tests.crm.people_factories import make_order, make_product

PASSWORD = "s3cret-console-pass"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> str:
    """An empty migrated database, handed to the CLI through HWCRM_DB__URL."""
    if request.param == "sqlite":
        path = tmp_path / "cli.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_schema_url")

        async def truncate() -> None:
            engine = create_engine(url)
            tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await engine.dispose()

        asyncio.run(truncate())
    monkeypatch.setenv("HWCRM_DB__URL", url)
    monkeypatch.delenv("HWCRM_STAFF_PASSWORD", raising=False)
    return url


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    cli_staff.register(app)
    return app


def run(cli: typer.Typer, *args: str, **kwargs: object):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)  # type: ignore[arg-type]


def query(url: str, stmt):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        engine = create_engine(url)
        try:
            async with create_session_factory(engine)() as session:
                return (await session.scalars(stmt)).all()
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_staff_add_with_login_prompts_for_a_hidden_password_and_stores_a_hash(cli, db_url):
    result = run(
        cli,
        "staff", "add", "--name", "Zhang Min", "--role", "agent",
        "--telegram-id", "5001", "--login", "zhang",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added staff member #1 Zhang Min (agent, login zhang)" in result.output
    assert PASSWORD not in result.output
    (staff,) = query(db_url, select(StaffUser))
    assert staff.telegram_user_id == 5001 and staff.login == "zhang"
    assert staff.password_hash and PASSWORD not in staff.password_hash
    PasswordHasher().verify(staff.password_hash, PASSWORD)


def test_staff_add_reads_the_password_from_the_environment_for_scripts(cli, db_url, monkeypatch):
    monkeypatch.setenv("HWCRM_STAFF_PASSWORD", PASSWORD)
    result = run(cli, "staff", "add", "--name", "Ops", "--role", "admin", "--login", "ops")
    assert result.exit_code == 0, result.output
    assert "Password" not in result.output
    (staff,) = query(db_url, select(StaffUser))
    PasswordHasher().verify(staff.password_hash, PASSWORD)


def test_staff_add_errors_are_one_clean_line_with_exit_code_1(cli, db_url):
    bad_role = run(cli, "staff", "add", "--name", "X", "--role", "boss")
    assert bad_role.exit_code == 1 and "unknown role" in bad_role.output
    ok = run(cli, "staff", "add", "--name", "A", "--role", "agent", "--telegram-id", "5001")
    assert ok.exit_code == 0
    dup = run(cli, "staff", "add", "--name", "B", "--role", "agent", "--telegram-id", "5001")
    assert dup.exit_code == 1
    assert "error: Telegram user 5001 already belongs to staff member #1" in dup.output
    assert "Traceback" not in dup.output


def test_staff_list_shows_active_members_and_all_on_request(cli, db_url):
    run(cli, "staff", "add", "--name", "Alice", "--role", "agent")
    run(cli, "staff", "add", "--name", "Bob", "--role", "marketer")
    assert run(cli, "staff", "deactivate", "1").exit_code == 0
    listed = run(cli, "staff", "list")
    assert listed.exit_code == 0
    assert "Bob" in listed.output and "marketer" in listed.output and "Alice" not in listed.output
    assert "Alice" in run(cli, "staff", "list", "--all").output


def test_customer_find_shows_a_table_and_audits_the_read_as_cli(cli, db_url):
    async def seed() -> None:
        engine = create_engine(db_url)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                service = CustomerService(session, SystemClock(), CrmSection())
                dto = await service.create_customer(
                    CustomerCreate(name="Li Wei", phone="13812345678", telegram_user_id=424242)
                )
                gpu = await make_product(session)
                await make_order(
                    session, dto.id, [(gpu, 1, [])], placed_at=SystemClock().now(),
                    number="SO-10023456",
                )  # fmt: skip
        finally:
            await engine.dispose()

    asyncio.run(seed())
    for typed in ("138 1234 5678", "424242", "so-10023456"):
        result = run(cli, "customer", "find", typed)
        assert result.exit_code == 0, result.output
        assert "Li Wei" in result.output and "+8613812345678" in result.output
    reads = query(db_url, select(AuditEntry).where(AuditEntry.action == "read"))
    assert len(reads) == 3 and {r.actor for r in reads} == {"cli"}
    missing = run(cli, "customer", "find", "nobody@example.com")
    assert missing.exit_code == 1 and "no customer matches" in missing.output


def test_hwcrm_entry_point_registers_the_staff_commands(sqlite_template, tmp_path):
    path = tmp_path / "entry.sqlite3"
    shutil.copy(sqlite_template, path)
    env = {
        **os.environ,
        "HWCRM_DB__URL": f"sqlite+aiosqlite:///{path}",
        "HWCRM_STAFF_PASSWORD": PASSWORD,
    }
    added = subprocess.run(
        [sys.executable, "-m", "app.cli", "staff", "add", "--name", "Ops", "--role", "admin",
         "--login", "ops"],
        env=env, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "added staff member #1 Ops (admin, login ops)" in added.stdout
    assert PASSWORD not in added.stdout + added.stderr

"""`hwcrm campaign …` and `hwcrm rules …` end to end against real databases."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from app import cli_campaign
from crm_core.campaigns.models import CampaignDelivery
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.models import metadata
from tests.crm.people_factories import make_customer, make_order, make_product

runner = CliRunner()
SEGMENT = json.dumps({"owns": {"category": "gpu"}})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database with three GPU owners (two consenting), handed over by env."""
    if request.param == "sqlite":
        path = tmp_path / "cli.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_schema_url")

    async def prepare() -> None:
        engine = create_engine(url)
        if request.param == "postgres":
            tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        async with unit_of_work(create_session_factory(engine)) as session:
            gpu = await make_product(session, sku="GPU-1", category="gpu", name_en="RTX 4070")
            for i, (lang, consent) in enumerate([("en", True), ("zh", True), ("en", False)]):
                c = await make_customer(session, name=f"Ann {i}", telegram_user_id=7000 + i)
                c.language, c.marketing_consent = lang, consent
                placed = datetime.now(UTC) - timedelta(days=30)
                await make_order(session, c.id, [(gpu, 1, [])], placed_at=placed)
        await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("HWCRM_DB__URL", url)
    return url


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    cli_campaign.register(app)
    return app


def _count(url: str, state: str | None = None) -> int:
    async def go() -> int:
        engine = create_engine(url)
        async with engine.connect() as conn:
            query = select(func.count()).select_from(CampaignDelivery)
            if state:
                query = query.where(CampaignDelivery.state == state)
            n = int((await conn.execute(query)).scalar_one())
        await engine.dispose()
        return n

    return asyncio.run(go())


def _create(cli: typer.Typer, name: str = "PSU week") -> None:
    result = runner.invoke(
        cli,
        [
            "campaign", "create", "--name", name, "--segment", SEGMENT,
            "--text-en", "Hi {first_name}! PSU week", "--text-zh", "{first_name}，电源周",
            "--button", "看看电源|Show PSUs|compatible:psu", "--product", "GPU-1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 reachable of 3 matched" in result.output


def test_campaign_create_preview_schedule_now_report_cancel(cli: typer.Typer, db_url: str) -> None:
    _create(cli)
    result = runner.invoke(cli, ["campaign", "preview", "1"])
    assert (
        result.exit_code == 0
        and "Hi Ann! PSU week" in result.output
        and "Ann，电源周" in result.output
    )
    result = runner.invoke(cli, ["campaign", "schedule", "1", "--at", "2020-01-01 10:00"])
    assert result.exit_code == 1 and "is in the past" in result.output
    result = runner.invoke(cli, ["campaign", "schedule", "1", "--cron", "every day"])
    assert result.exit_code == 1 and "expected 5 fields" in result.output
    result = runner.invoke(cli, ["campaign", "schedule", "1", "--now"])
    assert result.exit_code == 0, result.output
    assert "2 sends queued" in result.output and _count(db_url, "queued") == 2
    result = runner.invoke(cli, ["campaign", "list"])
    assert "PSU week" in result.output and "running" in result.output
    result = runner.invoke(cli, ["campaign", "report", "PSU week"])
    assert result.exit_code == 0 and "total" in result.output
    result = runner.invoke(cli, ["campaign", "cancel", "1"])
    assert result.exit_code == 0 and "2 queued sends cancelled" in result.output
    assert _count(db_url, "cancelled") == 2
    result = runner.invoke(cli, ["campaign", "cancel", "1"])
    assert result.exit_code == 1 and "already cancelled" in result.output


def test_segment_matching_nobody_refuses_scheduling(cli: typer.Typer, db_url: str) -> None:
    result = runner.invoke(
        cli,
        ["campaign", "create", "--name", "Nobody", "--segment", '{"lifecycle_stage": "churned"}',
         "--text-en", "x", "--text-zh", "x"],
    )  # fmt: skip
    assert result.exit_code == 0 and "the segment matches no customer" in result.output
    result = runner.invoke(cli, ["campaign", "schedule", "Nobody", "--now"])
    assert (
        result.exit_code == 1
        and "schedule refused: the segment matches no customer" in result.output
    )
    assert _count(db_url) == 0


def test_unknown_variable_is_refused_with_its_name(cli: typer.Typer, db_url: str) -> None:
    result = runner.invoke(
        cli,
        ["campaign", "create", "--name", "Bad", "--segment", SEGMENT, "--text-en", "Hi {nmae}"],
    )
    assert result.exit_code == 1 and "unknown variable {nmae}" in result.output


def test_rules_list_disable_set_and_dry_run(cli: typer.Typer, db_url: str) -> None:
    result = runner.invoke(cli, ["rules", "list"])
    assert result.exit_code == 0 and "accessory" in result.output and "config.yml" in result.output
    result = runner.invoke(cli, ["rules", "disable", "accessory"])
    assert result.exit_code == 0 and "accessory: disabled" in result.output
    result = runner.invoke(cli, ["rules", "set", "post_purchase", "days_after_delivery=10"])
    assert result.exit_code == 0 and "days_after_delivery=10" in result.output
    result = runner.invoke(cli, ["rules", "set", "post_purchase", "nope=1"])
    assert result.exit_code == 1 and "unknown setting" in result.output
    result = runner.invoke(cli, ["rules", "run", "--dry-run"])
    assert result.exit_code == 0 and "dry run" in result.output and "accessory" not in result.output
    assert _count(db_url) == 0
    result = runner.invoke(cli, ["rules", "enable", "nope"])
    assert result.exit_code == 1 and "no automation rule 'nope'" in result.output

"""The APScheduler mirror with its persistent job store in the real application database
(SQLite via sqlite3, PostgreSQL via psycopg), against the campaigns test double."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.scheduler.doubles import FakeSpec, MemoryCampaigns
from bot.scheduler.engine import CampaignScheduler, latest_cron_time, sync_engine_for, trigger_for
from tests.conftest import Database


def make(campaigns: MemoryCampaigns, db: Database, table: str, **kw: object) -> CampaignScheduler:
    kw.setdefault("reconcile_interval_s", 0.3)
    return CampaignScheduler(campaigns.scope, db.url, jobs_table=table, **kw)  # type: ignore[arg-type]


@pytest.fixture
def table(db: Database) -> str:
    return f"apscheduler_jobs_{uuid.uuid4().hex[:8]}"


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert predicate(), "timed out"  # type: ignore[operator]


async def stored_jobs(db: Database, table: str) -> list[str]:
    engine = sync_engine_for(db.url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text(f"SELECT id FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


async def test_a_one_shot_campaign_fires_once_at_its_time(db: Database, table: str) -> None:
    campaigns = MemoryCampaigns()
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    campaigns.specs[1] = FakeSpec(1, one_shot_at=at, timezone="Europe/Berlin")
    scheduler = make(campaigns, db, table)
    scheduler.start()
    try:
        await wait_until(lambda: scheduler.reconciles >= 1)
        assert await stored_jobs(db, table) == ["campaign:1"]  # in the application database
        assert campaigns.occurrences == []
        await wait_until(lambda: campaigns.occurrences, timeout=10)
        assert time.time() >= at.timestamp() - 0.05
        await asyncio.sleep(1.0)  # several reconciles later: not fired again
    finally:
        scheduler.shutdown()
    assert campaigns.occurrences == [(1, at)]
    assert await stored_jobs(db, table) == []  # a fired one-shot leaves the store


async def test_jobs_survive_a_restart_and_a_time_missed_while_down_fires_on_start(
    db: Database, table: str
) -> None:
    campaigns = MemoryCampaigns()
    at = datetime.now(UTC) + timedelta(seconds=2)
    campaigns.specs[7] = FakeSpec(7, one_shot_at=at)
    first = make(campaigns, db, table)
    first.start()
    await wait_until(lambda: first.reconciles >= 1)
    first.shutdown()  # the process stops before the campaign's time
    assert await stored_jobs(db, table) == ["campaign:7"]
    await asyncio.sleep(2.5)  # ... and stays down across it
    assert campaigns.occurrences == []

    # the restart: the job is loaded from the store and fires (within misfire_grace_s)
    second = make(campaigns, db, table)
    second.start()
    try:
        await wait_until(lambda: campaigns.occurrences, timeout=10)
    finally:
        second.shutdown()
    assert campaigns.occurrences == [(7, at)]


async def test_a_recurring_time_missed_while_down_fires_from_the_persisted_job(
    db: Database, table: str
) -> None:
    campaigns = MemoryCampaigns()
    campaigns.specs[8] = FakeSpec(8, cron="0 3 * * *", timezone="UTC")  # daily 03:00 UTC
    first = make(campaigns, db, table, misfire_grace_s=2 * 86400)
    first.start()
    await wait_until(lambda: 8 in first.campaign_jobs())
    # the process is down across an occurrence: the store still says "due at 03:00"
    missed = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    if missed > datetime.now(UTC):
        missed -= timedelta(days=1)
    assert first.scheduler is not None
    first.scheduler.pause()  # (so that this process does not run it before it stops)
    first.scheduler.modify_job("campaign:8", jobstore="default", next_run_time=missed)
    first.shutdown()
    second = make(campaigns, db, table, misfire_grace_s=2 * 86400)
    second.start()
    try:
        await wait_until(lambda: campaigns.occurrences, timeout=10)
        job = second.campaign_jobs()[8]
        assert job.next_run_time > datetime.now(UTC)  # then on to the next 03:00
    finally:
        second.shutdown()
    assert campaigns.occurrences == [(8, missed)]  # the occurrence it stands for, once


async def test_a_campaign_scheduled_elsewhere_is_picked_up_within_seconds_and_cancel_drops_it(
    db: Database, table: str
) -> None:
    campaigns = MemoryCampaigns()
    scheduler = make(campaigns, db, table)
    scheduler.start()
    try:
        await wait_until(lambda: scheduler.reconciles >= 1)
        assert scheduler.campaign_jobs() == {}
        # the CLI (another process) schedules a recurring campaign
        campaigns.specs[3] = FakeSpec(3, cron="0 10 * * 1", timezone="Asia/Shanghai")
        started = time.monotonic()
        await wait_until(lambda: 3 in scheduler.campaign_jobs())
        assert time.monotonic() - started < 2.0
        job = scheduler.campaign_jobs()[3]
        local = job.next_run_time.astimezone(trigger_for(campaigns.specs[3], "UTC").timezone)
        assert (local.weekday(), local.hour, local.minute) == (0, 10, 0)  # Monday 10:00 local
        # rescheduled to another time: the job is replaced
        campaigns.specs[3] = FakeSpec(3, cron="30 9 * * *", timezone="Asia/Shanghai")
        await wait_until(lambda: scheduler.campaign_jobs()[3].next_run_time.minute == 30)
        # cancelled: gone from the store within a reconcile
        del campaigns.specs[3]
        await wait_until(lambda: 3 not in scheduler.campaign_jobs())
    finally:
        scheduler.shutdown()
    assert await stored_jobs(db, table) == []


async def test_an_unchanged_campaign_keeps_its_persisted_job(db: Database, table: str) -> None:
    campaigns = MemoryCampaigns()
    campaigns.specs[4] = FakeSpec(4, cron="0 10 * * *", timezone="UTC")
    scheduler = make(campaigns, db, table)
    scheduler.start()
    try:
        await wait_until(lambda: scheduler.reconciles >= 3)
    finally:
        scheduler.shutdown()
    restarted = make(campaigns, db, table)
    restarted.start()
    try:
        await wait_until(lambda: restarted.reconciles >= 2)
        assert list(restarted.campaign_jobs()) == [4]
    finally:
        restarted.shutdown()


async def test_a_bad_cron_expression_does_not_stop_the_other_campaigns(
    db: Database, table: str
) -> None:
    campaigns = MemoryCampaigns()
    campaigns.specs[1] = FakeSpec(1, cron="every tuesday", timezone="UTC")
    campaigns.specs[2] = FakeSpec(2, cron="0 10 * * *", timezone="UTC")
    scheduler = make(campaigns, db, table)
    scheduler.start()
    try:
        await wait_until(lambda: 2 in scheduler.campaign_jobs())
        assert 1 not in scheduler.campaign_jobs()
    finally:
        scheduler.shutdown()


async def test_rules_run_periodically(db: Database, table: str) -> None:
    campaigns = MemoryCampaigns()
    scheduler = make(campaigns, db, table, rules_interval_s=0.3)
    scheduler.start()
    try:
        await wait_until(lambda: len(campaigns.rule_runs) >= 2)
    finally:
        scheduler.shutdown()


def test_a_late_cron_firing_stands_for_its_latest_time_in_the_campaigns_zone() -> None:
    now = datetime(2026, 6, 15, 12, 7, 30, tzinfo=UTC)  # 20:07:30 in Shanghai
    # daily at 20:00 Shanghai = 12:00 UTC; fired 7.5 minutes late after a restart
    assert latest_cron_time("0 20 * * *", "Asia/Shanghai", now, timedelta(hours=1)) == datetime(
        2026, 6, 15, 12, 0, tzinfo=UTC
    )
    # every 5 minutes, down for 20: the missed times coalesce into the latest
    assert latest_cron_time("*/5 * * * *", "UTC", now, timedelta(hours=1)) == datetime(
        2026, 6, 15, 12, 5, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "weekday"),
    [("0 10 * * 1", 0), ("0 10 * * mon", 0), ("0 10 * * 0", 6), ("0 10 * * 7", 6)],
)
def test_cron_weekdays_mean_what_they_mean_in_crontab(expression: str, weekday: int) -> None:
    """APScheduler 3 alone would read "1" as Tuesday."""
    from zoneinfo import ZoneInfo

    from bot.scheduler.engine import cron_trigger

    after = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # a Monday
    fire = cron_trigger(expression, ZoneInfo("UTC")).get_next_fire_time(None, after)
    assert fire is not None and fire.weekday() == weekday and fire.hour == 10

"""The whole engine on the real domain: a marketer schedules a campaign (CampaignService, as
the CLI does, in its own transaction), the leader's scheduler picks it up, enqueues the
occurrence at its time, and the sender delivers it through aiogram to the fake Bot API
server. Cancelling stops the queued sends within seconds. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from app.settings import Settings
from bot.i18n import Translator
from bot.ratelimit import MemoryBucketStore, RateLimitConfig, RateLimiter
from bot.runtime import OFFLINE_TOKEN, build_bot
from bot.scheduler.runner import build_engine
from crm_core.campaigns.service import CampaignCreate, CampaignService
from crm_core.clock import SystemClock
from crm_core.db import unit_of_work
from tests.bot.fake_bot_api_server import FakeBotAPIServer
from tests.conftest import Database
from tests.crm.people_factories import make_customer
from tests.delivery.seed import delivery_states
from tests.delivery.test_sender_real import engine_settings

TEXTS = Translator()


def settings_for(db: Database, api: FakeBotAPIServer, table: str) -> Settings:
    settings = engine_settings(api.base_url)
    settings.db.url = db.url
    settings.scheduler.jobs_table = table
    settings.scheduler.reconcile_interval_s = 0.5
    settings.scheduler.rules_interval_s = 3600
    settings.scheduler.poll_interval_s = 0.1
    settings.scheduler.retry_base_s = 0
    return settings


async def customers(db: Database, count: int, first: int = 7_100_000) -> None:
    async with unit_of_work(db.sessions) as session:
        for n in range(count):
            customer = await make_customer(session, name=f"Mia {n}", telegram_user_id=first + n)
            customer.marketing_consent = True
            customer.timezone = "UTC"
            customer.tags = ["e2e"]


async def create_and_schedule(db: Database, settings: Settings, at: datetime) -> int:
    async with unit_of_work(db.sessions) as session:  # the marketer's CLI transaction
        service = CampaignService(session, SystemClock(), settings.campaigns, TEXTS, settings.crm)
        campaign = await service.create(
            CampaignCreate(
                name=f"e2e {time.time_ns()}",
                segment={"tag": "e2e"},
                variants=[{"label": "A", "text": {"en": "Hi <b>{first_name}</b>, PSUs!"}}],
            )
        )
        await service.schedule(campaign.id, at=at)
        return campaign.id


def received(api: FakeBotAPIServer) -> Counter[int]:
    return Counter(
        c.chat_id for c in api.calls if c.method == "sendMessage" and isinstance(c.result, dict)
    )


async def run_engine(db: Database, settings: Settings, limiter: RateLimiter) -> Any:
    bot = build_bot(settings)
    engine = build_engine(settings, db.sessions, SystemClock(), bot, limiter)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    return engine, bot, stop, task


async def test_a_scheduled_campaign_arrives_at_its_time_once_per_customer(db: Database) -> None:
    await customers(db, 5)
    async with FakeBotAPIServer(OFFLINE_TOKEN) as api:
        settings = settings_for(db, api, f"jobs_e2e_{time.time_ns() % 10**8}")
        limiter = RateLimiter(MemoryBucketStore(), RateLimitConfig(per_chat_interval_s=1))
        engine, bot, stop, task = await run_engine(db, settings, limiter)
        try:
            at = datetime.now(UTC) + timedelta(seconds=3)
            await create_and_schedule(db, settings, at)  # while the engine runs
            deadline = time.monotonic() + 60
            while sum(received(api).values()) < 5 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            first = min(c.at for c in api.calls if c.method == "sendMessage")
            await asyncio.sleep(2.0)  # reconciles later: nothing more
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await bot.session.close()
        assert sorted(received(api)) == list(range(7_100_000, 7_100_005))
        assert max(received(api).values()) == 1
        assert time.time() - (time.monotonic() - first) >= at.timestamp() - 0.5  # not early
        assert engine.is_leader is False and engine.terms == 1
        assert dict(await delivery_states(db.sessions)) == {"sent": 5}
        text = next(c.text for c in api.calls if c.method == "sendMessage")
        assert "Mia" in text and "PSUs" in text  # rendered from the template


async def test_cancel_stops_every_queued_send_within_seconds(db: Database) -> None:
    await customers(db, 40)
    async with FakeBotAPIServer(OFFLINE_TOKEN) as api:
        settings = settings_for(db, api, f"jobs_e2e_{time.time_ns() % 10**8}")
        # 5 pushes/s: the campaign takes 8 s, we cancel after the first few
        limiter = RateLimiter(
            MemoryBucketStore(), RateLimitConfig(rate_per_s=5, burst=2, reply_reserve=1)
        )
        settings.scheduler.concurrency = 2
        settings.scheduler.claim_batch = 2
        _, bot, stop, task = await run_engine(db, settings, limiter)
        try:
            campaign_id = await create_and_schedule(
                db, settings, datetime.now(UTC) + timedelta(seconds=2)
            )
            deadline = time.monotonic() + 60
            while sum(received(api).values()) < 5 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            async with unit_of_work(db.sessions) as session:
                service = CampaignService(
                    session, SystemClock(), settings.campaigns, TEXTS, settings.crm
                )
                await service.cancel(campaign_id)
            cancelled_at = time.monotonic()
            await asyncio.sleep(3.0)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await bot.session.close()
        after = [c for c in api.calls if c.method == "sendMessage" and c.at > cancelled_at + 1.0]
        assert after == []  # at most the pushes already in flight went out after the cancel
        states = await delivery_states(db.sessions)
        assert states.get("sent", 0) <= 5 + settings.scheduler.concurrency
        assert states.get("sent", 0) + states.get("cancelled", 0) == 40
        assert max(received(api).values()) == 1

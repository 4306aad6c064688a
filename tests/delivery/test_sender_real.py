"""The sender on the real `DeliveryService` (SQLite and PostgreSQL) and the real aiogram
`Bot` over HTTP to the fake Bot API server, which records every message it received.

Quiet hours are switched off here (`00:00`-`00:00`): the domain's own tests cover them, and
these run on the wall clock."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from app.settings import Settings, load_settings
from bot.ratelimit import MemoryBucketStore, RateLimitConfig, RateLimiter
from bot.runtime import OFFLINE_TOKEN, build_bot
from bot.scheduler.sender import Sender, bot_sender
from bot.scheduler.wiring import delivery_scope
from crm_core.campaigns.models import CampaignDelivery
from crm_core.campaigns.repository import insert_deliveries
from crm_core.clock import SystemClock
from crm_core.customers.models import Customer
from crm_core.db import create_engine, create_session_factory
from tests.bot.fake_bot_api_server import FakeBotAPIServer
from tests.conftest import Database
from tests.delivery.seed import FIRST_CHAT, delivery_states, past, seed_campaign


def engine_settings(api_base_url: str) -> Settings:
    settings = load_settings()
    settings.bot.api_base_url = api_base_url
    settings.campaigns.quiet_hours_start = "00:00"
    settings.campaigns.quiet_hours_end = "00:00"
    settings.campaigns.max_attempts = 3
    return settings


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPIServer]:
    async with FakeBotAPIServer(OFFLINE_TOKEN) as server:
        yield server


def pushes_received(api: FakeBotAPIServer) -> Counter[int]:
    """Successful sendMessage calls per chat, by the fake server's own record."""
    return Counter(
        c.chat_id for c in api.calls if c.method == "sendMessage" and isinstance(c.result, dict)
    )


async def run_sender(
    db: Database,
    api: FakeBotAPIServer,
    done: Any,
    *,
    limiter: RateLimiter | None = None,
    timeout: float = 30,
    scope: Any = None,
    **kw: Any,
) -> Sender:
    settings = engine_settings(api.base_url)
    bot = build_bot(settings)
    kw.setdefault("poll_interval_s", 0.05)
    kw.setdefault("retry_base_s", 0.0)
    sender = Sender(
        scope or delivery_scope(db.sessions, SystemClock(), settings),
        bot_sender(bot),
        limiter or RateLimiter(MemoryBucketStore(), RateLimitConfig(0, per_chat_interval_s=0)),
        worker="test-sender",
        **kw,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not await done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await bot.session.close()
    assert await done(), f"not done in {timeout}s: {await delivery_states(db.sessions)}"
    return sender


def all_in(db: Database, **expected: int) -> Any:
    async def check() -> bool:
        return dict(await delivery_states(db.sessions)) == expected

    return check


async def test_every_queued_push_arrives_once_as_html_with_its_buttons(
    db: Database, api: FakeBotAPIServer
) -> None:
    await seed_campaign(db.sessions, 40, due_at=past())
    await run_sender(db, api, all_in(db, sent=40), concurrency=8)
    received = pushes_received(api)
    assert set(received) == set(range(FIRST_CHAT, FIRST_CHAT + 40))
    assert max(received.values()) == 1
    call = next(c for c in api.calls if c.method == "sendMessage")
    assert call.params["parse_mode"] == "HTML"
    async with db.sessions() as session:
        row = await session.scalar(
            select(CampaignDelivery).where(CampaignDelivery.chat_id == call.chat_id)
        )
        assert row is not None and row.telegram_message_id == call.result["message_id"]
    button = call.params["reply_markup"]["inline_keyboard"][0][0]
    assert button["callback_data"] == f"cmp:u:{row.id}"  # the row's own id, filled at claim


async def test_a_customer_who_blocked_the_bot_is_marked_unreachable_and_gets_nothing_more(
    db: Database, api: FakeBotAPIServer
) -> None:
    await seed_campaign(db.sessions, 1, due_at=past())
    api.fail_next("sendMessage", 403)
    await run_sender(db, api, all_in(db, blocked=1))
    async with db.sessions() as session:
        customer = await session.scalar(
            select(Customer).where(Customer.telegram_user_id == FIRST_CHAT)
        )
        assert customer is not None and "blocked_bot" in customer.tags
    # a later push to the same customer is blocked at claim time: never sent
    async with db.sessions() as session:
        first = await session.scalar(select(CampaignDelivery))
        assert first is not None
        await insert_deliveries(
            session,
            [
                {
                    "occurrence_key": "campaign:999:later",
                    "customer_id": customer.id,
                    "chat_id": FIRST_CHAT,
                    "kind": "marketing",
                    "language": "en",
                    "state": "queued",
                    "due_at": past(),
                    "attempts": 0,
                    "text": "again",
                    "buttons": [],
                    "product_ids": [],
                }
            ],
        )
        await session.commit()
    await run_sender(db, api, all_in(db, blocked=2))
    async with db.sessions() as session:
        later = await session.scalar(
            select(CampaignDelivery).where(CampaignDelivery.occurrence_key == "campaign:999:later")
        )
        assert later is not None and later.reason == "unreachable"
    assert [c.method for c in api.calls].count("sendMessage") == 1


async def test_a_429_storm_pauses_the_sender_and_every_push_still_arrives_once(
    db: Database, api: FakeBotAPIServer
) -> None:
    await seed_campaign(db.sessions, 12, due_at=past())
    api.fail_next("sendMessage", 429, retry_after=1, times=4)
    started = time.monotonic()
    sender = await run_sender(db, api, all_in(db, sent=12), concurrency=3, claim_batch=3)
    received = pushes_received(api)
    assert max(received.values()) == 1 and len(received) == 12
    assert sender.stats.rate_limited >= 1 and sender.stats.released >= 1
    # after a 429 no new request went out until retry_after had passed (requests already on
    # the wire when the 429 came back arrive within a few milliseconds of it)
    attempts = [c.at for c in api.calls if c.method == "sendMessage"]
    limited = [c.at for c in api.calls if c.method == "sendMessage" and c.result is not None
               and not isinstance(c.result, dict)]  # fmt: skip
    assert limited
    for at in limited:
        assert not [t for t in attempts if at + 0.1 < t < at + 0.95]
    assert time.monotonic() - started >= 1.0
    async with db.sessions() as session:  # a 429 is not an attempt
        attempts_counted = await session.scalars(select(CampaignDelivery.attempts))
        assert set(attempts_counted) == {0}


async def test_server_errors_are_retried_then_failed_with_the_error(
    db: Database, api: FakeBotAPIServer
) -> None:
    await seed_campaign(db.sessions, 1, due_at=past())
    api.fail_next("sendMessage", 500, "Internal Server Error", times=5)
    await run_sender(db, api, all_in(db, failed=1))
    async with db.sessions() as session:
        row = await session.scalar(select(CampaignDelivery))
        assert row is not None and row.attempts == 3  # campaigns.max_attempts
        assert "Internal Server Error" in (row.reason or "")
    assert [c.method for c in api.calls].count("sendMessage") == 3


async def test_a_transient_error_then_success_is_sent_once(
    db: Database, api: FakeBotAPIServer
) -> None:
    await seed_campaign(db.sessions, 2, due_at=past())
    api.fail_next("sendMessage", 502, "Bad Gateway")
    await run_sender(db, api, all_in(db, sent=2), concurrency=1, claim_batch=1)
    assert max(pushes_received(api).values()) == 1


async def test_the_sender_backs_off_while_the_database_is_unreachable_then_resumes(
    db: Database, api: FakeBotAPIServer, tmp_path: Any
) -> None:
    """The sessions point at a database that refuses connections (a closed connection on
    SQLite: a file that cannot be opened), then at the real one again."""
    await seed_campaign(db.sessions, 10, due_at=past())
    settings = engine_settings(api.base_url)
    if db.kind == "postgres":
        dead_url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    else:
        dead_url = f"sqlite+aiosqlite:///{tmp_path}/missing-dir/x/y.sqlite3"
    dead_engine = create_engine(dead_url)
    if db.kind == "sqlite":
        dead_engine.sync_engine.dispose()
    dead = delivery_scope(create_session_factory(dead_engine), SystemClock(), settings)
    live = delivery_scope(db.sessions, SystemClock(), settings)
    down_until = time.monotonic() + 1.5

    def scope() -> Any:
        return dead() if time.monotonic() < down_until else live()

    try:
        sender = await run_sender(
            db, api, all_in(db, sent=10), scope=scope, db_backoff_max_s=0.4, timeout=30
        )
    finally:
        await dead_engine.dispose()
    assert sender.stats.db_errors >= 2
    assert max(pushes_received(api).values()) == 1


async def test_the_global_limit_holds_pushes_to_the_rate(
    db: Database, api: FakeBotAPIServer
) -> None:
    await seed_campaign(db.sessions, 60, due_at=past())
    limiter = RateLimiter(
        MemoryBucketStore(),
        RateLimitConfig(rate_per_s=20, burst=4, reply_reserve=2, per_chat_interval_s=1),
    )
    started = time.monotonic()

    async def some_sent() -> bool:
        return (await delivery_states(db.sessions)).get("sent", 0) >= 40

    await run_sender(db, api, some_sent, limiter=limiter, concurrency=8)
    elapsed = time.monotonic() - started
    times = sorted(c.at for c in api.calls if c.method == "sendMessage")
    for start in times:  # no second holds more than the rate (+ the burst above the reserve)
        assert sum(1 for t in times if start <= t < start + 1.0) <= 20 + 2
    assert elapsed >= (40 - 2) / 20 * 0.9

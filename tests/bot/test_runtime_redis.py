"""Production mode (`bot.fsm_storage: redis`) against the local Redis server.

Two dispatchers on one database and one Redis stand for two bot workers behind a load
balancer: FSM state, update de-duplication, anti-flood counters and the per-chat lock are
shared. Every test writes under its own key prefix and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.bot.test_runtime import Probe, Rig, make_rig
from tests.conftest import Database

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"hwcrm-test:{uuid.uuid4().hex[:10]}"
    yield name
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"{name}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def workers(db: Database, clock: Any, prefix: str, **options: Any) -> tuple[Rig, Rig]:
    probe = Probe()  # both workers record into one probe
    one = make_rig(db, clock, fsm_storage="redis", probe=probe, redis_prefix=prefix, **options)
    two = make_rig(db, clock, fsm_storage="redis", probe=probe, redis_prefix=prefix, **options)
    two.api = one.api  # one Telegram
    two.bot = one.bot
    two.updates = one.updates  # one sequence of update ids
    return one, two


async def test_redis_is_used_for_fsm_state_shared_by_every_worker(
    db: Database, clock: Any, prefix: str
) -> None:
    one, two = workers(db, clock, prefix)
    await one.send(7001, "/remember GPU SN7F3K9Q2L1M")
    calls = await two.send(7001, "/recall")
    assert calls[-1].text == "you said: GPU SN7F3K9Q2L1M"
    redis = Redis.from_url(REDIS_URL)
    assert [key async for key in redis.scan_iter(f"{prefix}:fsm:*")]
    await redis.aclose()


async def test_an_update_redelivered_to_another_worker_is_dropped(
    db: Database, clock: Any, prefix: str
) -> None:
    one, two = workers(db, clock, prefix)
    update = one.updates.message(one.updates.user(7002), "/echo once", update_id=424242)
    assert len(await one.feed(update)) == 1
    assert await two.feed(update) == []
    assert one.probe.seen == ["/echo once"]
    assert two.dp.runtime.gate.duplicates == 1


async def test_the_per_chat_lock_holds_across_workers(
    db: Database, clock: Any, prefix: str
) -> None:
    if db.kind == "sqlite":
        pytest.skip("two workers on one SQLite file: production runs PostgreSQL")
    one, two = workers(db, clock, prefix)
    user = one.updates.user(7003)
    first = asyncio.create_task(one.feed(one.updates.message(user, "/nap 0.3 r1")))
    await asyncio.sleep(0.05)  # worker one holds the chat's Redis lock
    second = asyncio.create_task(two.feed(two.updates.message(user, "/nap 0 r2")))
    other = asyncio.create_task(two.feed(two.updates.message(one.updates.user(7004), "/nap 0 x")))
    await asyncio.gather(first, second, other)
    assert one.probe.seen == ["x", "r1", "r2"]  # r2 waited for r1; another chat did not


async def test_anti_flood_counters_are_shared_by_the_workers(
    db: Database, clock: Any, prefix: str
) -> None:
    one, two = workers(db, clock, prefix, throttle_messages=3, throttle_window_s=3600)
    for i in range(5):
        await (one if i % 2 == 0 else two).send(7005, f"/echo {i}")
    assert one.probe.seen == ["/echo 0", "/echo 1", "/echo 2"]
    notices = [c.text for c in one.api.sent_to(7005) if c.text.startswith("You're sending")]
    assert len(notices) == 1

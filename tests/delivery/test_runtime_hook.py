"""The bot's own replies take their tokens from the shared bucket (the session middleware),
and a campaign sending at full speed through the same bucket never makes them wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.ratelimit import MemoryBucketStore, RedisBucketStore
from bot.scheduler.doubles import MemoryDeliveries
from bot.scheduler.sender import Sender
from tests.bot.test_runtime import make_rig
from tests.conftest import Database


async def test_every_reply_of_the_bot_takes_a_token_from_the_bucket(
    db: Database, clock: Any
) -> None:
    rig = make_rig(db, clock)
    ratelimit = rig.dp.runtime.ratelimit
    assert ratelimit is not None and isinstance(ratelimit.limiter.store, MemoryBucketStore)
    calls = await rig.send(7001, "/start")
    sent = [c for c in calls if c.method in ("sendMessage", "sendPhoto", "copyMessage")]
    assert sent and ratelimit.limiter.replies == len(sent)


async def test_with_redis_the_bucket_is_shared_in_redis(db: Database, clock: Any) -> None:
    rig = make_rig(db, clock, fsm_storage="redis")
    ratelimit = rig.dp.runtime.ratelimit
    assert ratelimit is not None and isinstance(ratelimit.limiter.store, RedisBucketStore)
    await rig.dp.storage.close()


async def test_replies_are_not_slowed_by_a_campaign_saturating_the_bucket(
    db: Database, clock: Any
) -> None:
    rig = make_rig(db, clock)
    ratelimit = rig.dp.runtime.ratelimit
    assert ratelimit is not None
    limiter = ratelimit.limiter
    rows = MemoryDeliveries()
    for chat in range(1, 400):
        rows.add(100_000 + chat)

    async def telegram(push: Any) -> int:
        return 1

    sender = Sender(rows.scope, telegram, limiter, worker="t", concurrency=8, poll_interval_s=0.02)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await asyncio.sleep(1.0)  # the campaign drains the bucket down to the reply reserve
    waits = []
    for n in range(5):
        started = time.monotonic()
        await rig.send(7100 + n, "/start")
        waits.append(time.monotonic() - started)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sender.stats.sent >= 25  # the campaign was really using the 30/s
    assert limiter.push_waits > 0
    assert max(waits) < 2.0  # answered as without a campaign (no token wait at all)
    assert limiter.replies >= 5

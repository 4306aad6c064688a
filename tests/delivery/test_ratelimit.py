"""The one outbound rate limit, in-process and in the real Redis (same algorithm, same tests).

Times are real (the Redis script uses the server's clock), so the limits are set high and
the windows short to keep the tests quick; every Redis test writes under its own prefix.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.ratelimit import (
    MemoryBucketStore,
    RateLimitConfig,
    RateLimiter,
    RateLimitMiddleware,
    RedisBucketStore,
)
from tests.bot.fake_bot_api_server import FakeBotAPIServer

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    name = f"hwcrm-test-rl:{uuid.uuid4().hex[:10]}"
    yield name
    keys = [key async for key in redis.scan_iter(f"{name}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest, redis: Redis, prefix: str):  # type: ignore[no-untyped-def]
    """A factory of limiters sharing one bucket (one process in memory; Redis: any number)."""
    memory = MemoryBucketStore()

    def make(config: RateLimitConfig) -> RateLimiter:
        if request.param == "memory":
            return RateLimiter(memory, config)
        return RateLimiter(RedisBucketStore(redis, prefix), config)

    make.kind = request.param  # type: ignore[attr-defined]
    return make


async def _pushes_for(limiter: RateLimiter, seconds: float, chats: int = 10_000) -> list[float]:
    """Push as fast as the limiter lets 4 concurrent senders, to distinct chats; send times."""
    sent: list[float] = []
    stop = time.monotonic() + seconds
    counter = iter(range(chats))

    async def sender() -> None:
        while time.monotonic() < stop:
            await limiter.acquire_push(next(counter))
            sent.append(time.monotonic())

    await asyncio.gather(*(sender() for _ in range(4)))
    return [t for t in sent if t <= stop]


async def test_pushes_are_held_to_the_global_rate_and_use_all_of_it(make_limiter) -> None:  # type: ignore[no-untyped-def]
    config = RateLimitConfig(rate_per_s=100, burst=5, reply_reserve=3, per_chat_interval_s=0)
    sent = await _pushes_for(make_limiter(config), 2.0)
    # the bucket starts with burst - reserve usable tokens, then refills at 100/s
    assert len(sent) <= 100 * 2.0 + 2 + 1
    assert len(sent) >= 0.95 * 100 * 2.0
    # no second of it holds more than the rate (+ the initial burst above the reserve)
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 1.0) <= 100 + 2 + 1


async def test_two_limiters_on_one_redis_share_one_bucket(redis: Redis, prefix: str) -> None:
    config = RateLimitConfig(rate_per_s=60, burst=5, reply_reserve=3, per_chat_interval_s=0)
    one = RateLimiter(RedisBucketStore(redis, prefix), config)
    other_client = Redis.from_url(REDIS_URL)  # a second "process" with its own connection
    two = RateLimiter(RedisBucketStore(other_client, prefix), config)
    try:
        both = await asyncio.gather(_pushes_for(one, 1.5), _pushes_for(two, 1.5))
    finally:
        await other_client.aclose()
    total = len(both[0]) + len(both[1])
    assert total <= 60 * 1.5 + 3
    assert total >= 0.9 * 60 * 1.5
    assert both[0] and both[1]  # both got a share


async def test_one_chat_gets_at_most_one_push_per_interval(make_limiter) -> None:  # type: ignore[no-untyped-def]
    config = RateLimitConfig(rate_per_s=1000, burst=10, reply_reserve=3, per_chat_interval_s=0.2)
    limiter = make_limiter(config)
    times: list[float] = []

    async def push(chat: int) -> None:
        await limiter.acquire_push(chat)
        times.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(push(7) for _ in range(5)))
    times.sort()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.2 - 0.02  # timer resolution
    # other chats are not held up by chat 7
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire_push(100 + n) for n in range(5)))
    assert time.monotonic() - started < 0.1


async def test_replies_never_wait_and_pushes_wait_for_the_debt_they_left(make_limiter) -> None:  # type: ignore[no-untyped-def]
    config = RateLimitConfig(rate_per_s=50, burst=5, reply_reserve=3, per_chat_interval_s=0)
    limiter = make_limiter(config)
    started = time.monotonic()
    for n in range(30):  # a burst of replies far beyond the bucket
        await limiter.note_reply(5000 + n)
    assert time.monotonic() - started < 0.5  # no reply waited for a token
    # the bucket is now 25 tokens in debt; a push needs reserve + 1 = 4 → (25 + 4) / 50 s
    started = time.monotonic()
    await limiter.acquire_push(1)
    waited = time.monotonic() - started
    assert 0.45 <= waited <= 0.9


async def test_a_reply_to_a_chat_holds_pushes_to_that_chat_but_is_never_held(make_limiter) -> None:  # type: ignore[no-untyped-def]
    config = RateLimitConfig(rate_per_s=1000, burst=10, reply_reserve=3, per_chat_interval_s=0.3)
    limiter = make_limiter(config)
    await limiter.acquire_push(42)
    started = time.monotonic()
    await limiter.note_reply(42)  # the customer writes right after a push: answered at once
    await limiter.note_reply(42)
    assert time.monotonic() - started < 0.1
    started = time.monotonic()
    await limiter.acquire_push(42)
    assert time.monotonic() - started >= 0.3 - 0.02


async def test_replies_keep_going_while_a_campaign_saturates_the_bucket(make_limiter) -> None:  # type: ignore[no-untyped-def]
    """Replies-before-pushes: pushes at full speed leave the reserve, replies take it."""
    config = RateLimitConfig(rate_per_s=40, burst=6, reply_reserve=4, per_chat_interval_s=0)
    limiter = make_limiter(config)
    stop = time.monotonic() + 1.5
    reply_waits: list[float] = []

    async def campaign() -> None:
        n = 0
        while time.monotonic() < stop:
            await limiter.acquire_push(n)
            n += 1

    async def customers() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            await limiter.note_reply(999)
            reply_waits.append(time.monotonic() - started)
            await asyncio.sleep(0.1)

    await asyncio.gather(*(campaign() for _ in range(3)), customers())
    assert reply_waits and max(reply_waits) < 0.05
    assert limiter.pushes <= 40 * 1.5 + 2 + 1 - 1  # replies' tokens came out of the same bucket


async def test_a_429_pause_holds_every_sender_sharing_the_bucket(make_limiter) -> None:  # type: ignore[no-untyped-def]
    config = RateLimitConfig(rate_per_s=1000, burst=10, reply_reserve=3, per_chat_interval_s=0)
    one, two = make_limiter(config), make_limiter(config)
    await one.pause_pushes(0.4)
    started = time.monotonic()
    await two.acquire_push(1)
    assert time.monotonic() - started >= 0.35
    # a shorter pause never cuts a longer one short
    await one.pause_pushes(0.4)
    await two.pause_pushes(0.05)
    started = time.monotonic()
    await one.acquire_push(2)
    assert time.monotonic() - started >= 0.35


async def test_lifted_limits_take_no_time_and_no_store() -> None:
    class Exploding:
        async def take(self, *args: object) -> float:
            raise AssertionError("the store is not used when the limits are lifted")

        async def pause(self, seconds: float) -> None:  # pragma: no cover
            pass

    limiter = RateLimiter(Exploding(), RateLimitConfig(rate_per_s=0, per_chat_interval_s=0))  # type: ignore[arg-type]
    for n in range(1000):
        await limiter.acquire_push(n)
        await limiter.note_reply(n)
    assert limiter.pushes == 1000


async def test_redis_down_replies_still_go_and_pushes_wait(prefix: str) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = RateLimiter(RedisBucketStore(dead, prefix), RateLimitConfig(), error_backoff_s=0.05)
    try:
        await limiter.note_reply(1)  # no exception: the customer is answered
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(limiter.acquire_push(1), 0.5)
        assert limiter.pushes == 0
    finally:
        await dead.aclose()


def test_a_burst_that_leaves_pushes_no_token_is_refused() -> None:
    with pytest.raises(ValueError, match="reply_reserve"):
        RateLimitConfig(rate_per_s=30, burst=3, reply_reserve=3)


async def test_the_bot_session_middleware_counts_every_reply_but_not_pushes() -> None:
    from aiogram.methods import SendMessage

    from app.settings import load_settings
    from bot.runtime import OFFLINE_TOKEN, build_bot

    async with FakeBotAPIServer(OFFLINE_TOKEN) as api:
        settings = load_settings()
        settings.bot.api_base_url = api.base_url
        bot = build_bot(settings)
        store = MemoryBucketStore()
        limiter = RateLimiter(store, RateLimitConfig(rate_per_s=30, per_chat_interval_s=1))
        bot.session.middleware(RateLimitMiddleware(limiter))
        try:
            await bot.send_message(77, "an answer")
            await bot.send_message(77, "and an offer")
            await bot.get_me()  # not a message
            # the sender's path: the raw session call, its token taken by the sender itself
            await bot.session.make_request(bot, SendMessage(chat_id=78, text="a push"))
        finally:
            await bot.session.close()
        assert limiter.replies == 2
        assert "77" in store.chat_free_at and "78" not in store.chat_free_at
        assert [c.method for c in api.calls].count("sendMessage") == 3

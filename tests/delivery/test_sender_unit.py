"""The sender's state machine against the domain's test double and a scripted Telegram
(unit tests; the real services, aiogram and the fake Bot API server are in test_delivery_*)."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage

from bot.ratelimit import MemoryBucketStore, RateLimitConfig, RateLimiter
from bot.scheduler.doubles import MemoryDeliveries
from bot.scheduler.sender import AmbiguousSend, Sender, keyboard

METHOD = SendMessage(chat_id=1, text="x")
LIFTED = RateLimitConfig(rate_per_s=0, per_chat_interval_s=0)


class ScriptedTelegram:
    """Answers by chat id: a list of exceptions to raise first, then success."""

    def __init__(self) -> None:
        self.script: dict[int, list[BaseException]] = {}
        self.received: list[tuple[int, float]] = []
        self.attempts: list[int] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, push: Any) -> int:
        self.attempts.append(push.chat_id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            errors = self.script.get(push.chat_id)
            if errors:
                raise errors.pop(0)
            self.received.append((push.chat_id, time.monotonic()))
            return len(self.received)
        finally:
            self.in_flight -= 1


def sender(rows: MemoryDeliveries, telegram: ScriptedTelegram, **kw: Any) -> Sender:
    limiter = kw.pop("limiter", None) or RateLimiter(MemoryBucketStore(), LIFTED)
    kw.setdefault("poll_interval_s", 0.02)
    kw.setdefault("retry_base_s", 0.0)
    return Sender(rows.scope, telegram, limiter, worker="test", **kw)


async def run_until(s: Sender, done: Any, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110 (polls a predicate)
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert done(), "the sender did not get there in time"


async def test_every_row_is_sent_once_and_marked_sent() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    for chat in range(1, 51):
        rows.add(chat)
    s = sender(rows, telegram, concurrency=8)
    await run_until(s, lambda: rows.states() == {"sent": 50})
    assert sorted(c for c, _ in telegram.received) == list(range(1, 51))
    assert all(r.message_id for r in rows.rows.values())


async def test_never_more_rows_in_flight_than_the_concurrency() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    telegram.delay = 0.01
    for chat in range(1, 101):
        rows.add(chat)
    s = sender(rows, telegram, concurrency=5, claim_batch=5)
    peak = 0

    def done() -> bool:
        nonlocal peak
        peak = max(peak, rows.states().get("sending", 0))
        return rows.states() == {"sent": 100}

    await run_until(s, done)
    assert peak <= 5
    assert telegram.max_in_flight <= 5


async def test_a_429_storm_pauses_the_whole_sender_and_loses_nothing() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    for chat in range(1, 21):
        rows.add(chat)
    # the first three sends get "retry after 1 s"
    for chat in (1, 2, 3):
        telegram.script[chat] = [TelegramRetryAfter(METHOD, "Too Many Requests", 1)]
    store = MemoryBucketStore()
    limiter = RateLimiter(store, RateLimitConfig(rate_per_s=1000, burst=10, per_chat_interval_s=0))
    s = sender(rows, telegram, concurrency=1, claim_batch=1, limiter=limiter)
    started = time.monotonic()
    await run_until(s, lambda: rows.states() == {"sent": 20}, timeout=15)
    # nothing went to Telegram during a pause: after each 429 the next send came ≥ 1 s later
    sends = sorted(t for _, t in telegram.received)
    assert sends[0] - started >= 1.0
    assert s.stats.rate_limited == 3
    assert s.stats.released == 3
    assert rows.rows[1].attempts == 0  # a 429 is not an attempt
    assert sorted(c for c, _ in telegram.received) == list(range(1, 21))  # each exactly once
    assert store.paused_until > 0  # shared with every sender of the bucket


async def test_a_403_marks_the_customer_unreachable_and_is_not_retried() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    rows.add(7)
    rows.add(8)
    telegram.script[7] = [TelegramForbiddenError(METHOD, "Forbidden: bot was blocked by the user")]
    s = sender(rows, telegram)
    await run_until(s, lambda: rows.states() == {"blocked": 1, "sent": 1})
    assert telegram.attempts.count(7) == 1
    assert "blocked" in rows.rows[1].error
    assert s.stats.unreachable == 1


async def test_chat_not_found_is_unreachable_too() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    rows.add(7)
    telegram.script[7] = [TelegramBadRequest(METHOD, "Bad Request: chat not found")]
    await run_until(sender(rows, telegram), lambda: rows.states() == {"blocked": 1})


async def test_transient_errors_are_retried_with_backoff_then_failed() -> None:
    rows, telegram = MemoryDeliveries(max_attempts=3), ScriptedTelegram()
    rows.add(5)  # recovers after two errors
    rows.add(6)  # never recovers
    telegram.script[5] = [
        TelegramServerError(METHOD, "Internal Server Error"),
        TelegramNetworkError(METHOD, "ClientConnectorError: refused"),
    ]
    telegram.script[6] = [TelegramServerError(METHOD, "Bad Gateway") for _ in range(5)]
    s = sender(rows, telegram, retry_base_s=0.05)
    await run_until(s, lambda: rows.states() == {"sent": 1, "failed": 1})
    assert telegram.attempts.count(5) == 3
    assert telegram.attempts.count(6) == 3  # max_attempts, then failed with the error
    assert "Bad Gateway" in rows.rows[2].error


async def test_backoff_grows_with_the_attempts() -> None:
    rows, telegram = MemoryDeliveries(max_attempts=10), ScriptedTelegram()
    row = rows.add(5)
    row.attempts = 3
    telegram.script[5] = [TelegramServerError(METHOD, "Internal Server Error")]
    fixed = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    s = sender(rows, telegram, retry_base_s=30, now=lambda: fixed)
    rows.now = lambda: fixed
    await s.run_once()
    assert row.state == "queued"
    assert (row.due_at - fixed).total_seconds() == 30 * 2**3


async def test_an_ambiguous_network_error_leaves_the_row_unknown_never_resent() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    rows.add(9)
    telegram.script[9] = [AmbiguousSend("Request timeout error")]
    s = sender(rows, telegram)
    await s.run_once()
    await s.run_once()
    assert rows.states() == {"sending": 1}
    assert telegram.attempts == [9]
    assert s.stats.unknown == 1


async def test_the_sender_backs_off_while_the_database_is_down_and_carries_on() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    for chat in range(1, 6):
        rows.add(chat)
    rows.fail_next = 4  # the stale check and three claims fail
    s = sender(rows, telegram, db_backoff_max_s=0.3)
    await run_until(s, lambda: rows.states() == {"sent": 5})
    assert s.stats.db_errors >= 3


async def test_an_outcome_that_cannot_be_recorded_is_kept_and_never_resent() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    rows.add(1)
    s = sender(rows, telegram, db_backoff_max_s=0.2)
    real_scope = rows.scope
    calls = 0

    def flaky_scope() -> Any:
        nonlocal calls
        calls += 1
        if calls in (3, 4):  # stale check, claim OK; the first two recordings fail
            rows.fail_next = 1
        return real_scope()

    s.scope = flaky_scope  # type: ignore[method-assign]
    await run_until(s, lambda: rows.states() == {"sent": 1})
    assert telegram.attempts == [1]


async def test_the_per_chat_limit_spaces_pushes_to_one_chat() -> None:
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    for _ in range(3):
        rows.add(42)
    limiter = RateLimiter(
        MemoryBucketStore(), RateLimitConfig(rate_per_s=1000, burst=10, per_chat_interval_s=0.3)
    )
    s = sender(rows, telegram, limiter=limiter, concurrency=3)
    await run_until(s, lambda: rows.states() == {"sent": 3})
    times = sorted(t for _, t in telegram.received)
    assert all(b - a >= 0.28 for a, b in itertools.pairwise(times))


def test_buttons_become_an_inline_keyboard() -> None:
    markup = keyboard(
        [[{"text": "Shop", "url": "https://example.com"}], [{"text": "Stop", "callback_data": "u"}]]
    )
    assert markup is not None
    assert markup.inline_keyboard[0][0].url == "https://example.com"
    assert markup.inline_keyboard[1][0].callback_data == "u"
    assert keyboard(None) is None


@pytest.mark.parametrize("concurrency", [0, -1])
def test_concurrency_must_be_positive(concurrency: int) -> None:
    with pytest.raises(ValueError):
        Sender(MemoryDeliveries().scope, ScriptedTelegram(), RateLimiter(MemoryBucketStore()),
               concurrency=concurrency)  # fmt: skip


async def test_stopping_while_the_database_is_down_does_not_hang_and_loses_track_of_nothing() -> (
    None
):
    rows, telegram = MemoryDeliveries(), ScriptedTelegram()
    rows.add(1)

    async def send_then_lose_the_database(push: Any) -> int:
        message_id = await telegram(push)
        rows.fail_next = 10**6  # the database goes away before the outcome is recorded
        return message_id

    s = sender(rows, telegram, db_backoff_max_s=0.1, shutdown_timeout_s=0.5)
    s.send = send_then_lose_the_database
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    while not telegram.received:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert rows.states() == {"sending": 1}  # unknown: sent, not recorded, never resent
    assert telegram.attempts == [1]

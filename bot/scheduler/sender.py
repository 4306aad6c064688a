"""The push sender: delivery rows → Telegram, never twice, never lost silently.

Each sender (any number of processes on PostgreSQL; one on SQLite) loops:

1. unit of work: `claim_due(limit, worker)` — the domain applies the send-time checks and
   marks the rows `sending`; the transaction COMMITS before anything goes to Telegram;
2. per row: a token from the shared rate limiter (global bucket + per-chat), then
   `sendMessage` through the bot's own aiogram `Bot` and session (so `bot.api_base_url`
   holds), but not through the reply middlewares (403/429 are handled here, per row);
3. unit of work: `mark_sent` / `mark_unreachable` (403) / `mark_retry` (transient: backoff,
   then `failed`) / `release` (429 or a long wait for a token: back to `queued`, no attempt
   counted). Outcomes are committed in small batches; a database error is retried with
   backoff and the outcome kept in memory meanwhile — never sent again.

At most `concurrency` rows are claimed and not yet recorded, so a kill -9 leaves at most
that many rows in `sending`: those are reported as *unknown* (`stale_sending`), never resent
automatically. A network error after the request may have reached Telegram (a timeout, a
dropped connection) is just as unknown: the row stays `sending` instead of being retried.

A 429 pauses the whole sender (and, through the shared bucket, every other sender) for
`retry_after`. A database error while claiming backs off exponentially up to
`db_backoff_max_s` and then carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions

from bot.ratelimit import RateLimiter
from bot.scheduler.ports import DeliveryScope

log = logging.getLogger("bot.scheduler.sender")

SendFn = Callable[[Any], Awaitable[int]]
"""Sends one push to Telegram; returns the message id; raises aiogram's exceptions."""


class AmbiguousSend(Exception):
    """The request may or may not have reached Telegram: the row stays `sending` (unknown)."""


def keyboard(buttons: Any) -> InlineKeyboardMarkup | None:
    """Rows of `{"text", "url"}` / `{"text", "callback_data"}` as an inline keyboard."""
    if not buttons:
        return None
    rows = []
    for row in buttons:
        cells = [row] if isinstance(row, dict) else list(row)
        rows.append(
            [
                InlineKeyboardButton(text=str(cell["text"]), url=cell["url"])
                if cell.get("url")
                else InlineKeyboardButton(
                    text=str(cell["text"]), callback_data=str(cell.get("callback_data") or "")
                )
                for cell in cells
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def bot_sender(bot: Bot, *, timeout: int = 30) -> SendFn:
    """Pushes through `bot`'s own session (same Bot API server, token and HTTP pool)."""

    async def send(push: Any) -> int:
        method = SendMessage(
            chat_id=push.chat_id,
            text=push.text,
            parse_mode="HTML",
            reply_markup=keyboard(push.buttons),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
        try:
            message = await bot.session.make_request(bot, method, timeout=timeout)
        except TelegramNetworkError as exc:
            # could not even connect: Telegram never saw it, a retry is safe
            if isinstance(exc.__cause__, aiohttp.ClientConnectorError):
                raise
            raise AmbiguousSend(str(exc)) from exc
        return int(message.message_id)

    return send


@dataclass
class SenderStats:
    claimed: int = 0
    sent: int = 0
    unreachable: int = 0
    retried: int = 0
    released: int = 0
    failed: int = 0
    unknown: int = 0
    rate_limited: int = 0
    db_errors: int = 0
    send_times: list[float] = field(default_factory=list)  # monotonic, when sent (benchmarks)


@dataclass
class _Outcome:
    push: Any
    kind: str  # sent | unreachable | retry | release
    message_id: int = 0
    error: str = ""
    when: datetime | None = None
    done: asyncio.Future[None] | None = None


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Sender:
    """One sender (see the module docstring)."""

    def __init__(
        self,
        scope: DeliveryScope,
        send: SendFn,
        limiter: RateLimiter,
        *,
        worker: str | None = None,
        concurrency: int = 16,
        claim_batch: int = 16,
        poll_interval_s: float = 0.5,
        retry_base_s: float = 30.0,
        retry_max_s: float = 3600.0,
        db_backoff_max_s: float = 30.0,
        max_token_wait_s: float = 5.0,
        now: Callable[[], datetime] | None = None,
        record_send_times: bool = False,
        only_chats: frozenset[int] | None = None,
        shutdown_timeout_s: float = 60.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.scope = scope
        self.send = send
        self.limiter = limiter
        self.worker = worker or default_worker_name()
        self.concurrency = concurrency
        self.claim_batch = max(1, min(claim_batch, concurrency))
        self.poll_interval_s = poll_interval_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.db_backoff_max_s = db_backoff_max_s
        self.max_token_wait_s = max_token_wait_s
        self.now = now or (lambda: datetime.now(UTC))
        self.record_send_times = record_send_times
        # `hwcrm chat`: deliver only the pushes of the chat(s) on the terminal
        self.only_chats = only_chats
        self.shutdown_timeout_s = shutdown_timeout_s
        self.stats = SenderStats()
        self.inflight = 0  # claimed and not yet recorded (= the most rows left `sending`)
        self._room = asyncio.Condition()
        self._paused_until = 0.0  # monotonic
        self._outcomes: asyncio.Queue[_Outcome] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set, then let the rows in flight finish and record them."""
        await self._report_unknown()
        recorder = asyncio.create_task(self._record_outcomes(), name="sender-recorder")
        backoff = 0.0
        try:
            while not stop.is_set():
                await self._wait_paused(stop)
                room = await self._wait_for_room(stop)
                if stop.is_set():
                    break
                if self._paused_until > time.monotonic():
                    continue  # a 429 came while waiting for room
                try:
                    async with self.scope() as deliveries:
                        pushes = list(await self._claim(deliveries, room))
                except Exception as exc:
                    self.stats.db_errors += 1
                    backoff = min(self.db_backoff_max_s, max(0.2, backoff * 2))
                    log.warning("claiming deliveries failed (%s); retrying in %.1fs", exc, backoff)
                    await _sleep_or_stop(stop, backoff)
                    continue
                backoff = 0.0
                if not pushes:
                    await _sleep_or_stop(stop, self.poll_interval_s)
                    continue
                self.stats.claimed += len(pushes)
                async with self._room:
                    self.inflight += len(pushes)
                for push in pushes:
                    task = asyncio.create_task(self._deliver(push))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            try:  # the database may be down: do not hang the shutdown for ever
                if self._tasks:
                    await asyncio.wait_for(
                        asyncio.gather(*list(self._tasks), return_exceptions=True),
                        self.shutdown_timeout_s,
                    )
                await asyncio.wait_for(self._outcomes.join(), self.shutdown_timeout_s)
            except TimeoutError:
                log.error(
                    "stopping with %d outcome(s) not recorded: those rows stay `sending` "
                    "(reported as unknown, never resent)",
                    self._outcomes.qsize(),
                )
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder

    async def run_once(self) -> int:
        """Claim and deliver one batch (tests, `hwcrm scheduler --once`); rows handled."""
        stop = asyncio.Event()
        recorder = asyncio.create_task(self._record_outcomes())
        try:
            async with self.scope() as deliveries:
                pushes = list(await self._claim(deliveries, self.claim_batch))
            self.stats.claimed += len(pushes)
            self.inflight += len(pushes)
            await asyncio.gather(*(self._deliver(p) for p in pushes))
            await self._outcomes.join()
            return len(pushes)
        finally:
            stop.set()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder

    async def _claim(self, deliveries: Any, limit: int) -> Any:
        if self.only_chats is None:
            return await deliveries.claim_due(limit, self.worker)
        return await deliveries.claim_due(limit, self.worker, chat_ids=self.only_chats)

    async def _wait_for_room(self, stop: asyncio.Event) -> int:
        # claim when at least half a batch of room is free (fewer, larger claims)
        want = max(1, self.claim_batch // 2)
        async with self._room:
            while self.concurrency - self.inflight < want and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 0.5)
            return min(self.claim_batch, self.concurrency - self.inflight)

    async def _wait_paused(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            remaining = self._paused_until - time.monotonic()
            if remaining <= 0:
                return
            await _sleep_or_stop(stop, remaining)

    # -- one row ---------------------------------------------------------------------------

    async def _deliver(self, push: Any) -> None:
        try:
            outcome = await self._attempt(push)
            if outcome is not None:
                await self._enqueue(outcome)
        except Exception:  # never lose track of a claimed row: it stays `sending` = unknown
            log.exception("delivery %s: unexpected error; left as unknown", push.delivery_id)
            self.stats.unknown += 1
        finally:
            async with self._room:
                self.inflight -= 1
                self._room.notify_all()

    async def _attempt(self, push: Any) -> _Outcome | None:
        remaining = self._paused_until - time.monotonic()
        if remaining > 0:
            return self._release(push, remaining)
        if not await self.limiter.acquire_push(push.chat_id, max_wait_s=self.max_token_wait_s):
            # a long wait (paused by a 429 elsewhere, replies' debt): give the row back rather
            # than hold it `sending` meanwhile
            return self._release(push, self.max_token_wait_s)
        remaining = self._paused_until - time.monotonic()
        if remaining > 0:
            return self._release(push, remaining)
        try:
            message_id = await self.send(push)
        except TelegramRetryAfter as exc:
            self.stats.rate_limited += 1
            wait = float(exc.retry_after)
            log.warning("Telegram 429: every push waits %ss", wait)
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
            await self.limiter.pause_pushes(wait)
            return self._release(push, wait)
        except TelegramForbiddenError as exc:
            return _Outcome(push, "unreachable", error=_error_text(exc))
        except (TelegramBadRequest, TelegramNotFound) as exc:
            if _chat_gone(exc):
                return _Outcome(push, "unreachable", error=_error_text(exc))
            return self._retry(push, exc)  # the domain fails it after max_attempts
        except (TelegramServerError, TelegramNetworkError, TelegramAPIError) as exc:
            return self._retry(push, exc)
        except AmbiguousSend as exc:
            self.stats.unknown += 1
            log.error(
                "delivery %s: %s — Telegram may have received it; left `sending` (unknown), "
                "not resent",
                push.delivery_id,
                exc,
            )
            return None
        if self.record_send_times:
            self.stats.send_times.append(time.monotonic())
        return _Outcome(push, "sent", message_id=message_id)

    def _release(self, push: Any, seconds: float) -> _Outcome:
        return _Outcome(push, "release", when=self.now() + timedelta(seconds=seconds))

    def _retry(self, push: Any, exc: BaseException) -> _Outcome:
        return _Outcome(push, "retry", error=_error_text(exc))

    def retry_delay(self, attempts: int) -> float:
        """Backoff after a transient error: base, 2 x base, 4 x base, ... up to the maximum."""
        return float(min(self.retry_max_s, self.retry_base_s * (2 ** max(0, attempts))))

    # -- recording outcomes ----------------------------------------------------------------

    async def _enqueue(self, outcome: _Outcome) -> None:
        outcome.done = asyncio.get_running_loop().create_future()
        await self._outcomes.put(outcome)
        await outcome.done  # the row stays in flight until its outcome is committed

    async def _record_outcomes(self) -> None:
        backoff = 0.0
        while True:
            batch = [await self._outcomes.get()]
            while not self._outcomes.empty() and len(batch) < 200:
                batch.append(self._outcomes.get_nowait())
            while True:
                try:
                    async with self.scope() as deliveries:
                        await self._apply_all(deliveries, batch)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats.db_errors += 1
                    backoff = min(self.db_backoff_max_s, max(0.2, backoff * 2))
                    log.warning(
                        "recording %d outcome(s) failed (%s); retrying in %.1fs",
                        len(batch),
                        exc,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
            backoff = 0.0
            for outcome in batch:
                self._count(outcome)
                if outcome.done is not None and not outcome.done.done():
                    outcome.done.set_result(None)
                self._outcomes.task_done()

    async def _apply_all(self, deliveries: Any, batch: list[_Outcome]) -> None:
        """One transaction for the batch; sent rows in one statement when the service can."""
        many = getattr(deliveries, "mark_sent_many", None)
        rest = batch
        if many is not None:
            sent = [(o.push.delivery_id, o.message_id) for o in batch if o.kind == "sent"]
            if sent:
                await many(sent)
            rest = [o for o in batch if o.kind != "sent"]
        for outcome in rest:
            await self._apply(deliveries, outcome)

    async def _apply(self, deliveries: Any, outcome: _Outcome) -> None:
        push = outcome.push
        if outcome.kind == "sent":
            await deliveries.mark_sent(push.delivery_id, outcome.message_id)
        elif outcome.kind == "unreachable":
            await deliveries.mark_unreachable(push.delivery_id, outcome.error)
        elif outcome.kind == "retry":
            # the attempts so far are the row's (a push does not carry them)
            get = getattr(deliveries, "get", None)
            attempts = int((await get(push.delivery_id)).attempts) if get is not None else 0
            when = self.now() + timedelta(seconds=self.retry_delay(attempts))
            state = await deliveries.mark_retry(push.delivery_id, outcome.error, when)
            if state == "failed":
                self.stats.failed += 1
        else:
            assert outcome.when is not None
            await deliveries.release(push.delivery_id, outcome.when)

    def _count(self, outcome: _Outcome) -> None:
        if outcome.kind == "sent":
            self.stats.sent += 1
        elif outcome.kind == "unreachable":
            self.stats.unreachable += 1
        elif outcome.kind == "retry":
            self.stats.retried += 1
        else:
            self.stats.released += 1

    async def _report_unknown(self) -> None:
        try:
            async with self.scope() as deliveries:
                stale = await deliveries.stale_sending()
        except Exception as exc:
            log.warning("could not check for rows left `sending` (%s)", exc)
            return
        if stale:
            log.warning(
                "%d deliveries were left `sending` by a crash: reported as unknown, not resent",
                stale,
            )


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _chat_gone(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("chat not found", "user is deactivated", "peer_id_invalid"))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))

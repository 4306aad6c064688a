"""Anti-flood: at most N messages/button presses per user per window.

The excess is not handled (it was already logged in the CRM by the inbound middleware, which
runs before this one); the first excess update of a window gets one polite notice, the rest
are silent. Windows are fixed (`window_s` long, aligned on multiples of it): cheap to keep in
memory and a single `INCR` + `EXPIRE` in Redis, where every worker shares the counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update

from bot.deps import Texts
from bot.middlewares.context import event_chat, event_user

log = logging.getLogger("bot.throttle")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class RateCounter(Protocol):
    async def hit(self, user_id: int) -> int:
        """Count one update of `user_id` in the current window; return the window's count."""
        ...


class MemoryRateCounter:
    """Per-process counters (embedded mode)."""

    def __init__(self, window_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.monotonic = monotonic
        self._window = -1
        self._counts: dict[int, int] = {}

    async def hit(self, user_id: int) -> int:
        window = int(self.monotonic() // self.window_s)
        if window != self._window:  # a new window: forget the old counts
            self._window = window
            self._counts = {}
        count = self._counts.get(user_id, 0) + 1
        self._counts[user_id] = count
        return count


class RedisRateCounter:
    """Counters shared by every bot worker (`INCR` + `EXPIRE` on the window's key)."""

    def __init__(self, redis: Any, prefix: str, window_s: float) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:flood"
        self.window_s = window_s

    async def hit(self, user_id: int) -> int:
        window = int(time.time() // self.window_s)
        key = f"{self.prefix}:{user_id}:{window}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, max(1, int(self.window_s) + 1))
            count, _ = await pipe.execute()
        return int(count)


class ThrottleMiddleware(BaseMiddleware):
    """Drops a customer's updates beyond `limit` per window, with one notice per window."""

    def __init__(self, counter: RateCounter, limit: int) -> None:
        self.counter = counter
        self.limit = limit
        self.dropped = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user = event_user(event)
        chat = event_chat(event)
        counted = event.message is not None or event.callback_query is not None
        if self.limit <= 0 or not counted or user is None or chat is None or chat.type != "private":
            return await handler(event, data)
        count = await self.counter.hit(user.id)
        if count <= self.limit:
            return await handler(event, data)
        self.dropped += 1
        log.info("user %s is flooding (%d updates this window): update dropped", user.id, count)
        bot: Bot = data["bot"]
        if event.callback_query is not None:
            await bot.answer_callback_query(event.callback_query.id)
        if count == self.limit + 1:
            t: Texts = data["t"]
            await bot.send_message(chat.id, t("common.throttled"))
        return None

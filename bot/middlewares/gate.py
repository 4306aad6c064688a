"""The gate every update passes: in-flight tracking, per-chat order, de-duplication.

- `InFlight` counts updates being handled, so that shutdown can wait for them (`drain`).
- `ChatIsolation` is the dispatcher's event isolation: one update per chat at a time, in the
  order they arrived (an asyncio FIFO lock per chat in this process) and, with Redis, a Redis
  lock per chat so that several bot workers behind a load balancer never handle two updates
  of one chat at the same time.
- `MemoryDeduplicator` / `RedisDeduplicator` remember update ids: Telegram re-delivers an
  update when it did not see our answer in time; the second delivery is dropped.
- `GateMiddleware` applies de-duplication, opens the update scope and, on embedded SQLite
  (one writer at a time), handles one update at a time in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import TelegramObject, Update

from bot.middlewares.context import (
    DbWriter,
    UpdateScope,
    event_chat,
    run_deferred,
    update_scope,
)

log = logging.getLogger("bot.runtime")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class InFlight:
    """Counts updates being handled; `drain()` waits until none is left."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closing = False

    @property
    def count(self) -> int:
        return self._count

    @contextlib.contextmanager
    def track(self) -> Any:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait for in-flight updates; True when all finished within `timeout` seconds."""
        self.closing = True
        if self._count == 0:
            return True
        log.info("shutting down: waiting for %d update(s) in flight", self._count)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("shutdown: %d update(s) still running after %.0fs", self._count, timeout)
            return False
        return True


class Deduplicator(Protocol):
    async def first_seen(self, update_id: int) -> bool:
        """True the first time an update id is seen; False for a re-delivery."""
        ...


class MemoryDeduplicator:
    """The last `size` update ids of this process (embedded mode: one process)."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def first_seen(self, update_id: int) -> bool:
        if update_id in self._seen:
            self._seen.move_to_end(update_id)
            return False
        self._seen[update_id] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class RedisDeduplicator:
    """Update ids in Redis (`SET NX EX`), shared by every worker of the bot."""

    def __init__(self, redis: Any, prefix: str, bot_id: int, ttl_s: int = 86_400) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:{bot_id}:update"
        self.ttl_s = ttl_s

    async def first_seen(self, update_id: int) -> bool:
        created = await self.redis.set(f"{self.prefix}:{update_id}", b"1", nx=True, ex=self.ttl_s)
        return bool(created)


class ChatIsolation(BaseEventIsolation):
    """One update per chat (FSM key) at a time, in arrival order; optionally across workers.

    In-process, an `asyncio.Lock` per key queues the chat's updates first-in first-out (the
    lock is taken before anything else awaits, so arrival order is kept). With `redis`, the
    holder of the local lock then takes a Redis lock on the same key, which makes workers of
    several processes mutually exclusive per chat (order across workers is the order in which
    they get the lock; a worker that dies releases it after `lock_ttl_s`).
    """

    def __init__(
        self, redis: Any | None = None, prefix: str = "hwcrm:bot", lock_ttl_s: float = 120.0
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.lock_ttl_s = lock_ttl_s
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        local_key: Hashable = (key.bot_id, key.chat_id, key.thread_id)
        lock, users = self._locks.get(local_key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[local_key] = (lock, users + 1)
        try:
            async with lock:
                if self.redis is None:
                    yield
                else:
                    name = f"{self.prefix}:{key.bot_id}:chatlock:{key.chat_id}:{key.thread_id}"
                    async with self.redis.lock(
                        name,
                        timeout=self.lock_ttl_s,
                        sleep=0.005,
                        thread_local=False,
                        raise_on_release_error=False,  # expired after lock_ttl_s: nothing to do
                    ):
                        yield
        finally:
            lock, users = self._locks[local_key]
            if users <= 1:
                del self._locks[local_key]
            else:
                self._locks[local_key] = (lock, users - 1)

    @property
    def active_keys(self) -> int:
        """Chats with an update running or queued (for tests: locks never leak)."""
        return len(self._locks)

    async def close(self) -> None:
        self._locks.clear()


class GateMiddleware(BaseMiddleware):
    """Drops re-delivered updates; opens the update scope; serialises updates on SQLite."""

    def __init__(
        self,
        dedup: Deduplicator,
        db_lock: asyncio.Lock | None = None,
        writer: DbWriter | None = None,
    ) -> None:
        self.dedup = dedup
        self.db_lock = db_lock
        self.writer = writer
        self.duplicates = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        if not await self.dedup.first_seen(event.update_id):
            self.duplicates += 1
            log.info("update %s was delivered again: dropped", event.update_id)
            return UNHANDLED
        chat = event_chat(event)
        scope = UpdateScope(update_id=event.update_id, chat_id=chat.id if chat else None)
        with update_scope(scope):
            if self.db_lock is None:
                try:
                    return await handler(event, data)
                finally:
                    await self._leftovers(scope)
            async with self.db_lock:
                scope.holds_db_lock = True
                try:
                    return await handler(event, data)
                finally:
                    await self._leftovers(scope)
                    scope.holds_db_lock = False

    async def _leftovers(self, scope: UpdateScope) -> None:
        if scope.after and self.writer is not None:
            await run_deferred(scope, self.writer)

"""The delivery engine inside `hwcrm bot` / `hwcrm chat` (the embedded default: one process
does everything, so the scheduler and sender run next to the bot and share its `Bot` and
its rate limiter)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.ratelimit import RateLimiter
from bot.scheduler.runner import DeliveryEngine, build_engine, runs_in_bot

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("bot.scheduler")


class EmbeddedDelivery:
    """A running engine and how to stop it."""

    def __init__(self, engine: DeliveryEngine) -> None:
        self.engine = engine
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(engine.run(self.stop_event), name="embedded-delivery")

    @classmethod
    def start(
        cls,
        settings: Settings,
        sessions: Any,
        clock: Any,
        bot: Any,
        limiter: RateLimiter,
        *,
        sending: bool = True,
        on_sent: Callable[[], Any] | None = None,
        force: bool = False,
        only_chats: frozenset[int] | None = None,
    ) -> EmbeddedDelivery | None:
        """Start it when `scheduler.in_bot` says so (auto: on SQLite); None otherwise."""
        if not (force or runs_in_bot(settings)):
            return None
        engine = build_engine(
            settings,
            sessions,
            clock,
            bot,
            limiter,
            sending=sending,
            on_sent=on_sent,
            only_chats=only_chats,
        )
        log.info("campaign scheduler and sender run inside this process")
        return cls(engine)

    async def stop(self, timeout: float = 30.0) -> None:
        """Pushes in flight finish and are recorded (up to `timeout`), then it stops."""
        self.stop_event.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except TimeoutError:
            log.warning("the delivery engine did not stop within %ss; cancelling it", timeout)
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        except Exception:
            log.exception("the delivery engine failed")

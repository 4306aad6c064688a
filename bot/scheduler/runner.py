"""The delivery engine of one process: leader-elected scheduling + the push sender.

`hwcrm scheduler` runs it on its own (production: any number of these processes on
PostgreSQL; one of them schedules, all of them send). On the embedded default it runs
inside `hwcrm bot` and `hwcrm chat`, sharing the bot's `Bot` and rate limiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.ratelimit import RateLimiter, limiter_from_settings
from bot.scheduler.engine import CampaignScheduler
from bot.scheduler.leader import Leadership, leadership_for
from bot.scheduler.ports import DeliveryScope, ScheduleScope
from bot.scheduler.sender import Sender, SendFn

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["DeliveryEngine", "build_engine", "limiter_from_settings", "runs_in_bot"]

log = logging.getLogger("bot.scheduler")


def runs_in_bot(settings: Settings) -> bool:
    """Does `hwcrm bot` / `hwcrm chat` run the engine itself? (auto: on SQLite)"""
    mode = settings.scheduler.in_bot
    return mode == "on" or (mode == "auto" and settings.db.is_sqlite)


@dataclass
class DeliveryEngine:
    """Scheduling (while leader) and sending, until `stop`."""

    settings: Settings
    delivery: DeliveryScope
    schedule: ScheduleScope
    send: SendFn
    limiter: RateLimiter
    scheduling: bool = True
    sending: bool = True
    worker: str | None = None
    leadership: Leadership | None = None
    on_sent: Callable[[], Any] | None = None
    only_chats: frozenset[int] | None = None
    scheduler: CampaignScheduler | None = field(default=None, init=False)
    sender: Sender | None = field(default=None, init=False)
    is_leader: bool = field(default=False, init=False)
    terms: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.leadership is None:
            section = self.settings.scheduler
            self.leadership = leadership_for(
                self.settings.db.url,
                retry_s=section.leader_retry_s,
                check_s=section.leader_check_s,
            )
        if self.sending:
            section = self.settings.scheduler
            self.sender = Sender(
                self.delivery,
                self._send,
                self.limiter,
                worker=self.worker,
                concurrency=section.concurrency,
                claim_batch=section.claim_batch,
                poll_interval_s=section.poll_interval_s,
                retry_base_s=section.retry_base_s,
                retry_max_s=section.retry_max_s,
                db_backoff_max_s=section.db_backoff_max_s,
                only_chats=self.only_chats,
            )

    async def _send(self, push: Any) -> int:
        message_id = await self.send(push)
        if self.on_sent is not None:
            self.on_sent()
        return message_id

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; rows in flight finish and are recorded."""
        jobs = []
        if self.scheduling:
            jobs.append(asyncio.create_task(self._schedule(stop), name="scheduler"))
        if self.sender is not None:
            jobs.append(asyncio.create_task(self.sender.run(stop), name="sender"))
        try:
            await asyncio.gather(*jobs)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)

    async def _schedule(self, stop: asyncio.Event) -> None:
        assert self.leadership is not None
        leadership = self.leadership
        section = self.settings.scheduler
        log.info("scheduling: %s", leadership.description)
        try:
            while not stop.is_set():
                if not await leadership.acquire(stop):
                    break
                self.is_leader = True
                self.terms += 1
                self.scheduler = CampaignScheduler(
                    self.schedule,
                    self.settings.db.url,
                    timezone=section.timezone,
                    jobs_table=section.jobs_table,
                    reconcile_interval_s=section.reconcile_interval_s,
                    rules_interval_s=section.rules_interval_s,
                    misfire_grace_s=section.misfire_grace_s,
                )
                try:
                    self.scheduler.start()
                    lost = asyncio.create_task(leadership.watch())
                    stopping = asyncio.create_task(stop.wait())
                    await asyncio.wait({lost, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    for task in (lost, stopping):
                        task.cancel()
                finally:
                    self.scheduler.shutdown()  # lock lost or stopping: scheduling stops now
                    self.is_leader = False
                    await self.scheduler.drain()  # an occurrence being enqueued completes
        finally:
            with contextlib.suppress(Exception):
                await leadership.release()


def build_engine(
    settings: Settings,
    sessions: Any,
    clock: Any,
    bot: Any,
    limiter: RateLimiter,
    *,
    scheduling: bool = True,
    sending: bool = True,
    worker: str | None = None,
    on_sent: Callable[[], Any] | None = None,
    only_chats: frozenset[int] | None = None,
) -> DeliveryEngine:
    """The engine on the real campaigns services, sending through `bot`."""
    from bot.scheduler.sender import bot_sender
    from bot.scheduler.wiring import delivery_scope, schedule_scope

    return DeliveryEngine(
        settings=settings,
        delivery=delivery_scope(sessions, clock, settings),
        schedule=schedule_scope(sessions, clock, settings),
        send=bot_sender(bot),
        limiter=limiter,
        scheduling=scheduling,
        sending=sending,
        worker=worker,
        on_sent=on_sent,
        only_chats=only_chats,
    )

"""The real services behind the engine's ports, one unit of work per scope."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.scheduler.ports import DeliveryPort, DeliveryScope, SchedulePort, ScheduleScope
from crm_core.clock import Clock
from crm_core.db import unit_of_work
from crm_core.services import CrmServices

if TYPE_CHECKING:
    from app.settings import Settings


def delivery_scope(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> DeliveryScope:
    """`DeliveryService` in a unit of work (commit on leaving, roll back on error)."""
    from crm_core.campaigns.delivery import DeliveryService

    @asynccontextmanager
    async def scope() -> AsyncIterator[DeliveryPort]:
        async with unit_of_work(sessions) as session:
            yield DeliveryService(session, clock, settings.campaigns)

    return scope


class DomainSchedule:
    """`CampaignService.schedulable/enqueue_occurrence` + `RuleService.run_rules` of one
    unit of work (the contract of issue 9)."""

    def __init__(self, crm: CrmServices) -> None:
        self.crm = crm

    async def schedulable(self) -> Sequence[Any]:
        return list(await self.crm.campaigns.schedulable())

    async def enqueue_occurrence(self, campaign_id: int, occurrence_at: datetime) -> int:
        return int(await self.crm.campaigns.enqueue_occurrence(campaign_id, occurrence_at))

    async def run_rules(self, now: datetime) -> dict[str, int]:
        return dict(await self.crm.rules.run_rules(now))


def schedule_scope(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    settings: Settings,
    texts: Any | None = None,
) -> ScheduleScope:
    """Campaigns and rules in a unit of work; `texts` = the bot's translator (rule messages
    are rendered in each customer's language)."""
    if texts is None:
        from bot.i18n import Translator

        texts = Translator()

    @asynccontextmanager
    async def scope() -> AsyncIterator[SchedulePort]:
        async with unit_of_work(sessions) as session:
            yield DomainSchedule(
                CrmServices(session, clock, settings.crm, settings.campaigns, texts=texts)
            )

    return scope

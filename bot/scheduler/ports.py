"""What the delivery engine needs from the campaigns domain (`crm_core.campaigns`).

The engine is written against these small protocols so it can be unit-tested with the test
double next to it (`bot/scheduler/doubles.py`); the product wires the real services
(`DeliveryService`, `CampaignService`, `RuleService`) in `bot/scheduler/wiring.py`. A
`*Scope` is one unit of work: entering it opens a transaction, leaving it commits (or rolls
back on error) — the services themselves never commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol


class Push(Protocol):
    """One claimed delivery (`crm_core.campaigns` `OutgoingPush`)."""

    delivery_id: int
    chat_id: int
    text: str
    buttons: Any  # rows of {"text", "url"} / {"text", "callback_data"}
    kind: str
    campaign_id: int | None
    customer_id: int | None


class DeliveryPort(Protocol):
    """The delivery rows (`crm_core.campaigns.delivery.DeliveryService`)."""

    async def claim_due(self, limit: int, worker: str) -> Sequence[Any]: ...

    async def mark_sent(self, delivery_id: int, telegram_message_id: int) -> Any: ...

    async def mark_unreachable(self, delivery_id: int, error: str) -> Any: ...

    async def mark_retry(self, delivery_id: int, error: str, retry_at: datetime) -> Any: ...

    async def release(self, delivery_id: int, due_at: datetime) -> Any: ...

    async def stale_sending(self, older_than: timedelta | None = None) -> int: ...


class Spec(Protocol):
    """One schedulable campaign (`ScheduleSpec`)."""

    campaign_id: int
    one_shot_at: datetime | None
    cron: str | None
    timezone: str | None
    state: str


class SchedulePort(Protocol):
    """Campaigns and rules (`CampaignService` + `RuleService`)."""

    async def schedulable(self) -> Sequence[Any]: ...

    async def enqueue_occurrence(self, campaign_id: int, occurrence_at: datetime) -> int: ...

    async def run_rules(self, now: datetime) -> dict[str, int]: ...


DeliveryScope = Callable[[], AbstractAsyncContextManager[DeliveryPort]]
ScheduleScope = Callable[[], AbstractAsyncContextManager[SchedulePort]]

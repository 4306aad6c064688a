"""DTOs of the campaigns domain (what its services return to the CLI, console and scheduler)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OutgoingPush(BaseModel):
    """A claimed delivery, ready for the Bot API: `sendMessage(chat_id, text, HTML, buttons)`."""

    delivery_id: int
    chat_id: int
    text: str  # Telegram HTML
    # Rows of inline buttons: {"text", "url"} or {"text", "callback_data"}.
    buttons: list[list[dict[str, str]]] = Field(default_factory=list)
    kind: str  # marketing | service
    campaign_id: int | None = None
    customer_id: int | None = None
    rule: str | None = None


class DeliveryDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurrence_key: str
    campaign_id: int | None = None
    rule: str | None = None
    variant: str | None = None
    customer_id: int | None = None
    chat_id: int
    kind: str
    language: str
    state: str
    reason: str | None = None
    due_at: datetime
    attempts: int
    claimed_by: str | None = None
    sending_at: datetime | None = None
    sent_at: datetime | None = None
    telegram_message_id: int | None = None
    text: str
    buttons: list[list[dict[str, str]]] = Field(default_factory=list)
    product_ids: list[int] = Field(default_factory=list)
    category: str | None = None


class ScheduleSpec(BaseModel):
    """What the scheduler mirrors as an APScheduler job for one active campaign."""

    campaign_id: int
    state: str  # scheduled | running | paused
    one_shot_at: datetime | None = None  # UTC
    cron: str | None = None
    # CronTrigger(**cron_fields, timezone=timezone): weekdays by name, parsed by the core.
    cron_fields: dict[str, str] | None = None
    timezone: str


class CampaignDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    state: str
    segment: dict[str, Any]
    variants: list[dict[str, Any]]
    timezone: str
    one_shot_at: datetime | None = None
    cron: str | None = None
    send_local_time: str | None = None
    product_ids: list[int] = Field(default_factory=list)
    category: str | None = None
    attribution_days: int
    created_by: str
    created_at: datetime
    scheduled_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None


class Recipient(BaseModel):
    """One customer of an audience sample (what a marketer sees before scheduling)."""

    customer_id: int
    name: str
    language: str
    lifecycle_stage: str
    marketing_consent: bool
    reachable: bool  # linked to Telegram and not blocked


class AudienceDTO(BaseModel):
    """A live audience count: who the segment matches and who a push would reach."""

    matched: int  # customers the segment matches
    reachable: int  # ... linked to Telegram, not blocked, not erased (and consenting: marketing)
    by_language: dict[str, int] = Field(default_factory=dict)  # reachable, per language
    sample: list[Recipient] = Field(default_factory=list)
    reason_empty: str | None = None  # why nobody would get it, when reachable == 0


class PreviewDTO(BaseModel):
    variant: str
    language: str
    text: str
    buttons: list[list[dict[str, str]]] = Field(default_factory=list)
    customer_id: int | None = None  # the sample customer whose data filled the variables


class VariantReport(BaseModel):
    variant: str
    audience: int = 0
    queued: int = 0
    sending: int = 0  # claimed and not stale yet
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    cancelled: int = 0
    unknown: int = 0  # stuck in `sending` past the crash window: maybe sent, never resent
    skipped: dict[str, int] = Field(default_factory=dict)  # reason → count
    deferred: dict[str, int] = Field(default_factory=dict)  # queued with a deferral reason
    clicks: int = 0
    unsubscribes: int = 0
    conversions: int = 0
    revenue: Decimal = Decimal("0")


class CampaignReport(BaseModel):
    campaign_id: int | None = None
    rule: str | None = None
    name: str
    state: str
    currency: str = "CNY"
    variants: list[VariantReport] = Field(default_factory=list)
    total: VariantReport


class RuleDTO(BaseModel):
    name: str
    enabled: bool
    kind: str
    params: dict[str, Any]
    overridden: bool  # staff changed it with `hwcrm rules` (DB), not only config.yml

"""Marketer campaigns, automation-rule overrides, delivery rows and recorded reactions.

`campaign_deliveries` is the delivery engine's whole state: one row per (occurrence, customer),
UNIQUE in the database, so a recipient can never get the same push twice. The scheduler and
the Telegram sender (bot/scheduler) only move rows through their states via
`crm_core.campaigns.delivery.DeliveryService`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow

CAMPAIGN_STATES = ("draft", "scheduled", "running", "paused", "finished", "cancelled")
DELIVERY_KINDS = ("marketing", "service")
DELIVERY_STATES = ("queued", "sending", "sent", "failed", "blocked", "skipped", "cancelled")
EVENT_KINDS = ("click", "unsubscribe")


class Campaign(Base):
    """A marketer's campaign: a segment, templates per variant and language, a schedule.

    `variants` is a list of `{"label", "weight", "text": {lang: html}, "buttons": [...]}`
    (see crm_core.campaigns.templates); `segment` a JSON definition (crm_core.campaigns.segments).
    """

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="marketing")
    state: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    segment: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    one_shot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cron: Mapped[str | None] = mapped_column(String(120))
    # "HH:MM": each customer gets it at this time in their own time zone (None: at once).
    send_local_time: Mapped[str | None] = mapped_column(String(5))
    # What the campaign promotes, for attribution: products, or a whole category.
    product_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    category: Mapped[str | None] = mapped_column(String(16))
    attribution_days: Mapped[int] = mapped_column(Integer, default=14)
    created_by: Mapped[str] = mapped_column(String(64), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AutomationRuleSetting(Base):
    """A staff override of an automation rule's config.yml defaults (enabled, parameters)."""

    __tablename__ = "automation_rule_settings"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_by: Mapped[str] = mapped_column(String(64), default="system")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CampaignDelivery(Base):
    """One push to one customer for one campaign or rule occurrence."""

    __tablename__ = "campaign_deliveries"
    __table_args__ = (
        UniqueConstraint("occurrence_key", "customer_id", name="uq_campaign_deliveries_occurrence"),
        Index("ix_campaign_deliveries_state_due", "state", "due_at"),
        Index("ix_campaign_deliveries_customer_sending", "customer_id", "kind", "sending_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    occurrence_key: Mapped[str] = mapped_column(String(200))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    rule: Mapped[str | None] = mapped_column(String(64), index=True)
    variant: Mapped[str | None] = mapped_column(String(16))
    # None only for a marketer's test send (no customer behind the chat).
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16), default="marketing")
    language: Mapped[str] = mapped_column(String(2), default="en")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(String(300))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text, default="")
    # Rows of buttons: {"text", "url"} or {"text", "callback_data"}; "{d}" in callback data
    # is replaced by this row's id when the push is claimed.
    buttons: Mapped[list[list[dict[str, str]]]] = mapped_column(JSONType, default=list)
    product_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    category: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CampaignEvent(Base):
    """A customer's reaction to a push: a button click or an unsubscribe (for the report)."""

    __tablename__ = "campaign_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_deliveries.id", ondelete="CASCADE"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    button: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

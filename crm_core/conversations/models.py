"""Conversations (with their owner: bot, queued or an agent), interactions, satisfaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow

OWNERS = ("bot", "queued", "agent")
DIRECTIONS = ("inbound", "outbound", "event")


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16), default="telegram")
    chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    owner: Mapped[str] = mapped_column(String(8), default="bot")
    agent_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    staff_topic_id: Mapped[int | None] = mapped_column(BigInteger)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Interaction(Base):
    """One inbound/outbound message or event, with what the NLU and knowledge base made of it."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16), default="telegram")
    direction: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text, default="")
    intent: Mapped[str | None] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float)
    kb_hits: Mapped[list[str]] = mapped_column(JSONType, default=list)
    agent_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    external_id: Mapped[str | None] = mapped_column(String(64))  # Telegram message id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SatisfactionRating(Base):
    __tablename__ = "satisfaction_ratings"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

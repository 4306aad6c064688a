"""Customers, companies and marketing-consent history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow

CUSTOMER_TYPES = ("consumer", "pro", "enterprise")
LANGUAGES = ("zh", "en")
LIFECYCLE_STAGES = ("prospect", "new", "active", "loyal", "at_risk", "churned")


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tax_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(254), unique=True)  # lower-cased
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    language: Mapped[str] = mapped_column(String(2), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    customer_type: Mapped[str] = mapped_column(String(16), default="consumer")
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_source: Mapped[str | None] = mapped_column(String(64))
    # Analytics results (recomputed by crm_core.analytics).
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="prospect", index=True)
    rfm_recency: Mapped[int | None] = mapped_column(Integer)
    rfm_frequency: Mapped[int | None] = mapped_column(Integer)
    rfm_monetary: Mapped[int | None] = mapped_column(Integer)
    rfm_segment: Mapped[str | None] = mapped_column(String(32), index=True)
    lifetime_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
    # GDPR erase: personal fields anonymised, the row kept under this anonymous id.
    anonymous_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    company: Mapped[Company | None] = relationship(lazy="raise")


class ConsentEvent(Base):
    """Every grant or withdrawal of marketing consent, for proof of consent."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

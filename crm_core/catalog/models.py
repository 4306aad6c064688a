"""Products with structured specs, and compatibility rules between categories."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16), index=True)
    brand: Mapped[str] = mapped_column(String(64))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    warranty_months: Mapped[int] = mapped_column(Integer)
    specs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Units on hand; NULL = not tracked (treated as available: a catalog without inventory
    # must still sell). 0 = sold out (accessory suggestions and promotions skip it).
    stock_qty: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CompatibilityRule(Base):
    """A rule "a <target_category> fits a <source_category> when ...", evaluated on specs.

    `rule` names a check in crm_core.catalog.compatibility; `params` tunes it (for example
    PSU headroom). Staff can switch rules off or change parameters without a code change.
    """

    __tablename__ = "compatibility_rules"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_category: Mapped[str] = mapped_column(String(16), index=True)
    target_category: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    description_en: Mapped[str] = mapped_column(Text, default="")
    description_zh: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

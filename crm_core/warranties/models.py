"""Warranty facts that are not derived from orders: extensions bought, and voids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, BigIntPK, UTCDateTime, utcnow


class WarrantyExtension(Base):
    """An extended-warranty purchase: adds `months` to the serial's warranty."""

    __tablename__ = "warranty_extensions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(12), index=True)
    months: Mapped[int] = mapped_column(Integer)
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    order_number: Mapped[str | None] = mapped_column(String(11))


class WarrantyVoid(Base):
    """A serial whose warranty staff voided (physical damage, tampered label, ...)."""

    __tablename__ = "warranty_voids"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(12), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    voided_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    voided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

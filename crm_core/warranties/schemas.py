"""DTOs of the warranty domain: the status of one unit (or order line) and why."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class WarrantyState(StrEnum):
    ACTIVE = "active"
    EXPIRING = "expiring"  # ends within `warranty_expiring_days` (inclusive)
    EXPIRED = "expired"
    VOID = "void"  # voided by staff, or the unit went back (order cancelled/returned)


class WarrantyStatus(BaseModel):
    """Warranty of one serial number, or of an order line sold without serials."""

    model_config = ConfigDict(from_attributes=True)

    serial_number: str | None
    order_number: str
    order_item_id: int
    customer_id: int
    product_id: int
    sku: str
    product_name_en: str
    product_name_zh: str
    category: str

    status: WarrantyState
    reason: str  # English, e.g. "Active until 2027-03-14 (36 months from delivery on ...)"
    start_basis: Literal["delivery", "purchase"]
    starts_on: date
    ends_on: date  # covered through the end of this UTC day
    standard_ends_on: date
    standard_months: int
    extension_months: int
    total_months: int
    days_left: int  # 0 once expired
    # The standard warranty is still running and not void: +12/+24 months can be bought.
    extension_available: bool
    void_reason: str | None = None
    voided_at: datetime | None = None


class WarrantyExtensionDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    serial_number: str
    months: int
    purchased_at: datetime
    order_number: str | None

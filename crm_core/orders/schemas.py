"""DTOs of the orders domain: what `OrderService` returns to the bot, console and CLI."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class OrderItemDTO(BaseModel):
    """One line of an order, with the product's names in both languages and its serials."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    product_id: int
    sku: str
    name_en: str
    name_zh: str
    category: str
    quantity: int
    unit_price: Decimal
    serial_numbers: list[str] = Field(default_factory=list)
    # Units of this line covered by a return that was not rejected (requested ... refunded).
    returned_quantity: int = 0


class OrderSummaryDTO(BaseModel):
    """An order in a list: no items, just what a customer recognises it by."""

    model_config = ConfigDict(from_attributes=True)

    order_number: str
    status: str
    channel: str
    placed_at: datetime
    delivered_at: datetime | None
    currency: str
    total: Decimal


class OrderDTO(OrderSummaryDTO):
    """An order with its items: the "where is my order / what did I buy" answer."""

    customer_id: int
    items: list[OrderItemDTO] = Field(default_factory=list)


class ReturnCode(StrEnum):
    """Machine-readable outcome of a return-eligibility check (`ReturnEligibility.code`)."""

    # Eligible outcomes.
    NO_REASON_RETURN = "no_reason_return"  # within return_window_days of delivery
    DOA_REPLACEMENT = "doa_replacement"  # faulty, within doa_window_days of delivery
    # Not eligible (with what to do instead, in the reason text).
    CANCEL_INSTEAD = "cancel_instead"  # not shipped yet: cancel the order
    NOT_DELIVERED = "not_delivered"  # on its way: refuse the parcel or wait for delivery
    ORDER_CANCELLED = "order_cancelled"
    ALREADY_RETURNED = "already_returned"
    DELIVERY_DATE_UNKNOWN = "delivery_date_unknown"
    WINDOW_EXPIRED = "window_expired"  # past the no-reason window (not faulty)
    DOA_WINDOW_EXPIRED = "doa_window_expired"  # faulty, past the DOA window: warranty RMA


class ReturnEligibility(BaseModel):
    """Whether (and how) an order or one of its items can go back, and why."""

    eligible: bool
    code: ReturnCode
    reason: str  # English, for agents and logs; the bot renders `code` from its locale files
    order_number: str
    order_item_id: int | None = None
    can_cancel: bool = False
    delivered_on: date | None = None
    # Last day (UTC date, inclusive) of the window that applies (no-reason or DOA).
    window_ends_on: date | None = None
    returnable_quantity: int = 0


class ReturnDTO(BaseModel):
    """A return request and where it stands."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    order_number: str
    order_item_id: int | None
    quantity: int
    reason: str
    status: str
    refund_amount: Decimal | None
    requested_at: datetime
    updated_at: datetime

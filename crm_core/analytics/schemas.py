"""DTOs of the analytics domain."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class RecomputeResult(BaseModel):
    """What one `AnalyticsService.recompute` run did."""

    computed_at: datetime
    customers: int
    customers_with_orders: int
    updated: int  # rows whose stage, RFM or lifetime value actually changed
    stages: dict[str, int] = Field(default_factory=dict)
    segments: dict[str, int] = Field(default_factory=dict)
    seconds: float


class CustomerSummary(BaseModel):
    """One customer's value and lifecycle, for the staff topic header and the console.

    Order figures, `lifecycle_stage` and `lifetime_value` are computed live from the orders;
    RFM scores and segment need the whole customer base and are the values stored by the last
    `recompute` run (None before the first run, or for customers without orders).
    """

    customer_id: int
    name: str
    lifecycle_stage: str
    order_count: int  # orders that were not cancelled
    first_order_at: datetime | None
    last_order_at: datetime | None
    lifetime_value: Decimal
    currency: str
    last_contact_at: datetime | None
    open_tickets: int
    rfm_recency: int | None
    rfm_frequency: int | None
    rfm_monetary: int | None
    rfm_segment: str | None

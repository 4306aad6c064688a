"""Attribution: which delivered pushes led to a purchase.

A delivered push (`sent`) converts when the customer placed an order (paid, shipped or
delivered) within `attribution_days` after it that contains a promoted product — or, for a
category push (`category` set, no products), any product of that category. Each order line
counts once per report (the earliest push before it wins), so two pushes of one campaign do
not double the revenue. Pushes that promote nothing (no products, no category) never convert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.campaigns.segments import PURCHASED_STATUSES
from crm_core.catalog.models import Product
from crm_core.orders.models import Order, OrderItem

CHUNK = 500


@dataclass(frozen=True)
class SentPush:
    delivery_id: int
    customer_id: int
    sent_at: datetime
    product_ids: tuple[int, ...]
    category: str | None


@dataclass
class Conversion:
    delivery_id: int
    order_ids: set[int]
    revenue: Decimal


async def conversions(
    session: AsyncSession, pushes: Sequence[SentPush], days: int
) -> dict[int, Conversion]:
    """delivery id → its conversion (only pushes that converted)."""
    promoting = [p for p in pushes if p.product_ids or p.category]
    if not promoting:
        return {}
    window = timedelta(days=days)
    by_customer: dict[int, list[SentPush]] = {}
    for push in sorted(promoting, key=lambda p: (p.sent_at, p.delivery_id)):
        by_customer.setdefault(push.customer_id, []).append(push)
    customer_ids = sorted(by_customer)
    earliest = min(p.sent_at for p in promoting)
    out: dict[int, Conversion] = {}
    seen_lines: set[int] = set()
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        rows = await session.execute(
            select(
                OrderItem.id,
                Order.id,
                Order.customer_id,
                Order.placed_at,
                OrderItem.product_id,
                Product.category,
                OrderItem.quantity,
                OrderItem.unit_price,
            )
            .join(Order, Order.id == OrderItem.order_id)
            .join(Product, Product.id == OrderItem.product_id)
            .where(
                Order.customer_id.in_(chunk),
                Order.status.in_(PURCHASED_STATUSES),
                Order.placed_at >= earliest,
            )
            .order_by(Order.placed_at, OrderItem.id)
        )
        for line_id, order_id, customer_id, placed_at, product_id, category, qty, price in rows:
            if line_id in seen_lines:
                continue
            for push in by_customer[customer_id]:
                if not push.sent_at <= placed_at <= push.sent_at + window:
                    continue
                promoted = (
                    product_id in push.product_ids
                    if push.product_ids
                    else category == push.category
                )
                if not promoted:
                    continue
                seen_lines.add(line_id)
                hit = out.setdefault(
                    push.delivery_id, Conversion(push.delivery_id, set(), Decimal(0))
                )
                hit.order_ids.add(order_id)
                hit.revenue += Decimal(qty) * Decimal(price)
                break
    return out

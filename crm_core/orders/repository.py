"""Queries of the orders domain (also used by warranties and tickets to find who owns a serial).

Every lookup here walks an index: `orders.order_number` (unique), `orders.customer_id`,
`order_items.order_id`, `order_item_serials.order_item_id`, `order_item_serials.serial_number`
(unique), `returns.order_id`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.models import Product
from crm_core.orders.models import Order, OrderItem, OrderItemSerial, Return

# Returns in these states no longer hold units back (the customer keeps the product).
INACTIVE_RETURN_STATUSES = ("rejected",)


@dataclass(frozen=True)
class SerialOwner:
    """Where a serial number was sold: its order line, order, customer and product."""

    serial_number: str
    order_item_id: int
    order_id: int
    order_number: str
    customer_id: int
    product_id: int


async def order_by_number(session: AsyncSession, order_number: str) -> Order | None:
    """The order with this (canonical) number, whoever it belongs to."""
    result = await session.execute(select(Order).where(Order.order_number == order_number))
    return result.scalar_one_or_none()


async def customer_order(
    session: AsyncSession, order_number: str, customer_id: int
) -> Order | None:
    """The order with this number if, and only if, it belongs to `customer_id`."""
    result = await session.execute(
        select(Order).where(Order.order_number == order_number, Order.customer_id == customer_id)
    )
    return result.scalar_one_or_none()


async def customer_orders(
    session: AsyncSession, customer_id: int, *, limit: int, offset: int
) -> Sequence[Order]:
    """A customer's orders, newest first."""
    result = await session.execute(
        select(Order)
        .where(Order.customer_id == customer_id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return result.scalars().all()


async def items_with_products(
    session: AsyncSession, order_id: int
) -> Sequence[tuple[OrderItem, Product]]:
    """The lines of one order with their products, in the order they were added."""
    result = await session.execute(
        select(OrderItem, Product)
        .join(Product, Product.id == OrderItem.product_id)
        .where(OrderItem.order_id == order_id)
        .order_by(OrderItem.id)
    )
    return [(row[0], row[1]) for row in result.all()]


async def serials_by_item(session: AsyncSession, item_ids: Sequence[int]) -> dict[int, list[str]]:
    """Serial numbers of the given order lines, grouped by line."""
    grouped: dict[int, list[str]] = defaultdict(list)
    if not item_ids:
        return grouped
    result = await session.execute(
        select(OrderItemSerial.order_item_id, OrderItemSerial.serial_number)
        .where(OrderItemSerial.order_item_id.in_(item_ids))
        .order_by(OrderItemSerial.id)
    )
    for item_id, serial in result.all():
        grouped[item_id].append(serial)
    return grouped


async def returned_quantities(session: AsyncSession, order_id: int) -> tuple[dict[int, int], bool]:
    """Units per order line held by returns that were not rejected.

    The second value is True when a whole-order return (no `order_item_id`, as imported from
    older systems) exists: then every line counts as returned.
    """
    result = await session.execute(
        select(Return.order_item_id, func.sum(Return.quantity))
        .where(Return.order_id == order_id, Return.status.not_in(INACTIVE_RETURN_STATUSES))
        .group_by(Return.order_item_id)
    )
    per_item: dict[int, int] = {}
    whole_order = False
    for item_id, quantity in result.all():
        if item_id is None:
            whole_order = True
        else:
            per_item[item_id] = int(quantity or 0)
    return per_item, whole_order


async def returns_of_order(session: AsyncSession, order_id: int) -> Sequence[Return]:
    result = await session.execute(
        select(Return).where(Return.order_id == order_id).order_by(Return.id)
    )
    return result.scalars().all()


async def serial_owner(session: AsyncSession, serial_number: str) -> SerialOwner | None:
    """Who bought the unit with this (canonical) serial number: one indexed join."""
    result = await session.execute(
        select(
            OrderItemSerial.serial_number,
            OrderItem.id,
            Order.id,
            Order.order_number,
            Order.customer_id,
            OrderItem.product_id,
        )
        .join(OrderItem, OrderItem.id == OrderItemSerial.order_item_id)
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItemSerial.serial_number == serial_number)
    )
    row = result.one_or_none()
    if row is None:
        return None
    return SerialOwner(
        serial_number=row[0],
        order_item_id=row[1],
        order_id=row[2],
        order_number=row[3],
        customer_id=row[4],
        product_id=row[5],
    )

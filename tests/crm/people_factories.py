"""Small builders for the customer/staff/lead/conversation tests (plain ORM rows, no services)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.models import Product
from crm_core.customers.models import Customer
from crm_core.orders.models import Order, OrderItem, OrderItemSerial
from crm_core.staff.models import StaffUser

_seq = itertools.count(1)


async def make_product(
    session: AsyncSession,
    *,
    sku: str | None = None,
    name_en: str = "RTX 4070 Super 12G",
    name_zh: str = "RTX 4070 Super 12G 显卡",
    category: str = "gpu",
    price: str = "4999.00",
) -> Product:
    n = next(_seq)
    product = Product(
        sku=sku or f"SKU-{n:05d}",
        name_en=name_en,
        name_zh=name_zh,
        category=category,
        brand="Acme",
        price=Decimal(price),
        warranty_months=36,
        specs={},
    )
    session.add(product)
    await session.flush()
    return product


async def make_customer(
    session: AsyncSession,
    *,
    name: str = "Li Wei",
    phone: str | None = None,
    email: str | None = None,
    telegram_user_id: int | None = None,
    lifecycle_stage: str = "active",
) -> Customer:
    customer = Customer(
        name=name,
        phone=phone,
        email=email,
        telegram_user_id=telegram_user_id,
        lifecycle_stage=lifecycle_stage,
    )
    session.add(customer)
    await session.flush()
    return customer


async def make_order(
    session: AsyncSession,
    customer_id: int,
    lines: list[tuple[Product, int, list[str]]],
    *,
    placed_at: datetime,
    number: str | None = None,
    delivered_after: timedelta | None = timedelta(days=3),
    status: str = "delivered",
) -> Order:
    """An order with (product, quantity, serial numbers) lines."""
    order = Order(
        order_number=number or f"SO-{10_000_000 + next(_seq):08d}",
        customer_id=customer_id,
        status=status,
        placed_at=placed_at,
        delivered_at=placed_at + delivered_after if delivered_after else None,
        total=sum((p.price * q for p, q, _ in lines), Decimal("0")),
    )
    for product, quantity, serials in lines:
        item = OrderItem(product_id=product.id, quantity=quantity, unit_price=product.price)
        item.serials = [OrderItemSerial(serial_number=s) for s in serials]
        order.items.append(item)
    session.add(order)
    await session.flush()
    return order


async def make_staff(
    session: AsyncSession, *, name: str = "Agent Zhang", role: str = "agent", active: bool = True
) -> StaffUser:
    staff = StaffUser(name=name, role=role, active=active)
    session.add(staff)
    await session.flush()
    return staff

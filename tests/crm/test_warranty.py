"""Warranty status: start, length, calendar-month end, expiring/expired/void, extensions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.catalog.models import Product
from crm_core.clock import FixedClock
from crm_core.customers.models import Customer
from crm_core.errors import Conflict, NotFound, ValidationFailed
from crm_core.orders.models import Order, OrderItem, OrderItemSerial
from crm_core.staff.models import StaffUser
from crm_core.warranties.models import WarrantyExtension
from crm_core.warranties.schemas import WarrantyState
from crm_core.warranties.service import WarrantyService, add_months
from tests.conftest import Database

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


def at(y: int, m: int, d: int, hh: int = 12) -> datetime:
    return datetime(y, m, d, hh, tzinfo=UTC)


async def sell(
    session: AsyncSession,
    *,
    serials: list[str],
    months: int = 36,
    delivered_at: datetime | None = None,
    placed_at: datetime | None = None,
    order_number: str = "SO-10000001",
    customer: Customer | None = None,
    status: str = "delivered",
    sku: str | None = None,
) -> Customer:
    """One order of one product with the given serials; returns the customer."""
    if customer is None:
        customer = Customer(name="Zhang San")
        session.add(customer)
        await session.flush()
    product = Product(
        sku=sku or f"SKU-{order_number}",
        name_en="Graphics card X",
        name_zh="显卡 X",
        category="gpu",
        brand="NorthBridge",
        price=Decimal("3999.00"),
        warranty_months=months,
    )
    session.add(product)
    await session.flush()
    order = Order(
        order_number=order_number,
        customer_id=customer.id,
        status=status,
        placed_at=placed_at or delivered_at or at(2025, 1, 1),
        delivered_at=delivered_at,
        total=Decimal("3999.00"),
    )
    session.add(order)
    await session.flush()
    item = OrderItem(
        order_id=order.id,
        product_id=product.id,
        quantity=max(1, len(serials)),
        unit_price=product.price,
    )
    session.add(item)
    await session.flush()
    for serial in serials:
        session.add(OrderItemSerial(order_item_id=item.id, serial_number=serial))
    await session.flush()
    return customer


@pytest.fixture
def service(session: AsyncSession, clock: FixedClock) -> WarrantyService:
    return WarrantyService(session, clock, CrmSection())


@contextmanager
def count_queries(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


def test_calendar_months_clamp_to_the_end_of_the_month() -> None:
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2024, 2, 29), 48) == date(2028, 2, 29)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2024, 3, 14), 36) == date(2027, 3, 14)
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)


async def test_warranty_starting_on_a_leap_day_ends_on_february_28(
    session: AsyncSession, service: WarrantyService, clock: FixedClock
) -> None:
    await sell(session, serials=["SNLEAP000001"], months=12, delivered_at=at(2024, 2, 29))
    clock.set(at(2025, 2, 28, 23))

    last_day = await service.warranty_by_serial("SNLEAP000001")
    clock.set(at(2025, 3, 1, 0))
    next_day = await service.warranty_by_serial("SNLEAP000001")

    assert last_day.starts_on == date(2024, 2, 29)
    assert last_day.ends_on == date(2025, 2, 28)
    assert last_day.status == WarrantyState.EXPIRING
    assert last_day.reason == (
        "Expiring today, on 2025-02-28 (12 months from delivery on 2024-02-29)"
    )
    assert next_day.status == WarrantyState.EXPIRED
    assert next_day.reason == "Expired on 2025-02-28 (12 months from delivery on 2024-02-29)"


async def test_extension_adds_its_months_and_the_reason_says_so(
    session: AsyncSession, service: WarrantyService
) -> None:
    await sell(session, serials=["SNEXT0000001"], months=24, delivered_at=at(2024, 3, 14))
    # Bought back when the standard warranty was still running.
    session.add(
        WarrantyExtension(serial_number="SNEXT0000001", months=12, purchased_at=at(2025, 1, 2))
    )
    await session.flush()

    status = await service.warranty_by_serial("SNEXT0000001")

    assert status.status == WarrantyState.ACTIVE
    assert (status.standard_months, status.extension_months, status.total_months) == (24, 12, 36)
    assert status.reason == (
        "Active until 2027-03-14 (36 months from delivery on 2024-03-14, "
        "incl. 12 months extended warranty)"
    )
    assert not status.extension_available  # the standard warranty ended on 2026-03-14


async def test_buying_an_extension_while_the_standard_warranty_runs(
    session: AsyncSession, service: WarrantyService
) -> None:
    # 24 months from 2024-06-20: ends 2026-06-20, 5 days after "now" (2026-06-15).
    await sell(session, serials=["SNEXT0000002"], months=24, delivered_at=at(2024, 6, 20))
    before = await service.warranty_by_serial("SNEXT0000002")

    after = await service.add_extension("snext0000002", 24, "SO-20000001")

    assert before.status == WarrantyState.EXPIRING and before.extension_available
    assert after.status == WarrantyState.ACTIVE
    assert after.ends_on == date(2028, 6, 20)
    assert "incl. 24 months extended warranty" in after.reason
    [extension] = await service.extensions("SNEXT0000002")
    assert extension.order_number == "SO-20000001" and extension.months == 24
    with pytest.raises(Conflict):
        await service.add_extension("SNEXT0000002", 12, "SO-20000001")
    with pytest.raises(ValidationFailed, match="12 or 24 months"):
        await service.add_extension("SNEXT0000002", 6, "SO-20000002")


async def test_extension_after_the_standard_warranty_expired_is_refused(
    session: AsyncSession, service: WarrantyService
) -> None:
    await sell(session, serials=["SNOLD0000001"], months=12, delivered_at=at(2025, 6, 1))

    with pytest.raises(ValidationFailed, match="ended on 2026-06-01"):
        await service.add_extension("SNOLD0000001", 12, "SO-20000001")
    assert await service.extensions("SNOLD0000001") == []


async def test_no_delivery_date_counts_from_the_purchase_date_and_says_so(
    session: AsyncSession, service: WarrantyService
) -> None:
    await sell(
        session, serials=["SNNODELIVERY"], months=36, placed_at=at(2025, 1, 10), status="shipped"
    )

    status = await service.warranty_by_serial("SNNODELIVERY")

    assert status.start_basis == "purchase"
    assert status.starts_on == date(2025, 1, 10)
    assert status.ends_on == date(2028, 1, 10)
    assert status.status == WarrantyState.ACTIVE
    assert status.reason.startswith(
        "Active until 2028-01-10 (36 months from purchase on 2025-01-10"
    )
    assert "delivery date is unknown" in status.reason


async def test_void_makes_the_warranty_void_and_blocks_extensions(
    session: AsyncSession, service: WarrantyService, clock: FixedClock
) -> None:
    await sell(session, serials=["SNVOID000001"], months=36, delivered_at=at(2026, 1, 5))
    agent = StaffUser(name="Agent Wu", role="agent")
    session.add(agent)
    await session.flush()

    status = await service.void("SNVOID000001", "Liquid damage on the PCB", agent.id)

    assert status.status == WarrantyState.VOID
    assert status.reason == "Void: Liquid damage on the PCB (voided on 2026-06-15)"
    assert not status.extension_available
    with pytest.raises(Conflict, match="already void"):
        await service.void("SNVOID000001", "again", agent.id)
    with pytest.raises(ValidationFailed, match="void"):
        await service.add_extension("SNVOID000001", 12, "SO-20000001")
    with pytest.raises(ValidationFailed):
        await service.void("SNVOID000001", "   ", agent.id)


async def test_expiring_boundary_is_exactly_30_days(
    session: AsyncSession, service: WarrantyService
) -> None:
    # now = 2026-06-15. 12-month warranties ending in 30 days, 31 days, today, yesterday.
    customer = await sell(
        session, serials=["SNDAYS000030"], months=12, delivered_at=at(2025, 7, 15)
    )
    for number, serial, delivered in [
        ("SO-10000002", "SNDAYS000031", at(2025, 7, 16)),
        ("SO-10000003", "SNDAYS000000", at(2025, 6, 15)),
        ("SO-10000004", "SNDAYSMINUS1", at(2025, 6, 14)),
    ]:
        await sell(
            session,
            serials=[serial],
            months=12,
            delivered_at=delivered,
            order_number=number,
            customer=customer,
        )

    days30 = await service.warranty_by_serial("SNDAYS000030")
    days31 = await service.warranty_by_serial("SNDAYS000031")
    today = await service.warranty_by_serial("SNDAYS000000")
    yesterday = await service.warranty_by_serial("SNDAYSMINUS1")

    assert (days30.status, days30.days_left) == (WarrantyState.EXPIRING, 30)
    assert days30.reason.startswith("Expiring in 30 days, on 2026-07-15")
    assert (days31.status, days31.days_left) == (WarrantyState.ACTIVE, 31)
    assert (today.status, today.days_left) == (WarrantyState.EXPIRING, 0)
    assert (yesterday.status, yesterday.days_left) == (WarrantyState.EXPIRED, 0)


async def test_serial_lookup_accepts_lower_case_and_spaces_and_hides_other_customers_units(
    session: AsyncSession, service: WarrantyService
) -> None:
    owner = await sell(session, serials=["SNABCDEF1234"], delivered_at=at(2026, 1, 1))
    other = Customer(name="Someone else")
    session.add(other)
    await session.flush()

    status = await service.warranty_by_serial("  snabcdef1234 ")

    assert status.serial_number == "SNABCDEF1234" and status.customer_id == owner.id
    assert status.product_name_zh == "显卡 X"
    assert (await service.warranty_by_serial("SNABCDEF1234", customer_id=owner.id)).status
    with pytest.raises(NotFound) as foreign:
        await service.warranty_by_serial("SNABCDEF1234", customer_id=other.id)
    with pytest.raises(NotFound) as missing:
        await service.warranty_by_serial("SNZZZZZZZZZZ", customer_id=other.id)
    assert str(foreign.value) == str(missing.value).replace("SNZZZZZZZZZZ", "SNABCDEF1234")
    with pytest.raises(NotFound, match="not a serial number"):
        await service.warranty_by_serial("hello")


async def test_warranty_for_telegram_user_lists_their_units_in_one_query(
    session: AsyncSession, service: WarrantyService, db: Database
) -> None:
    customer = await sell(
        session, serials=["SNTG00000001", "SNTG00000002"], delivered_at=at(2025, 1, 1)
    )
    customer.telegram_user_id = 777000111
    await sell(
        session,
        serials=["SNTG00000003"],
        delivered_at=at(2026, 2, 1),
        order_number="SO-10000002",
        customer=customer,
    )
    await sell(
        session,
        serials=["SNTG00000004"],
        order_number="SO-10000003",
        customer=customer,
        status="cancelled",
    )
    await sell(session, serials=["SNOTHER00001"], order_number="SO-10000004")
    session.add(
        WarrantyExtension(serial_number="SNTG00000001", months=12, purchased_at=at(2025, 2, 1))
    )
    await session.flush()

    with count_queries(db) as statements:
        units = await service.warranty_for_telegram_user(777000111)

    assert len(statements) == 1
    assert [u.serial_number for u in units] == ["SNTG00000003", "SNTG00000001", "SNTG00000002"]
    assert [u.extension_months for u in units] == [0, 12, 0]
    assert await service.warranty_for_telegram_user(123) == []


async def test_warranty_per_order_item_includes_lines_without_serials(
    session: AsyncSession, service: WarrantyService
) -> None:
    customer = await sell(session, serials=[], months=12, delivered_at=at(2026, 3, 1))
    other = Customer(name="Other")
    session.add(other)
    await session.flush()

    [line] = await service.warranty_for_order("SO-10000001", customer.id)

    assert line.serial_number is None
    assert line.ends_on == date(2027, 3, 1) and line.status == WarrantyState.ACTIVE
    same = await service.warranty_for_order(
        "SO-10000001", customer.id, order_item_id=line.order_item_id
    )
    assert same == [line]
    with pytest.raises(NotFound, match="No order SO-10000001"):
        await service.warranty_for_order("SO-10000001", other.id)


async def test_units_of_returned_orders_are_not_covered(
    session: AsyncSession, service: WarrantyService
) -> None:
    await sell(session, serials=["SNRETURNED01"], delivered_at=at(2026, 6, 1), status="returned")

    status = await service.warranty_by_serial("SNRETURNED01")

    assert status.status == WarrantyState.VOID
    assert status.reason == "Not covered: order SO-10000001 was returned"

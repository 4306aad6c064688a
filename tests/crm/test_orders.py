"""Orders: lookups with access checks, cancellation, return eligibility and return states."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.catalog.models import Product
from crm_core.clock import FixedClock
from crm_core.customers.models import Customer
from crm_core.errors import InvalidTransition, NotFound, ValidationFailed
from crm_core.orders.models import Order, OrderItem, OrderItemSerial
from crm_core.orders.schemas import ReturnCode
from crm_core.orders.service import OrderService

# The session-wide migrated databases are built up front: conftest's `db` fixture would
# otherwise create them lazily from inside the running event loop (asyncio.run fails there).
pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


def at(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


async def make_customer(session: AsyncSession, name: str = "Li Wei") -> Customer:
    customer = Customer(name=name)
    session.add(customer)
    await session.flush()
    return customer


async def make_product(
    session: AsyncSession, sku: str, *, category: str = "gpu", months: int = 36
) -> Product:
    product = Product(
        sku=sku,
        name_en=f"Product {sku}",
        name_zh=f"产品 {sku}",
        category=category,
        brand="NorthBridge",
        price=Decimal("999.00"),
        warranty_months=months,
    )
    session.add(product)
    await session.flush()
    return product


async def make_order(
    session: AsyncSession,
    customer: Customer,
    number: str,
    lines: list[tuple[Product, int, list[str]]],
    *,
    status: str = "delivered",
    placed_at: datetime | None = None,
    delivered_at: datetime | None = None,
) -> Order:
    order = Order(
        order_number=number,
        customer_id=customer.id,
        status=status,
        placed_at=placed_at or at(2026, 5, 28),
        delivered_at=delivered_at,
        total=sum((product.price * qty for product, qty, _ in lines), Decimal("0")),
    )
    session.add(order)
    await session.flush()
    for product, qty, serials in lines:
        item = OrderItem(
            order_id=order.id, product_id=product.id, quantity=qty, unit_price=product.price
        )
        session.add(item)
        await session.flush()
        for serial in serials:
            session.add(OrderItemSerial(order_item_id=item.id, serial_number=serial))
    await session.flush()
    return order


@pytest.fixture
def settings() -> CrmSection:
    return CrmSection()


async def test_customer_sees_own_order_with_product_names_and_serials(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    ram = await make_product(session, "RAM-1", category="ram", months=60)
    await make_order(
        session,
        customer,
        "SO-10000001",
        [(gpu, 1, ["SNAAAAAAAAA1"]), (ram, 2, ["SNBBBBBBBBB1", "SNBBBBBBBBB2"])],
        delivered_at=at(2026, 6, 1),
    )
    service = OrderService(session, clock, settings)

    order = await service.order_status("so 10000001", customer.id)

    assert order.order_number == "SO-10000001"
    assert order.status == "delivered"
    assert order.delivered_at == at(2026, 6, 1)
    assert [i.name_zh for i in order.items] == ["产品 GPU-1", "产品 RAM-1"]
    assert [i.name_en for i in order.items] == ["Product GPU-1", "Product RAM-1"]
    assert order.items[1].serial_numbers == ["SNBBBBBBBBB1", "SNBBBBBBBBB2"]
    assert order.total == Decimal("2997.00")


async def test_tampered_access_to_another_customers_order_is_not_found_like_a_missing_one(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    owner = await make_customer(session, "Owner")
    other = await make_customer(session, "Other")
    gpu = await make_product(session, "GPU-1")
    await make_order(session, owner, "SO-10000001", [(gpu, 1, [])], delivered_at=at(2026, 6, 1))
    service = OrderService(session, clock, settings)

    with pytest.raises(NotFound) as foreign:
        await service.get_order("SO-10000001", other.id)
    with pytest.raises(NotFound) as missing:
        await service.get_order("SO-19999999", other.id)
    with pytest.raises(NotFound):
        await service.return_eligibility("SO-10000001", other.id)
    with pytest.raises(NotFound):
        await service.request_return("SO-10000001", other.id)

    assert str(foreign.value) == str(missing.value).replace("19999999", "10000001")
    assert "SO-10000001" in str(foreign.value)


async def test_list_orders_returns_only_the_customers_orders_newest_first(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    other = await make_customer(session, "Other")
    gpu = await make_product(session, "GPU-1")
    await make_order(session, customer, "SO-10000001", [(gpu, 1, [])], placed_at=at(2025, 1, 1))
    await make_order(session, customer, "SO-10000002", [(gpu, 1, [])], placed_at=at(2026, 1, 1))
    await make_order(session, other, "SO-10000003", [(gpu, 1, [])], placed_at=at(2026, 2, 1))

    orders = await OrderService(session, clock, settings).list_orders(customer.id)

    assert [o.order_number for o in orders] == ["SO-10000002", "SO-10000001"]


async def test_return_window_edge_day_14_is_eligible_and_day_15_is_not(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    # Delivered late on 06-01 (UTC): day 14 is 06-15, the last day of the window.
    await make_order(
        session, customer, "SO-10000001", [(gpu, 1, [])], delivered_at=at(2026, 6, 1, 23, 30)
    )
    service = OrderService(session, clock, settings)

    clock.set(at(2026, 6, 15, 23, 59))
    day14 = await service.return_eligibility("SO-10000001", customer.id)
    clock.set(at(2026, 6, 16, 0, 1))
    day15 = await service.return_eligibility("SO-10000001", customer.id)

    assert day14.eligible and day14.code == ReturnCode.NO_REASON_RETURN
    assert day14.window_ends_on is not None and day14.window_ends_on.isoformat() == "2026-06-15"
    assert "2026-06-15" in day14.reason
    assert not day15.eligible and day15.code == ReturnCode.WINDOW_EXPIRED
    assert "ended on 2026-06-15" in day15.reason
    # Still within the DOA window: the reason points there.
    assert "dead on arrival until 2026-07-01" in day15.reason
    with pytest.raises(ValidationFailed, match="return window ended"):
        await service.request_return("SO-10000001", customer.id)


async def test_paid_order_not_delivered_can_be_cancelled_instead_of_returned(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    await make_order(session, customer, "SO-10000001", [(gpu, 1, [])], status="paid")
    await make_order(session, customer, "SO-10000002", [(gpu, 1, [])], status="shipped")
    service = OrderService(session, clock, settings)

    paid = await service.return_eligibility("SO-10000001", customer.id)
    shipped = await service.return_eligibility("SO-10000002", customer.id)

    assert not paid.eligible and paid.code == ReturnCode.CANCEL_INSTEAD and paid.can_cancel
    assert "cancel" in paid.reason
    assert not shipped.eligible and shipped.code == ReturnCode.NOT_DELIVERED
    assert not shipped.can_cancel
    cancelled = await service.cancel_order("SO-10000001", customer.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(ValidationFailed, match="can no longer be cancelled"):
        await service.cancel_order("SO-10000002", customer.id)
    after = await service.return_eligibility("SO-10000001", customer.id)
    assert after.code == ReturnCode.ORDER_CANCELLED


async def test_delivered_order_without_delivery_date_is_left_to_an_agent(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    await make_order(session, customer, "SO-10000001", [(gpu, 1, [])], status="delivered")

    result = await OrderService(session, clock, settings).return_eligibility(
        "SO-10000001", customer.id
    )

    assert not result.eligible and result.code == ReturnCode.DELIVERY_DATE_UNKNOWN


async def test_faulty_item_is_doa_within_30_days_and_a_warranty_case_after(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    await make_order(
        session, customer, "SO-10000001", [(gpu, 1, ["SNAAAAAAAAA1"])], delivered_at=at(2026, 5, 16)
    )
    service = OrderService(session, clock, settings)

    # 2026-06-15 is day 30 after 05-16.
    doa = await service.return_eligibility(
        "SO-10000001", customer.id, serial_number="snaaaaaaaaa1", faulty=True
    )
    plain = await service.return_eligibility("SO-10000001", customer.id)
    clock.set(at(2026, 6, 16))
    late = await service.return_eligibility("SO-10000001", customer.id, faulty=True)
    clock.set(at(2026, 6, 15, 23))
    doa_return = await service.request_return(
        "SO-10000001", customer.id, serial_number="SNAAAAAAAAA1", faulty=True, reason="no video"
    )

    assert doa.eligible and doa.code == ReturnCode.DOA_REPLACEMENT
    assert doa.order_item_id is not None
    assert doa_return.reason == "[DOA] no video [SNAAAAAAAAA1]"
    assert not plain.eligible and plain.code == ReturnCode.WINDOW_EXPIRED
    assert not late.eligible and late.code == ReturnCode.DOA_WINDOW_EXPIRED
    assert "warranty" in late.reason


async def test_request_return_limits_quantity_to_bought_minus_already_returned(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    ram = await make_product(session, "RAM-1", category="ram")
    await make_order(session, customer, "SO-10000001", [(ram, 2, [])], delivered_at=at(2026, 6, 10))
    service = OrderService(session, clock, settings)

    with pytest.raises(ValidationFailed, match="Only 2 unit"):
        await service.request_return("SO-10000001", customer.id, quantity=3)
    first = await service.request_return("SO-10000001", customer.id, quantity=1, reason="too slow")
    with pytest.raises(ValidationFailed, match="Only 1 unit"):
        await service.request_return("SO-10000001", customer.id, quantity=2)
    second = await service.request_return("SO-10000001", customer.id)
    after = await service.return_eligibility("SO-10000001", customer.id)
    order = await service.get_order("SO-10000001", customer.id)

    assert first.status == "requested" and first.quantity == 1 and first.reason == "too slow"
    assert second.quantity == 1
    assert not after.eligible and after.code == ReturnCode.ALREADY_RETURNED
    assert order.items[0].returned_quantity == 2


async def test_request_return_needs_the_item_when_the_order_has_several(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    ram = await make_product(session, "RAM-1", category="ram")
    order = await make_order(
        session,
        customer,
        "SO-10000001",
        [(gpu, 1, ["SNAAAAAAAAA1"]), (ram, 1, [])],
        delivered_at=at(2026, 6, 10),
    )
    service = OrderService(session, clock, settings)

    with pytest.raises(ValidationFailed, match="say which one"):
        await service.request_return("SO-10000001", customer.id)
    by_serial = await service.request_return(
        "SO-10000001", customer.id, serial_number="SNAAAAAAAAA1"
    )
    remaining = await service.request_return("SO-10000001", customer.id)

    dto = await service.get_order(order.order_number, customer.id)
    assert by_serial.order_item_id == dto.items[0].id
    assert by_serial.reason == "[SNAAAAAAAAA1]"
    assert remaining.order_item_id == dto.items[1].id
    with pytest.raises(NotFound, match="not on order"):
        await service.return_eligibility("SO-10000001", customer.id, serial_number="SNZZZZZZZZZ9")


async def test_return_moves_requested_approved_received_refunded_and_order_becomes_returned(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    await make_order(session, customer, "SO-10000001", [(gpu, 1, [])], delivered_at=at(2026, 6, 10))
    service = OrderService(session, clock, settings)
    ret = await service.request_return("SO-10000001", customer.id)

    with pytest.raises(InvalidTransition, match="Allowed: approved, rejected"):
        await service.transition_return(ret.id, "refunded")
    await service.transition_return(ret.id, "approved")
    await service.transition_return(ret.id, "received")
    refunded = await service.transition_return(ret.id, "refunded")

    assert refunded.status == "refunded"
    assert refunded.refund_amount == Decimal("999.00")
    assert (await service.get_order("SO-10000001", customer.id)).status == "returned"
    with pytest.raises(InvalidTransition, match="final state"):
        await service.transition_return(ret.id, "rejected")
    eligibility = await service.return_eligibility("SO-10000001", customer.id)
    assert eligibility.code == ReturnCode.ALREADY_RETURNED


async def test_rejected_return_frees_the_units_again(
    session: AsyncSession, clock: FixedClock, settings: CrmSection
) -> None:
    customer = await make_customer(session)
    gpu = await make_product(session, "GPU-1")
    await make_order(session, customer, "SO-10000001", [(gpu, 1, [])], delivered_at=at(2026, 6, 10))
    service = OrderService(session, clock, settings)
    ret = await service.request_return("SO-10000001", customer.id)

    rejected = await service.transition_return(ret.id, "rejected")
    again = await service.return_eligibility("SO-10000001", customer.id)

    assert rejected.status == "rejected"
    assert again.eligible and again.returnable_quantity == 1
    assert [r.status for r in await service.returns_for_order("SO-10000001", customer.id)] == [
        "rejected"
    ]

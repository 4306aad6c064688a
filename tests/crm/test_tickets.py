"""Tickets: state machine, numbers, SLA, access checks, RMA warranty rule, queues."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.catalog.models import Product
from crm_core.clock import FixedClock
from crm_core.customers.models import Customer
from crm_core.errors import InvalidTransition, NotFound, ValidationFailed
from crm_core.orders.models import Order, OrderItem, OrderItemSerial
from crm_core.staff.models import StaffUser
from crm_core.tickets import service as ticket_module
from crm_core.tickets.models import Ticket
from crm_core.tickets.service import RmaRefused, TicketService, normalize_ticket_number
from crm_core.tickets.state_machine import (
    TRANSITIONS,
    TicketStatus,
    allowed_targets,
    check_transition,
)
from crm_core.warranties.models import WarrantyVoid
from tests.conftest import Database

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

STAFF = "staff:1"


def at(y: int, m: int, d: int, hh: int = 12) -> datetime:
    return datetime(y, m, d, hh, tzinfo=UTC)


class World:
    """Two customers; Alice owns an in-warranty GPU and an out-of-warranty keyboard."""

    alice: Customer
    bob: Customer
    gpu: Product
    keyboard: Product


async def make_world(session: AsyncSession) -> World:
    w = World()
    w.alice, w.bob = Customer(name="Alice"), Customer(name="Bob")
    w.gpu = Product(
        sku="GPU-1",
        name_en="RTX card",
        name_zh="显卡",
        category="gpu",
        brand="NB",
        price=Decimal("4999"),
        warranty_months=36,
    )
    w.keyboard = Product(
        sku="KB-1",
        name_en="Keyboard",
        name_zh="键盘",
        category="keyboard",
        brand="NB",
        price=Decimal("299"),
        warranty_months=24,
    )
    session.add_all([w.alice, w.bob, w.gpu, w.keyboard])
    await session.flush()
    for number, product, serial, delivered in [
        ("SO-10000001", w.gpu, "SNGPU0000001", at(2025, 6, 1)),
        ("SO-10000002", w.keyboard, "SNKBD0000001", at(2023, 1, 10)),
    ]:
        order = Order(
            order_number=number,
            customer_id=w.alice.id,
            status="delivered",
            placed_at=delivered - timedelta(days=2),
            delivered_at=delivered,
            total=product.price,
        )
        session.add(order)
        await session.flush()
        item = OrderItem(
            order_id=order.id, product_id=product.id, quantity=1, unit_price=product.price
        )
        session.add(item)
        await session.flush()
        session.add(OrderItemSerial(order_item_id=item.id, serial_number=serial))
    await session.flush()
    return w


@pytest.fixture
def settings() -> CrmSection:
    return CrmSection()


@pytest.fixture
def service(session: AsyncSession, clock: FixedClock, settings: CrmSection) -> TicketService:
    return TicketService(session, clock, settings)


async def force_status(session: AsyncSession, number: str, status: str) -> None:
    ticket = (
        await session.execute(select(Ticket).where(Ticket.ticket_number == number))
    ).scalar_one()
    ticket.status = status
    await session.flush()


# --- the state machine as data ------------------------------------------------------------


def all_pairs() -> Iterator[tuple[TicketStatus, TicketStatus]]:
    return itertools.product(TicketStatus, TicketStatus)


def test_transition_table_is_exactly_the_documented_one() -> None:
    table = {src.value: sorted(t.value for t in dst) for src, dst in TRANSITIONS.items()}
    assert table == {
        "new": ["triaged"],
        "triaged": ["in_progress", "waiting_customer"],
        "waiting_customer": ["in_progress", "resolved"],
        "in_progress": ["resolved", "rma", "waiting_customer"],
        "rma": ["in_progress", "resolved"],
        "resolved": ["closed", "in_progress"],
        "closed": ["in_progress", "triaged"],
    }


def test_every_pair_outside_the_table_is_refused_naming_the_allowed_targets() -> None:
    refused = 0
    for src, dst in all_pairs():
        if dst in TRANSITIONS[src]:
            assert check_transition(src, dst) == dst
            continue
        refused += 1
        with pytest.raises(InvalidTransition) as exc:
            check_transition(src, dst)
        allowed = ", ".join(t.value for t in allowed_targets(src))
        assert f"allowed from {src.value}: {allowed}" in str(exc.value)
    assert refused == 49 - 14
    with pytest.raises(InvalidTransition, match="Unknown ticket status 'done'"):
        check_transition("new", "done")


# --- the service ------------------------------------------------------------------------


async def test_ticket_every_allowed_transition_is_applied_and_recorded(
    session: AsyncSession, service: TicketService
) -> None:
    w = await make_world(session)
    for src, dst in [(s, d) for s, targets in TRANSITIONS.items() for d in sorted(targets)]:
        ticket = await service.create(w.alice.id, symptom=f"{src} to {dst}")
        await force_status(session, ticket.ticket_number, src.value)

        moved = await service.transition(ticket.ticket_number, dst, actor=STAFF, note="step")

        assert moved.status == dst.value, (src, dst)
        last = (await service.events(ticket.ticket_number))[-1]
        assert (last.from_status, last.to_status, last.actor, last.note) == (
            src.value,
            dst.value,
            STAFF,
            "step",
        )


async def test_ticket_walks_the_main_path_and_records_history(
    session: AsyncSession, service: TicketService, clock: FixedClock
) -> None:
    w = await make_world(session)
    ticket = await service.create(
        w.alice.id, kind="fault", symptom="风扇不转\nsince yesterday", serial_number="sngpu0000001"
    )
    number = ticket.ticket_number
    path = ["triaged", "in_progress", "waiting_customer", "in_progress", "rma", "resolved"]
    for status in path:
        clock.advance(timedelta(hours=1))
        await service.transition(number, status, actor=STAFF, note=f"to {status}")
    resolved = await service.get(number)
    clock.advance(timedelta(days=2))
    closed = await service.transition(number, "closed", actor="system")

    assert ticket.status == "new" and ticket.category == "gpu" and ticket.product_id == w.gpu.id
    assert ticket.subject == "风扇不转"
    assert resolved.resolved_at == at(2026, 6, 15, 18)
    assert resolved.resolution == "to resolved"
    assert closed.closed_at == at(2026, 6, 17, 18) and closed.allowed_transitions == [
        "triaged",
        "in_progress",
    ]
    history = await service.events(number)
    assert [e.to_status for e in history] == ["new", *path, "closed"]
    assert history[0].from_status is None and history[0].actor == f"customer:{w.alice.id}"


async def test_ticket_invalid_transitions_are_refused_and_change_nothing(
    session: AsyncSession, service: TicketService
) -> None:
    w = await make_world(session)
    ticket = await service.create(w.alice.id, symptom="no display")
    number = ticket.ticket_number

    with pytest.raises(InvalidTransition, match="allowed from new: triaged"):
        await service.transition(number, "resolved", actor=STAFF)
    with pytest.raises(InvalidTransition):
        await service.transition(number, "closed", actor=STAFF)
    await service.transition(number, "triaged", actor=STAFF)
    with pytest.raises(InvalidTransition, match="waiting_customer, in_progress"):
        await service.transition(number, "rma", actor=STAFF)
    with pytest.raises(InvalidTransition):
        await service.transition(number, "triaged", actor=STAFF)
    with pytest.raises(InvalidTransition, match="Unknown ticket status"):
        await service.transition(number, "done", actor=STAFF)

    assert (await service.get(number)).status == "triaged"
    assert [e.to_status for e in await service.events(number)] == ["new", "triaged"]


async def test_reopen_clears_resolution_times_and_restarts_the_sla(
    session: AsyncSession, service: TicketService, clock: FixedClock
) -> None:
    w = await make_world(session)
    number = (await service.create(w.alice.id, symptom="BSOD", priority="high")).ticket_number
    for status in ["triaged", "in_progress", "resolved", "closed"]:
        await service.transition(number, status, actor=STAFF)
    clock.advance(timedelta(days=3))

    reopened = await service.transition(number, "in_progress", actor="customer:1", note="again")

    assert reopened.status == "in_progress"
    assert reopened.resolved_at is None and reopened.closed_at is None
    assert reopened.sla_due_at == clock.now() + timedelta(hours=8)
    await service.transition(number, "resolved", actor=STAFF)
    back = await service.transition(number, "in_progress", actor=STAFF)
    assert back.resolved_at is None


@pytest.mark.parametrize(
    ("kind", "priority", "hours", "expected_priority"),
    [
        ("fault", "urgent", 4, "urgent"),
        ("fault", "high", 8, "high"),
        ("fault", None, 24, "normal"),
        ("repair", "low", 72, "low"),
        ("complaint", None, 8, "high"),
    ],
)
async def test_sla_due_by_priority(
    session: AsyncSession,
    service: TicketService,
    clock: FixedClock,
    kind: str,
    priority: str | None,
    hours: int,
    expected_priority: str,
) -> None:
    w = await make_world(session)

    ticket = await service.create(w.alice.id, kind=kind, symptom="help", priority=priority)

    assert ticket.priority == expected_priority
    assert ticket.sla_due_at == clock.now() + timedelta(hours=hours)


async def test_unknown_kind_or_priority_or_empty_symptom_is_refused(
    session: AsyncSession, service: TicketService
) -> None:
    w = await make_world(session)
    with pytest.raises(ValidationFailed, match="kind"):
        await service.create(w.alice.id, kind="question", symptom="x")
    with pytest.raises(ValidationFailed, match="priority"):
        await service.create(w.alice.id, symptom="x", priority="asap")
    with pytest.raises(ValidationFailed, match="symptom"):
        await service.create(w.alice.id, symptom="   ")
    with pytest.raises(NotFound):
        await service.create(999_999, symptom="x")


async def test_ticket_numbers_are_tk_and_8_digits_and_a_taken_number_is_drawn_again(
    session: AsyncSession,
    service: TicketService,
    monkeypatch: pytest.MonkeyPatch,
    db: Database,
) -> None:
    w = await make_world(session)
    first = await service.create(w.alice.id, symptom="one")
    draws = iter([first.ticket_number, first.ticket_number, "TK-00000042"])
    monkeypatch.setattr(ticket_module, "_random_number", lambda: next(draws))

    second = await service.create(w.alice.id, symptom="two")

    assert re.fullmatch(r"TK-\d{8}", first.ticket_number)
    assert second.ticket_number == "TK-00000042"
    assert normalize_ticket_number(" tk 00000042 ") == "TK-00000042"

    if db.kind == "postgres":
        # A concurrent writer took the number between the check and the insert: the
        # savepoint rolls back and another number is drawn.
        draws = iter(["TK-00000042", "TK-00000043"])
        checks = iter([True, True])

        async def racing_check(self: TicketService, number: str) -> bool:
            return next(checks)

        monkeypatch.setattr(TicketService, "_number_is_free", racing_check)
        third = await service.create(w.alice.id, symptom="three")
        assert third.ticket_number == "TK-00000043"
        assert len(await service.list_for_customer(w.alice.id)) == 3


async def test_tampered_access_to_another_customers_ticket_is_not_found(
    session: AsyncSession, service: TicketService
) -> None:
    w = await make_world(session)
    ticket = await service.create(w.alice.id, symptom="artifacts", attachments=["file-1"])

    with pytest.raises(NotFound) as foreign:
        await service.get_for_customer(ticket.ticket_number, w.bob.id)
    with pytest.raises(NotFound) as missing:
        await service.get_for_customer("TK-99999999", w.bob.id)
    with pytest.raises(NotFound):
        await service.add_attachment(ticket.ticket_number, "evil", customer_id=w.bob.id)
    with pytest.raises(NotFound):
        await service.events(ticket.ticket_number, customer_id=w.bob.id)

    assert str(foreign.value) == str(missing.value).replace("TK-99999999", ticket.ticket_number)
    own = await service.get_for_customer(ticket.ticket_number.lower(), w.alice.id)
    assert own.attachments == ["file-1"]
    assert await service.list_for_customer(w.bob.id) == []


async def test_serial_on_a_ticket_must_belong_to_the_customer(
    session: AsyncSession, service: TicketService
) -> None:
    w = await make_world(session)

    with pytest.raises(NotFound, match="SNGPU0000001"):
        await service.create(w.bob.id, symptom="mine now", serial_number="SNGPU0000001")
    by_product = await service.create(w.bob.id, symptom="question", product_id=w.keyboard.id)

    assert by_product.category == "keyboard" and by_product.serial_number is None


async def test_rma_out_of_warranty_is_refused_and_points_to_paid_repair(
    session: AsyncSession, service: TicketService
) -> None:
    w = await make_world(session)

    with pytest.raises(RmaRefused) as refused:
        await service.create(
            w.alice.id, kind="rma", symptom="keys dead", serial_number="SNKBD0000001"
        )
    repair = await service.create(
        w.alice.id, kind="repair", symptom="keys dead", serial_number="SNKBD0000001"
    )
    rma = await service.create(w.alice.id, kind="rma", symptom="fan", serial_number="SNGPU0000001")

    assert "Expired on 2025-01-10" in str(refused.value)
    assert "paid repair" in str(refused.value) and "'repair'" in str(refused.value)
    assert refused.value.suggested_kind == "repair"
    assert repair.kind == "repair" and rma.kind == "rma"
    with pytest.raises(ValidationFailed, match="serial number"):
        await service.create(w.alice.id, kind="rma", symptom="fan")


async def test_rma_for_a_voided_unit_is_refused(
    session: AsyncSession, service: TicketService
) -> None:
    w = await make_world(session)
    session.add(WarrantyVoid(serial_number="SNGPU0000001", reason="bent PCIe connector"))
    await session.flush()

    with pytest.raises(RmaRefused, match="bent PCIe connector"):
        await service.create(w.alice.id, kind="rma", symptom="x", serial_number="SNGPU0000001")


async def test_assign_attach_and_list_by_status_assignee_and_overdue(
    session: AsyncSession, service: TicketService, clock: FixedClock
) -> None:
    w = await make_world(session)
    agent = StaffUser(name="Agent Wu", role="agent")
    retired = StaffUser(name="Old", role="agent", active=False)
    session.add_all([agent, retired])
    await session.flush()
    urgent = await service.create(w.alice.id, symptom="smoke", priority="urgent")
    normal = await service.create(w.bob.id, symptom="slow", priority="normal")
    done = await service.create(w.bob.id, symptom="fixed", priority="urgent")

    await service.assign(urgent.ticket_number, agent.id, actor="staff:9", note="GPU expert")
    with pytest.raises(ValidationFailed, match="not active"):
        await service.assign(normal.ticket_number, retired.id, actor="staff:9")
    with pytest.raises(NotFound):
        await service.assign(normal.ticket_number, 424242, actor="staff:9")
    attached = await service.add_attachment(urgent.ticket_number, "AgACAgUAAxkBAAIB")
    await service.add_attachment(urgent.ticket_number, "AgACAgUAAxkBAAIB")  # no duplicate
    for status in ["triaged", "in_progress", "resolved"]:
        await service.transition(done.ticket_number, status, actor=STAFF)
    clock.advance(timedelta(hours=5))  # past the urgent SLA (4 h), not the normal one (24 h)

    overdue = await service.list_tickets(overdue=True)
    mine = await service.list_tickets(assignee_staff_id=agent.id)
    new = await service.list_tickets(status="new")
    open_ = await service.list_tickets(status=["new", "triaged", "in_progress"])

    assert attached.attachments == ["AgACAgUAAxkBAAIB"]
    assert [t.ticket_number for t in overdue] == [urgent.ticket_number]
    assert overdue[0].overdue and overdue[0].assignee_staff_id == agent.id
    assert [t.ticket_number for t in mine] == [urgent.ticket_number]
    assert [t.ticket_number for t in new] == [urgent.ticket_number, normal.ticket_number]
    assert {t.ticket_number for t in open_} == {urgent.ticket_number, normal.ticket_number}
    events = await service.events(urgent.ticket_number)
    assert events[-1].note == f"assigned to staff:{agent.id}: GPU expert"
    assert events[-1].from_status == events[-1].to_status == "new"
    with pytest.raises(ValidationFailed):
        await service.list_tickets(status="open")

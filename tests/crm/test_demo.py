"""Demo data: determinism, coverage and consistency, on SQLite and PostgreSQL (small scale)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from app import cli_demo
from app.settings import CrmSection
from crm_core.catalog.categories import CATEGORY_KEYS
from crm_core.catalog.compatibility import CompatibilityService
from crm_core.catalog.models import CompatibilityRule, Product
from crm_core.catalog.schemas import validate_specs
from crm_core.catalog.service import policy_warranty_months
from crm_core.clock import FixedClock
from crm_core.customers.contact import normalize_phone
from crm_core.customers.models import Company, ConsentEvent, Customer
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.demo import (
    DEMO_IDENTITIES,
    DemoOptions,
    content_hash,
    ensure_empty_or_reset,
    is_empty,
    reset_demo_data,
    seed_demo,
)
from crm_core.demo.generator import check_ticket_paths, order_number, serial_number
from crm_core.demo.people import CN_MOBILE_PREFIXES, cn_mobile, uk_mobile, us_phone
from crm_core.errors import Conflict
from crm_core.ids import is_order_number, is_serial_number
from crm_core.leads.models import Lead
from crm_core.models import metadata
from crm_core.orders.models import Order, OrderItem, OrderItemSerial, Return
from crm_core.staff.models import StaffUser
from crm_core.tickets.models import Ticket, TicketEvent
from crm_core.tickets.state_machine import check_transition
from crm_core.warranties.models import WarrantyExtension, WarrantyVoid
from crm_core.warranties.service import WarrantyService
from tests.conftest import Database

# The session fixtures migrate with asyncio.run(); they must be set up outside the event loop.
pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

TODAY = date(2026, 6, 15)
SMALL = DemoOptions(today=TODAY, seed=42, customers=200)
NOW = SMALL.now
TICKET_RE = re.compile(r"^TK-\d{8}$")


async def _seed(db: Database, options: DemoOptions = SMALL) -> None:
    async with unit_of_work(db.sessions) as session:
        await seed_demo(session, options, crm_settings=CrmSection())


@pytest.fixture
async def seeded(db: Database) -> Database:
    await _seed(db)
    return db


def _warranties(session: AsyncSession) -> WarrantyService:
    return WarrantyService(session, FixedClock(NOW), CrmSection())


# --- determinism ----------------------------------------------------------------------------


async def test_same_seed_gives_identical_data_in_two_databases_and_another_seed_does_not(
    db: Database, sqlite_template: Path, tmp_path: Path
) -> None:
    await _seed(db)
    other_path = tmp_path / "second.sqlite3"
    shutil.copy(sqlite_template, other_path)
    other = create_engine(f"sqlite+aiosqlite:///{other_path}")
    other_sessions = create_session_factory(other)
    try:
        async with unit_of_work(other_sessions) as session:
            await seed_demo(session, SMALL, crm_settings=CrmSection())
        async with db.sessions() as a, other_sessions() as b:
            assert await content_hash(a) == await content_hash(b)
        async with unit_of_work(other_sessions) as session:
            await reset_demo_data(session)
            await seed_demo(session, DemoOptions(today=TODAY, seed=43, customers=200))
        async with db.sessions() as a, other_sessions() as b:
            assert await content_hash(a) != await content_hash(b)
    finally:
        await other.dispose()


async def test_reset_then_reseed_reproduces_the_same_data(db: Database) -> None:
    await _seed(db)
    async with db.sessions() as session:
        first = await content_hash(session)
    async with unit_of_work(db.sessions) as session:
        cleared = await reset_demo_data(session)
        assert {"customers", "orders", "staff_users", "audit_log"} <= set(cleared)
        assert await is_empty(session)
        await seed_demo(session, SMALL, crm_settings=CrmSection())
    async with db.sessions() as session:
        assert await content_hash(session) == first


def test_generated_ticket_histories_are_allowed_by_the_ticket_state_machine() -> None:
    check_ticket_paths()


def test_phone_numbers_are_valid_e164_for_every_prefix_and_unique_per_customer() -> None:
    import random

    rng = random.Random(1)
    phones = set()
    for customer_id in range(1, 400):
        for phone in (
            cn_mobile(customer_id, rng, 29),
            uk_mobile(customer_id, rng, 23),
            us_phone(customer_id, rng, 17)[0],
        ):
            assert normalize_phone(phone) == phone
            phones.add(phone)
    assert len(phones) == 3 * 399
    for prefix in CN_MOBILE_PREFIXES:
        assert re.match(r"^1[3-9]\d$", prefix)


def test_ids_are_unique_and_in_the_shared_formats() -> None:
    serials = {serial_number(i) for i in range(1, 50_001)}
    orders = {order_number(i) for i in range(1, 50_001)}
    assert len(serials) == len(orders) == 50_000
    assert all(is_serial_number(s) for s in serials)
    assert all(is_order_number(o) for o in orders)


# --- coverage -------------------------------------------------------------------------------


async def test_demo_catalog_has_all_categories_with_policy_warranties_and_valid_specs(
    seeded: Database,
) -> None:
    async with seeded.sessions() as session:
        products = (await session.scalars(select(Product))).all()
        rules = (await session.scalars(select(CompatibilityRule))).all()
    assert len(products) >= 150
    assert {p.category for p in products} == set(CATEGORY_KEYS)
    for p in products:
        assert p.warranty_months == policy_warranty_months(p.category, p.specs)
        assert p.currency == "CNY" and p.price > 0
        assert re.search(r"[\u4e00-\u9fff]", p.name_zh), p.name_zh
        validate_specs(p.category, p.specs)
    psus = [p.specs["wattage_w"] for p in products if p.category == "psu"]
    gpus = [p.specs for p in products if p.category == "gpu"]
    cases = [p.specs["max_gpu_length_mm"] for p in products if p.category == "case"]
    assert min(psus) == 550 and max(psus) == 1600
    assert (
        min(g["board_power_w"] for g in gpus) >= 150
        and max(g["board_power_w"] for g in gpus) == 575
    )
    assert min(g["length_mm"] for g in gpus) >= 200 and max(g["length_mm"] for g in gpus) <= 360
    assert min(cases) == 300 and max(cases) == 450
    assert len(rules) == 8 and all(r.active for r in rules)


async def test_warranties_come_in_every_state_including_extended_and_void(
    seeded: Database,
) -> None:
    states: Counter[str] = Counter()
    extended = voided = 0
    async with seeded.sessions() as session:
        service = _warranties(session)
        ids = (await session.scalars(select(Customer.id))).all()
        for customer_id in ids:
            for w in await service.warranty_for_customer(customer_id):
                states[w.status.value] += 1
                extended += w.extension_months > 0
                voided += w.void_reason is not None
        assert await session.scalar(select(func.count()).select_from(WarrantyExtension)) > 0
        assert await session.scalar(select(func.count()).select_from(WarrantyVoid)) > 0
    assert {"active", "expiring", "expired", "void"} <= set(states), states
    assert extended > 0 and voided > 0


async def test_tickets_come_in_every_state_with_a_history_the_state_machine_allows(
    seeded: Database,
) -> None:
    async with seeded.sessions() as session:
        tickets = (await session.scalars(select(Ticket))).all()
        events = (
            await session.scalars(select(TicketEvent).order_by(TicketEvent.at, TicketEvent.id))
        ).all()
    assert {t.status for t in tickets} == {
        "new",
        "triaged",
        "waiting_customer",
        "in_progress",
        "rma",
        "resolved",
        "closed",
    }
    history: dict[int, list[TicketEvent]] = {}
    for event in events:
        history.setdefault(event.ticket_id, []).append(event)
    numbers = set()
    for ticket in tickets:
        assert TICKET_RE.match(ticket.ticket_number)
        numbers.add(ticket.ticket_number)
        chain = history[ticket.id]
        assert (chain[0].from_status, chain[0].to_status) == (None, "new")
        assert chain[0].at == ticket.created_at
        for previous, event in pairwise(chain):
            assert event.from_status == previous.to_status
            check_transition(event.from_status or "", event.to_status)
            assert previous.at <= event.at <= NOW
        assert chain[-1].to_status == ticket.status
        assert ticket.updated_at == chain[-1].at
        assert (ticket.resolved_at is not None) == (ticket.status in ("resolved", "closed"))
        assert (ticket.closed_at is not None) == (ticket.status == "closed")
        assert (ticket.assignee_staff_id is None) == (ticket.status == "new")
        if any(e.to_status == "rma" for e in chain):
            assert ticket.kind == "rma"
        assert ticket.sla_due_at is not None and ticket.sla_due_at > ticket.created_at
    assert len(numbers) == len(tickets)


async def test_customers_are_bilingual_with_valid_unique_contacts_and_consent_proof(
    seeded: Database,
) -> None:
    async with seeded.sessions() as session:
        customers = (await session.scalars(select(Customer).order_by(Customer.id))).all()
        events = (
            await session.scalars(select(ConsentEvent).order_by(ConsentEvent.at, ConsentEvent.id))
        ).all()
        companies = {c.id: c.name for c in (await session.scalars(select(Company))).all()}
    assert len(customers) == 200
    phones = [c.phone for c in customers if c.phone]
    emails = [c.email for c in customers if c.email]
    assert len(set(phones)) == len(phones) and len(set(emails)) == len(emails)
    for phone in phones:
        assert normalize_phone(phone) == phone
    assert {p[:3] for p in phones} >= {"+86", "+44"} and any(p.startswith("+1") for p in phones)
    assert all(e == e.lower() and "@" in e for e in emails)
    languages = Counter(c.language for c in customers)
    assert languages["zh"] > languages["en"] > 20
    for c in customers:
        ZoneInfo(c.timezone)
        if c.language == "zh":
            assert re.search(r"[\u4e00-\u9fff]", c.name), c.name
        else:
            assert c.name.isascii(), c.name
        assert (c.company_id is not None) == (c.customer_type == "enterprise")
        if c.company_id is not None:
            assert c.company_id in companies
    types = Counter(c.customer_type for c in customers)
    assert types["consumer"] > types["pro"] > types["enterprise"] >= 3
    assert 0.45 <= sum(c.marketing_consent for c in customers) / len(customers) <= 0.75
    assert sum(c.telegram_user_id is not None for c in customers) >= 40
    last: dict[int, ConsentEvent] = {}
    for event in events:
        last[event.customer_id] = event
    for c in customers:
        if c.marketing_consent:
            assert last[c.id].granted and c.consent_changed_at == last[c.id].at
        elif c.id in last:
            assert not last[c.id].granted


async def test_orders_span_three_years_with_items_serials_returns_and_statuses(
    seeded: Database,
) -> None:
    async with seeded.sessions() as session:
        orders = (await session.scalars(select(Order))).all()
        items = (await session.scalars(select(OrderItem))).all()
        serials = (await session.scalars(select(OrderItemSerial.serial_number))).all()
        returns = (await session.scalars(select(Return))).all()
        leads = (await session.scalars(select(Lead))).all()
        staff = (await session.scalars(select(StaffUser))).all()
        stages = Counter((await session.scalars(select(Customer.lifecycle_stage))).all())
    assert len(orders) == 500
    assert all(NOW - timedelta(days=3 * 365 + 1) <= o.placed_at <= NOW for o in orders)
    assert all(is_order_number(o.order_number) for o in orders)
    assert len({o.order_number for o in orders}) == len(orders)
    assert len({o.channel for o in orders}) >= 4
    statuses = Counter(o.status for o in orders)
    assert {"delivered", "shipped", "cancelled", "returned"} <= set(statuses)
    delivered = [o for o in orders if o.status == "delivered"]
    assert any(o.delivered_at is None for o in delivered)
    assert all(o.delivered_at is None or o.delivered_at > o.placed_at for o in orders)
    totals: Counter[int] = Counter()
    for item in items:
        totals[item.order_id] += int(item.unit_price * item.quantity)
    assert all(int(o.total) == totals[o.id] for o in orders)
    assert len(set(serials)) == len(serials) and all(is_serial_number(s) for s in serials)
    assert returns and {r.status for r in returns} >= {"refunded", "rejected"}
    assert leads and any(lead.customer_id is None for lead in leads)
    assert {s.role for s in staff} == {"admin", "agent", "marketer"}
    assert all(s.password_hash is None for s in staff)
    # AnalyticsService.recompute ran: stages beyond the generator's first guess exist.
    assert {"prospect", "new", "active", "at_risk"} <= set(stages)


async def test_demo_identities_have_the_documented_warranty_and_ticket_situations(
    seeded: Database,
) -> None:
    async with seeded.sessions() as session:
        service = _warranties(session)
        zh = await service.warranty_for_telegram_user(1001)
        gpu = next(w for w in zh if w.category == "gpu")
        assert gpu.status == "active" and gpu.extension_months == 12
        expiring = next(w for w in zh if w.status == "expiring")
        assert expiring.category == "mouse" and 10 <= expiring.days_left <= 14

        en = await service.warranty_for_telegram_user(1002)
        headset = next(w for w in en if w.category == "headset")
        assert headset.status == "expired"
        assert any(w.status == "active" and w.category == "monitor" for w in en)
        james = await session.scalar(select(Customer).where(Customer.telegram_user_id == 1002))
        assert james is not None and james.language == "en"
        ticket = await session.scalar(select(Ticket).where(Ticket.customer_id == james.id))
        assert ticket is not None and ticket.status == "in_progress"
        assert ticket.serial_number == headset.serial_number and ticket.kind == "repair"

        buyer = await session.scalar(select(Customer).where(Customer.telegram_user_id == 1003))
        assert buyer is not None and buyer.customer_type == "enterprise"
        company = await session.get(Company, buyer.company_id)
        assert company is not None and company.name == "深圳星河数据科技有限公司"
        b2b = await service.warranty_for_telegram_user(1003)
        assert any(w.status == "void" and w.void_reason for w in b2b)
        assert {i.telegram_user_id for i in DEMO_IDENTITIES} == {1001, 1002, 1003}


# --- loading rules --------------------------------------------------------------------------


async def test_seeding_refuses_a_database_with_data_and_new_rows_get_fresh_ids(
    seeded: Database,
) -> None:
    async with unit_of_work(seeded.sessions) as session:
        assert not await is_empty(session)
        with pytest.raises(Conflict, match="--reset"):
            ensure_empty_or_reset(False, reset=False)
        ensure_empty_or_reset(False, reset=True)
        ensure_empty_or_reset(True, reset=False)
        # Sequences were moved past the explicit ids (PostgreSQL).
        customer = Customer(name="New Person", language="en")
        order = Order(order_number="SO-00000001", customer_id=1, placed_at=NOW)
        session.add_all([customer, order])
        await session.flush()
        assert customer.id == 201 and order.id == 501
        # The seeded rules and products answer compatibility questions.
        psus = await CompatibilityService(session).compatible("GPU-MSI-4090-SUPRIMX", "psu")
        assert psus and psus[0].product.specs["wattage_w"] >= 1000


async def test_explicit_order_count_and_a_tiny_data_set_still_cover_every_ticket_state(
    db: Database,
) -> None:
    await _seed(db, DemoOptions(today=TODAY, seed=7, customers=60, orders=150))
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 150
        states = set((await session.scalars(select(Ticket.status))).all())
    assert len(states) == 7


async def test_demo_staff_do_not_collide_with_an_existing_admin(db: Database) -> None:
    async with unit_of_work(db.sessions) as session:
        session.add(
            StaffUser(name="Real Admin", role="admin", login="admin", telegram_user_id=9001)
        )
        assert await is_empty(session)
    await _seed(db, DemoOptions(today=TODAY, seed=1, customers=20))
    async with db.sessions() as session:
        logins = set((await session.scalars(select(StaffUser.login))).all())
    assert {"admin", "admin.demo", "wang.fang"} <= logins


# --- CLI ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty migrated database handed to the CLI through HWCRM_DB__URL."""
    if request.param == "sqlite":
        path = tmp_path / "cli.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_schema_url")

        async def truncate() -> None:
            engine = create_engine(url)
            tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await engine.dispose()

        asyncio.run(truncate())
    monkeypatch.setenv("HWCRM_DB__URL", url)
    return url


def test_cli_seeds_refuses_to_seed_again_and_reseeds_with_reset(db_url: str) -> None:
    app = typer.Typer()
    cli_demo.register(app)
    runner = CliRunner()
    args = ["demo", "seed", "--customers", "30", "--today", "2026-06-15", "--seed", "5"]
    first = runner.invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "Demo data loaded" in first.output and "1001" in first.output
    again = runner.invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 1
    assert "--reset" in again.output
    reset = runner.invoke(app, [*args, "--reset"], catch_exceptions=False)
    assert reset.exit_code == 0, reset.output
    shown = runner.invoke(app, ["demo", "identities"], catch_exceptions=False)
    assert shown.exit_code == 0 and "James Carter" in shown.output
    assert re.search(r"SO-\d{8}", shown.output)
    bad = runner.invoke(app, ["demo", "seed", "--today", "15/06/2026"])
    assert bad.exit_code != 0


def test_demo_now_is_noon_utc_of_today() -> None:
    assert SMALL.now == datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    assert SMALL.order_count == 500

"""Customer records: validation, lookups, purchase history, consent (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.audit.models import AuditEntry
from crm_core.clock import FixedClock
from crm_core.customers.models import ConsentEvent
from crm_core.customers.schemas import CustomerCreate, CustomerUpdate
from crm_core.customers.service import CustomerService
from crm_core.db import unit_of_work
from crm_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from tests.conftest import Database
from tests.crm.people_factories import make_customer, make_order, make_product, make_staff

# Build the session-wide migrated databases up front (conftest's `db` would otherwise create
# them lazily from inside the running event loop, where asyncio.run fails).
pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


def service(session: AsyncSession, clock: FixedClock) -> CustomerService:
    return CustomerService(session, clock, CrmSection())


async def test_new_customer_phone_is_stored_in_e164_and_email_lower_case(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(
        CustomerCreate(name="  Li   Wei ", phone="138 1234 5678", email=" Li.Wei@Example.COM ")
    )
    assert dto.name == "Li Wei"
    assert dto.phone == "+8613812345678"
    assert dto.email == "li.wei@example.com"
    assert dto.language == "en"
    assert dto.customer_type == "consumer"
    assert dto.created_at == clock.now()


async def test_enterprise_customer_without_company_is_refused(session, clock):
    svc = service(session, clock)
    with pytest.raises(ValidationFailed, match="enterprise customer needs a company"):
        await svc.create_customer(CustomerCreate(name="Wang Fang", customer_type="enterprise"))


async def test_enterprise_customer_gets_its_company_created_once(session, clock):
    svc = service(session, clock)
    a = await svc.create_customer(
        CustomerCreate(name="Wang Fang", customer_type="enterprise", company_name="Shenzhen IT Ltd")
    )
    b = await svc.create_customer(
        CustomerCreate(name="Chen Jie", customer_type="enterprise", company_name="Shenzhen IT Ltd")
    )
    assert a.company_id is not None and a.company_id == b.company_id
    assert a.company_name == "Shenzhen IT Ltd"


INVALID_FIELDS = [
    ("language", "fr", "use zh or en"),
    ("customer_type", "vip", "unknown customer type"),
    ("phone", "12345", "not a valid phone number"),
    ("email", "not-an-email", "not a valid e-mail"),
    ("name", "   ", "needs a name"),
    ("timezone", "Mars/Olympus", "unknown time zone"),
]


async def test_invalid_customer_fields_are_refused_with_a_clear_message(session, clock):
    svc = service(session, clock)
    for field, value, message in INVALID_FIELDS:
        with pytest.raises(ValidationFailed, match=message):
            await svc.create_customer(CustomerCreate(**{"name": "Li Wei", field: value}))


async def test_second_customer_with_the_same_phone_in_another_format_is_a_conflict(session, clock):
    svc = service(session, clock)
    await svc.create_customer(CustomerCreate(name="Li Wei", phone="13812345678"))
    with pytest.raises(Conflict, match="already has this phone"):
        await svc.create_customer(CustomerCreate(name="Li W.", phone="+86 138-1234-5678"))


async def test_update_changes_only_given_fields_and_is_audited_without_values(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(
        CustomerCreate(name="Li Wei", phone="13812345678", email="li@example.com")
    )
    clock.advance(timedelta(hours=1))
    updated = await svc.update_customer(
        dto.id, CustomerUpdate(email=None, language="zh"), actor="staff:1"
    )
    assert updated.email is None
    assert updated.language == "zh"
    assert updated.phone == "+8613812345678"
    assert updated.updated_at == clock.now()
    entry = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "update"))).one()
    assert entry.actor == "staff:1"
    assert entry.details == {"fields": ["email", "language"]}


async def test_switching_to_enterprise_needs_a_company(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    with pytest.raises(ValidationFailed, match="needs a company"):
        await svc.update_customer(dto.id, CustomerUpdate(customer_type="enterprise"))
    ok = await svc.update_customer(
        dto.id, CustomerUpdate(customer_type="enterprise", company_name="Acme Corp")
    )
    assert ok.company_name == "Acme Corp"


TYPED_PHONES = [
    "13812345678",
    "138 1234 5678",
    "138-1234-5678",
    "+86 138 1234 5678",
    "0086 13812345678",
    "8613812345678",
    "(+86) 138-1234-5678",
    "１３８１２３４５６７８",
]


async def test_customer_is_found_by_phone_typed_in_any_usual_format(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei", phone="+8613812345678"))
    for typed in TYPED_PHONES:
        found = await svc.find_by_phone(typed)
        assert found is not None and found.id == dto.id, typed


async def test_lookup_by_telegram_id_email_and_unknown_values(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(
        CustomerCreate(name="Li Wei", email="li@example.com", telegram_user_id=555001)
    )
    assert (await svc.find_by_telegram_id(555001)).id == dto.id  # type: ignore[union-attr]
    assert (await svc.find_by_email("LI@EXAMPLE.COM")).id == dto.id  # type: ignore[union-attr]
    assert await svc.find_by_telegram_id(999) is None
    assert await svc.find_by_email("nobody@example.com") is None
    assert await svc.find_by_phone("13900000000") is None
    with pytest.raises(ValidationFailed):
        await svc.find_by_phone("hello")


async def test_customer_is_found_by_order_number_typed_loosely(session, clock):
    svc = service(session, clock)
    customer = await make_customer(session)
    gpu = await make_product(session)
    await make_order(
        session, customer.id, [(gpu, 1, [])], placed_at=clock.now(), number="SO-10023456"
    )
    for typed in ("SO-10023456", "so10023456", "SO 10023456"):
        found = await svc.find_by_order_number(typed)
        assert found is not None and found.id == customer.id
    assert await svc.find_by_order_number("SO-99999999") is None
    with pytest.raises(ValidationFailed, match="not an order number"):
        await svc.find_by_order_number("order 12")


async def test_search_tries_every_reading_of_the_query(session, clock):
    svc = service(session, clock)
    a = await svc.create_customer(
        CustomerCreate(name="Li Wei", phone="13812345678", telegram_user_id=424242)
    )
    b = await svc.create_customer(CustomerCreate(name="Wang Fang", email="wang@example.com"))
    assert [c.id for c in await svc.search("424242")] == [a.id]
    assert [c.id for c in await svc.search("138 1234 5678")] == [a.id]
    assert [c.id for c in await svc.search("WANG@example.com")] == [b.id]
    assert [c.id for c in await svc.search("wang")] == [b.id]
    assert await svc.search("nobody") == []


async def test_name_search_3_plus_characters_match_anywhere_ordered_by_name(session, clock):
    svc = service(session, clock)
    for name in ("Zoe Carterton", "Ann Carter", "Bob Smith", "李桂珍", "王桂珍芳"):
        await svc.create_customer(CustomerCreate(name=name))
    assert [c.name for c in await svc.search("CARTER")] == ["Ann Carter", "Zoe Carterton"]
    assert [c.name for c in await svc.search("王桂珍")] == ["王桂珍芳"]
    assert [c.name for c in await svc.search("桂珍芳")] == ["王桂珍芳"]
    # LIKE wildcards typed by staff are literal characters, not patterns.
    assert await svc.search("a%r") == []
    assert await svc.search("b_b") == []


async def test_name_search_under_3_characters_matches_the_start_of_the_name(session, clock):
    svc = service(session, clock)
    for name in ("王芳", "王芳芳", "李王芳", "Jo Wu", "Al Jo"):
        await svc.create_customer(CustomerCreate(name=name))
    # A surname or a two-character Chinese name: names that begin with it, by id.
    assert [c.name for c in await svc.search("王芳")] == ["王芳", "王芳芳"]
    assert [c.name for c in await svc.search("王")] == ["王芳", "王芳芳"]
    assert [c.name for c in await svc.search("jo")] == ["Jo Wu"]
    assert await svc.search("芳芳") == []  # inside a name: not a match under 3 characters


@pytest.mark.postgres
async def test_name_search_on_postgres_uses_the_trigram_and_prefix_indexes(db, clock):
    if db.kind != "postgres":
        pytest.skip("the indexes are PostgreSQL's (migration 0010_search_indexes)")
    captured: list[tuple[str, object]] = []

    def capture(_c, _cur, statement, params, _ctx, _many):  # type: ignore[no-untyped-def]
        if "lower(customers.name) LIKE" in statement:
            captured.append((statement, params))

    plans: dict[str, str] = {}
    async with db.sessions() as session:
        svc = service(session, clock)
        await svc.create_customer(CustomerCreate(name="Ann Carter"))
        await session.flush()
        # With a handful of rows a sequential scan is cheaper; forbid it to see the index
        # the query's shape can use at scale.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
        try:
            for query in ("carter", "an"):
                captured.clear()
                await svc.search(query)
                statement, params = captured[0]
                conn = await session.connection()
                raw = await conn.exec_driver_sql("EXPLAIN " + statement, params)  # type: ignore[arg-type]
                plans[query] = "\n".join(str(r) for r in raw.scalars().all())
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    assert "ix_customers_name_trgm" in plans["carter"], plans["carter"]
    assert "ix_customers_name_prefix" in plans["an"], plans["an"]


async def test_purchase_history_lists_orders_newest_first_with_items_names_and_serials(
    session, clock
):
    svc = service(session, clock)
    customer = await make_customer(session)
    gpu = await make_product(session, name_en="RTX 4070", name_zh="RTX 4070 显卡")
    psu = await make_product(
        session, name_en="850W PSU", name_zh="850W 电源", category="psu", price="899.00"
    )
    old = await make_order(
        session,
        customer.id,
        [(gpu, 1, ["SNAAAA000001"])],
        placed_at=clock.now() - timedelta(days=200),
    )
    new = await make_order(
        session,
        customer.id,
        [(psu, 2, ["SNBBBB000001", "SNBBBB000002"]), (gpu, 1, ["SNAAAA000002"])],
        placed_at=clock.now() - timedelta(days=5),
        delivered_after=None,
        status="shipped",
    )
    history = await svc.purchase_history(customer.id)
    assert [o.order_number for o in history] == [new.order_number, old.order_number]
    latest = history[0]
    assert latest.delivered_at is None and latest.status == "shipped"
    assert latest.placed_at == clock.now() - timedelta(days=5)
    psu_line = latest.items[0]
    assert (psu_line.name_en, psu_line.name_zh, psu_line.quantity) == ("850W PSU", "850W 电源", 2)
    assert psu_line.unit_price == Decimal("899.00")
    assert psu_line.line_total == Decimal("1798.00")
    assert psu_line.serial_numbers == ["SNBBBB000001", "SNBBBB000002"]
    assert psu_line.name("zh") == "850W 电源"
    assert history[1].items[0].serial_numbers == ["SNAAAA000001"]
    assert history[1].delivered_at == clock.now() - timedelta(days=197)


async def test_purchase_history_runs_a_fixed_number_of_queries(db: Database, session, clock):
    customer = await make_customer(session)
    products = [await make_product(session) for _ in range(4)]
    for n in range(10):
        await make_order(
            session,
            customer.id,
            [(p, 1, [f"SN{n:02d}{i:08d}"]) for i, p in enumerate(products)],
            placed_at=clock.now() - timedelta(days=n),
        )
    await session.commit()
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with db.sessions() as fresh:
            history = await service(fresh, clock).purchase_history(customer.id)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len(history) == 10 and all(len(o.items) == 4 for o in history)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 5, selects


async def test_unknown_customer_purchase_history_is_not_found(session, clock):
    with pytest.raises(NotFound):
        await service(session, clock).purchase_history(12345)


async def test_withdrawing_consent_twice_writes_one_event(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(
        CustomerCreate(name="Li Wei", marketing_consent=True, consent_source="import")
    )
    assert dto.marketing_consent and dto.consent_source == "import"
    first = await svc.withdraw_consent(dto.id, "telegram:/stop")
    second = await svc.withdraw_consent(dto.id, "telegram:/stop")
    assert first.changed and not first.marketing_consent
    assert not second.changed
    events = await svc.consent_events(dto.id)
    assert [(e.granted, e.source) for e in events] == [(True, "import"), (False, "telegram:/stop")]
    customer = await svc.get_customer(dto.id)
    assert customer.consent_source == "telegram:/stop"
    assert customer.consent_changed_at == clock.now()


async def test_granting_consent_is_recorded_once_with_its_source(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    assert not dto.marketing_consent
    assert (await svc.grant_consent(dto.id, "console")).changed
    assert not (await svc.grant_consent(dto.id, "console")).changed
    count = await session.scalar(select(func.count()).select_from(ConsentEvent))
    assert count == 1
    with pytest.raises(ValidationFailed, match="where the consent change came from"):
        await svc.grant_consent(dto.id, " ")


async def test_first_withdrawal_of_a_customer_who_never_consented_writes_nothing(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    assert not (await svc.withdraw_consent(dto.id, "telegram:/stop")).changed
    assert await svc.consent_events(dto.id) == []


async def test_touch_sets_last_contact_to_now(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    assert dto.last_contact_at is None
    clock.advance(timedelta(minutes=5))
    await svc.touch_last_contact(dto.id)
    assert (await svc.get_customer(dto.id)).last_contact_at == clock.now()


async def test_staff_read_of_a_customer_is_audited(session, clock):
    svc = service(session, clock)
    staff = await make_staff(session)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    read = await svc.get_customer_for_staff(staff.id, dto.id, "ticket TK-00000001 follow-up")
    assert read.id == dto.id
    entry = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "read"))).one()
    assert (entry.actor, entry.customer_id, entry.reason) == (
        f"staff:{staff.id}",
        dto.id,
        "ticket TK-00000001 follow-up",
    )
    assert entry.at == clock.now()


async def test_deactivated_staff_is_denied_and_the_denial_survives_the_rollback(
    db: Database, clock
):
    async with db.sessions() as setup:
        staff = await make_staff(setup, active=False)
        customer = await make_customer(setup)
        await setup.commit()
        staff_id, customer_id = staff.id, customer.id
    with pytest.raises(PermissionDenied, match="deactivated"):
        async with unit_of_work(db.sessions) as s:
            svc = CustomerService(s, clock, CrmSection())
            await svc.get_customer_for_staff(staff_id, customer_id, "curious")
    async with db.sessions() as check:
        entries = (await check.scalars(select(AuditEntry))).all()
    assert [(e.action, e.actor, e.customer_id) for e in entries] == [
        ("denied", f"staff:{staff_id}", customer_id)
    ]


async def test_unknown_staff_id_is_denied_and_audited(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    with pytest.raises(PermissionDenied, match="unknown staff member"):
        await svc.get_customer_for_staff(777, dto.id, "looking around")
    entry = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "denied"))).one()
    assert entry.actor == "staff:777" and entry.details == {"why": "unknown staff member"}


async def test_staff_read_needs_a_reason(session, clock):
    svc = service(session, clock)
    staff = await make_staff(session)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    with pytest.raises(ValidationFailed, match="reason"):
        await svc.get_customer_for_staff(staff.id, dto.id, "  ")


async def test_datetimes_come_back_timezone_aware(session, clock):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei"))
    await session.commit()
    again = await svc.get_customer(dto.id)
    assert again.created_at.tzinfo is not None
    assert again.created_at == datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

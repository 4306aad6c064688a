"""GDPR: export everything about a customer; erase personal data but keep the accounting."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.audit.models import AuditEntry
from crm_core.clock import FixedClock
from crm_core.conversations.models import Conversation, Interaction, SatisfactionRating
from crm_core.customers.models import Customer
from crm_core.customers.schemas import CustomerCreate
from crm_core.customers.service import CustomerService
from crm_core.errors import NotFound, ValidationFailed
from crm_core.leads.models import Lead
from crm_core.orders.models import Order, OrderItemSerial, Return
from crm_core.tickets.models import Ticket, TicketEvent
from crm_core.warranties.models import WarrantyExtension, WarrantyVoid
from tests.crm.people_factories import make_order, make_product, make_staff

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


def service(session: AsyncSession, clock: FixedClock) -> CustomerService:
    return CustomerService(session, clock, CrmSection())


async def rich_customer(session: AsyncSession, clock: FixedClock) -> int:
    """A customer with something in every table that refers to customers."""
    svc = service(session, clock)
    dto = await svc.create_customer(
        CustomerCreate(
            name="Li Wei",
            phone="13812345678",
            email="li@example.com",
            telegram_user_id=900_001,
            customer_type="enterprise",
            company_name="Shenzhen IT Ltd",
            tags=["gamer"],
            notes="prefers calls after 6pm",
            marketing_consent=True,
            consent_source="import",
        )
    )
    cid = dto.id
    gpu = await make_product(session, name_en="RTX 4070", name_zh="RTX 4070 显卡")
    order = await make_order(
        session,
        cid,
        [(gpu, 1, ["SN7F3K9Q2L1M"])],
        placed_at=clock.now() - timedelta(days=30),
        number="SO-10023456",
    )
    staff = await make_staff(session)
    conversation = Conversation(customer_id=cid, chat_id=900_001)
    session.add(conversation)
    await session.flush()
    ticket = Ticket(
        ticket_number="TK-00000001",
        customer_id=cid,
        serial_number="SN7F3K9Q2L1M",
        subject="fan stopped",
        symptom="fan does not spin",
        attachments=["AgACAgUAAxkBAAIB"],
    )
    session.add(ticket)
    await session.flush()
    session.add_all(
        [
            Return(order_id=order.id, reason="changed my mind"),
            WarrantyExtension(serial_number="SN7F3K9Q2L1M", months=12),
            WarrantyVoid(serial_number="SN7F3K9Q2L1M", reason="burnt connector"),
            TicketEvent(ticket_id=ticket.id, to_status="new", actor=f"customer:{cid}"),
            Interaction(
                conversation_id=conversation.id,
                customer_id=cid,
                direction="inbound",
                text="我的手机是 13812345678",
            ),
            Interaction(customer_id=cid, direction="outbound", text="Your order has shipped"),
            SatisfactionRating(customer_id=cid, score=4, comment="Agent Zhang was kind"),
            Lead(
                customer_id=cid,
                prospect_name="Li Wei",
                prospect_contact="li@example.com",
                products_of_interest=["psu"],
                notes="wants 1000W",
            ),
            # Recorded when they were still a prospect, by phone only.
            Lead(prospect_name="Mr Li", prospect_contact="+8613812345678", notes="B2B quote"),
            Lead(prospect_name="Someone else", prospect_contact="+8613900000000"),
        ]
    )
    await session.flush()
    await svc.get_customer_for_staff(staff.id, cid, "ticket follow-up")
    return cid


async def test_export_contains_everything_about_the_customer_as_json(session, clock):
    cid = await rich_customer(session, clock)
    data = await service(session, clock).export_customer(cid, actor="staff:1")
    text = json.dumps(data, ensure_ascii=False)  # must be JSON-serialisable as it is
    assert "13812345678" in text
    assert data["customer"]["phone"] == "+8613812345678"
    assert data["customer"]["email"] == "li@example.com"
    assert data["company"]["name"] == "Shenzhen IT Ltd"
    assert [e["granted"] for e in data["consent_events"]] == [True]
    (order,) = data["orders"]
    assert order["order_number"] == "SO-10023456"
    assert order["items"][0]["serial_numbers"] == ["SN7F3K9Q2L1M"]
    assert order["items"][0]["product_name_zh"] == "RTX 4070 显卡"
    assert order["returns"][0]["reason"] == "changed my mind"
    assert data["warranty_extensions"][0]["months"] == 12
    assert data["warranty_voids"][0]["reason"] == "burnt connector"
    (ticket,) = data["tickets"]
    assert ticket["ticket_number"] == "TK-00000001" and len(ticket["events"]) == 1
    (conversation,) = data["conversations"]
    assert conversation["interactions"][0]["text"] == "我的手机是 13812345678"
    assert data["other_interactions"][0]["text"] == "Your order has shipped"
    assert data["satisfaction_ratings"][0]["score"] == 4
    assert [lead["notes"] for lead in data["leads"]] == ["wants 1000W", "B2B quote"]
    assert {a["action"] for a in data["audit_entries"]} >= {"create", "read"}
    exports = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "export"))).all()
    assert [e.actor for e in exports] == ["staff:1"]


async def test_export_of_an_unknown_customer_is_not_found(session, clock):
    with pytest.raises(NotFound):
        await service(session, clock).export_customer(4242)


async def test_erase_anonymises_personal_fields(session, clock):
    cid = await rich_customer(session, clock)
    result = await service(session, clock).erase_customer(cid, "staff:1", "customer request")
    assert re.fullmatch(r"ANON-[0-9a-f]{12}", result.anonymous_id)
    assert not result.already_erased
    customer = await session.get(Customer, cid)
    assert customer is not None
    assert customer.name == "Erased customer"
    assert customer.phone is None and customer.email is None
    assert customer.telegram_user_id is None
    assert customer.notes is None and customer.tags == []
    assert customer.anonymous_id == result.anonymous_id
    assert customer.erased_at == clock.now()
    assert customer.marketing_consent is False


async def test_erase_keeps_orders_under_anonymous_id(session, clock):
    cid = await rich_customer(session, clock)
    svc = service(session, clock)
    result = await svc.erase_customer(cid, "staff:1", "customer request")
    order = await session.scalar(select(Order).where(Order.customer_id == cid))
    assert order is not None and order.order_number == "SO-10023456"
    assert await session.scalar(select(OrderItemSerial.serial_number)) == "SN7F3K9Q2L1M"
    ticket = await session.scalar(select(Ticket).where(Ticket.customer_id == cid))
    assert ticket is not None and ticket.attachments == []
    found = await svc.find_by_order_number("SO-10023456")
    assert found is not None and found.anonymous_id == result.anonymous_id
    assert found.name == "Erased customer" and found.phone is None
    history = await svc.purchase_history(cid)
    assert history[0].items[0].serial_numbers == ["SN7F3K9Q2L1M"]


async def test_erase_replaces_texts_and_clears_lead_contacts(session, clock):
    cid = await rich_customer(session, clock)
    result = await service(session, clock).erase_customer(cid, "staff:1", "customer request")
    texts = (await session.scalars(select(Interaction.text))).all()
    assert texts == ["[erased]", "[erased]"] and result.interactions_erased == 2
    leads = (await session.scalars(select(Lead).order_by(Lead.id))).all()
    assert [(x.prospect_name, x.prospect_contact, x.notes) for x in leads] == [
        (None, None, None),
        (None, None, None),
        ("Someone else", "+8613900000000", None),
    ]
    assert leads[0].products_of_interest == ["psu"] and result.leads_cleared == 2
    rating = await session.scalar(select(SatisfactionRating))
    assert rating is not None and rating.score == 4 and rating.comment == "[erased]"
    conversation = await session.scalar(select(Conversation))
    assert conversation is not None
    assert conversation.chat_id is None and conversation.closed_at == clock.now()


async def test_erase_withdraws_consent_and_writes_an_audit_entry(session, clock):
    cid = await rich_customer(session, clock)
    svc = service(session, clock)
    await svc.erase_customer(cid, "staff:1", "customer request by e-mail")
    events = await svc.consent_events(cid)
    assert [(e.granted, e.source) for e in events] == [(True, "import"), (False, "gdpr:erase")]
    entry = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "erase"))).one()
    assert (entry.actor, entry.customer_id, entry.reason) == (
        "staff:1",
        cid,
        "customer request by e-mail",
    )
    assert entry.details["anonymous_id"].startswith("ANON-")
    exported = json.dumps(await svc.export_customer(cid), ensure_ascii=False)
    assert "13812345678" not in exported and "li@example.com" not in exported


async def test_erasing_twice_is_a_no_op_with_a_clear_message(session, clock):
    cid = await rich_customer(session, clock)
    svc = service(session, clock)
    first = await svc.erase_customer(cid, "staff:1", "customer request")
    clock.advance(timedelta(days=1))
    second = await svc.erase_customer(cid, "staff:1", "again")
    assert second.already_erased
    assert second.anonymous_id == first.anonymous_id
    assert second.erased_at == first.erased_at
    assert "already erased" in second.message
    erases = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "erase"))).all()
    assert len(erases) == 1


async def test_erase_needs_a_reason(session, clock):
    cid = await rich_customer(session, clock)
    with pytest.raises(ValidationFailed, match="reason"):
        await service(session, clock).erase_customer(cid, "staff:1", "")


async def test_erased_phone_can_be_used_by_a_new_customer(session, clock):
    cid = await rich_customer(session, clock)
    svc = service(session, clock)
    await svc.erase_customer(cid, "staff:1", "customer request")
    again = await svc.create_customer(
        CustomerCreate(name="Li Wei", phone="13812345678", telegram_user_id=900_001)
    )
    assert again.id != cid

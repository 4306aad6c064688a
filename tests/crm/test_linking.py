"""Linking a Telegram account to a customer record, and merging the bot's prospect into it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.audit.models import AuditEntry
from crm_core.clock import FixedClock
from crm_core.conversations.models import Conversation, Interaction
from crm_core.customers.models import Customer
from crm_core.customers.schemas import CustomerCreate
from crm_core.customers.service import CustomerService
from crm_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crm_core.leads.models import Lead
from crm_core.tickets.models import Ticket
from tests.crm.people_factories import make_customer, make_order, make_product

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

TG = 700_100_200


def service(session: AsyncSession, clock: FixedClock) -> CustomerService:
    return CustomerService(session, clock, CrmSection())


async def customer_with_order(
    session: AsyncSession, clock: FixedClock, *, phone: str = "+8613812345678"
) -> tuple[int, str]:
    customer = await make_customer(session, phone=phone)
    gpu = await make_product(session)
    order = await make_order(session, customer.id, [(gpu, 1, [])], placed_at=clock.now())
    return customer.id, order.order_number


async def test_own_contact_links_the_telegram_account(session, clock):
    customer_id, _ = await customer_with_order(session, clock)
    result = await service(session, clock).link_telegram_by_contact(TG, "8613812345678", TG)
    assert result.customer.id == customer_id
    assert result.customer.telegram_user_id == TG
    assert not result.already_linked
    entry = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "link"))).one()
    assert entry.customer_id == customer_id and entry.details["method"] == "contact"


async def test_contact_of_someone_else_is_refused(session, clock):
    await customer_with_order(session, clock)
    svc = service(session, clock)
    with pytest.raises(PermissionDenied, match="not yours"):
        await svc.link_telegram_by_contact(TG, "+8613812345678", 123456)
    with pytest.raises(PermissionDenied):
        await svc.link_telegram_by_contact(TG, "+8613812345678", None)
    assert await svc.find_by_telegram_id(TG) is None


async def test_contact_with_an_unknown_phone_is_not_found(session, clock):
    await customer_with_order(session, clock)
    with pytest.raises(NotFound, match="no customer record has this phone"):
        await service(session, clock).link_telegram_by_contact(TG, "+8613900001111", TG)


async def test_order_number_and_last_four_digits_link_the_account(session, clock):
    customer_id, number = await customer_with_order(session, clock)
    result = await service(session, clock).link_telegram_by_order(
        TG, number.lower().replace("-", " "), "5678"
    )
    assert result.customer.id == customer_id and result.customer.telegram_user_id == TG


async def test_wrong_digits_and_unknown_order_get_the_same_answer(session, clock):
    _, number = await customer_with_order(session, clock)
    svc = service(session, clock)
    with pytest.raises(NotFound) as wrong_digits:
        await svc.link_telegram_by_order(TG, number, "0000")
    with pytest.raises(NotFound) as no_order:
        await svc.link_telegram_by_order(TG, "SO-99999999", "5678")
    with pytest.raises(NotFound) as not_an_order:
        await svc.link_telegram_by_order(TG, "my order", "5678")
    assert str(wrong_digits.value) == str(no_order.value) == str(not_an_order.value)
    assert number not in str(wrong_digits.value)


async def test_last_four_must_be_four_digits(session, clock):
    _, number = await customer_with_order(session, clock)
    with pytest.raises(ValidationFailed, match="last 4 digits"):
        await service(session, clock).link_telegram_by_order(TG, number, "56")


async def test_relinking_the_same_pair_is_idempotent(session, clock):
    customer_id, number = await customer_with_order(session, clock)
    svc = service(session, clock)
    await svc.link_telegram_by_order(TG, number, "5678")
    again = await svc.link_telegram_by_contact(TG, "+8613812345678", TG)
    assert again.already_linked and again.customer.id == customer_id
    links = await session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "link")
    )
    assert links == 1


async def test_telegram_account_of_another_real_customer_is_a_conflict(session, clock):
    await customer_with_order(session, clock)
    other, _ = await customer_with_order(session, clock, phone="+8613900002222")
    svc = service(session, clock)
    await svc.link_telegram_by_contact(TG, "+8613900002222", TG)
    with pytest.raises(Conflict, match="already linked to another customer"):
        await svc.link_telegram_by_contact(TG, "+8613812345678", TG)
    assert (await svc.find_by_telegram_id(TG)).id == other  # type: ignore[union-attr]


async def test_customer_already_linked_to_a_different_account_is_a_conflict(session, clock):
    customer_id, number = await customer_with_order(session, clock)
    svc = service(session, clock)
    await svc.link_telegram_by_order(TG, number, "5678")
    with pytest.raises(Conflict, match="different Telegram account"):
        await svc.link_telegram_by_order(TG + 1, number, "5678")
    unlinked = await svc.unlink_telegram(customer_id, actor="staff:1", reason="new phone")
    assert unlinked.telegram_user_id is None
    assert (await svc.link_telegram_by_order(TG + 1, number, "5678")).customer.id == customer_id


async def test_erased_customer_cannot_be_linked(session, clock):
    customer_id, number = await customer_with_order(session, clock)
    svc = service(session, clock)
    await svc.erase_customer(customer_id, "staff:1", "customer request")
    with pytest.raises(NotFound):
        await svc.link_telegram_by_order(TG, number, "5678")


async def test_prospect_of_the_telegram_user_is_created_once(session, clock):
    svc = service(session, clock)
    first = await svc.get_or_create_prospect(TG, "  Xiao   Ming ", "zh-hans")
    second = await svc.get_or_create_prospect(TG, "Other name", "en")
    assert first.id == second.id
    assert (first.name, first.language, first.lifecycle_stage) == ("Xiao Ming", "zh", "prospect")
    assert first.telegram_user_id == TG
    nameless = await svc.get_or_create_prospect(TG + 5, None, "ru")
    assert nameless.name == f"Telegram user {TG + 5}" and nameless.language == "en"


async def test_prospect_is_merged_into_the_real_customer_on_linking(session, clock):
    customer_id, number = await customer_with_order(session, clock)
    svc = service(session, clock)
    prospect = await svc.get_or_create_prospect(TG, "Ming", "zh")
    conversation = Conversation(customer_id=prospect.id, chat_id=TG)
    session.add(conversation)
    await session.flush()
    session.add_all(
        [
            Interaction(
                conversation_id=conversation.id,
                customer_id=prospect.id,
                direction="inbound",
                text="我的显卡风扇不转了",
            ),
            Lead(customer_id=prospect.id, products_of_interest=["gpu"]),
            Ticket(ticket_number="TK-00000001", customer_id=prospect.id, subject="fan"),
        ]
    )
    await svc.grant_consent(prospect.id, "telegram:/subscribe")
    clock.advance(timedelta(minutes=1))

    result = await svc.link_telegram_by_order(TG, number, "5678")

    assert result.merged_prospect_id == prospect.id
    assert result.customer.id == customer_id and result.customer.telegram_user_id == TG
    assert result.customer.marketing_consent
    assert await session.get(Customer, prospect.id) is None
    for model in (Conversation, Interaction, Lead, Ticket):
        owners = set((await session.scalars(select(model.customer_id))).all())
        assert owners == {customer_id}, model.__name__
    assert [e.source for e in await svc.consent_events(customer_id)] == ["telegram:/subscribe"]


async def test_prospect_with_orders_is_not_merged(session, clock):
    _, number = await customer_with_order(session, clock)
    svc = service(session, clock)
    prospect = await svc.get_or_create_prospect(TG, "Ming", "zh")
    gpu = await make_product(session)
    await make_order(session, prospect.id, [(gpu, 1, [])], placed_at=clock.now())
    with pytest.raises(Conflict, match="already linked to another customer"):
        await svc.link_telegram_by_order(TG, number, "5678")


async def test_customer_created_with_phone_in_local_format_links_by_international_contact(
    session, clock
):
    svc = service(session, clock)
    dto = await svc.create_customer(CustomerCreate(name="Li Wei", phone="138 1234 5678"))
    result = await svc.link_telegram_by_contact(TG, "+86 138 1234 5678", TG)
    assert result.customer.id == dto.id

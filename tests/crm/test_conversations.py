"""Conversations per chat, logged interactions and satisfaction ratings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import FixedClock
from crm_core.conversations.service import MAX_TEXT_CHARS, ConversationService
from crm_core.customers.models import Customer
from crm_core.errors import NotFound, ValidationFailed
from crm_core.tickets.models import Ticket
from tests.crm.people_factories import make_customer, make_staff

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

CHAT = 700_100_200


def service(session: AsyncSession, clock: FixedClock) -> ConversationService:
    return ConversationService(session, clock)


async def test_one_open_conversation_per_chat(session, clock):
    customer = await make_customer(session)
    svc = service(session, clock)
    first = await svc.open_or_get(customer.id, CHAT)
    again = await svc.open_or_get(customer.id, CHAT)
    other_chat = await svc.open_or_get(customer.id, CHAT + 1)
    assert first.id == again.id != other_chat.id
    assert (first.owner, first.channel, first.started_at) == ("bot", "telegram", clock.now())


async def test_closed_conversation_is_followed_by_a_new_one(session, clock):
    customer = await make_customer(session)
    svc = service(session, clock)
    first = await svc.open_or_get(customer.id, CHAT)
    closed = await svc.close(first.id)
    assert closed.closed_at == clock.now() and not closed.is_open
    assert (await svc.close(first.id)).closed_at == closed.closed_at
    second = await svc.open_or_get(customer.id, CHAT)
    assert second.id != first.id and second.is_open


async def test_interactions_are_logged_with_nlu_results(session, clock):
    customer = await make_customer(session)
    agent = await make_staff(session)
    svc = service(session, clock)
    conv = await svc.open_or_get(customer.id, CHAT)
    clock.advance(timedelta(seconds=30))
    inbound = await svc.log_interaction(
        conv.id,
        "inbound",
        "我的显卡风扇不转了",
        intent="report_fault",
        confidence=0.93,
        kb_hits=["gpu-fan-not-spinning"],
        external_id=4711,
    )
    await svc.log_interaction(conv.id, "outbound", "请检查…", agent_staff_id=agent.id)
    assert inbound.customer_id == customer.id
    assert (inbound.intent, inbound.confidence) == ("report_fault", 0.93)
    assert inbound.kb_hits == ["gpu-fan-not-spinning"] and inbound.external_id == "4711"
    assert (await svc.get(conv.id)).last_activity_at == clock.now()
    refreshed = await session.get(Customer, customer.id)
    assert refreshed is not None and refreshed.last_contact_at == clock.now()


async def test_overlong_text_is_stored_truncated_with_a_marker(session, clock):
    customer = await make_customer(session)
    svc = service(session, clock)
    conv = await svc.open_or_get(customer.id, CHAT)
    text = "A" * 20_000
    stored = await svc.log_interaction(conv.id, "inbound", text)
    assert len(stored.text) == MAX_TEXT_CHARS
    assert stored.text.startswith("A" * 7_000)
    assert stored.text.endswith("[… truncated: 20000 characters in total]")
    exact = await svc.log_interaction(conv.id, "inbound", "B" * MAX_TEXT_CHARS)
    assert exact.text == "B" * MAX_TEXT_CHARS


async def test_bad_interaction_inputs_are_refused(session, clock):
    customer = await make_customer(session)
    svc = service(session, clock)
    conv = await svc.open_or_get(customer.id, CHAT)
    with pytest.raises(ValidationFailed, match="unknown direction"):
        await svc.log_interaction(conv.id, "sideways", "hi")
    with pytest.raises(ValidationFailed, match="between 0 and 1"):
        await svc.log_interaction(conv.id, "inbound", "hi", confidence=1.5)
    with pytest.raises(NotFound):
        await svc.log_interaction(9999, "inbound", "hi")
    with pytest.raises(NotFound):
        await svc.open_or_get(9999, CHAT)


async def test_recent_interactions_are_the_last_ones_in_order(session, clock):
    customer = await make_customer(session)
    svc = service(session, clock)
    conv = await svc.open_or_get(customer.id, CHAT)
    for n in range(6):
        clock.advance(timedelta(seconds=1))
        await svc.log_interaction(conv.id, "inbound", f"message {n}")
    recent = await svc.recent_interactions(conv.id, limit=3)
    assert [i.text for i in recent] == ["message 3", "message 4", "message 5"]
    with pytest.raises(ValidationFailed):
        await svc.recent_interactions(conv.id, limit=0)


async def test_satisfaction_is_recorded_for_scores_one_to_five_only(session, clock):
    customer = await make_customer(session)
    svc = service(session, clock)
    conv = await svc.open_or_get(customer.id, CHAT)
    rating = await svc.record_satisfaction(
        customer.id, 5, "  very helpful  ", conversation_id=conv.id
    )
    assert (rating.score, rating.comment, rating.conversation_id) == (5, "very helpful", conv.id)
    for bad in (0, 6, -1, True):
        with pytest.raises(ValidationFailed, match="1 to 5"):
            await svc.record_satisfaction(customer.id, bad)  # type: ignore[arg-type]
    assert (await svc.record_satisfaction(customer.id, 1)).comment is None


async def test_rating_about_someone_elses_ticket_is_refused(session, clock):
    customer = await make_customer(session)
    other = await make_customer(session, name="Other")
    ticket = Ticket(ticket_number="TK-00000001", customer_id=other.id)
    session.add(ticket)
    await session.flush()
    svc = service(session, clock)
    with pytest.raises(ValidationFailed, match="not one of this customer's"):
        await svc.record_satisfaction(customer.id, 4, ticket_id=ticket.id)
    ok = await svc.record_satisfaction(other.id, 4, ticket_id=ticket.id)
    assert ok.ticket_id == ticket.id

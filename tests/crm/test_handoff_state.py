"""The handoff state machine: bot → queued → agent(id) → bot, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import FixedClock
from crm_core.conversations.handoff import (
    TRANSITIONS,
    WAIT_NOTIFIED,
    HandoffService,
    allowed_events,
    route_team,
)
from crm_core.conversations.handoff_schemas import HandoffEvent, Owner
from crm_core.conversations.models import Interaction
from crm_core.conversations.schemas import ConversationDTO
from crm_core.conversations.service import ConversationService
from crm_core.db import unit_of_work
from crm_core.errors import InvalidTransition, PermissionDenied, ValidationFailed
from tests.conftest import Database
from tests.crm.people_factories import make_customer, make_staff

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

CHAT = 700_200_300


@dataclass
class World:
    svc: HandoffService
    conversation_id: int
    agent: int
    other_agent: int
    admin: int
    marketer: int
    retired: int


async def make_world(session: AsyncSession, clock: FixedClock) -> World:
    customer = await make_customer(session, telegram_user_id=CHAT)
    agent = await make_staff(session, name="王芳")
    other = await make_staff(session, name="Emily Turner")
    admin = await make_staff(session, name="Admin", role="admin")
    marketer = await make_staff(session, name="Sun Li", role="marketer")
    retired = await make_staff(session, name="Old Agent", active=False)
    conv = await ConversationService(session, clock).open_or_get(customer.id, CHAT)
    return World(
        HandoffService(session, clock),
        conv.id,
        agent.id,
        other.id,
        admin.id,
        marketer.id,
        retired.id,
    )


async def into_state(w: World, owner: Owner) -> ConversationDTO:
    """Put the world's conversation into `owner` (bot, queued, or agent = w.agent)."""
    if owner is Owner.BOT:
        return await w.svc.get(w.conversation_id)
    conv = await w.svc.request(w.conversation_id, reason="request_human", intent="request_human")
    if owner is Owner.AGENT:
        conv = await w.svc.claim(w.conversation_id, w.agent)
    return conv


def do_event(w: World, event: HandoffEvent, clock: FixedClock) -> Awaitable[ConversationDTO]:
    far_future = clock.now() + timedelta(days=1)
    calls: dict[HandoffEvent, Callable[[], Awaitable[ConversationDTO]]] = {
        HandoffEvent.REQUEST: lambda: w.svc.request(w.conversation_id, reason="complaint"),
        HandoffEvent.CLAIM: lambda: w.svc.claim(w.conversation_id, w.other_agent),
        HandoffEvent.TRANSFER: lambda: w.svc.transfer(
            w.conversation_id, to_staff_id=w.other_agent, by_staff_id=w.agent
        ),
        HandoffEvent.CANCEL: lambda: w.svc.cancel(w.conversation_id),
        HandoffEvent.QUEUE_TIMEOUT: lambda: w.svc.expire_queue(w.conversation_id, far_future),
        HandoffEvent.RELEASE: lambda: w.svc.release(w.conversation_id, w.agent),
        HandoffEvent.CLOSE: lambda: w.svc.close(w.conversation_id, w.agent),
        HandoffEvent.INACTIVITY: lambda: w.svc.expire_inactive(w.conversation_id, far_future),
    }
    return calls[event]()


@pytest.mark.parametrize("start", list(Owner))
@pytest.mark.parametrize("event", list(HandoffEvent))
async def test_every_event_from_every_owner_follows_the_table(session, clock, start, event):
    w = await make_world(session, clock)
    await into_state(w, start)
    sources, target = TRANSITIONS[event]
    if start in sources:
        after = await do_event(w, event, clock)
        assert after.owner == target.value
        if target is Owner.BOT:
            assert after.agent_staff_id is None and after.queued_at is None
        if target is Owner.AGENT:
            assert after.agent_staff_id == w.other_agent
        assert (after.closed_at is not None) == (event is HandoffEvent.CLOSE)
        events = await w.svc.recent_messages(w.conversation_id)
        assert events == []  # transitions are events, not messages
    else:
        with pytest.raises(InvalidTransition) as err:
            await do_event(w, event, clock)
        assert f"cannot {event.value}" in str(err.value)
        assert (await w.svc.get(w.conversation_id)).owner == start.value


def test_the_table_allows_the_documented_paths():
    assert allowed_events("bot") == [HandoffEvent.REQUEST]
    assert set(allowed_events("queued")) == {
        HandoffEvent.CLAIM,
        HandoffEvent.CANCEL,
        HandoffEvent.QUEUE_TIMEOUT,
        HandoffEvent.RELEASE,
        HandoffEvent.CLOSE,
    }
    assert set(allowed_events("agent")) == {
        HandoffEvent.TRANSFER,
        HandoffEvent.RELEASE,
        HandoffEvent.CLOSE,
        HandoffEvent.INACTIVITY,
    }


async def test_request_queues_and_remembers_reason_intent_category_and_team(session, clock):
    w = await make_world(session, clock)
    conv = await w.svc.request(
        w.conversation_id, reason="not_solved", intent="report_fault", category="gpu", team="hw"
    )
    assert (conv.owner, conv.queued_at, conv.agent_staff_id) == ("queued", clock.now(), None)
    info = await w.svc.last_request(w.conversation_id)
    assert info is not None
    assert (info.reason, info.intent, info.category, info.team) == (
        "not_solved",
        "report_fault",
        "gpu",
        "hw",
    )
    with pytest.raises(ValidationFailed):
        await w.svc.request(w.conversation_id, reason="  ")


async def test_claim_records_the_agent_and_a_second_claim_names_the_owner(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.QUEUED)
    conv = await w.svc.claim(w.conversation_id, w.agent)
    assert (conv.owner, conv.agent_staff_id) == ("agent", w.agent)
    with pytest.raises(InvalidTransition, match=f"with agent staff:{w.agent}"):
        await w.svc.claim(w.conversation_id, w.other_agent)
    log = (
        await session.scalars(
            select(Interaction.text).where(Interaction.conversation_id == w.conversation_id)
        )
    ).all()
    assert any(t.startswith("handoff.claim") and f"staff:{w.agent}" in t for t in log)


async def test_only_active_agents_and_admins_may_claim(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.QUEUED)
    with pytest.raises(PermissionDenied, match="marketer"):
        await w.svc.claim(w.conversation_id, w.marketer)
    with pytest.raises(PermissionDenied, match="deactivated"):
        await w.svc.claim(w.conversation_id, w.retired)
    assert (await w.svc.get(w.conversation_id)).owner == "queued"
    assert (await w.svc.claim(w.conversation_id, w.admin)).agent_staff_id == w.admin


async def test_transfer_is_for_the_owner_or_an_admin_to_another_agent(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.AGENT)
    with pytest.raises(PermissionDenied, match="owner"):
        await w.svc.transfer(w.conversation_id, to_staff_id=w.admin, by_staff_id=w.other_agent)
    with pytest.raises(PermissionDenied):
        await w.svc.transfer(w.conversation_id, to_staff_id=w.marketer, by_staff_id=w.agent)
    with pytest.raises(InvalidTransition, match="already with"):
        await w.svc.transfer(w.conversation_id, to_staff_id=w.agent, by_staff_id=w.agent)
    moved = await w.svc.transfer(w.conversation_id, to_staff_id=w.other_agent, by_staff_id=w.admin)
    assert (moved.owner, moved.agent_staff_id) == ("agent", w.other_agent)


async def test_customer_writing_while_queued_is_logged_and_changes_nothing(session, clock):
    w = await make_world(session, clock)
    queued = await into_state(w, Owner.QUEUED)
    clock.advance(timedelta(minutes=3))
    after = await w.svc.record_customer_message(w.conversation_id, "还在吗？", external_id=77)
    assert (after.owner, after.queued_at) == ("queued", queued.queued_at)
    messages = await w.svc.recent_messages(w.conversation_id)
    assert [(m.direction, m.text, m.external_id) for m in messages] == [
        ("inbound", "还在吗？", "77")
    ]
    # still claimable, and the wait is still measured from when it was queued
    assert (await w.svc.claim(w.conversation_id, w.agent)).owner == "agent"


async def test_customer_writing_while_with_agent_keeps_the_agent(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.AGENT)
    after = await w.svc.record_customer_message(w.conversation_id, "photo of the card")
    assert (after.owner, after.agent_staff_id) == ("agent", w.agent)


async def test_nothing_is_relayed_while_the_bot_owns_the_conversation(session, clock):
    w = await make_world(session, clock)
    with pytest.raises(InvalidTransition):
        await w.svc.record_customer_message(w.conversation_id, "hello")
    with pytest.raises(InvalidTransition):
        await w.svc.record_agent_message(w.conversation_id, w.agent, "hello")


async def test_agent_messages_are_logged_only_for_the_owning_agent(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.AGENT)
    with pytest.raises(PermissionDenied, match="王芳 owns"):
        await w.svc.record_agent_message(w.conversation_id, w.other_agent, "hi")
    await w.svc.record_agent_message(w.conversation_id, w.agent, "您好", external_id=5)
    [message] = await w.svc.recent_messages(w.conversation_id)
    assert (message.direction, message.agent_staff_id, message.text) == (
        "outbound",
        w.agent,
        "您好",
    )


async def test_notes_are_private_events_by_an_agent(session, clock):
    w = await make_world(session, clock)
    note = await w.svc.add_note(w.conversation_id, w.agent, "customer is a reseller")
    assert (note.direction, note.agent_staff_id) == ("event", w.agent)
    assert note.text == "note: customer is a reseller"
    assert await w.svc.recent_messages(w.conversation_id) == []
    with pytest.raises(PermissionDenied):
        await w.svc.add_note(w.conversation_id, w.marketer, "x")
    with pytest.raises(ValidationFailed):
        await w.svc.add_note(w.conversation_id, w.agent, " ")


async def test_queue_timeout_only_after_the_configured_wait(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.QUEUED)
    cutoff = clock.now() - timedelta(minutes=30)
    assert await w.svc.due_queue_timeouts(cutoff) == []
    with pytest.raises(InvalidTransition):
        await w.svc.expire_queue(w.conversation_id, cutoff)
    clock.advance(timedelta(minutes=31))
    cutoff = clock.now() - timedelta(minutes=30)
    assert await w.svc.due_queue_timeouts(cutoff) == [w.conversation_id]
    assert (await w.svc.expire_queue(w.conversation_id, cutoff)).owner == "bot"


async def test_inactivity_counts_from_the_last_message_either_way(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.AGENT)
    clock.advance(timedelta(minutes=20))
    await w.svc.record_customer_message(w.conversation_id, "any news?")
    clock.advance(timedelta(minutes=20))
    cutoff = clock.now() - timedelta(minutes=30)
    assert await w.svc.due_inactive(cutoff) == []
    with pytest.raises(InvalidTransition):
        await w.svc.expire_inactive(w.conversation_id, cutoff)
    clock.advance(timedelta(minutes=11))
    cutoff = clock.now() - timedelta(minutes=30)
    assert await w.svc.due_inactive(cutoff) == [w.conversation_id]
    assert (await w.svc.expire_inactive(w.conversation_id, cutoff)).owner == "bot"


async def test_expected_wait_is_told_once_per_queueing(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.QUEUED)
    clock.advance(timedelta(minutes=6))
    cutoff = clock.now() - timedelta(minutes=5)
    assert await w.svc.due_wait_notices(cutoff) == [w.conversation_id]
    assert await w.svc.take_wait_notice(w.conversation_id, cutoff) is True
    assert await w.svc.take_wait_notice(w.conversation_id, cutoff) is False
    assert await w.svc.due_wait_notices(cutoff) == []
    markers = (
        await session.scalars(select(Interaction).where(Interaction.text == WAIT_NOTIFIED))
    ).all()
    assert len(markers) == 1
    # back to the bot and queued again later: a new wait, a new notice
    await w.svc.cancel(w.conversation_id)
    clock.advance(timedelta(minutes=1))
    await w.svc.request(w.conversation_id, reason="request_human")
    clock.advance(timedelta(minutes=6))
    assert await w.svc.due_wait_notices(clock.now() - timedelta(minutes=5)) == [w.conversation_id]


async def test_queue_position_is_by_waiting_time(session, clock):
    w = await make_world(session, clock)
    other_customer = await make_customer(session, name="James", telegram_user_id=CHAT + 1)
    earlier = await ConversationService(session, clock).open_or_get(other_customer.id, CHAT + 1)
    await w.svc.request(earlier.id, reason="complaint")
    clock.advance(timedelta(seconds=10))
    await into_state(w, Owner.QUEUED)
    assert await w.svc.queue_position(earlier.id) == 1
    assert await w.svc.queue_position(w.conversation_id) == 2
    await w.svc.claim(earlier.id, w.agent)
    assert await w.svc.queue_position(w.conversation_id) == 1
    assert await w.svc.queue_position(earlier.id) == 0


async def test_closed_conversations_allow_no_transition(session, clock):
    w = await make_world(session, clock)
    await into_state(w, Owner.AGENT)
    closed = await w.svc.close(w.conversation_id, w.agent)
    assert closed.closed_at == clock.now()
    with pytest.raises(InvalidTransition, match="closed"):
        await w.svc.request(w.conversation_id, reason="request_human")
    assert await w.svc.current(CHAT) is None


async def test_topic_is_found_from_the_chat_and_back(session, clock):
    w = await make_world(session, clock)
    assert await w.svc.topic_for_chat(CHAT) is None
    await w.svc.set_topic(w.conversation_id, 512)
    await ConversationService(session, clock).close(w.conversation_id)
    assert await w.svc.topic_for_chat(CHAT) == 512  # reused by the next conversation
    found = await w.svc.conversation_for_topic(512)
    assert found is not None and found.id == w.conversation_id
    assert await w.svc.conversation_for_topic(513) is None


async def test_two_agents_claiming_at_once_one_wins(db: Database, clock):
    async with unit_of_work(db.sessions) as session:
        w = await make_world(session, clock)
        await into_state(w, Owner.QUEUED)

    async def claim(staff_id: int) -> str:
        try:
            async with unit_of_work(db.sessions) as session:
                await HandoffService(session, clock).claim(w.conversation_id, staff_id)
        except InvalidTransition:
            return "lost"
        return "won"

    for round_ in range(1, 4):
        outcomes = await asyncio.gather(claim(w.agent), claim(w.other_agent))
        assert sorted(outcomes) == ["lost", "won"]
        async with unit_of_work(db.sessions) as session:
            svc = HandoffService(session, clock)
            conv = await svc.get(w.conversation_id)
            winner = w.agent if outcomes[0] == "won" else w.other_agent
            assert (conv.owner, conv.agent_staff_id) == ("agent", winner)
            claims = (
                await session.scalars(
                    select(Interaction).where(Interaction.text.like("handoff.claim%"))
                )
            ).all()
            assert len(claims) == round_
            await svc.release(w.conversation_id, winner)
            await svc.request(w.conversation_id, reason="request_human")


@dataclass
class _Team:
    name: str
    intents: list[str]
    categories: list[str]
    languages: list[str]


def test_routing_picks_the_most_specific_matching_team():
    teams = [
        _Team("support", [], [], []),
        _Team("support-zh", [], [], ["zh"]),
        _Team("sales", ["purchase_inquiry"], [], []),
        _Team("gpu-zh", ["report_fault"], ["gpu"], ["zh"]),
    ]

    def pick(intent: str | None, category: str | None, lang: str) -> str | None:
        team = route_team(teams, intent=intent, category=category, lang=lang, default="support")
        return None if team is None else team.name

    assert pick("report_fault", "gpu", "zh") == "gpu-zh"
    assert pick("report_fault", "gpu", "en") == "support"
    assert pick("report_fault", "psu", "zh") == "support-zh"
    assert pick("purchase_inquiry", None, "zh") == "support-zh"  # first of equally specific
    assert pick("purchase_inquiry", None, "en") == "sales"
    assert pick(None, None, "en") == "support"
    strict = [_Team("sales", ["purchase_inquiry"], [], [])]
    assert route_team(strict, intent="complaint", category=None, lang="en") is None
    assert (
        route_team(strict, intent="complaint", category=None, lang="en", default="sales")
        is strict[0]
    )

"""The agent desk (one workflow behind both inboxes) with a recording notifier, on SQLite
and PostgreSQL. The real Telegram notifier is exercised in tests/bot/test_handoff.py and
tests/console/test_two_inboxes.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import load_settings
from crm_core.clock import FixedClock
from crm_core.conversations.handoff import HandoffService
from crm_core.conversations.handoff_schemas import Owner
from crm_core.services import CrmServices
from crm_core.staff.schemas import StaffDTO
from crm_core.support.desk import AgentDesk, ChatContext, Notice
from tests.crm.people_factories import make_customer, make_staff

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")
CHAT = 700_900_100


@dataclass
class Recorder:
    """DeskNotifier double: records what would be said to whom."""

    customer: list[str] = field(default_factory=list)
    topic: list[str] = field(default_factory=list)
    agents: list[tuple[int, str]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    ratings: list[str | None] = field(default_factory=list)
    blocked: bool = False

    async def tell_customer(self, ctx: ChatContext, notice: Notice) -> bool:
        self.customer.append(notice.key)
        return not self.blocked

    async def send_agent_message(
        self, ctx: ChatContext, agent: StaffDTO, text: str, content: object | None = None
    ) -> bool:
        if self.blocked:
            return False
        self.sent.append(text)
        return True

    async def ask_for_rating(self, ctx: ChatContext, ticket_number: str | None) -> None:
        self.ratings.append(ticket_number)

    async def post_in_topic(self, ctx: ChatContext, notice: Notice) -> None:
        self.topic.append(notice.key)

    async def notify_agent(self, agent: StaffDTO, notice: Notice) -> None:
        self.agents.append((agent.id, notice.key))


async def world(
    session: AsyncSession, clock: FixedClock
) -> tuple[AgentDesk, Recorder, ChatContext, StaffDTO, StaffDTO]:
    customer = await make_customer(session, telegram_user_id=CHAT)
    customer.language = "zh"
    wang = await make_staff(session, name="王芳")
    emily = await make_staff(session, name="Emily Turner")
    emily.login = "emily"
    await session.flush()
    crm = CrmServices(session, clock, load_settings().crm)
    conv = await crm.conversations.open_or_get(customer.id, CHAT)
    await HandoffService(session, clock).request(conv.id, reason="request_human")
    rec = Recorder()
    desk = AgentDesk(crm, rec, load_settings().handoff.canned)
    ctx = await desk.context(conv.id)
    a = await crm.staff.get(wang.id)
    b = await crm.staff.get(emily.id)
    return desk, rec, ctx, a, b


async def test_claim_tells_customer_and_topic_and_a_second_claim_names_the_owner(
    session: AsyncSession, clock: FixedClock
) -> None:
    desk, rec, ctx, wang, emily = await world(session, clock)
    result = await desk.claim(wang, ctx)
    assert result.ok and result.reply is None
    assert ctx.conversation.owner == Owner.AGENT and ctx.conversation.agent_staff_id == wang.id
    assert rec.customer == ["handoff.customer_claimed"]
    assert rec.topic == ["handoff.topic_claimed"]
    other = await desk.context(ctx.conversation.id)
    lost = await desk.claim(emily, other)
    assert not lost.ok and lost.reply == Notice("handoff.topic_already_claimed", {"agent": "王芳"})


async def test_replying_in_a_queued_conversation_claims_it_and_others_are_refused(
    session: AsyncSession, clock: FixedClock
) -> None:
    desk, rec, ctx, wang, emily = await world(session, clock)
    assert (await desk.reply(wang, ctx, "您好")).ok
    assert rec.sent == ["您好"] and rec.topic == ["handoff.topic_claimed"]
    refused = await desk.reply(emily, await desk.context(ctx.conversation.id), "hi")
    assert not refused.ok and rec.sent == ["您好"]
    empty = await desk.reply(wang, ctx, "   ")
    assert not empty.ok and empty.reply == Notice("handoff.topic_reply_empty")


async def test_canned_reply_goes_out_in_the_customers_language(
    session: AsyncSession, clock: FixedClock
) -> None:
    desk, rec, ctx, wang, _ = await world(session, clock)
    result = await desk.canned(wang, ctx, "hello")
    assert result.ok and rec.sent == [load_settings().handoff.canned["hello"].zh]
    unknown = await desk.canned(wang, ctx, "nope")
    assert not unknown.ok and unknown.reply is not None
    assert unknown.reply.key == "handoff.topic_canned_usage"


async def test_a_blocked_customer_is_reported_to_the_agent(
    session: AsyncSession, clock: FixedClock
) -> None:
    desk, rec, ctx, wang, _ = await world(session, clock)
    await desk.claim(wang, ctx)
    rec.blocked = True
    result = await desk.reply(wang, ctx, "hello?")
    assert not result.ok and result.reply == Notice("handoff.topic_customer_blocked")


async def test_transfer_notifies_the_new_agent_and_close_asks_for_a_rating(
    session: AsyncSession, clock: FixedClock
) -> None:
    desk, rec, ctx, wang, emily = await world(session, clock)
    await desk.claim(wang, ctx)
    assert (await desk.transfer(wang, ctx, "emily")).ok
    assert ctx.conversation.agent_staff_id == emily.id
    assert rec.agents == [(emily.id, "handoff.agent_transferred_dm")]
    assert not (await desk.transfer(emily, ctx, "nobody")).ok
    note = await desk.note(emily, ctx, "customer prefers e-mail")
    assert note.ok and note.reply == Notice("handoff.topic_note_saved")
    closed = await desk.close(emily, ctx)
    assert closed.ok and ctx.conversation.closed_at is not None
    assert rec.ratings == [None] and rec.topic[-1] == "handoff.topic_closed"
    again = await desk.close(emily, ctx)
    assert not again.ok


async def test_release_returns_to_the_bot_and_a_second_release_is_refused(
    session: AsyncSession, clock: FixedClock
) -> None:
    desk, _rec, ctx, wang, _ = await world(session, clock)
    await desk.claim(wang, ctx)
    assert (await desk.release(wang, ctx)).ok
    assert ctx.conversation.owner == Owner.BOT
    second = await desk.release(wang, ctx)
    assert not second.ok and second.reply == Notice("handoff.topic_not_handed_off")
    assert (await desk.change_ticket(wang, ctx, "resolved")).reply == Notice(
        "handoff.topic_ticket_none"
    )

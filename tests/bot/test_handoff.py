"""Agent handoff through the real dispatcher: queue, staff topics, relay both ways, topic
commands, timeouts, access control and deleted topics — in zh and en, on SQLite and PostgreSQL.

The customers and agents are the demo identities: 1001 张伟 (zh), 1002 James Carter (en);
agents 王芳 (Telegram 9001, staff #2), 刘洋 (9002, #3), Emily Turner (9003, #4), 赵磊 (9004, #5).
Default routing (config.yml): zh → team support-zh (#2, #3, #5), en → support-en (#4, #5).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Chat, Document, Message, Update, User
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings, load_settings
from bot.deps import BotDeps
from bot.fake_telegram import InProcessBotAPI, SentCall, UpdateFactory
from bot.handoff import CANCEL_CALLBACK, sweep_handoffs
from bot.i18n import Translator
from bot.runtime import build_bot, build_dispatcher
from crm_core.audit.models import AuditEntry
from crm_core.clock import FixedClock
from crm_core.conversations.models import Conversation, Interaction, SatisfactionRating
from crm_core.customers.models import Customer
from crm_core.db import unit_of_work
from crm_core.services import CrmServices
from crm_core.tickets.state_machine import TicketStatus, allowed_targets
from knowledge_base.answer import Answer
from nlu.schemas import IntentScore, ParseResult

STAFF_CHAT = -100_777_000_111
ZH, EN = 1001, 1002
WANG, LIU, EMILY, ZHAO = 9001, 9002, 9003, 9004  # staff #2, #3, #4, #5
T = Translator()


class KeywordNlu:
    """IntentParser double: "human"/"人工" → request_human, else out_of_scope."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def parse(self, text: str) -> ParseResult:
        self.seen.append(text)
        intent = "request_human" if re.search(r"human|person|人工", text, re.I) else "out_of_scope"
        confidence = 0.97 if intent == "request_human" else 0.2
        return ParseResult(
            text=text,
            intent=intent,
            confidence=confidence,
            ranking=[IntentScore(name=intent, confidence=confidence)],
            backend="test",
            language="zh" if re.search(r"[\u4e00-\u9fff]", text) else "en",
        )


class NoAnswerKb:
    """Answerer double: never confident."""

    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        return Answer(None, None, None, None, None, 0.0, False)


@dataclass
class Desk:
    """The product's dispatcher, Telegram in-process, one staff supergroup with topics."""

    deps: BotDeps
    dp: Dispatcher
    bot: Bot
    api: InProcessBotAPI
    clock: FixedClock
    nlu: KeywordNlu
    updates: UpdateFactory = field(default_factory=UpdateFactory)

    async def feed(self, update: Update) -> list[SentCall]:
        before = len(self.api.calls)
        await self.dp.feed_update(self.bot, update)
        return [c for c in self.api.calls[before:] if c.method != "getMe"]

    def user(self, user_id: int, lang: str = "en", name: str = "Someone") -> User:
        return self.updates.user(user_id, language_code=lang, name=name)

    async def customer_says(self, customer: int, text: str, lang: str) -> list[SentCall]:
        return await self.feed(self.updates.message(self.user(customer, lang), text))

    async def in_topic(self, staff_user: int, text: str, topic: int | None) -> list[SentCall]:
        chat = Chat(id=STAFF_CHAT, type="supergroup", title="Support desk", is_forum=True)
        user = self.user(staff_user, name=f"staff {staff_user}")
        return await self.feed(self.updates.message(user, text, chat=chat, thread_id=topic))

    async def sweep(self) -> Any:
        return await sweep_handoffs(self.bot, self.deps)

    async def conversation(self, chat_id: int) -> Conversation:
        async with unit_of_work(self.deps.sessions) as session:
            row = await session.scalar(
                select(Conversation)
                .where(Conversation.chat_id == chat_id)
                .order_by(Conversation.id.desc())
                .limit(1)
            )
            assert row is not None
            return row

    async def interactions(self, chat_id: int) -> list[Interaction]:
        conv = await self.conversation(chat_id)
        async with unit_of_work(self.deps.sessions) as session:
            rows = await session.scalars(
                select(Interaction)
                .where(Interaction.conversation_id == conv.id)
                .order_by(Interaction.id)
            )
            return list(rows)

    async def audit(self, action: str) -> list[AuditEntry]:
        async with unit_of_work(self.deps.sessions) as session:
            rows = await session.scalars(select(AuditEntry).where(AuditEntry.action == action))
            return list(rows)

    async def crm(self) -> AsyncIterator[CrmServices]:
        async with unit_of_work(self.deps.sessions) as session:
            yield CrmServices(session, self.clock, self.deps.settings.crm)


def make_desk(sessions: async_sessionmaker[AsyncSession], clock: FixedClock, **bot: Any) -> Desk:
    settings: Settings = load_settings()
    settings.bot.staff_chat_id = STAFF_CHAT
    for key, value in bot.items():
        setattr(settings.bot, key, value)
    nlu = KeywordNlu()
    deps = BotDeps(
        settings=settings,
        sessions=sessions,
        clock=clock,
        translator=T,
        nlu=nlu,
        kb=NoAnswerKb(),
    )
    api = InProcessBotAPI()
    return Desk(deps, build_dispatcher(deps), build_bot(settings, session=api), api, clock, nlu)


@pytest.fixture
async def desk(demo_sessions: async_sessionmaker[AsyncSession], demo_clock: FixedClock) -> Desk:
    return make_desk(demo_sessions, demo_clock)


def to(calls: list[SentCall], chat_id: int, method: str | None = None) -> list[SentCall]:
    return [c for c in calls if c.chat_id == chat_id and (method is None or c.method == method)]


def texts(calls: list[SentCall]) -> str:
    return "\n".join(c.text for c in calls if c.text)


LANGS = [pytest.param(ZH, "zh", id="zh"), pytest.param(EN, "en", id="en")]
ASK = {"zh": "我要人工客服", "en": "I want to talk to a human"}


async def queue(desk: Desk, customer: int, lang: str) -> tuple[int, list[SentCall]]:
    """The customer asks for a person; returns the staff topic and the calls made."""
    calls = await desk.customer_says(customer, ASK[lang], lang)
    [created] = [c for c in calls if c.method == "createForumTopic"]
    return int(created.result.message_thread_id), calls


# --- requesting a person ------------------------------------------------------------------


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_handoff_creates_a_topic_posts_and_pins_the_card_and_notifies_the_team(
    desk: Desk, customer: int, lang: str
) -> None:
    topic, calls = await queue(desk, customer, lang)
    staff = to(calls, STAFF_CHAT)
    assert [c.method for c in staff][:3] == ["createForumTopic", "sendMessage", "pinChatMessage"]
    card = staff[1]
    assert card.params["message_thread_id"] == topic
    assert staff[2].params["message_id"] == card.result.message_id
    name = "张伟" if lang == "zh" else "James Carter"
    assert name in card.text and "request_human" in card.text
    assert ASK[lang] in card.text  # the last messages
    assert "warranty" in card.text  # devices with warranty status (staff language en)
    if lang == "en":
        assert "TK-" in card.text  # James has an open repair ticket
    # the team is mentioned in the topic and DM'd
    [notice] = [c for c in staff if any(e["type"] == "text_link" for e in c.entities)]
    team = {"zh": [WANG, LIU, ZHAO], "en": [EMILY, ZHAO]}[lang]
    mentioned = [e["url"] for e in notice.entities if e["type"] == "text_link"]
    for agent in team:
        assert f"tg://user?id={agent}" in mentioned
        assert to(calls, agent, "sendMessage"), f"agent {agent} got no DM"
    assert not to(calls, EMILY if lang == "zh" else WANG)
    # the customer is told, in their language, with a way out
    [told] = to(calls, customer)
    assert told.text == T.t("handoff.customer_queued", lang)
    assert [data for _, data in told.buttons()] == [CANCEL_CALLBACK]
    conv = await desk.conversation(customer)
    assert (conv.owner, conv.staff_topic_id) == ("queued", topic)
    [read] = [a for a in await desk.audit("read") if a.actor == "bot:handoff"]
    assert read.customer_id == conv.customer_id and "handoff card" in read.reason


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_customer_writing_while_queued_is_relayed_and_the_bot_stays_silent(
    desk: Desk, customer: int, lang: str
) -> None:
    topic, _ = await queue(desk, customer, lang)
    seen_by_nlu = len(desk.nlu.seen)
    calls = await desk.customer_says(customer, "hello? 还在吗", lang)
    photo = await desk.feed(
        desk.updates.message(desk.user(customer, lang), photo_file_id="ph-1", caption="the card")
    )
    document = Update(
        update_id=777_001,
        message=Message(
            message_id=4242,
            date=datetime.now(UTC),
            chat=Chat(id=customer, type="private"),
            from_user=desk.user(customer, lang),
            document=Document(file_id="doc-1", file_unique_id="d1", file_name="invoice.pdf"),
        ),
    )
    doc = await desk.feed(document)
    for relayed in (calls, photo, doc):
        assert to(relayed, customer) == []  # nothing said to the customer
        [copy] = to(relayed, STAFF_CHAT)
        assert copy.method == "copyMessage"
        assert (copy.params["from_chat_id"], copy.params["message_thread_id"]) == (customer, topic)
    assert len(desk.nlu.seen) == seen_by_nlu  # no flow looked at it
    inbound = [(i.direction, i.text) for i in await desk.interactions(customer)]
    assert inbound.count(("inbound", "hello? 还在吗")) == 1
    assert any("invoice.pdf" in text for _, text in inbound)
    assert (await desk.conversation(customer)).owner == "queued"


async def test_customer_can_leave_the_queue_by_command_or_button(desk: Desk) -> None:
    topic, _ = await queue(desk, EN, "en")
    calls = await desk.customer_says(EN, "/cancel", "en")
    assert texts(to(calls, EN)) == T.t("handoff.customer_cancelled", "en")
    assert T.t("handoff.topic_cancelled", "en") in texts(to(calls, STAFF_CHAT))
    assert (await desk.conversation(EN)).owner == "bot"
    # queued again (same topic, no new one), then the button
    calls = await desk.customer_says(EN, ASK["en"], "en")
    assert not [c for c in calls if c.method == "createForumTopic"]
    assert to(calls, STAFF_CHAT)[0].params["message_thread_id"] == topic
    calls = await desk.feed(desk.updates.callback(desk.user(EN), CANCEL_CALLBACK))
    assert [c.method for c in calls if c.chat_id == EN] == ["sendMessage"]
    assert any(c.method == "answerCallbackQuery" for c in calls)
    assert (await desk.conversation(EN)).owner == "bot"
    # a stale button only gets a toast
    calls = await desk.feed(desk.updates.callback(desk.user(EN), CANCEL_CALLBACK))
    [answer] = calls
    assert answer.params.get("text") == T.t("handoff.cancel_stale", "en")


async def test_asking_again_while_queued_gives_the_queue_position(desk: Desk) -> None:
    await queue(desk, ZH, "zh")
    calls = await desk.feed(desk.updates.callback(desk.user(ZH, "zh"), "noop"))
    assert to(calls, STAFF_CHAT) == []  # button presses are not relayed
    async for crm in desk.crm():
        from bot.handoff import request_handoff

        customer = await crm.customers.find_by_telegram_id(ZH)
        assert customer is not None
        result = await request_handoff(
            desk.bot,
            desk.deps,
            crm,
            customer,
            reason="complaint",
            intent="complaint",
            category=None,
            lang="zh",
        )
    assert result.status == "already_queued"
    assert desk.api.calls[-1].text == T.t("handoff.already_queued", "zh", position=1)


async def test_without_a_staff_group_the_customer_is_told_nobody_can_take_it(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: FixedClock
) -> None:
    desk = make_desk(demo_sessions, demo_clock, staff_chat_id=0)
    calls = await desk.customer_says(EN, ASK["en"], "en")
    assert T.t("handoff.unavailable", "en") in texts(to(calls, EN))
    assert (await desk.conversation(EN)).owner == "bot"


# --- agents in the topic --------------------------------------------------------------------


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_agent_claims_and_messages_are_relayed_both_ways(
    desk: Desk, customer: int, lang: str
) -> None:
    topic, _ = await queue(desk, customer, lang)
    calls = await desk.in_topic(WANG, "/claim", topic)
    assert texts(to(calls, customer)) == T.t("handoff.customer_claimed", lang, agent="王芳")
    assert "王芳" in texts(to(calls, STAFF_CHAT))
    conv = await desk.conversation(customer)
    assert (conv.owner, conv.agent_staff_id) == ("agent", 2)

    calls = await desk.in_topic(WANG, "Please send a photo of the label", topic)
    [copy] = calls
    assert (copy.method, copy.chat_id, copy.params["from_chat_id"]) == (
        "copyMessage",
        customer,
        STAFF_CHAT,
    )
    calls = await desk.customer_says(customer, "here it is", lang)
    assert [c.method for c in calls] == ["copyMessage"] and calls[0].chat_id == STAFF_CHAT
    log = await desk.interactions(customer)
    outbound = [i for i in log if i.direction == "outbound" and i.agent_staff_id == 2]
    assert len(outbound) == 1  # the agent's message, attributed, logged once


async def test_a_second_claim_loses_and_names_the_owner(desk: Desk) -> None:
    topic, _ = await queue(desk, EN, "en")
    await desk.in_topic(EMILY, "/claim", topic)
    calls = await desk.in_topic(ZHAO, "/claim", topic)
    assert texts(calls) == T.t("handoff.topic_already_claimed", "en", agent="Emily Turner")
    assert to(calls, EN) == []
    again = await desk.in_topic(EMILY, "/claim", topic)
    assert texts(again) == T.t("handoff.topic_already_yours", "en")
    # another agent's plain message is not sent to the customer either
    calls = await desk.in_topic(ZHAO, "I can help too", topic)
    assert to(calls, EN) == []
    assert (await desk.conversation(EN)).agent_staff_id == 4


async def test_writing_in_a_queued_topic_claims_it(desk: Desk) -> None:
    topic, _ = await queue(desk, ZH, "zh")
    calls = await desk.in_topic(ZHAO, "您好，我来看看", topic)
    methods = [(c.method, c.chat_id) for c in calls]
    assert ("copyMessage", ZH) in methods
    assert T.t("handoff.customer_claimed", "zh", agent="赵磊") in texts(to(calls, ZH))
    assert (await desk.conversation(ZH)).agent_staff_id == 5


async def test_notes_are_stored_and_never_sent(desk: Desk) -> None:
    topic, _ = await queue(desk, EN, "en")
    await desk.in_topic(EMILY, "/claim", topic)
    calls = await desk.in_topic(EMILY, "/note customer sounds upset, offer a discount", topic)
    assert to(calls, EN) == []
    assert texts(calls) == T.t("handoff.topic_note_saved", "en")
    [note] = [i for i in await desk.interactions(EN) if i.text.startswith("note: ")]
    assert (note.direction, note.agent_staff_id) == ("event", 4)
    assert "discount" in note.text
    calls = await desk.in_topic(EMILY, "/note", topic)
    assert texts(calls) == T.t("handoff.topic_note_usage", "en")


async def test_ticket_command_moves_the_latest_open_ticket_or_explains_why_not(
    desk: Desk,
) -> None:
    topic, _ = await queue(desk, EN, "en")
    await desk.in_topic(EMILY, "/claim", topic)
    async for crm in desk.crm():
        customer = await crm.customers.find_by_telegram_id(EN)
        assert customer is not None
        tickets = [
            t
            for t in await crm.tickets.list_for_customer(customer.id)
            if t.status not in ("resolved", "closed")
        ]
    ticket = tickets[0]
    allowed = [s.value for s in allowed_targets(ticket.status)]
    refused = next(s.value for s in TicketStatus if s.value not in allowed)
    calls = await desk.in_topic(EMILY, f"/ticket {refused}", topic)
    assert ticket.ticket_number in texts(calls) and "not changed" in texts(calls)
    assert to(calls, EN) == []
    calls = await desk.in_topic(EMILY, f"/ticket {allowed[0]} parts ordered", topic)
    assert texts(calls) == T.t(
        "handoff.topic_ticket_moved",
        "en",
        ticket=ticket.ticket_number,
        old=ticket.status,
        new=allowed[0],
    )
    calls = await desk.in_topic(EMILY, "/ticket TK-00000001 resolved", topic)
    assert "No ticket TK-00000001" in texts(calls)
    calls = await desk.in_topic(EMILY, "/ticket", topic)
    assert "Usage" in texts(calls)


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_canned_replies_go_out_in_the_customers_language(
    desk: Desk, customer: int, lang: str
) -> None:
    topic, _ = await queue(desk, customer, lang)
    await desk.in_topic(ZHAO, "/claim", topic)
    calls = await desk.in_topic(ZHAO, "/canned serial", topic)
    canned = desk.deps.settings.handoff.canned["serial"]
    expected = canned.zh if lang == "zh" else canned.en
    assert texts(to(calls, customer)) == expected
    assert expected in texts(to(calls, STAFF_CHAT))
    calls = await desk.in_topic(ZHAO, "/canned nonsense", topic)
    assert to(calls, customer) == [] and "bye, hello, rma, serial" in texts(calls)


async def test_transfer_hands_the_conversation_to_another_agent(desk: Desk) -> None:
    topic, _ = await queue(desk, ZH, "zh")
    await desk.in_topic(WANG, "/claim", topic)
    calls = await desk.in_topic(WANG, "/transfer liu.yang", topic)
    assert T.t("handoff.customer_transferred", "zh", agent="刘洋") in texts(to(calls, ZH))
    assert (await desk.conversation(ZH)).agent_staff_id == 3
    calls = await desk.in_topic(LIU, "/transfer nobody", topic)
    assert "nobody" in texts(calls) and to(calls, ZH) == []


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_bot_command_gives_the_conversation_back_to_the_bot(
    desk: Desk, customer: int, lang: str
) -> None:
    topic, _ = await queue(desk, customer, lang)
    await desk.in_topic(WANG, "/claim", topic)
    calls = await desk.in_topic(WANG, "/bot", topic)
    assert texts(to(calls, customer)) == T.t("handoff.customer_back_to_bot", lang)
    assert (await desk.conversation(customer)).owner == "bot"
    seen = len(desk.nlu.seen)
    calls = await desk.customer_says(customer, "what about my order?", lang)
    assert len(desk.nlu.seen) == seen + 1  # the flows answer again
    assert not [c for c in calls if c.method == "copyMessage"]
    calls = await desk.in_topic(WANG, "are you there?", topic)
    assert to(calls, customer) == []  # not relayed while the bot has it
    assert texts(calls) == T.t("handoff.topic_not_handed_off", "en")


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_close_resolves_the_conversations_ticket_and_asks_for_a_rating(
    desk: Desk, customer: int, lang: str
) -> None:
    topic, _ = await queue(desk, customer, lang)
    await desk.in_topic(ZHAO, "/claim", topic)
    async for crm in desk.crm():
        record = await crm.customers.find_by_telegram_id(customer)
        assert record is not None
        opened = await crm.tickets.create(record.id, kind="complaint", symptom="fan noise")
    calls = await desk.in_topic(ZHAO, "/close", topic)
    said = to(calls, customer)
    assert said[0].text == T.t("handoff.customer_closed", lang)
    assert len(said[-1].buttons()) >= 5  # the 1-5 rating prompt of the feedback flow
    assert opened.ticket_number in texts(to(calls, STAFF_CHAT))
    conv = await desk.conversation(customer)
    assert (conv.owner, conv.closed_at is not None) == ("bot", True)
    async for crm in desk.crm():
        assert (await crm.tickets.get(opened.ticket_number)).status == "resolved"
    # the customer's rating goes to the feedback flow (the conversation is the bot's again)
    _, five_stars = said[-1].buttons()[4]
    asked = await desk.feed(desk.updates.callback(desk.user(customer, lang), five_stars))
    [(_, skip_comment)] = [b for c in to(asked, customer) for b in c.buttons()]
    await desk.feed(desk.updates.callback(desk.user(customer, lang), skip_comment))
    async with unit_of_work(desk.deps.sessions) as session:
        scores = (
            await session.scalars(
                select(SatisfactionRating.score).where(
                    SatisfactionRating.customer_id == conv.customer_id,
                    SatisfactionRating.created_at == desk.clock.now(),
                )
            )
        ).all()
    assert list(scores) == [5]
    # the next handoff reuses the customer's topic
    calls = await desk.customer_says(customer, ASK[lang], lang)
    assert not [c for c in calls if c.method == "createForumTopic"]
    assert to(calls, STAFF_CHAT)[0].params["message_thread_id"] == topic


# --- timeouts (the sweeper) -----------------------------------------------------------------


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_unclaimed_customers_are_told_the_expected_wait_once(
    desk: Desk, customer: int, lang: str
) -> None:
    await queue(desk, customer, lang)
    desk.api.clear()
    assert (await desk.sweep()).wait_notices == 0
    desk.clock.advance(timedelta(seconds=desk.deps.settings.handoff.claim_timeout_s + 1))
    report = await desk.sweep()
    assert report.wait_notices == 1
    minutes = desk.deps.settings.handoff.expected_wait_minutes
    assert texts(to(desk.api.calls, customer)) == T.t(
        "handoff.expected_wait", lang, minutes=minutes, position=1
    )
    assert to(desk.api.calls, STAFF_CHAT)  # and the topic knows
    desk.api.clear()
    desk.clock.advance(timedelta(minutes=5))
    assert (await desk.sweep()).wait_notices == 0
    assert to(desk.api.calls, customer) == []


async def test_nobody_claiming_for_too_long_returns_the_customer_to_the_bot(desk: Desk) -> None:
    await queue(desk, EN, "en")
    desk.clock.advance(timedelta(seconds=desk.deps.settings.handoff.queue_timeout_s + 1))
    desk.api.clear()
    report = await desk.sweep()
    assert report.queue_timeouts == 1
    assert T.t("handoff.customer_queue_timeout", "en") in texts(to(desk.api.calls, EN))
    assert (await desk.conversation(EN)).owner == "bot"


@pytest.mark.parametrize(("customer", "lang"), LANGS)
async def test_inactivity_returns_the_conversation_to_the_bot(
    desk: Desk, customer: int, lang: str
) -> None:
    topic, _ = await queue(desk, customer, lang)
    await desk.in_topic(WANG, "/claim", topic)
    timeout = desk.deps.settings.handoff.inactivity_timeout_s
    desk.clock.advance(timedelta(seconds=timeout - 60))
    await desk.customer_says(customer, "still there?", lang)  # activity resets the clock
    desk.clock.advance(timedelta(seconds=120))
    desk.api.clear()
    assert (await desk.sweep()).inactive == 0
    desk.clock.advance(timedelta(seconds=timeout))
    assert (await desk.sweep()).inactive == 1
    assert texts(to(desk.api.calls, customer)) == T.t("handoff.customer_inactive", lang)
    assert T.t("handoff.topic_inactive", "en", minutes=timeout // 60) in texts(
        to(desk.api.calls, STAFF_CHAT)
    )
    assert (await desk.conversation(customer)).owner == "bot"


# --- who may act in the staff group ---------------------------------------------------------


async def test_non_agents_in_the_staff_group_are_ignored_and_audited(desk: Desk) -> None:
    topic, _ = await queue(desk, EN, "en")
    async for crm in desk.crm():
        await crm.staff.add_staff("Sun Li", "marketer", telegram_user_id=9100)
    for stranger in (5555, 9100):
        calls = await desk.in_topic(stranger, "/claim", topic)
        assert calls == []
        calls = await desk.in_topic(stranger, "hi customer, buy our stuff", topic)
        assert calls == []
    denied = await desk.audit("denied")
    assert sorted(a.actor for a in denied) == ["telegram:5555"] * 2 + ["telegram:9100"] * 2
    assert all(a.customer_id is not None for a in denied)
    assert (await desk.conversation(EN)).owner == "queued"
    # outside customer topics: nothing happens, nothing is audited
    assert await desk.in_topic(EMILY, "/claim", None) == []
    assert await desk.in_topic(EMILY, "lunch?", 99_999) == []
    assert len(await desk.audit("denied")) == 4
    # the bot's own (or another bot's) messages are ignored
    chat = Chat(id=STAFF_CHAT, type="supergroup", title="Support desk", is_forum=True)
    bot_user = User(id=42, is_bot=True, first_name="NorthBridge Support")
    own = desk.updates.message(bot_user, "/claim", chat=chat, thread_id=topic)
    assert await desk.feed(own) == []


# --- deleted topics -------------------------------------------------------------------------


async def test_a_deleted_topic_is_recreated_and_nothing_is_lost(desk: Desk) -> None:
    topic, _ = await queue(desk, ZH, "zh")
    await desk.in_topic(WANG, "/claim", topic)
    desk.api.deleted_topics.add(topic)
    calls = await desk.customer_says(ZH, "显卡还是花屏", "zh")
    staff = to(calls, STAFF_CHAT)
    [created] = [c for c in staff if c.method == "createForumTopic"]
    new_topic = created.result.message_thread_id
    assert new_topic != topic
    in_new = [c for c in staff if c.params.get("message_thread_id") == new_topic]
    methods = [c.method for c in staff if c.method != "createForumTopic"]
    assert methods == ["sendMessage", "sendMessage", "pinChatMessage", "copyMessage"]
    assert len(in_new) == 3  # notice + card + the customer's message (pin has no thread)
    assert "张伟" in staff[2].text  # the card again
    assert staff[-1].params["message_thread_id"] == new_topic
    assert (await desk.conversation(ZH)).staff_topic_id == new_topic
    # the agent carries on in the new topic
    calls = await desk.in_topic(WANG, "请重新安装驱动", new_topic)
    assert [(c.method, c.chat_id) for c in calls] == [("copyMessage", ZH)]


async def test_a_topic_deleted_between_handoffs_is_recreated_for_the_next_one(
    desk: Desk,
) -> None:
    topic, _ = await queue(desk, EN, "en")
    await desk.in_topic(EMILY, "/close", topic)
    desk.api.deleted_topics.add(topic)
    calls = await desk.customer_says(EN, ASK["en"], "en")
    created = [c for c in calls if c.method == "createForumTopic"]
    assert len(created) == 1
    new_topic = created[0].result.message_thread_id
    cards = [c for c in to(calls, STAFF_CHAT, "sendMessage") if "James Carter" in c.text]
    assert len(cards) == 1 and cards[0].params["message_thread_id"] == new_topic
    assert (await desk.conversation(EN)).staff_topic_id == new_topic
    assert T.t("handoff.customer_queued", "en") in texts(to(calls, EN))


async def test_customers_records_are_kept_for_every_relay(desk: Desk) -> None:
    """Every message of the exchange is in the CRM exactly once."""
    topic, _ = await queue(desk, EN, "en")
    await desk.customer_says(EN, "first", "en")
    await desk.in_topic(EMILY, "/claim", topic)
    await desk.in_topic(EMILY, "reply one", topic)
    await desk.customer_says(EN, "second", "en")
    log = [(i.direction, i.text) for i in await desk.interactions(EN)]
    assert log.count(("inbound", "first")) == 1 and log.count(("inbound", "second")) == 1
    assert sum(1 for d, t in log if d == "outbound" and "copy" in t) == 1
    async for crm in desk.crm():
        record = await crm.customers.find_by_telegram_id(EN)
        assert record is not None
        stored = await crm.session.get(Customer, record.id)
        assert stored is not None and stored.last_contact_at == desk.clock.now()


async def test_edits_are_relayed_as_text_and_a_blocked_customer_is_reported(desk: Desk) -> None:
    topic, _ = await queue(desk, EN, "en")
    await desk.in_topic(EMILY, "/claim", topic)
    edited = Update(
        update_id=888_001,
        edited_message=Message(
            message_id=31,
            date=datetime.now(UTC),
            edit_date=int(datetime.now(UTC).timestamp()),
            chat=Chat(id=EN, type="private"),
            from_user=desk.user(EN),
            text="actually it is the HDMI port",
        ),
    )
    calls = await desk.feed(edited)
    assert [c.method for c in calls] == ["sendMessage"]
    assert calls[0].text == T.t("handoff.topic_edited", "en", text="actually it is the HDMI port")
    assert calls[0].params["message_thread_id"] == topic

    from aiogram.exceptions import TelegramForbiddenError

    desk.api.fail_next(
        "copyMessage", lambda m: TelegramForbiddenError(m, "Forbidden: bot was blocked by the user")
    )
    calls = await desk.in_topic(EMILY, "are you still there?", topic)
    assert texts(calls) == T.t("handoff.topic_customer_blocked", "en")


async def test_the_sweeper_task_runs_until_cancelled(desk: Desk) -> None:
    import asyncio

    from bot.handoff import start_handoff_sweeper

    await queue(desk, ZH, "zh")
    desk.clock.advance(timedelta(hours=5))
    desk.api.clear()
    task = start_handoff_sweeper(desk.bot, desk.deps, interval_s=3600)
    notice = T.t("handoff.topic_queue_timeout", "en", minutes=240)
    for _ in range(500):  # the first pass ends with the notice in the topic
        if notice in texts(to(desk.api.calls, STAFF_CHAT)):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # let the pass finish; the task then sleeps for an hour
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # only the timeout is told (not also the expected wait, which was due as well)
    assert texts(to(desk.api.calls, ZH)) == T.t("handoff.customer_queue_timeout", "zh")
    assert (await desk.conversation(ZH)).owner == "bot"

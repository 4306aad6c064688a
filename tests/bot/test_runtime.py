"""The bot runtime through the real dispatcher: middlewares, CRM logging, Telegram errors.

Each test builds the product's dispatcher (`build_dispatcher`: every middleware, the feature
routers and the fallback router) on a migrated database (SQLite and PostgreSQL), with
Telegram simulated in-process (`InProcessBotAPI`). A small test router in front of the
product routers gives the runtime something to run: `/echo`, `/boom`, `/slow`, `/long`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    Voice,
)
from sqlalchemy import select

from app.settings import load_settings
from bot.deps import BotDeps, Texts
from bot.fake_telegram import InProcessBotAPI, SentCall, UpdateFactory
from bot.i18n import Translator
from bot.middlewares.errors import SecretRedactingFilter
from bot.middlewares.options import RuntimeOptions
from bot.routers import all_routers
from bot.runtime import BotDispatcher, build_bot, build_dispatcher
from crm_core.conversations.models import Interaction
from crm_core.customers.models import Customer
from crm_core.db import unit_of_work
from knowledge_base.answer import Answer
from nlu.service import FakeIntentParser
from tests.conftest import Database

STAFF_CHAT = -100_555


class NoAnswerKb:
    """Knowledge-base double: never confident."""

    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        return Answer(None, None, None, None, None, 0.0, False)


@dataclass
class Probe:
    """What the test router saw, in order."""

    seen: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)


def probe_router(probe: Probe) -> Router:
    router = Router(name="runtime-probe")

    @router.message(Command("echo"))
    async def echo(message: Message, t: Texts) -> None:
        probe.seen.append(message.text or "")
        await message.answer(f"echo {message.text}")

    @router.message(Command("slow"))
    async def slow(message: Message) -> None:
        probe.started.set()
        await probe.release.wait()
        probe.seen.append(message.text or "")
        await message.answer(f"done {message.text}")

    @router.message(Command("nap"))
    async def nap(message: Message) -> None:
        # "/nap 0.05 label": sleeps, then records the label (ordering tests)
        _, seconds, label = (message.text or "").split(maxsplit=2)
        await asyncio.sleep(float(seconds))
        probe.seen.append(label)
        await message.answer(f"nap {label}")

    @router.message(Command("boom"))
    async def boom(message: Message, crm: Any) -> None:
        await message.answer("about to fail")
        raise RuntimeError("handler bug with customer data: +8613800000000")

    @router.message(Command("long"))
    async def long(message: Message) -> None:
        await message.answer("x" * 5000)

    @router.message(Command("media"))
    async def media(message: Message, bot: Bot) -> None:
        await bot.send_photo(message.chat.id, "photo-file-id", caption="the photo")
        await bot.send_document(message.chat.id, "doc-file-id", caption="the manual")
        await bot.copy_message(message.chat.id, STAFF_CHAT, 77)
        sent = await message.answer("v1")
        await bot.edit_message_text("v2", chat_id=message.chat.id, message_id=sent.message_id)
        await bot.send_message(STAFF_CHAT, "note for the staff group")

    @router.message(Command("remember"))
    async def remember(message: Message, state: FSMContext) -> None:
        await state.update_data(note=(message.text or "").removeprefix("/remember "))
        await message.answer("noted")

    @router.message(Command("recall"))
    async def recall(message: Message, state: FSMContext) -> None:
        await message.answer(f"you said: {(await state.get_data()).get('note')}")

    @router.message(F.text == "menu")
    async def menu(message: Message) -> None:
        await message.answer(
            "pick",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="Yes please", callback_data="y")]]
            ),
        )

    return router


@dataclass
class Rig:
    """The product dispatcher on a test database, with Telegram in-process."""

    db: Database
    deps: BotDeps
    dp: BotDispatcher
    bot: Bot
    api: InProcessBotAPI
    probe: Probe
    updates: UpdateFactory = field(default_factory=UpdateFactory)

    async def feed(self, update: Update) -> list[SentCall]:
        before = len(self.api.calls)
        await self.dp.feed_update(self.bot, update)
        return [c for c in self.api.calls[before:] if c.method != "getMe"]

    async def send(self, user_id: int, text: str, lang: str = "en", **kw: Any) -> list[SentCall]:
        return await self.feed(self.updates.message(self.updates.user(user_id, lang), text, **kw))

    async def interactions(self, telegram_id: int) -> list[tuple[str, str]]:
        async with unit_of_work(self.db.sessions) as session:
            customer_id = await session.scalar(
                select(Customer.id).where(Customer.telegram_user_id == telegram_id)
            )
            rows = await session.scalars(
                select(Interaction)
                .where(Interaction.customer_id == customer_id)
                .order_by(Interaction.id)
            )
            return [(r.direction, r.text) for r in rows]

    async def customer(self, telegram_id: int) -> Customer | None:
        async with unit_of_work(self.db.sessions) as session:
            return await session.scalar(
                select(Customer).where(Customer.telegram_user_id == telegram_id)
            )


def make_rig(
    db: Database,
    clock: Any,
    *,
    product_routers: bool = False,
    fsm_storage: str = "memory",
    probe: Probe | None = None,
    **option_overrides: Any,
) -> Rig:
    """The product dispatcher with the probe router; the feature routers too when
    `product_routers` (then the fallback router only sees what no flow took)."""
    settings = load_settings()
    settings.bot.staff_chat_id = STAFF_CHAT
    settings.bot.fsm_storage = fsm_storage  # type: ignore[assignment]
    deps = BotDeps(
        settings=settings,
        sessions=db.sessions,
        clock=clock,
        translator=Translator(),
        nlu=FakeIntentParser(),
        kb=NoAnswerKb(),
    )
    probe = probe or Probe()
    options = RuntimeOptions(**option_overrides)
    routers = [probe_router(probe), *(all_routers() if product_routers else [])]
    dp = build_dispatcher(deps, options=options, routers=routers)
    api = InProcessBotAPI()
    bot = build_bot(settings, session=api)
    return Rig(db, deps, dp, bot, api, probe)


@pytest.fixture
async def rig(db: Database, clock: Any) -> AsyncIterator[Rig]:
    yield make_rig(db, clock)


@pytest.fixture
async def product_rig(db: Database, clock: Any) -> AsyncIterator[Rig]:
    yield make_rig(db, clock, product_routers=True)


# -- interaction logging -------------------------------------------------------------------


async def test_every_inbound_and_outbound_message_of_a_customer_lands_in_the_crm(
    rig: Rig,
) -> None:
    calls = await rig.send(5001, "/echo hello")
    assert [c.text for c in calls] == ["echo /echo hello"]
    assert await rig.interactions(5001) == [
        ("inbound", "/echo hello"),
        ("outbound", "echo /echo hello"),
    ]


async def test_photos_documents_copies_and_edits_to_the_customer_are_logged_but_not_staff_posts(
    rig: Rig,
) -> None:
    calls = await rig.send(5002, "/media")
    assert [c.method for c in calls] == [
        "sendPhoto",
        "sendDocument",
        "copyMessage",
        "sendMessage",
        "editMessageText",
        "sendMessage",
    ]
    logged = await rig.interactions(5002)
    assert logged[0] == ("inbound", "/media")
    outbound = [text for direction, text in logged if direction == "outbound"]
    assert outbound[0] == "[photo] the photo"
    assert outbound[1] == "[document] the manual"
    assert outbound[2].startswith("[copy of message #77 from chat -100555]")
    assert outbound[3] == "v1"
    assert outbound[4].endswith("v2") and outbound[4].startswith("[edited message #")
    assert len(outbound) == 5  # the post to the staff group is not a customer message


async def test_a_message_sent_outside_any_update_is_logged_in_its_own_unit_of_work(
    rig: Rig,
) -> None:
    await rig.send(5003, "/echo first")  # the customer exists
    rig.dp.runtime.wire(rig.bot)
    await rig.bot.send_message(5003, "A reminder from the scheduler")
    assert (await rig.interactions(5003))[-1] == ("outbound", "A reminder from the scheduler")


async def test_a_button_press_is_logged_with_the_button_label(rig: Rig) -> None:
    user = rig.updates.user(5004)
    calls = await rig.feed(rig.updates.message(user, "menu"))
    markup = calls[0].params["reply_markup"]
    origin = Message(
        message_id=calls[0].result.message_id,
        date=datetime.now(UTC),
        chat=Chat(id=5004, type="private"),
        text="pick",
        reply_markup=markup,
    )
    from aiogram.types import CallbackQuery

    press = Update(
        update_id=9_000_001,
        callback_query=CallbackQuery(
            id="cb1", from_user=user, chat_instance="ci", data="y", message=origin
        ),
    )
    calls = await rig.feed(press)
    # no flow takes "y": the stale-button answer stops the spinner
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert ("inbound", "[button] Yes please") in await rig.interactions(5004)


# -- de-duplication, order, shutdown -------------------------------------------------------


async def test_an_update_delivered_twice_is_handled_once(rig: Rig) -> None:
    update = rig.updates.message(rig.updates.user(5010), "/echo once", update_id=777)
    first = await rig.feed(update)
    second = await rig.feed(update)
    assert len(first) == 1 and second == []
    assert rig.probe.seen == ["/echo once"]
    assert rig.dp.runtime.gate.duplicates == 1
    assert [d for d, _ in await rig.interactions(5010)] == ["inbound", "outbound"]


async def test_updates_of_one_chat_are_handled_in_arrival_order_while_other_chats_proceed(
    rig: Rig,
) -> None:
    u1, u2 = rig.updates.user(5011), rig.updates.user(5012)
    # The first update of chat 5011 is the slowest: without the per-chat lock, the later
    # ones would overtake it.
    batch = [
        rig.updates.message(u1, "/nap 0.15 a1"),
        rig.updates.message(u1, "/nap 0.01 a2"),
        rig.updates.message(u2, "/nap 0.0 b1"),
        rig.updates.message(u1, "/nap 0.0 a3"),
    ]
    await asyncio.gather(*(rig.dp.feed_update(rig.bot, u) for u in batch))
    chat_a = [label for label in rig.probe.seen if label.startswith("a")]
    assert chat_a == ["a1", "a2", "a3"]
    if rig.db.kind == "postgres":  # chats run concurrently: b1 did not wait for a1
        assert rig.probe.seen.index("b1") < rig.probe.seen.index("a1")
    replies = [c.text for c in rig.api.sent_to(5011)]
    assert replies == ["nap a1", "nap a2", "nap a3"]
    assert rig.dp.runtime.isolation.active_keys == 0  # no lock leaks


async def test_shutdown_lets_the_update_in_progress_finish(rig: Rig) -> None:
    task = asyncio.create_task(rig.send(5013, "/slow job"))
    await asyncio.wait_for(rig.probe.started.wait(), 5)
    assert rig.dp.runtime.inflight.count == 1
    shutdown = asyncio.create_task(rig.dp.emit_shutdown(bot=rig.bot))
    await asyncio.sleep(0.05)
    assert not shutdown.done()  # waiting for the update
    rig.probe.release.set()
    await asyncio.wait_for(shutdown, 5)
    assert task.done()
    assert [c.text for c in task.result()] == ["done /slow job"]
    assert ("outbound", "done /slow job") in await rig.interactions(5013)


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "apology"),
    [
        ("en", "Sorry, something went wrong on our side"),
        ("zh", "抱歉，处理您的消息时我们这边出了点问题"),
    ],
)
async def test_a_failing_handler_gets_a_polite_answer_and_a_logged_trace(
    rig: Rig, caplog: pytest.LogCaptureFixture, lang: str, apology: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        calls = await rig.send(5020, "/boom", lang=lang)
    assert calls[0].text == "about to fail"
    assert calls[-1].text.startswith(apology)
    trace = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "RuntimeError" in trace and "update" in trace
    logged = await rig.interactions(5020)
    # the failed unit of work rolled back ("about to fail" included); the record is rebuilt
    assert logged[0] == ("inbound", "/boom")
    assert logged[1] == ("event", "error: the bot failed on this update (RuntimeError)")
    assert logged[2][0] == "outbound" and logged[2][1].startswith(apology)
    assert len(logged) == 3
    assert rig.dp.runtime.errors.errors == 1


def test_secrets_never_reach_the_log() -> None:
    token = "123456:AAFakeTokenForTheTest_abcdefghijklmnop"
    flt = SecretRedactingFilter([token, "webhook-secret-xyz"])
    record = logging.LogRecord(
        "aiogram", logging.ERROR, __file__, 1, "POST %s failed", (f"/bot{token}/x",), None
    )
    flt.filter(record)
    assert token not in record.getMessage() and "********" in record.getMessage()
    try:
        raise ValueError(f"url https://api.telegram.org/bot{token}/getMe secret webhook-secret-xyz")
    except ValueError:
        import sys

        record = logging.LogRecord("bot", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    flt.filter(record)
    assert record.exc_text and token not in record.exc_text
    assert "webhook-secret-xyz" not in record.exc_text


# -- Telegram errors -----------------------------------------------------------------------


async def test_429_is_waited_out_and_the_message_is_delivered(rig: Rig) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    rig.dp.runtime.retry.sleep = fake_sleep
    for _ in range(2):
        rig.api.fail_next(
            "sendMessage",
            lambda m: TelegramRetryAfter(m, "Too Many Requests: retry after 3", retry_after=3),
        )
    calls = await rig.send(5030, "/echo through")
    assert [c.text for c in calls] == ["echo /echo through"]
    assert waits == [3, 3]
    assert ("outbound", "echo /echo through") in await rig.interactions(5030)


async def test_429_retries_are_bounded(rig: Rig) -> None:
    async def fake_sleep(seconds: float) -> None:
        return None

    rig.dp.runtime.retry.sleep = fake_sleep
    for _ in range(3):  # max_attempts = 3: the reply is given up, the apology gets through
        rig.api.fail_next(
            "sendMessage", lambda m: TelegramRetryAfter(m, "Too Many Requests", retry_after=1)
        )
    calls = await rig.send(5031, "/echo never")
    assert len(calls) == 1 and calls[0].text.startswith("Sorry, something went wrong")
    assert rig.dp.runtime.retry.retries == 2


async def test_403_marks_the_customer_as_having_blocked_the_bot_without_crashing(
    rig: Rig,
) -> None:
    await rig.send(5040, "/echo hi")
    rig.api.fail_next(
        "sendMessage", lambda m: TelegramForbiddenError(m, "Forbidden: bot was blocked by the user")
    )
    calls = await rig.send(5040, "/echo are you there")
    assert calls == []  # nothing could be delivered, and no apology is attempted
    customer = await rig.customer(5040)
    assert customer is not None and "blocked_bot" in customer.tags
    logged = await rig.interactions(5040)
    assert ("inbound", "/echo are you there") in logged
    assert any(d == "event" and t.startswith("blocked_bot:") for d, t in logged)
    # the customer writes again: unblocked
    calls = await rig.send(5040, "/echo back")
    assert [c.text for c in calls] == ["echo /echo back"]
    customer = await rig.customer(5040)
    assert customer is not None and "blocked_bot" not in customer.tags


async def test_403_outside_an_update_is_recorded_too(rig: Rig) -> None:
    await rig.send(5041, "/echo hi")
    rig.dp.runtime.wire(rig.bot)
    rig.api.fail_next("sendMessage", lambda m: TelegramForbiddenError(m, "Forbidden: blocked"))
    with pytest.raises(TelegramForbiddenError):
        await rig.bot.send_message(5041, "promotion")
    customer = await rig.customer(5041)
    assert customer is not None and customer.tags == ["blocked_bot"]


async def test_a_text_longer_than_telegram_accepts_is_shortened_not_refused(rig: Rig) -> None:
    calls = await rig.send(5050, "/long")
    assert len(calls[0].text) == 4096 and calls[0].text.endswith("…")


# -- anti-flood ----------------------------------------------------------------------------


async def test_a_flooding_customer_gets_one_notice_and_the_excess_is_logged_not_handled(
    db: Database, clock: Any
) -> None:
    rig = make_rig(db, clock, throttle_messages=3, throttle_window_s=3600)
    replies: list[str] = []
    for i in range(6):
        replies += [c.text for c in await rig.send(5060, f"/echo {i}")]
    assert rig.probe.seen == ["/echo 0", "/echo 1", "/echo 2"]
    assert replies[:3] == ["echo /echo 0", "echo /echo 1", "echo /echo 2"]
    assert replies[3].startswith("You're sending messages faster")
    assert len(replies) == 4  # one notice per window
    inbound = [t for d, t in await rig.interactions(5060) if d == "inbound"]
    assert inbound == [f"/echo {i}" for i in range(6)]
    # another customer is not affected
    assert [c.text for c in await rig.send(5061, "/echo other")] == ["echo /echo other"]


# -- content the bot cannot read, groups, edits --------------------------------------------


async def test_stickers_and_voice_get_a_polite_text_and_photos_hint_in_the_customers_language(
    rig: Rig,
) -> None:
    user = rig.updates.user(5070, "zh")
    calls = await rig.feed(rig.updates.message(user, sticker=True))
    assert calls[0].text.startswith("抱歉，我目前只能读取文字和图片")
    voice = rig.updates.message(rig.updates.user(5071, "en"))
    assert voice.message is not None
    voice = Update(
        update_id=8_000_001,
        message=voice.message.model_copy(
            update={"voice": Voice(file_id="v", file_unique_id="v", duration=4)}
        ),
    )
    calls = await rig.feed(voice)
    assert calls[0].text.startswith("Sorry, I can only read text and photos")
    assert ("inbound", "[voice message, 4s]") in await rig.interactions(5071)
    assert ("inbound", "[sticker]") in await rig.interactions(5070)


async def test_the_saved_language_wins_over_telegrams_language_code(rig: Rig) -> None:
    await rig.send(5072, "/echo hi", lang="en")
    async with unit_of_work(rig.db.sessions) as session:
        customer = await session.scalar(select(Customer).where(Customer.telegram_user_id == 5072))
        assert customer is not None
        customer.language = "zh"  # what /language does
    calls = await rig.feed(rig.updates.message(rig.updates.user(5072, "en"), sticker=True))
    assert calls[0].text.startswith("抱歉")


async def test_a_huge_text_is_handled_and_stored_truncated(rig: Rig) -> None:
    huge = "/echo " + "显卡风扇不转 " * 1500  # ~10,500 characters
    calls = await rig.send(5073, huge)
    assert len(calls) == 1 and len(calls[0].text) <= 4096
    logged = await rig.interactions(5073)
    assert logged[0][0] == "inbound" and len(logged[0][1]) == 8000
    assert "truncated" in logged[0][1]


async def test_messages_in_a_group_are_not_handled_and_get_at_most_one_hint(rig: Rig) -> None:
    group = Chat(id=-4001, type="group", title="Gamers")
    member = rig.updates.user(5080)
    assert await rig.feed(rig.updates.message(member, "anyone know a good GPU?", chat=group)) == []
    calls = await rig.feed(rig.updates.message(member, "/start", chat=group))
    assert len(calls) == 1 and calls[0].chat_id == -4001
    assert "@northbridge_bot" in calls[0].text and "private" in calls[0].text
    assert await rig.feed(rig.updates.message(member, "/echo x", chat=group)) == []
    assert rig.probe.seen == []  # no handler ran
    assert await rig.customer(5080) is None  # nothing about group members in the CRM


async def test_being_added_to_a_group_posts_one_hint(rig: Rig) -> None:
    from aiogram.types import ChatMemberLeft, ChatMemberMember, ChatMemberUpdated

    from bot.fake_telegram import BOT_USER

    added = Update(
        update_id=8_100_001,
        my_chat_member=ChatMemberUpdated(
            chat=Chat(id=-4002, type="supergroup", title="Shop fans"),
            from_user=rig.updates.user(5081),
            date=datetime.now(UTC),
            old_chat_member=ChatMemberLeft(user=BOT_USER),
            new_chat_member=ChatMemberMember(user=BOT_USER),
        ),
    )
    calls = await rig.feed(added)
    assert len(calls) == 1 and calls[0].chat_id == -4002


async def test_the_staff_group_is_not_treated_as_a_customer_group(rig: Rig) -> None:
    staff = Chat(id=STAFF_CHAT, type="supergroup", title="Support", is_forum=True)
    calls = await rig.feed(rig.updates.message(rig.updates.user(9001), "/echo hi", chat=staff))
    assert [c.text for c in calls] == ["echo /echo hi"]
    assert await rig.customer(9001) is None


async def test_an_edited_message_is_logged_and_not_answered(rig: Rig) -> None:
    user = rig.updates.user(5090)
    original = rig.updates.message(user, "/echo my order SO-10000001")
    await rig.feed(original)
    assert original.message is not None
    edited = Update(
        update_id=8_200_001,
        edited_message=original.message.model_copy(
            update={"text": "/echo my order SO-10000002", "edit_date": 1}
        ),
    )
    assert await rig.feed(edited) == []
    logged = await rig.interactions(5090)
    assert logged[-1][0] == "event"
    assert logged[-1][1].endswith("/echo my order SO-10000002")
    assert logged[-1][1].startswith("[edited message #")


# -- the safety layer with the product's flows in front of it ------------------------------


async def test_with_the_flows_in_front_stickers_and_voice_still_get_the_hint(
    product_rig: Rig,
) -> None:
    for lang, start in (("en", "Sorry, I can only read text and photos"), ("zh", "抱歉")):
        user = product_rig.updates.user(5100 if lang == "en" else 5101, lang)
        calls = await product_rig.feed(product_rig.updates.message(user, sticker=True))
        assert [c.text for c in calls][-1].startswith(start)
    assert product_rig.dp.runtime.errors.errors == 0


async def test_a_photo_goes_to_the_flow_that_expects_it_and_a_sticker_keeps_the_flow_state(
    product_rig: Rig,
) -> None:
    from aiogram.fsm.storage.base import StorageKey

    from bot.flows.states import FaultStates

    rig = product_rig
    translator = rig.deps.translator
    hints = {translator.t(k, "en") for k in ("common.unsupported_content", "common.error")}
    await rig.send(5102, "/echo hello")  # the customer exists
    key = StorageKey(bot_id=rig.bot.id, chat_id=5102, user_id=5102)
    await rig.dp.storage.set_state(key, FaultStates.symptom)
    user = rig.updates.user(5102)
    calls = await rig.feed(rig.updates.message(user, photo_file_id="broken-fan", caption=""))
    assert calls and not hints & {c.text for c in calls}  # the fault flow took the photo
    state = await rig.dp.storage.get_state(key)
    calls = await rig.feed(rig.updates.message(user, sticker=True))
    assert [c.text for c in calls] == [translator.t("common.unsupported_content", "en")]
    assert await rig.dp.storage.get_state(key) == state  # still in the flow
    assert rig.dp.runtime.errors.errors == 0


async def test_a_10000_character_message_goes_through_the_flows_without_crashing(
    product_rig: Rig,
) -> None:
    huge = ("My graphics card fan stopped spinning and the screen flickers. " * 160)[:10_000]
    calls = await product_rig.send(5103, huge)
    assert calls and all(len(c.text) <= 4096 for c in calls)
    assert product_rig.dp.runtime.errors.errors == 0
    logged = await product_rig.interactions(5103)
    assert logged[0][0] == "inbound" and "truncated: 10000 characters" in logged[0][1]


async def test_with_the_flows_a_group_start_gets_only_the_private_chat_hint(
    product_rig: Rig,
) -> None:
    group = Chat(id=-4003, type="supergroup", title="Builders")
    user = product_rig.updates.user(5104)
    calls = await product_rig.feed(product_rig.updates.message(user, "/start", chat=group))
    assert len(calls) == 1 and calls[0].chat_id == -4003 and "@northbridge_bot" in calls[0].text
    calls = await product_rig.feed(
        product_rig.updates.message(user, "my order SO-10000001", chat=group)
    )
    assert calls == []
    assert await product_rig.customer(5104) is None

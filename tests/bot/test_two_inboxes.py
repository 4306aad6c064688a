"""One workflow behind two inboxes: the same handoff worked through the Telegram staff group
and through the web console (the agent desk with the console's notifier), on the real
dispatcher and the real console app, Telegram in-process. A claim in one shows in the other;
two agents never both own a chat; console messages reach the customer through the bot.

Demo identities as in test_handoff.py: customers 1001 张伟 (zh), 1002 James Carter (en);
agents 王芳 (Telegram 9001, staff #2, login wang.fang), 刘洋 (9002, #3, liu.yang),
Emily Turner (9003, #4, emily.turner).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select

from app.console import build_console_app
from app.container import Container
from crm_core.conversations.models import Interaction
from crm_core.db import unit_of_work
from crm_core.staff.service import StaffService
from tests.bot.test_handoff import (
    EMILY,
    EN,
    LIU,
    STAFF_CHAT,
    ZH,
    Desk,
    T,
    make_desk,
    queue,
    texts,
    to,
)

PASSWORD = "two inboxes, one desk"


@dataclass
class TwoInboxes:
    desk: Desk
    app: FastAPI

    def browser(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("10.1.1.1", 999))
        return httpx.AsyncClient(transport=transport, base_url="http://console")

    def calls_since(self, mark: int) -> list[Any]:
        return [c for c in self.desk.api.calls[mark:] if c.method != "getMe"]


@pytest.fixture
async def both(demo_sessions: Any, demo_clock: Any) -> TwoInboxes:
    desk = make_desk(demo_sessions, demo_clock)
    async with unit_of_work(demo_sessions) as session:
        staff = StaffService(
            session, demo_clock, hasher=PasswordHasher(time_cost=1, memory_cost=1024)
        )
        for staff_id in (2, 3, 4):
            await staff.set_password(staff_id, PASSWORD)
    container = Container(
        settings=desk.deps.settings,
        engine=demo_sessions.kw["bind"],
        sessions=demo_sessions,
        clock=demo_clock,
    )
    app = build_console_app(container, bot=desk.bot, deliver_webhooks=False)
    return TwoInboxes(desk, app)


async def sign_in(client: httpx.AsyncClient, login: str) -> None:
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    done = await client.post(
        "/login", data={"login": login, "password": PASSWORD, "csrf": token.group(1)}
    )
    assert done.status_code == 303, done.text


async def act(client: httpx.AsyncClient, conversation: int, action: str, **form: str) -> str:
    """Run an inbox action as a browser would; returns the flash message shown after it."""
    page = await client.get(f"/inbox/{conversation}")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf
    done = await client.post(
        f"/inbox/{conversation}/{action}", data={"csrf": csrf.group(1), **form}
    )
    assert done.status_code == 303, done.text
    shown = await client.get(done.headers["location"])
    flash = re.search(r'<div class="flash[^"]*" role="status">(.*?)</div>', shown.text, re.S)
    assert flash
    import html

    return html.unescape(flash.group(1))


async def test_a_console_claim_shows_in_the_topic_and_the_telegram_agent_loses(
    both: TwoInboxes,
) -> None:
    desk = both.desk
    topic, _ = await queue(desk, ZH, "zh")
    conversation = (await desk.conversation(ZH)).id
    async with both.browser() as wang:
        await sign_in(wang, "wang.fang")
        inbox = await wang.get("/inbox")
        assert f'data-conversation="{conversation}"' in inbox.text and "张伟" in inbox.text

        mark = len(desk.api.calls)
        flash = await act(wang, conversation, "claim")
        calls = both.calls_since(mark)
        assert flash == "完成。"  # wang.fang's console speaks Chinese (her first language)
        # The customer hears it through the bot; the staff topic shows who has it.
        assert texts(to(calls, ZH)) == T.t("handoff.customer_claimed", "zh", agent="王芳")
        topic_posts = [
            c for c in to(calls, STAFF_CHAT) if c.params.get("message_thread_id") == topic
        ]
        assert T.t("handoff.topic_claimed", "en", agent="王芳") in texts(topic_posts)

        # The Telegram agent's /claim loses and names the console agent.
        calls = await desk.in_topic(LIU, "/claim", topic)
        assert texts(calls) == T.t("handoff.topic_already_claimed", "en", agent="王芳")
        calls = await desk.in_topic(LIU, "我来处理", topic)
        assert to(calls, ZH) == []
        conv = await desk.conversation(ZH)
        assert (conv.owner, conv.agent_staff_id) == ("agent", 2)

        # The console agent's reply reaches the customer through the bot and the topic.
        desk.clock.advance(timedelta(minutes=10))
        mark = len(desk.api.calls)
        await act(wang, conversation, "reply", text="您好，请发一张显卡风扇的照片。")
        calls = both.calls_since(mark)
        assert texts(to(calls, ZH)) == "您好，请发一张显卡风扇的照片。"
        assert "您好，请发一张显卡风扇的照片。" in texts(to(calls, STAFF_CHAT))
        log = await desk.interactions(ZH)
        mine = [i for i in log if i.direction == "outbound" and i.agent_staff_id == 2]
        assert [i.text for i in mine] == ["您好，请发一张显卡风扇的照片。"]
        # ... and counts as activity (the inactivity sweeper will not take it back early).
        assert (await desk.conversation(ZH)).last_activity_at == desk.clock.now()

        # The customer's answer goes to the topic as before (the bot stays silent).
        calls = await desk.customer_says(ZH, "好的", "zh")
        assert [c.method for c in calls] == ["copyMessage"] and calls[0].chat_id == STAFF_CHAT

        # Closing in the console: thanked, rating asked, topic told; the conversation is over.
        mark = len(desk.api.calls)
        await act(wang, conversation, "close")
        calls = both.calls_since(mark)
        customer_texts = texts(to(calls, ZH))
        assert T.t("handoff.customer_closed", "zh") in customer_texts
        assert T.t("handoff.topic_closed", "en", agent="王芳") in texts(to(calls, STAFF_CHAT))
        conv = await desk.conversation(ZH)
        assert conv.owner == "bot" and conv.closed_at is not None


async def test_a_telegram_claim_shows_in_the_console_and_the_console_agent_loses(
    both: TwoInboxes,
) -> None:
    desk = both.desk
    topic, _ = await queue(desk, EN, "en")
    conversation = (await desk.conversation(EN)).id
    await desk.in_topic(EMILY, "/claim", topic)
    async with both.browser() as wang:
        await sign_in(wang, "wang.fang")
        inbox = await wang.get("/inbox")
        assert "由 Emily Turner 处理" in inbox.text
        mark = len(desk.api.calls)
        flash = await act(wang, conversation, "claim")
        assert flash == T.t("handoff.topic_already_claimed", "zh", agent="Emily Turner")
        flash = await act(wang, conversation, "reply", text="Can I help?")
        assert "Emily Turner" in flash
        assert to(both.calls_since(mark), EN) == []  # nothing reached the customer
    conv = await desk.conversation(EN)
    assert (conv.owner, conv.agent_staff_id) == ("agent", 4)
    # The owner transfers it in Telegram; the console agent now owns it and can answer.
    await desk.in_topic(EMILY, "/transfer wang.fang", topic)
    async with both.browser() as wang:
        await sign_in(wang, "wang.fang")
        mark = len(desk.api.calls)
        assert (await act(wang, conversation, "canned", name="hello")).startswith("💬")
        assert (
            texts(to(both.calls_since(mark), EN)) == desk.deps.settings.handoff.canned["hello"].en
        )
        note = await act(wang, conversation, "note", text="prefers e-mail")
        assert note == T.t("handoff.topic_note_saved", "zh")
    async with unit_of_work(desk.deps.sessions) as session:
        notes = list(
            await session.scalars(
                select(Interaction.text).where(
                    Interaction.conversation_id == conversation,
                    Interaction.text.like("note: %"),
                )
            )
        )
    assert notes == ["note: prefers e-mail"]


async def test_the_console_sends_through_the_bots_sender_and_rate_limit() -> None:
    """The console's Bot carries the bot runtime's request middlewares: outbound logging,
    403 handling, 429 retry and the shared outbound rate limit (one Redis bucket with the
    bot's processes in production)."""
    from app.settings import load_settings
    from bot.desk import console_bot
    from bot.fake_telegram import InProcessBotAPI
    from bot.i18n import Translator
    from crm_core.clock import SystemClock
    from crm_core.db import create_engine, create_session_factory

    engine = create_engine("sqlite+aiosqlite://")
    try:
        bot = console_bot(
            load_settings(),
            Translator(),
            create_session_factory(engine),
            SystemClock(),
            session=InProcessBotAPI(),
        )
        kinds = {type(m).__name__ for m in bot.session._hwcrm_request_middlewares}  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    assert {
        "OutboundLoggingMiddleware",
        "ForbiddenMiddleware",
        "RetryAfterMiddleware",
        "RateLimitMiddleware",
    } <= kinds

"""`hwcrm chat`: the real dispatcher, handlers and demo CRM, driven by scripted terminal input.

The chat is fed lines as a person would type them (text, button numbers, /contact, :agent,
:quit) and its Rich output is captured. NLU and the knowledge base are doubles (fast); the
CRM is the demo-seeded database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import load_settings
from bot.deps import BotDeps
from bot.i18n import Translator
from bot.terminal import VIRTUAL_STAFF_CHAT, TerminalChat
from crm_core.conversations.models import Interaction
from crm_core.db import unit_of_work
from knowledge_base.answer import Answer
from nlu.service import FakeIntentParser


class NoAnswerKb:
    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        return Answer(None, None, None, None, None, 0.0, False)


def make_chat(
    sessions: async_sessionmaker[AsyncSession], clock: Any, **kwargs: Any
) -> tuple[TerminalChat, io.StringIO]:
    settings = load_settings()
    settings.bot.staff_chat_id = 0  # like the embedded default: the chat simulates one
    settings.bot.fsm_storage = "memory"
    deps = BotDeps(
        settings=settings,
        sessions=sessions,
        clock=clock,
        translator=Translator(),
        nlu=FakeIntentParser({r"human|person|人工": "request_human"}),
        kb=NoAnswerKb(),
    )
    out = io.StringIO()
    console = Console(file=out, width=110, force_terminal=False, color_system=None)
    return TerminalChat(deps, console=console, **kwargs), out


def button_number(chat: TerminalChat, predicate: Any, *, agent: bool = False) -> str:
    side = chat.agent if agent else chat.customer
    assert side is not None
    for number, item in enumerate(side.buttons, start=1):
        if predicate(item):
            return str(number)
    raise AssertionError(f"no such button in {[b.label for b in side.buttons]}")


async def test_a_scripted_chat_as_demo_customer_1001_runs_the_real_flows(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: Any
) -> None:
    chat, out = make_chat(demo_sessions, demo_clock)
    await chat.run_script(["/start", ":help", "9", ":quit", "never read"])
    text = out.getvalue()
    assert "You are 张伟 (Telegram 1001, zh)" in text
    assert "张伟> /start" in text
    assert "[1]" in text  # the main menu's buttons, numbered
    assert "/contact [PHONE]" in text  # :help
    assert "no button 9" in text
    assert "never read" not in text  # :quit ended the chat
    async with unit_of_work(demo_sessions) as session:
        logged = (
            await session.scalars(select(Interaction.text).where(Interaction.text == "/start"))
        ).all()
    assert logged == ["/start"]  # through the real middlewares into the CRM


async def test_pressing_a_button_by_number_sends_its_callback(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: Any
) -> None:
    chat, out = make_chat(demo_sessions, demo_clock)
    await chat.start()
    await chat.handle_line("/start")
    fault = button_number(chat, lambda b: b.data.endswith(":fault"))
    await chat.handle_line(fault)
    text = out.getvalue()
    assert "RTX 4070" in text  # 张伟's GPU from the CRM, offered as a device button
    assert any("RTX 4070" in b.label for b in chat.customer.buttons)  # type: ignore[union-attr]
    await chat.close()


async def test_contact_shares_the_customers_own_phone(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: Any
) -> None:
    chat, out = make_chat(demo_sessions, demo_clock, customer_id=777_001, lang="en")
    await chat.run_script(["/contact", "/contact +8613900001111", ":quit"])
    text = out.getvalue()
    assert "no phone on record" in text  # an unknown person has none: they must type one
    contact_updates = [c for c in chat.api.calls if c.chat_id == 777_001]
    assert contact_updates  # the bot answered the shared contact
    async with unit_of_work(demo_sessions) as session:
        inbound = (
            await session.scalars(
                select(Interaction.text).where(Interaction.direction == "inbound")
            )
        ).all()
    assert "[shared a contact]" in inbound


async def test_as_agent_the_staff_topic_is_visible_and_the_agent_talks_to_the_customer(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: Any
) -> None:
    chat, out = make_chat(demo_sessions, demo_clock, customer_id=1002, agent_id=9003)
    await chat.run_script(
        [
            "I want to talk to a person",
            ":agent",
            "/claim",
            "Hello James, Emily here.",
            ":customer",
            "My headset has no sound on the left",
            ":quit",
        ]
    )
    text = out.getvalue()
    assert chat.staff_chat_id == VIRTUAL_STAFF_CHAT
    assert chat.topics  # the bot opened a topic for James in the staff group
    assert "staff group · topic #" in text
    assert "James Carter" in text  # the customer card
    to_customer = chat.api.texts_to(1002)
    copies = [
        c for c in chat.api.sent_to(1002) if c.method == "copyMessage"
    ]  # the agent's message, copied to the customer
    assert copies and "Hello James, Emily here." in text
    to_staff = [c for c in chat.api.sent_to(VIRTUAL_STAFF_CHAT) if c.method == "copyMessage"]
    assert to_staff  # the customer's message, copied into the topic
    assert "My headset has no sound on the left" in text
    assert to_customer


async def test_agent_mode_needs_an_agent_and_a_topic(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: Any
) -> None:
    chat, out = make_chat(demo_sessions, demo_clock)
    await chat.run_script([":agent", ":nonsense", ":quit"])
    text = out.getvalue()
    assert "start with --as-agent" in text
    assert "unknown command :nonsense" in text
    chat, out = make_chat(demo_sessions, demo_clock, agent_id=9003)
    await chat.run_script([":agent", "hello?", ":topic", ":quit"])
    text = out.getvalue()
    assert "no staff topic yet" in text
    assert "topics: none yet" in text


async def test_end_of_input_ends_the_chat(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: Any
) -> None:
    chat, out = make_chat(demo_sessions, demo_clock, customer_id=1003)
    await chat.run_script(["/start"])
    assert "陈静" in out.getvalue()
    assert chat.dp.runtime.inflight.count == 0


# -- hwcrm start ------------------------------------------------------------------------------


def _fake_prepare(monkeypatch: Any) -> list[str]:
    from app import cli_bot

    calls: list[str] = []

    async def prepare(container: Any, *, quiet: bool = False) -> Any:
        calls.append("prepare")
        return cli_bot.Prepared(
            database="sqlite+aiosqlite:///var/hwcrm.sqlite3",
            seeded=True,
            customers=2000,
            orders=5000,
            kb_built=True,
            kb_articles=168,
            kb_chunks=925,
            nlu_trained=False,
            nlu_intents=15,
        )

    async def chat(*args: Any, **kwargs: Any) -> None:
        calls.append("chat")

    async def run_bot(*args: Any, **kwargs: Any) -> None:
        calls.append("bot")

    monkeypatch.setattr(cli_bot, "prepare", prepare)
    monkeypatch.setattr(cli_bot, "_chat", chat)
    monkeypatch.setattr(cli_bot, "_run_bot", run_bot)
    monkeypatch.setattr(cli_bot, "start_console_thread", lambda settings: calls.append("console"))
    return calls


def test_start_without_a_terminal_prints_the_summary_and_exits_0(
    monkeypatch: Any, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from app.cli import _register_subcommands, cli

    monkeypatch.delenv("HWCRM_BOT__TOKEN", raising=False)
    monkeypatch.setenv("HWCRM_DB__URL", f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    calls = _fake_prepare(monkeypatch)
    _register_subcommands()
    result = CliRunner().invoke(cli, ["start"], input="")  # stdin is not a TTY
    assert result.exit_code == 0, result.output
    assert calls == ["prepare"]  # no chat: CI must not hang
    assert "hwcrm is ready" in result.output
    assert "2,000 customers" in result.output and "hwcrm chat --as 1002" in result.output
    assert "http://127.0.0.1:8080/login" in result.output
    result = CliRunner().invoke(cli, ["start", "--chat"], input="")
    assert result.exit_code == 0 and calls[-2:] == ["console", "chat"]


def test_start_with_a_token_runs_the_telegram_bot(monkeypatch: Any, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from app.cli import _register_subcommands, cli

    monkeypatch.setenv("HWCRM_BOT__TOKEN", "4242:start-test")
    monkeypatch.setenv("HWCRM_DB__URL", f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    calls = _fake_prepare(monkeypatch)
    _register_subcommands()
    result = CliRunner().invoke(cli, ["start"], input="")
    assert result.exit_code == 0, result.output
    assert calls == ["prepare", "console", "bot"]
    assert "4242:start-test" not in result.output


class MarkdownKb:
    """A confident answer whose solution is Markdown with a list, a table and a link."""

    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        return Answer(
            passage="the symptom paragraph",
            article_id="fans.en",
            title="Loud fans & <noise>",
            url="https://kb.example/fans",
            language="en",
            confidence=0.9,
            confident=True,
            solution_markdown=(
                "## Tune the fan curve\n\n1. Open **Q-Fan** in the BIOS.\n2. Set `CPU_FAN` "
                "to *Silent*.\n\n| Fan | Duty |\n|---|---|\n| CPU | 40 % |\n\n"
                "See [the manual](https://kb.example/manual)."
            ),
            solution_headings=["Tune the fan curve"],
        )


async def test_the_chat_shows_the_rendered_message_as_the_customer_would_see_it(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: Any
) -> None:
    chat, out = make_chat(demo_sessions, demo_clock, customer_id=777_002, lang="en")
    chat.deps.kb = MarkdownKb()
    await chat.run_script(["my fans are so loud", ":quit"])
    text = out.getvalue()
    assert "Loud fans & <noise>" in text  # escaped for Telegram, shown as typed
    assert "Tune the fan curve" in text and "1. Open Q-Fan in the BIOS." in text
    assert "2. Set CPU_FAN to Silent." in text
    assert "Fan  Duty" in text and "CPU  40 %" in text  # the table as an aligned block
    assert "the manual (https://kb.example/manual)" in text  # a link shows where it goes
    assert "(https://kb.example/fans)" in text
    for raw in ("<b>", "</a>", "**", "`", "| Fan", "&amp;", "&lt;"):
        assert raw not in text

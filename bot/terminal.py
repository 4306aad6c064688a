"""`hwcrm chat`: the real bot in a terminal, offline.

The same dispatcher, middlewares, handlers and CRM as in production (`build_dispatcher`);
only Telegram is simulated (`InProcessBotAPI`). You type as a customer (a demo identity, by
default 1001); with an agent id you also see the staff supergroup (the topics the bot opens
and posts to on a handoff) and can type into a topic as that agent.

Input:
- text                     a message (as the current role: customer, or agent in the topic)
- a number                 press that button of the bot's last keyboard (for your role)
- /contact                 share your own contact (the phone on record; or `/contact +86…`)
- :agent / :customer       type as the agent (needs --as-agent) / as the customer
- :topic N                 (agent) write into staff topic N
- :help                    this list
- :quit                    leave (also Ctrl-D)
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.types import (
    CallbackQuery,
    Chat,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    User,
)
from rich.console import Console
from rich.panel import Panel
from rich.text import Text
from sqlalchemy import select

from bot.deps import BotDeps
from bot.fake_telegram import BOT_USER, InProcessBotAPI, SentCall, UpdateFactory
from bot.runtime import BotDispatcher, build_bot, build_dispatcher
from crm_core.db import unit_of_work

VIRTUAL_STAFF_CHAT = -100_424_242  # the simulated staff supergroup when none is configured
HELP = """\
Type a message and press Enter. A number presses that button of the last keyboard.
  /contact [PHONE]    share your own contact (the phone on record by default)
  :agent / :customer  type as the agent in a staff topic / as the customer
  :topic N            (agent) write into staff topic N
  :help               this help      :quit  leave (or Ctrl-D)"""

ReadLine = Callable[[str], str | None]
_ENTITY_STYLES = {
    "bold": "bold",
    "italic": "italic",
    "underline": "underline",
    "strikethrough": "strike",
    "code": "cyan",
    "pre": "cyan",
    "text_link": "underline blue",
    "blockquote": "italic",
    "spoiler": "reverse",
}


@dataclass
class Button:
    """A button the person at the terminal can press by number."""

    label: str
    data: str = ""
    kind: str = "callback"  # callback | text | contact | url
    message: Message | None = None


@dataclass
class Side:
    """One person at the terminal: their Telegram user, chat, and the buttons they see."""

    user: User
    chat: Chat
    inline: list[Button] = field(default_factory=list)
    reply: list[Button] = field(default_factory=list)

    @property
    def buttons(self) -> list[Button]:
        return self.inline + self.reply


class TerminalChat:
    """Drives the real dispatcher from lines of text and renders what the bot sends."""

    def __init__(
        self,
        deps: BotDeps,
        *,
        customer_id: int = 1001,
        lang: str | None = None,
        agent_id: int | None = None,
        console: Console | None = None,
    ) -> None:
        settings = deps.settings
        if agent_id is not None and not settings.bot.staff_chat_id:
            settings = settings.model_copy(deep=True)
            settings.bot.staff_chat_id = VIRTUAL_STAFF_CHAT
            deps = dataclasses.replace(deps, settings=settings)
        self.deps = deps
        self.console = console or Console()
        self.api = InProcessBotAPI()
        self.bot: Bot = build_bot(settings, session=self.api)
        self.dp: BotDispatcher = build_dispatcher(deps)
        self.updates = UpdateFactory()
        self.customer_id = customer_id
        self.lang = lang
        self.agent_id = agent_id
        self.staff_chat_id = settings.bot.staff_chat_id
        self.customer: Side | None = None
        self.agent: Side | None = None
        self.role = "customer"
        self.topic: int | None = None
        self.topics: dict[int, str] = {}
        self._shown = 0
        self._sent_texts: dict[tuple[int, int], str] = {}  # what we typed, for copies
        self._phone: str | None = None

    # -- setup -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Look the identities up in the CRM, run the dispatcher's startup, print the banner."""
        name, language, phone = await self._customer_record(self.customer_id)
        self._phone = phone
        lang = self.lang or language or "en"
        user = self.updates.user(self.customer_id, language_code=lang, name=name or "Customer")
        self.customer = Side(user, Chat(id=user.id, type="private", first_name=user.first_name))
        if self.agent_id is not None:
            agent_name = await self._staff_name(self.agent_id)
            agent = self.updates.user(self.agent_id, language_code=lang, name=agent_name)
            chat = Chat(id=self.staff_chat_id, type="supergroup", title="Staff", is_forum=True)
            self.agent = Side(agent, chat)
        self.dp.runtime.wire(self.bot)
        await self.dp.emit_startup(bot=self.bot, dispatcher=self.dp)
        self._shown = len(self.api.calls)  # startup calls (setMyCommands ...) are not shown
        who = f"{name or 'unknown person'} (Telegram {self.customer_id}, {lang})"
        lines = [f"You are [bold]{who}[/bold], chatting with the real bot offline."]
        if self.agent is not None:
            lines.append(
                f"Agent view: [bold]{self.agent.user.first_name}[/bold] "
                f"(Telegram {self.agent_id}) in the staff group; `:agent` to type as the agent."
            )
        lines.append("Type :help for commands, :quit to leave.")
        self.console.print(Panel("\n".join(lines), title="hwcrm chat", border_style="cyan"))

    async def close(self) -> None:
        await self.dp.emit_shutdown(bot=self.bot, dispatcher=self.dp)

    async def _customer_record(self, telegram_id: int) -> tuple[str | None, str | None, str | None]:
        from crm_core.customers.models import Customer

        async with unit_of_work(self.deps.sessions) as session:
            row = await session.scalar(
                select(Customer).where(Customer.telegram_user_id == telegram_id)
            )
            if row is None:
                return None, None, None
            return row.name, row.language, row.phone

    async def _staff_name(self, telegram_id: int) -> str:
        from crm_core.staff.models import StaffUser

        async with unit_of_work(self.deps.sessions) as session:
            row = await session.scalar(
                select(StaffUser).where(StaffUser.telegram_user_id == telegram_id)
            )
            if row is None:
                self.console.print(
                    f"[yellow]note:[/yellow] Telegram id {telegram_id} is not in the staff table; "
                    "the bot will ignore it in the staff group (see `hwcrm staff add`)."
                )
                return "Agent"
            return str(row.name)

    # -- the loop --------------------------------------------------------------------------

    async def run(self, read_line: ReadLine) -> None:
        """Read lines until :quit or end of input; `read_line(prompt)` returns None at EOF."""
        await self.start()
        try:
            while True:
                line = await asyncio.to_thread(read_line, self._prompt())
                if line is None or not await self.handle_line(line):
                    break
        finally:
            await self.close()

    async def run_script(self, lines: Iterable[str]) -> None:
        """Drive the chat from scripted input (tests, demos)."""
        iterator = iter(lines)

        def read(prompt: str) -> str | None:
            line = next(iterator, None)
            if line is not None:
                self.console.print(f"{prompt}{line}", highlight=False)
            return line

        await self.run(read)

    def _prompt(self) -> str:
        if self.role == "agent" and self.agent is not None:
            topic = f"topic {self.topic}" if self.topic else "no topic yet"
            return f"agent {self.agent.user.first_name} [{topic}]> "
        assert self.customer is not None
        return f"{self.customer.user.first_name}> "

    async def handle_line(self, raw: str) -> bool:
        """One line of input; False when the chat should end."""
        line = raw.strip()
        if not line:
            return True
        if line in (":quit", ":q", ":exit"):
            return False
        if line == ":help":
            self.console.print(HELP, highlight=False)
            return True
        if line == ":agent":
            if self.agent is None:
                self.console.print("[yellow]start with --as-agent STAFF_TELEGRAM_ID[/yellow]")
            else:
                self.role = "agent"
            return True
        if line == ":customer":
            self.role = "customer"
            return True
        if line.startswith(":topic"):
            value = line.removeprefix(":topic").strip()
            if value.isdigit():
                self.topic = int(value)
            else:
                known = ", ".join(f"{k} ({v})" for k, v in self.topics.items()) or "none yet"
                self.console.print(f"topics: {known}")
            return True
        if line.startswith(":"):
            self.console.print(f"[yellow]unknown command {line}; :help lists them[/yellow]")
            return True
        side = self._side()
        if line.isdigit() and side.buttons:
            await self._press(side, int(line))
            return True
        if self.role == "customer" and line.split()[0] == "/contact":
            await self._share_contact(line.removeprefix("/contact").strip() or None)
            return True
        await self._send_text(side, line)
        return True

    def _side(self) -> Side:
        side = self.agent if self.role == "agent" and self.agent is not None else self.customer
        assert side is not None
        return side

    # -- input → updates -------------------------------------------------------------------

    async def _send_text(self, side: Side, text: str) -> None:
        thread = self.topic if side is self.agent else None
        if side is self.agent and thread is None:
            self.console.print(
                "[yellow]no staff topic yet: ask for a human as the customer[/yellow]"
            )
            return
        update = self.updates.message(side.user, text, chat=side.chat, thread_id=thread)
        assert update.message is not None
        self._sent_texts[(side.chat.id, update.message.message_id)] = text
        await self._feed(update)

    async def _share_contact(self, phone: str | None) -> None:
        assert self.customer is not None
        phone = phone or self._phone
        if not phone:
            self.console.print(
                "[yellow]no phone on record for this person: type /contact +8613800000000[/yellow]"
            )
            return
        await self._feed(self.updates.contact(self.customer.user, phone, self.customer.user.id))

    async def _press(self, side: Side, number: int) -> None:
        buttons = side.buttons
        if not 1 <= number <= len(buttons):
            self.console.print(f"[yellow]no button {number} (1-{len(buttons)})[/yellow]")
            return
        chosen = buttons[number - 1]
        self.console.print(f"[dim]» {chosen.label}[/dim]")
        if chosen.kind == "contact":
            await self._share_contact(None)
        elif chosen.kind == "text":
            await self._send_text(side, chosen.label)
        elif chosen.kind == "url":
            self.console.print(f"[dim](opens {chosen.data})[/dim]")
        else:
            origin = chosen.message
            query = CallbackQuery(
                id=f"cq{len(self.api.calls)}",
                from_user=side.user,
                chat_instance="terminal",
                data=chosen.data,
                message=origin,
            )
            update_id = next(self.updates._update_ids)
            await self._feed(Update(update_id=update_id, callback_query=query))

    async def _feed(self, update: Update) -> None:
        await self.dp.feed_update(self.bot, update)
        self.render_new()

    # -- rendering -------------------------------------------------------------------------

    def render_new(self) -> None:
        """Print the Bot API calls made since the last time."""
        calls = self.api.calls[self._shown :]
        self._shown = len(self.api.calls)
        for call in calls:
            self._render(call)

    def _render(self, call: SentCall) -> None:
        chat_id = call.chat_id
        to_customer = self.customer is not None and chat_id == self.customer.chat.id
        to_staff = bool(self.staff_chat_id) and chat_id == self.staff_chat_id
        if call.method == "createForumTopic":
            topic_id = int(call.result.message_thread_id)
            self.topics[topic_id] = str(call.params.get("name", ""))
            self.topic = self.topic or topic_id
            if self.agent is not None:
                name = call.params.get("name")
                self.console.print(
                    f"[magenta]staff group: topic #{topic_id} opened: {name}[/magenta]"
                )
            return
        if call.method == "answerCallbackQuery":
            if call.params.get("text"):
                self.console.print(f"[dim]({call.params['text']})[/dim]")
            return
        if call.method in ("sendChatAction", "setMyCommands", "getMe", "deleteMessage"):
            return
        if call.method == "pinChatMessage":
            if to_staff and self.agent is not None:
                self.console.print("[magenta dim](pinned in the topic)[/magenta dim]")
            return
        if not (to_customer or to_staff):
            return
        if to_staff and self.agent is None:
            self.console.print("[dim](the bot posted to the staff group)[/dim]")
            return
        body = self._body(call)
        thread = call.params.get("message_thread_id")
        if to_customer:
            title = f"{BOT_USER.first_name}" + (
                " (edited)" if call.method.startswith("edit") else ""
            )
            side = self.customer
            style = "green"
        else:
            title = f"staff group · topic #{thread}" if thread else "staff group"
            if thread:
                self.topic = self.topic or int(thread)
            side = self.agent
            style = "magenta"
        assert side is not None
        buttons = self._buttons(call, side)
        content = self._styled(call, body or "")
        if buttons:
            content.append("\n")
            for number, item in enumerate(buttons, start=1):
                marker = "📱 " if item.kind == "contact" else ""
                content.append(f"\n  [{number}] {marker}{item.label}", style="bold")
        self.console.print(Panel(content, title=title, title_align="left", border_style=style))

    def _body(self, call: SentCall) -> str:
        """The text as the person sees it (HTML already parsed by the fake Bot API)."""
        return self._raw_body(call)

    @staticmethod
    def _styled(call: SentCall, body: str) -> Text:
        """`body` with Telegram's formatting as terminal styles (bold, italic, code, links
        with their URL after them), when it is the message's own text."""
        content = Text(body)
        if body != call.text or not call.entities:
            return content
        units = body.encode("utf-16-le")

        def index(offset: int) -> int:  # UTF-16 offset → str index
            return len(units[: 2 * offset].decode("utf-16-le", errors="ignore"))

        links: list[tuple[int, str]] = []
        for entity in call.entities:
            start = index(entity["offset"])
            end = index(entity["offset"] + entity["length"])
            style = _ENTITY_STYLES.get(entity["type"])
            if style:
                content.stylize(style, start, end)
            if entity["type"] == "text_link" and entity.get("url") != body[start:end]:
                links.append((end, str(entity.get("url", ""))))
        for end, url in sorted(links, reverse=True):  # from the end, so offsets stay valid
            content = content[:end] + Text(f" ({url})", style="dim") + content[end:]
        return content

    def _raw_body(self, call: SentCall) -> str:
        if call.method == "copyMessage":
            key = (int(call.params.get("from_chat_id", 0)), int(call.params.get("message_id", 0)))
            original = self._sent_texts.get(key)
            caption = call.params.get("caption")
            return original or caption or f"[copy of message #{key[1]}]"
        if call.method == "sendDocument":
            document = call.params.get("document")
            name = getattr(document, "filename", None) or "file"
            size = len(getattr(document, "data", b"") or b"")
            extra = f" ({size:,} bytes)" if size else ""
            return f"📎 {name}{extra}" + (f"\n{call.text}" if call.text else "")
        if call.method == "sendPhoto":
            return "🖼 [photo]" + (f"\n{call.text}" if call.text else "")
        return call.text

    def _buttons(self, call: SentCall, side: Side) -> list[Button]:
        markup = call.params.get("reply_markup")
        message = call.result if isinstance(call.result, Message) else None
        if message is not None and isinstance(markup, InlineKeyboardMarkup):
            message = message.model_copy(update={"reply_markup": markup})
        if isinstance(markup, InlineKeyboardMarkup):
            side.inline = [
                Button(
                    b.text,
                    b.callback_data or b.url or "",
                    "url" if b.url else "callback",
                    message,
                )
                for row in markup.inline_keyboard
                for b in row
            ]
        if isinstance(markup, ReplyKeyboardMarkup):
            side.reply = [
                Button(b.text, "", "contact" if b.request_contact else "text")
                for row in markup.keyboard
                for b in row
            ]
        elif isinstance(markup, ReplyKeyboardRemove):
            side.reply = []
        shown = isinstance(markup, InlineKeyboardMarkup | ReplyKeyboardMarkup)
        return side.buttons if shown else []


def make_reader(console: Console) -> ReadLine:
    """Interactive input (Rich prompt); None on Ctrl-D / Ctrl-C."""

    def read(prompt: str) -> str | None:
        try:
            return console.input(f"[bold]{prompt}[/bold]")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return None

    return read


__all__ = ["Button", "ReadLine", "TerminalChat", "make_reader"]

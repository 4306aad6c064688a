"""An in-process Telegram Bot API (the test double for Telegram) used by the scenario tests
and by `hwcrm chat`, which runs the real dispatcher and handlers in a terminal.

It is an aiogram `BaseSession`: the real `Bot` sends every method call here instead of over
HTTP. Calls are recorded; plausible results are returned (messages get ids, forum topics get
thread ids). Errors such as 429 (retry after) or 403 (bot blocked) can be injected per method.
Texts and captions sent with parse mode HTML are parsed like Telegram parses them
(`bot.telegram_html`): invalid HTML fails with Telegram's 400 "can't parse entities", a text
too long after parsing with "message is too long"; `SentCall.text` is what the person sees and
`SentCall.entities` its formatting (`SentCall.html` is what the bot sent).
The real HTTP path is tested separately against a fake Bot API *server* (tests/bot/).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    ForumTopic,
    Message,
    MessageEntity,
    MessageId,
    PhotoSize,
    Sticker,
    Update,
    User,
)

from bot.telegram_html import ParsedMessage, TelegramHtmlError, parse_html

ErrorFactory = Callable[[TelegramMethod[Any]], TelegramAPIError]

# Visible text that shows HTML markup: something was escaped twice.
_DOUBLE_ESCAPED = re.compile(
    r"</?(?:b|i|u|s|a|code|pre|blockquote|tg-spoiler)(?:\s[^<>]*)?>|&(?:amp|lt|gt|quot|#\d+);"
)

BOT_USER = User(id=42, is_bot=True, first_name="NorthBridge Support", username="northbridge_bot")


@dataclass
class SentCall:
    """One Bot API call the bot made; `text` is what the recipient sees (HTML parsed)."""

    method: str
    params: dict[str, Any]
    result: Any = None
    parsed: ParsedMessage | None = None

    @property
    def html(self) -> str:
        """The text or caption exactly as the bot sent it."""
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def text(self) -> str:
        """The text or caption as the person sees it (entities parsed away)."""
        return self.parsed.text if self.parsed is not None else self.html

    @property
    def entities(self) -> list[dict[str, Any]]:
        return self.parsed.entities if self.parsed is not None else []

    @property
    def chat_id(self) -> int | str | None:
        return self.params.get("chat_id")

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data or url or '') of every inline/reply button, in order."""
        markup = self.params.get("reply_markup")
        if markup is None:
            return []
        rows = getattr(markup, "inline_keyboard", None) or getattr(markup, "keyboard", None) or []
        out: list[tuple[str, str]] = []
        for row in rows:
            for button in row:
                data = getattr(button, "callback_data", None) or getattr(button, "url", None)
                out.append((button.text, data or ""))
        return out


@dataclass
class InProcessBotAPI(BaseSession):
    """Records every call; answers like Telegram would. Not thread-safe (one event loop)."""

    calls: list[SentCall] = field(default_factory=list)
    _errors: dict[str, list[ErrorFactory]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _topics: itertools.count[int] = field(default_factory=lambda: itertools.count(500))
    deleted_topics: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__init__()

    def fail_next(self, method: str, error_factory: ErrorFactory) -> None:
        """Make the next call of `method` (e.g. "sendMessage") raise `error_factory(method_obj)`."""
        self._errors.setdefault(method, []).append(error_factory)

    async def close(self) -> None:
        return None

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        name = method.__api_method__
        pending = self._errors.get(name)
        if pending:
            raise pending.pop(0)(method)
        params = method.model_dump(exclude_none=True)
        for key, value in list(params.items()):  # DefaultBotProperties, resolved like aiogram
            if isinstance(value, Default):
                resolved = bot.default[value.name]
                if resolved is None:
                    del params[key]
                else:
                    params[key] = resolved
        # keep objects (markup, files) as given, for inspection
        for key in ("reply_markup", "document", "photo"):
            if getattr(method, key, None) is not None:
                params[key] = getattr(method, key)
        thread_id = params.get("message_thread_id")
        if thread_id is not None and thread_id in self.deleted_topics:
            raise TelegramBadRequest(method, "Bad Request: message thread not found")
        parsed = self._parse(method, name, params)
        result = self._result_for(name, params, parsed)
        self.calls.append(SentCall(name, params, result, parsed))
        return result  # type: ignore[no-any-return]

    @staticmethod
    def _parse(
        method: TelegramMethod[Any], name: str, params: dict[str, Any]
    ) -> ParsedMessage | None:
        """Telegram's entity parsing and length checks of a text or caption."""
        key = "text" if "text" in params else "caption" if "caption" in params else None
        if key is None or name == "answerCallbackQuery":
            return None
        raw = str(params[key])
        mode = str(params.get("parse_mode") or "")
        if mode.upper() == "HTML":
            try:
                parsed = parse_html(raw)
            except TelegramHtmlError as exc:
                raise TelegramBadRequest(method, exc.description) from None
        else:
            parsed = ParsedMessage(raw.strip())
        if mode.upper() == "HTML" and _DOUBLE_ESCAPED.search(parsed.text):
            # Not a Telegram error, but a bug of ours: HTML escaped twice shows its markup.
            raise AssertionError(f"escaped twice, the person would see markup: {parsed.text!r}")
        limit = 4096 if key == "text" else 1024
        if key == "text" and not parsed.text:
            raise TelegramBadRequest(method, "Bad Request: message text is empty")
        if parsed.length > limit:
            what = "message is too long" if key == "text" else "message caption is too long"
            raise TelegramBadRequest(method, f"Bad Request: {what}")
        return parsed

    def _result_for(
        self, name: str, params: dict[str, Any], parsed: ParsedMessage | None = None
    ) -> Any:
        chat_id = params.get("chat_id", 0)
        if name == "getMe":
            return BOT_USER
        if name == "createForumTopic":
            return ForumTopic(
                message_thread_id=next(self._topics), name=params["name"], icon_color=0
            )
        if name == "copyMessage":
            return MessageId(message_id=next(self._ids))
        if name.startswith("send") or name.startswith("edit") or name == "forwardMessage":
            return Message(
                message_id=next(self._ids),
                date=datetime.now(UTC),
                chat=Chat(
                    id=int(chat_id) if str(chat_id).lstrip("-").isdigit() else 0, type="private"
                ),
                from_user=BOT_USER,
                text=parsed.text if parsed is not None and "text" in params else None,
                caption=parsed.text if parsed is not None and "caption" in params else None,
                entities=_entities(parsed) if "text" in params else None,
                caption_entities=_entities(parsed) if "caption" in params else None,
                message_thread_id=params.get("message_thread_id"),
            )
        return True

    # -- helpers for tests and the terminal --------------------------------------------------

    def sent_to(self, chat_id: int) -> list[SentCall]:
        return [c for c in self.calls if c.chat_id == chat_id]

    def html_to(self, chat_id: int) -> list[str]:
        """What the bot sent to `chat_id`, as HTML."""
        return [c.html for c in self.sent_to(chat_id) if c.html]

    def texts_to(self, chat_id: int) -> list[str]:
        return [c.text for c in self.sent_to(chat_id) if c.text]

    def clear(self) -> None:
        self.calls.clear()


def _entities(parsed: ParsedMessage | None) -> list[MessageEntity] | None:
    if parsed is None or not parsed.entities:
        return None
    return [MessageEntity(**e) for e in parsed.entities]


class UpdateFactory:
    """Builds realistic Telegram updates for scenario tests and the terminal chat."""

    def __init__(self) -> None:
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    def user(self, user_id: int, language_code: str | None = "en", name: str = "Customer") -> User:
        return User(id=user_id, is_bot=False, first_name=name, language_code=language_code)

    def message(
        self,
        user: User,
        text: str | None = None,
        *,
        chat: Chat | None = None,
        thread_id: int | None = None,
        contact: Contact | None = None,
        sticker: bool = False,
        photo_file_id: str | None = None,
        caption: str | None = None,
        update_id: int | None = None,
    ) -> Update:
        chat = chat or Chat(id=user.id, type="private", first_name=user.first_name)
        message = Message(
            message_id=next(self._message_ids),
            date=datetime.now(UTC),
            chat=chat,
            from_user=user,
            text=text,
            contact=contact,
            caption=caption,
            message_thread_id=thread_id,
            is_topic_message=True if thread_id else None,
            sticker=Sticker(
                file_id="sticker-1",
                file_unique_id="s1",
                type="regular",
                width=512,
                height=512,
                is_animated=False,
                is_video=False,
            )
            if sticker
            else None,
            photo=[
                PhotoSize(
                    file_id=photo_file_id, file_unique_id=photo_file_id, width=800, height=600
                )
            ]
            if photo_file_id
            else None,
        )
        return Update(update_id=update_id or next(self._update_ids), message=message)

    def callback(
        self, user: User, data: str, *, message_text: str = "", chat: Chat | None = None
    ) -> Update:
        chat = chat or Chat(id=user.id, type="private", first_name=user.first_name)
        origin = Message(
            message_id=next(self._message_ids),
            date=datetime.now(UTC),
            chat=chat,
            from_user=BOT_USER,
            text=message_text or "…",
        )
        query = CallbackQuery(
            id=str(next(self._update_ids)),
            from_user=user,
            chat_instance="ci",
            data=data,
            message=origin,
        )
        return Update(update_id=next(self._update_ids), callback_query=query)

    def contact(self, user: User, phone: str, contact_user_id: int | None) -> Update:
        return self.message(
            user,
            contact=Contact(
                phone_number=phone, first_name=user.first_name, user_id=contact_user_id
            ),
        )

"""An in-process Telegram Bot API (the test double for Telegram) used by the scenario tests
and by `hwcrm chat`, which runs the real dispatcher and handlers in a terminal.

It is an aiogram `BaseSession`: the real `Bot` sends every method call here instead of over
HTTP. Calls are recorded; plausible results are returned (messages get ids, forum topics get
thread ids). Errors such as 429 (retry after) or 403 (bot blocked) can be injected per method.
The real HTTP path is tested separately against a fake Bot API *server* (tests/bot/).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    ForumTopic,
    Message,
    MessageId,
    PhotoSize,
    Sticker,
    Update,
    User,
)

ErrorFactory = Callable[[TelegramMethod[Any]], TelegramAPIError]

BOT_USER = User(id=42, is_bot=True, first_name="NorthBridge Support", username="northbridge_bot")


@dataclass
class SentCall:
    """One Bot API call the bot made."""

    method: str
    params: dict[str, Any]
    result: Any = None

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

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
        # keep objects (markup, files) as given, for inspection
        for key in ("reply_markup", "document", "photo"):
            if getattr(method, key, None) is not None:
                params[key] = getattr(method, key)
        thread_id = params.get("message_thread_id")
        if thread_id is not None and thread_id in self.deleted_topics:
            from aiogram.exceptions import TelegramBadRequest

            raise TelegramBadRequest(method, "Bad Request: message thread not found")
        result = self._result_for(name, params)
        self.calls.append(SentCall(name, params, result))
        return result  # type: ignore[no-any-return]

    def _result_for(self, name: str, params: dict[str, Any]) -> Any:
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
                text=params.get("text"),
                caption=params.get("caption"),
                message_thread_id=params.get("message_thread_id"),
            )
        return True

    # -- helpers for tests and the terminal --------------------------------------------------

    def sent_to(self, chat_id: int) -> list[SentCall]:
        return [c for c in self.calls if c.chat_id == chat_id]

    def texts_to(self, chat_id: int) -> list[str]:
        return [c.text for c in self.sent_to(chat_id) if c.text]

    def clear(self) -> None:
        self.calls.clear()


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

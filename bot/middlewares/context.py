"""Unit of work per update, and who is writing (customer, language)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from bot.deps import BotDeps, Texts
from bot.i18n import pick_language
from crm_core.db import unit_of_work
from crm_core.services import CrmServices

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def event_user(update: Update) -> User | None:
    """The Telegram user behind an update, if any."""
    for event in (
        update.message,
        update.edited_message,
        update.callback_query,
        update.my_chat_member,
    ):
        if event is not None and getattr(event, "from_user", None) is not None:
            return event.from_user  # type: ignore[no-any-return]
    return None


def event_chat_type(update: Update) -> str | None:
    if update.message is not None:
        return update.message.chat.type
    if update.callback_query is not None and update.callback_query.message is not None:
        return update.callback_query.message.chat.type
    return None


class UnitOfWorkMiddleware(BaseMiddleware):
    """One transaction per update: commit when the handler succeeds, roll back when it raises."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with unit_of_work(self.deps.sessions) as session:
            data["crm"] = CrmServices(session, self.deps.clock, self.deps.settings.crm)
            return await handler(event, data)


class CustomerMiddleware(BaseMiddleware):
    """Loads the customer writing in a private chat (unknown people become prospects) and
    picks their language: the customer's saved language, else Telegram's `language_code`."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user = event_user(event)
        crm: CrmServices = data["crm"]
        default = self.deps.settings.app.default_language
        lang = pick_language(user.language_code if user else None, default)
        customer = None
        if user is not None and not user.is_bot and event_chat_type(event) == "private":
            customer = await crm.customers.get_or_create_prospect(user.id, user.full_name, lang)
            lang = customer.language or lang
        data["customer"] = customer
        data["lang"] = lang
        data["t"] = Texts(self.deps.translator, lang)
        data["deps"] = self.deps
        return await handler(event, data)

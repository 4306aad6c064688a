"""The per-update context of a customer-flow handler, built by a router-level middleware.

Handlers of the customer routers declare `flow: Flow` and get, in one object, what the
dispatcher's middlewares put into the workflow data (bot, deps, crm, customer, lang, t, FSM
state) plus the chat to answer in. Customer flows run in private chats only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiogram import BaseMiddleware, Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
)

from bot.deps import BotDeps, Texts
from bot.middlewares.interactions import annotate_outbound
from bot.rendering import MESSAGE_LIMIT, truncate_html
from crm_core.customers.schemas import CustomerDTO
from crm_core.services import CrmServices

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Telegram refuses messages longer than 4096 characters (visible text, after entity parsing).
MAX_MESSAGE_CHARS = MESSAGE_LIMIT

# A text message that is not a command (state handlers must let /commands through).
PLAIN_TEXT = F.text & ~F.text.startswith("/")


@dataclass
class Flow:
    """Everything one customer-flow handler needs for the update it handles."""

    bot: Bot
    deps: BotDeps
    crm: CrmServices
    customer: CustomerDTO
    lang: str
    t: Texts
    state: FSMContext
    chat_id: int
    user_id: int
    # Recorded with every reply in the CRM interaction log (set by the free-text router and
    # by knowledge-base lookups).
    intent: str | None = None
    confidence: float | None = None
    kb_hits: list[str] = field(default_factory=list)

    async def say(self, text: str, markup: Markup | None = None) -> Message:
        """Send `text` — Telegram HTML, as `t()` and the renderer make it — to the customer's
        chat (parse mode HTML; cut at a word boundary to Telegram's limit if ever too long)."""
        text = truncate_html(text, MAX_MESSAGE_CHARS)
        with annotate_outbound(
            intent=self.intent, confidence=self.confidence, kb_hits=list(self.kb_hits)
        ):
            return await self.bot.send_message(self.chat_id, text, reply_markup=markup)

    async def send_file(self, data: bytes, filename: str, caption: str) -> Message:
        """Send a document (e.g. the GDPR export) to the customer's chat."""
        return await self.bot.send_document(
            self.chat_id, BufferedInputFile(data, filename=filename), caption=caption
        )

    def with_customer(self, customer: CustomerDTO) -> Flow:
        """The same context for another record (after linking merged the prospect away)."""
        return replace(self, customer=customer)

    def in_language(self, lang: str) -> Flow:
        """The same context speaking `lang` (after /language)."""
        return replace(self, lang=lang, t=Texts(self.deps.translator, lang))


class FlowMiddleware(BaseMiddleware):
    """Builds `flow` for the handler that matched; answers button presses at once (so the
    client stops its spinner); optionally flushes a rating whose comment never came."""

    def __init__(self, *, flush_ratings: bool = True) -> None:
        self.flush_ratings = flush_ratings

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        customer: CustomerDTO | None = data.get("customer")
        state: FSMContext | None = data.get("state")
        if customer is None or state is None:
            return None  # not a customer's private chat: the customer flows stay out of it
        if isinstance(event, CallbackQuery):
            chat_id = event.message.chat.id if event.message is not None else event.from_user.id
            user_id = event.from_user.id
            await event.answer()
        elif isinstance(event, Message):
            chat_id = event.chat.id
            user_id = event.from_user.id if event.from_user is not None else event.chat.id
        else:  # pragma: no cover - only registered on messages and callback queries
            return await handler(event, data)
        flow = Flow(
            bot=data["bot"],
            deps=data["deps"],
            crm=data["crm"],
            customer=customer,
            lang=data["lang"],
            t=data["t"],
            state=state,
            chat_id=chat_id,
            user_id=user_id,
        )
        data["flow"] = flow
        if self.flush_ratings:
            from bot.flows.rating import flush_pending_rating

            await flush_pending_rating(flow)
        return await handler(event, data)


def customer_router(name: str, *, flush_ratings: bool = True) -> Router:
    """A router of the customer flows: private chats only, with `flow` in the handler data."""
    router = Router(name=name)
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    middleware = FlowMiddleware(flush_ratings=flush_ratings)
    router.message.middleware(middleware)
    router.callback_query.middleware(middleware)
    return router

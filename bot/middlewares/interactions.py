"""Every inbound and outbound message of a customer chat lands in the CRM.

- Inbound: `InboundLoggingMiddleware` logs each private-chat message, edit and button press
  in the update's unit of work (`crm.conversations.open_or_get` + `add_interaction`) and puts
  the conversation into the handler data (`conversation`).
- Outbound: `OutboundLoggingMiddleware` is a Bot API *request* middleware
  (`bot.session.middleware(...)`): every successful sendMessage / sendPhoto / sendDocument /
  copyMessage / editMessageText (and a few more) to a private chat is logged — in the
  update's unit of work when it runs inside one, else in a short unit of work of its own.
  Handlers can attach what the NLU and knowledge base made of it with `annotate_outbound`.

Cost: each interaction is one INSERT (no ORM flush, nothing read back); inside an update, the
conversation's last activity and the customer's last contact are moved once, before the
update's unit of work commits (`UpdateScope.defer_touch`), not once per message.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import (
    CopyMessage,
    EditMessageCaption,
    EditMessageText,
    ForwardMessage,
    Response,
    SendDocument,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
    SendVideo,
    SendVoice,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile, Message, TelegramObject, Update

from bot.middlewares.context import DbWriter, current_scope
from bot.telegram_html import plain_or_same
from crm_core.customers.schemas import CustomerDTO, CustomerUpdate
from crm_core.services import CrmServices

log = logging.getLogger("bot.interactions")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

BLOCKED_TAG = "blocked_bot"


# -- what a message says, as one line of CRM text ------------------------------------------


def describe_message(message: Message) -> str:
    """The text of a message, or a bracketed description of its content (`[sticker 😀]`)."""
    if message.text:
        return message.text
    kind = message.content_type
    caption = f" {message.caption}" if message.caption else ""
    if message.sticker is not None:
        return f"[sticker {message.sticker.emoji or ''}]".replace(" ]", "]")
    if message.voice is not None:
        return f"[voice message, {message.voice.duration}s]"
    if message.document is not None:
        return f"[document {message.document.file_name or ''}]".replace(" ]", "]") + caption
    if message.photo:
        return f"[photo]{caption}"
    if message.contact is not None:
        return "[shared a contact]"
    if message.location is not None:
        return "[location]"
    return f"[{kind}]{caption}"


def describe_inbound(update: Update) -> tuple[str, int | str | None] | None:
    """(text for the CRM, Telegram message id) of a customer update; None if not loggable."""
    if update.message is not None:
        return describe_message(update.message), update.message.message_id
    if update.edited_message is not None:
        edited = update.edited_message
        return f"[edited message #{edited.message_id}] {describe_message(edited)}", None
    if update.callback_query is not None:
        query = update.callback_query
        label = _button_label(query.message, query.data) if query.message else None
        return f"[button] {label or query.data or ''}".rstrip(), None
    return None


def _button_label(message: Any, data: str | None) -> str | None:
    markup = getattr(message, "reply_markup", None)
    for row in getattr(markup, "inline_keyboard", None) or []:
        for button in row:
            if button.callback_data == data:
                return str(button.text)
    return None


# -- inbound -------------------------------------------------------------------------------


class InboundLoggingMiddleware(BaseMiddleware):
    """Logs what the customer sent (private chats) and provides `conversation` to handlers.

    A customer tagged `blocked_bot` who writes again has unblocked the bot: the tag is removed
    and an event is logged.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        customer: CustomerDTO | None = data.get("customer")
        described = describe_inbound(event) if customer is not None else None
        if customer is not None and described is not None:
            crm: CrmServices = data["crm"]
            chat_id = customer.telegram_user_id or 0
            conversation = await crm.conversations.open_or_get(customer.id, chat_id)
            text, external_id = described
            direction = "event" if event.edited_message is not None else "inbound"
            scope = current_scope()
            deferred = scope is not None and scope.crm is crm
            at = await crm.conversations.add_interaction(
                conversation.id, direction, text, external_id=external_id, touch=not deferred
            )
            if deferred:
                assert scope is not None
                scope.defer_touch(conversation.id, at, customer_contact=direction != "event")
            if BLOCKED_TAG in customer.tags:
                customer = await set_blocked(crm, customer, blocked=False)
                await crm.conversations.log_interaction(
                    conversation.id, "event", "the customer wrote again: bot no longer blocked"
                )
                data["customer"] = customer
            data["conversation"] = conversation
            if scope is not None:
                scope.conversation_id = conversation.id
        return await handler(event, data)


async def set_blocked(crm: CrmServices, customer: CustomerDTO, *, blocked: bool) -> CustomerDTO:
    """Add or remove the `blocked_bot` tag (idempotent)."""
    tags = [t for t in customer.tags if t != BLOCKED_TAG]
    if blocked:
        tags.append(BLOCKED_TAG)
    if tags == customer.tags:
        return customer
    return await crm.customers.update_customer(customer.id, CustomerUpdate(tags=tags), actor="bot")


async def record_blocked(crm: CrmServices, telegram_user_id: int, reason: str) -> None:
    """Mark the customer with this Telegram id as having blocked the bot (tag + event)."""
    customer = await crm.customers.find_by_telegram_id(telegram_user_id)
    if customer is None:
        return
    already = BLOCKED_TAG in customer.tags
    await set_blocked(crm, customer, blocked=True)
    if not already:
        conversation = await crm.conversations.open_or_get(customer.id, telegram_user_id)
        await crm.conversations.log_interaction(conversation.id, "event", reason)


# -- outbound ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundMeta:
    """What a handler wants recorded with the messages it sends next."""

    intent: str | None = None
    confidence: float | None = None
    kb_hits: tuple[str, ...] = ()
    agent_staff_id: int | None = None


_META: contextvars.ContextVar[OutboundMeta | None] = contextvars.ContextVar(
    "hwcrm_outbound_meta", default=None
)


@contextmanager
def annotate_outbound(
    *,
    intent: str | None = None,
    confidence: float | None = None,
    kb_hits: tuple[str, ...] | list[str] = (),
    agent_staff_id: int | None = None,
) -> Iterator[None]:
    """Messages sent inside this block are logged with this intent/confidence/KB hits/agent.

    with annotate_outbound(intent=parse.intent, confidence=parse.confidence):
        await message.answer(text)
    """
    token = _META.set(OutboundMeta(intent, confidence, tuple(kb_hits), agent_staff_id))
    try:
        yield
    finally:
        _META.reset(token)


LOGGED_METHODS = (
    SendMessage,
    SendPhoto,
    SendDocument,
    SendVideo,
    SendVoice,
    SendMediaGroup,
    CopyMessage,
    ForwardMessage,
    EditMessageText,
    EditMessageCaption,
)


def describe_outbound(method: TelegramMethod[Any]) -> str:
    """One line of CRM text for an outbound Bot API call: what the customer reads (the
    HTML of the message is reduced to its visible text)."""
    caption = getattr(method, "caption", None)
    tail = f" {plain_or_same(caption)}" if caption else ""
    if isinstance(method, SendMessage):
        return plain_or_same(method.text)
    if isinstance(method, EditMessageText):
        return f"[edited message #{method.message_id}] {plain_or_same(method.text or '')}"
    if isinstance(method, EditMessageCaption):
        return f"[edited caption #{method.message_id}]{tail}"
    if isinstance(method, SendPhoto):
        return f"[photo]{tail}"
    if isinstance(method, SendDocument):
        name = method.document.filename if isinstance(method.document, InputFile) else None
        return f"[document {name or ''}]".replace(" ]", "]") + tail
    if isinstance(method, CopyMessage | ForwardMessage):
        verb = "copy" if isinstance(method, CopyMessage) else "forward"
        return f"[{verb} of message #{method.message_id} from chat {method.from_chat_id}]{tail}"
    if isinstance(method, SendMediaGroup):
        return f"[album of {len(method.media)}]"
    return f"[{method.__api_method__}]{tail}"


def _private_chat_id(method: TelegramMethod[Any]) -> int | None:
    chat_id = getattr(method, "chat_id", None)
    if isinstance(chat_id, int) and chat_id > 0:  # users' private chats have positive ids
        return chat_id
    return None


def _message_id(result: Any) -> int | None:
    if isinstance(result, list) and result:
        result = result[0]
    value = getattr(result, "message_id", None)
    return value if isinstance(value, int) else None


class OutboundLoggingMiddleware(BaseRequestMiddleware):
    """Logs successful outbound messages to private chats as `outbound` interactions.

    A failure to log never fails the send (it is logged as an error instead): the customer
    got the message either way.
    """

    def __init__(self, writer: DbWriter) -> None:
        self.writer = writer
        self.failures = 0

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        result = await make_request(bot, method)
        if not isinstance(method, LOGGED_METHODS):
            return result
        chat_id = _private_chat_id(method)
        if chat_id is None:
            return result
        text = describe_outbound(method)
        meta = _META.get() or OutboundMeta()
        external_id = _message_id(result)

        async def record(crm: CrmServices) -> None:
            scope = current_scope()
            customer = None
            if (
                scope is not None
                and scope.customer is not None
                and scope.customer.telegram_user_id == chat_id
            ):
                customer = scope.customer
            if customer is None:
                customer = await crm.customers.find_by_telegram_id(chat_id)
            conversation_id = None
            if (
                scope is not None
                and scope.conversation_id is not None
                and customer is not None
                and scope.customer is not None
                and scope.customer.id == customer.id
            ):
                conversation_id = scope.conversation_id
            if conversation_id is None:
                conversation = await crm.conversations.open_or_get(
                    customer.id if customer else None, chat_id
                )
                conversation_id = conversation.id
            # in the update's unit of work: touched once before it commits (see context.py)
            deferred = scope is not None and scope.crm is crm
            at = await crm.conversations.add_interaction(
                conversation_id,
                "outbound",
                text,
                intent=meta.intent,
                confidence=meta.confidence,
                kb_hits=list(meta.kb_hits),
                agent_staff_id=meta.agent_staff_id,
                external_id=external_id,
                touch=not deferred,
            )
            if deferred:
                assert scope is not None
                scope.defer_touch(conversation_id, at, customer_contact=True)

        try:
            await self.writer.write(record)
        except Exception:
            self.failures += 1
            log.exception("could not log an outbound %s in the CRM", method.__api_method__)
        return result

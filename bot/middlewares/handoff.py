"""Handoff middlewares.

`HandoffMiddleware` (an outer update middleware, after the customer middleware): while the
customer's conversation is queued or with an agent, the bot does not answer on its own.
Messages (and edits) from the customer's private chat are relayed into their staff topic and
logged (by the runtime's inbound logging when it ran before, else here); button presses are
acknowledged silently (the cancel-request button leaves the
queue); no router sees them. It sets `data["handoff_relayed"] = True` so that outer layers
(e.g. interaction logging) know the update was taken care of here.

`StaffTopicGate` (an inner middleware of the staff-group router): resolves which agent acts on
which customer's conversation and injects `agent` and `topic` into the handler data; messages
from the bot itself or other bots, messages outside customer topics and messages from anyone
who is not an active agent/admin are dropped (the latter audited as "denied").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from bot import handoff
from bot.deps import BotDeps
from crm_core.conversations.handoff import HandoffService
from crm_core.conversations.handoff_schemas import Owner
from crm_core.conversations.schemas import ConversationDTO
from crm_core.customers.schemas import CustomerDTO
from crm_core.services import CrmServices

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class HandoffMiddleware(BaseMiddleware):
    """Relays a handed-off customer's private messages to their topic instead of the flows."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        customer: CustomerDTO | None = data.get("customer")
        chat_id = _private_chat_id(event)
        if customer is None or chat_id is None:
            return await handler(event, data)
        crm: CrmServices = data["crm"]
        # The runtime's inbound logging (when it ran before us) already logged the message
        # and loaded the open conversation.
        logged: ConversationDTO | None = data.get("conversation")
        conversation = logged or await HandoffService(crm.session, crm.clock).current(chat_id)
        if conversation is None or conversation.owner == Owner.BOT:
            return await handler(event, data)
        bot: Bot = data["bot"]
        if event.message is not None or event.edited_message is not None:
            message = event.message or event.edited_message
            assert message is not None
            await handoff.relay_customer_message(
                bot,
                self.deps,
                crm,
                conversation,
                customer,
                message,
                edited=event.message is None,
                logged=logged is not None,
            )
        elif event.callback_query is not None:
            await _callback(bot, self.deps, crm, event.callback_query, conversation, customer)
        else:
            return await handler(event, data)
        data["handoff_relayed"] = True
        return None


async def _callback(
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    query: CallbackQuery,
    conversation: ConversationDTO,
    customer: CustomerDTO,
) -> None:
    if query.data == handoff.CANCEL_CALLBACK:
        await handoff.cancel_by_customer(bot, deps, crm, conversation, customer)
    await bot.answer_callback_query(query.id)


def _private_chat_id(update: Update) -> int | None:
    message = update.message or update.edited_message
    if message is not None:
        return message.chat.id if message.chat.type == "private" else None
    query = update.callback_query
    if query is not None and query.message is not None and query.message.chat.type == "private":
        return query.message.chat.id
    return None


class StaffTopicGate(BaseMiddleware):
    """Lets only agents act in customer topics of the staff group (see the module docstring)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Message)
        deps: BotDeps = data["deps"]
        resolved = await handoff.staff_topic_context(deps, data["crm"], event)
        if resolved is None:
            return None
        data["agent"], data["topic"] = resolved
        return await handler(event, data)

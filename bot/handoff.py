"""Agent handoff, as the customer flows see it: hand a conversation to a human.

The flows call `request_handoff(...)` for request_human, complaint, "not solved" and low
confidence. It moves the customer's conversation from the bot to the queue (the ownership
state machine lives in `crm_core.conversations.handoff`), makes sure the customer has a topic
in the staff supergroup (`bot.staff_chat_id`), posts and pins the customer card there,
notifies the agents of the routed team and tells the customer that a person will answer.
From then on the handoff middleware relays the customer's messages to the topic and the bot
stays silent until an agent gives the conversation back (/bot, /close) or it times out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiogram import Bot

from bot.deps import BotDeps
from crm_core.customers.schemas import CustomerDTO
from crm_core.services import CrmServices

HandoffStatus = Literal["queued", "already_queued", "with_agent", "unavailable"]


@dataclass(frozen=True)
class HandoffResult:
    """What `request_handoff` did.

    status:
      queued          — the conversation is now waiting for an agent (card posted, team notified);
      already_queued  — it was already waiting (nothing posted again, customer reminded);
      with_agent      — an agent already owns it (the request was relayed to the topic);
      unavailable     — no staff group is configured: nobody can take it (customer told so,
                        the conversation stays with the bot).
    """

    status: HandoffStatus
    conversation_id: int
    team: str | None = None
    topic_id: int | None = None


async def request_handoff(
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    customer: CustomerDTO,
    *,
    reason: str,
    intent: str | None,
    category: str | None,
    lang: str,
    chat_id: int | None = None,
) -> HandoffResult:
    """Hand the customer's conversation to a human agent.

    bot, deps, crm — as the handler received them (crm is this update's unit of work; nothing
        here commits).
    customer — the customer writing (their private chat is `chat_id`, by default their
        Telegram user id).
    reason — why: "request_human", "complaint", "not_solved", "low_confidence" (free text is
        accepted; it is shown on the card and logged).
    intent — the NLU intent of the message that led here (routing + card), or None.
    category — a product category key (gpu, psu, ...) when known (routing + card), or None.
    lang — the customer's language (zh | en) for the texts sent to them and for routing.

    Sends the customer the confirmation text itself (the caller should not add its own).
    Never raises for Telegram trouble in the staff group; domain errors propagate.
    """
    raise NotImplementedError("agent handoff is being built")

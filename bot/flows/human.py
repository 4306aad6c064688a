"""Offering and requesting a person (the handoff engine itself lives in bot/handoff.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram.types import InlineKeyboardButton

from bot.callbacks import HumanCb

if TYPE_CHECKING:
    from bot.flows.context import Flow
    from bot.handoff import HandoffResult

# Reasons passed to request_handoff (shown on the agent's card and logged).
REQUEST_HUMAN = "request_human"
COMPLAINT = "complaint"
NOT_SOLVED = "not_solved"
LOW_CONFIDENCE = "low_confidence"
SALES = "sales"
REASONS = (REQUEST_HUMAN, COMPLAINT, NOT_SOLVED, LOW_CONFIDENCE, SALES)

# The intent recorded with a handoff requested by button, per reason.
REASON_INTENTS = {
    REQUEST_HUMAN: "request_human",
    COMPLAINT: "complaint",
    NOT_SOLVED: "report_fault",
    LOW_CONFIDENCE: None,
    SALES: "purchase_inquiry",
}


def human_button(flow: Flow, reason: str, ticket: str = "") -> InlineKeyboardButton:
    """ "Talk to a person" (or "Talk to sales") as an inline button."""
    label = flow.t("human.button_sales") if reason == SALES else flow.t("human.button")
    return InlineKeyboardButton(
        text=label, callback_data=HumanCb(reason=reason, ticket=ticket).pack()
    )


async def hand_to_human(
    flow: Flow,
    reason: str,
    *,
    intent: str | None = None,
    category: str | None = None,
) -> HandoffResult:
    """Queue the conversation for an agent; the handoff engine tells the customer."""
    from bot.handoff import request_handoff

    return await request_handoff(
        flow.bot,
        flow.deps,
        flow.crm,
        flow.customer,
        reason=reason,
        intent=intent if intent is not None else REASON_INTENTS.get(reason),
        category=category,
        lang=flow.lang,
        chat_id=flow.chat_id,
    )

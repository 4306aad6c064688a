"""A satisfaction rating waiting for its optional comment.

The CRM stores a rating with its comment in one call (`record_satisfaction`), so the score a
customer pressed is kept in the FSM data until the comment (or "no comment") arrives. If the
customer moves on to anything else instead, the customer routers' middleware records the
score without a comment first (`flush_pending_rating`), so a pressed score is not lost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crm_core.conversations.schemas import SatisfactionDTO
from crm_core.errors import DomainError

if TYPE_CHECKING:
    from bot.flows.context import Flow

PENDING_KEY = "pending_rating"
log = logging.getLogger("bot.flows.rating")


async def pending_rating(flow: Flow) -> dict[str, Any] | None:
    value = (await flow.state.get_data()).get(PENDING_KEY)
    return value if isinstance(value, dict) else None


async def keep_pending_rating(
    flow: Flow, *, score: int, ticket_id: int | None, conversation_id: int | None
) -> None:
    await flow.state.update_data(
        {
            PENDING_KEY: {
                "customer_id": flow.customer.id,
                "score": score,
                "ticket_id": ticket_id,
                "conversation_id": conversation_id,
            }
        }
    )


async def record_pending_rating(flow: Flow, comment: str | None) -> SatisfactionDTO | None:
    """Store the pending rating (with `comment`) and forget it; None when there was none."""
    pending = await pending_rating(flow)
    if pending is None:
        return None
    await flow.state.update_data({PENDING_KEY: None})
    if pending.get("customer_id") != flow.customer.id:
        return None  # the chat's record changed (linked, erased) since the button was pressed
    return await flow.crm.conversations.record_satisfaction(
        flow.customer.id,
        int(pending["score"]),
        comment=comment,
        ticket_id=pending.get("ticket_id"),
        conversation_id=pending.get("conversation_id"),
    )


async def flush_pending_rating(flow: Flow) -> None:
    """Record a rating still waiting for its comment, without one (the customer moved on)."""
    if await pending_rating(flow) is None:
        return
    try:
        await record_pending_rating(flow, None)
    except DomainError:
        log.warning("a pending rating could not be recorded", exc_info=True)

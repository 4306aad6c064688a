"""Complaints and satisfaction ratings.

- Complaint: a high-priority ticket (kind `complaint`) with the customer's words, then a
  person (handoff).
- Satisfaction: `ask_for_rating(...)` sends the 1-5 buttons after a ticket is resolved or an
  agent closes a session (the handoff engine calls it). A press is checked against the
  customer (their own ticket / conversation only), then an optional comment is asked for and
  the rating is stored with it (`record_satisfaction`). If the customer moves on instead, the
  score is stored without a comment (see `bot.flows.rating`).
"""

from __future__ import annotations

from aiogram import Bot
from aiogram.filters import StateFilter
from aiogram.types import CallbackQuery, Message

from bot.callbacks import RateCb, RateCommentCb
from bot.deps import Texts
from bot.flows.context import PLAIN_TEXT, Flow, customer_router
from bot.flows.human import COMPLAINT, hand_to_human
from bot.flows.rating import flush_pending_rating, keep_pending_rating, record_pending_rating
from bot.flows.states import RatingStates
from bot.i18n import Translator
from bot.keyboards import rating_keyboard, skip_comment_keyboard
from crm_core.errors import NotFound
from crm_core.tickets.schemas import TicketKind

# No rating flush here: this router is where a pending rating gets its comment.
router = customer_router("feedback", flush_ratings=False)


# -- complaint ---------------------------------------------------------------------------------


async def file_complaint(flow: Flow, text: str, *, category: str | None = None) -> None:
    """A high-priority complaint ticket, its number, and a person."""
    ticket = await flow.crm.tickets.create(
        flow.customer.id, kind=TicketKind.COMPLAINT, symptom=text or "Complaint via Telegram"
    )
    await flow.say(flow.t("complaint.registered", ticket=ticket.ticket_number))
    await hand_to_human(flow, COMPLAINT, intent="complaint", category=category)


# -- satisfaction ------------------------------------------------------------------------------


async def ask_for_rating(
    bot: Bot,
    chat_id: int,
    texts: Translator | Texts,
    lang: str | None = None,
    *,
    ticket_number: str | None = None,
    conversation_id: int | None = None,
) -> None:
    """Ask the customer in `chat_id` for a 1-5 rating of a ticket or a conversation.

    `texts` is the bot's Translator (then `lang` is the customer's language) or a `Texts`
    already bound to it.
    """
    t = texts if isinstance(texts, Texts) else Texts(texts, lang or "en")
    key = "feedback.ask_ticket" if ticket_number else "feedback.ask"
    await bot.send_message(
        chat_id,
        t(key, ticket=ticket_number or ""),
        reply_markup=rating_keyboard(ticket_number or "", conversation_id or 0),
    )


@router.callback_query(RateCb.filter())
async def on_rate(query: CallbackQuery, callback_data: RateCb, flow: Flow) -> None:
    """A score: only about the customer's own ticket/conversation (forged ids are refused)."""
    if not 1 <= callback_data.score <= 5:
        return
    await flush_pending_rating(flow)
    ticket_id = None
    conversation_id = None
    try:
        if callback_data.ticket:
            ticket = await flow.crm.tickets.get_for_customer(callback_data.ticket, flow.customer.id)
            ticket_id = ticket.id
        if callback_data.conv:
            conversation = await flow.crm.conversations.get(callback_data.conv)
            if conversation.customer_id != flow.customer.id:
                raise NotFound("not this customer's conversation")
            conversation_id = conversation.id
    except NotFound:
        await flow.say(flow.t("feedback.not_yours"))
        return
    await keep_pending_rating(
        flow, score=callback_data.score, ticket_id=ticket_id, conversation_id=conversation_id
    )
    await flow.state.set_state(RatingStates.comment)
    await flow.say(
        flow.t("feedback.ask_comment", score=callback_data.score), skip_comment_keyboard(flow.t)
    )


@router.message(StateFilter(RatingStates.comment), PLAIN_TEXT)
async def on_comment(message: Message, flow: Flow) -> None:
    await _finish(flow, message.text)


@router.callback_query(RateCommentCb.filter())
async def on_skip_comment(query: CallbackQuery, flow: Flow) -> None:
    await _finish(flow, None)


async def _finish(flow: Flow, comment: str | None) -> None:
    await flow.state.set_state(None)
    rating = await record_pending_rating(flow, comment)
    if rating is None:
        await flow.say(flow.t("feedback.nothing_pending"))
        return
    await flow.say(flow.t("feedback.thanks"))

"""Agent handoff: hand a conversation to a human, relay both ways, give it back to the bot.

Customer side
  The flows call `request_handoff(...)` (request_human, complaint, "not solved", low
  confidence). It moves the customer's conversation from the bot to the queue (the ownership
  state machine is `crm_core.conversations.handoff`), makes sure the customer has a forum
  topic in the staff supergroup (`bot.staff_chat_id`; one topic per customer, reused), posts
  and pins the customer card there, notifies the agents of the routed team and tells the
  customer that a person will answer. While the conversation is queued or agent-owned the
  handoff middleware (`bot.middlewares.handoff`) relays everything the customer sends into
  the topic (`relay_customer_message`) and the bot stays silent; `/cancel` (or the button on
  the confirmation) leaves the queue.

Staff side (`bot.routers.staff`, one thin handler per command)
  In a customer's topic, agents (staff with the agent or admin role) use /claim, /close,
  /bot, /note, /ticket, /canned, /transfer, /card; anything else they write is copied to
  the customer once they own the conversation. Everyone else is ignored and audited.

Topics deleted by staff
  Every post into a topic goes through `_deliver`: when Telegram answers "message thread not
  found", a new topic is created, the card is posted and pinned again, and the message that
  failed is sent again — nothing is lost.

Timeouts
  `sweep_handoffs(bot, deps)` (run periodically by `start_handoff_sweeper`) tells customers
  the expected wait once when nobody claimed within `handoff.claim_timeout_s`, gives queued
  conversations back to the bot after `handoff.queue_timeout_s` and agent-owned ones after
  `handoff.inactivity_timeout_s` without messages, telling the customer each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.deps import BotDeps, Texts
from bot.desk import desk_for
from bot.desk import tell_customer as _tell_customer
from bot.rendering import Html, truncate_html
from bot.rendering import link as html_link
from crm_core.conversations.handoff import AGENT_ROLES, HandoffService, route_team
from crm_core.conversations.handoff_schemas import HandoffRequestInfo, Owner
from crm_core.conversations.schemas import ConversationDTO
from crm_core.customers.schemas import CustomerDTO
from crm_core.db import unit_of_work
from crm_core.errors import InvalidTransition, NotFound
from crm_core.services import CrmServices
from crm_core.staff.schemas import StaffDTO
from crm_core.support.desk import AgentDesk, ChatContext, DeskResult, find_staff, is_open
from crm_core.tickets.service import normalize_ticket_number

if TYPE_CHECKING:
    from app.settings import HandoffTeam

log = logging.getLogger(__name__)

HandoffStatus = Literal["queued", "already_queued", "with_agent", "unavailable"]
CANCEL_CALLBACK = "ho:cancel"
AUDIT_ACTOR = "bot:handoff"
TOPIC_NAME_MAX = 128
CARD_MAX_CHARS = 4000
CARD_LINE_CHARS = 160
R = TypeVar("R")


class StaffTopicUnavailable(Exception):
    """The customer's topic is gone and a new one could not be created."""


QUIET_ERRORS = (TelegramAPIError, StaffTopicUnavailable)


@dataclass(frozen=True)
class HandoffResult:
    """What `request_handoff` did.

    status:
      queued          — the conversation is now waiting for an agent (card posted, team notified);
      already_queued  — it was already waiting (nothing posted again, customer reminded);
      with_agent      — an agent already owns it (the request was noted in the topic);
      unavailable     — no staff group is configured or reachable: nobody can take it
                        (customer told so, the conversation stays with the bot).
    """

    status: HandoffStatus
    conversation_id: int
    team: str | None = None
    topic_id: int | None = None


TopicContext = ChatContext
"""A customer's conversation and its staff-group topic (the desk's `ChatContext`)."""


# --- customer side ------------------------------------------------------------------------


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
    Telegram trouble in the staff group is logged, never raised; domain errors propagate.
    """
    chat = chat_id if chat_id is not None else customer.telegram_user_id
    if chat is None:
        raise NotFound(f"customer #{customer.id} has no Telegram chat")
    t = Texts(deps.translator, lang)
    svc = _service(crm)
    conversation = await crm.conversations.open_or_get(customer.id, chat)
    if conversation.owner == Owner.QUEUED:
        position = await svc.queue_position(conversation.id)
        await _tell_customer(bot, chat, t("handoff.already_queued", position=position))
        return HandoffResult(
            "already_queued", conversation.id, topic_id=conversation.staff_topic_id
        )
    if conversation.owner == Owner.AGENT:
        ctx = TopicContext(conversation, customer, conversation.staff_topic_id)
        await _post_quietly(
            bot, deps, crm, ctx, _staff_t(deps)("handoff.topic_again", reason=reason)
        )
        return HandoffResult("with_agent", conversation.id, topic_id=ctx.topic_id)

    staff_chat = deps.settings.bot.staff_chat_id
    topic = conversation.staff_topic_id or await svc.topic_for_chat(chat)
    if staff_chat and topic is None:
        topic = await _create_topic(bot, deps, customer)
    if not staff_chat or topic is None:
        await _tell_customer(bot, chat, t("handoff.unavailable"))
        return HandoffResult("unavailable", conversation.id)
    if conversation.staff_topic_id != topic:
        conversation = await svc.set_topic(conversation.id, topic)

    settings = deps.settings.handoff
    team = route_team(
        settings.teams,
        intent=intent,
        category=category,
        lang=lang,
        default=settings.default_team,
    )
    conversation = await svc.request(
        conversation.id,
        reason=reason,
        intent=intent,
        category=category,
        team=team.name if team else None,
    )
    ctx = TopicContext(conversation, customer, topic)
    try:
        await _deliver(bot, deps, crm, ctx, _card_sender(bot, deps, crm, ctx), is_card=True)
        await _notify_team(bot, deps, crm, ctx, team)
    except QUIET_ERRORS:
        log.exception("handoff of conversation #%s: staff group not reachable", conversation.id)
    await _tell_customer(
        bot,
        chat,
        t("handoff.customer_queued"),
        reply_markup=_cancel_keyboard(t),
    )
    return HandoffResult(
        "queued", conversation.id, team=team.name if team else None, topic_id=ctx.topic_id
    )


async def relay_customer_message(
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    conversation: ConversationDTO,
    customer: CustomerDTO,
    message: Message,
    *,
    edited: bool = False,
    logged: bool = False,
) -> None:
    """The customer wrote while queued or with an agent: copy it into the topic (text,
    photos, documents, ... via copyMessage; an edit is posted as text) and log it — unless
    `logged` (the runtime's inbound logging already recorded it)."""
    svc = _service(crm)
    command = (message.text or "").strip().lower().split("@")[0]
    if not edited and command == "/cancel" and conversation.owner == Owner.QUEUED:
        await cancel_by_customer(bot, deps, crm, conversation, customer)
        return
    text = describe_message(message)
    if not logged:
        await svc.record_customer_message(
            conversation.id, f"(edited) {text}" if edited else text, external_id=message.message_id
        )
    ctx = TopicContext(conversation, customer, conversation.staff_topic_id)
    staff_chat = deps.settings.bot.staff_chat_id
    if not staff_chat:
        return

    async def copy(topic: int) -> object:
        if edited:
            return await bot.send_message(
                staff_chat,
                _staff_t(deps)("handoff.topic_edited", text=text),
                message_thread_id=topic,
            )
        try:
            return await bot.copy_message(
                chat_id=staff_chat,
                from_chat_id=message.chat.id,
                message_id=message.message_id,
                message_thread_id=topic,
            )
        except TelegramBadRequest as exc:
            if _thread_gone(exc):
                raise
            # Something copyMessage cannot copy: say what it was instead of dropping it.
            return await bot.send_message(
                staff_chat,
                _staff_t(deps)("handoff.topic_uncopyable", text=text),
                message_thread_id=topic,
            )

    try:
        await _deliver(bot, deps, crm, ctx, copy)
    except QUIET_ERRORS:
        log.exception("could not relay a message of conversation #%s", conversation.id)


async def cancel_by_customer(
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    conversation: ConversationDTO,
    customer: CustomerDTO,
) -> bool:
    """queued → bot at the customer's request (/cancel or the button). False when there was
    nothing to cancel (an agent already has it, or it is with the bot)."""
    t = Texts(deps.translator, customer.language)
    try:
        conversation = await _service(crm).cancel(conversation.id)
    except InvalidTransition:
        return False
    ctx = TopicContext(conversation, customer, conversation.staff_topic_id)
    await _tell_customer(bot, ctx.chat_id, t("handoff.customer_cancelled"))
    await _post_quietly(bot, deps, crm, ctx, _staff_t(deps)("handoff.topic_cancelled"))
    return True


# --- staff side -----------------------------------------------------------------------------


async def staff_topic_context(
    deps: BotDeps, crm: CrmServices, message: Message
) -> tuple[StaffDTO, TopicContext] | None:
    """Who acts in the staff group, and on which customer's conversation — or None when the
    message must be ignored: the bot itself or other bots, messages outside customer topics,
    and anyone who is not an active agent/admin (those are audited as "denied")."""
    user = message.from_user
    if user is None or user.is_bot:
        return None
    topic = message.message_thread_id
    if not message.is_topic_message or topic is None:
        return None
    svc = _service(crm)
    known = await svc.conversation_for_topic(topic)
    if known is None or known.chat_id is None or known.customer_id is None:
        return None
    staff = await crm.staff.get_by_telegram_id(user.id, include_inactive=True)
    if staff is None or not staff.active or staff.role not in AGENT_ROLES:
        why = "not staff" if staff is None else ("deactivated" if not staff.active else staff.role)
        await crm.audit.record_durable(
            f"telegram:{user.id}",
            "denied",
            "conversation",
            known.id,
            known.customer_id,
            reason="staff-group message from someone who is not an agent (ignored)",
            details={
                "why": why,
                "telegram_user_id": user.id,
                "topic_id": topic,
                "text": (message.text or message.caption or "")[:200],
            },
        )
        return None
    conversation = await crm.conversations.open_or_get(known.customer_id, known.chat_id)
    if conversation.staff_topic_id != topic:
        conversation = await svc.set_topic(conversation.id, topic)
    customer = await crm.customers.get_customer(known.customer_id)
    return staff, TopicContext(conversation, customer, topic)


async def claim(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext
) -> None:
    """/claim: the agent takes the conversation (see `AgentDesk.claim`)."""
    await _answer(bot, deps, ctx, await _desk(bot, deps, crm).claim(agent, ctx))


async def release_to_bot(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext
) -> None:
    """/bot: the conversation goes back to the bot; the customer is told."""
    await _answer(bot, deps, ctx, await _desk(bot, deps, crm).release(agent, ctx))


async def close(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext
) -> None:
    """/close: resolve the conversation's ticket, thank the customer, ask for a rating,
    close (see `AgentDesk.close`)."""
    await _answer(bot, deps, ctx, await _desk(bot, deps, crm).close(agent, ctx))


async def add_note(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext, text: str
) -> None:
    """/note <text>: a private note on the conversation; never sent to the customer."""
    await _answer(bot, deps, ctx, await _desk(bot, deps, crm).note(agent, ctx, text))


async def change_ticket(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext, args: str
) -> None:
    """/ticket [TK-########] <status> [note]: move the customer's latest open ticket (or the
    named one of theirs) through the ticket state machine; refusals are shown in the topic."""
    words = args.split()
    number: str | None = None
    if words and (number := normalize_ticket_number(words[0])) is not None:
        words = words[1:]
    status = words[0] if words else None
    note = " ".join(words[1:]) or None
    result = await _desk(bot, deps, crm).change_ticket(
        agent, ctx, status, ticket_number=number, note=note
    )
    await _answer(bot, deps, ctx, result)


async def send_canned(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext, name: str
) -> None:
    """/canned <name>: send a configured reply in the customer's language."""
    await _answer(bot, deps, ctx, await _desk(bot, deps, crm).canned(agent, ctx, name))


async def transfer(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext, who: str
) -> None:
    """/transfer <login | staff id>: hand the conversation to another agent."""
    await _answer(bot, deps, ctx, await _desk(bot, deps, crm).transfer(agent, ctx, who))


async def repost_card(bot: Bot, deps: BotDeps, crm: CrmServices, ctx: TopicContext) -> None:
    """/card: post and pin a fresh customer card."""
    await _deliver(bot, deps, crm, ctx, _card_sender(bot, deps, crm, ctx), is_card=True)


async def relay_agent_message(
    bot: Bot, deps: BotDeps, crm: CrmServices, agent: StaffDTO, ctx: TopicContext, message: Message
) -> None:
    """Anything else an agent writes in the topic is copied to the customer — when the agent
    owns the conversation (writing in a queued one claims it)."""
    text = message.text or message.caption or ""
    result = await _desk(bot, deps, crm).reply(agent, ctx, text, content=message)
    await _answer(bot, deps, ctx, result)


async def topic_help(bot: Bot, deps: BotDeps, ctx: TopicContext) -> None:
    """An unknown /command in a customer topic: list the commands (nothing is sent)."""
    await _reply_in_topic(bot, deps, ctx, _staff_t(deps)("handoff.topic_help"))


# --- sweeper ------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What one sweep did."""

    wait_notices: int = 0
    queue_timeouts: int = 0
    inactive: int = 0


DbAction = Callable[[CrmServices], Awaitable[R]]
DbRunner = Callable[[DbAction[Any]], Awaitable[Any]]


async def sweep_handoffs(bot: Bot, deps: BotDeps, *, run: DbRunner | None = None) -> SweepReport:
    """One pass over the handoff timeouts: tell customers waiting longer than
    `claim_timeout_s` the expected wait (once per queueing), give conversations queued longer
    than `queue_timeout_s`, or agent-owned and silent longer than `inactivity_timeout_s`,
    back to the bot — telling the customer and the topic each time.

    Each conversation's change is committed in its own unit of work before anybody is told
    (no transaction stays open while Telegram is called). `run(action)` runs
    `action(crm)` in a unit of work — the runtime passes its `DbWriter.write` (which takes
    the embedded SQLite's writer lock); by default a plain unit of work of `deps.sessions`.
    """
    settings = deps.settings.handoff
    runner = run or _unit_of_work_runner(deps)
    report = SweepReport()
    now = deps.clock.now()
    jobs: list[tuple[str, _Change]] = []
    # Timeouts first: a customer whose queue time is up is not told the expected wait too.
    if settings.queue_timeout_s > 0:
        cutoff = now - timedelta(seconds=settings.queue_timeout_s)
        jobs.append(("queue_timeouts", _queue_timeout(cutoff)))
    if settings.inactivity_timeout_s > 0:
        cutoff = now - timedelta(seconds=settings.inactivity_timeout_s)
        jobs.append(("inactive", _inactivity(cutoff)))
    if settings.claim_timeout_s > 0:
        cutoff = now - timedelta(seconds=settings.claim_timeout_s)
        jobs.append(("wait_notices", _wait_notice(deps, cutoff)))
    for counter, change in jobs:
        for conversation_id in await runner(change.due):
            try:
                notice = await runner(partial(change.apply, conversation_id))
                if notice is None:
                    continue
                setattr(report, counter, getattr(report, counter) + 1)
                await _give_notice(bot, deps, runner, notice)
            except Exception:
                log.exception("handoff sweep of conversation #%s failed", conversation_id)
    return report


def start_handoff_sweeper(
    bot: Bot, deps: BotDeps, interval_s: float | None = None, *, run: DbRunner | None = None
) -> asyncio.Task[None]:
    """Run `sweep_handoffs` every `interval_s` seconds (default `handoff.sweep_interval_s`)
    until the returned task is cancelled. A failing sweep is logged and retried next time.
    `run`: see `sweep_handoffs` (pass the runtime's `DbWriter.write`)."""
    interval = interval_s if interval_s is not None else deps.settings.handoff.sweep_interval_s

    async def loop() -> None:
        while True:
            try:
                report = await sweep_handoffs(bot, deps, run=run)
                if report.wait_notices or report.queue_timeouts or report.inactive:
                    log.info("handoff sweep: %s", report)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handoff sweep failed")
            await asyncio.sleep(interval)

    return asyncio.create_task(loop(), name="handoff-sweeper")


@dataclass
class _Notice:
    """What to tell the customer and the topic after a sweeper change was committed."""

    ctx: TopicContext
    customer_key: str
    customer_params: dict[str, object]
    topic_key: str
    topic_params: dict[str, object]


@dataclass
class _Change:
    due: DbAction[list[int]]
    apply: Callable[[int, CrmServices], Awaitable[_Notice | None]]


def _unit_of_work_runner(deps: BotDeps) -> DbRunner:
    async def run(action: DbAction[Any]) -> Any:
        async with unit_of_work(deps.sessions) as session:
            return await action(CrmServices(session, deps.clock, deps.settings.crm))

    return run


async def _give_notice(bot: Bot, deps: BotDeps, run: DbRunner, notice: _Notice) -> None:
    ctx = notice.ctx
    t = Texts(deps.translator, ctx.customer.language)
    with contextlib.suppress(TelegramAPIError):
        await _tell_customer(bot, ctx.chat_id, t(notice.customer_key, **notice.customer_params))
    topic_text = _staff_t(deps)(notice.topic_key, **notice.topic_params)

    async def post(crm: CrmServices) -> None:
        await _post_quietly(bot, deps, crm, ctx, topic_text)

    await run(post)


def _wait_notice(deps: BotDeps, cutoff: datetime) -> _Change:
    async def apply(conversation_id: int, crm: CrmServices) -> _Notice | None:
        svc = _service(crm)
        if not await svc.take_wait_notice(conversation_id, cutoff):
            return None
        ctx = await _context(crm, await svc.get(conversation_id))
        if ctx is None:
            return None
        minutes = _expected_wait(deps, await svc.last_request(conversation_id))
        position = await svc.queue_position(conversation_id)
        waited = deps.settings.handoff.claim_timeout_s // 60
        return _Notice(
            ctx,
            "handoff.expected_wait",
            {"minutes": minutes, "position": position},
            "handoff.topic_still_waiting",
            {"minutes": waited},
        )

    return _Change(lambda crm: _service(crm).due_wait_notices(cutoff), apply)


def _queue_timeout(cutoff: datetime) -> _Change:
    async def apply(conversation_id: int, crm: CrmServices) -> _Notice | None:
        try:
            conv = await _service(crm).expire_queue(conversation_id, cutoff)
        except InvalidTransition:
            return None  # claimed or cancelled meanwhile
        ctx = await _context(crm, conv)
        if ctx is None:
            return None
        minutes = int((crm.clock.now() - cutoff).total_seconds()) // 60
        return _Notice(
            ctx,
            "handoff.customer_queue_timeout",
            {},
            "handoff.topic_queue_timeout",
            {"minutes": minutes},
        )

    return _Change(lambda crm: _service(crm).due_queue_timeouts(cutoff), apply)


def _inactivity(cutoff: datetime) -> _Change:
    async def apply(conversation_id: int, crm: CrmServices) -> _Notice | None:
        try:
            conv = await _service(crm).expire_inactive(conversation_id, cutoff)
        except InvalidTransition:
            return None  # someone wrote meanwhile
        ctx = await _context(crm, conv)
        if ctx is None:
            return None
        minutes = int((crm.clock.now() - cutoff).total_seconds()) // 60
        return _Notice(
            ctx, "handoff.customer_inactive", {}, "handoff.topic_inactive", {"minutes": minutes}
        )

    return _Change(lambda crm: _service(crm).due_inactive(cutoff), apply)


# --- topics, card, notifications ----------------------------------------------------------


async def _deliver(
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    ctx: TopicContext,
    send: Callable[[int], Awaitable[R]],
    *,
    is_card: bool = False,
) -> R | None:
    """Post into the customer's topic; when the topic is missing or was deleted by staff,
    create a new one (card re-posted and pinned) and send again. None = no staff group."""
    if not deps.settings.bot.staff_chat_id:
        return None
    if ctx.topic_id is None:
        ctx.topic_id = ctx.conversation.staff_topic_id or await _service(crm).topic_for_chat(
            ctx.chat_id
        )
        if ctx.topic_id is None:
            await _new_topic(bot, deps, crm, ctx, with_card=not is_card)
        elif ctx.conversation.staff_topic_id != ctx.topic_id:
            ctx.conversation = await _service(crm).set_topic(ctx.conversation.id, ctx.topic_id)
    assert ctx.topic_id is not None
    try:
        return await send(ctx.topic_id)
    except TelegramBadRequest as exc:
        if not _thread_gone(exc):
            raise
        log.warning("staff topic %s of conversation #%s is gone", ctx.topic_id, ctx.conversation.id)
    await _new_topic(bot, deps, crm, ctx, with_card=not is_card, recreated=True)
    assert ctx.topic_id is not None
    return await send(ctx.topic_id)


async def _new_topic(
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    ctx: TopicContext,
    *,
    with_card: bool,
    recreated: bool = False,
) -> None:
    topic = await _create_topic(bot, deps, ctx.customer)
    if topic is None:
        raise StaffTopicUnavailable(f"no staff topic for conversation #{ctx.conversation.id}")
    ctx.topic_id = topic
    ctx.conversation = await _service(crm).set_topic(ctx.conversation.id, topic)
    staff_chat = deps.settings.bot.staff_chat_id
    if recreated:
        await bot.send_message(
            staff_chat, _staff_t(deps)("handoff.topic_recreated"), message_thread_id=topic
        )
    if with_card:
        await _card_sender(bot, deps, crm, ctx)(topic)


async def _create_topic(bot: Bot, deps: BotDeps, customer: CustomerDTO) -> int | None:
    name = f"{customer.name} · #{customer.id} · {customer.language}"[:TOPIC_NAME_MAX]
    try:
        created = await bot.create_forum_topic(deps.settings.bot.staff_chat_id, name)
    except TelegramAPIError:
        log.exception("could not create a staff topic for customer #%s", customer.id)
        return None
    return created.message_thread_id


def _card_sender(
    bot: Bot, deps: BotDeps, crm: CrmServices, ctx: TopicContext
) -> Callable[[int], Awaitable[Message]]:
    async def send(topic: int) -> Message:
        text = await render_card(deps, crm, ctx)
        staff_chat = deps.settings.bot.staff_chat_id
        message = await bot.send_message(staff_chat, text, message_thread_id=topic)
        try:
            await bot.pin_chat_message(staff_chat, message.message_id, disable_notification=True)
        except TelegramBadRequest as exc:
            if _thread_gone(exc):
                raise
            log.warning("could not pin the customer card: %s", exc.message)
        except TelegramForbiddenError as exc:
            log.warning("could not pin the customer card: %s", exc.message)
        return message

    return send


async def render_card(deps: BotDeps, crm: CrmServices, ctx: TopicContext) -> str:
    """The customer card for the staff topic: identity, language, devices with warranty, open
    tickets, why it was handed off, the last messages. Reading the record is audited."""
    st = _staff_t(deps)
    settings = deps.settings.handoff
    svc = _service(crm)
    info = await svc.last_request(ctx.conversation.id) or HandoffRequestInfo(reason="—")
    customer = await crm.customers.get_customer_as(
        AUDIT_ACTOR, ctx.customer.id, reason=f"handoff card ({info.reason})"
    )
    dash = "—"
    lines = [
        st("handoff.card_title", name=customer.name, id=customer.id),
        st(
            "handoff.card_request",
            reason=info.reason,
            intent=info.intent or dash,
            category=info.category or dash,
            team=info.team or dash,
        ),
        st(
            "handoff.card_identity",
            language=customer.language,
            type=customer.customer_type,
            stage=customer.lifecycle_stage,
            company=customer.company_name or dash,
        ),
        st(
            "handoff.card_contact",
            phone=customer.phone or dash,
            email=customer.email or dash,
            telegram=customer.telegram_user_id or dash,
        ),
    ]
    devices = await crm.warranties.warranty_for_customer(customer.id)
    if devices:
        lines.append(st("handoff.card_devices", count=len(devices)))
        for device in devices[: settings.card_devices]:
            product = device.product_name_zh if st.lang == "zh" else device.product_name_en
            lines.append(
                st(
                    "handoff.card_device",
                    product=product,
                    serial=device.serial_number or device.order_number,
                    status=device.status.value,
                    ends_on=device.ends_on.isoformat(),
                )
            )
    else:
        lines.append(st("handoff.card_no_devices"))
    tickets = [t for t in await crm.tickets.list_for_customer(customer.id) if is_open(t)]
    if tickets:
        lines.append(st("handoff.card_tickets"))
        for ticket in tickets[:5]:
            lines.append(
                st(
                    "handoff.card_ticket",
                    number=ticket.ticket_number,
                    status=ticket.status,
                    priority=ticket.priority,
                    subject=_clip(ticket.subject),
                )
            )
    else:
        lines.append(st("handoff.card_no_tickets"))
    messages = await svc.recent_messages(ctx.conversation.id, settings.card_messages)
    if messages:
        lines.append(st("handoff.card_messages"))
        for m in messages:
            key = (
                "handoff.card_message_in"
                if m.direction == "inbound"
                else "handoff.card_message_out"
            )
            lines.append(st(key, text=_clip(m.text)))
    else:
        lines.append(st("handoff.card_no_messages"))
    lines.append(st("handoff.card_commands"))
    return truncate_html("\n".join(lines), CARD_MAX_CHARS)


async def _notify_team(
    bot: Bot, deps: BotDeps, crm: CrmServices, ctx: TopicContext, team: HandoffTeam | None
) -> None:
    """Mention the team's agents in the topic; DM them too when configured (agents who never
    started the bot cannot be messaged — that is skipped silently)."""
    st = _staff_t(deps)
    staff = await crm.staff.list_staff()
    members = [
        s
        for s in (find_staff(staff, str(m)) for m in (team.members if team else []))
        if s is not None and s.role in AGENT_ROLES and s.telegram_user_id
    ]
    team_name = team.name if team else "—"
    if members:
        mentions = Html(", ").join_html(
            html_link(m.name, f"tg://user?id={m.telegram_user_id}") for m in members
        )
        text = st("handoff.topic_queued", team=team_name, mentions=mentions)
    else:
        text = st("handoff.topic_queued_nobody", team=team_name)
    await _deliver(
        bot,
        deps,
        crm,
        ctx,
        lambda topic: bot.send_message(
            deps.settings.bot.staff_chat_id, text, message_thread_id=topic
        ),
    )
    if not deps.settings.handoff.notify_by_dm:
        return
    info = await _service(crm).last_request(ctx.conversation.id)
    link = _topic_link(deps.settings.bot.staff_chat_id, ctx.topic_id)
    for member in members:
        assert member.telegram_user_id is not None
        dm = st(
            "handoff.agent_dm",
            team=team.name if team else "—",
            customer=ctx.customer.name,
            reason=info.reason if info else "—",
            link=link,
        )
        with contextlib.suppress(TelegramForbiddenError, TelegramBadRequest):
            await bot.send_message(member.telegram_user_id, dm)


# --- helpers --------------------------------------------------------------------------------


def _desk(bot: Bot, deps: BotDeps, crm: CrmServices) -> AgentDesk:
    return desk_for(bot, deps.settings, deps.translator, crm)


async def _answer(bot: Bot, deps: BotDeps, ctx: TopicContext, result: DeskResult) -> None:
    """Show the acting agent the desk's reply (refusal or acknowledgement) in the topic."""
    if result.reply is not None:
        text = _staff_t(deps)(result.reply.key, **result.reply.params)
        await _reply_in_topic(bot, deps, ctx, text)


async def _reply_in_topic(bot: Bot, deps: BotDeps, ctx: TopicContext, text: str) -> None:
    await bot.send_message(deps.settings.bot.staff_chat_id, text, message_thread_id=ctx.topic_id)


def _service(crm: CrmServices) -> HandoffService:
    return HandoffService(crm.session, crm.clock)


def _staff_t(deps: BotDeps) -> Texts:
    return Texts(deps.translator, deps.settings.handoff.staff_language)


def _cancel_keyboard(t: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=t("handoff.cancel_button"), callback_data=CANCEL_CALLBACK)]
        ]
    )


async def _post_quietly(
    bot: Bot, deps: BotDeps, crm: CrmServices, ctx: TopicContext, text: str
) -> None:
    """A notice in the customer's topic (recreated when deleted); failures are only logged."""
    staff_chat = deps.settings.bot.staff_chat_id
    try:
        await _deliver(
            bot,
            deps,
            crm,
            ctx,
            lambda topic: bot.send_message(staff_chat, text, message_thread_id=topic),
        )
    except QUIET_ERRORS:
        log.exception("could not post in the staff topic of conversation #%s", ctx.conversation.id)


async def _context(crm: CrmServices, conv: ConversationDTO) -> TopicContext | None:
    if conv.customer_id is None:
        return None
    customer = await crm.customers.get_customer(conv.customer_id)
    return TopicContext(conv, customer, conv.staff_topic_id)


def _expected_wait(deps: BotDeps, info: HandoffRequestInfo | None) -> int:
    settings = deps.settings.handoff
    team = next((t for t in settings.teams if info and t.name == info.team), None)
    if team is not None and team.expected_wait_minutes:
        return team.expected_wait_minutes
    return settings.expected_wait_minutes


def _topic_link(staff_chat_id: int, topic_id: int | None) -> str:
    raw = str(staff_chat_id)
    if topic_id is None or not raw.startswith("-100"):
        return ""
    return f"https://t.me/c/{raw[4:]}/{topic_id}"


def _thread_gone(exc: TelegramBadRequest) -> bool:
    text = (exc.message or "").lower()
    return "thread not found" in text or "topic_deleted" in text or "topic_id_invalid" in text


def _clip(text: str, limit: int = CARD_LINE_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_message(message: Message) -> str:
    """A text for the interaction log: the text/caption, with the kind of media in front."""
    body = message.text or message.caption or ""
    kinds = (
        ("photo", message.photo),
        ("document", message.document),
        ("video", message.video),
        ("voice", message.voice),
        ("audio", message.audio),
        ("sticker", message.sticker),
        ("animation", message.animation),
        ("video_note", message.video_note),
        ("contact", message.contact),
        ("location", message.location),
    )
    kind = next((name for name, value in kinds if value), None)
    if kind == "document" and message.document and message.document.file_name:
        kind = f"document: {message.document.file_name}"
    if kind is None:
        return body or "[message]"
    return f"[{kind}] {body}".strip()

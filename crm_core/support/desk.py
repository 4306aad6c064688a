"""The agent desk: every action an agent takes on a handed-off conversation, once.

The Telegram staff group (`bot.routers.staff` → `bot.handoff`) and the web console are two
thin callers of `AgentDesk`; neither holds orchestration of its own, so both inboxes always
agree. Ownership itself is `crm_core.conversations.handoff` (transition table, one conditional
UPDATE per change) — this module decides what happens around a change: who is told what.

Delivery goes through a small port, `DeskNotifier`: tell the customer (a locale key, in the
customer's language), send the agent's own words to the customer, ask for the rating, post a
notice in the conversation's staff topic, notify an agent. Texts are locale keys plus
parameters; the notifier translates them (customer texts in the customer's language, staff
texts in the staff language). Outbound customer messages are logged by the sender (the bot's
outbound logging), not here, so a message is logged exactly once whoever sent it.

Every action returns a `DeskResult`: `ok`, and `reply` — what to show the acting agent only
(a refusal with its reason, or an acknowledgement). Notices that everybody on the
conversation should see (claimed, released, closed, transferred, ticket moved) are posted
through the port by the desk itself, so a claim in the console shows in the Telegram topic.

Nothing here commits (the caller's unit of work does).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.conversations.handoff import AGENT_ROLES, HandoffService
from crm_core.conversations.handoff_schemas import Owner
from crm_core.conversations.models import Conversation
from crm_core.conversations.schemas import ConversationDTO
from crm_core.customers.models import Customer
from crm_core.customers.schemas import CustomerDTO
from crm_core.errors import DomainError, InvalidTransition, NotFound
from crm_core.services import CrmServices
from crm_core.staff.models import StaffUser
from crm_core.staff.schemas import StaffDTO
from crm_core.tickets.schemas import TicketDTO
from crm_core.tickets.state_machine import DONE_STATES, TRANSITIONS, TicketStatus, allowed_targets


@dataclass
class ChatContext:
    """A customer's open conversation and its staff-group topic (None: no topic yet)."""

    conversation: ConversationDTO
    customer: CustomerDTO
    topic_id: int | None

    @property
    def chat_id(self) -> int:
        chat = self.conversation.chat_id
        return chat if chat is not None else int(self.customer.telegram_user_id or 0)


@dataclass(frozen=True)
class Notice:
    """A text to show somebody: a locale key and its parameters."""

    key: str
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DeskResult:
    """What an agent action did. `reply` is for the acting agent only (None: nothing)."""

    ok: bool
    reply: Notice | None = None
    conversation: ConversationDTO | None = None
    ticket: TicketDTO | None = None


class CannedLike(Protocol):
    """A canned reply as configured (`app.settings.CannedReply`)."""

    @property
    def zh(self) -> str: ...
    @property
    def en(self) -> str: ...


class DeskNotifier(Protocol):
    """How the desk reaches people (Telegram for the bot; Telegram + live updates for the
    console)."""

    async def tell_customer(self, ctx: ChatContext, notice: Notice) -> bool:
        """A locale text to the customer, in their language. False: they blocked the bot."""
        ...

    async def send_agent_message(
        self, ctx: ChatContext, agent: StaffDTO, text: str, content: object | None = None
    ) -> bool:
        """The agent's own words to the customer (`content`: a delivery-specific original to
        copy, e.g. a Telegram message with a photo). False: the customer blocked the bot."""
        ...

    async def ask_for_rating(self, ctx: ChatContext, ticket_number: str | None) -> None:
        """The 1-5 satisfaction survey, after a conversation was closed."""
        ...

    async def post_in_topic(self, ctx: ChatContext, notice: Notice) -> None:
        """A staff notice in the conversation's staff topic (everyone on it sees it)."""
        ...

    async def notify_agent(self, agent: StaffDTO, notice: Notice) -> None:
        """A personal notice to one agent (e.g. a conversation was transferred to them)."""
        ...


class NoDelivery:
    """A notifier for a desk that cannot reach anybody (no bot configured): reads work,
    any action that would tell someone is refused with the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def _refuse(self) -> NoReturn:
        raise DomainError(self.reason)

    async def tell_customer(self, ctx: ChatContext, notice: Notice) -> bool:
        self._refuse()

    async def send_agent_message(
        self, ctx: ChatContext, agent: StaffDTO, text: str, content: object | None = None
    ) -> bool:
        self._refuse()

    async def ask_for_rating(self, ctx: ChatContext, ticket_number: str | None) -> None:
        self._refuse()

    async def post_in_topic(self, ctx: ChatContext, notice: Notice) -> None:
        self._refuse()

    async def notify_agent(self, agent: StaffDTO, notice: Notice) -> None:
        self._refuse()


class AgentDesk:
    """Claim, reply, note, canned reply, transfer, return to the bot, close, ticket change."""

    def __init__(
        self,
        crm: CrmServices,
        notifier: DeskNotifier,
        canned: Mapping[str, CannedLike] | None = None,
    ) -> None:
        self._crm = crm
        self._notify = notifier
        self._canned = dict(canned or {})
        self._handoff = HandoffService(crm.session, crm.clock)

    # --- context ---------------------------------------------------------------------------

    async def context(self, conversation_id: int) -> ChatContext:
        """The conversation (NotFound when it has no customer) with its customer and topic."""
        conversation = await self._handoff.get(conversation_id)
        if conversation.customer_id is None:
            raise NotFound(f"conversation #{conversation_id} has no customer")
        customer = await self._crm.customers.get_customer(conversation.customer_id)
        return ChatContext(conversation, customer, conversation.staff_topic_id)

    async def refresh(self, ctx: ChatContext) -> ChatContext:
        """Reload the conversation of `ctx` (another inbox may have changed it)."""
        ctx.conversation = await self._handoff.get(ctx.conversation.id)
        return ctx

    # --- actions ---------------------------------------------------------------------------

    async def claim(self, agent: StaffDTO, ctx: ChatContext) -> DeskResult:
        """The agent takes the conversation from the queue (one that is back with the bot is
        queued and claimed in one go). Losing a race names the owner."""
        conv = ctx.conversation
        if conv.owner == Owner.AGENT:
            return self._refused(await self._owner_notice(conv, agent), ctx)
        if conv.owner == Owner.BOT:
            conv = await self._handoff.request(conv.id, reason="agent_takeover")
        try:
            ctx.conversation = await self._handoff.claim(conv.id, agent.id)
        except InvalidTransition:
            latest = await self._handoff.get(conv.id)
            return self._refused(await self._owner_notice(latest, agent), ctx)
        await self._announce_claim(ctx, agent)
        return DeskResult(True, conversation=ctx.conversation)

    async def reply(
        self, agent: StaffDTO, ctx: ChatContext, text: str, content: object | None = None
    ) -> DeskResult:
        """The agent's message to the customer — when they own the conversation (writing in
        a queued one claims it)."""
        if content is None and not (text or "").strip():
            return self._refused(Notice("handoff.topic_reply_empty"), ctx)
        refusal = await self._may_write(agent, ctx)
        if refusal is not None:
            return refusal
        if not await self._notify.send_agent_message(ctx, agent, text, content):
            return self._refused(Notice("handoff.topic_customer_blocked"), ctx)
        return DeskResult(True, conversation=ctx.conversation)

    async def canned(self, agent: StaffDTO, ctx: ChatContext, name: str) -> DeskResult:
        """A configured reply, in the customer's language."""
        key = (name or "").strip().lower()
        if key not in self._canned:
            names = ", ".join(sorted(self._canned)) or "—"
            return self._refused(Notice("handoff.topic_canned_usage", {"names": names}), ctx)
        refusal = await self._may_write(agent, ctx)
        if refusal is not None:
            return refusal
        reply = self._canned[key]
        text = reply.zh if ctx.customer.language == "zh" else reply.en
        if not await self._notify.send_agent_message(ctx, agent, text):
            return self._refused(Notice("handoff.topic_customer_blocked"), ctx)
        return DeskResult(
            True,
            Notice("handoff.topic_canned_sent", {"name": key, "text": text}),
            ctx.conversation,
        )

    def canned_names(self) -> list[str]:
        """The configured canned replies' names, sorted."""
        return sorted(self._canned)

    def canned_text(self, name: str, lang: str) -> str | None:
        """A canned reply's text in `lang`, or None when there is no such reply."""
        reply = self._canned.get(name)
        if reply is None:
            return None
        return reply.zh if lang == "zh" else reply.en

    async def note(self, agent: StaffDTO, ctx: ChatContext, text: str) -> DeskResult:
        """A private note on the conversation; never sent to the customer."""
        if not (text or "").strip():
            return self._refused(Notice("handoff.topic_note_usage"), ctx)
        try:
            await self._handoff.add_note(ctx.conversation.id, agent.id, text)
        except DomainError as exc:
            return self._refused(Notice("handoff.topic_error", {"error": str(exc)}), ctx)
        return DeskResult(True, Notice("handoff.topic_note_saved"), ctx.conversation)

    async def transfer(self, agent: StaffDTO, ctx: ChatContext, who: str) -> DeskResult:
        """Hand the conversation to another agent (by login or staff id)."""
        who = (who or "").strip().lstrip("@")
        if not who:
            return self._refused(Notice("handoff.topic_transfer_usage"), ctx)
        target = find_staff(await self._crm.staff.list_staff(), who)
        if target is None or target.role not in AGENT_ROLES:
            return self._refused(Notice("handoff.topic_unknown_agent", {"who": who}), ctx)
        try:
            ctx.conversation = await self._handoff.transfer(
                ctx.conversation.id, to_staff_id=target.id, by_staff_id=agent.id
            )
        except DomainError as exc:
            return self._refused(Notice("handoff.topic_error", {"error": str(exc)}), ctx)
        await self._notify.tell_customer(
            ctx, Notice("handoff.customer_transferred", {"agent": target.name})
        )
        await self._notify.post_in_topic(
            ctx, Notice("handoff.topic_transferred", {"by": agent.name, "agent": target.name})
        )
        await self._notify.notify_agent(
            target,
            Notice(
                "handoff.agent_transferred_dm",
                {"by": agent.name, "customer": ctx.customer.name},
            ),
        )
        return DeskResult(True, conversation=ctx.conversation)

    async def release(self, agent: StaffDTO, ctx: ChatContext) -> DeskResult:
        """The conversation goes back to the bot; the customer is told."""
        try:
            ctx.conversation = await self._handoff.release(ctx.conversation.id, agent.id)
        except InvalidTransition:
            return self._refused(Notice("handoff.topic_not_handed_off"), ctx)
        await self._notify.tell_customer(ctx, Notice("handoff.customer_back_to_bot"))
        await self._notify.post_in_topic(
            ctx, Notice("handoff.topic_released", {"agent": agent.name})
        )
        return DeskResult(True, conversation=ctx.conversation)

    async def close(self, agent: StaffDTO, ctx: ChatContext) -> DeskResult:
        """Resolve the ticket opened during this conversation (if any), thank the customer,
        ask for a 1-5 rating and close the conversation (back to the bot)."""
        conv = ctx.conversation
        if conv.owner == Owner.BOT:
            return self._refused(Notice("handoff.topic_not_handed_off"), ctx)
        ticket = await self._resolve_conversation_ticket(ctx, agent)
        # Told before the conversation is closed, so that these messages are logged in it.
        await self._notify.tell_customer(ctx, Notice("handoff.customer_closed"))
        await self._notify.ask_for_rating(ctx, ticket.ticket_number if ticket else None)
        try:
            ctx.conversation = await self._handoff.close(conv.id, agent.id)
        except InvalidTransition as exc:
            return self._refused(Notice("handoff.topic_error", {"error": str(exc)}), ctx)
        if ticket is not None:
            notice = Notice(
                "handoff.topic_closed_ticket", {"agent": agent.name, "ticket": ticket.ticket_number}
            )
        else:
            notice = Notice("handoff.topic_closed", {"agent": agent.name})
        await self._notify.post_in_topic(ctx, notice)
        return DeskResult(True, conversation=ctx.conversation, ticket=ticket)

    async def change_ticket(
        self,
        agent: StaffDTO,
        ctx: ChatContext,
        status: str | None,
        *,
        ticket_number: str | None = None,
        note: str | None = None,
    ) -> DeskResult:
        """Move the customer's latest open ticket (or the named one of theirs) along the
        ticket state machine. Without a status: the allowed next states (reply only)."""
        ticket: TicketDTO | None
        if ticket_number is not None:
            try:
                ticket = await self._crm.tickets.get_for_customer(ticket_number, ctx.customer.id)
            except NotFound as exc:
                return self._refused(Notice("handoff.topic_error", {"error": str(exc)}), ctx)
        else:
            ticket = await self.latest_open_ticket(ctx.customer.id)
        if ticket is None:
            return self._refused(Notice("handoff.topic_ticket_none"), ctx)
        if not status:
            allowed = ", ".join(s.value for s in allowed_targets(ticket.status)) or "—"
            usage = Notice(
                "handoff.topic_ticket_usage",
                {"ticket": ticket.ticket_number, "status": ticket.status, "allowed": allowed},
            )
            return DeskResult(False, usage, ctx.conversation, ticket)
        try:
            moved = await self._crm.tickets.transition(
                ticket.ticket_number, status.lower(), actor=agent.actor, note=note or None
            )
        except DomainError as exc:
            invalid = Notice(
                "handoff.topic_ticket_invalid", {"ticket": ticket.ticket_number, "error": str(exc)}
            )
            return DeskResult(False, invalid, ctx.conversation, ticket)
        await self._notify.post_in_topic(
            ctx,
            Notice(
                "handoff.topic_ticket_moved",
                {"ticket": moved.ticket_number, "old": ticket.status, "new": moved.status},
            ),
        )
        return DeskResult(True, conversation=ctx.conversation, ticket=moved)

    async def latest_open_ticket(self, customer_id: int) -> TicketDTO | None:
        """The customer's most recent ticket that is not resolved/closed, or None."""
        return next(
            (t for t in await self._crm.tickets.list_for_customer(customer_id) if is_open(t)),
            None,
        )

    # --- internals -------------------------------------------------------------------------

    async def _announce_claim(self, ctx: ChatContext, agent: StaffDTO) -> None:
        await self._notify.tell_customer(
            ctx, Notice("handoff.customer_claimed", {"agent": agent.name})
        )
        await self._notify.post_in_topic(
            ctx, Notice("handoff.topic_claimed", {"agent": agent.name})
        )

    async def _may_write(self, agent: StaffDTO, ctx: ChatContext) -> DeskResult | None:
        """None when the agent may write to the customer (they own the conversation, or it
        is queued and writing claims it); else the refusal."""
        conv = ctx.conversation
        if conv.owner == Owner.AGENT and conv.agent_staff_id == agent.id:
            return None
        if conv.owner == Owner.QUEUED:
            try:
                ctx.conversation = await self._handoff.claim(conv.id, agent.id)
            except InvalidTransition:
                latest = await self._handoff.get(conv.id)
                return self._refused(await self._owner_notice(latest, agent), ctx)
            await self._announce_claim(ctx, agent)
            return None
        if conv.owner == Owner.BOT:
            return self._refused(Notice("handoff.topic_not_handed_off"), ctx)
        return self._refused(await self._owner_notice(conv, agent), ctx)

    async def _owner_notice(self, conv: ConversationDTO, agent: StaffDTO) -> Notice:
        if conv.owner != Owner.AGENT or conv.agent_staff_id is None:
            return Notice("handoff.topic_not_handed_off")
        if conv.agent_staff_id == agent.id:
            return Notice("handoff.topic_already_yours")
        owner = await self._crm.staff.find(conv.agent_staff_id)
        return Notice("handoff.topic_already_claimed", {"agent": owner.name if owner else "?"})

    @staticmethod
    def _refused(notice: Notice, ctx: ChatContext) -> DeskResult:
        return DeskResult(False, notice, ctx.conversation)

    async def _resolve_conversation_ticket(
        self, ctx: ChatContext, agent: StaffDTO
    ) -> TicketDTO | None:
        """Resolve the customer's open ticket opened during this conversation (the shortest
        path the ticket state machine allows, each step recorded with the agent as actor)."""
        started = ctx.conversation.started_at
        ticket = next(
            (
                t
                for t in await self._crm.tickets.list_for_customer(ctx.customer.id)
                if is_open(t) and t.created_at >= started
            ),
            None,
        )
        if ticket is None:
            return None
        path = path_to(TicketStatus(ticket.status), TicketStatus.RESOLVED)
        note = f"resolved when {agent.name} closed the conversation"
        for step in path:
            ticket = await self._crm.tickets.transition(
                ticket.ticket_number,
                step.value,
                actor=agent.actor,
                note=note if step is TicketStatus.RESOLVED else None,
            )
        return ticket if path else None


def path_to(start: TicketStatus, goal: TicketStatus) -> list[TicketStatus]:
    """Shortest list of states leading from `start` to `goal` ([] when none or already)."""
    queue: deque[tuple[TicketStatus, list[TicketStatus]]] = deque([(start, [])])
    seen = {start}
    while queue:
        state, path = queue.popleft()
        if state == goal:
            return path
        for nxt in sorted(TRANSITIONS.get(state, frozenset())):
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, [*path, nxt]))
    return []


def find_staff(staff: Sequence[StaffDTO], who: str) -> StaffDTO | None:
    """A staff member by id ("3") or login ("wang.fang")."""
    for member in staff:
        if (who.isdigit() and member.id == int(who)) or (member.login and member.login == who):
            return member
    return None


def is_open(ticket: TicketDTO) -> bool:
    """Whether a ticket is still being worked on (not resolved or closed)."""
    return ticket.status not in {s.value for s in DONE_STATES}


@dataclass(frozen=True)
class InboxRow:
    """One handed-off conversation in the inbox."""

    conversation_id: int
    customer_id: int | None
    customer_name: str
    language: str
    owner: str
    agent_staff_id: int | None
    agent_name: str | None
    queued_at: datetime | None
    last_activity_at: datetime | None


async def inbox(session: AsyncSession, limit: int = 200) -> list[InboxRow]:
    """Open conversations waiting for an agent (longest waiting first), then those with an
    agent (most recently active first)."""
    rows = (
        await session.execute(
            select(Conversation, Customer.name, Customer.language, StaffUser.name)
            .outerjoin(Customer, Customer.id == Conversation.customer_id)
            .outerjoin(StaffUser, StaffUser.id == Conversation.agent_staff_id)
            .where(
                Conversation.closed_at.is_(None),
                Conversation.owner.in_([Owner.QUEUED.value, Owner.AGENT.value]),
            )
            .order_by(Conversation.owner.desc(), Conversation.queued_at, Conversation.id)
            .limit(limit)
        )
    ).all()
    out = [
        InboxRow(
            conversation_id=conv.id,
            customer_id=conv.customer_id,
            customer_name=name or "?",
            language=language or "en",
            owner=conv.owner,
            agent_staff_id=conv.agent_staff_id,
            agent_name=agent,
            queued_at=conv.queued_at,
            last_activity_at=conv.last_activity_at,
        )
        for conv, name, language, agent in rows
    ]
    return out

"""Who owns a conversation — the bot, the queue or an agent — as an explicit state machine.

    bot ──request──▶ queued ──claim──▶ agent(id) ──transfer──▶ agent(other id)
     ▲                 │                  │
     │  cancel, queue_timeout,            │  release (/bot), close (/close),
     └──── release, close ◀───────────────┘  inactivity (sweeper)

The table `TRANSITIONS` is the whole truth; anything else raises InvalidTransition naming the
current owner. Every transition is one conditional UPDATE (`... WHERE owner IN (<allowed
from>)`) whose row count decides who won, so two agents claiming at once cannot both get the
conversation (PostgreSQL re-checks the WHERE after the row lock is released; SQLite serialises
writers) — no read-then-write window. Each transition is logged as an `event` interaction
(`handoff.<event> {json}`), which is also where the request's reason/intent/team and the
"customer was told the expected wait" marker live, so no extra columns are needed.

While a conversation is queued or agent-owned the bot does not answer; the customer's
messages are only recorded (`record_customer_message`) and relayed by the delivery layer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import ColumnElement, CursorResult, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import Clock
from crm_core.conversations.handoff_schemas import HandoffEvent, HandoffRequestInfo, Owner
from crm_core.conversations.models import Conversation, Interaction
from crm_core.conversations.schemas import ConversationDTO, InteractionDTO
from crm_core.conversations.service import ConversationService
from crm_core.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from crm_core.staff.models import StaffUser

AGENT_ROLES = ("agent", "admin")
EVENT_PREFIX = "handoff."
WAIT_NOTIFIED = "handoff.wait_notified"
NOTE_PREFIX = "note: "
MAX_NOTE_CHARS = 4_000


# event → (owners it may start from, owner it leads to)
TRANSITIONS: MappingProxyType[HandoffEvent, tuple[frozenset[Owner], Owner]] = MappingProxyType(
    {
        HandoffEvent.REQUEST: (frozenset({Owner.BOT}), Owner.QUEUED),
        HandoffEvent.CLAIM: (frozenset({Owner.QUEUED}), Owner.AGENT),
        HandoffEvent.TRANSFER: (frozenset({Owner.AGENT}), Owner.AGENT),
        HandoffEvent.CANCEL: (frozenset({Owner.QUEUED}), Owner.BOT),
        HandoffEvent.QUEUE_TIMEOUT: (frozenset({Owner.QUEUED}), Owner.BOT),
        HandoffEvent.RELEASE: (frozenset({Owner.QUEUED, Owner.AGENT}), Owner.BOT),
        HandoffEvent.CLOSE: (frozenset({Owner.QUEUED, Owner.AGENT}), Owner.BOT),
        HandoffEvent.INACTIVITY: (frozenset({Owner.AGENT}), Owner.BOT),
    }
)


def allowed_events(owner: str) -> list[HandoffEvent]:
    """The events that may happen to a conversation with this owner, in table order."""
    return [event for event, (sources, _) in TRANSITIONS.items() if owner in sources]


class TeamLike(Protocol):
    """A routing team as configured (see `app.settings.HandoffTeam`)."""

    @property
    def name(self) -> str: ...
    @property
    def intents(self) -> Sequence[str]: ...
    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def languages(self) -> Sequence[str]: ...


T = TypeVar("T", bound=TeamLike)


def route_team(
    teams: Sequence[T],
    *,
    intent: str | None,
    category: str | None,
    lang: str | None,
    default: str | None = None,
) -> T | None:
    """The team for a handoff: among teams whose every non-empty criterion (intents,
    categories, languages) matches, the most specific one (most criteria); ties go to the
    first in configuration order. None matching → the team named `default`, else None."""
    best: T | None = None
    best_score = -1
    for team in teams:
        score = 0
        for wanted, value in (
            (team.intents, intent),
            (team.categories, category),
            (team.languages, lang),
        ):
            if not wanted:
                continue
            if value is None or value not in wanted:
                score = -1
                break
            score += 1
        if score > best_score:
            best, best_score = team, score
    if best is not None:
        return best
    return next((t for t in teams if t.name == default), None)


class HandoffService:
    """Ownership changes of conversations, and the queries the relay and the sweeper need.

    Nothing here commits (the caller's unit of work does).
    """

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock
        self._conversations = ConversationService(session, clock)

    # --- reads -----------------------------------------------------------------------------

    async def current(self, chat_id: int, channel: str = "telegram") -> ConversationDTO | None:
        """The open conversation of a chat, or None (never creates one)."""
        row = await self._session.scalar(
            select(Conversation)
            .where(
                Conversation.chat_id == chat_id,
                Conversation.channel == channel,
                Conversation.closed_at.is_(None),
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        return None if row is None else ConversationDTO.model_validate(row)

    async def get(self, conversation_id: int) -> ConversationDTO:
        return ConversationDTO.model_validate(await self._load(conversation_id))

    async def conversation_for_topic(self, topic_id: int) -> ConversationDTO | None:
        """The latest conversation that uses this staff-group topic, or None."""
        row = await self._session.scalar(
            select(Conversation)
            .where(Conversation.staff_topic_id == topic_id)
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        return None if row is None else ConversationDTO.model_validate(row)

    async def topic_for_chat(self, chat_id: int, channel: str = "telegram") -> int | None:
        """The staff topic last used for this chat (one topic per customer, reused)."""
        value = await self._session.scalar(
            select(Conversation.staff_topic_id)
            .where(
                Conversation.chat_id == chat_id,
                Conversation.channel == channel,
                Conversation.staff_topic_id.is_not(None),
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        return None if value is None else int(value)

    async def last_request(self, conversation_id: int) -> HandoffRequestInfo | None:
        """Why the conversation was last queued (reason, intent, category, team)."""
        row = await self._session.scalar(
            select(Interaction)
            .where(
                Interaction.conversation_id == conversation_id,
                Interaction.direction == "event",
                Interaction.text.like(f"{EVENT_PREFIX}{HandoffEvent.REQUEST.value} %"),
            )
            .order_by(Interaction.created_at.desc(), Interaction.id.desc())
            .limit(1)
        )
        if row is None:
            return None
        details = _details(row.text)
        return HandoffRequestInfo(
            reason=str(details.get("reason") or ""),
            intent=row.intent,
            category=details.get("category"),
            team=details.get("team"),
        )

    async def queue_position(self, conversation_id: int) -> int:
        """1 for the conversation waiting longest, 2 for the next, ... (0 when not queued)."""
        conversation = await self._load(conversation_id)
        if conversation.owner != Owner.QUEUED or conversation.queued_at is None:
            return 0
        ahead = await self._session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(
                Conversation.owner == Owner.QUEUED.value,
                Conversation.closed_at.is_(None),
                or_(
                    Conversation.queued_at < conversation.queued_at,
                    and_(
                        Conversation.queued_at == conversation.queued_at,
                        Conversation.id < conversation.id,
                    ),
                ),
            )
        )
        return int(ahead or 0) + 1

    async def recent_messages(self, conversation_id: int, limit: int = 10) -> list[InteractionDTO]:
        """The last `limit` inbound/outbound messages (no events) of a conversation, oldest
        first."""
        rows = list(
            (
                await self._session.scalars(
                    select(Interaction)
                    .where(
                        Interaction.conversation_id == conversation_id,
                        Interaction.direction != "event",
                    )
                    .order_by(Interaction.created_at.desc(), Interaction.id.desc())
                    .limit(limit)
                )
            ).all()
        )
        rows.reverse()
        return [InteractionDTO.model_validate(r) for r in rows]

    async def agent(self, telegram_user_id: int) -> StaffUser | None:
        """The active staff member with an agent (or admin) role behind a Telegram account."""
        return cast(
            StaffUser | None,
            await self._session.scalar(
                select(StaffUser).where(
                    StaffUser.telegram_user_id == telegram_user_id,
                    StaffUser.active.is_(True),
                    StaffUser.role.in_(AGENT_ROLES),
                )
            ),
        )

    # --- transitions -----------------------------------------------------------------------

    async def request(
        self,
        conversation_id: int,
        *,
        reason: str,
        intent: str | None = None,
        category: str | None = None,
        team: str | None = None,
    ) -> ConversationDTO:
        """bot → queued: the customer wants a human."""
        reason = (reason or "").strip()
        if not reason:
            raise ValidationFailed("a handoff needs a reason (e.g. request_human, complaint)")
        now = self._clock.now()
        return await self._transition(
            conversation_id,
            HandoffEvent.REQUEST,
            values={"queued_at": now, "agent_staff_id": None},
            details={"reason": reason[:200], "category": category, "team": team},
            intent=intent,
        )

    async def claim(self, conversation_id: int, staff_id: int) -> ConversationDTO:
        """queued → agent: the first agent to claim wins; everyone else gets InvalidTransition
        ("already claimed by ..."). Only active staff with the agent or admin role may claim.
        """
        is_agent = exists().where(
            StaffUser.id == staff_id,
            StaffUser.active.is_(True),
            StaffUser.role.in_(AGENT_ROLES),
        )
        try:
            return await self._transition(
                conversation_id,
                HandoffEvent.CLAIM,
                values={"agent_staff_id": staff_id},
                where=[is_agent],
                staff_id=staff_id,
            )
        except InvalidTransition:
            await self._require_agent(staff_id)
            raise

    async def transfer(
        self, conversation_id: int, *, to_staff_id: int, by_staff_id: int
    ) -> ConversationDTO:
        """agent → agent: the owning agent (or an admin) hands the conversation to another
        agent."""
        by = await self._require_agent(by_staff_id)
        target = await self._require_agent(to_staff_id)
        conversation = await self._load(conversation_id)
        if conversation.owner != Owner.AGENT or conversation.agent_staff_id is None:
            raise InvalidTransition(self._describe(conversation, HandoffEvent.TRANSFER))
        current = conversation.agent_staff_id
        if by.role != "admin" and current != by.id:
            owner = await self._session.get(StaffUser, current)
            raise PermissionDenied(
                f"only {owner.name if owner else f'staff #{current}'} (the owner) or an admin "
                "can transfer this conversation"
            )
        if target.id == current:
            raise InvalidTransition(f"the conversation is already with {target.name}")
        return await self._transition(
            conversation_id,
            HandoffEvent.TRANSFER,
            values={"agent_staff_id": target.id},
            where=[Conversation.agent_staff_id == current],
            details={"from_staff_id": current, "to_staff_id": target.id},
            staff_id=by.id,
        )

    async def cancel(self, conversation_id: int) -> ConversationDTO:
        """queued → bot: the customer left the queue."""
        return await self._transition(conversation_id, HandoffEvent.CANCEL, values=_BACK_TO_BOT)

    async def release(self, conversation_id: int, staff_id: int) -> ConversationDTO:
        """queued|agent → bot: an agent gives the conversation back to the bot (/bot)."""
        await self._require_agent(staff_id)
        return await self._transition(
            conversation_id, HandoffEvent.RELEASE, values=_BACK_TO_BOT, staff_id=staff_id
        )

    async def close(self, conversation_id: int, staff_id: int) -> ConversationDTO:
        """queued|agent → bot and the conversation is closed (/close); the chat's next message
        opens a new one."""
        await self._require_agent(staff_id)
        return await self._transition(
            conversation_id,
            HandoffEvent.CLOSE,
            values={**_BACK_TO_BOT, "closed_at": self._clock.now()},
            staff_id=staff_id,
        )

    async def expire_queue(self, conversation_id: int, older_than: datetime) -> ConversationDTO:
        """queued → bot when it has been queued since before `older_than` (nobody claimed)."""
        return await self._transition(
            conversation_id,
            HandoffEvent.QUEUE_TIMEOUT,
            values=_BACK_TO_BOT,
            where=[Conversation.queued_at <= older_than],
        )

    async def expire_inactive(self, conversation_id: int, older_than: datetime) -> ConversationDTO:
        """agent → bot when nothing happened since before `older_than`."""
        return await self._transition(
            conversation_id,
            HandoffEvent.INACTIVITY,
            values=_BACK_TO_BOT,
            where=[Conversation.last_activity_at <= older_than],
        )

    # --- messages while handed off ---------------------------------------------------------

    async def record_customer_message(
        self, conversation_id: int, text: str, external_id: str | int | None = None
    ) -> ConversationDTO:
        """The customer wrote while queued or agent-owned: log it (the owner does not change;
        the delivery layer relays it to the staff topic)."""
        conversation = await self._load(conversation_id)
        if conversation.owner == Owner.BOT or conversation.closed_at is not None:
            raise InvalidTransition(
                f"conversation #{conversation_id} is with the bot; nothing to relay"
            )
        await self._conversations.log_interaction(
            conversation_id, "inbound", text, external_id=external_id
        )
        return ConversationDTO.model_validate(conversation)

    async def record_agent_message(
        self,
        conversation_id: int,
        staff_id: int,
        text: str,
        external_id: str | int | None = None,
    ) -> ConversationDTO:
        """The owning agent wrote to the customer: log it (outbound, attributed)."""
        conversation = await self.check_agent_may_write(conversation_id, staff_id)
        await self._conversations.log_interaction(
            conversation_id, "outbound", text, agent_staff_id=staff_id, external_id=external_id
        )
        return conversation

    async def check_agent_may_write(self, conversation_id: int, staff_id: int) -> ConversationDTO:
        """The conversation, when `staff_id` owns it (so may write to the customer); else
        InvalidTransition (nobody owns it) or PermissionDenied (another agent does)."""
        conversation = await self._load(conversation_id)
        if conversation.owner != Owner.AGENT or conversation.closed_at is not None:
            raise InvalidTransition(self._describe(conversation, None))
        if conversation.agent_staff_id != staff_id:
            owner = await self._session.get(StaffUser, conversation.agent_staff_id)
            raise PermissionDenied(
                f"{owner.name if owner else 'another agent'} owns this conversation"
            )
        return ConversationDTO.model_validate(conversation)

    async def add_note(self, conversation_id: int, staff_id: int, text: str) -> InteractionDTO:
        """A private staff note (never sent to the customer): an `event` interaction."""
        await self._require_agent(staff_id)
        body = (text or "").strip()
        if not body:
            raise ValidationFailed("a note needs some text: /note <text>")
        if len(body) > MAX_NOTE_CHARS:
            raise ValidationFailed(f"a note is at most {MAX_NOTE_CHARS} characters")
        return await self._conversations.log_interaction(
            conversation_id, "event", NOTE_PREFIX + body, agent_staff_id=staff_id
        )

    async def set_topic(self, conversation_id: int, topic_id: int) -> ConversationDTO:
        """Remember the staff-group topic of a conversation."""
        conversation = await self._load(conversation_id)
        conversation.staff_topic_id = topic_id
        await self._session.flush()
        return ConversationDTO.model_validate(conversation)

    # --- sweeper queries -------------------------------------------------------------------

    async def due_wait_notices(self, queued_before: datetime, limit: int = 100) -> list[int]:
        """Queued conversations waiting since before `queued_before` whose customer has not
        been told the expected wait yet (oldest first)."""
        rows = await self._session.scalars(
            select(Conversation.id)
            .where(
                Conversation.owner == Owner.QUEUED.value,
                Conversation.closed_at.is_(None),
                Conversation.queued_at <= queued_before,
                ~self._wait_notified_exists(),
            )
            .order_by(Conversation.queued_at, Conversation.id)
            .limit(limit)
        )
        return [int(r) for r in rows]

    async def take_wait_notice(self, conversation_id: int, queued_before: datetime) -> bool:
        """Lock the conversation (skipping it when another worker holds it), re-check that
        the wait notice is still due and mark it as given. True = this caller tells the
        customer (at most once per queueing)."""
        row = await self._session.scalar(
            select(Conversation.id)
            .where(
                Conversation.id == conversation_id,
                Conversation.owner == Owner.QUEUED.value,
                Conversation.closed_at.is_(None),
                Conversation.queued_at <= queued_before,
                ~self._wait_notified_exists(),
            )
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return False
        await self._conversations.log_interaction(conversation_id, "event", WAIT_NOTIFIED)
        return True

    async def due_queue_timeouts(self, queued_before: datetime, limit: int = 100) -> list[int]:
        """Queued conversations nobody claimed since before `queued_before`."""
        rows = await self._session.scalars(
            select(Conversation.id)
            .where(
                Conversation.owner == Owner.QUEUED.value,
                Conversation.closed_at.is_(None),
                Conversation.queued_at <= queued_before,
            )
            .order_by(Conversation.queued_at, Conversation.id)
            .limit(limit)
        )
        return [int(r) for r in rows]

    async def due_inactive(self, active_before: datetime, limit: int = 100) -> list[int]:
        """Agent-owned conversations with no message or event since before `active_before`."""
        rows = await self._session.scalars(
            select(Conversation.id)
            .where(
                Conversation.owner == Owner.AGENT.value,
                Conversation.closed_at.is_(None),
                Conversation.last_activity_at <= active_before,
            )
            .order_by(Conversation.last_activity_at, Conversation.id)
            .limit(limit)
        )
        return [int(r) for r in rows]

    # --- internals -------------------------------------------------------------------------

    async def _transition(
        self,
        conversation_id: int,
        event: HandoffEvent,
        *,
        values: Mapping[str, Any],
        where: Sequence[ColumnElement[bool]] = (),
        details: Mapping[str, Any] | None = None,
        intent: str | None = None,
        staff_id: int | None = None,
    ) -> ConversationDTO:
        sources, target = TRANSITIONS[event]
        result = cast(
            CursorResult[Any],
            await self._session.execute(
                update(Conversation)
                .where(
                    Conversation.id == conversation_id,
                    Conversation.owner.in_([s.value for s in sources]),
                    Conversation.closed_at.is_(None),
                    *where,
                )
                .values(owner=target.value, **values)
                .execution_options(synchronize_session=False)
            ),
        )
        conversation = await self._load(conversation_id, refresh=True)
        if result.rowcount != 1:
            raise InvalidTransition(self._describe(conversation, event))
        payload = {"by": f"staff:{staff_id}" if staff_id else None, **(details or {})}
        payload = {k: v for k, v in payload.items() if v is not None}
        await self._conversations.log_interaction(
            conversation_id,
            "event",
            f"{EVENT_PREFIX}{event.value} {json.dumps(payload, ensure_ascii=False)}",
            intent=intent,
            agent_staff_id=staff_id,
        )
        return ConversationDTO.model_validate(conversation)

    def _describe(self, conversation: Conversation, event: HandoffEvent | None) -> str:
        where = {
            Owner.BOT.value: "is with the bot",
            Owner.QUEUED.value: "is waiting in the queue",
            Owner.AGENT.value: f"is with agent staff:{conversation.agent_staff_id}",
        }.get(conversation.owner, f"has owner {conversation.owner}")
        if conversation.closed_at is not None:
            where = "is closed"
        if event is None:
            return f"conversation #{conversation.id} {where}"
        allowed = ", ".join(e.value for e in allowed_events(conversation.owner)) or "none"
        if conversation.closed_at is not None:
            allowed = "none"
        return (
            f"cannot {event.value} conversation #{conversation.id}: it {where} "
            f"(possible now: {allowed})"
        )

    def _wait_notified_exists(self) -> Any:
        return (
            exists()
            .where(
                Interaction.conversation_id == Conversation.id,
                Interaction.direction == "event",
                Interaction.text == WAIT_NOTIFIED,
                Interaction.created_at >= Conversation.queued_at,
            )
            .correlate(Conversation)
        )

    async def _require_agent(self, staff_id: int) -> StaffUser:
        staff = await self._session.get(StaffUser, staff_id)
        if staff is None:
            raise NotFound(f"no staff member #{staff_id}")
        if not staff.active:
            raise PermissionDenied(f"staff member #{staff_id} ({staff.name}) is deactivated")
        if staff.role not in AGENT_ROLES:
            raise PermissionDenied(
                f"{staff.name} is {staff.role}; only agents and admins handle conversations"
            )
        return staff

    async def _load(self, conversation_id: int, *, refresh: bool = False) -> Conversation:
        stmt = select(Conversation).where(Conversation.id == conversation_id)
        if refresh:
            stmt = stmt.execution_options(populate_existing=True)
        conversation = await self._session.scalar(stmt)
        if conversation is None:
            raise NotFound(f"no conversation #{conversation_id}")
        return conversation


_BACK_TO_BOT: Mapping[str, Any] = MappingProxyType({"agent_staff_id": None, "queued_at": None})


def _details(text: str) -> dict[str, Any]:
    _, _, raw = text.partition(" ")
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

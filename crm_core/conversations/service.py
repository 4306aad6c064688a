"""Conversations per chat, the interactions in them, and satisfaction ratings."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import Clock
from crm_core.conversations.models import (
    DIRECTIONS,
    Conversation,
    Interaction,
    SatisfactionRating,
)
from crm_core.conversations.schemas import ConversationDTO, InteractionDTO, SatisfactionDTO
from crm_core.customers.models import Customer
from crm_core.errors import NotFound, ValidationFailed
from crm_core.staff.models import StaffUser
from crm_core.tickets.models import Ticket

MAX_TEXT_CHARS = 8_000
MAX_COMMENT_CHARS = 2_000
MAX_RECENT = 500
_CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


def truncate_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` unchanged when it fits, else cut so that it plus a marker is `limit` chars long."""
    if len(text) <= limit:
        return text
    marker = f"\n[… truncated: {len(text)} characters in total]"
    return text[: limit - len(marker)] + marker


class ConversationService:
    """One open conversation per chat; every message and event logged as an interaction."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    async def open_or_get(
        self, customer_id: int | None, chat_id: int, channel: str = "telegram"
    ) -> ConversationDTO:
        """The open conversation of this chat, or a new one (owned by the bot)."""
        channel = _valid_channel(channel)
        if customer_id is not None and await self._session.get(Customer, customer_id) is None:
            raise NotFound(f"no customer #{customer_id}")
        conversation = await self._session.scalar(
            select(Conversation)
            .where(
                Conversation.chat_id == chat_id,
                Conversation.channel == channel,
                Conversation.closed_at.is_(None),
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        now = self._clock.now()
        if conversation is None:
            conversation = Conversation(
                customer_id=customer_id,
                channel=channel,
                chat_id=chat_id,
                owner="bot",
                started_at=now,
                last_activity_at=now,
            )
            self._session.add(conversation)
        elif customer_id is not None and conversation.customer_id != customer_id:
            # The chat's person became known (or was merged into a real customer record).
            conversation.customer_id = customer_id
        await self._session.flush()
        return ConversationDTO.model_validate(conversation)

    async def get(self, conversation_id: int) -> ConversationDTO:
        return ConversationDTO.model_validate(await self._load(conversation_id))

    async def close(self, conversation_id: int) -> ConversationDTO:
        """Close a conversation (idempotent); the chat's next message opens a new one."""
        conversation = await self._load(conversation_id)
        if conversation.closed_at is None:
            conversation.closed_at = self._clock.now()
            await self._session.flush()
        return ConversationDTO.model_validate(conversation)

    async def for_customer(self, customer_id: int) -> list[ConversationDTO]:
        """A customer's conversations, newest first."""
        rows = await self._session.scalars(
            select(Conversation)
            .where(Conversation.customer_id == customer_id)
            .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        )
        return [ConversationDTO.model_validate(r) for r in rows]

    async def log_interaction(
        self,
        conversation_id: int,
        direction: str,
        text: str,
        intent: str | None = None,
        confidence: float | None = None,
        kb_hits: Sequence[str] | None = None,
        agent_staff_id: int | None = None,
        external_id: str | int | None = None,
    ) -> InteractionDTO:
        """Log a message or event; over-long texts are stored truncated with a marker."""
        conversation, values = await self._interaction_values(
            conversation_id, direction, text, intent, confidence, kb_hits, agent_staff_id,
            external_id,
        )  # fmt: skip
        now = self._clock.now()
        interaction = Interaction(**values, created_at=now)
        self._session.add(interaction)
        await self._touch_loaded(conversation, direction, now)
        await self._session.flush()
        return InteractionDTO.model_validate(interaction)

    async def add_interaction(
        self,
        conversation_id: int,
        direction: str,
        text: str,
        intent: str | None = None,
        confidence: float | None = None,
        kb_hits: Sequence[str] | None = None,
        agent_staff_id: int | None = None,
        external_id: str | int | None = None,
        *,
        touch: bool = True,
    ) -> datetime:
        """`log_interaction` for the bot's hot path: the same checks and row, written with one
        INSERT (no ORM flush, nothing read back); returns the interaction's time.

        With `touch=False` the conversation's last activity and the customer's last contact
        are left alone: the caller moves them once with :meth:`touch` (a bot update logs its
        message and its replies, and touches once, before its unit of work commits)."""
        conversation, values = await self._interaction_values(
            conversation_id, direction, text, intent, confidence, kb_hits, agent_staff_id,
            external_id,
        )  # fmt: skip
        at = self._clock.now()
        await self._session.execute(insert(Interaction).values(**values, created_at=at))
        if touch:
            await self._touch_loaded(conversation, direction, at)
        return at

    async def touch(self, conversation_id: int, at: datetime, *, customer_contact: bool) -> None:
        """Move the conversation's last activity (and, with `customer_contact`, its
        customer's last contact) to `at`, as logging an interaction at `at` does."""
        conversation = await self._load(conversation_id)
        await self._touch_loaded(conversation, "inbound" if customer_contact else "event", at)

    async def _touch_loaded(self, conversation: Conversation, direction: str, at: datetime) -> None:
        conversation.last_activity_at = at
        if direction != "event" and conversation.customer_id is not None:
            customer = await self._session.get(Customer, conversation.customer_id)
            if customer is not None:
                customer.last_contact_at = at

    async def _interaction_values(
        self,
        conversation_id: int,
        direction: str,
        text: str,
        intent: str | None,
        confidence: float | None,
        kb_hits: Sequence[str] | None,
        agent_staff_id: int | None,
        external_id: str | int | None,
    ) -> tuple[Conversation, dict[str, object]]:
        """The checked column values of a new interaction but its time (and its loaded
        conversation)."""
        if direction not in DIRECTIONS:
            raise ValidationFailed(
                f"unknown direction {direction!r}; one of {', '.join(DIRECTIONS)}"
            )
        if intent is not None and (not intent.strip() or len(intent) > 32):
            raise ValidationFailed(f"not an intent name: {intent!r}")
        if confidence is not None and (
            not isinstance(confidence, int | float)
            or math.isnan(confidence)
            or not 0.0 <= confidence <= 1.0
        ):
            raise ValidationFailed(f"confidence must be between 0 and 1, not {confidence!r}")
        external = None if external_id is None else str(external_id)
        if external is not None and len(external) > 64:
            raise ValidationFailed("external message id is longer than 64 characters")
        if (
            agent_staff_id is not None
            and await self._session.get(StaffUser, agent_staff_id) is None
        ):
            raise NotFound(f"no staff member #{agent_staff_id}")
        conversation = await self._load(conversation_id)
        values: dict[str, object] = {
            "conversation_id": conversation.id,
            "customer_id": conversation.customer_id,
            "channel": conversation.channel,
            "direction": direction,
            "text": truncate_text(text or ""),
            "intent": intent,
            "confidence": None if confidence is None else float(confidence),
            "kb_hits": [str(h) for h in (kb_hits or [])],
            "agent_staff_id": agent_staff_id,
            "external_id": external,
        }
        return conversation, values

    async def recent_interactions(
        self, conversation_id: int, limit: int = 20
    ) -> list[InteractionDTO]:
        """The last `limit` interactions of a conversation, in the order they happened."""
        if not 1 <= limit <= MAX_RECENT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_RECENT}")
        await self._load(conversation_id)
        rows = list(
            (
                await self._session.scalars(
                    select(Interaction)
                    .where(Interaction.conversation_id == conversation_id)
                    .order_by(Interaction.created_at.desc(), Interaction.id.desc())
                    .limit(limit)
                )
            ).all()
        )
        rows.reverse()
        return [InteractionDTO.model_validate(r) for r in rows]

    async def record_satisfaction(
        self,
        customer_id: int,
        score: int,
        comment: str | None = None,
        ticket_id: int | None = None,
        conversation_id: int | None = None,
    ) -> SatisfactionDTO:
        """Record a 1-5 rating, optionally about a ticket or conversation of that customer."""
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ValidationFailed(f"a rating is a whole number from 1 to 5, not {score!r}")
        if await self._session.get(Customer, customer_id) is None:
            raise NotFound(f"no customer #{customer_id}")
        if ticket_id is not None:
            ticket = await self._session.get(Ticket, ticket_id)
            if ticket is None or ticket.customer_id != customer_id:
                raise ValidationFailed(f"ticket #{ticket_id} is not one of this customer's")
        if conversation_id is not None:
            conversation = await self._session.get(Conversation, conversation_id)
            if conversation is None or conversation.customer_id != customer_id:
                raise ValidationFailed(
                    f"conversation #{conversation_id} is not one of this customer's"
                )
        clean = (comment or "").strip()
        rating = SatisfactionRating(
            customer_id=customer_id,
            ticket_id=ticket_id,
            conversation_id=conversation_id,
            score=score,
            comment=truncate_text(clean, MAX_COMMENT_CHARS) if clean else None,
            created_at=self._clock.now(),
        )
        self._session.add(rating)
        await self._session.flush()
        return SatisfactionDTO.model_validate(rating)

    async def _load(self, conversation_id: int) -> Conversation:
        conversation = await self._session.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation #{conversation_id}")
        return conversation


def _valid_channel(channel: str) -> str:
    value = (channel or "").strip().lower()
    if not _CHANNEL_RE.match(value):
        raise ValidationFailed(f"not a channel name: {channel!r} (e.g. telegram)")
    return value

"""DTOs and enums of the handoff state machine (who owns a conversation: bot, queue, agent)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class Owner(StrEnum):
    """Who answers the customer."""

    BOT = "bot"
    QUEUED = "queued"  # waiting for an agent; the bot only relays
    AGENT = "agent"  # an agent (Conversation.agent_staff_id) answers; the bot only relays


class HandoffEvent(StrEnum):
    """Every change of owner, named by what caused it."""

    REQUEST = "request"  # bot → queued: the customer (or a flow) asked for a human
    CLAIM = "claim"  # queued → agent: an agent took it (/claim)
    TRANSFER = "transfer"  # agent → agent: handed to another agent (/transfer)
    CANCEL = "cancel"  # queued → bot: the customer left the queue (/cancel)
    QUEUE_TIMEOUT = "queue_timeout"  # queued → bot: nobody claimed it in time (sweeper)
    RELEASE = "release"  # queued|agent → bot: an agent gave it back (/bot)
    CLOSE = "close"  # queued|agent → bot, conversation closed (/close)
    INACTIVITY = "inactivity"  # agent → bot: nobody wrote for too long (sweeper)


class HandoffRequestInfo(BaseModel):
    """Why a conversation was queued (from its latest request event)."""

    reason: str
    intent: str | None = None
    category: str | None = None
    team: str | None = None

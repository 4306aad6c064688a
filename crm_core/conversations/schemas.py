"""DTOs of the conversations domain."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ConversationDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int | None = None
    channel: str
    chat_id: int | None = None
    owner: str
    agent_staff_id: int | None = None
    queued_at: datetime | None = None
    staff_topic_id: int | None = None
    last_activity_at: datetime
    started_at: datetime
    closed_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class InteractionDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int | None = None
    customer_id: int | None = None
    channel: str
    direction: str
    text: str
    intent: str | None = None
    confidence: float | None = None
    kb_hits: list[str] = Field(default_factory=list)
    agent_staff_id: int | None = None
    external_id: str | None = None
    created_at: datetime


class SatisfactionDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int | None = None
    ticket_id: int | None = None
    conversation_id: int | None = None
    score: int
    comment: str | None = None
    created_at: datetime

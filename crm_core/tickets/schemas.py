"""DTOs of the tickets domain."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class TicketKind(StrEnum):
    FAULT = "fault"  # something does not work; troubleshooting first
    RMA = "rma"  # warranty return / repair / replacement (needs a serial under warranty)
    REPAIR = "repair"  # paid repair, out of warranty
    COMPLAINT = "complaint"


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketDTO(BaseModel):
    """A ticket as agents and customers see it (no ORM object leaves the service)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_number: str
    customer_id: int
    serial_number: str | None
    product_id: int | None
    category: str | None
    kind: str
    subject: str
    symptom: str
    attachments: list[str] = Field(default_factory=list)
    priority: str
    status: str
    assignee_staff_id: int | None
    sla_due_at: datetime | None
    resolution: str | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    # Computed at read time from the service's clock and the state machine.
    overdue: bool = False
    allowed_transitions: list[str] = Field(default_factory=list)


class TicketEventDTO(BaseModel):
    """One entry of a ticket's history (status change, assignment, ...)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    from_status: str | None
    to_status: str
    actor: str
    note: str | None
    at: datetime

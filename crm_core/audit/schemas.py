"""DTOs of the audit domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEntryDTO(BaseModel):
    """One audit-log line: who did what to which record, when and why."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str | None = None
    customer_id: int | None = None
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)

"""DTOs of console access: login outcomes, sessions, API keys (never a secret or a hash)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from crm_core.staff.schemas import StaffDTO

LoginStatus = Literal["ok", "invalid", "locked", "rate_limited"]


@dataclass(frozen=True)
class LoginOutcome:
    """What a login attempt gave. `token` (for the cookie) and `csrf` only when ok;
    `retry_after_s` when locked or rate limited."""

    status: LoginStatus
    staff: StaffDTO | None = None
    token: str | None = None
    csrf: str | None = None
    retry_after_s: int = 0


@dataclass(frozen=True)
class SessionInfo:
    """A valid console session: who, their CSRF token and UI language."""

    session_id: int
    staff: StaffDTO
    csrf: str
    language: str


class ApiKeyDTO(BaseModel):
    """An API key as listed (the key itself is shown once, on creation)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_per_minute: int
    created_by_staff_id: int | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def actor(self) -> str:
        """How this key appears in audit entries."""
        return f"apikey:{self.id}"

"""DTOs of the staff domain. Password hashes never leave the service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class StaffDTO(BaseModel):
    """A staff member as the delivery layers see it (no password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    login: str | None = None
    telegram_user_id: int | None = None
    languages: str = "zh,en"
    active: bool = True
    has_password: bool = False
    created_at: datetime

    @property
    def actor(self) -> str:
        """How this person appears in audit entries and ticket events."""
        return f"staff:{self.id}"

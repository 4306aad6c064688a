"""DTOs of the leads domain."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class LeadCreate(BaseModel):
    """Input of `LeadService.create_lead`: a customer, or a prospect's name and/or contact."""

    customer_id: int | None = None
    prospect_name: str | None = None
    prospect_contact: str | None = None
    products_of_interest: list[str] = Field(default_factory=list)  # SKUs or category keys
    budget: Decimal | None = None
    currency: str | None = None
    source: str = "staff"
    notes: str | None = None
    owner_staff_id: int | None = None


class LeadDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int | None = None
    prospect_name: str | None = None
    prospect_contact: str | None = None
    products_of_interest: list[str] = Field(default_factory=list)
    budget: Decimal | None = None
    currency: str
    stage: str
    owner_staff_id: int | None = None
    source: str
    notes: str | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def is_closed(self) -> bool:
        return self.stage in ("won", "lost")

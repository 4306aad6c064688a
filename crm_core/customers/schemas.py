"""DTOs of the customers domain: what CustomerService takes and returns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class CompanyDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    tax_id: str | None = None
    created_at: datetime


class CustomerDTO(BaseModel):
    """A customer record (or the anonymised remains of an erased one)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    phone: str | None = None
    email: str | None = None
    telegram_user_id: int | None = None
    language: str
    timezone: str
    customer_type: str
    company_id: int | None = None
    company_name: str | None = None
    tags: list[str] = Field(default_factory=list)
    marketing_consent: bool = False
    consent_changed_at: datetime | None = None
    consent_source: str | None = None
    lifecycle_stage: str
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    rfm_segment: str | None = None
    lifetime_value: Decimal | None = None
    last_contact_at: datetime | None = None
    notes: str | None = None
    anonymous_id: str | None = None
    erased_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def is_prospect(self) -> bool:
        return self.lifecycle_stage == "prospect"


class CustomerCreate(BaseModel):
    """Input of `CustomerService.create_customer`; the service validates and normalises it."""

    name: str
    phone: str | None = None
    email: str | None = None
    telegram_user_id: int | None = None
    language: str = "en"
    timezone: str | None = None
    customer_type: str = "consumer"
    company_name: str | None = None
    company_id: int | None = None
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None
    marketing_consent: bool = False
    consent_source: str = "console"
    lifecycle_stage: str | None = None


class CustomerUpdate(BaseModel):
    """Input of `CustomerService.update_customer`: only the fields that are set change.

    Setting `phone`, `email`, `telegram_user_id`, `company_id`/`company_name` or `notes` to
    None clears them. Marketing consent changes go through grant/withdraw (with a source).
    """

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    telegram_user_id: int | None = None
    language: str | None = None
    timezone: str | None = None
    customer_type: str | None = None
    company_name: str | None = None
    company_id: int | None = None
    tags: list[str] | None = None
    notes: str | None = None


class ConsentEventDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    granted: bool
    source: str
    at: datetime


class ConsentChange(BaseModel):
    """Result of a grant or withdrawal: `changed` is False when nothing had to change."""

    customer_id: int
    marketing_consent: bool
    changed: bool
    event: ConsentEventDTO | None = None


class PurchasedItemDTO(BaseModel):
    """One order line with the product's names and the serial numbers of the units sold."""

    order_item_id: int
    product_id: int
    sku: str | None = None
    name_en: str | None = None
    name_zh: str | None = None
    category: str | None = None
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    serial_numbers: list[str] = Field(default_factory=list)

    def name(self, language: str) -> str:
        """The product name in `language` (zh/en), falling back to the other one."""
        first, second = (
            (self.name_zh, self.name_en)
            if language == "zh"
            else (
                self.name_en,
                self.name_zh,
            )
        )
        return first or second or (self.sku or f"product #{self.product_id}")


class PurchaseDTO(BaseModel):
    """One order of a customer's purchase history."""

    order_id: int
    order_number: str
    channel: str
    status: str
    placed_at: datetime
    delivered_at: datetime | None = None
    currency: str
    total: Decimal
    items: list[PurchasedItemDTO] = Field(default_factory=list)


class LinkResult(BaseModel):
    """Result of linking a Telegram account to a customer record."""

    customer: CustomerDTO
    already_linked: bool = False
    merged_prospect_id: int | None = None


class ProspectResult(BaseModel):
    """Result of `get_or_create_prospect`: the record for a Telegram user, and if it is new."""

    customer: CustomerDTO
    created: bool


class EraseResult(BaseModel):
    """Result of a GDPR erase. `already_erased` makes a second erase a visible no-op."""

    customer_id: int
    anonymous_id: str
    erased_at: datetime
    already_erased: bool = False
    message: str
    interactions_erased: int = 0
    leads_cleared: int = 0
    conversations_closed: int = 0

"""Sales leads: creation, the stage pipeline (new → contacted → quoted → won|lost), owners."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.audit.service import AuditService
from crm_core.catalog.categories import canonical_category
from crm_core.catalog.models import Product
from crm_core.clock import Clock
from crm_core.customers.contact import normalize_email, normalize_phone
from crm_core.customers.models import Customer
from crm_core.errors import (
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from crm_core.leads.models import LEAD_STAGES, Lead
from crm_core.leads.schemas import LeadCreate, LeadDTO
from crm_core.staff.models import StaffUser

if TYPE_CHECKING:
    from app.settings import CrmSection

# Allowed moves; won and lost are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"contacted", "lost"}),
    "contacted": frozenset({"quoted", "lost"}),
    "quoted": frozenset({"won", "lost"}),
    "won": frozenset(),
    "lost": frozenset(),
}
SOURCES = ("bot", "staff", "import")
OWNER_ROLES = ("agent", "admin", "marketer")
MAX_BUDGET = Decimal("999999999999.99")


class LeadService:
    """Creates leads, moves them through the pipeline, assigns owners, lists them."""

    def __init__(self, session: AsyncSession, clock: Clock, settings: CrmSection | None = None):
        self._session = session
        self._clock = clock
        self._currency = settings.currency if settings is not None else "CNY"
        self._audit = AuditService(session, clock)

    async def create_lead(self, data: LeadCreate, *, actor: str = "system") -> LeadDTO:
        """A lead for a customer, or for a prospect known by name and/or contact."""
        prospect_name = " ".join((data.prospect_name or "").split()) or None
        prospect_contact = _normalize_contact(data.prospect_contact)
        if data.customer_id is not None:
            customer = await self._session.get(Customer, data.customer_id)
            if customer is None:
                raise NotFound(f"no customer #{data.customer_id}")
            if customer.erased_at is not None:
                raise ValidationFailed(f"customer #{data.customer_id} was erased")
        elif prospect_name is None and prospect_contact is None:
            raise ValidationFailed("a lead needs a customer, or a prospect's name or contact")
        if prospect_name is not None and len(prospect_name) > 200:
            raise ValidationFailed("prospect name is longer than 200 characters")
        source = (data.source or "").strip().lower()
        if source not in SOURCES:
            raise ValidationFailed(f"unknown lead source {data.source!r}; one of {SOURCES}")
        currency = (data.currency or self._currency).strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValidationFailed(f"not a currency code: {data.currency!r} (e.g. CNY)")
        if data.owner_staff_id is not None:
            await self._owner(data.owner_staff_id)
        now = self._clock.now()
        lead = Lead(
            customer_id=data.customer_id,
            prospect_name=prospect_name,
            prospect_contact=prospect_contact,
            products_of_interest=await self._products(data.products_of_interest),
            budget=_budget(data.budget),
            currency=currency,
            stage="new",
            owner_staff_id=data.owner_staff_id,
            source=source,
            notes=(data.notes or "").strip() or None,
            created_at=now,
            updated_at=now,
        )
        self._session.add(lead)
        await self._session.flush()
        await self._audit.record(actor, "create", "lead", lead.id, lead.customer_id)
        return LeadDTO.model_validate(lead)

    async def get(self, lead_id: int) -> LeadDTO:
        return LeadDTO.model_validate(await self._load(lead_id))

    async def move_to_stage(
        self, lead_id: int, stage: str, *, actor: str = "system", note: str | None = None
    ) -> LeadDTO:
        """Move a lead along new → contacted → quoted → won|lost (lost from any open stage)."""
        target = (stage or "").strip().lower()
        if target not in LEAD_STAGES:
            raise ValidationFailed(f"unknown lead stage {stage!r}; one of {', '.join(LEAD_STAGES)}")
        lead = await self._load(lead_id)
        allowed = TRANSITIONS[lead.stage]
        if target not in allowed:
            if not allowed:
                raise InvalidTransition(
                    f"lead #{lead.id} is {lead.stage}: a {lead.stage} lead is final"
                )
            raise InvalidTransition(
                f"lead #{lead.id} cannot go from {lead.stage} to {target}; "
                f"next: {', '.join(sorted(allowed))}"
            )
        previous = lead.stage
        lead.stage = target
        lead.updated_at = self._clock.now()
        await self._session.flush()
        await self._audit.record(
            actor,
            "stage",
            "lead",
            lead.id,
            lead.customer_id,
            (note or "").strip(),
            {"from": previous, "to": target},
        )
        return LeadDTO.model_validate(lead)

    async def assign_owner(self, lead_id: int, staff_id: int, *, actor: str = "system") -> LeadDTO:
        """Make an active agent, admin or marketer the owner of a lead."""
        lead = await self._load(lead_id)
        await self._owner(staff_id)
        if lead.owner_staff_id != staff_id:
            lead.owner_staff_id = staff_id
            lead.updated_at = self._clock.now()
            await self._session.flush()
            await self._audit.record(
                actor, "assign", "lead", lead.id, lead.customer_id, details={"owner": staff_id}
            )
        return LeadDTO.model_validate(lead)

    async def list_leads(
        self,
        *,
        stage: str | None = None,
        owner_staff_id: int | None = None,
        customer_id: int | None = None,
        limit: int = 200,
    ) -> list[LeadDTO]:
        """Leads newest first, filtered by stage, owner and/or customer."""
        stmt = select(Lead)
        if stage is not None:
            if stage not in LEAD_STAGES:
                raise ValidationFailed(f"unknown lead stage {stage!r}")
            stmt = stmt.where(Lead.stage == stage)
        if owner_staff_id is not None:
            stmt = stmt.where(Lead.owner_staff_id == owner_staff_id)
        if customer_id is not None:
            stmt = stmt.where(Lead.customer_id == customer_id)
        stmt = stmt.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit)
        return [LeadDTO.model_validate(r) for r in (await self._session.scalars(stmt)).all()]

    async def _load(self, lead_id: int) -> Lead:
        lead = await self._session.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead #{lead_id}")
        return lead

    async def _owner(self, staff_id: int) -> StaffUser:
        staff = await self._session.get(StaffUser, staff_id)
        if staff is None:
            raise NotFound(f"no staff member #{staff_id}")
        if not staff.active:
            raise PermissionDenied(f"staff member #{staff_id} is deactivated and cannot own leads")
        if staff.role not in OWNER_ROLES:
            raise PermissionDenied(f"a {staff.role} cannot own leads")
        return staff

    async def _products(self, items: list[str]) -> list[str]:
        """Category words → canonical keys; anything else must be a known SKU."""
        out: list[str] = []
        skus: list[str] = []
        for raw in items:
            text = str(raw).strip()
            if not text:
                continue
            key = canonical_category(text)
            value = key if key is not None else text
            if key is None:
                skus.append(text)
            if value not in out:
                out.append(value)
        if skus:
            known = set(
                await self._session.scalars(select(Product.sku).where(Product.sku.in_(skus)))
            )
            unknown = [s for s in skus if s not in known]
            if unknown:
                raise ValidationFailed(
                    f"unknown product or category: {', '.join(unknown)} "
                    "(use a SKU from the catalog or a category such as gpu, psu)"
                )
        return out


def _budget(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationFailed(f"not an amount: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValidationFailed("a budget cannot be negative")
    if amount > MAX_BUDGET:
        raise ValidationFailed("that budget is too large")
    return amount.quantize(Decimal("0.01"))


def _normalize_contact(raw: str | None) -> str | None:
    """E-mail → lower case, phone → E.164, anything else (a @handle, WeChat id) as typed."""
    text = (raw or "").strip()
    if not text:
        return None
    if len(text) > 254:
        raise ValidationFailed("prospect contact is longer than 254 characters")
    if "@" in text and not text.startswith("@"):
        return normalize_email(text)
    if re.fullmatch(r"[+\d\s()\-－.]{6,}", text):
        return normalize_phone(text)
    return text

"""Customers: records, lookups, purchase history, consent, Telegram linking, GDPR export/erase."""

from __future__ import annotations

import contextlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.audit.service import AuditService
from crm_core.clock import Clock
from crm_core.conversations.models import Conversation, Interaction, SatisfactionRating
from crm_core.customers import repository as repo
from crm_core.customers.contact import normalize_email, normalize_phone
from crm_core.customers.models import (
    CUSTOMER_TYPES,
    LANGUAGES,
    LIFECYCLE_STAGES,
    Company,
    ConsentEvent,
    Customer,
)
from crm_core.customers.schemas import (
    ConsentChange,
    ConsentEventDTO,
    CustomerCreate,
    CustomerDTO,
    CustomerUpdate,
    EraseResult,
    LinkResult,
    PurchaseDTO,
)
from crm_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crm_core.ids import normalize_order_number, normalize_serial_number
from crm_core.leads.models import Lead
from crm_core.staff.models import StaffUser
from crm_core.tickets.models import Ticket

if TYPE_CHECKING:
    from app.settings import CrmSection

EXPORT_FORMAT = "hwcrm-gdpr-export/1"
ERASED_NAME = "Erased customer"
ERASED_TEXT = "[erased]"
# The same answer for "no such order" and "wrong digits", so nobody can probe which orders exist.
ORDER_LINK_FAILED = (
    "we could not match that order number and phone digits to a customer record; "
    "please check both and try again"
)
CONTACT_LINK_FAILED = "no customer record has this phone number"
NAME_MAX = 200
TAG_MAX = 50
SOURCE_MAX = 64


class CustomerService:
    """Everything about customer records that delivery layers need, as DTOs."""

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: CrmSection | None = None,
    ) -> None:
        self._session = session
        self._clock = clock
        self._settings = settings
        self._audit = AuditService(session, clock)

    # ------------------------------------------------------------------ create / update

    async def create_customer(self, data: CustomerCreate, *, actor: str = "system") -> CustomerDTO:
        """Create a customer; phone → E.164, e-mail lower case, enterprise needs a company."""
        now = self._clock.now()
        customer_type = _valid_customer_type(data.customer_type)
        company_id = await self._resolve_company(data.company_id, data.company_name)
        if customer_type == "enterprise" and company_id is None:
            raise ValidationFailed("an enterprise customer needs a company (company_name)")
        phone = _phone_or_none(data.phone)
        email = _email_or_none(data.email)
        await self._check_unique(phone=phone, email=email, telegram_user_id=data.telegram_user_id)
        stage = data.lifecycle_stage or "prospect"
        if stage not in LIFECYCLE_STAGES:
            raise ValidationFailed(
                f"unknown lifecycle stage {stage!r}; one of {', '.join(LIFECYCLE_STAGES)}"
            )
        customer = Customer(
            name=_valid_name(data.name),
            phone=phone,
            email=email,
            telegram_user_id=_valid_telegram_id(data.telegram_user_id),
            language=_valid_language(data.language),
            timezone=_valid_timezone(data.timezone) if data.timezone else "Asia/Shanghai",
            customer_type=customer_type,
            company_id=company_id,
            tags=_valid_tags(data.tags),
            notes=data.notes.strip() if data.notes and data.notes.strip() else None,
            marketing_consent=False,
            lifecycle_stage=stage,
            created_at=now,
            updated_at=now,
        )
        self._session.add(customer)
        await self._flush_unique()
        if data.marketing_consent:
            await self._set_consent(customer, True, data.consent_source)
        await self._audit.record(actor, "create", "customer", customer.id, customer.id)
        return await self._dto(customer)

    async def update_customer(
        self, customer_id: int, changes: CustomerUpdate, *, actor: str = "system"
    ) -> CustomerDTO:
        """Change the fields set in `changes`; the audit entry names the fields, not values."""
        customer = await self._load(customer_id)
        if customer.erased_at is not None:
            raise Conflict(f"customer #{customer_id} was erased; the record cannot be changed")
        fields = changes.model_fields_set
        changed: list[str] = []

        def assign(attr: str, value: Any) -> None:
            if getattr(customer, attr) != value:
                setattr(customer, attr, value)
                changed.append(attr)

        if "name" in fields:
            assign("name", _valid_name(changes.name or ""))
        if "phone" in fields:
            phone = _phone_or_none(changes.phone)
            if phone != customer.phone:
                await self._check_unique(phone=phone)
            assign("phone", phone)
        if "email" in fields:
            email = _email_or_none(changes.email)
            if email != customer.email:
                await self._check_unique(email=email)
            assign("email", email)
        if "telegram_user_id" in fields:
            tg = _valid_telegram_id(changes.telegram_user_id)
            if tg != customer.telegram_user_id:
                await self._check_unique(telegram_user_id=tg)
            assign("telegram_user_id", tg)
        if "language" in fields:
            assign("language", _valid_language(changes.language or ""))
        if "timezone" in fields:
            assign("timezone", _valid_timezone(changes.timezone or ""))
        if "customer_type" in fields:
            assign("customer_type", _valid_customer_type(changes.customer_type or ""))
        if "company_id" in fields or "company_name" in fields:
            assign(
                "company_id", await self._resolve_company(changes.company_id, changes.company_name)
            )
        if "tags" in fields:
            assign("tags", _valid_tags(changes.tags or []))
        if "notes" in fields:
            notes = changes.notes.strip() if changes.notes and changes.notes.strip() else None
            assign("notes", notes)
        if customer.customer_type == "enterprise" and customer.company_id is None:
            raise ValidationFailed("an enterprise customer needs a company (company_name)")
        if changed:
            customer.updated_at = self._clock.now()
            await self._flush_unique()
            await self._audit.record(
                actor, "update", "customer", customer.id, customer.id, details={"fields": changed}
            )
        return await self._dto(customer)

    async def touch_last_contact(self, customer_id: int) -> None:
        """Record that we were in contact with the customer now."""
        customer = await self._load(customer_id)
        customer.last_contact_at = self._clock.now()
        await self._session.flush()

    # ------------------------------------------------------------------ reads

    async def get_customer(self, customer_id: int) -> CustomerDTO:
        """One customer (not audited: for the bot and internal use; staff use the audited read)."""
        return await self._dto(await self._load(customer_id))

    async def get_customer_for_staff(
        self, staff_id: int, customer_id: int, reason: str
    ) -> CustomerDTO:
        """A staff member reads a customer record: audited as "read", or "denied"."""
        staff = await self._session.get(StaffUser, staff_id)
        if staff is None or not staff.active:
            why = "unknown staff member" if staff is None else "staff member is deactivated"
            await self._audit.record_durable(
                f"staff:{staff_id}",
                "denied",
                "customer",
                customer_id,
                customer_id,
                reason=reason or "",
                details={"why": why},
            )
            raise PermissionDenied(f"access denied: {why} (#{staff_id})")
        return await self.get_customer_as(f"staff:{staff_id}", customer_id, reason)

    async def get_customer_as(self, actor: str, customer_id: int, reason: str) -> CustomerDTO:
        """Read a customer record for `actor` ("cli", "staff:3"), writing a "read" entry."""
        reason = _valid_reason(reason)
        dto = await self.get_customer(customer_id)
        await self._audit.record(actor, "read", "customer", customer_id, customer_id, reason)
        return dto

    async def find_by_telegram_id(self, telegram_user_id: int) -> CustomerDTO | None:
        return await self._dto_or_none(Customer.telegram_user_id == telegram_user_id)

    async def find_by_phone(self, raw_phone: str) -> CustomerDTO | None:
        """Find by a phone number typed in any usual format (spaces, dashes, +86, 0086, ...)."""
        candidates = _typed_phone_candidates(raw_phone)
        if not candidates:
            raise ValidationFailed(f"not a valid phone number: {raw_phone!r}")
        for phone in candidates:
            found = await self._dto_or_none(Customer.phone == phone)
            if found is not None:
                return found
        return None

    async def find_by_email(self, raw_email: str) -> CustomerDTO | None:
        return await self._dto_or_none(Customer.email == normalize_email(raw_email))

    async def find_by_order_number(self, raw_order_number: str) -> CustomerDTO | None:
        """The customer who placed an order (`SO-10023456`, also typed as `so10023456`)."""
        number = normalize_order_number(raw_order_number)
        if number is None:
            raise ValidationFailed(
                f"not an order number: {raw_order_number!r} (they look like SO-10023456)"
            )
        customer = await repo.customer_by_order_number(self._session, number)
        return None if customer is None else await self._dto(customer)

    async def find_by_serial_number(self, raw_serial: str) -> CustomerDTO | None:
        """The customer who bought the unit with this serial number."""
        serial = normalize_serial_number(raw_serial)
        if serial is None:
            raise ValidationFailed(f"not a serial number: {raw_serial!r} (like SN7F3K9Q2L1M)")
        customer = await repo.customer_by_serial_number(self._session, serial)
        return None if customer is None else await self._dto(customer)

    async def search(self, query: str, *, limit: int = 20) -> list[CustomerDTO]:
        """Customers matching a Telegram id, phone, e-mail, order/serial number, or a name."""
        text = (query or "").strip()
        if not text:
            raise ValidationFailed("type a Telegram id, phone, e-mail, order number or name")
        found: dict[int, CustomerDTO] = {}

        def keep(dto: CustomerDTO | None) -> None:
            if dto is not None:
                found.setdefault(dto.id, dto)

        if "@" in text:
            with contextlib.suppress(ValidationFailed):
                keep(await self.find_by_email(text))
        if normalize_order_number(text):
            keep(await self.find_by_order_number(text))
        if normalize_serial_number(text):
            keep(await self.find_by_serial_number(text))
        if re.fullmatch(r"\d{5,15}", text):
            keep(await self.find_by_telegram_id(int(text)))
        if re.fullmatch(r"[\d\s()+\-－.]{5,}", text) and _typed_phone_candidates(text):
            keep(await self.find_by_phone(text))
        if not found and not re.search(r"\d", text):
            rows = await repo.customers_by_name(self._session, text, limit=limit)
            names = await repo.company_names(self._session, (r.company_id for r in rows))
            for row in rows:
                keep(_customer_dto(row, names.get(row.company_id or 0)))
        return list(found.values())[:limit]

    async def search_as(self, actor: str, query: str, reason: str) -> list[CustomerDTO]:
        """`search` on behalf of `actor`, writing one "read" audit entry per record shown."""
        reason = _valid_reason(reason)
        results = await self.search(query)
        for dto in results:
            await self._audit.record(
                actor, "read", "customer", dto.id, dto.id, reason, details={"via": "search"}
            )
        return results

    async def purchase_history(self, customer_id: int) -> list[PurchaseDTO]:
        """Orders newest first, with items, product names, quantities, prices and serials."""
        await self._load(customer_id)
        return await repo.purchase_history(self._session, customer_id)

    # ------------------------------------------------------------------ consent

    async def grant_consent(self, customer_id: int, source: str) -> ConsentChange:
        """Record marketing consent (idempotent: no new event when it is already granted)."""
        customer = await self._load(customer_id)
        if customer.erased_at is not None:
            raise Conflict(f"customer #{customer_id} was erased; consent cannot be granted")
        return await self._set_consent(customer, True, source)

    async def withdraw_consent(self, customer_id: int, source: str) -> ConsentChange:
        """Withdraw marketing consent (idempotent: withdrawing twice writes one event)."""
        return await self._set_consent(await self._load(customer_id), False, source)

    async def consent_events(self, customer_id: int) -> list[ConsentEventDTO]:
        """The consent history of a customer, oldest first (the proof of consent)."""
        rows = await self._session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.customer_id == customer_id)
            .order_by(ConsentEvent.at, ConsentEvent.id)
        )
        return [ConsentEventDTO.model_validate(r) for r in rows]

    async def _set_consent(self, customer: Customer, granted: bool, source: str) -> ConsentChange:
        source = (source or "").strip()
        if not source:
            raise ValidationFailed("say where the consent change came from (e.g. telegram:/stop)")
        if len(source) > SOURCE_MAX:
            raise ValidationFailed(f"consent source is longer than {SOURCE_MAX} characters")
        if customer.marketing_consent == granted and (
            customer.consent_changed_at is not None or not granted
        ):
            return ConsentChange(customer_id=customer.id, marketing_consent=granted, changed=False)
        now = self._clock.now()
        event = ConsentEvent(customer_id=customer.id, granted=granted, source=source, at=now)
        customer.marketing_consent = granted
        customer.consent_changed_at = now
        customer.consent_source = source
        customer.updated_at = now
        self._session.add(event)
        await self._session.flush()
        return ConsentChange(
            customer_id=customer.id,
            marketing_consent=granted,
            changed=True,
            event=ConsentEventDTO.model_validate(event),
        )

    # ------------------------------------------------------------------ Telegram linking

    async def get_or_create_prospect(
        self, telegram_user_id: int, name: str | None, language: str | None
    ) -> CustomerDTO:
        """The record of a Telegram user; a new 'prospect' when we do not know them yet."""
        tg = _required_telegram_id(telegram_user_id)
        existing = await repo.customer_where(self._session, Customer.telegram_user_id == tg)
        if existing is not None:
            return await self._dto(existing)
        now = self._clock.now()
        clean = " ".join((name or "").split())[:NAME_MAX] or f"Telegram user {tg}"
        prospect = Customer(
            name=clean,
            telegram_user_id=tg,
            language=_telegram_language(language),
            lifecycle_stage="prospect",
            last_contact_at=now,
            created_at=now,
            updated_at=now,
        )
        self._session.add(prospect)
        try:
            await self._session.flush()
        except IntegrityError:
            raise Conflict(
                f"a record for Telegram user {tg} was created at the same time; try again"
            ) from None
        return await self._dto(prospect)

    async def link_telegram_by_contact(
        self, telegram_user_id: int, contact_phone: str, contact_user_id: int | None
    ) -> LinkResult:
        """Link by a shared contact; it must be the sender's own (Telegram vouches the phone)."""
        tg = _required_telegram_id(telegram_user_id)
        if contact_user_id is None or contact_user_id != tg:
            raise PermissionDenied(
                "that contact is not yours: please share your own contact with the button"
            )
        phone = _contact_phone(contact_phone)
        customer = None
        if phone is not None:
            customer = await repo.customer_where(
                self._session, Customer.phone == phone, Customer.erased_at.is_(None)
            )
        if customer is None:
            raise NotFound(CONTACT_LINK_FAILED)
        return await self._link(customer, tg, method="contact")

    async def link_telegram_by_order(
        self, telegram_user_id: int, order_number: str, phone_last4: str
    ) -> LinkResult:
        """Link by an order number plus the last 4 digits of the phone on that order's record."""
        tg = _required_telegram_id(telegram_user_id)
        digits = re.sub(r"\D", "", phone_last4 or "")
        if len(digits) != 4:
            raise ValidationFailed("please type the last 4 digits of your phone number")
        number = normalize_order_number(order_number or "")
        customer = None
        if number is not None:
            customer = await repo.customer_by_order_number(self._session, number)
        phone = customer.phone if customer is not None else None
        # Compare in constant time; every failure gets the same message.
        expected = phone[-4:] if phone else "----"
        matches = hmac.compare_digest(expected.encode(), digits.encode())
        if customer is None or customer.erased_at is not None or not matches:
            raise NotFound(ORDER_LINK_FAILED)
        return await self._link(customer, tg, method="order")

    async def unlink_telegram(self, customer_id: int, *, actor: str, reason: str) -> CustomerDTO:
        """Detach a customer's Telegram account (e.g. the customer changed accounts)."""
        reason = _valid_reason(reason)
        customer = await self._load(customer_id)
        if customer.telegram_user_id is not None:
            customer.telegram_user_id = None
            customer.updated_at = self._clock.now()
            await self._session.flush()
            await self._audit.record(actor, "unlink", "customer", customer.id, customer.id, reason)
        return await self._dto(customer)

    async def _link(self, customer: Customer, tg: int, *, method: str) -> LinkResult:
        if customer.telegram_user_id == tg:
            return LinkResult(customer=await self._dto(customer), already_linked=True)
        if customer.telegram_user_id is not None:
            raise Conflict(
                "this customer record is already linked to a different Telegram account; "
                "please contact support"
            )
        holder = await repo.customer_where(self._session, Customer.telegram_user_id == tg)
        merged: int | None = None
        if holder is not None:
            if holder.lifecycle_stage != "prospect" or await repo.has_orders(
                self._session, holder.id
            ):
                raise Conflict(
                    "this Telegram account is already linked to another customer record; "
                    "please contact support"
                )
            merged = holder.id
            await self._merge_prospect(holder, customer)
        now = self._clock.now()
        customer.telegram_user_id = tg
        customer.last_contact_at = now
        customer.updated_at = now
        await self._flush_unique()
        await self._audit.record(
            f"customer:{customer.id}",
            "link",
            "customer",
            customer.id,
            customer.id,
            f"Telegram account linked by {method}",
            {"method": method, "merged_prospect_id": merged},
        )
        return LinkResult(customer=await self._dto(customer), merged_prospect_id=merged)

    async def _merge_prospect(self, prospect: Customer, customer: Customer) -> None:
        """Move everything of the bot-created prospect onto the real customer, then drop it."""
        for model in (Conversation, Interaction, SatisfactionRating, Lead, Ticket, ConsentEvent):
            await self._session.execute(
                update(model)
                .where(model.customer_id == prospect.id)
                .values(customer_id=customer.id)
                .execution_options(synchronize_session="fetch")
            )
        if prospect.consent_changed_at is not None and (
            customer.consent_changed_at is None
            or prospect.consent_changed_at > customer.consent_changed_at
        ):
            customer.marketing_consent = prospect.marketing_consent
            customer.consent_changed_at = prospect.consent_changed_at
            customer.consent_source = prospect.consent_source
        if prospect.last_contact_at is not None and (
            customer.last_contact_at is None or prospect.last_contact_at > customer.last_contact_at
        ):
            customer.last_contact_at = prospect.last_contact_at
        await self._session.delete(prospect)
        await self._session.flush()

    # ------------------------------------------------------------------ GDPR

    async def export_customer(
        self, customer_id: int, *, actor: str = "system", reason: str = "GDPR data export"
    ) -> dict[str, Any]:
        """Everything about one customer as JSON-serialisable data (writes an "export" entry)."""
        customer = await self._load(customer_id)
        dto = await self._dto(customer)
        company = (
            await self._session.get(Company, customer.company_id) if customer.company_id else None
        )
        data: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "exported_at": self._clock.now().isoformat(),
            "customer": dto.model_dump(mode="json"),
            "company": repo.row_to_json(company) if company is not None else None,
        }
        data.update(
            await repo.collect_personal_data(self._session, customer_id, _contacts(customer))
        )
        audit = await self._audit.for_customer(customer_id)
        data["audit_entries"] = [a.model_dump(mode="json") for a in audit]
        await self._audit.record(actor, "export", "customer", customer_id, customer_id, reason)
        return data

    async def erase_customer(self, customer_id: int, actor: str, reason: str) -> EraseResult:
        """Anonymise a customer (right to erasure); orders and tickets stay for accounting."""
        reason = _valid_reason(reason)
        customer = await self._load(customer_id)
        if customer.erased_at is not None:
            return EraseResult(
                customer_id=customer.id,
                anonymous_id=customer.anonymous_id or "",
                erased_at=customer.erased_at,
                already_erased=True,
                message=(
                    f"customer #{customer.id} was already erased on "
                    f"{customer.erased_at:%Y-%m-%d} (now {customer.anonymous_id}); nothing to do"
                ),
            )
        now = self._clock.now()
        anonymous_id = f"ANON-{secrets.token_hex(6)}"
        contacts = _contacts(customer)
        if customer.marketing_consent:
            await self._set_consent(customer, False, "gdpr:erase")
        customer.name = ERASED_NAME
        customer.phone = None
        customer.email = None
        customer.telegram_user_id = None
        customer.notes = None
        customer.tags = []
        customer.anonymous_id = anonymous_id
        customer.erased_at = now
        customer.updated_at = now
        await self._session.flush()

        conversation_ids = select(Conversation.id).where(Conversation.customer_id == customer.id)
        interactions = await self._bulk_update(
            Interaction,
            (Interaction.customer_id == customer.id)
            | Interaction.conversation_id.in_(conversation_ids),
            text=ERASED_TEXT,
        )
        closed = await self._bulk_update(
            Conversation,
            (Conversation.customer_id == customer.id) & Conversation.closed_at.is_(None),
            closed_at=now,
        )
        await self._bulk_update(Conversation, Conversation.customer_id == customer.id, chat_id=None)
        await self._bulk_update(
            SatisfactionRating,
            (SatisfactionRating.customer_id == customer.id)
            & SatisfactionRating.comment.is_not(None),
            comment=ERASED_TEXT,
        )
        leads = await self._bulk_update(
            Lead,
            repo.leads_of(customer.id, contacts),
            prospect_name=None,
            prospect_contact=None,
            notes=None,
        )
        # Photos customers sent with fault reports are personal data; the ticket stays.
        await self._bulk_update(Ticket, Ticket.customer_id == customer.id, attachments=[])
        await self._audit.record(
            actor,
            "erase",
            "customer",
            customer.id,
            customer.id,
            reason,
            {
                "anonymous_id": anonymous_id,
                "interactions_erased": interactions,
                "leads_cleared": leads,
            },
        )
        return EraseResult(
            customer_id=customer.id,
            anonymous_id=anonymous_id,
            erased_at=now,
            message=f"customer #{customer.id} erased; records kept as {anonymous_id}",
            interactions_erased=interactions,
            leads_cleared=leads,
            conversations_closed=closed,
        )

    async def _bulk_update(self, model: Any, where: ColumnElement[bool], **values: Any) -> int:
        result = await self._session.execute(
            update(model)
            .where(where)
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # ------------------------------------------------------------------ helpers

    async def _load(self, customer_id: int) -> Customer:
        customer = await self._session.get(Customer, customer_id)
        if customer is None:
            raise NotFound(f"no customer #{customer_id}")
        return customer

    async def _dto(self, customer: Customer) -> CustomerDTO:
        company_name = None
        if customer.company_id is not None:
            company = await self._session.get(Company, customer.company_id)
            company_name = company.name if company else None
        return _customer_dto(customer, company_name)

    async def _dto_or_none(self, *where: ColumnElement[bool]) -> CustomerDTO | None:
        customer = await repo.customer_where(self._session, *where)
        return None if customer is None else await self._dto(customer)

    async def _resolve_company(
        self, company_id: int | None, company_name: str | None
    ) -> int | None:
        if company_id is not None:
            if await self._session.get(Company, company_id) is None:
                raise NotFound(f"no company #{company_id}")
            return company_id
        name = " ".join((company_name or "").split())
        if not name:
            return None
        if len(name) > NAME_MAX:
            raise ValidationFailed(f"company name is longer than {NAME_MAX} characters")
        company = await self._session.scalar(select(Company).where(Company.name == name))
        if company is None:
            company = Company(name=name, created_at=self._clock.now())
            self._session.add(company)
            await self._session.flush()
        return company.id

    async def _check_unique(
        self,
        *,
        phone: str | None = None,
        email: str | None = None,
        telegram_user_id: int | None = None,
    ) -> None:
        checks = (
            ("phone", phone, Customer.phone),
            ("e-mail", email, Customer.email),
            ("Telegram account", telegram_user_id, Customer.telegram_user_id),
        )
        for label, value, column in checks:
            if value is None:
                continue
            other = await self._session.scalar(select(Customer.id).where(column == value))
            if other is not None:
                raise Conflict(f"customer #{other} already has this {label} ({value})")

    async def _flush_unique(self) -> None:
        try:
            await self._session.flush()
        except IntegrityError:
            raise Conflict(
                "another customer has the same phone, e-mail or Telegram account"
            ) from None


def _customer_dto(customer: Customer, company_name: str | None) -> CustomerDTO:
    dto = CustomerDTO.model_validate(customer)
    dto.company_name = company_name
    return dto


def _phone_or_none(value: str | None) -> str | None:
    return normalize_phone(value) if value is not None and value.strip() else None


def _email_or_none(value: str | None) -> str | None:
    return normalize_email(value) if value is not None and value.strip() else None


def _valid_name(name: str) -> str:
    clean = " ".join((name or "").split())
    if not clean:
        raise ValidationFailed("a customer needs a name")
    if len(clean) > NAME_MAX:
        raise ValidationFailed(f"name is longer than {NAME_MAX} characters")
    return clean


def _valid_language(language: str) -> str:
    value = (language or "").strip().lower()
    if value not in LANGUAGES:
        raise ValidationFailed(f"unknown language {language!r}; use zh or en")
    return value


def _telegram_language(code: str | None) -> str:
    """Telegram's language_code (zh-hans, en-US, ru, ...) → zh or en."""
    value = (code or "").strip().lower()
    return "zh" if value.startswith("zh") else "en"


def _valid_customer_type(customer_type: str) -> str:
    value = (customer_type or "").strip().lower()
    if value not in CUSTOMER_TYPES:
        raise ValidationFailed(
            f"unknown customer type {customer_type!r}; one of {', '.join(CUSTOMER_TYPES)}"
        )
    return value


def _valid_timezone(name: str) -> str:
    value = (name or "").strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone {name!r} (e.g. Asia/Shanghai)") from None
    return value


def _valid_tags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        clean = " ".join(str(tag).split())
        if not clean:
            continue
        if len(clean) > TAG_MAX:
            raise ValidationFailed(f"tag {clean[:20]!r}... is longer than {TAG_MAX} characters")
        if clean not in out:
            out.append(clean)
    return out


def _contacts(customer: Customer) -> list[str]:
    return [c for c in (customer.phone, customer.email) if c]


def _required_telegram_id(value: int) -> int:
    checked = _valid_telegram_id(value)
    if checked is None:
        raise ValidationFailed("a Telegram user id is required")
    return checked


def _valid_telegram_id(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationFailed(f"not a Telegram user id: {value!r}")
    return value


def _valid_reason(reason: str) -> str:
    clean = (reason or "").strip()
    if not clean:
        raise ValidationFailed("say why (a reason is recorded in the audit log)")
    return clean


def _typed_phone_candidates(raw: str) -> list[str]:
    """E.164 readings of a typed phone number: as local (CN) and, when bare, as international."""
    out: list[str] = []
    with contextlib.suppress(ValidationFailed):
        out.append(normalize_phone(raw))
    text = (raw or "").strip()
    digits = re.sub(r"\D", "", text)
    if digits and not text.startswith(("+", "00")):
        try:
            alt = normalize_phone("+" + digits)
        except ValidationFailed:
            alt = None
        if alt and alt not in out:
            out.append(alt)
    return out


def _contact_phone(raw: str) -> str | None:
    """A Telegram contact's phone: always international, though often without the '+'."""
    text = (raw or "").strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    for candidate in ("+" + digits, text):
        try:
            return normalize_phone(candidate)
        except ValidationFailed:
            continue
    return None

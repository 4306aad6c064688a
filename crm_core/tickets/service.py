"""Fault tickets, RMAs, paid repairs and complaints.

* Ticket numbers are `TK-` + 8 digits, drawn at random (not guessable from volume), checked
  against the table and drawn again when taken. On PostgreSQL the insert also runs inside a
  SAVEPOINT and is retried with a new number if a concurrent transaction took the same one
  first (unique violation on `tickets.ticket_number`); SQLite serialises writers, so the
  check inside the transaction is enough there.
* A serial on a ticket must belong to the customer (otherwise NotFound, the same text as an
  unknown serial); the product and category come from the unit sold.
* An RMA needs a serial whose warranty is active or expiring; for an expired or void warranty
  the RMA is refused (`RmaRefused`, a ValidationFailed) with the warranty reason and a pointer
  to a paid repair (kind `repair`).
* Priority defaults to `high` for complaints and `normal` otherwise; the SLA target is
  created_at + ticket_sla_hours[priority] and restarts when a done ticket is reopened.
* Status changes follow `crm_core.tickets.state_machine` and are recorded as TicketEvent
  rows (who, when, note); assignments are recorded as events without a status change.
* Customer-facing reads take the customer's id: another customer's ticket is NotFound with
  the same text as a ticket that does not exist.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.models import Product
from crm_core.clock import Clock
from crm_core.customers.models import Customer
from crm_core.errors import Conflict, NotFound, ValidationFailed
from crm_core.orders import repository as orders_repo
from crm_core.staff.models import StaffUser
from crm_core.tickets.models import Ticket, TicketEvent
from crm_core.tickets.schemas import TicketDTO, TicketEventDTO, TicketKind, TicketPriority
from crm_core.tickets.state_machine import (
    DONE_STATES,
    TicketStatus,
    allowed_targets,
    check_transition,
    is_reopen,
)
from crm_core.warranties.schemas import WarrantyState, WarrantyStatus
from crm_core.warranties.service import WarrantyService, canonical_serial

if TYPE_CHECKING:
    from app.settings import CrmSection

TICKET_NUMBER_RE = re.compile(r"(?<![A-Za-z0-9])[Tt][Kk]\s*[-－—_]?\s*(\d{8})(?!\d)")
NUMBER_ATTEMPTS = 8
MAX_SUBJECT = 200
MAX_ATTACHMENT_ID = 256


class RmaRefused(ValidationFailed):
    """An RMA was asked for a unit that is not under warranty: offer a paid repair instead."""

    suggested_kind = TicketKind.REPAIR

    def __init__(self, message: str, warranty: WarrantyStatus) -> None:
        super().__init__(message)
        self.warranty = warranty


def normalize_ticket_number(raw: str) -> str | None:
    """`TK-########` from what a person typed ("tk 12345678", "TK－12345678"), or None."""
    match = TICKET_NUMBER_RE.search(raw.strip())
    return f"TK-{match.group(1)}" if match else None


def _random_number() -> str:
    return f"TK-{secrets.randbelow(100_000_000):08d}"


def ticket_not_found(number: str) -> NotFound:
    """The one message for "no such ticket" and "not your ticket"."""
    return NotFound(f"No ticket {number} found on your account.")


class TicketService:
    """Tickets for one unit of work; the caller commits."""

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: CrmSection,
        warranties: WarrantyService | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.settings = settings
        self.warranties = warranties or WarrantyService(session, clock, settings)

    # --- create ----------------------------------------------------------------------------

    async def create(
        self,
        customer_id: int,
        *,
        kind: str = TicketKind.FAULT,
        symptom: str,
        serial_number: str | None = None,
        product_id: int | None = None,
        subject: str | None = None,
        attachments: Sequence[str] = (),
        priority: str | None = None,
        actor: str | None = None,
    ) -> TicketDTO:
        """Open a ticket for a customer (status `new`, first event recorded)."""
        if await self.session.get(Customer, customer_id) is None:
            raise NotFound(f"No customer #{customer_id}.")
        kind_value = self._kind(kind)
        text = symptom.strip()
        if not text:
            raise ValidationFailed("Describe the problem (symptom) to open a ticket.")
        priority_value = self._priority(priority, kind_value)

        serial: str | None = None
        if serial_number is not None and serial_number.strip():
            serial = canonical_serial(serial_number)
            owner = await orders_repo.serial_owner(self.session, serial)
            if owner is None or owner.customer_id != customer_id:
                raise NotFound(f"No product with serial number {serial} found on your account.")
            if product_id is not None and product_id != owner.product_id:
                raise ValidationFailed(
                    f"Serial number {serial} is not a unit of product #{product_id}."
                )
            product_id = owner.product_id
        category: str | None = None
        if product_id is not None:
            product = await self.session.get(Product, product_id)
            if product is None:
                raise NotFound(f"No product #{product_id}.")
            category = product.category

        if kind_value == TicketKind.RMA:
            await self._check_rma_allowed(serial, customer_id)

        now = self.clock.now()
        fields: dict[str, Any] = {
            "customer_id": customer_id,
            "serial_number": serial,
            "product_id": product_id,
            "category": category,
            "kind": kind_value.value,
            "subject": (subject or text.splitlines()[0]).strip()[:MAX_SUBJECT],
            "symptom": text,
            "attachments": [self._file_id(a) for a in attachments],
            "priority": priority_value.value,
            "status": TicketStatus.NEW.value,
            "sla_due_at": now + self._sla(priority_value.value),
            "created_at": now,
            "updated_at": now,
        }
        ticket = await self._insert_with_unique_number(fields)
        self.session.add(
            TicketEvent(
                ticket_id=ticket.id,
                from_status=None,
                to_status=TicketStatus.NEW.value,
                actor=actor or f"customer:{customer_id}",
                note=f"opened ({kind_value.value}, {priority_value.value})",
                at=now,
            )
        )
        await self.session.flush()
        return self._dto(ticket)

    # --- changes ---------------------------------------------------------------------------

    async def transition(
        self, ticket_number: str, to_status: str, *, actor: str, note: str | None = None
    ) -> TicketDTO:
        """Move a ticket to `to_status` (InvalidTransition names the allowed targets)."""
        ticket = await self._ticket(ticket_number)
        current = ticket.status
        target = check_transition(current, to_status)
        now = self.clock.now()
        if is_reopen(current, target):
            ticket.resolved_at = None
            ticket.closed_at = None
            ticket.sla_due_at = now + self._sla(ticket.priority)
        if target == TicketStatus.RESOLVED:
            ticket.resolved_at = now
            if note:
                ticket.resolution = note
        if target == TicketStatus.CLOSED:
            ticket.closed_at = now
        ticket.status = target.value
        ticket.updated_at = now
        self.session.add(
            TicketEvent(
                ticket_id=ticket.id,
                from_status=current,
                to_status=target.value,
                actor=actor,
                note=note,
                at=now,
            )
        )
        await self.session.flush()
        return self._dto(ticket)

    async def assign(
        self, ticket_number: str, staff_id: int | None, *, actor: str, note: str | None = None
    ) -> TicketDTO:
        """Assign the ticket to an active staff user (None = unassign); recorded as an event."""
        ticket = await self._ticket(ticket_number)
        if staff_id is not None:
            staff = await self.session.get(StaffUser, staff_id)
            if staff is None:
                raise NotFound(f"No staff user #{staff_id}.")
            if not staff.active:
                raise ValidationFailed(f"Staff user #{staff_id} ({staff.name}) is not active.")
        now = self.clock.now()
        ticket.assignee_staff_id = staff_id
        ticket.updated_at = now
        what = f"assigned to staff:{staff_id}" if staff_id is not None else "unassigned"
        self.session.add(
            TicketEvent(
                ticket_id=ticket.id,
                from_status=ticket.status,
                to_status=ticket.status,
                actor=actor,
                note=f"{what}: {note}" if note else what,
                at=now,
            )
        )
        await self.session.flush()
        return self._dto(ticket)

    async def add_attachment(
        self, ticket_number: str, file_id: str, *, customer_id: int | None = None
    ) -> TicketDTO:
        """Attach a Telegram file id. With `customer_id`, only to that customer's ticket."""
        ticket = await self._ticket(ticket_number, customer_id=customer_id)
        value = self._file_id(file_id)
        if value not in ticket.attachments:
            # A new list, so that the JSON column is seen as changed.
            ticket.attachments = [*ticket.attachments, value]
            ticket.updated_at = self.clock.now()
            await self.session.flush()
        return self._dto(ticket)

    # --- reads -----------------------------------------------------------------------------

    async def get(self, ticket_number: str) -> TicketDTO:
        """Any ticket (staff; the caller checks the role)."""
        return self._dto(await self._ticket(ticket_number))

    async def get_for_customer(self, ticket_number: str, customer_id: int) -> TicketDTO:
        """The customer's own ticket; someone else's is NotFound like a missing one."""
        return self._dto(await self._ticket(ticket_number, customer_id=customer_id))

    async def events(
        self, ticket_number: str, *, customer_id: int | None = None
    ) -> list[TicketEventDTO]:
        """The ticket's history, oldest first."""
        ticket = await self._ticket(ticket_number, customer_id=customer_id)
        result = await self.session.execute(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket.id)
            .order_by(TicketEvent.at, TicketEvent.id)
        )
        return [TicketEventDTO.model_validate(e) for e in result.scalars()]

    async def list_for_customer(self, customer_id: int, *, limit: int = 50) -> list[TicketDTO]:
        """A customer's tickets, newest first."""
        result = await self.session.execute(
            select(Ticket)
            .where(Ticket.customer_id == customer_id)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
        return [self._dto(t) for t in result.scalars()]

    async def list_tickets(
        self,
        *,
        status: str | Sequence[str] | None = None,
        assignee_staff_id: int | None = None,
        overdue: bool = False,
        customer_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TicketDTO]:
        """Tickets for the console queues, most urgent SLA first.

        `overdue=True`: SLA target in the past and not resolved or closed.
        """
        stmt = select(Ticket)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            for value in wanted:
                if value not in TicketStatus.__members__.values():
                    raise ValidationFailed(f"Unknown ticket status {value!r}.")
            stmt = stmt.where(Ticket.status.in_(wanted))
        if assignee_staff_id is not None:
            stmt = stmt.where(Ticket.assignee_staff_id == assignee_staff_id)
        if customer_id is not None:
            stmt = stmt.where(Ticket.customer_id == customer_id)
        if overdue:
            stmt = stmt.where(
                Ticket.sla_due_at < self.clock.now(),
                Ticket.status.not_in([s.value for s in DONE_STATES]),
            )
        stmt = (
            stmt.order_by(Ticket.sla_due_at.is_(None), Ticket.sla_due_at, Ticket.id)
            .limit(limit)
            .offset(offset)
        )
        result = await self.session.execute(stmt)
        return [self._dto(t) for t in result.scalars()]

    # --- internals -------------------------------------------------------------------------

    async def _ticket(self, ticket_number: str, *, customer_id: int | None = None) -> Ticket:
        number = normalize_ticket_number(ticket_number)
        if number is None:
            raise NotFound(
                f"{ticket_number.strip()!r} is not a ticket number (expected TK- and 8 digits)."
            )
        stmt = select(Ticket).where(Ticket.ticket_number == number)
        if customer_id is not None:
            stmt = stmt.where(Ticket.customer_id == customer_id)
        ticket = (await self.session.execute(stmt)).scalar_one_or_none()
        if ticket is None:
            raise ticket_not_found(number)
        return ticket

    async def _check_rma_allowed(self, serial: str | None, customer_id: int) -> None:
        if serial is None:
            raise ValidationFailed(
                "An RMA needs the serial number of the unit (SN followed by 10 characters)."
            )
        warranty = await self.warranties.warranty_by_serial(serial, customer_id=customer_id)
        if warranty.status in (WarrantyState.EXPIRED, WarrantyState.VOID):
            raise RmaRefused(
                f"{serial} is not under warranty ({warranty.reason}), so an RMA is not possible. "
                "We can open a paid repair instead (ticket kind 'repair'): diagnosis fee "
                "99 CNY / 15 USD, waived if you accept the repair quote.",
                warranty,
            )

    async def _number_is_free(self, number: str) -> bool:
        result = await self.session.execute(select(Ticket.id).where(Ticket.ticket_number == number))
        return result.first() is None

    async def _free_number(self) -> str:
        for _ in range(NUMBER_ATTEMPTS):
            candidate = _random_number()
            if await self._number_is_free(candidate):
                return candidate
        raise Conflict("Could not allocate a free ticket number; please try again.")

    async def _insert_with_unique_number(self, fields: dict[str, Any]) -> Ticket:
        if self.session.get_bind().dialect.name != "postgresql":
            ticket = Ticket(ticket_number=await self._free_number(), **fields)
            self.session.add(ticket)
            await self.session.flush()
            return ticket
        for attempt in range(NUMBER_ATTEMPTS):
            ticket = Ticket(ticket_number=await self._free_number(), **fields)
            try:
                async with self.session.begin_nested():
                    self.session.add(ticket)
                    await self.session.flush()
            except IntegrityError as exc:
                taken = "ticket_number" in str(exc.orig)
                if not taken or attempt == NUMBER_ATTEMPTS - 1:
                    raise
                continue
            return ticket
        raise Conflict("Could not allocate a free ticket number; please try again.")

    def _kind(self, kind: str) -> TicketKind:
        try:
            return TicketKind(kind)
        except ValueError:
            allowed = ", ".join(k.value for k in TicketKind)
            raise ValidationFailed(f"Unknown ticket kind {kind!r}; use one of {allowed}.") from None

    def _priority(self, priority: str | None, kind: TicketKind) -> TicketPriority:
        if priority is None:
            return TicketPriority.HIGH if kind == TicketKind.COMPLAINT else TicketPriority.NORMAL
        try:
            return TicketPriority(priority)
        except ValueError:
            allowed = ", ".join(p.value for p in TicketPriority)
            raise ValidationFailed(
                f"Unknown priority {priority!r}; use one of {allowed}."
            ) from None

    def _sla(self, priority: str) -> timedelta:
        hours = self.settings.ticket_sla_hours.get(priority)
        if hours is None:
            raise ValidationFailed(f"No SLA configured for priority {priority!r}.")
        return timedelta(hours=hours)

    @staticmethod
    def _file_id(file_id: str) -> str:
        value = file_id.strip()
        if not value or len(value) > MAX_ATTACHMENT_ID:
            raise ValidationFailed("An attachment must be a Telegram file id.")
        return value

    def _dto(self, ticket: Ticket) -> TicketDTO:
        dto = TicketDTO.model_validate(ticket)
        done = ticket.status in {s.value for s in DONE_STATES}
        dto.overdue = (
            not done and ticket.sla_due_at is not None and ticket.sla_due_at < self.clock.now()
        )
        dto.allowed_transitions = [s.value for s in allowed_targets(ticket.status)]
        return dto

"""Warranty status of sold units, extended warranties and voids.

The rules (they agree with knowledge_base/articles/README.md, numbers from `CrmSection`):

* Start: the UTC calendar date of the order's delivery. When the delivery date is unknown
  (not recorded, or not delivered yet) the purchase date (`placed_at`) is used, and the reason
  says so.
* Length: the product's `warranty_months` plus the months of every `WarrantyExtension` of
  that serial.
* End: start + length in calendar months; when the start day does not exist in the end month
  it is clamped to that month's last day (2024-02-29 + 12 months → 2025-02-28; 2024-01-31 +
  1 month → 2024-02-29). The unit is covered through the END of the end date, in UTC dates:
  on the end date itself the warranty is still active.
* Status, first match wins: `void` (a `WarrantyVoid` row, or the order was cancelled or
  returned), `expired` (today > end), `expiring` (end − today ≤ warranty_expiring_days, so
  exactly 30 days left is expiring, 31 is active), else `active`.
* Extended warranty (+12 or +24 months) can only be bought while the STANDARD warranty (without
  earlier extensions) is still running and the unit is not void.

Every lookup is one SQL statement walking unique/foreign-key indexes
(customers.telegram_user_id → orders.customer_id → order_items.order_id →
order_item_serials.order_item_id, warranty_voids.serial_number,
warranty_extensions.serial_number via a correlated sum).
"""

from __future__ import annotations

import calendar
import functools
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.models import Product
from crm_core.clock import Clock
from crm_core.customers.models import Customer
from crm_core.errors import Conflict, NotFound, ValidationFailed
from crm_core.ids import normalize_order_number, normalize_serial_number
from crm_core.orders.models import Order, OrderItem, OrderItemSerial
from crm_core.staff.models import StaffUser
from crm_core.warranties.models import WarrantyExtension, WarrantyVoid
from crm_core.warranties.schemas import WarrantyExtensionDTO, WarrantyState, WarrantyStatus

if TYPE_CHECKING:
    from app.settings import CrmSection

EXTENSION_MONTHS = (12, 24)
NOT_COVERED_ORDER_STATUSES = ("cancelled", "returned")


def add_months(start: date, months: int) -> date:
    """`start` + `months` calendar months, clamped to the end of the target month."""
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last_day))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def evaluate_warranty(
    *,
    today: date,
    placed_at: datetime,
    delivered_at: datetime | None,
    standard_months: int,
    extension_months: int,
    expiring_days: int,
    order_number: str,
    order_status: str,
    void_reason: str | None = None,
    voided_at: datetime | None = None,
) -> dict[str, Any]:
    """The status fields of a `WarrantyStatus` (pure: no database, no clock)."""
    basis: Literal["delivery", "purchase"] = "delivery" if delivered_at else "purchase"
    starts_on = (delivered_at or placed_at).date()
    total = standard_months + extension_months
    ends_on = add_months(starts_on, total)
    standard_ends_on = add_months(starts_on, standard_months)
    days_left = (ends_on - today).days

    basis_text = (
        f"from delivery on {starts_on.isoformat()}"
        if basis == "delivery"
        else f"from purchase on {starts_on.isoformat()}; the delivery date is unknown, "
        "so the warranty counts from the purchase date"
    )
    extension_text = (
        f", incl. {_plural(extension_months, 'month')} extended warranty"
        if extension_months
        else ""
    )
    detail = f"({_plural(total, 'month')} {basis_text}{extension_text})"

    if void_reason is not None:
        status = WarrantyState.VOID
        when = f" (voided on {voided_at.date().isoformat()})" if voided_at else ""
        reason = f"Void: {void_reason}{when}"
    elif order_status in NOT_COVERED_ORDER_STATUSES:
        status = WarrantyState.VOID
        reason = f"Not covered: order {order_number} was {order_status}"
    elif days_left < 0:
        status = WarrantyState.EXPIRED
        reason = f"Expired on {ends_on.isoformat()} {detail}"
    elif days_left <= expiring_days:
        status = WarrantyState.EXPIRING
        left = "today" if days_left == 0 else f"in {_plural(days_left, 'day')}"
        reason = f"Expiring {left}, on {ends_on.isoformat()} {detail}"
    else:
        status = WarrantyState.ACTIVE
        reason = f"Active until {ends_on.isoformat()} {detail}"

    return {
        "status": status,
        "reason": reason,
        "start_basis": basis,
        "starts_on": starts_on,
        "ends_on": ends_on,
        "standard_ends_on": standard_ends_on,
        "standard_months": standard_months,
        "extension_months": extension_months,
        "total_months": total,
        "days_left": max(0, days_left),
        "extension_available": status != WarrantyState.VOID and today <= standard_ends_on,
        "void_reason": void_reason,
        "voided_at": voided_at,
    }


def _extension_months_of(serial_column: Any) -> Any:
    """Correlated SUM of extension months for a serial column (uses the serial index)."""
    return (
        select(func.coalesce(func.sum(WarrantyExtension.months), 0))
        .where(WarrantyExtension.serial_number == serial_column)
        .scalar_subquery()
    )


def _status_select(*, with_unserialised_items: bool = False) -> Select[*tuple[Any, ...]]:
    """Everything a warranty status needs, one row per serial (or per line without serials)."""
    stmt = select(
        OrderItemSerial.serial_number,
        OrderItem.id.label("order_item_id"),
        Order.order_number,
        Order.status.label("order_status"),
        Order.placed_at,
        Order.delivered_at,
        Order.customer_id,
        Product.id.label("product_id"),
        Product.sku,
        Product.name_en,
        Product.name_zh,
        Product.category,
        Product.warranty_months,
        _extension_months_of(OrderItemSerial.serial_number).label("extension_months"),
        WarrantyVoid.reason.label("void_reason"),
        WarrantyVoid.voided_at,
    )
    if with_unserialised_items:
        stmt = stmt.select_from(OrderItem).outerjoin(
            OrderItemSerial, OrderItemSerial.order_item_id == OrderItem.id
        )
    else:
        stmt = stmt.select_from(OrderItemSerial).join(
            OrderItem, OrderItem.id == OrderItemSerial.order_item_id
        )
    return (
        stmt.join(Order, Order.id == OrderItem.order_id)
        .join(Product, Product.id == OrderItem.product_id)
        .outerjoin(WarrantyVoid, WarrantyVoid.serial_number == OrderItemSerial.serial_number)
    )


# The hot lookups are built once (pure SQL expressions, no connection) and take bound
# parameters, so each call skips statement construction and hits SQLAlchemy's compiled cache.
_COVERED = Order.status.not_in(NOT_COVERED_ORDER_STATUSES)
_NEWEST_FIRST = (Order.placed_at.desc(), OrderItem.id, OrderItemSerial.serial_number)


@functools.cache
def _by_serial_stmt() -> Select[*tuple[Any, ...]]:
    return _status_select().where(OrderItemSerial.serial_number == bindparam("serial"))


@functools.cache
def _by_telegram_user_stmt() -> Select[*tuple[Any, ...]]:
    return (
        _status_select()
        .join(Customer, Customer.id == Order.customer_id)
        .where(Customer.telegram_user_id == bindparam("telegram_user_id"), _COVERED)
        .order_by(*_NEWEST_FIRST)
    )


@functools.cache
def _by_customer_stmt() -> Select[*tuple[Any, ...]]:
    return (
        _status_select()
        .where(Order.customer_id == bindparam("customer_id"), _COVERED)
        .order_by(*_NEWEST_FIRST)
    )


def canonical_serial(raw: str) -> str:
    """`SN` + 10 upper-case characters from what a person typed, else NotFound."""
    serial = normalize_serial_number(raw)
    if serial is None:
        raise NotFound(
            f"{raw.strip()!r} is not a serial number (expected SN and 10 letters or digits)."
        )
    return serial


def serial_not_found(serial: str) -> NotFound:
    return NotFound(f"No product with serial number {serial} found.")


class WarrantyService:
    """Warranty lookups (bot, console) and changes (extensions, voids) in one unit of work."""

    def __init__(self, session: AsyncSession, clock: Clock, settings: CrmSection) -> None:
        self.session = session
        self.clock = clock
        self.settings = settings

    # --- lookups ---------------------------------------------------------------------------

    async def warranty_by_serial(
        self, serial_number: str, *, customer_id: int | None = None
    ) -> WarrantyStatus:
        """Status of one unit (one query). With `customer_id`, someone else's unit is NotFound."""
        serial = canonical_serial(serial_number)
        result = await self.session.execute(_by_serial_stmt(), {"serial": serial})
        row = result.mappings().one_or_none()
        if row is None or (customer_id is not None and row["customer_id"] != customer_id):
            raise serial_not_found(serial)
        return self._status(row)

    async def warranty_for_telegram_user(self, telegram_user_id: int) -> list[WarrantyStatus]:
        """Every serial the customer with this Telegram account bought, newest order first.

        One indexed query. Units of cancelled or returned orders are left out; an unknown
        Telegram user simply has no units (identification is the customers domain's job).
        """
        result = await self.session.execute(
            _by_telegram_user_stmt(), {"telegram_user_id": telegram_user_id}
        )
        return [self._status(row) for row in result.mappings().all()]

    async def warranty_for_customer(self, customer_id: int) -> list[WarrantyStatus]:
        """Like `warranty_for_telegram_user`, by customer id (console, staff topic header)."""
        result = await self.session.execute(_by_customer_stmt(), {"customer_id": customer_id})
        return [self._status(row) for row in result.mappings().all()]

    async def expiring_units(self, within_days: int) -> list[WarrantyStatus]:
        """Serialised units (of any customer) whose warranty ends within `within_days` and is
        not void or expired yet, soonest first (the campaigns' extended-warranty rule).

        Only orders young enough to still be covered are read: placed within the longest
        standard warranty in the catalog plus the longest extension (and a month's slack).
        """
        longest = await self.session.scalar(select(func.max(Product.warranty_months))) or 0
        months = int(longest) + max(EXTENSION_MONTHS) + 1
        oldest = self.clock.now() - timedelta(days=31 * months)
        result = await self.session.execute(
            _status_select()
            .where(_COVERED, Order.placed_at >= oldest)
            .order_by(Order.id, OrderItemSerial.serial_number)
        )
        today = self.clock.now().date()
        out: list[WarrantyStatus] = []
        for row in result.mappings():
            unit = self._status(row)
            if (
                unit.status in (WarrantyState.ACTIVE, WarrantyState.EXPIRING)
                and (unit.ends_on - today).days <= within_days
            ):
                out.append(unit)
        out.sort(key=lambda u: (u.ends_on, u.serial_number or ""))
        return out

    async def warranty_for_order(
        self, order_number: str, customer_id: int, *, order_item_id: int | None = None
    ) -> list[WarrantyStatus]:
        """Per unit (and per line sold without serials) of one of the customer's orders.

        Another customer's order is NotFound with the same text as a missing one.
        """
        number = normalize_order_number(order_number)
        if number is None:
            raise NotFound(
                f"{order_number.strip()!r} is not an order number (expected SO- and 8 digits)."
            )
        stmt = _status_select(with_unserialised_items=True).where(
            Order.order_number == number, Order.customer_id == customer_id
        )
        if order_item_id is not None:
            stmt = stmt.where(OrderItem.id == order_item_id)
        result = await self.session.execute(
            stmt.order_by(OrderItem.id, OrderItemSerial.serial_number)
        )
        rows = result.mappings().all()
        if not rows:
            if order_item_id is not None:
                raise NotFound(f"Order {number} has no item #{order_item_id} on your account.")
            raise NotFound(f"No order {number} found on your account.")
        return [self._status(row) for row in rows]

    async def extensions(self, serial_number: str) -> list[WarrantyExtensionDTO]:
        serial = canonical_serial(serial_number)
        result = await self.session.execute(
            select(WarrantyExtension)
            .where(WarrantyExtension.serial_number == serial)
            .order_by(WarrantyExtension.id)
        )
        return [WarrantyExtensionDTO.model_validate(row) for row in result.scalars()]

    # --- changes ---------------------------------------------------------------------------

    async def add_extension(
        self,
        serial_number: str,
        months: int,
        order_number: str | None = None,
        *,
        customer_id: int | None = None,
    ) -> WarrantyStatus:
        """Record an extended warranty (+12 or +24 months) bought on `order_number`.

        Allowed only while the standard warranty of the unit is still running and the unit is
        not void (policy); otherwise ValidationFailed. The same extension order recorded twice
        for a serial is a Conflict.
        """
        if months not in EXTENSION_MONTHS:
            raise ValidationFailed(f"An extended warranty adds 12 or 24 months, not {months}.")
        current = await self.warranty_by_serial(serial_number, customer_id=customer_id)
        serial = current.serial_number or ""
        if current.status == WarrantyState.VOID:
            raise ValidationFailed(
                f"The warranty of {serial} is void ({current.reason}); it cannot be extended."
            )
        if not current.extension_available:
            raise ValidationFailed(
                f"An extended warranty can only be bought while the standard warranty is "
                f"active; the standard warranty of {serial} ended on "
                f"{current.standard_ends_on.isoformat()}."
            )
        number: str | None = None
        if order_number is not None:
            number = normalize_order_number(order_number)
            if number is None:
                raise ValidationFailed(
                    f"{order_number.strip()!r} is not an order number (SO- and 8 digits)."
                )
            duplicate = await self.session.execute(
                select(WarrantyExtension.id).where(
                    WarrantyExtension.serial_number == serial,
                    WarrantyExtension.order_number == number,
                )
            )
            if duplicate.first() is not None:
                raise Conflict(f"The extension of {serial} on order {number} is already recorded.")
        self.session.add(
            WarrantyExtension(
                serial_number=serial,
                months=months,
                order_number=number,
                purchased_at=self.clock.now(),
            )
        )
        await self.session.flush()
        return await self.warranty_by_serial(serial)

    async def void(self, serial_number: str, reason: str, staff_id: int | None) -> WarrantyStatus:
        """Void the warranty of a unit (physical or liquid damage, tampered label, ...)."""
        text = reason.strip()
        if not text:
            raise ValidationFailed("Say why the warranty is void (it is shown to the customer).")
        current = await self.warranty_by_serial(serial_number)
        serial = current.serial_number or ""
        if current.void_reason is not None:
            raise Conflict(f"The warranty of {serial} is already void: {current.void_reason}.")
        if staff_id is not None and await self.session.get(StaffUser, staff_id) is None:
            raise NotFound(f"No staff user #{staff_id}.")
        self.session.add(
            WarrantyVoid(
                serial_number=serial,
                reason=text,
                voided_by_staff_id=staff_id,
                voided_at=self.clock.now(),
            )
        )
        await self.session.flush()
        return await self.warranty_by_serial(serial)

    # --- internals -------------------------------------------------------------------------

    def _status(self, row: Any) -> WarrantyStatus:
        fields = evaluate_warranty(
            today=self.clock.now().date(),
            placed_at=row["placed_at"],
            delivered_at=row["delivered_at"],
            standard_months=int(row["warranty_months"]),
            extension_months=int(row["extension_months"] or 0) if row["serial_number"] else 0,
            expiring_days=self.settings.warranty_expiring_days,
            order_number=row["order_number"],
            order_status=row["order_status"],
            void_reason=row["void_reason"],
            voided_at=row["voided_at"],
        )
        return WarrantyStatus(
            serial_number=row["serial_number"],
            order_number=row["order_number"],
            order_item_id=row["order_item_id"],
            customer_id=row["customer_id"],
            product_id=row["product_id"],
            sku=row["sku"],
            product_name_en=row["name_en"],
            product_name_zh=row["name_zh"],
            category=row["category"],
            **fields,
        )

"""Orders as the customer sees them: status, items and serials, cancellation and returns.

Access rule: every customer-facing method takes the asking customer's id. An order that
exists but belongs to someone else raises exactly the same `NotFound` as a missing order, so
nobody can probe other people's order numbers.

Return policy (knowledge_base/articles/README.md; numbers from `CrmSection`):

* Windows count in UTC calendar days from the delivery date. The delivery day is day 0; the
  no-reason window is open through the end of day `return_window_days` (14): delivered on
  06-01 → a return can be requested until 06-15 23:59:59 UTC, not on 06-16.
* A faulty item (dead on arrival) can be reported through day `doa_window_days` (30) and is
  replaced first; after that it is a warranty case (RMA ticket).
* An order that is not delivered yet is not returned: it can be cancelled while pending or
  paid; once shipped the customer refuses the parcel or returns it after delivery.
* At most the bought quantity minus the units already in a (non-rejected) return can go back.

Return states: requested → approved → received → refunded; requested, approved and received
can also end in rejected. Refunded and rejected are final. When every unit of an order has
been refunded the order's status becomes `returned`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.models import Product
from crm_core.clock import Clock
from crm_core.errors import InvalidTransition, NotFound, ValidationFailed
from crm_core.ids import normalize_order_number, normalize_serial_number
from crm_core.orders import repository as repo
from crm_core.orders.models import Order, OrderItem, Return
from crm_core.orders.schemas import (
    OrderDTO,
    OrderItemDTO,
    OrderSummaryDTO,
    ReturnCode,
    ReturnDTO,
    ReturnEligibility,
)

if TYPE_CHECKING:
    from app.settings import CrmSection

CANCELLABLE_STATUSES = ("pending", "paid")

Lines = Sequence[tuple[OrderItem, Product]]

# Return state machine: from-status → allowed to-statuses.
RETURN_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "requested": ("approved", "rejected"),
    "approved": ("received", "rejected"),
    "received": ("refunded", "rejected"),
    "refunded": (),
    "rejected": (),
}


def order_not_found(order_number: str) -> NotFound:
    """The one message for "no such order" and "not your order"."""
    return NotFound(f"No order {order_number} found on your account.")


def canonical_order_number(raw: str) -> str:
    """`SO-########` from what a person typed ("so 10023456", "SO－10023456"), else NotFound."""
    number = normalize_order_number(raw)
    if number is None:
        raise NotFound(f"{raw.strip()!r} is not an order number (expected SO- and 8 digits).")
    return number


class OrderService:
    """Order lookups, cancellation and returns for one unit of work."""

    def __init__(self, session: AsyncSession, clock: Clock, settings: CrmSection) -> None:
        self.session = session
        self.clock = clock
        self.settings = settings

    # --- lookups ---------------------------------------------------------------------------

    async def get_order(self, order_number: str, customer_id: int) -> OrderDTO:
        """The customer's order with items, product names (zh/en) and serials."""
        order = await self._customer_order(order_number, customer_id)
        return await self._order_dto(order)

    async def order_status(self, order_number: str, customer_id: int) -> OrderDTO:
        """Status answer for the bot: status, placed/delivered dates, items and serials."""
        return await self.get_order(order_number, customer_id)

    async def get_order_for_staff(self, order_number: str) -> OrderDTO:
        """Any order by number (staff console; the caller checks the staff role)."""
        number = canonical_order_number(order_number)
        order = await repo.order_by_number(self.session, number)
        if order is None:
            raise order_not_found(number)
        return await self._order_dto(order)

    async def list_orders(
        self, customer_id: int, *, limit: int = 50, offset: int = 0
    ) -> list[OrderSummaryDTO]:
        """A customer's orders, newest first."""
        orders = await repo.customer_orders(self.session, customer_id, limit=limit, offset=offset)
        return [OrderSummaryDTO.model_validate(order) for order in orders]

    # --- cancellation ----------------------------------------------------------------------

    async def cancel_order(self, order_number: str, customer_id: int) -> OrderDTO:
        """Cancel an order that has not shipped yet (pending or paid)."""
        order = await self._customer_order(order_number, customer_id)
        if order.status not in CANCELLABLE_STATUSES:
            raise ValidationFailed(
                f"Order {order.order_number} is {order.status} and can no longer be cancelled."
            )
        order.status = "cancelled"
        order.updated_at = self.clock.now()
        await self.session.flush()
        return await self._order_dto(order)

    # --- returns ---------------------------------------------------------------------------

    async def return_eligibility(
        self,
        order_number: str,
        customer_id: int,
        *,
        order_item_id: int | None = None,
        serial_number: str | None = None,
        faulty: bool = False,
    ) -> ReturnEligibility:
        """Can this order (or one line of it, by item id or serial) go back, and why (not)?

        `faulty=True` checks the dead-on-arrival window instead of the no-reason window.
        """
        order = await self._customer_order(order_number, customer_id)
        item_id = await self._resolve_item(order, order_item_id, serial_number)
        return await self._eligibility(order, item_id, faulty)

    async def request_return(
        self,
        order_number: str,
        customer_id: int,
        *,
        order_item_id: int | None = None,
        serial_number: str | None = None,
        quantity: int | None = None,
        reason: str = "",
        faulty: bool = False,
    ) -> ReturnDTO:
        """Open a return (status `requested`) for one order line.

        The line is given by id or serial, or is implied when the order has one returnable
        line. A serial means one unit; otherwise `quantity` defaults to every unit not yet
        returned. Raises ValidationFailed with the eligibility reason when not allowed.
        """
        order = await self._customer_order(order_number, customer_id)
        item_id = await self._resolve_item(order, order_item_id, serial_number)
        if serial_number is not None:
            if quantity not in (None, 1):
                raise ValidationFailed("A serial number identifies one unit: quantity must be 1.")
            quantity = 1
        if item_id is None:
            item_id = await self._only_returnable_item(order)
        eligibility = await self._eligibility(order, item_id, faulty)
        if not eligibility.eligible:
            raise ValidationFailed(eligibility.reason)
        remaining = eligibility.returnable_quantity
        if quantity is None:
            quantity = remaining
        if quantity < 1:
            raise ValidationFailed("The quantity to return must be at least 1.")
        if quantity > remaining:
            raise ValidationFailed(
                f"Only {remaining} unit(s) of this item can still be returned "
                f"(you asked for {quantity})."
            )
        # The Return row has no kind or serial column: both go into the reason text.
        text = reason.strip()
        if faulty:
            text = f"[DOA] {text or 'Dead on arrival'}"
        if serial_number is not None:
            text = f"{text} [{normalize_serial_number(serial_number)}]".strip()
        now = self.clock.now()
        row = Return(
            order_id=order.id,
            order_item_id=item_id,
            quantity=quantity,
            reason=text,
            status="requested",
            requested_at=now,
            updated_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        return _return_dto(row, order.order_number)

    async def returns_for_order(self, order_number: str, customer_id: int) -> list[ReturnDTO]:
        """The returns of one of the customer's orders."""
        order = await self._customer_order(order_number, customer_id)
        rows = await repo.returns_of_order(self.session, order.id)
        return [_return_dto(row, order.order_number) for row in rows]

    async def transition_return(
        self, return_id: int, to_status: str, *, refund_amount: Decimal | None = None
    ) -> ReturnDTO:
        """Move a return along requested → approved → received → refunded (or → rejected).

        Refunding without an amount refunds unit price × quantity (the order total for a
        whole-order return). When every unit of the order is refunded, the order becomes
        `returned`.
        """
        row = await self.session.get(Return, return_id)
        if row is None:
            raise NotFound(f"No return #{return_id} found.")
        allowed = RETURN_TRANSITIONS.get(row.status, ())
        if to_status not in allowed:
            targets = ", ".join(allowed) or "none (final state)"
            raise InvalidTransition(
                f"Return #{return_id} is {row.status}; it cannot become {to_status}. "
                f"Allowed: {targets}."
            )
        order = await self.session.get(Order, row.order_id)
        if order is None:  # pragma: no cover - foreign key guarantees it
            raise NotFound(f"No order for return #{return_id}.")
        lines = await repo.items_with_products(self.session, order.id)
        if to_status == "refunded":
            if refund_amount is None:
                refund_amount = _default_refund(row, order, lines)
            if refund_amount < 0:
                raise ValidationFailed("A refund amount cannot be negative.")
            row.refund_amount = refund_amount
        row.status = to_status
        row.updated_at = self.clock.now()
        await self.session.flush()
        if to_status == "refunded":
            await self._mark_returned_when_fully_refunded(order, lines)
        return _return_dto(row, order.order_number)

    # --- internals -------------------------------------------------------------------------

    async def _customer_order(self, order_number: str, customer_id: int) -> Order:
        number = canonical_order_number(order_number)
        order = await repo.customer_order(self.session, number, customer_id)
        if order is None:
            raise order_not_found(number)
        return order

    async def _order_dto(self, order: Order) -> OrderDTO:
        lines = await repo.items_with_products(self.session, order.id)
        serials = await repo.serials_by_item(self.session, [item.id for item, _ in lines])
        returned, whole_order = await repo.returned_quantities(self.session, order.id)
        items = [
            OrderItemDTO(
                id=item.id,
                product_id=product.id,
                sku=product.sku,
                name_en=product.name_en,
                name_zh=product.name_zh,
                category=product.category,
                quantity=item.quantity,
                unit_price=item.unit_price,
                serial_numbers=serials.get(item.id, []),
                returned_quantity=item.quantity
                if whole_order
                else min(item.quantity, returned.get(item.id, 0)),
            )
            for item, product in lines
        ]
        return OrderDTO(
            order_number=order.order_number,
            customer_id=order.customer_id,
            status=order.status,
            channel=order.channel,
            placed_at=order.placed_at,
            delivered_at=order.delivered_at,
            currency=order.currency,
            total=order.total,
            items=items,
        )

    async def _resolve_item(
        self, order: Order, order_item_id: int | None, serial_number: str | None
    ) -> int | None:
        """The order line meant by an item id or a serial (which must be on this order)."""
        if serial_number is not None:
            serial = normalize_serial_number(serial_number)
            owner = await repo.serial_owner(self.session, serial) if serial else None
            if owner is None or owner.order_id != order.id:
                raise NotFound(
                    f"Serial number {serial or serial_number.strip()} is not on order "
                    f"{order.order_number}."
                )
            if order_item_id is not None and order_item_id != owner.order_item_id:
                raise ValidationFailed("The serial number belongs to a different order item.")
            return owner.order_item_id
        if order_item_id is not None:
            lines = await repo.items_with_products(self.session, order.id)
            if order_item_id not in {item.id for item, _ in lines}:
                raise NotFound(f"Order {order.order_number} has no item #{order_item_id}.")
        return order_item_id

    async def _only_returnable_item(self, order: Order) -> int | None:
        """The single line with units left to return; ValidationFailed when it is ambiguous."""
        lines = await repo.items_with_products(self.session, order.id)
        returned, whole_order = await repo.returned_quantities(self.session, order.id)
        if whole_order:
            return lines[0][0].id if lines else None
        open_lines = [item for item, _ in lines if item.quantity > returned.get(item.id, 0)]
        if len(open_lines) > 1:
            names = "; ".join(
                f"#{item.id} {product.name_en}" for item, product in lines if item in open_lines
            )
            raise ValidationFailed(
                f"Order {order.order_number} has several items ({names}): say which one to return."
            )
        if open_lines:
            return open_lines[0].id
        return lines[0][0].id if lines else None

    async def _eligibility(
        self, order: Order, item_id: int | None, faulty: bool
    ) -> ReturnEligibility:
        number = order.order_number
        base = {"order_number": number, "order_item_id": item_id}

        if order.status == "cancelled":
            return ReturnEligibility(
                eligible=False,
                code=ReturnCode.ORDER_CANCELLED,
                reason=f"Order {number} was cancelled; there is nothing to return.",
                **base,
            )
        if order.status == "returned":
            return ReturnEligibility(
                eligible=False,
                code=ReturnCode.ALREADY_RETURNED,
                reason=f"Order {number} has already been returned.",
                **base,
            )
        if order.delivered_at is None:
            if order.status in CANCELLABLE_STATUSES:
                return ReturnEligibility(
                    eligible=False,
                    code=ReturnCode.CANCEL_INSTEAD,
                    can_cancel=True,
                    reason=(
                        f"Order {number} has not shipped yet, so it does not need a return: "
                        "you can cancel it instead."
                    ),
                    **base,
                )
            if order.status == "shipped":
                return ReturnEligibility(
                    eligible=False,
                    code=ReturnCode.NOT_DELIVERED,
                    reason=(
                        f"Order {number} is on its way. You can refuse the parcel on delivery, "
                        f"or return it within {self.settings.return_window_days} days after "
                        "delivery."
                    ),
                    **base,
                )
            return ReturnEligibility(
                eligible=False,
                code=ReturnCode.DELIVERY_DATE_UNKNOWN,
                reason=(
                    f"The delivery date of order {number} is not recorded, so the return "
                    "window cannot be checked automatically; an agent will look at it."
                ),
                **base,
            )

        remaining = await self._returnable_quantity(order, item_id)
        if remaining == 0:
            what = f"item #{item_id} of order {number}" if item_id else f"order {number}"
            return ReturnEligibility(
                eligible=False,
                code=ReturnCode.ALREADY_RETURNED,
                reason=f"Every unit of {what} is already returned or in a return.",
                **base,
            )

        delivered_on = order.delivered_at.date()
        today = self.clock.now().date()
        no_reason_end = delivered_on + timedelta(days=self.settings.return_window_days)
        doa_end = delivered_on + timedelta(days=self.settings.doa_window_days)
        common = {
            **base,
            "delivered_on": delivered_on,
            "returnable_quantity": remaining,
        }
        if faulty:
            if today <= doa_end:
                return ReturnEligibility(
                    eligible=True,
                    code=ReturnCode.DOA_REPLACEMENT,
                    window_ends_on=doa_end,
                    reason=(
                        f"Delivered on {_fmt(delivered_on)}: a faulty item reported within "
                        f"{self.settings.doa_window_days} days (until {_fmt(doa_end)}) is "
                        "dead on arrival and is replaced first."
                    ),
                    **common,
                )
            return ReturnEligibility(
                eligible=False,
                code=ReturnCode.DOA_WINDOW_EXPIRED,
                window_ends_on=doa_end,
                reason=(
                    f"Delivered on {_fmt(delivered_on)}: the {self.settings.doa_window_days}-day "
                    f"dead-on-arrival window ended on {_fmt(doa_end)}. A faulty product is now "
                    "handled as a warranty repair (RMA ticket)."
                ),
                **common,
            )
        if today <= no_reason_end:
            return ReturnEligibility(
                eligible=True,
                code=ReturnCode.NO_REASON_RETURN,
                window_ends_on=no_reason_end,
                reason=(
                    f"Delivered on {_fmt(delivered_on)}: returnable without a reason until "
                    f"{_fmt(no_reason_end)} ({self.settings.return_window_days} days), as new "
                    "and in the original packaging."
                ),
                **common,
            )
        hint = (
            f" If it is faulty, it still qualifies as dead on arrival until {_fmt(doa_end)}."
            if today <= doa_end
            else " If it is faulty, it is handled as a warranty repair (RMA ticket)."
        )
        return ReturnEligibility(
            eligible=False,
            code=ReturnCode.WINDOW_EXPIRED,
            window_ends_on=no_reason_end,
            reason=(
                f"Delivered on {_fmt(delivered_on)}: the {self.settings.return_window_days}-day "
                f"return window ended on {_fmt(no_reason_end)}.{hint}"
            ),
            **common,
        )

    async def _returnable_quantity(self, order: Order, item_id: int | None) -> int:
        lines = await repo.items_with_products(self.session, order.id)
        returned, whole_order = await repo.returned_quantities(self.session, order.id)
        if whole_order:
            return 0
        return sum(
            max(0, item.quantity - returned.get(item.id, 0))
            for item, _ in lines
            if item_id is None or item.id == item_id
        )

    async def _mark_returned_when_fully_refunded(self, order: Order, lines: Lines) -> None:
        refunded: dict[int | None, int] = {}
        for row in await repo.returns_of_order(self.session, order.id):
            if row.status == "refunded":
                refunded[row.order_item_id] = refunded.get(row.order_item_id, 0) + row.quantity
        fully = None in refunded or all(
            refunded.get(item.id, 0) >= item.quantity for item, _ in lines
        )
        if fully and lines:
            order.status = "returned"
            order.updated_at = self.clock.now()
            await self.session.flush()


def _default_refund(row: Return, order: Order, lines: Lines) -> Decimal:
    """Unit price × quantity of the returned line (the order total for a whole-order return)."""
    if row.order_item_id is None:
        return order.total
    for item, _product in lines:
        if item.id == row.order_item_id:
            return (item.unit_price * row.quantity).quantize(Decimal("0.01"))
    return Decimal("0.00")


def _return_dto(row: Return, order_number: str) -> ReturnDTO:
    return ReturnDTO(
        id=row.id,
        order_number=order_number,
        order_item_id=row.order_item_id,
        quantity=row.quantity,
        reason=row.reason,
        status=row.status,
        refund_amount=row.refund_amount,
        requested_at=row.requested_at,
        updated_at=row.updated_at,
    )


def _fmt(day: date) -> str:
    return day.isoformat()

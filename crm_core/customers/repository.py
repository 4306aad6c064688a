"""Queries of the customers domain: lookups, purchase history, and the GDPR data collection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, exists, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_core.catalog.models import Product
from crm_core.conversations.models import Conversation, Interaction, SatisfactionRating
from crm_core.customers.models import Company, ConsentEvent, Customer
from crm_core.customers.schemas import PurchasedItemDTO, PurchaseDTO
from crm_core.leads.models import Lead
from crm_core.orders.models import Order, OrderItem, OrderItemSerial, Return
from crm_core.tickets.models import Ticket, TicketEvent
from crm_core.warranties.models import WarrantyExtension, WarrantyVoid


async def customer_where(session: AsyncSession, *where: ColumnElement[bool]) -> Customer | None:
    """The one customer matching `where`, or None."""
    return await session.scalar(select(Customer).where(*where).limit(1))


async def customers_where(
    session: AsyncSession, *where: ColumnElement[bool], limit: int = 50
) -> list[Customer]:
    stmt = select(Customer).where(*where).order_by(Customer.id).limit(limit)
    return list((await session.scalars(stmt)).all())


# Below this many characters a name query has no trigram for the GIN index to look up.
TRIGRAM_MIN_CHARS = 3


async def customers_by_name(session: AsyncSession, text: str, *, limit: int) -> list[Customer]:
    """Non-erased customers whose name contains `text` (case-insensitive), by name then id.

    1-2 characters (a surname, a short Chinese name) match the *beginning* of the name: a
    substring that short has no trigram, so only a prefix can use an index on PostgreSQL
    (`ix_customers_name_prefix`); those rows are ordered by id.
    3+ characters match anywhere in the name through `ix_customers_name_trgm`; those rows
    are ordered by name, not id, because with `ORDER BY id LIMIT n` PostgreSQL often walks
    the primary key and filters every row instead (its match estimate for `LIKE '%…%'` is
    far too high)."""
    lowered = func.lower(Customer.name)
    escaped = _escape_like(text.lower())
    if len(text) < TRIGRAM_MIN_CHARS:
        stmt = (
            select(Customer)
            .where(lowered.like(f"{escaped}%", escape="\\"), Customer.erased_at.is_(None))
            .order_by(Customer.id)
        )
    else:
        stmt = (
            select(Customer)
            .where(lowered.like(f"%{escaped}%", escape="\\"), Customer.erased_at.is_(None))
            .order_by(lowered, Customer.id)
        )
    return list((await session.scalars(stmt.limit(limit))).all())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def customer_by_order_number(session: AsyncSession, order_number: str) -> Customer | None:
    stmt = (
        select(Customer)
        .join(Order, Order.customer_id == Customer.id)
        .where(Order.order_number == order_number)
    )
    return await session.scalar(stmt)


async def customer_by_serial_number(session: AsyncSession, serial_number: str) -> Customer | None:
    stmt = (
        select(Customer)
        .join(Order, Order.customer_id == Customer.id)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .join(OrderItemSerial, OrderItemSerial.order_item_id == OrderItem.id)
        .where(OrderItemSerial.serial_number == serial_number)
    )
    return await session.scalar(stmt)


async def has_orders(session: AsyncSession, customer_id: int) -> bool:
    return bool(await session.scalar(select(exists().where(Order.customer_id == customer_id))))


async def company_names(session: AsyncSession, company_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {i for i in company_ids if i is not None}
    if not ids:
        return {}
    rows = await session.execute(select(Company.id, Company.name).where(Company.id.in_(ids)))
    return {cid: name for cid, name in rows.tuples()}


async def purchase_history(session: AsyncSession, customer_id: int) -> list[PurchaseDTO]:
    """Orders newest first with items, product names and serials: three queries in all."""
    orders = (
        await session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .options(selectinload(Order.items).selectinload(OrderItem.serials))
            .order_by(Order.placed_at.desc(), Order.id.desc())
        )
    ).all()
    product_ids = {item.product_id for order in orders for item in order.items}
    products: dict[int, Product] = {}
    if product_ids:
        found = await session.scalars(select(Product).where(Product.id.in_(product_ids)))
        products = {p.id: p for p in found}
    return [_purchase(order, products) for order in orders]


def _purchase(order: Order, products: dict[int, Product]) -> PurchaseDTO:
    items = []
    for item in sorted(order.items, key=lambda i: i.id):
        product = products.get(item.product_id)
        items.append(
            PurchasedItemDTO(
                order_item_id=item.id,
                product_id=item.product_id,
                sku=product.sku if product else None,
                name_en=product.name_en if product else None,
                name_zh=product.name_zh if product else None,
                category=product.category if product else None,
                quantity=item.quantity,
                unit_price=item.unit_price,
                line_total=item.unit_price * item.quantity,
                serial_numbers=sorted(s.serial_number for s in item.serials),
            )
        )
    return PurchaseDTO(
        order_id=order.id,
        order_number=order.order_number,
        channel=order.channel,
        status=order.status,
        placed_at=order.placed_at,
        delivered_at=order.delivered_at,
        currency=order.currency,
        total=order.total,
        items=items,
    )


def row_to_json(row: Any) -> dict[str, Any]:
    """Every column of an ORM row as JSON-serialisable data (datetimes ISO, decimals as text)."""
    return {attr.key: to_json(getattr(row, attr.key)) for attr in inspect(row).mapper.column_attrs}


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def leads_of(customer_id: int, contacts: Sequence[str]) -> ColumnElement[bool]:
    """A customer's leads, and prospect leads recorded with the customer's phone or e-mail."""
    condition = Lead.customer_id == customer_id
    if contacts:
        condition = or_(
            condition, Lead.customer_id.is_(None) & Lead.prospect_contact.in_(list(contacts))
        )
    return condition


async def collect_personal_data(
    session: AsyncSession, customer_id: int, contacts: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything stored about one customer except the profile itself (GDPR export).

    `contacts` (the customer's phone and e-mail) also finds leads recorded for them as a
    prospect before they became a customer.
    """
    consent = await _all(
        session,
        select(ConsentEvent)
        .where(ConsentEvent.customer_id == customer_id)
        .order_by(ConsentEvent.at, ConsentEvent.id),
    )
    orders = (
        await session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .options(selectinload(Order.items).selectinload(OrderItem.serials))
            .order_by(Order.placed_at, Order.id)
        )
    ).all()
    order_ids = [o.id for o in orders]
    serials = sorted(s.serial_number for o in orders for i in o.items for s in i.serials)
    product_ids = {i.product_id for o in orders for i in o.items}
    products: dict[int, Product] = {}
    if product_ids:
        found = await session.scalars(select(Product).where(Product.id.in_(product_ids)))
        products = {p.id: p for p in found}
    returns = (
        await _all(
            session, select(Return).where(Return.order_id.in_(order_ids)).order_by(Return.id)
        )
        if order_ids
        else []
    )
    extensions: Sequence[Any] = []
    voids: Sequence[Any] = []
    if serials:
        extensions = await _all(
            session,
            select(WarrantyExtension)
            .where(WarrantyExtension.serial_number.in_(serials))
            .order_by(WarrantyExtension.id),
        )
        voids = await _all(
            session,
            select(WarrantyVoid)
            .where(WarrantyVoid.serial_number.in_(serials))
            .order_by(WarrantyVoid.id),
        )
    tickets = await _all(
        session,
        select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.id),
    )
    ticket_ids = [t.id for t in tickets]
    ticket_events = (
        await _all(
            session,
            select(TicketEvent)
            .where(TicketEvent.ticket_id.in_(ticket_ids))
            .order_by(TicketEvent.at, TicketEvent.id),
        )
        if ticket_ids
        else []
    )
    conversations = await _all(
        session,
        select(Conversation)
        .where(Conversation.customer_id == customer_id)
        .order_by(Conversation.id),
    )
    conversation_ids = [c.id for c in conversations]
    interaction_filter = Interaction.customer_id == customer_id
    if conversation_ids:
        interaction_filter = or_(
            interaction_filter, Interaction.conversation_id.in_(conversation_ids)
        )
    interactions = await _all(
        session,
        select(Interaction)
        .where(interaction_filter)
        .order_by(Interaction.created_at, Interaction.id),
    )
    ratings = await _all(
        session,
        select(SatisfactionRating)
        .where(SatisfactionRating.customer_id == customer_id)
        .order_by(SatisfactionRating.id),
    )
    leads = await _all(
        session, select(Lead).where(leads_of(customer_id, contacts)).order_by(Lead.id)
    )

    def order_json(order: Order) -> dict[str, Any]:
        data = row_to_json(order)
        data["items"] = []
        for item in sorted(order.items, key=lambda i: i.id):
            item_data = row_to_json(item)
            product = products.get(item.product_id)
            item_data["sku"] = product.sku if product else None
            item_data["product_name_en"] = product.name_en if product else None
            item_data["product_name_zh"] = product.name_zh if product else None
            item_data["serial_numbers"] = sorted(s.serial_number for s in item.serials)
            data["items"].append(item_data)
        data["returns"] = [row_to_json(r) for r in returns if r.order_id == order.id]
        return data

    conversation_data = []
    in_conversation: set[int] = set()
    for conv in conversations:
        data = row_to_json(conv)
        data["interactions"] = [
            row_to_json(i) for i in interactions if i.conversation_id == conv.id
        ]
        in_conversation.update(i.id for i in interactions if i.conversation_id == conv.id)
        conversation_data.append(data)
    ticket_data = []
    for ticket in tickets:
        data = row_to_json(ticket)
        data["events"] = [row_to_json(e) for e in ticket_events if e.ticket_id == ticket.id]
        ticket_data.append(data)
    return {
        "consent_events": [row_to_json(e) for e in consent],
        "orders": [order_json(o) for o in orders],
        "returns": [row_to_json(r) for r in returns],
        "serial_numbers": serials,
        "warranty_extensions": [row_to_json(e) for e in extensions],
        "warranty_voids": [row_to_json(v) for v in voids],
        "tickets": ticket_data,
        "conversations": conversation_data,
        "other_interactions": [row_to_json(i) for i in interactions if i.id not in in_conversation],
        "satisfaction_ratings": [row_to_json(r) for r in ratings],
        "leads": [row_to_json(lead) for lead in leads],
    }


async def _all(session: AsyncSession, stmt: Any) -> Sequence[Any]:
    return (await session.scalars(stmt)).all()

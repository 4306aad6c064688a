"""Import and export of orders: one row per order line, lines grouped by order number.

An order is the unit of acceptance: when any of its lines is invalid the whole order is
rejected (also with `--partial`), so no order is ever imported with some of its lines.
Consecutive rows with the same order number form one order; the same order number appearing
again later in the file is an error (lines of an order must be together).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.models import Product
from crm_core.customers.contact import normalize_email
from crm_core.customers.models import Customer
from crm_core.errors import DomainError
from crm_core.ids import is_order_number
from crm_core.importexport import fields
from crm_core.importexport.columns import ORDERS
from crm_core.importexport.common import EntityImporter, RowParser, bulk_insert, chunks
from crm_core.importexport.products import currency, sku
from crm_core.importexport.reader import Record
from crm_core.orders.models import Order, OrderItem, OrderItemSerial, Return

CHANNEL_WORDS = {
    "online": "online",
    "store": "store",
    "marketplace": "marketplace",
    "b2b": "b2b",
    "telegram": "telegram",
    "线上": "online",
    "网店": "online",
    "官网": "online",
    "门店": "store",
    "实体店": "store",
    "电商平台": "marketplace",
    "平台": "marketplace",
    "企业": "b2b",
    "对公": "b2b",
    "电报": "telegram",
}
STATUS_WORDS = {
    "pending": "pending",
    "paid": "paid",
    "shipped": "shipped",
    "delivered": "delivered",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "returned": "returned",
    "待付款": "pending",
    "未付款": "pending",
    "已付款": "paid",
    "已支付": "paid",
    "已发货": "shipped",
    "已签收": "delivered",
    "已送达": "delivered",
    "已完成": "delivered",
    "已取消": "cancelled",
    "已退货": "returned",
}
CUSTOMER_REFS = ("customer_phone", "customer_email", "customer_anonymous_id")
HEADER = (*CUSTOMER_REFS, "channel", "status", "placed_at", "delivered_at", "currency")
LINE = ("sku", "quantity", "unit_price", "serial_numbers")
ORDER_FIELDS = ("channel", "status", "placed_at", "delivered_at", "currency", "total")
REF_LABELS = {
    "customer_phone": "phone",
    "customer_email": "e-mail",
    "customer_anonymous_id": "anonymous id",
}

LineKey = tuple[int, int, Decimal, tuple[str, ...]]
CENT = Decimal("0.01")
MEMO_SIZE = 20_000
ORDERS_T = cast(Table, Order.__table__)
ITEMS_T = cast(Table, OrderItem.__table__)
SERIALS_T = cast(Table, OrderItemSerial.__table__)


@dataclass(slots=True)
class Line:
    row: int
    sku: str
    quantity: int
    unit_price: Decimal
    serials: list[str]


@dataclass
class OrderGroup:
    """The rows of one order number, read so far."""

    order_number: str
    first_row: int
    last_row: int
    header: dict[str, Any] = field(default_factory=dict)
    header_rows: dict[str, int] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    rows: int = 0
    bad_rows: set[int] = field(default_factory=set)

    def serial_items(self) -> list[tuple[str, int, str | None]]:
        return [(f"serial:{s}", line.row, None) for line in self.lines for s in line.serials]


@dataclass(slots=True)
class StoredOrder:
    id: int
    customer_id: int
    values: dict[str, Any]
    items: list[tuple[int, LineKey]] = field(default_factory=list)


def _order_number(value: Any) -> str:
    raw = fields.text(value).upper()
    if not is_order_number(raw):
        raise fields.FieldError("expected an order number like SO-10023456")
    return raw


class OrderImporter(EntityImporter[OrderGroup]):
    """Groups consecutive lines into orders and writes whole orders in batches."""

    layout = ORDERS
    tables = (OrderItem.__tablename__, Order.__tablename__, OrderItemSerial.__tablename__)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._group: OrderGroup | None = None
        self._pending_lines = 0
        self._cache: dict[Any, tuple[bool, Any]] = {}
        self._last_raw_header: tuple[Any, ...] | None = None
        self._last_header: dict[str, Any] | None = None

    # -- reading and grouping --------------------------------------------------------------

    async def feed(self, record: Record) -> None:
        if record.problem is not None:
            # An unreadable row rejects the order it belongs to: the one its order number
            # names, else (no readable number) the order being read.
            self.ctx.report.add(record.problem)
            try:
                number = _order_number(record.values.get("order_number") or "")
            except fields.FieldError:
                number = None
            group = await self._group_for(number, record.row) if number else self._group
            if group is None:
                self.reject_row(1, 0)
            else:
                group.rows += 1
                group.bad_rows.add(record.row)
                group.last_row = record.row
            return
        line_number, header, line = self._parse_line(record)
        if line_number is None:
            # Without a readable order number the row cannot be put in any order.
            self.reject_row(1, 0)
            return
        group = await self._group_for(line_number, record.row)
        group.rows += 1
        group.last_row = record.row
        if header is None:
            group.bad_rows.add(record.row)
            return
        for name, value in header.items():
            if name not in group.header:
                group.header[name] = value
                group.header_rows[name] = record.row
            elif group.header[name] != value:
                shown = fields.iso(value) if isinstance(value, datetime) else value
                first = group.header[name]
                first_shown = fields.iso(first) if isinstance(first, datetime) else first
                self.error(
                    record.row,
                    name,
                    f"differs from row {group.header_rows[name]} ({first_shown}) "
                    f"of the same order {line_number}",
                    shown,
                )
                group.bad_rows.add(record.row)
        if line is not None:
            if len(group.lines) >= self.ctx.config.max_lines_per_order:
                if len(group.lines) == self.ctx.config.max_lines_per_order:
                    self.error(
                        record.row,
                        "order_number",
                        f"order has more than {self.ctx.config.max_lines_per_order} lines",
                    )
                group.bad_rows.add(record.row)
            else:
                group.lines.append(line)

    async def _group_for(self, number: str, row: int) -> OrderGroup:
        if self._group is not None and self._group.order_number == number:
            return self._group
        if self._group is not None:
            await self._close_group(self._group)
        self._group = OrderGroup(number, row, row)
        return self._group

    def _memo(self, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """`parse` with a bounded cache of recent results: every line of an order repeats
        the customer's phone and the dates, and phone normalisation is the costly part."""
        cache = self._cache

        def cached(value: Any) -> Any:
            key = (parse.__code__, value) if isinstance(value, str) else None
            hit = cache.get(key) if key is not None else None
            if hit is None:
                try:
                    hit = (True, parse(value))
                except (fields.FieldError, DomainError) as exc:
                    # Keep the message: re-raising one exception object grows its traceback.
                    hit = (False, str(exc))
                if key is not None:
                    if len(cache) >= MEMO_SIZE:
                        cache.clear()
                    cache[key] = hit
            ok, result = hit
            if ok:
                return result
            raise fields.FieldError(result)

        return cached

    def _parse_line(self, record: Record) -> tuple[str | None, dict[str, Any] | None, Line | None]:
        """(order number, header values given on this row, the line) — header None = bad row."""
        p = RowParser(self.ctx.report, record)
        number = p.get("order_number", _order_number, required=True)
        values = record.values
        raw_header = tuple(values.get(name) for name in HEADER)
        if raw_header == self._last_raw_header and self._last_header is not None:
            # The same order-level values as the previous line (ERP exports repeat them on
            # every line): already validated there.
            header = dict(self._last_header)
        else:
            header = self._parse_header(p)
            self._last_raw_header = raw_header
            self._last_header = None if p.failed else dict(header)
        line: Line | None = None
        if any(p.has(name) for name in LINE):
            item_sku = p.get("sku", sku, required=True)
            quantity = p.get(
                "quantity", lambda v: fields.integer(v, minimum=1, maximum=100_000), required=True
            )
            unit_price = p.get("unit_price", fields.money, required=True)
            serials = p.get("serial_numbers", fields.serials) or []
            if quantity is not None and len(serials) > quantity:
                p.fail(
                    "serial_numbers",
                    f"{len(serials)} serial numbers for a quantity of {quantity}",
                )
            if not p.failed:
                line = Line(record.row, item_sku, quantity, unit_price, serials)
        return number, (None if p.failed else header), line

    def _parse_header(self, p: RowParser) -> dict[str, Any]:
        """The order-level values given on a row, validated (errors go to `p`)."""
        region = self.ctx.config.phone_region
        zone = self.ctx.zone
        memo = self._memo
        header: dict[str, Any] = {
            "customer_phone": p.get("customer_phone", memo(lambda v: fields.phone(v, region))),
            "customer_email": p.get(
                "customer_email", memo(lambda v: normalize_email(fields.text(v)))
            ),
            "customer_anonymous_id": p.get(
                "customer_anonymous_id", lambda v: fields.bounded_text(v, 40)
            ),
            "channel": p.get("channel", lambda v: fields.choice(v, CHANNEL_WORDS, "channel")),
            "status": p.get("status", lambda v: fields.choice(v, STATUS_WORDS, "status")),
            "placed_at": p.get("placed_at", memo(lambda v: fields.moment(v, zone))),
            "delivered_at": p.get("delivered_at", memo(lambda v: fields.moment(v, zone))),
            "currency": p.get("currency", currency),
        }
        header = {k: v for k, v in header.items() if v is not None}
        latest = self.ctx.now + timedelta(days=self.ctx.config.max_future_days)
        for name in ("placed_at", "delivered_at"):
            if name in header and header[name] > latest:
                p.fail(
                    name,
                    f"in the future (after {fields.iso(latest)})",
                    fields.iso(header[name]),
                )
        if (
            "placed_at" in header
            and "delivered_at" in header
            and header["delivered_at"] < header["placed_at"]
        ):
            p.fail("delivered_at", "before placed_at", fields.iso(header["delivered_at"]))
        return header

    async def _close_group(self, group: OrderGroup) -> None:
        """A group is complete: check it as a whole, then queue it for writing."""
        if not group.bad_rows:
            if not any(ref in group.header for ref in CUSTOMER_REFS):
                self.error(
                    group.first_row,
                    "customer_phone,customer_email",
                    "an order needs the customer's phone or e-mail",
                )
                group.bad_rows.add(group.first_row)
            if "placed_at" not in group.header:
                self.error(group.first_row, "placed_at", "required")
                group.bad_rows.add(group.first_row)
            placed = group.header.get("placed_at")
            delivered = group.header.get("delivered_at")
            if placed and delivered and delivered < placed:
                row = group.header_rows["delivered_at"]
                self.error(row, "delivered_at", "before placed_at", fields.iso(delivered))
                group.bad_rows.add(row)
        # Rejected orders are queued too: their order and serial numbers still count as the
        # first occurrence for the duplicate checks of the rest of the file.
        self._pending.append(group)
        self._pending_lines += group.rows
        if self._pending_lines >= self.ctx.config.batch_size:
            await self.flush()

    def _reject(self, group: OrderGroup, reason_rows: set[int] | None = None) -> None:
        bad = reason_rows or group.bad_rows
        if group.rows > len(bad):
            rows = ", ".join(str(r) for r in sorted(bad)[:10])
            self.error(
                group.first_row,
                "order_number",
                f"order {group.order_number} not imported because of errors in row(s) {rows}",
                group.order_number,
            )
        self.reject_row(group.rows, 1)

    async def flush(self) -> None:
        self._pending_lines = 0
        await super().flush()

    def rows_in(self, batch: list[OrderGroup]) -> int:
        return sum(group.rows for group in batch)

    async def finish(self) -> None:
        if self._group is not None:
            await self._close_group(self._group)
            self._group = None
        await super().finish()

    def parse(self, record: Record) -> OrderGroup | None:  # pragma: no cover - feed() is used
        raise NotImplementedError

    # -- writing ---------------------------------------------------------------------------

    async def write(self, batch: list[OrderGroup]) -> None:
        batch = await self._drop_file_duplicates(batch)
        if not batch:
            return
        session = self.ctx.session
        customers = await self._customers(batch)
        products = await self._lookup(
            Product.__table__.c.sku,
            Product.__table__.c.id,
            {ln.sku for g in batch for ln in g.lines},
        )
        stored = await self._stored_orders([g.order_number for g in batch])
        serial_owners = await self._serial_owners(
            [s for g in batch for ln in g.lines for s in ln.serials]
        )
        returned_items = await self._items_with_returns(stored)

        new_orders: list[tuple[OrderGroup, dict[str, Any]]] = []
        header_changes: list[dict[str, Any]] = []
        replace: list[tuple[OrderGroup, StoredOrder]] = []
        for group in batch:
            customer_id = self._customer_of(group, customers)
            old = stored.get(group.order_number)
            if customer_id is not None and old is not None and old.customer_id != customer_id:
                self.error(
                    group.first_row,
                    next(r for r in CUSTOMER_REFS if r in group.header),
                    f"order {group.order_number} belongs to another customer (#{old.customer_id})",
                )
                group.bad_rows.add(group.first_row)
            keys: list[LineKey] = []
            for line in group.lines:
                product_id = products.get(line.sku)
                if product_id is None:
                    self.error(line.row, "sku", "unknown SKU (import the product first)", line.sku)
                    group.bad_rows.add(line.row)
                    continue
                for serial in line.serials:
                    owner = serial_owners.get(serial)
                    if owner is not None and owner != group.order_number:
                        self.error(
                            line.row,
                            "serial_numbers",
                            f"serial number {serial} already belongs to order {owner}",
                            serial,
                        )
                        group.bad_rows.add(line.row)
                keys.append(
                    (product_id, line.quantity, line.unit_price, tuple(sorted(line.serials)))
                )
            if group.bad_rows or customer_id is None:
                self._reject(group)
                continue
            total = sum((ln.unit_price * ln.quantity for ln in group.lines), Decimal("0.00"))
            if old is None:
                values = {
                    "order_number": group.order_number,
                    "customer_id": customer_id,
                    "channel": group.header.get("channel", "online"),
                    "status": group.header.get("status", "paid"),
                    "placed_at": group.header["placed_at"],
                    "delivered_at": group.header.get("delivered_at"),
                    "currency": group.header.get("currency", self.ctx.config.currency),
                    "total": total,
                    "created_at": self.ctx.now,
                    "updated_at": self.ctx.now,
                }
                new_orders.append((group, values))
                continue
            new = dict(old.values)
            new.update({k: v for k, v in group.header.items() if k in ORDER_FIELDS})
            new["total"] = total
            lines_changed = sorted(keys) != sorted(k for _, k in old.items)
            if lines_changed and any(item_id in returned_items for item_id, _ in old.items):
                self.error(
                    group.first_row,
                    "order_number",
                    f"order {group.order_number} has returns against its lines; its lines "
                    "cannot be replaced by an import",
                    group.order_number,
                )
                self._reject(group, {group.first_row})
                continue
            if not lines_changed and _same_order(new, old.values):
                self.ctx.counts.unchanged += 1
                continue
            self.ctx.counts.updated += 1
            header_changes.append({"id": old.id, **new, "updated_at": self.ctx.now})
            if lines_changed:
                replace.append((group, old))

        if header_changes:
            await session.execute(update(Order), header_changes)
        if replace:
            old_items = [item_id for _, old in replace for item_id, _ in old.items]
            for ids in chunks(old_items, 5000):
                await session.execute(
                    delete(OrderItemSerial).where(OrderItemSerial.order_item_id.in_(ids))
                )
                await session.execute(delete(OrderItem).where(OrderItem.id.in_(ids)))
        order_ids: list[tuple[OrderGroup, int]] = [(g, old.id) for g, old in replace]
        if new_orders:
            # Bulk insert (COPY on PostgreSQL), then the new ids by order number: cheaper
            # than INSERT ... RETURNING, which SQLAlchemy cannot batch in input order.
            await bulk_insert(session, ORDERS_T, [values for _, values in new_orders])
            o = ORDERS_T.c
            numbers = {group.order_number for group, _ in new_orders}
            id_of = await self._lookup(o.order_number, o.id, numbers)
            order_ids.extend((group, id_of[group.order_number]) for group, _ in new_orders)
            self.ctx.counts.inserted += len(new_orders)
        item_rows: list[dict[str, Any]] = []
        # Serials per line, keyed by what identifies a stored line; lines with the same key
        # are interchangeable, so any assignment among them is right.
        serials_of: dict[tuple[int, int, int, Decimal], list[list[str]]] = defaultdict(list)
        for group, order_id in order_ids:
            for line in group.lines:
                product_id = products[line.sku]
                item_rows.append(
                    {
                        "order_id": order_id,
                        "product_id": product_id,
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                    }
                )
                key = (order_id, product_id, line.quantity, line.unit_price)
                serials_of[key].append(line.serials)
        if item_rows:
            await bulk_insert(session, ITEMS_T, item_rows)
            # The orders' lines are exactly the ones just inserted (replaced lines were
            # deleted above), so reading them back by order id gives their ids.
            items = ITEMS_T.c
            created_items: list[Any] = []
            for part in chunks([order_id for _, order_id in order_ids], 5000):
                found = await session.execute(
                    select(
                        items.id, items.order_id, items.product_id, items.quantity, items.unit_price
                    )
                    .where(items.order_id.in_(part))
                    .order_by(items.id)
                )
                created_items.extend(found.all())
            serial_rows: list[dict[str, Any]] = []
            for item_id, order_id, product_id, quantity, unit_price in created_items:
                key = (order_id, product_id, quantity, Decimal(unit_price).quantize(CENT))
                for serial in serials_of[key].pop():
                    serial_rows.append({"order_item_id": item_id, "serial_number": serial})
            await bulk_insert(session, SERIALS_T, serial_rows)

    async def _drop_file_duplicates(self, batch: list[OrderGroup]) -> list[OrderGroup]:
        """An order number seen before in the file (lines not together, or the order twice)
        and a serial number on two lines are errors. Returns the orders still valid."""
        items: list[tuple[str, int, str | None]] = []
        owner: list[tuple[int, int | None]] = []  # (group index, line row or None)
        for i, group in enumerate(batch):
            items.append((f"order:{group.order_number}", group.first_row, None))
            owner.append((i, None))
            for key, serial_row, value in group.serial_items():
                items.append((key, serial_row, value))
                owner.append((i, serial_row))
        already_bad = {i for i, group in enumerate(batch) if group.bad_rows}
        bad = set(already_bad)
        for (i, row), (key, _, _), previous in zip(
            owner, items, await self.ctx.keys.claim(items), strict=True
        ):
            group = batch[i]
            if previous is None or i in already_bad:
                continue
            if row is None:
                self.error(
                    group.first_row,
                    "order_number",
                    f"order {group.order_number} already appeared in row {previous[0]}; "
                    "keep all lines of an order together, and each order once",
                    group.order_number,
                )
                group.bad_rows.add(group.first_row)
            else:
                serial = key.split(":", 1)[1]
                self.error(
                    row,
                    "serial_numbers",
                    f"duplicate serial number: already in row {previous[0]}",
                    serial,
                )
                group.bad_rows.add(row)
            bad.add(i)
        for i in sorted(bad):
            self._reject(batch[i])
        return [g for i, g in enumerate(batch) if i not in bad]

    async def _customers(self, batch: list[OrderGroup]) -> dict[str, dict[Any, int]]:
        """Customer ids by phone / e-mail / anonymous id for the batch's references."""
        c = Customer.__table__.c
        columns = {
            "customer_phone": (c.phone, c.id),
            "customer_email": (c.email, c.id),
            "customer_anonymous_id": (c.anonymous_id, c.id),
        }
        return {
            ref: await self._lookup(key, value, {g.header[ref] for g in batch if ref in g.header})
            for ref, (key, value) in columns.items()
        }

    def _customer_of(self, group: OrderGroup, customers: dict[str, dict[Any, int]]) -> int | None:
        found: dict[int, str] = {}
        for ref in CUSTOMER_REFS:
            if ref not in group.header:
                continue
            customer_id = customers[ref].get(group.header[ref])
            if customer_id is None:
                row = group.header_rows[ref]
                self.error(
                    row,
                    ref,
                    f"no customer with this {REF_LABELS[ref]} (import customers first)",
                    group.header[ref],
                )
                group.bad_rows.add(row)
                return None
            found.setdefault(customer_id, ref)
        if len(found) > 1:
            refs = " and ".join(f"{REF_LABELS[r]} → #{cid}" for cid, r in found.items())
            self.error(
                group.first_row,
                ",".join(found.values()),
                f"the customer references point to different customers ({refs})",
            )
            group.bad_rows.add(group.first_row)
            return None
        return next(iter(found), None)

    async def _lookup(self, key: Any, value: Any, wanted: set[Any]) -> dict[Any, int]:
        result: dict[Any, int] = {}
        for part in chunks(sorted(wanted), 5000):
            rows = await self.ctx.session.execute(select(key, value).where(key.in_(part)))
            result.update((k, v) for k, v in rows.all())
        return result

    async def _stored_orders(self, numbers: Sequence[str]) -> dict[str, StoredOrder]:
        session = self.ctx.session
        o = Order.__table__.c
        stored: dict[str, StoredOrder] = {}
        by_id: dict[int, StoredOrder] = {}
        for part in chunks(list(numbers), 5000):
            rows = await session.execute(
                select(o.id, o.order_number, o.customer_id, *(o[f] for f in ORDER_FIELDS)).where(
                    o.order_number.in_(part)
                )
            )
            for row in rows.mappings():
                order = StoredOrder(
                    row["id"], row["customer_id"], {f: row[f] for f in ORDER_FIELDS}
                )
                stored[row["order_number"]] = order
                by_id[order.id] = order
        if not by_id:
            return stored
        i = OrderItem.__table__.c
        serials: dict[int, list[str]] = defaultdict(list)
        items: list[tuple[int, int, int, int, Decimal]] = []
        for part in chunks(list(by_id), 5000):
            rows = await session.execute(
                select(i.id, i.order_id, i.product_id, i.quantity, i.unit_price).where(
                    i.order_id.in_(part)
                )
            )
            items.extend((a, b, c, d, e) for a, b, c, d, e in rows.all())
        s = OrderItemSerial.__table__.c
        for part in chunks([item[0] for item in items], 5000):
            rows = await session.execute(
                select(s.order_item_id, s.serial_number).where(s.order_item_id.in_(part))
            )
            for item_id, serial in rows.all():
                serials[item_id].append(serial)
        for item_id, order_id, product_id, quantity, unit_price in items:
            key: LineKey = (
                product_id,
                quantity,
                Decimal(unit_price).quantize(Decimal("0.01")),
                tuple(sorted(serials.get(item_id, []))),
            )
            by_id[order_id].items.append((item_id, key))
        return stored

    async def _serial_owners(self, serials: list[str]) -> dict[str, str]:
        """The order number each already-stored serial belongs to."""
        result: dict[str, str] = {}
        serial_t, item_t, order_t = (
            OrderItemSerial.__table__,
            OrderItem.__table__,
            Order.__table__,
        )
        s, i, o = serial_t.c, item_t.c, order_t.c
        for part in chunks(serials, 5000):
            rows = await self.ctx.session.execute(
                select(s.serial_number, o.order_number)
                .select_from(serial_t)
                .join(item_t, i.id == s.order_item_id)
                .join(order_t, o.id == i.order_id)
                .where(s.serial_number.in_(part))
            )
            result.update((serial, number) for serial, number in rows.all())
        return result

    async def _items_with_returns(self, stored: dict[str, StoredOrder]) -> set[int]:
        """Ids of the stored lines that have a return recorded (looked up by the indexed
        order id)."""
        ids = [order.id for order in stored.values() if order.items]
        found: set[int] = set()
        r = Return.__table__.c
        for part in chunks(ids, 5000):
            rows = await self.ctx.session.execute(
                select(r.order_item_id).where(r.order_id.in_(part), r.order_item_id.is_not(None))
            )
            found.update(rows.scalars().all())
        return found


def _same_order(new: dict[str, Any], old: dict[str, Any]) -> bool:
    for name in ORDER_FIELDS:
        a, b = new[name], old[name]
        if name == "total":
            if Decimal(a).quantize(Decimal("0.01")) != Decimal(b).quantize(Decimal("0.01")):
                return False
        elif a != b:
            return False
    return True


async def export_rows(session: AsyncSession, batch_size: int) -> AsyncIterator[dict[str, Any]]:
    """Every order line as an import row (orders without lines as one row without a SKU)."""
    order_t, customer_t = Order.__table__, Customer.__table__
    item_t, product_t = OrderItem.__table__, Product.__table__
    o, c, i, p = order_t.c, customer_t.c, item_t.c, product_t.c
    s = OrderItemSerial.__table__.c
    stmt = (
        select(
            o.order_number,
            c.phone,
            c.email,
            c.anonymous_id,
            c.erased_at,
            o.channel,
            o.status,
            o.placed_at,
            o.delivered_at,
            o.currency,
            i.id.label("item_id"),
            p.sku,
            i.quantity,
            i.unit_price,
        )
        .select_from(order_t)
        .join(customer_t, c.id == o.customer_id)
        .outerjoin(item_t, i.order_id == o.id)
        .outerjoin(product_t, p.id == i.product_id)
        .order_by(o.order_number, i.id)
        .execution_options(yield_per=batch_size)
    )
    result = await session.stream(stmt)
    async for partition in result.mappings().partitions():
        item_ids = [row["item_id"] for row in partition if row["item_id"] is not None]
        serials: dict[int, list[str]] = defaultdict(list)
        if item_ids:
            found = await session.execute(
                select(s.order_item_id, s.serial_number)
                .where(s.order_item_id.in_(item_ids))
                .order_by(s.serial_number)
            )
            for item_id, serial in found.all():
                serials[item_id].append(serial)
        for row in partition:
            erased = row["erased_at"] is not None
            has_line = row["item_id"] is not None
            yield {
                "order_number": row["order_number"],
                "customer_phone": None if erased else row["phone"],
                "customer_email": None if erased else row["email"],
                "customer_anonymous_id": row["anonymous_id"] if erased else None,
                "channel": row["channel"],
                "status": row["status"],
                "placed_at": row["placed_at"],
                "delivered_at": row["delivered_at"],
                "currency": row["currency"],
                "sku": row["sku"] if has_line else None,
                "quantity": row["quantity"] if has_line else None,
                "unit_price": (
                    Decimal(row["unit_price"]).quantize(Decimal("0.01")) if has_line else None
                ),
                "serial_numbers": serials.get(row["item_id"], []) if has_line else [],
            }

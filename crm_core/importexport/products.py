"""Import and export of products (natural key: SKU)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.categories import canonical_category
from crm_core.catalog.models import Product
from crm_core.importexport import fields
from crm_core.importexport.columns import PRODUCTS
from crm_core.importexport.common import EntityImporter, RowParser, chunks
from crm_core.importexport.reader import Record

FIELDS = (
    "name_en",
    "name_zh",
    "category",
    "brand",
    "price",
    "currency",
    "warranty_months",
    "specs",
    "active",
)
SKU_MAX = 64
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


@dataclass(slots=True)
class ProductRow:
    """A parsed row; a `rejected` one only registers its SKU for the duplicate check."""

    row: int
    sku: str
    values: dict[str, Any]
    rejected: bool = False


def sku(value: Any) -> str:
    """A SKU as given (trimmed, case kept): at most 64 characters, no control characters."""
    raw = fields.text(value)
    if len(raw) > SKU_MAX:
        raise fields.FieldError(f"a SKU has at most {SKU_MAX} characters")
    if _CONTROL_RE.search(raw):
        raise fields.FieldError("a SKU cannot contain control characters")
    return raw


def currency(value: Any) -> str:
    code = fields.text(value).upper()
    if not _CURRENCY_RE.fullmatch(code):
        raise fields.FieldError("expected a three-letter currency code such as CNY or USD")
    return code


def _category(value: Any) -> str:
    key = canonical_category(fields.text(value))
    if key is None:
        raise fields.FieldError(
            "unknown category; use a key such as gpu, cpu, ssd or a zh/en name such as 显卡"
        )
    return key


class ProductImporter(EntityImporter[ProductRow]):
    layout = PRODUCTS
    tables = (Product.__tablename__,)

    def parse(self, record: Record) -> ProductRow | None:
        p = RowParser(self.ctx.report, record)
        key = p.get("sku", sku, required=True)
        values: dict[str, Any] = {
            "name_en": p.get("name_en", lambda v: fields.bounded_text(v, 200), required=True),
            "name_zh": p.get("name_zh", lambda v: fields.bounded_text(v, 200)),
            "category": p.get("category", _category, required=True),
            "brand": p.get("brand", lambda v: fields.bounded_text(v, 64), required=True),
            "price": p.get("price", fields.money, required=True),
            "currency": p.get("currency", currency),
            "warranty_months": p.get(
                "warranty_months",
                lambda v: fields.integer(v, minimum=0, maximum=240),
                required=True,
            ),
            "specs": p.get("specs", fields.json_object),
            "active": p.get("active", fields.boolean),
        }
        if p.failed:
            self.reject_row()
            return ProductRow(record.row, key, {}, rejected=True) if key else None
        return ProductRow(record.row, key, {k: v for k, v in values.items() if v is not None})

    async def write(self, batch: list[ProductRow]) -> None:
        ctx = self.ctx
        previous = await ctx.keys.claim([(f"sku:{r.sku}", r.row, None) for r in batch])
        fresh: list[ProductRow] = []
        for r, seen in zip(batch, previous, strict=True):
            if r.rejected:
                continue
            if seen is None:
                fresh.append(r)
            else:
                self.error(r.row, "sku", f"duplicate SKU: already in row {seen[0]}", r.sku)
                self.reject_row()
        stored: dict[str, dict[str, Any]] = {}
        p = Product.__table__.c
        for skus in chunks([r.sku for r in fresh], 5000):
            rows = await ctx.session.execute(
                select(p.id, p.sku, *(p[name] for name in FIELDS)).where(p.sku.in_(skus))
            )
            for row in rows.mappings():
                stored[row["sku"]] = dict(row)
        inserts: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for r in fresh:
            old = stored.get(r.sku)
            if old is None:
                values = {
                    "sku": r.sku,
                    "name_zh": r.values.get("name_zh") or r.values["name_en"],
                    "currency": ctx.config.currency,
                    "specs": {},
                    "active": True,
                    "created_at": ctx.now,
                    "updated_at": ctx.now,
                }
                values.update(r.values)
                inserts.append(values)
                continue
            new = {name: old[name] for name in FIELDS}
            new.update(r.values)
            if _same(new, old):
                ctx.counts.unchanged += 1
                continue
            changes.append({"id": old["id"], **new, "updated_at": ctx.now})
        if changes:
            await ctx.session.execute(update(Product), changes)
            ctx.counts.updated += len(changes)
        if inserts:
            await ctx.session.execute(insert(cast(Table, Product.__table__)), inserts)
            ctx.counts.inserted += len(inserts)


def _same(new: dict[str, Any], old: dict[str, Any]) -> bool:
    for name in FIELDS:
        a, b = new[name], old[name]
        if name == "price":
            if Decimal(a).quantize(Decimal("0.01")) != Decimal(b).quantize(Decimal("0.01")):
                return False
        elif a != b:
            return False
    return True


async def export_rows(session: AsyncSession, batch_size: int) -> AsyncIterator[dict[str, Any]]:
    """Every product as an import row, by SKU."""
    p = Product.__table__.c
    stmt = (
        select(p.sku, *(p[name] for name in FIELDS))
        .order_by(p.sku)
        .execution_options(yield_per=batch_size)
    )
    result = await session.stream(stmt)
    async for row in result.mappings():
        yield {
            "sku": row["sku"],
            "name_en": row["name_en"],
            "name_zh": row["name_zh"],
            "category": row["category"],
            "brand": row["brand"],
            "price": Decimal(row["price"]).quantize(Decimal("0.01")),
            "currency": row["currency"],
            "warranty_months": row["warranty_months"],
            "specs": row["specs"] or {},
            "active": bool(row["active"]),
        }

"""Segments: a JSON definition of who a campaign is for, validated and compiled to SQL.

A definition is one node; a node is an object with exactly one key:

    {"and": [node, ...]}   {"or": [node, ...]}   {"not": node}      {"all": true}
    {"lifecycle_stage": "at_risk" | [...]}       {"rfm_segment": "champions" | [...]}
    {"language": "zh" | [...]}                   {"customer_type": "pro" | [...]}
    {"tag": "vip" | [...]}                        (has any of the tags)
    {"consent": true | false}                     (marketing consent)
    {"owns": {"category": "gpu", "brand": "NVIDIA", "model": "4070", "sku": "..."}}
                                                  (bought it: paid, shipped or delivered;
                                                   every given key must match one product;
                                                   values may be lists; model = part of the name)
    {"last_purchase_days": {"min": 30, "max": 365}}   (days since the last purchase)
    {"spend": {"min": 1000, "max": 50000}}             (total of their purchases)

Example: GPU owners who bought in the last year, Chinese-speaking, not tagged "staff":

    {"and": [{"owns": {"category": "gpu"}}, {"last_purchase_days": {"max": 365}},
             {"language": "zh"}, {"not": {"tag": "staff"}}]}

`validate_segment` raises ValidationFailed naming the path of the problem
(`segment.and[2].language: unknown language 'fr'; known: zh, en`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from crm_core.analytics.service import SEGMENTS
from crm_core.catalog.categories import CATEGORY_KEYS
from crm_core.catalog.models import Product
from crm_core.customers.models import CUSTOMER_TYPES, LANGUAGES, LIFECYCLE_STAGES, Customer
from crm_core.errors import ValidationFailed
from crm_core.orders.models import Order, OrderItem

# Orders that count as "bought" (not pending, cancelled or returned).
PURCHASED_STATUSES = ("paid", "shipped", "delivered")
MAX_DEPTH = 12
OWNS_KEYS = ("category", "brand", "model", "sku")

LEAF_KEYS = (
    "all",
    "lifecycle_stage",
    "rfm_segment",
    "language",
    "customer_type",
    "tag",
    "consent",
    "owns",
    "last_purchase_days",
    "spend",
)
GROUP_KEYS = ("and", "or", "not")


def validate_segment(definition: Any) -> dict[str, Any]:
    """Check a segment definition; return it unchanged, or raise naming what is wrong."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"segment: not valid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(definition, dict) or not definition:
        raise ValidationFailed(
            'segment: give one condition, e.g. {"all": true} or {"lifecycle_stage": "at_risk"}'
        )
    _check(definition, "segment", 0)
    return definition


def compile_segment(definition: dict[str, Any], now: datetime, dialect: str) -> ColumnElement[bool]:
    """The SQL condition over `customers` for a validated definition."""
    return _compile(definition, now, dialect)


# ---------------------------------------------------------------------- validation


def _check(node: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValidationFailed(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise ValidationFailed(f'{path}: expected an object like {{"language": "zh"}}')
    if len(node) != 1:
        keys = ", ".join(node) or "none"
        raise ValidationFailed(
            f"{path}: a condition has exactly one key (got {keys}); combine with and/or/not"
        )
    ((key, value),) = node.items()
    where = f"{path}.{key}"
    if key in ("and", "or"):
        if not isinstance(value, list) or not value:
            raise ValidationFailed(f"{where}: expected a non-empty list of conditions")
        for i, child in enumerate(value):
            _check(child, f"{where}[{i}]", depth + 1)
    elif key == "not":
        _check(value, where, depth + 1)
    elif key == "all":
        if value is not True:
            raise ValidationFailed(f"{where}: must be true")
    elif key == "lifecycle_stage":
        _choices(value, LIFECYCLE_STAGES, where, "lifecycle stage")
    elif key == "rfm_segment":
        _choices(value, SEGMENTS, where, "RFM segment")
    elif key == "language":
        _choices(value, LANGUAGES, where, "language")
    elif key == "customer_type":
        _choices(value, CUSTOMER_TYPES, where, "customer type")
    elif key == "tag":
        _strings(value, where)
    elif key == "consent":
        if not isinstance(value, bool):
            raise ValidationFailed(f"{where}: must be true or false")
    elif key == "owns":
        _check_owns(value, where)
    elif key in ("last_purchase_days", "spend"):
        _range(value, where, integer=key == "last_purchase_days")
    else:
        known = ", ".join((*GROUP_KEYS, *LEAF_KEYS))
        raise ValidationFailed(f"{where}: unknown condition {key!r}; known: {known}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _strings(value: Any, where: str) -> list[str]:
    items = _as_list(value)
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise ValidationFailed(f"{where}: expected a text or a non-empty list of texts")
    return [v.strip() for v in items]


def _choices(value: Any, known: tuple[str, ...], where: str, what: str) -> None:
    for item in _strings(value, where):
        if item not in known:
            raise ValidationFailed(f"{where}: unknown {what} {item!r}; known: {', '.join(known)}")


def _check_owns(value: Any, where: str) -> None:
    if not isinstance(value, dict) or not value:
        raise ValidationFailed(
            f'{where}: expected e.g. {{"category": "gpu", "brand": "NVIDIA"}} '
            f"(keys: {', '.join(OWNS_KEYS)})"
        )
    for key, item in value.items():
        if key not in OWNS_KEYS:
            raise ValidationFailed(f"{where}: unknown key {key!r}; known: {', '.join(OWNS_KEYS)}")
        if key == "category":
            _choices(item, CATEGORY_KEYS, f"{where}.category", "product category")
        else:
            _strings(item, f"{where}.{key}")


def _range(value: Any, where: str, *, integer: bool) -> None:
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise ValidationFailed(f'{where}: expected {{"min": ..., "max": ...}} (one or both)')
    bounds: dict[str, Decimal] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            raise ValidationFailed(f"{where}.{key}: expected a number")
        try:
            number = Decimal(str(item))
        except InvalidOperation:
            raise ValidationFailed(f"{where}.{key}: {item!r} is not a number") from None
        if number < 0 or (integer and number != number.to_integral_value()):
            kind = "a whole number of days" if integer else "an amount"
            raise ValidationFailed(f"{where}.{key}: expected {kind} ≥ 0, got {item!r}")
        bounds[key] = number
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise ValidationFailed(f"{where}: min {bounds['min']} is above max {bounds['max']}")


# ---------------------------------------------------------------------- compilation


def _compile(node: dict[str, Any], now: datetime, dialect: str) -> ColumnElement[bool]:
    ((key, value),) = node.items()
    if key == "and":
        return and_(*(_compile(child, now, dialect) for child in value))
    if key == "or":
        return or_(*(_compile(child, now, dialect) for child in value))
    if key == "not":
        return not_(_compile(value, now, dialect))
    compiler = _LEAVES[key]
    return compiler(value, now, dialect)


def _in(column: Any) -> Callable[[Any, datetime, str], ColumnElement[bool]]:
    def build(value: Any, _now: datetime, _dialect: str) -> ColumnElement[bool]:
        return column.in_([v.strip() for v in _as_list(value)])  # type: ignore[no-any-return]

    return build


def _all(_value: Any, _now: datetime, _dialect: str) -> ColumnElement[bool]:
    return true()


def _consent(value: Any, _now: datetime, _dialect: str) -> ColumnElement[bool]:
    return Customer.marketing_consent.is_(True) if value else Customer.marketing_consent.is_(False)


def _tag(value: Any, _now: datetime, dialect: str) -> ColumnElement[bool]:
    return or_(*(has_tag(tag.strip(), dialect) for tag in _as_list(value)))


def has_tag(tag: str, dialect: str) -> ColumnElement[bool]:
    """The customer's tags (a JSON list) contain `tag`, on PostgreSQL (jsonb @>) and SQLite."""
    if dialect == "postgresql":
        return Customer.tags.op("@>", is_comparison=True)(cast(literal(json.dumps([tag])), JSONB))  # type: ignore[no-any-return]
    each = func.json_each(Customer.tags).table_valued("value")
    return exists(select(literal_column("1")).select_from(each).where(each.c.value == tag))


def _owns(value: dict[str, Any], _now: datetime, _dialect: str) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [
        Order.customer_id == Customer.id,
        Order.status.in_(PURCHASED_STATUSES),
    ]
    for key, item in value.items():
        items = [v.strip() for v in _as_list(item)]
        if key == "category":
            conditions.append(Product.category.in_(items))
        elif key == "brand":
            conditions.append(func.lower(Product.brand).in_([i.lower() for i in items]))
        elif key == "sku":
            conditions.append(Product.sku.in_(items))
        else:  # model: part of the product's name (either language) or SKU
            conditions.append(
                or_(
                    *(
                        or_(
                            func.lower(Product.name_en).contains(i.lower(), autoescape=True),
                            Product.name_zh.contains(i, autoescape=True),
                            func.lower(Product.sku).contains(i.lower(), autoescape=True),
                        )
                        for i in items
                    )
                )
            )
    return exists(
        select(literal_column("1"))
        .select_from(OrderItem)
        .join(Order, Order.id == OrderItem.order_id)
        .join(Product, Product.id == OrderItem.product_id)
        .where(*conditions)
    )


def _last_purchase(value: dict[str, Any], now: datetime, _dialect: str) -> ColumnElement[bool]:
    purchases = Order.__table__.alias("lp_orders")
    last = (
        select(func.max(purchases.c.placed_at))
        .where(
            purchases.c.customer_id == Customer.id,
            purchases.c.status.in_(PURCHASED_STATUSES),
        )
        .scalar_subquery()
    )
    conditions: list[ColumnElement[bool]] = [last.is_not(None)]
    if "min" in value:  # at least `min` days ago
        conditions.append(last <= now - timedelta(days=int(value["min"])))
    if "max" in value:  # within the last `max` days
        conditions.append(last >= now - timedelta(days=int(value["max"])))
    return and_(*conditions)


def _spend(value: dict[str, Any], _now: datetime, _dialect: str) -> ColumnElement[bool]:
    purchases = Order.__table__.alias("sp_orders")
    total = func.coalesce(
        select(func.sum(purchases.c.total))
        .where(
            purchases.c.customer_id == Customer.id,
            purchases.c.status.in_(PURCHASED_STATUSES),
        )
        .scalar_subquery(),
        0,
    )
    conditions: list[ColumnElement[bool]] = []
    if "min" in value:
        conditions.append(total >= Decimal(str(value["min"])))
    if "max" in value:
        conditions.append(total <= Decimal(str(value["max"])))
    return and_(*conditions) if conditions else false()


_LEAVES: dict[str, Callable[[Any, datetime, str], ColumnElement[bool]]] = {
    "all": _all,
    "lifecycle_stage": _in(Customer.lifecycle_stage),
    "rfm_segment": _in(Customer.rfm_segment),
    "language": _in(Customer.language),
    "customer_type": _in(Customer.customer_type),
    "tag": _tag,
    "consent": _consent,
    "owns": _owns,
    "last_purchase_days": _last_purchase,
    "spend": _spend,
}

"""The product catalog: look-up by SKU, search in zh or en, upsert with spec validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.categories import CATEGORY_KEYS, canonical_category
from crm_core.catalog.models import Product
from crm_core.catalog.schemas import (
    ProductDTO,
    ProductUpsert,
    describe_validation_error,
    validate_specs,
)
from crm_core.errors import NotFound, ValidationFailed

# Standard warranty per category (knowledge_base/articles/README.md, "Policy facts").
POLICY_WARRANTY_MONTHS: dict[str, int] = {
    "gpu": 36,
    "cpu": 36,
    "motherboard": 36,
    "monitor": 36,
    "ram": 60,
    "ssd": 60,
    "psu": 60,
    "hdd": 36,
    "cooler": 24,  # AIO liquid coolers: 60, see policy_warranty_months
    "case": 12,
    "laptop": 24,
    "keyboard": 24,
    "mouse": 24,
    "router": 24,
    "ups": 24,
    "headset": 12,
}
AIO_WARRANTY_MONTHS = 60
assert set(POLICY_WARRANTY_MONTHS) == set(CATEGORY_KEYS)


def policy_warranty_months(category: str, specs: Mapping[str, Any] | None = None) -> int:
    """The policy warranty length for a product of `category` (AIO coolers get 60 months)."""
    if category == "cooler" and specs and specs.get("type") == "aio":
        return AIO_WARRANTY_MONTHS
    return POLICY_WARRANTY_MONTHS[category]


class CatalogService:
    """Products and their specs. Returns ProductDTOs; never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, sku: str) -> ProductDTO:
        """The product with this SKU (case-insensitive); NotFound otherwise."""
        product = await self._by_sku(sku)
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}")
        return ProductDTO.model_validate(product)

    async def get_by_id(self, product_id: int) -> ProductDTO:
        product = await self.session.get(Product, product_id)
        if product is None:
            raise NotFound(f"no product with id {product_id}")
        return ProductDTO.model_validate(product)

    async def search(
        self,
        query: str | None = None,
        *,
        category: str | None = None,
        brand: str | None = None,
        active_only: bool = True,
        limit: int = 20,
        offset: int = 0,
    ) -> list[ProductDTO]:
        """Products matching every word of `query` in the zh or en name, SKU or brand.

        Matching is case-insensitive ("rtx 4090", "RTX4090" does not split, "显卡 4070"
        works when the Chinese name contains both). `category` accepts canonical keys and
        zh/en synonyms ("显卡", "graphics card"). Results are ordered by category, then price.
        """
        stmt: Select[tuple[Product]] = select(Product)
        if category:
            key = canonical_category(category)
            if key is None:
                raise ValidationFailed(
                    f"unknown product category {category!r}; use one of {', '.join(CATEGORY_KEYS)}"
                )
            stmt = stmt.where(Product.category == key)
        if brand:
            stmt = stmt.where(func.lower(Product.brand) == brand.strip().lower())
        if active_only:
            stmt = stmt.where(Product.active.is_(True))
        for word in (query or "").split():
            stmt = stmt.where(_matches(word))
        stmt = (
            stmt.order_by(Product.category, Product.price, Product.sku)
            .limit(max(1, min(limit, 500)))
            .offset(max(0, offset))
        )
        rows = (await self.session.scalars(stmt)).all()
        return [ProductDTO.model_validate(p) for p in rows]

    async def brands(self, category: str | None = None) -> list[str]:
        """Distinct brands (of one category when given), alphabetically."""
        stmt = select(Product.brand).distinct().order_by(Product.brand)
        if category:
            stmt = stmt.where(Product.category == canonical_category(category))
        return list((await self.session.scalars(stmt)).all())

    async def upsert(self, data: ProductUpsert | Mapping[str, Any]) -> ProductDTO:
        """Create the product, or update the one with the same SKU; specs are validated.

        Raises ValidationFailed naming the bad field (`specs.board_power_w: ...`).
        """
        if not isinstance(data, ProductUpsert):
            try:
                data = ProductUpsert.model_validate(dict(data))
            except ValidationError as exc:
                raise ValidationFailed(
                    f"invalid product: {describe_validation_error(exc)}"
                ) from None
        specs = validate_specs(data.category, data.specs)
        months = (
            data.warranty_months
            if data.warranty_months is not None
            else policy_warranty_months(data.category, specs)
        )
        product = await self._by_sku(data.sku)
        if product is None:
            product = Product(sku=data.sku)
            self.session.add(product)
        product.name_en = data.name_en
        product.name_zh = data.name_zh
        product.category = data.category
        product.brand = data.brand
        product.price = data.price
        product.currency = data.currency
        product.warranty_months = months
        product.specs = specs
        product.active = data.active
        if "stock_qty" in data.model_fields_set:
            product.stock_qty = data.stock_qty
        await self.session.flush()
        await self.session.refresh(product)
        return ProductDTO.model_validate(product)

    async def set_active(self, sku: str, active: bool) -> ProductDTO:
        """Take a product off sale (or back on) without deleting its history."""
        product = await self._by_sku(sku)
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}")
        product.active = active
        await self.session.flush()
        return ProductDTO.model_validate(product)

    async def set_stock(self, sku: str, quantity: int | None) -> ProductDTO:
        """Record the units on hand (None: stop tracking stock for this product)."""
        if quantity is not None and quantity < 0:
            raise ValidationFailed(f"stock cannot be negative (got {quantity})")
        product = await self._by_sku(sku)
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}")
        product.stock_qty = quantity
        await self.session.flush()
        return ProductDTO.model_validate(product)

    async def count_by_category(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Product.category, func.count()).group_by(Product.category)
        )
        return {category: int(n) for category, n in rows.all()}

    async def _by_sku(self, sku: str) -> Product | None:
        return await self.session.scalar(select(Product).where(Product.sku == sku.strip().upper()))


def _matches(word: str) -> ColumnElement[bool]:
    # LIKE with escaped wildcards; lower() on both sides (Chinese is unaffected by lower()).
    needle = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{needle}%"
    return or_(
        func.lower(Product.name_en).like(pattern, escape="\\"),
        func.lower(Product.name_zh).like(pattern, escape="\\"),
        func.lower(Product.sku).like(pattern, escape="\\"),
        func.lower(Product.brand).like(pattern, escape="\\"),
    )

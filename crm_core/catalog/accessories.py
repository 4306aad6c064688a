"""Accessories for a device: "a PSU for my graphics card", "a cooler for my 7800X3D".

The device is a catalog product (one the customer owns, or a model they name); the accessory
is a category. A candidate is suggested only when every active compatibility rule between the
two categories passes (crm_core.catalog.compatibility: PSU wattage headroom + native
connectors for a GPU, cooler socket + TDP for a CPU, RAM type for a board, GPU length for a
case), and, when given, the rules against the customer's other devices too (a PSU for my GPU
that also fits my SFX case). Each suggestion carries the reasons it fits, in zh and en.

One service serves the bot's accessory purchase and the campaigns' accessory promotion; the
promotion ranks by co-purchase statistics through `rank_by` and filters to items in stock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.categories import CATEGORY_KEYS, canonical_category
from crm_core.catalog.compatibility import ActiveRule, CompatibilityService, RuleOutcome
from crm_core.catalog.models import Product
from crm_core.catalog.schemas import (
    AccessoryMatch,
    AccessoryMiss,
    AccessorySuggestion,
    ProductDTO,
    SpecModel,
    parse_specs,
)
from crm_core.errors import NotFound, ValidationFailed

DEFAULT_LIMIT = 5
DeviceRef = ProductDTO | str | int
"""A device as a ProductDTO, a SKU, or a product id."""


def check_pair(
    rules: Sequence[ActiveRule],
    device: ProductDTO,
    accessory: ProductDTO,
) -> list[tuple[str, RuleOutcome]] | None:
    """Every rule between the two products' categories on their specs, as (rule, outcome).

    None when either product's specs are incomplete (such a product is never suggested).
    Pure: the same evaluation the tests run over the whole demo catalog.
    """
    try:
        device_specs = parse_specs(device.category, device.specs)
        accessory_specs = parse_specs(accessory.category, accessory.specs)
    except ValidationFailed:
        return None
    return [
        (rule.name, _run(rule, device.category, device_specs, accessory_specs))
        for rule in rules_between(rules, device.category, accessory.category)
    ]


def rules_between(rules: Sequence[ActiveRule], cat_a: str, cat_b: str) -> list[ActiveRule]:
    """The active rules relating two different categories (either direction)."""
    if cat_a == cat_b:
        return []
    return [
        r
        for r in rules
        if {r.definition.source_category, r.definition.target_category} == {cat_a, cat_b}
    ]


def _run(
    rule: ActiveRule, anchor_category: str, anchor: SpecModel, other: SpecModel
) -> RuleOutcome:
    d = rule.definition
    source, target = (anchor, other) if d.source_category == anchor_category else (other, anchor)
    return d.check(cast(Any, source), cast(Any, target), rule.params)


def order_suggestions(
    items: Sequence[AccessorySuggestion], rank_by: Mapping[int, float] | None = None
) -> list[AccessorySuggestion]:
    """Highest `rank_by` score first (co-purchase statistics), then in stock, then cheapest."""
    scores = rank_by or {}
    return sorted(
        items,
        key=lambda s: (
            -scores.get(s.product.id, 0.0),
            not s.product.in_stock,
            s.product.price,
            s.product.sku,
        ),
    )


class AccessoryService:
    """Compatible accessories of one category for a device. Returns DTOs; never commits."""

    def __init__(
        self, session: AsyncSession, compatibility: CompatibilityService | None = None
    ) -> None:
        self.session = session
        self.compatibility = compatibility or CompatibilityService(session)
        self._rules: list[ActiveRule] | None = None

    async def rules(self) -> list[ActiveRule]:
        """The active compatibility rules (read once per service, i.e. per unit of work)."""
        if self._rules is None:
            self._rules = await self.compatibility.active_rules()
        return self._rules

    async def accessory_categories(self, device_category: str) -> list[str]:
        """Categories an accessory of a `device_category` product can be suggested from."""
        return await self.compatibility.related_categories(device_category)

    async def device(self, ref: DeviceRef) -> ProductDTO:
        """The catalog product for a ProductDTO, SKU or product id (NotFound otherwise)."""
        if isinstance(ref, ProductDTO):
            return ref
        if isinstance(ref, int):
            row = await self.session.get(Product, ref)
        else:
            row = await self.session.scalar(
                select(Product).where(Product.sku == ref.strip().upper())
            )
        if row is None:
            raise NotFound(f"no product {ref!r}")
        return ProductDTO.model_validate(row)

    async def compatible_accessories(
        self,
        device: DeviceRef,
        accessory_category: str,
        *,
        budget: Decimal | None = None,
        exclude_product_ids: Collection[int] = (),
        also_fits: Sequence[ProductDTO] = (),
        in_stock_only: bool = False,
        rank_by: Mapping[int, float] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AccessorySuggestion]:
        """Active `accessory_category` products that fit `device` (and every `also_fits`
        device), at most `budget`, not in `exclude_product_ids`; ordered by `rank_by`
        (higher first), then in stock, then price.

        Raises NotFound for an unknown device and ValidationFailed for an unknown category,
        a device with incomplete specs, or when no active rule relates the two categories (so
        "no rule" is never mistaken for "nothing fits").
        """
        match = await self.match(
            device,
            accessory_category,
            budget=budget,
            exclude_product_ids=exclude_product_ids,
            also_fits=also_fits,
            in_stock_only=in_stock_only,
            rank_by=rank_by,
            limit=limit,
        )
        return match.suggestions

    async def match(
        self,
        device: DeviceRef,
        accessory_category: str,
        *,
        budget: Decimal | None = None,
        exclude_product_ids: Collection[int] = (),
        also_fits: Sequence[ProductDTO] = (),
        in_stock_only: bool = False,
        rank_by: Mapping[int, float] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> AccessoryMatch:
        """Like `compatible_accessories`, plus what to say when nothing qualifies: the
        cheapest compatible item over the budget (`nearest`), or, when nothing fits at all,
        the candidate failing the fewest checks with why (`closest_misfit`)."""
        anchor = await self.device(device)
        category = _category(accessory_category)
        rules = await self.rules()
        if not rules_between(rules, anchor.category, category):
            raise ValidationFailed(
                f"no active compatibility rule between {anchor.category} and {category}"
            )
        try:
            parse_specs(anchor.category, anchor.specs)
        except ValidationFailed:
            raise ValidationFailed(f"{anchor.sku} has incomplete {anchor.category} specs") from None
        others = [
            d for d in also_fits if d.id != anchor.id and rules_between(rules, d.category, category)
        ]
        rows = (
            await self.session.scalars(
                select(Product)
                .where(Product.category == category, Product.active.is_(True))
                .order_by(Product.price, Product.sku)
            )
        ).all()
        excluded = set(exclude_product_ids)
        fits: list[AccessorySuggestion] = []
        misfits: list[AccessoryMiss] = []
        for row in rows:
            candidate = ProductDTO.model_validate(row)
            if candidate.id in excluded or (in_stock_only and not candidate.in_stock):
                continue
            outcomes: list[tuple[str, RuleOutcome]] = []
            complete = True
            for device_product in (anchor, *others):
                checked = check_pair(rules, device_product, candidate)
                if checked is None:
                    complete = False
                    break
                outcomes += checked
            if not complete:
                continue
            if all(o.ok for _, o in outcomes):
                fits.append(
                    AccessorySuggestion(
                        product=candidate,
                        device_sku=anchor.sku,
                        rules=[name for name, _ in outcomes],
                        reasons_en=[o.en for _, o in outcomes],
                        reasons_zh=[o.zh for _, o in outcomes],
                        score=(rank_by or {}).get(candidate.id),
                    )
                )
            else:
                failed = [o for _, o in outcomes if not o.ok]
                misfits.append(
                    AccessoryMiss(
                        product=candidate,
                        device_sku=anchor.sku,
                        failed=len(failed),
                        problems_en=[o.en for o in failed],
                        problems_zh=[o.zh for o in failed],
                    )
                )
        within = [s for s in fits if budget is None or s.product.price <= budget]
        ordered = order_suggestions(within, rank_by)[: max(1, limit)]
        over = sorted(
            (s for s in fits if budget is not None and s.product.price > budget),
            key=lambda s: (not s.product.in_stock, s.product.price, s.product.sku),
        )
        closest = None
        if not fits and misfits:
            # Fewest failed checks; then the dearest (more watts, more clearance, more TDP).
            closest = min(misfits, key=lambda m: (m.failed, -m.product.price, m.product.sku))
        return AccessoryMatch(
            device=anchor,
            category=category,
            budget=budget,
            suggestions=ordered,
            compatible_count=len(fits),
            nearest=over[0] if not ordered and over else None,
            closest_misfit=closest,
        )

    async def find_devices(
        self, model: str, category: str | None = None, *, limit: int = 5
    ) -> list[ProductDTO]:
        """Catalog products matching a model the customer names ("7800X3D", "B650"), best
        first: an exact model token in the name before a partial match, then cheapest."""
        from crm_core.catalog.service import CatalogService

        catalog = CatalogService(self.session)
        found = await catalog.search(model, category=category, limit=50)
        if not found and category is not None:
            found = await catalog.search(model, limit=50)
        if not found:
            # "RTX4070" / "rx9070xt": the customer's spacing differs from the catalog's.
            compact = "".join(model.lower().split())
            pool = await catalog.search(category=category, limit=500) if category else []
            found = [p for p in pool if compact in "".join(p.name_en.lower().split())]
        needle = " ".join(model.lower().split())

        def exact(p: ProductDTO) -> bool:
            words = f" {p.name_en.lower()} "
            return f" {needle} " in words

        found.sort(key=lambda p: (not exact(p), p.price, p.sku))
        return found[:limit]


def _category(value: str) -> str:
    key = canonical_category(value)
    if key is None:
        raise ValidationFailed(
            f"unknown product category {value!r}; use one of {', '.join(CATEGORY_KEYS)}"
        )
    return key

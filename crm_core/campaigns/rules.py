"""Automation rules: follow-ups and promotions the CRM sends by itself.

Every rule turns "who is due now" into delivery rows with an occurrence key that names the
subject, so one subject is messaged once, however often the rules run:

* `post_purchase` — `rule:post_purchase:order:<order id>`: N days after delivery, a check-in
  with 1-2 knowledge-base tips for the main product's category, cited (title + link).
* `accessory` — `rule:accessory:device:<product id>:<category>`: the customer owns a device of
  a source category bought between min and max days ago and owns nothing of a related
  category; items that fit the device by the catalog's compatibility rules (and their other
  devices), in stock, never one they own, ranked by co-purchase statistics; each item says why
  it fits their device, in their language. At most one new accessory push per customer per run.
* `warranty_expiring` — `rule:warranty_expiring:serial:<SN>`: the extended-warranty offer;
  the button leads to the bot's extension flow, which records a lead.
* `ticket_survey` — `rule:ticket_survey:ticket:<id>`: satisfaction survey a day after the ticket
  was resolved, when it has no rating yet.
* `re_engagement` — `rule:re_engagement:order:<last order id>`: once per at-risk episode (a new
  order starts a new episode).

Marketing rules only enqueue for consenting customers; consent, quiet hours, the frequency
cap and agent conversations are checked again when the row is sent (DeliveryService).
Defaults come from config.yml (`campaigns.rules`); `hwcrm rules enable|disable|set` stores an
override in `automation_rule_settings`, which wins.
"""

from __future__ import annotations

import html
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, and_, distinct, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.campaigns.delivery import BLOCKED_TAG
from crm_core.campaigns.models import AutomationRuleSetting, CampaignDelivery
from crm_core.campaigns.repository import dialect_name, insert_deliveries
from crm_core.campaigns.schemas import CampaignReport, RuleDTO
from crm_core.campaigns.segments import PURCHASED_STATUSES, has_tag
from crm_core.campaigns.service import Texts
from crm_core.campaigns.templates import first_name
from crm_core.catalog.accessories import AccessoryService
from crm_core.catalog.categories import CATEGORY_NAMES
from crm_core.catalog.models import Product
from crm_core.catalog.schemas import AccessorySuggestion, ProductDTO
from crm_core.clock import Clock
from crm_core.conversations.models import SatisfactionRating
from crm_core.customers.models import Customer
from crm_core.errors import NotFound, ValidationFailed
from crm_core.orders.models import Order, OrderItem
from crm_core.tickets.models import Ticket
from crm_core.warranties.service import WarrantyService
from knowledge_base.models import KbArticle

if TYPE_CHECKING:
    from app.settings import CampaignsSection, CrmSection, RuleBase

log = logging.getLogger(__name__)

RULE_NAMES = ("post_purchase", "accessory", "warranty_expiring", "ticket_survey", "re_engagement")
ACTION_CALLBACK = "cmp:a:{d}:"  # + the action; the bot's campaigns router handles it
UNSUBSCRIBE_CALLBACK = "cmp:u:{d}"


class RuleService:
    """Evaluates and configures the automation rules. Nothing here commits."""

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: CampaignsSection,
        texts: Texts,
        crm: CrmSection,
        accessories: AccessoryService | None = None,
    ) -> None:
        self._session = session
        self._clock = clock
        self._settings = settings
        self._texts = texts
        self._crm = crm
        self._accessories = accessories or AccessoryService(session)
        self._co_purchase: dict[tuple[int, str], dict[int, float]] = {}
        self._owned_cache: dict[int, list[tuple[ProductDTO, datetime]]] = {}
        self._co_purchase_tables: dict[
            str, tuple[dict[int, dict[int, int]], dict[str, dict[int, int]]]
        ] = {}

    # ------------------------------------------------------------------ configuration

    async def list_rules(self) -> list[RuleDTO]:
        out: list[RuleDTO] = []
        overrides = await self._overrides()
        for name in RULE_NAMES:
            rule = self._effective(name, overrides.get(name))
            params = rule.model_dump(exclude={"enabled", "kind"})
            out.append(
                RuleDTO(
                    name=name,
                    enabled=rule.enabled,
                    kind=rule.kind,
                    params=params,
                    overridden=name in overrides,
                )
            )
        return out

    async def set_enabled(self, name: str, enabled: bool, *, actor: str = "system") -> RuleDTO:
        row = await self._override_row(name)
        row.enabled = enabled
        row.updated_by = actor[:64]
        row.updated_at = self._clock.now()
        await self._session.flush()
        return next(r for r in await self.list_rules() if r.name == name)

    async def set_params(
        self, name: str, params: dict[str, Any], *, actor: str = "system"
    ) -> RuleDTO:
        """Tune a rule (e.g. days_after_delivery=10); validated against the rule's settings."""
        row = await self._override_row(name)
        merged = {**(row.params or {}), **params}
        self._effective(name, _Override(None, merged))  # raises on a bad key or value
        row.params = merged
        row.updated_by = actor[:64]
        row.updated_at = self._clock.now()
        await self._session.flush()
        return next(r for r in await self.list_rules() if r.name == name)

    async def _overrides(self) -> dict[str, _Override]:
        rows = await self._session.scalars(select(AutomationRuleSetting))
        return {r.name: _Override(r.enabled, dict(r.params or {})) for r in rows}

    async def _override_row(self, name: str) -> AutomationRuleSetting:
        _check_name(name)
        row = await self._session.scalar(
            select(AutomationRuleSetting).where(AutomationRuleSetting.name == name)
        )
        if row is None:
            row = AutomationRuleSetting(name=name, enabled=None, params={})
            self._session.add(row)
        return row

    def _effective(self, name: str, override: _Override | None) -> RuleBase:
        base: BaseModel = getattr(self._settings.rules, name)
        if override is None:
            return base  # type: ignore[return-value]
        data = base.model_dump()
        unknown = set(override.params) - set(data) - {"enabled"}
        if unknown:
            raise ValidationFailed(
                f"rule {name}: unknown setting(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(k for k in data if k != 'enabled')}"
            )
        data.update(override.params)
        if override.enabled is not None:
            data["enabled"] = override.enabled
        try:
            return type(base).model_validate(data)  # type: ignore[return-value]
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValidationFailed(f"rule {name}: {problems}") from None

    async def report(self, name: str) -> CampaignReport:
        """The report of one rule's pushes (every occurrence)."""
        from crm_core.campaigns.reports import build_report

        rule = (
            next(r for r in await self.list_rules() if r.name == name)
            if name in RULE_NAMES
            else None
        )
        _check_name(name)
        assert rule is not None
        return await build_report(
            self._session,
            self._clock.now(),
            self._settings,
            name=name,
            state="enabled" if rule.enabled else "disabled",
            where=CampaignDelivery.rule == name,
            attribution_days=self._settings.attribution_days,
            currency=self._crm.currency,
            rule=name,
        )

    # ------------------------------------------------------------------ running

    async def run_rules(
        self, now: datetime | None = None, *, dry_run: bool = False, only: str | None = None
    ) -> dict[str, int]:
        """Evaluate every enabled rule (or `only` one); returns new rows per rule.

        Idempotent per occurrence key. With `dry_run` nothing is written: the numbers are the
        rows a real run would add.
        """
        now = now or self._clock.now()
        if only is not None:
            _check_name(only)
        overrides = await self._overrides()
        builders: dict[str, Callable[[Any, datetime], Any]] = {
            "post_purchase": self._post_purchase,
            "accessory": self._accessory,
            "warranty_expiring": self._warranty_expiring,
            "ticket_survey": self._ticket_survey,
            "re_engagement": self._re_engagement,
        }
        counts: dict[str, int] = {}
        for name in RULE_NAMES:
            if only is not None and name != only:
                continue
            rule = self._effective(name, overrides.get(name))
            if not rule.enabled:
                continue
            rows: list[dict[str, Any]] = await builders[name](rule, now)
            rows = await self._new_only(rows)
            counts[name] = len(rows) if dry_run else await insert_deliveries(self._session, rows)
        return counts

    async def preview_rows(self, name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        """The rows a run of one rule would add now (for `hwcrm rules run --dry-run` and tests)."""
        _check_name(name)
        now = now or self._clock.now()
        overrides = await self._overrides()
        rule = self._effective(name, overrides.get(name))
        builder = getattr(self, f"_{name}")
        return await self._new_only(await builder(rule, now))

    async def _new_only(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop rows whose (occurrence key, customer) already exists (for honest dry runs)."""
        if not rows:
            return rows
        keys = {r["occurrence_key"] for r in rows}
        existing: set[tuple[str, int | None]] = set()
        key_list = sorted(keys)
        for start in range(0, len(key_list), 500):
            chunk = key_list[start : start + 500]
            for key, customer_id in await self._session.execute(
                select(CampaignDelivery.occurrence_key, CampaignDelivery.customer_id).where(
                    CampaignDelivery.occurrence_key.in_(chunk)
                )
            ):
                existing.add((key, customer_id))
        return [r for r in rows if (r["occurrence_key"], r["customer_id"]) not in existing]

    # ------------------------------------------------------------------ the rules

    async def _post_purchase(self, rule: Any, now: datetime) -> list[dict[str, Any]]:
        latest = now - timedelta(days=rule.days_after_delivery)
        earliest = latest - timedelta(days=rule.window_days)
        orders = await self._session.execute(
            select(Order.id, Order.customer_id)
            .join(Customer, Customer.id == Order.customer_id)
            .where(
                Order.status == "delivered",
                Order.delivered_at > earliest,
                Order.delivered_at <= latest,
                self._reachable(rule.kind),
            )
            .order_by(Order.id)
        )
        order_rows = list(orders)
        if not order_rows:
            return []
        main = await self._main_items([o.id for o in order_rows])
        customers = await self._customers({o.customer_id for o in order_rows})
        articles = await self._kb_articles()
        rows: list[dict[str, Any]] = []
        for order_id, customer_id in order_rows:
            product = main.get(order_id)
            if product is None:
                continue
            customer = customers[customer_id]
            lang = customer.language
            text = self._texts(
                "campaigns.rule.post_purchase",
                lang,
                first_name=_e(first_name(customer.name)),
                product=_e(product.name(lang)),
            )
            tips = _tips(articles, product.category, lang, rule.tips)
            if tips:
                category = CATEGORY_NAMES.get(product.category, {}).get(lang, product.category)
                header = self._texts("campaigns.rule.post_purchase_tips", lang, category=category)
                text += "\n\n" + header + "\n" + "\n".join(tips)
            rows.append(
                self._row("post_purchase", f"order:{order_id}", customer, rule.kind, text, now)
            )
        return rows

    async def _accessory(self, rule: Any, now: datetime) -> list[dict[str, Any]]:
        newest = now - timedelta(days=rule.min_days_since_purchase)
        oldest = now - timedelta(days=rule.max_days_since_purchase)
        owners = await self._session.scalars(
            select(Order.customer_id)
            .distinct()
            .join(OrderItem, OrderItem.order_id == Order.id)
            .join(Product, Product.id == OrderItem.product_id)
            .join(Customer, Customer.id == Order.customer_id)
            .where(
                Order.status.in_(PURCHASED_STATUSES),
                Product.category.in_(rule.source_categories),
                Order.placed_at <= newest,
                Order.placed_at >= oldest,
                self._reachable(rule.kind),
            )
        )
        customer_ids = sorted(owners)
        if not customer_ids:
            return []
        customers = await self._customers(set(customer_ids))
        done = await self._existing_keys("accessory", customer_ids)
        await self._prefetch_owned(customer_ids)
        rows: list[dict[str, Any]] = []
        for customer_id in customer_ids:
            customer = customers[customer_id]
            offer = await self.accessory_offer(
                customer_id,
                source_categories=rule.source_categories,
                bought_between=(oldest, newest),
                items=rule.items,
                skip_keys=done.get(customer_id, set()),
            )
            if offer is None:
                continue
            device, category, suggestions = offer
            text, buttons = self._accessory_message(customer, device, category, suggestions)
            rows.append(
                self._row(
                    "accessory",
                    f"device:{device.id}:{category}",
                    customer,
                    rule.kind,
                    text,
                    now,
                    buttons=buttons,
                    product_ids=[s.product.id for s in suggestions],
                )
            )
        return rows

    async def accessory_offer(
        self,
        customer_id: int,
        *,
        source_categories: Sequence[str],
        bought_between: tuple[datetime, datetime] | None = None,
        items: int = 3,
        skip_keys: set[str] | None = None,
        only_category: str | None = None,
        skip_owned_categories: bool = True,
    ) -> tuple[ProductDTO, str, list[AccessorySuggestion]] | None:
        """The accessory push for one customer: (their device, category, items), or None.

        Devices newest first; a related category is offered only when the customer owns
        nothing of it; items fit the device and every other device they own that a rule
        relates to the category (one of its kind: two cases mean two builds), are in stock,
        are not owned, and are ranked by how often owners of the same device (then of its
        category) bought them. `only_category` and
        `skip_owned_categories=False` serve a customer who asked ("show me compatible PSUs").
        """
        owned = await self._owned(customer_id)
        owned_categories = {p.category for p, _ in owned}
        category_counts = Counter(p.category for p, _ in owned)
        owned_ids = {p.id for p, _ in owned}
        devices = [
            p
            for p, placed_at in owned
            if p.category in source_categories
            and (bought_between is None or bought_between[0] <= placed_at <= bought_between[1])
        ]
        for device in devices:
            for category in await self._accessories.accessory_categories(device.category):
                if only_category is not None and category != only_category:
                    continue
                if skip_owned_categories and category in owned_categories:
                    continue
                if skip_keys and f"device:{device.id}:{category}" in skip_keys:
                    continue
                # Other devices constrain the pick only when unambiguous: with two cases
                # (two builds) no PSU need fit both.
                others = [
                    p for p, _ in owned if p.id != device.id and category_counts[p.category] == 1
                ]
                try:
                    suggestions = await self._accessories.compatible_accessories(
                        device,
                        category,
                        exclude_product_ids=owned_ids,
                        also_fits=others,
                        in_stock_only=True,
                        rank_by=await self._co_purchase_scores(device, category),
                        limit=items,
                    )
                except (ValidationFailed, NotFound) as exc:
                    log.info("accessory rule: %s (%s → %s)", exc, device.sku, category)
                    continue
                if suggestions:
                    return device, category, suggestions
        return None

    def _accessory_message(
        self,
        customer: Customer,
        device: ProductDTO,
        category: str,
        suggestions: list[AccessorySuggestion],
    ) -> tuple[str, list[list[dict[str, str]]]]:
        lang = customer.language
        lines = [
            self._texts(
                "campaigns.rule.accessory_intro",
                lang,
                first_name=_e(first_name(customer.name)),
                device=_e(device.name(lang)),
            )
        ]
        for s in suggestions:
            reasons = s.reasons_zh if lang == "zh" else s.reasons_en
            why = ("；" if lang == "zh" else "; ").join(reasons)
            lines.append(
                self._texts(
                    "campaigns.rule.accessory_item",
                    lang,
                    name=_e(s.product.name(lang)),
                    price=_e(_money(s.product.price, s.product.currency)),
                    why=_e(why),
                )
            )
        category_name = CATEGORY_NAMES.get(category, {}).get(lang, category)
        buttons = [
            [
                {
                    "text": self._texts(
                        "campaigns.rule.accessory_button", lang, name=category_name
                    ),
                    "callback_data": ACTION_CALLBACK + f"compatible:{category}",
                }
            ]
        ]
        return "\n".join(lines), buttons

    async def _warranty_expiring(self, rule: Any, now: datetime) -> list[dict[str, Any]]:
        warranties = WarrantyService(self._session, _At(now), self._crm)
        units = [
            u
            for u in await warranties.expiring_units(rule.within_days)
            if u.extension_available and u.serial_number is not None
        ]
        if not units:
            return []
        reachable = set(
            await self._session.scalars(
                select(Customer.id).where(
                    Customer.id.in_({u.customer_id for u in units}), self._reachable(rule.kind)
                )
            )
        )
        customers = await self._customers(reachable)
        rows: list[dict[str, Any]] = []
        for unit in units:
            if unit.customer_id not in reachable or unit.serial_number is None:
                continue
            customer = customers[unit.customer_id]
            lang = customer.language
            text = self._texts(
                "campaigns.rule.warranty_expiring",
                lang,
                first_name=_e(first_name(customer.name)),
                product=_e(unit.product_name_zh if lang == "zh" else unit.product_name_en),
                serial_number=unit.serial_number,
                warranty_end=unit.ends_on.isoformat(),
                days_left=unit.days_left,
                months=rule.extension_months,
            )
            action = f"ext:{unit.serial_number}:{rule.extension_months}"
            buttons = [
                [
                    {
                        "text": self._texts("campaigns.rule.warranty_button", lang),
                        "callback_data": ACTION_CALLBACK + action,
                    }
                ]
            ]
            rows.append(
                self._row(
                    "warranty_expiring",
                    f"serial:{unit.serial_number}",
                    customer,
                    rule.kind,
                    text,
                    now,
                    buttons=buttons,
                    product_ids=[unit.product_id],
                )
            )
        return rows

    async def _ticket_survey(self, rule: Any, now: datetime) -> list[dict[str, Any]]:
        latest = now - timedelta(hours=rule.hours_after_resolution)
        earliest = latest - timedelta(days=rule.window_days)
        rated = select(SatisfactionRating.id).where(SatisfactionRating.ticket_id == Ticket.id)
        tickets = list(
            await self._session.execute(
                select(Ticket.id, Ticket.ticket_number, Ticket.customer_id)
                .join(Customer, Customer.id == Ticket.customer_id)
                .where(
                    Ticket.status.in_(("resolved", "closed")),
                    Ticket.resolved_at > earliest,
                    Ticket.resolved_at <= latest,
                    ~rated.exists(),
                    self._reachable(rule.kind),
                )
                .order_by(Ticket.id)
            )
        )
        customers = await self._customers({t.customer_id for t in tickets})
        rows: list[dict[str, Any]] = []
        for ticket_id, number, customer_id in tickets:
            customer = customers[customer_id]
            lang = customer.language
            text = self._texts(
                "campaigns.rule.ticket_survey",
                lang,
                first_name=_e(first_name(customer.name)),
                ticket_number=number,
            )
            buttons = [
                [
                    {
                        "text": f"{score}⭐",
                        "callback_data": ACTION_CALLBACK + f"rate:{score}:{number}",
                    }
                    for score in range(1, 6)
                ]
            ]
            rows.append(
                self._row(
                    "ticket_survey",
                    f"ticket:{ticket_id}",
                    customer,
                    rule.kind,
                    text,
                    now,
                    buttons=buttons,
                )
            )
        return rows

    async def _re_engagement(self, rule: Any, now: datetime) -> list[dict[str, Any]]:
        last_order = (
            select(
                Order.customer_id,
                Order.id.label("order_id"),
                func.row_number()
                .over(
                    partition_by=Order.customer_id,
                    order_by=(Order.placed_at.desc(), Order.id.desc()),
                )
                .label("rank"),
            )
            .where(Order.status.in_(PURCHASED_STATUSES))
            .subquery()
        )
        found = list(
            await self._session.execute(
                select(Customer.id, last_order.c.order_id)
                .join(last_order, last_order.c.customer_id == Customer.id)
                .where(
                    last_order.c.rank == 1,
                    Customer.lifecycle_stage == "at_risk",
                    self._reachable(rule.kind),
                )
                .order_by(Customer.id)
            )
        )
        if not found:
            return []
        customers = await self._customers({c for c, _ in found})
        main = await self._main_items([o for _, o in found])
        rows: list[dict[str, Any]] = []
        for customer_id, order_id in found:
            customer = customers[customer_id]
            lang = customer.language
            product = main.get(order_id)
            text = self._texts(
                "campaigns.rule.re_engagement",
                lang,
                first_name=_e(first_name(customer.name)),
                product=_e(product.name(lang) if product else ""),
            )
            buttons = [
                [
                    {
                        "text": self._texts("campaigns.rule.re_engagement_button", lang),
                        "callback_data": ACTION_CALLBACK + "contact",
                    }
                ]
            ]
            rows.append(
                self._row(
                    "re_engagement",
                    f"order:{order_id}",
                    customer,
                    rule.kind,
                    text,
                    now,
                    buttons=buttons,
                )
            )
        return rows

    # ------------------------------------------------------------------ helpers

    def _row(
        self,
        rule: str,
        subject: str,
        customer: Customer,
        kind: str,
        text: str,
        now: datetime,
        *,
        buttons: list[list[dict[str, str]]] | None = None,
        product_ids: list[int] | None = None,
        category: str | None = None,
    ) -> dict[str, Any]:
        rows = list(buttons or [])
        if kind == "marketing":
            rows.append(
                [
                    {
                        "text": self._texts("campaigns.unsubscribe_button", customer.language),
                        "callback_data": UNSUBSCRIBE_CALLBACK,
                    }
                ]
            )
        return {
            "occurrence_key": f"rule:{rule}:{subject}",
            "campaign_id": None,
            "rule": rule,
            "variant": None,
            "customer_id": customer.id,
            "chat_id": customer.telegram_user_id,
            "kind": kind,
            "language": customer.language,
            "state": "queued",
            "due_at": now,
            "attempts": 0,
            "text": text,
            "buttons": rows,
            "product_ids": product_ids or [],
            "category": category,
            "created_at": now,
            "updated_at": now,
        }

    def _reachable(self, kind: str) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = [
            Customer.telegram_user_id.is_not(None),
            Customer.erased_at.is_(None),
            not_(has_tag(BLOCKED_TAG, dialect_name(self._session))),
        ]
        if kind == "marketing":
            conditions.append(Customer.marketing_consent.is_(True))
        return and_(*conditions)

    async def _customers(self, ids: set[int]) -> dict[int, Customer]:
        out: dict[int, Customer] = {}
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            for customer in await self._session.scalars(
                select(Customer).where(Customer.id.in_(chunk))
            ):
                out[customer.id] = customer
        return out

    async def _existing_keys(self, rule: str, customer_ids: list[int]) -> dict[int, set[str]]:
        prefix = f"rule:{rule}:"
        out: dict[int, set[str]] = defaultdict(set)
        for start in range(0, len(customer_ids), 500):
            chunk = customer_ids[start : start + 500]
            for key, customer_id in await self._session.execute(
                select(CampaignDelivery.occurrence_key, CampaignDelivery.customer_id).where(
                    CampaignDelivery.rule == rule, CampaignDelivery.customer_id.in_(chunk)
                )
            ):
                if customer_id is not None:
                    out[customer_id].add(key.removeprefix(prefix))
        return out

    async def _prefetch_owned(self, customer_ids: Sequence[int]) -> None:
        """Load what many customers own in a few queries (the accessory rule's run)."""
        ids = sorted(set(customer_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found: dict[int, list[tuple[ProductDTO, datetime]]] = {c: [] for c in chunk}
            rows = await self._session.execute(
                select(Order.customer_id, Product, func.max(Order.placed_at).label("placed_at"))
                .join(OrderItem, OrderItem.order_id == Order.id)
                .join(Product, Product.id == OrderItem.product_id)
                .where(Order.customer_id.in_(chunk), Order.status.in_(PURCHASED_STATUSES))
                .group_by(Order.customer_id, Product.id)
            )
            for customer_id, product, placed_at in rows:
                found[customer_id].append((ProductDTO.model_validate(product), placed_at))
            for customer_id, items in found.items():
                items.sort(key=lambda item: (-item[1].timestamp(), item[0].id))
                self._owned_cache[customer_id] = items

    async def _owned(self, customer_id: int) -> list[tuple[ProductDTO, datetime]]:
        """Products the customer bought (paid/shipped/delivered), newest purchase first."""
        cached = self._owned_cache.get(customer_id)
        if cached is not None:
            return cached
        rows = await self._session.execute(
            select(Product, func.max(Order.placed_at).label("placed_at"))
            .join(OrderItem, OrderItem.product_id == Product.id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(Order.customer_id == customer_id, Order.status.in_(PURCHASED_STATUSES))
            .group_by(Product.id)
            .order_by(func.max(Order.placed_at).desc(), Product.id)
        )
        return [(ProductDTO.model_validate(p), placed_at) for p, placed_at in rows]

    async def _main_items(self, order_ids: list[int]) -> dict[int, ProductDTO]:
        """Each order's main product (the dearest line)."""
        out: dict[int, ProductDTO] = {}
        for start in range(0, len(order_ids), 500):
            chunk = order_ids[start : start + 500]
            rows = await self._session.execute(
                select(OrderItem.order_id, Product)
                .join(Product, Product.id == OrderItem.product_id)
                .where(OrderItem.order_id.in_(chunk))
                .order_by(OrderItem.order_id, OrderItem.unit_price.desc(), OrderItem.id)
            )
            for order_id, product in rows:
                out.setdefault(order_id, ProductDTO.model_validate(product))
        return out

    async def _co_purchase_scores(self, device: ProductDTO, category: str) -> dict[int, float]:
        """How often each `category` product was bought by owners of this device (whole
        count) and of its category (fraction): co-purchase statistics from order history."""
        key = (device.id, category)
        if key not in self._co_purchase:
            by_model, by_category = await self._co_purchase_counts(category)
            model = by_model.get(device.id, {})
            same_category = by_category.get(device.category, {})
            top = max(same_category.values(), default=0) + 1
            self._co_purchase[key] = {
                pid: model.get(pid, 0) + same_category.get(pid, 0) / top
                for pid in set(model) | set(same_category)
            }
        return self._co_purchase[key]

    async def _co_purchase_counts(
        self, category: str
    ) -> tuple[dict[int, dict[int, int]], dict[str, dict[int, int]]]:
        """For the `category` items: distinct buyers per (device product, item) and per
        (device category, item), over the whole order history — two queries per category
        and rule run (cached), however many customers the run looks at."""
        if category in self._co_purchase_tables:
            return self._co_purchase_tables[category]
        device_orders = Order.__table__.alias("dev_orders")
        device_items = OrderItem.__table__.alias("dev_items")
        device_products = Product.__table__.alias("dev_products")
        accessory = Product.__table__.alias("acc_products")
        base = (
            select()
            .select_from(device_items)
            .join(device_orders, device_orders.c.id == device_items.c.order_id)
            .join(device_products, device_products.c.id == device_items.c.product_id)
            .join(Order, Order.customer_id == device_orders.c.customer_id)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .join(accessory, accessory.c.id == OrderItem.product_id)
            .where(
                accessory.c.category == category,
                device_products.c.category != category,
                device_orders.c.status.in_(PURCHASED_STATUSES),
                Order.status.in_(PURCHASED_STATUSES),
            )
        )
        buyers = func.count(distinct(Order.customer_id))
        by_model: dict[int, dict[int, int]] = defaultdict(dict)
        for device_id, item_id, n in await self._session.execute(
            base.add_columns(device_items.c.product_id, OrderItem.product_id, buyers).group_by(
                device_items.c.product_id, OrderItem.product_id
            )
        ):
            by_model[int(device_id)][int(item_id)] = int(n)
        by_category: dict[str, dict[int, int]] = defaultdict(dict)
        for device_category, item_id, n in await self._session.execute(
            base.add_columns(device_products.c.category, OrderItem.product_id, buyers).group_by(
                device_products.c.category, OrderItem.product_id
            )
        ):
            by_category[str(device_category)][int(item_id)] = int(n)
        self._co_purchase_tables[category] = (dict(by_model), dict(by_category))
        return self._co_purchase_tables[category]

    async def _kb_articles(self) -> list[KbArticle]:
        return list(await self._session.scalars(select(KbArticle).order_by(KbArticle.article_id)))


class _Override:
    def __init__(self, enabled: bool | None, params: dict[str, Any]) -> None:
        self.enabled = enabled
        self.params = params


class _At:
    """A clock standing at the rule run's `now` (warranty status as of that moment)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at


def _check_name(name: str) -> None:
    if name not in RULE_NAMES:
        raise NotFound(f"no automation rule {name!r}; rules: {', '.join(RULE_NAMES)}")


def _tips(articles: list[KbArticle], category: str, lang: str, limit: int) -> list[str]:
    """1-2 knowledge-base articles for the category, in the customer's language, cited."""
    picked = [a for a in articles if category in (a.categories or []) and a.language == lang]
    out: list[str] = []
    for article in picked[: max(0, min(limit, 2))]:
        title = _e(article.title)
        if article.source_url:
            out.append(f'📖 <a href="{html.escape(article.source_url)}">{title}</a>')
        else:
            out.append(f"📖 {title}")
    return out


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _money(amount: Decimal, currency: str) -> str:
    symbol = "¥" if currency == "CNY" else f"{currency} "
    return (
        f"{symbol}{amount:,.0f}"
        if amount == amount.to_integral_value()
        else f"{symbol}{amount:,.2f}"
    )

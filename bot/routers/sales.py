"""Purchase inquiry: suggestions from the catalog (category and budget from what the customer
wrote), a lead recorded in the CRM (source `bot`), and an optional handoff to sales."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from aiogram.filters import Command, StateFilter
from aiogram.types import CallbackQuery, Message

from bot.callbacks import CategoryCb, ProductCb
from bot.flows.context import PLAIN_TEXT, Flow, customer_router
from bot.flows.human import SALES, human_button
from bot.flows.render import category_name, fmt_money
from bot.flows.states import SalesStates
from bot.keyboards import button, categories_keyboard, stack
from crm_core.catalog.categories import CATEGORY_KEYS, canonical_category
from crm_core.catalog.schemas import ProductDTO
from crm_core.leads.schemas import LeadCreate, LeadDTO

router = customer_router("sales")

MAX_SUGGESTIONS = 5
SEARCH_LIMIT = 500
NOTES_MAX = 500
REPEAT_WINDOW = timedelta(days=1)
DRAFT = "sales"

_NUMBER = r"(\d{1,3}(?:[,，]\d{3})+|\d+(?:\.\d+)?)\s*(k|K|千|w|W|万)?"
_BUDGET_PATTERNS = (
    # "under 5000", "budget: 8k", "预算2000", "不超过3000", "最多 5千"
    re.compile(
        r"(?:under|below|less than|max(?:imum)?|up to|budget(?: is| of)?|around|about|"
        r"预算(?:是|为|在)?|不超过|不到|最多)\s*[:：]?\s*[¥$￥]?\s*" + _NUMBER,
        re.IGNORECASE,
    ),
    # "¥3000", "$500"
    re.compile(r"[¥$￥]\s*" + _NUMBER),
    # "3000元", "2000块", "5000 rmb", "3000 yuan", "3000以内"
    re.compile(_NUMBER + r"\s*(?:元|块|rmb|cny|yuan|以内|以下|左右)", re.IGNORECASE),
)
_MULTIPLIERS = {"k": 1_000, "千": 1_000, "w": 10_000, "万": 10_000}
_THOUSANDS = re.compile(r"[,，]")


def parse_budget(text: str) -> Decimal | None:
    """The budget a customer states ("under 5000", "预算2000", "8k", "¥3,000"), or None.

    Only numbers next to a budget word or a currency count, so model numbers ("RTX 4070")
    are never read as a budget.
    """
    for pattern in _BUDGET_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        raw, unit = match.group(1), match.group(2)
        try:
            value = Decimal(_THOUSANDS.sub("", raw))
        except InvalidOperation:
            continue
        if unit:
            value *= _MULTIPLIERS[unit.lower()]
        if value > 0:
            return value
    return None


@router.message(Command("buy"))
async def on_buy(message: Message, flow: Flow) -> None:
    await start_inquiry(flow)


async def start_inquiry(
    flow: Flow,
    text: str = "",
    *,
    category: str | None = None,
    model: str | None = None,
) -> None:
    """Suggest products for what the customer wants; ask for the category when unknown."""
    budget = parse_budget(text) if text else None
    if category is None and model is None:
        await flow.state.set_state(SalesStates.category)
        await flow.state.update_data({DRAFT: {"text": text, "budget": str(budget or "")}})
        await flow.say(flow.t("sales.ask_category"), categories_keyboard(flow.t, CATEGORY_KEYS))
        return
    await suggest(flow, text=text, category=category, model=model, budget=budget)


@router.callback_query(CategoryCb.filter())
async def on_category(query: CallbackQuery, callback_data: CategoryCb, flow: Flow) -> None:
    category = canonical_category(callback_data.category)
    if category is None:
        return
    draft = (await flow.state.get_data()).get(DRAFT) or {}
    budget = Decimal(draft["budget"]) if draft.get("budget") else None
    await suggest(flow, text=str(draft.get("text") or ""), category=category, budget=budget)


@router.message(StateFilter(SalesStates.category), PLAIN_TEXT)
async def on_description(message: Message, flow: Flow) -> None:
    """The customer describes what they want instead of pressing a category."""
    from bot.routers.free_text import parse_or_escape

    text = message.text or ""
    parse = await parse_or_escape(flow, text, stay=frozenset({"purchase_inquiry"}))
    if parse is None:
        return
    category = parse.first("product_category")
    model = parse.first("product_model")
    draft = (await flow.state.get_data()).get(DRAFT) or {}
    combined = f"{draft.get('text') or ''} {text}".strip()
    if category is None and model is None:
        await flow.say(
            flow.t("sales.ask_category_again"), categories_keyboard(flow.t, CATEGORY_KEYS)
        )
        await flow.state.update_data({DRAFT: {**draft, "text": combined}})
        return
    budget = parse_budget(text) or (Decimal(draft["budget"]) if draft.get("budget") else None)
    await suggest(flow, text=combined, category=category, model=model, budget=budget)


async def suggest(
    flow: Flow,
    *,
    text: str,
    category: str | None,
    model: str | None = None,
    budget: Decimal | None = None,
) -> None:
    """Catalog suggestions within the budget, a lead for sales, and "talk to sales"."""
    await flow.state.set_state(None)
    await flow.state.update_data({DRAFT: None})
    products = await _candidates(flow, category, model)
    if category is None and products:
        category = products[0].category
    within = [p for p in products if budget is None or p.price <= budget]
    picks = _pick(within, budget)
    interest = [category] if category else []
    interest += [p.sku for p in picks if not category]
    lead = await _record_lead(flow, interest, budget, text)
    what = category_name(flow.t, category) if category else (model or "")
    if picks:
        lines = [
            flow.t(
                "sales.suggestions_budget" if budget else "sales.suggestions",
                what=what,
                budget=fmt_money(flow.t, budget, flow.crm.settings.currency) if budget else "",
            )
        ]
        lines += [
            flow.t(
                "sales.product_line",
                name=p.name(flow.lang),
                price=fmt_money(flow.t, p.price, p.currency),
                months=p.warranty_months,
            )
            for p in picks
        ]
    elif products and budget is not None:
        cheapest = min(products, key=lambda p: p.price)
        lines = [
            flow.t(
                "sales.nothing_in_budget",
                what=what,
                budget=fmt_money(flow.t, budget, flow.crm.settings.currency),
                name=cheapest.name(flow.lang),
                price=fmt_money(flow.t, cheapest.price, cheapest.currency),
            )
        ]
    else:
        lines = [flow.t("sales.nothing_found", what=what)]
    lines.append(flow.t("sales.lead_recorded", lead=lead.id))
    detail_buttons = [
        [
            button(
                flow.t("product.accessory_button", name=p.name(flow.lang)),
                ProductCb(action="info", sku=p.sku).pack(),
            )
        ]
        for p in picks
    ]
    await flow.say("\n".join(lines), stack(*detail_buttons, [human_button(flow, SALES)]))


async def _record_lead(
    flow: Flow, interest: list[str], budget: Decimal | None, text: str
) -> LeadDTO:
    """A lead for sales; the same inquiry repeated within a day reuses the open one."""
    since = flow.deps.clock.now() - REPEAT_WINDOW
    for lead in await flow.crm.leads.list_leads(customer_id=flow.customer.id, stage="new"):
        if (
            lead.source == "bot"
            and lead.products_of_interest == interest
            and lead.budget == budget
            and _aware(lead.created_at) >= since
        ):
            return lead
    return await flow.crm.leads.create_lead(
        LeadCreate(
            customer_id=flow.customer.id,
            products_of_interest=interest,
            budget=budget,
            source="bot",
            notes=(text.strip() or "Purchase inquiry in Telegram")[:NOTES_MAX],
        ),
        actor=f"customer:{flow.customer.id}",
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _candidates(flow: Flow, category: str | None, model: str | None) -> list[ProductDTO]:
    if model:
        found = await flow.crm.catalog.search(model, category=category, limit=SEARCH_LIMIT)
        if found:
            return found
    if category is None:
        return []
    return await flow.crm.catalog.search(category=category, limit=SEARCH_LIMIT)


def _pick(products: list[ProductDTO], budget: Decimal | None) -> list[ProductDTO]:
    """With a budget: the best (dearest) products within it. Without: a spread of prices."""
    ordered = sorted(products, key=lambda p: (p.price, p.sku))
    if budget is not None:
        return list(reversed(ordered[-MAX_SUGGESTIONS:]))
    if len(ordered) <= MAX_SUGGESTIONS:
        return ordered
    step = (len(ordered) - 1) / (MAX_SUGGESTIONS - 1)
    return [ordered[round(i * step)] for i in range(MAX_SUGGESTIONS)]

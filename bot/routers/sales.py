"""Purchase inquiry: suggestions from the catalog (category and budget from what the customer
wrote), a lead recorded in the CRM (source `bot`), and an optional handoff to sales."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from aiogram import F
from aiogram.filters import Command, StateFilter
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.callbacks import AccessoryCb, CategoryCb, ProductCb
from bot.flows.context import PLAIN_TEXT, Flow, customer_router
from bot.flows.human import SALES, hand_to_human, human_button
from bot.flows.render import category_name, fmt_money
from bot.flows.states import SalesStates
from bot.keyboards import button, categories_keyboard, rows, stack
from crm_core.catalog.categories import CATEGORY_KEYS, canonical_category
from crm_core.catalog.schemas import AccessorySuggestion, ProductDTO
from crm_core.errors import NotFound, ValidationFailed
from crm_core.leads.schemas import LeadCreate, LeadDTO
from nlu.entities import ROLE_ACCESSORY, ROLE_DEVICE
from nlu.schemas import ParseResult

router = customer_router("sales")

MAX_SUGGESTIONS = 5
SEARCH_LIMIT = 500
NOTES_MAX = 500
REPEAT_WINDOW = timedelta(days=1)
DRAFT = "sales"
ACC_DRAFT = "sales_accessory"

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
    request = accessory_request(parse)
    if request is not None:
        await flow.state.update_data({DRAFT: None})
        await accessory_inquiry(flow, text, request)
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


# -- accessory purchases: "a PSU for my graphics card", "a cooler for my 7800X3D" --------------

ACCESSORY_ROUTED_INTENTS = frozenset({"purchase_inquiry", "out_of_scope"})
MAX_DEVICE_CHOICES = 5


@dataclass(frozen=True)
class AccessoryRequest:
    """What the NLU roles say: the accessory category and the device (category and/or model)."""

    accessory: str
    device_category: str | None
    device_model: str | None


def accessory_request(parse: ParseResult) -> AccessoryRequest | None:
    """The accessory request in the message ("X for my Y", entity roles), or None."""
    accessory = parse.with_role("product_category", ROLE_ACCESSORY)
    category = parse.with_role("product_category", ROLE_DEVICE)
    model = parse.with_role("product_model", ROLE_DEVICE)
    if accessory is None or (category is None and model is None) or accessory == category:
        return None
    return AccessoryRequest(accessory, category, model)


def routes_to_accessories(parse: ParseResult, confident: bool) -> AccessoryRequest | None:
    """The accessory request this message should be answered with, or None.

    A purchase inquiry, an unsure or out-of-scope parse ("RAM for my B650 board" is short),
    or a product question about the customer's own device without a model ("which PSU for my
    graphics card": the product flow needs a model) with "X for my Y" roles is an accessory
    purchase. A product question naming the model stays a product question (knowledge-base
    answer + compatible accessories); a fault stays a fault.
    """
    request = accessory_request(parse)
    if request is None:
        return None
    if not confident or parse.intent in ACCESSORY_ROUTED_INTENTS:
        return request
    if parse.intent == "product_question" and request.device_model is None:
        return request
    return None


async def accessory_inquiry(flow: Flow, text: str, request: AccessoryRequest) -> None:
    """Compatible accessories for the named or owned device, within the budget stated."""
    await flow.state.set_state(None)
    budget = parse_budget(text)
    if request.device_category and not await _related(
        flow, request.device_category, request.accessory
    ):
        # "a keyboard for my laptop": nothing to check, so the plain suggestions of that category.
        await suggest(flow, text=text, category=request.accessory, budget=budget)
        return
    owned = await _owned_products(flow)
    if request.device_model:
        await _for_named_model(flow, request, budget, owned, text)
        return
    category = request.device_category
    mine = [p for p in owned if p.category == category]
    if len(mine) == 1:
        await show_accessories(flow, mine[0], request.accessory, budget, owned=owned)
    elif mine:
        await flow.say(
            flow.t("sales.acc_choose_device", device=category_name(flow.t, category)),
            _device_choices(flow, mine, request.accessory, budget),
        )
    else:
        await _ask_device_model(flow, request, budget, text)


async def _for_named_model(
    flow: Flow,
    request: AccessoryRequest,
    budget: Decimal | None,
    owned: list[ProductDTO],
    text: str,
) -> None:
    model = request.device_model or ""
    found = await flow.crm.accessories.find_devices(model, request.device_category, limit=50)
    if not found:
        await flow.state.set_state(SalesStates.accessory_device)
        await flow.state.update_data({ACC_DRAFT: _draft(request, budget, text)})
        await flow.say(
            flow.t(
                "sales.acc_model_not_found",
                model=model,
                accessory=category_name(flow.t, request.accessory),
            ),
            rows([human_button(flow, SALES)]),
        )
        return
    owned_ids = {p.id for p in owned}
    # The customer's own unit of that model first ("my 4070" is the one they bought here).
    found.sort(key=lambda p: p.id not in owned_ids)
    device, others = found[0], found[1:MAX_DEVICE_CHOICES]
    await show_accessories(flow, device, request.accessory, budget, owned=owned, others=others)


async def _ask_device_model(
    flow: Flow, request: AccessoryRequest, budget: Decimal | None, text: str
) -> None:
    category = request.device_category or ""
    await flow.state.set_state(SalesStates.accessory_device)
    await flow.state.update_data({ACC_DRAFT: _draft(request, budget, text)})
    await flow.say(
        flow.t(
            "sales.acc_ask_device",
            device=category_name(flow.t, category),
            accessory=category_name(flow.t, request.accessory),
            example=await _example(flow, category),
        ),
        rows([human_button(flow, SALES)]),
    )


async def _example(flow: Flow, category: str) -> str:
    """A model of that category from the catalog, as the customer would type it."""
    try:
        found = await flow.crm.catalog.search(category=category, limit=1)
    except ValidationFailed:
        found = []
    return found[0].name(flow.lang) if found else "RTX 4070"


def _draft(request: AccessoryRequest, budget: Decimal | None, text: str) -> dict[str, str]:
    return {
        "accessory": request.accessory,
        "device_category": request.device_category or "",
        "budget": str(budget or ""),
        "text": text[:NOTES_MAX],
    }


@router.message(StateFilter(SalesStates.accessory_device), PLAIN_TEXT)
async def on_accessory_device(message: Message, flow: Flow) -> None:
    """The customer types the device's model ("RTX 4070") after being asked for it."""
    from bot.routers.free_text import parse_or_escape

    text = message.text or ""
    parse = await parse_or_escape(flow, text, stay=frozenset({"purchase_inquiry"}))
    if parse is None:
        return
    draft = (await flow.state.get_data()).get(ACC_DRAFT) or {}
    if not draft.get("accessory"):
        await flow.state.set_state(None)
        await start_inquiry(flow, text)
        return
    model = parse.with_role("product_model", ROLE_DEVICE) or parse.first("product_model")
    request = AccessoryRequest(
        accessory=str(draft["accessory"]),
        device_category=str(draft.get("device_category") or "") or None,
        device_model=model or text.strip()[:60],
    )
    budget = parse_budget(text) or (Decimal(draft["budget"]) if draft.get("budget") else None)
    budget_text = f"budget {budget}" if budget is not None else ""
    await flow.state.update_data({ACC_DRAFT: None})
    await _for_named_model(
        flow,
        request,
        budget,
        await _owned_products(flow),
        f"{draft.get('text') or ''} {text} {budget_text}".strip(),
    )


@router.callback_query(AccessoryCb.filter(F.action == "dev"))
async def on_device_choice(query: CallbackQuery, callback_data: AccessoryCb, flow: Flow) -> None:
    """A device picked from the buttons (one of the customer's, or another model)."""
    try:
        device = await flow.crm.accessories.device(callback_data.device)
    except NotFound:
        await flow.say(flow.t("product.not_found"))
        return
    budget = _budget_of(callback_data.budget)
    await show_accessories(
        flow, device, callback_data.category, budget, owned=await _owned_products(flow)
    )


@router.callback_query(AccessoryCb.filter(F.action == "sales"))
async def on_accessory_sales(query: CallbackQuery, callback_data: AccessoryCb, flow: Flow) -> None:
    """ "Ask sales": a lead for the accessory (with the device and budget), then a person."""
    try:
        device = await flow.crm.accessories.device(callback_data.device)
    except NotFound:
        await flow.say(flow.t("product.not_found"))
        return
    category = canonical_category(callback_data.category) or callback_data.category
    budget = _budget_of(callback_data.budget)
    note = f"Wants a {category} for {device.sku} ({device.name_en})"
    if budget is not None:
        note += f", budget {budget}"
    lead = await _record_lead(flow, [category, device.sku], budget, note + " (Telegram)")
    await flow.say(flow.t("sales.lead_recorded", lead=lead.id))
    await hand_to_human(flow, SALES, category=category)


def _budget_of(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw) if raw else None
    except InvalidOperation:
        return None
    return value if value is not None and value > 0 else None


async def show_accessories(
    flow: Flow,
    device: ProductDTO,
    accessory: str,
    budget: Decimal | None,
    *,
    owned: list[ProductDTO],
    others: list[ProductDTO] | None = None,
) -> None:
    """The reply: each compatible item with price and why it fits, details and ask-sales
    buttons; the nearest option and a person when nothing qualifies."""
    if not await _related(flow, device.category, accessory):
        await suggest(flow, text="", category=accessory, budget=budget)
        return
    acc_name = category_name(flow.t, accessory)
    device_name = device.name(flow.lang)
    # Other devices the customer owns must take the accessory too (a PSU for my GPU that
    # fits my SFX case); what they own already is not suggested again.
    also = [p for p in owned if p.category not in (device.category, accessory)]
    try:
        match = await flow.crm.accessories.match(
            device,
            accessory,
            budget=budget,
            exclude_product_ids={p.id for p in owned},
            also_fits=also,
            limit=MAX_SUGGESTIONS,
        )
    except ValidationFailed:
        await flow.say(
            flow.t("sales.acc_no_rule", accessory=acc_name, device=device_name),
            rows([human_button(flow, SALES)]),
        )
        return
    money = flow.crm.settings.currency
    budget_text = fmt_money(flow.t, budget, money) if budget is not None else ""
    lines: list[str] = []
    shown: list[ProductDTO] = []
    if match.suggestions:
        key = "sales.acc_header_budget" if budget is not None else "sales.acc_header"
        lines.append(flow.t(key, accessory=acc_name, device=device_name, budget=budget_text))
        lines += [_line(flow, s) for s in match.suggestions]
        shown = [s.product for s in match.suggestions]
    elif match.nearest is not None:
        lines.append(
            flow.t(
                "sales.acc_nearest",
                accessory=acc_name,
                device=device_name,
                budget=budget_text,
            )
        )
        lines.append(_line(flow, match.nearest))
        shown = [match.nearest.product]
    elif match.closest_misfit is not None:
        miss = match.closest_misfit
        lines.append(
            flow.t(
                "sales.acc_none_fit",
                accessory=acc_name,
                device=device_name,
                name=miss.product.name(flow.lang),
                price=fmt_money(flow.t, miss.product.price, miss.product.currency),
                problem=miss.problem(flow.lang),
            )
        )
    else:
        lines.append(flow.t("sales.acc_none", accessory=acc_name, device=device_name))
    if not match.suggestions:
        lines.append(flow.t("sales.acc_offer_person"))
    budget_data = str(budget) if budget is not None else ""
    button_rows: list[list[InlineKeyboardButton | None]] = [
        [
            button(
                flow.t("product.accessory_button", name=p.name(flow.lang)),
                ProductCb(action="info", sku=p.sku).pack(),
            )
        ]
        for p in shown
    ]
    if others:
        # Answer first for the likeliest model; the customer's own is one tap away.
        lines.append(flow.t("sales.acc_other_models"))
        button_rows += [[b] for b in _device_buttons(flow, others, accessory, budget)]
    button_rows.append(
        [
            button(
                flow.t("sales.acc_ask_sales_button"),
                AccessoryCb(
                    action="sales", device=device.id, category=accessory, budget=budget_data
                ).pack(),
            )
        ]
    )
    await flow.say("\n".join(lines), stack(*button_rows))


async def _related(flow: Flow, device_category: str, accessory: str) -> bool:
    """Whether an active compatibility rule relates the two categories."""
    return accessory in await flow.crm.accessories.accessory_categories(device_category)


def _line(flow: Flow, suggestion: AccessorySuggestion) -> str:
    product = suggestion.product
    return flow.t(
        "sales.acc_line",
        name=product.name(flow.lang),
        price=fmt_money(flow.t, product.price, product.currency),
        stock="" if product.in_stock else flow.t("sales.acc_sold_out"),
        why=suggestion.reason(flow.lang),
    )


def _device_choices(
    flow: Flow, devices: list[ProductDTO], accessory: str, budget: Decimal | None
) -> InlineKeyboardMarkup:
    return rows(_device_buttons(flow, devices, accessory, budget))


def _device_buttons(
    flow: Flow, devices: list[ProductDTO], accessory: str, budget: Decimal | None
) -> list[InlineKeyboardButton]:
    return [
        button(
            flow.t("sales.acc_device_button", name=p.name(flow.lang)),
            AccessoryCb(
                action="dev",
                device=p.id,
                category=accessory,
                budget=str(budget) if budget is not None else "",
            ).pack(),
        )
        for p in devices[:MAX_DEVICE_CHOICES]
    ]


async def _owned_products(flow: Flow) -> list[ProductDTO]:
    """The catalog products of the customer's own units (orders/serials); empty for
    prospects, who are never linked."""
    units = await flow.crm.warranties.warranty_for_customer(flow.customer.id)
    seen: dict[int, ProductDTO] = {}
    for unit in units:
        if unit.product_id not in seen:
            try:
                seen[unit.product_id] = await flow.crm.catalog.get_by_id(unit.product_id)
            except NotFound:
                continue
    return list(seen.values())

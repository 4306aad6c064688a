"""Product questions: a knowledge-base answer with its source, plus compatible accessories
from the catalog (a GPU → power supplies with enough wattage and the right connectors, cases
with enough clearance), with "details" and "ask sales" buttons.

When the knowledge base has no confident answer the bot says so and offers a person; product
facts shown come from the catalog only, never from a guess.
"""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command, StateFilter
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from bot.callbacks import ProductCb
from bot.flows.context import PLAIN_TEXT, Flow, customer_router
from bot.flows.human import LOW_CONFIDENCE, SALES, hand_to_human, human_button
from bot.flows.kb import answer_text, ask_kb, source_button
from bot.flows.render import category_name, fmt_money
from bot.flows.states import ProductStates
from bot.keyboards import button, rows, stack
from crm_core.catalog.schemas import CompatibleProduct, ProductDTO
from crm_core.errors import NotFound, ValidationFailed
from crm_core.leads.schemas import LeadCreate

router = customer_router("products")

MAX_ACCESSORY_CATEGORIES = 2
ACCESSORIES_PER_CATEGORY = 3
MAX_SPECS = 8
# Accessory categories worth suggesting first, per product category (others: any related).
PREFERRED_ACCESSORIES: dict[str, tuple[str, ...]] = {
    "gpu": ("psu", "case"),
    "cpu": ("motherboard", "cooler"),
    "motherboard": ("ram", "case"),
    "case": ("psu", "cooler"),
}


@router.message(Command("product"))
async def on_product(message: Message, flow: Flow) -> None:
    await ask_question(flow)


async def ask_question(flow: Flow) -> None:
    """Ask what the customer wants to know (the next message is the question)."""
    await flow.state.set_state(ProductStates.question)
    await flow.say(flow.t("product.ask"))


@router.message(StateFilter(ProductStates.question), PLAIN_TEXT)
async def on_question(message: Message, flow: Flow) -> None:
    from bot.routers.free_text import parse_or_escape

    text = message.text or ""
    parse = await parse_or_escape(flow, text, stay=frozenset({"product_question"}))
    if parse is None:
        return
    await answer_question(
        flow,
        text,
        category=parse.first("product_category"),
        model=parse.first("product_model"),
    )


async def find_product(flow: Flow, model: str | None, category: str | None) -> ProductDTO | None:
    """The catalog product the customer names ("RTX 4070"), if it is unambiguous enough."""
    if not model:
        return None
    try:
        found = await flow.crm.catalog.search(model, category=category, limit=5)
        if not found and category is not None:
            found = await flow.crm.catalog.search(model, limit=5)
    except ValidationFailed:
        return None
    return found[0] if found else None


async def answer_question(
    flow: Flow, text: str, *, category: str | None = None, model: str | None = None
) -> None:
    """KB answer (with source) + the named product's compatible accessories."""
    await flow.state.set_state(None)
    product = await find_product(flow, model, category)
    # The knowledge base is filtered by what is asked about ("which PSU for an RTX 4070": psu),
    # else by the product named.
    answer = await ask_kb(flow, text, category or (product.category if product else None))
    parts: list[str] = []
    buttons: list[InlineKeyboardButton | None] = []
    if answer is not None:
        parts.append(answer_text(flow, answer))
        buttons.append(source_button(flow, answer))
    elif product is None:
        await flow.say(flow.t("product.no_answer"), rows([human_button(flow, LOW_CONFIDENCE)]))
        return
    else:
        parts.append(flow.t("product.no_article"))
    accessory_buttons: list[InlineKeyboardButton] = []
    if product is not None:
        parts.append(_product_summary(flow, product))
        compat_text, accessory_buttons = await _accessories(flow, product, asked=category)
        if compat_text:
            parts.append(compat_text)
    markup = stack(
        buttons,
        *[[b] for b in accessory_buttons],
        [
            button(
                flow.t("product.details_button"), ProductCb(action="info", sku=product.sku).pack()
            )
            if product is not None
            else None,
            human_button(flow, SALES if product is not None else LOW_CONFIDENCE),
        ],
    )
    await flow.say("\n\n".join(parts), markup)


def _product_summary(flow: Flow, product: ProductDTO) -> str:
    return flow.t(
        "product.summary",
        name=product.name(flow.lang),
        category=category_name(flow.t, product.category),
        price=fmt_money(flow.t, product.price, product.currency),
        months=product.warranty_months,
    )


async def _accessories(
    flow: Flow, product: ProductDTO, *, asked: str | None = None
) -> tuple[str, list[InlineKeyboardButton]]:
    """Compatible products of the related categories (the one asked about first), with a
    details button each."""
    related = await flow.crm.compatibility.related_categories(product.category)
    preferred = [c for c in PREFERRED_ACCESSORIES.get(product.category, ()) if c in related]
    ordered = [asked] if asked in related else []
    ordered += [c for c in preferred or related if c not in ordered]
    targets = ordered[:MAX_ACCESSORY_CATEGORIES]
    sections: list[str] = []
    buttons: list[InlineKeyboardButton] = []
    for target in targets:
        try:
            fits: list[CompatibleProduct] = await flow.crm.compatibility.compatible(
                product.sku, target, limit=ACCESSORIES_PER_CATEGORY
            )
        except (NotFound, ValidationFailed):
            continue
        if not fits:
            continue
        lines = [flow.t("product.accessories_header", category=category_name(flow.t, target))]
        for fit in fits:
            lines.append(
                flow.t(
                    "product.accessory_line",
                    name=fit.product.name(flow.lang),
                    price=fmt_money(flow.t, fit.product.price, fit.product.currency),
                    why=fit.explanation(flow.lang),
                )
            )
            buttons.append(
                button(
                    flow.t("product.accessory_button", name=fit.product.name(flow.lang)),
                    ProductCb(action="info", sku=fit.product.sku).pack(),
                )
            )
        sections.append("\n".join(lines))
    if not sections:
        return "", []
    return flow.t("product.accessories_intro") + "\n" + "\n\n".join(sections), buttons


@router.callback_query(ProductCb.filter(F.action == "info"))
async def on_info(query: CallbackQuery, callback_data: ProductCb, flow: Flow) -> None:
    """Product details from the catalog (public data: no ownership involved)."""
    try:
        product = await flow.crm.catalog.get(callback_data.sku)
    except NotFound:
        await flow.say(flow.t("product.not_found"))
        return
    specs = [f"• {key}: {value}" for key, value in list(product.specs.items())[:MAX_SPECS]]
    text = _product_summary(flow, product)
    if specs:
        text += "\n" + flow.t("product.specs_header") + "\n" + "\n".join(specs)
    await flow.say(
        text,
        rows(
            [
                button(
                    flow.t("product.compat_button"),
                    ProductCb(action="compat", sku=product.sku).pack(),
                ),
                button(
                    flow.t("product.ask_sales_button"),
                    ProductCb(action="sales", sku=product.sku).pack(),
                ),
            ]
        ),
    )


@router.callback_query(ProductCb.filter(F.action == "compat"))
async def on_compat(query: CallbackQuery, callback_data: ProductCb, flow: Flow) -> None:
    try:
        product = await flow.crm.catalog.get(callback_data.sku)
    except NotFound:
        await flow.say(flow.t("product.not_found"))
        return
    text, buttons = await _accessories(flow, product)
    if not text:
        await flow.say(flow.t("product.no_accessories", name=product.name(flow.lang)))
        return
    await flow.say(text, rows(buttons))


@router.callback_query(ProductCb.filter(F.action == "sales"))
async def on_ask_sales(query: CallbackQuery, callback_data: ProductCb, flow: Flow) -> None:
    """Interest in a product: a lead for it, then a person from sales."""
    try:
        product = await flow.crm.catalog.get(callback_data.sku)
    except NotFound:
        await flow.say(flow.t("product.not_found"))
        return
    await flow.crm.leads.create_lead(
        LeadCreate(
            customer_id=flow.customer.id,
            products_of_interest=[product.sku],
            source="bot",
            notes=f"Asked sales about {product.sku} in Telegram.",
        ),
        actor=f"customer:{flow.customer.id}",
    )
    await hand_to_human(flow, SALES, category=product.category)

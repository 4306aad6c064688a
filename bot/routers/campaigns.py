"""Buttons on campaign and automation pushes, and the one-word unsubscribe.

* `cmp:u:<delivery id>` — the one-tap unsubscribe every promotion carries: marketing consent
  withdrawn (service messages keep coming), recorded for the campaign report.
* `cmp:a:<delivery id>:<action>` — a bot action: `compatible:<category>` (what fits my device),
  `ext:<serial>:<months>` (extended-warranty offer → the warranty flow, which records a lead),
  `rate:<score>:<ticket>` (survey → the feedback flow), `contact` (a person). The click is
  recorded, then the existing flow runs; every id in the callback is re-checked by it.
* A message that is exactly "STOP" / "退订" (or unsubscribe / 取消订阅) withdraws consent at
  once, before any NLU.

The delivery id comes from the customer's client and can be forged: a click or unsubscribe is
recorded only when the delivery was sent to this customer.
"""

from __future__ import annotations

from aiogram import F
from aiogram.types import CallbackQuery, Message

from bot.callbacks import ExtendCb, ProductCb, RateCb
from bot.flows.context import Flow, customer_router
from bot.flows.human import REQUEST_HUMAN, hand_to_human
from bot.flows.render import category_name, fmt_money
from bot.keyboards import button, rows
from bot.routers import feedback, privacy, warranty
from crm_core.catalog.categories import CATEGORY_KEYS
from crm_core.errors import NotFound

router = customer_router("campaigns")

UNSUBSCRIBE_SOURCE = "telegram:campaign_button"
STOP_WORDS_SOURCE = "telegram:stop_word"
STOP_WORDS = frozenset({"stop", "unsubscribe", "退订", "取消订阅"})
COMPATIBLE_LIMIT = 5


def is_stop_word(text: str | None) -> bool:
    """ "STOP" / "退订" alone (any case and spacing); photos and stickers have no text."""
    return text is not None and " ".join(text.split()).casefold() in STOP_WORDS


@router.message(F.text.func(is_stop_word))
async def on_stop_word(message: Message, flow: Flow) -> None:
    await privacy.stop_marketing(flow, STOP_WORDS_SOURCE)


@router.callback_query(F.data.startswith("cmp:u:"))
async def on_unsubscribe(query: CallbackQuery, flow: Flow) -> None:
    delivery_id = _delivery_id(query.data or "")
    if delivery_id is not None and await _is_theirs(flow, delivery_id):
        await flow.crm.campaigns.record_unsubscribe(delivery_id)
    await privacy.stop_marketing(flow, UNSUBSCRIBE_SOURCE)


@router.callback_query(F.data.startswith("cmp:a:"))
async def on_action(query: CallbackQuery, flow: Flow) -> None:
    parts = (query.data or "").split(":", 3)
    if len(parts) != 4 or not parts[2].isdigit():
        return
    delivery_id, action = int(parts[2]), parts[3]
    if await _is_theirs(flow, delivery_id):
        await flow.crm.campaigns.record_click(delivery_id, action)
    name, _, arg = action.partition(":")
    if name == "compatible" and arg in CATEGORY_KEYS:
        await _compatible(flow, arg)
    elif name == "ext":
        serial, _, months = arg.partition(":")
        if months.isdigit():
            await warranty.on_extend(query, ExtendCb(serial=serial, months=int(months)), flow)
    elif name == "rate":
        score, _, ticket = arg.partition(":")
        if score.isdigit():
            await feedback.on_rate(query, RateCb(score=int(score), ticket=ticket), flow)
    elif name == "contact":
        await hand_to_human(flow, REQUEST_HUMAN, intent="request_human")
    else:
        await flow.say(flow.t("campaigns.push_expired"))


async def _compatible(flow: Flow, category: str) -> None:
    """What fits the customer's own device (their newest one a rule relates to `category`)."""
    related = await flow.crm.compatibility.related_categories(category)
    offer = await flow.crm.rules.accessory_offer(
        flow.customer.id,
        source_categories=related,
        items=COMPATIBLE_LIMIT,
        only_category=category,
        skip_owned_categories=False,
    )
    if offer is None:
        await flow.say(flow.t("campaigns.compatible_none", device=category_name(flow.t, category)))
        return
    device, _, suggestions = offer
    lines = [flow.t("campaigns.compatible_header", device=device.name(flow.lang))]
    buttons = []
    for s in suggestions:
        reasons = s.reasons_zh if flow.lang == "zh" else s.reasons_en
        lines.append(
            flow.t(
                "product.accessory_line",
                name=s.product.name(flow.lang),
                price=fmt_money(flow.t, s.product.price, s.product.currency),
                why=("；" if flow.lang == "zh" else "; ").join(reasons),
            )
        )
        buttons.append(
            button(
                flow.t("product.accessory_button", name=s.product.name(flow.lang)),
                ProductCb(action="info", sku=s.product.sku).pack(),
            )
        )
    await flow.say("\n".join(lines), rows(buttons))


async def _is_theirs(flow: Flow, delivery_id: int) -> bool:
    try:
        delivery = await flow.crm.deliveries.get(delivery_id)
    except NotFound:
        return False
    return delivery.customer_id == flow.customer.id


def _delivery_id(data: str) -> int | None:
    tail = data.split(":", 2)[-1]
    return int(tail) if tail.isdigit() else None

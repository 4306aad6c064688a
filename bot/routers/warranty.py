"""Warranty check: the customer's devices with status and end dates; an extended-warranty
offer for units expiring soon.

Taking up the offer records a sales lead (source `bot`, the unit's SKU, the serial and the
months in the notes), not a warranty extension: the price depends on the unit and is quoted by
sales, and the extension is only written (`WarrantyService.add_extension`) once it is bought.
Pressing the same offer twice does not create a second open lead.
"""

from __future__ import annotations

from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.callbacks import ExtendCb
from bot.flows.context import Flow, customer_router
from bot.flows.human import SALES, human_button
from bot.flows.render import device_label, fmt_date, warranty_line
from bot.flows.replies import needs_purchases
from bot.keyboards import button, rows
from crm_core.errors import NotFound
from crm_core.leads.schemas import LeadCreate
from crm_core.warranties.schemas import WarrantyState, WarrantyStatus
from crm_core.warranties.service import EXTENSION_MONTHS

router = customer_router("warranty")

MAX_LINES = 15


@router.message(Command("warranty"))
async def on_warranty(message: Message, flow: Flow) -> None:
    await show_warranty(flow)


async def show_warranty(
    flow: Flow, *, serial: str | None = None, order_number: str | None = None
) -> None:
    """One unit (serial), one order, or every device of the customer."""
    await flow.state.set_state(None)
    try:
        if serial is not None:
            units = [
                await flow.crm.warranties.warranty_by_serial(serial, customer_id=flow.customer.id)
            ]
        elif order_number is not None:
            units = await flow.crm.warranties.warranty_for_order(order_number, flow.customer.id)
        else:
            units = await flow.crm.warranties.warranty_for_customer(flow.customer.id)
    except NotFound:
        key = "warranty.serial_not_found" if serial is not None else "warranty.order_not_found"
        await flow.say(flow.t(key, number=serial or order_number or ""))
        return
    if not units:
        await needs_purchases(flow, "warranty.none")
        return
    lines = [warranty_line(flow.t, flow.lang, u) for u in units[:MAX_LINES]]
    if len(units) > MAX_LINES:
        lines.append(flow.t("warranty.more", count=len(units) - MAX_LINES))
    await flow.say(flow.t("warranty.header") + "\n" + "\n".join(lines))
    for unit in units:
        if _offer_extension(unit):
            await _extension_offer(flow, unit)


def _offer_extension(unit: WarrantyStatus) -> bool:
    return (
        unit.status == WarrantyState.EXPIRING
        and unit.extension_available
        and unit.serial_number is not None
    )


async def _extension_offer(flow: Flow, unit: WarrantyStatus) -> None:
    assert unit.serial_number is not None
    device = device_label(flow.lang, unit.product_name_en, unit.product_name_zh, unit.serial_number)
    buttons = [
        button(
            flow.t("warranty.extend_button", months=months),
            ExtendCb(serial=unit.serial_number, months=months).pack(),
        )
        for months in EXTENSION_MONTHS
    ]
    await flow.say(
        flow.t(
            "warranty.extension_offer",
            device=device,
            end=fmt_date(flow.t, unit.ends_on),
            days=unit.days_left,
        ),
        rows(buttons, per_row=2),
    )


@router.callback_query(ExtendCb.filter())
async def on_extend(query: CallbackQuery, callback_data: ExtendCb, flow: Flow) -> None:
    """Interest in an extension: re-checked (own unit, still extendable), recorded as a lead."""
    if callback_data.months not in EXTENSION_MONTHS:
        return
    try:
        unit = await flow.crm.warranties.warranty_by_serial(
            callback_data.serial, customer_id=flow.customer.id
        )
    except NotFound:
        await flow.say(flow.t("warranty.serial_not_found", number=callback_data.serial))
        return
    if not unit.extension_available or unit.serial_number is None:
        await flow.say(
            flow.t("warranty.not_extendable", end=fmt_date(flow.t, unit.standard_ends_on))
        )
        return
    marker = f"Extended warranty +{callback_data.months} months for {unit.serial_number}"
    open_leads = await flow.crm.leads.list_leads(customer_id=flow.customer.id)
    if any(not lead.is_closed and (lead.notes or "").startswith(marker) for lead in open_leads):
        await flow.say(flow.t("warranty.extension_already_requested"))
        return
    lead = await flow.crm.leads.create_lead(
        LeadCreate(
            customer_id=flow.customer.id,
            products_of_interest=[unit.sku],
            source="bot",
            notes=(
                f"{marker} ({unit.sku}, order {unit.order_number}); warranty ends "
                f"{unit.ends_on.isoformat()}. Requested in Telegram: quote the price."
            ),
        ),
        actor=f"customer:{flow.customer.id}",
    )
    await flow.say(
        flow.t("warranty.extension_requested", months=callback_data.months, lead=lead.id),
        rows([human_button(flow, SALES)]),
    )

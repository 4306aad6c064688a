"""Order status, returns and refunds, from the customer's own orders.

Every button carries an order number (and an order-line id); each press asks the orders
service again *with the customer's id*, so a forged number of someone else's order gets the
same "not found on your account" as a number that does not exist. The return-window policy
is the service's (`return_eligibility`); the bot renders its `code` from the locale files.
"""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message

from bot.callbacks import MenuCb, OrderCb
from bot.flows.context import Flow, customer_router
from bot.flows.policy import REFUND_BUSINESS_DAYS
from bot.flows.render import fmt_date, fmt_money
from bot.flows.replies import needs_purchases
from bot.keyboards import button, rows
from bot.routers.policy import policy_facts
from crm_core.errors import NotFound, ValidationFailed
from crm_core.orders.schemas import OrderDTO, OrderItemDTO, ReturnCode, ReturnEligibility

router = customer_router("orders")

MAX_ORDERS = 10
RETURNABLE_STATUSES = ("delivered", "shipped")
CANCELLABLE_STATUSES = ("pending", "paid")


@router.message(Command("orders"))
async def on_orders(message: Message, flow: Flow) -> None:
    await show_orders(flow)


async def show_orders(flow: Flow, *, for_return: bool = False) -> None:
    """The customer's orders as buttons (newest first)."""
    await flow.state.set_state(None)
    orders = await flow.crm.orders.list_orders(flow.customer.id, limit=MAX_ORDERS)
    if not orders:
        await needs_purchases(flow, "orders.none")
        return
    action = "ret" if for_return else "show"
    buttons = [
        button(
            flow.t(
                "orders.list_item",
                number=o.order_number,
                date=fmt_date(flow.t, o.placed_at),
                status=flow.t(f"orders.status.{o.status}"),
            ),
            OrderCb(action=action, number=o.order_number).pack(),
        )
        for o in orders
    ]
    text = flow.t("orders.pick")
    if for_return:  # the terms first (the CRM's numbers), then which order
        text = policy_facts(flow, "returns-refunds") + "\n\n" + flow.t("orders.pick_for_return")
    await flow.say(text, rows(buttons))


@router.callback_query(OrderCb.filter(F.action.in_({"list", "rlist"})))
async def on_list(query: CallbackQuery, callback_data: OrderCb, flow: Flow) -> None:
    await show_orders(flow, for_return=callback_data.action == "rlist")


# -- one order ---------------------------------------------------------------------------------


async def _order(flow: Flow, number: str) -> OrderDTO | None:
    """The customer's own order, or None after telling them it is not on their account."""
    try:
        return await flow.crm.orders.order_status(number, flow.customer.id)
    except NotFound:
        await flow.say(flow.t("orders.not_found", number=number))
        return None


@router.callback_query(OrderCb.filter(F.action == "show"))
async def on_show(query: CallbackQuery, callback_data: OrderCb, flow: Flow) -> None:
    await show_order(flow, callback_data.number)


async def show_order(flow: Flow, number: str) -> None:
    """Status, dates, items with serials, total, and the returns/refunds of the order."""
    await flow.state.set_state(None)
    order = await _order(flow, number)
    if order is None:
        return
    t = flow.t
    lines = [
        t(
            "orders.detail",
            number=order.order_number,
            status=t(f"orders.status.{order.status}"),
            placed=fmt_date(t, order.placed_at),
            delivered=fmt_date(t, order.delivered_at),
            total=fmt_money(t, order.total, order.currency),
        )
    ]
    for item in order.items:
        lines.append(_item_line(flow, item, order.currency))
    returns = await flow.crm.orders.returns_for_order(order.order_number, flow.customer.id)
    if returns:
        lines.append(t("orders.returns_header"))
        names = {item.id: _item_name(flow, item) for item in order.items}
        for ret in returns:
            refund = (
                t("orders.refunded_amount", amount=fmt_money(t, ret.refund_amount, order.currency))
                if ret.refund_amount is not None
                else ""
            )
            lines.append(
                t(
                    "orders.return_line",
                    id=ret.id,
                    quantity=ret.quantity,
                    name=names.get(ret.order_item_id or 0, order.order_number),
                    status=t(f"orders.return_status.{ret.status}"),
                    requested=fmt_date(t, ret.requested_at),
                    refund=refund,
                )
            )
    buttons: list[InlineKeyboardButton] = []
    if order.status in RETURNABLE_STATUSES:
        buttons.append(
            button(
                t("orders.return_button"), OrderCb(action="ret", number=order.order_number).pack()
            )
        )
    if order.status in CANCELLABLE_STATUSES:
        buttons.append(
            button(
                t("orders.cancel_button"),
                OrderCb(action="cancel", number=order.order_number).pack(),
            )
        )
    buttons.append(button(t("orders.back_button"), OrderCb(action="list").pack()))
    await flow.say("\n".join(lines), rows(buttons))


def _item_name(flow: Flow, item: OrderItemDTO) -> str:
    return item.name_zh if flow.lang == "zh" else item.name_en


def _item_line(flow: Flow, item: OrderItemDTO, currency: str) -> str:
    serials = ", ".join(item.serial_numbers)
    return flow.t(
        "orders.item_line",
        quantity=item.quantity,
        name=_item_name(flow, item),
        price=fmt_money(flow.t, item.unit_price, currency),
        serials=flow.t("orders.serials", serials=serials) if serials else "",
    )


# -- returns -----------------------------------------------------------------------------------


@router.callback_query(OrderCb.filter(F.action == "ret"))
async def on_return(query: CallbackQuery, callback_data: OrderCb, flow: Flow) -> None:
    await start_return(flow, callback_data.number)


async def start_return(flow: Flow, number: str) -> None:
    """Whole-order checks first (not shipped, on its way, cancelled ...), then pick a line."""
    await flow.state.set_state(None)
    order = await _order(flow, number)
    if order is None:
        return
    whole = await flow.crm.orders.return_eligibility(order.order_number, flow.customer.id)
    if not whole.eligible and whole.code not in (
        ReturnCode.WINDOW_EXPIRED,
        ReturnCode.DOA_WINDOW_EXPIRED,
    ):
        await _explain(flow, order, whole, None)
        return
    open_items = [i for i in order.items if i.quantity > i.returned_quantity]
    if len(open_items) == 1:
        await _item_return(flow, order, open_items[0])
        return
    if not open_items:
        await _explain(flow, order, whole, None)
        return
    buttons = [
        button(
            _item_name(flow, item),
            OrderCb(action="item", number=order.order_number, item=item.id).pack(),
        )
        for item in open_items
    ]
    await flow.say(flow.t("orders.pick_item", number=order.order_number), rows(buttons))


@router.callback_query(OrderCb.filter(F.action == "item"))
async def on_return_item(query: CallbackQuery, callback_data: OrderCb, flow: Flow) -> None:
    order = await _order(flow, callback_data.number)
    if order is None:
        return
    item = next((i for i in order.items if i.id == callback_data.item), None)
    if item is None:
        await flow.say(flow.t("orders.item_not_found"))
        return
    await _item_return(flow, order, item)


async def _item_return(flow: Flow, order: OrderDTO, item: OrderItemDTO) -> None:
    """The policy for one line: no-reason return and dead-on-arrival windows."""
    no_reason = await flow.crm.orders.return_eligibility(
        order.order_number, flow.customer.id, order_item_id=item.id
    )
    faulty = await flow.crm.orders.return_eligibility(
        order.order_number, flow.customer.id, order_item_id=item.id, faulty=True
    )
    await _explain(flow, order, no_reason, item, faulty)


async def _explain(
    flow: Flow,
    order: OrderDTO,
    no_reason: ReturnEligibility,
    item: OrderItemDTO | None,
    faulty: ReturnEligibility | None = None,
) -> None:
    """The eligibility reasons in the customer's language, with the buttons that apply."""
    lines = []
    if item is not None:
        lines.append(flow.t("orders.return_item", name=_item_name(flow, item)))
    lines.append(eligibility_text(flow, no_reason))
    if faulty is not None and faulty.code != no_reason.code:
        lines.append(eligibility_text(flow, faulty))
    number = order.order_number
    item_id = item.id if item is not None else 0
    buttons: list[InlineKeyboardButton] = []
    if no_reason.eligible:
        buttons.append(
            button(
                flow.t("orders.return_confirm_button"),
                OrderCb(action="retok", number=number, item=item_id).pack(),
            )
        )
    if faulty is not None and faulty.eligible:
        buttons.append(
            button(
                flow.t("orders.doa_button"),
                OrderCb(action="retdoa", number=number, item=item_id).pack(),
            )
        )
    if no_reason.can_cancel:
        buttons.append(
            button(flow.t("orders.cancel_button"), OrderCb(action="cancel", number=number).pack())
        )
    if no_reason.code in (ReturnCode.WINDOW_EXPIRED, ReturnCode.DOA_WINDOW_EXPIRED) and (
        faulty is None or not faulty.eligible
    ):
        buttons.append(button(flow.t("menu.fault"), MenuCb(action="fault").pack()))
    await flow.say("\n\n".join(lines), rows(buttons))


def eligibility_text(flow: Flow, result: ReturnEligibility) -> str:
    """`ReturnEligibility.code` rendered from the locale files with the policy's numbers."""
    settings = flow.crm.settings
    days = (
        settings.doa_window_days
        if result.code in (ReturnCode.DOA_REPLACEMENT, ReturnCode.DOA_WINDOW_EXPIRED)
        else settings.return_window_days
    )
    return flow.t(
        f"orders.eligibility.{result.code.value}",
        number=result.order_number,
        delivered=fmt_date(flow.t, result.delivered_on),
        until=fmt_date(flow.t, result.window_ends_on),
        days=days,
        refund_days=REFUND_BUSINESS_DAYS,
    )


@router.callback_query(OrderCb.filter(F.action.in_({"retok", "retdoa"})))
async def on_return_confirmed(query: CallbackQuery, callback_data: OrderCb, flow: Flow) -> None:
    """Open the return (the service re-checks owner, window and quantity)."""
    faulty = callback_data.action == "retdoa"
    try:
        ret = await flow.crm.orders.request_return(
            callback_data.number,
            flow.customer.id,
            order_item_id=callback_data.item or None,
            reason="Requested in Telegram",
            faulty=faulty,
        )
    except NotFound:
        await flow.say(flow.t("orders.not_found", number=callback_data.number))
        return
    except ValidationFailed:
        await flow.say(flow.t("orders.return_not_possible"))
        await start_return(flow, callback_data.number)
        return
    key = "orders.doa_requested" if faulty else "orders.return_requested"
    await flow.say(
        flow.t(
            key,
            id=ret.id,
            number=ret.order_number,
            quantity=ret.quantity,
            refund_days=REFUND_BUSINESS_DAYS,
        )
    )


# -- cancellation ------------------------------------------------------------------------------


@router.callback_query(OrderCb.filter(F.action == "cancel"))
async def on_cancel(query: CallbackQuery, callback_data: OrderCb, flow: Flow) -> None:
    order = await _order(flow, callback_data.number)
    if order is None:
        return
    await flow.say(
        flow.t("orders.cancel_confirm", number=order.order_number),
        rows(
            [
                button(
                    flow.t("orders.cancel_yes_button"),
                    OrderCb(action="cancelok", number=order.order_number).pack(),
                ),
                button(
                    flow.t("orders.cancel_no_button"),
                    OrderCb(action="show", number=order.order_number).pack(),
                ),
            ]
        ),
    )


@router.callback_query(OrderCb.filter(F.action == "cancelok"))
async def on_cancel_confirmed(query: CallbackQuery, callback_data: OrderCb, flow: Flow) -> None:
    try:
        order = await flow.crm.orders.cancel_order(callback_data.number, flow.customer.id)
    except NotFound:
        await flow.say(flow.t("orders.not_found", number=callback_data.number))
        return
    except ValidationFailed:
        await flow.say(flow.t("orders.cannot_cancel", number=callback_data.number))
        return
    await flow.say(flow.t("orders.cancelled", number=order.order_number))

"""Free text (the last router): through the NLU, routed by intent, entities filling the slots.

"my order SO-12345678 where is it" goes straight to that order's status; "my GPU fans stopped"
to a fault report about the customer's GPU with that symptom; and so on. Below the NLU
confidence threshold, or out of scope, the bot tries the knowledge base once and otherwise
says honestly that it is not sure and offers a person — it never guesses.

The intent and confidence are recorded with the bot's replies in the CRM interaction log
(`annotate_outbound` of the runtime's interaction logging).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram import F
from aiogram.types import Message

from bot.flows.context import Flow, customer_router
from bot.flows.human import REQUEST_HUMAN, hand_to_human
from bot.flows.kb import answer_text, ask_kb, source_button
from bot.flows.replies import not_sure, send_menu
from bot.flows.states import FaultStates
from bot.keyboards import rows
from bot.routers import faults, feedback, orders, policy, privacy, products, sales, warranty
from nlu.schemas import ParseResult

router = customer_router("free_text")

Route = Callable[[Flow, str, ParseResult], Awaitable[None]]


@router.message(F.text & F.text.startswith("/"))
async def on_unknown_command(message: Message, flow: Flow) -> None:
    await send_menu(flow, "nlu.unknown_command")


@router.message(F.text)
async def on_text(message: Message, flow: Flow) -> None:
    """Parse, then route by intent with the entities as slots (a confident yes/no while a
    fault solution waits for its answer counts as "solved" / "not solved")."""
    text = message.text or ""
    parse = await flow.deps.nlu.parse(text)
    intent = parse.intent
    confident = parse.confidence >= flow.deps.settings.nlu.confidence_threshold
    current = await flow.state.get_state()
    if current == FaultStates.outcome.state and intent in ("affirm", "deny") and confident:
        intent = "fault_solved" if intent == "affirm" else "fault_unsolved"
    flow.intent, flow.confidence = parse.intent, parse.confidence
    accessory = sales.routes_to_accessories(parse, confident)
    if accessory is not None:  # "a PSU for my graphics card": the accessory, not the device
        if confident and intent == "product_question":
            # A question ("will this RAM work with my board?"): answer first — its article —
            # then the products that fit.
            await _article_first(flow, text, accessory.accessory)
        await sales.accessory_inquiry(flow, text, accessory)
        return
    route = ROUTES.get(intent) if confident else None
    await (route or _unsure)(flow, text, parse)


async def _article_first(flow: Flow, text: str, category: str | None) -> None:
    """The confident knowledge-base answer with its source, when there is one."""
    answer = await ask_kb(flow, text, category)
    if answer is not None:
        await flow.say(answer_text(flow, answer), rows([source_button(flow, answer)]))


async def _unsure(flow: Flow, text: str, parse: ParseResult) -> None:
    """Low confidence or out of scope: a confident KB answer with its source, else honesty."""
    answer = await ask_kb(flow, text, parse.first("product_category"))
    if answer is None:
        await not_sure(flow)
        return
    await flow.say(answer_text(flow, answer), rows([source_button(flow, answer)]))


# -- leaving a flow that waits for free text --------------------------------------------------

# A flow waiting for free text (a symptom, a product question, what to buy) takes the next
# message as that text, unless the NLU is sure it asks for one of these instead.
ESCAPE_INTENTS = frozenset(
    {
        "request_human",
        "complaint",
        "unsubscribe",
        "order_status",
        "return_refund",
        "check_warranty",
        "purchase_inquiry",
        "product_question",
        "policy_question",
        "goodbye",
    }
)


async def parse_or_escape(
    flow: Flow, text: str, *, stay: frozenset[str] = frozenset()
) -> ParseResult | None:
    """Parse `text` for a flow waiting for it. When the NLU is sure the customer asks for
    something else (an escape intent not in `stay`), the flow is left and that intent is
    routed: None. Otherwise the parse, for its entities."""
    parse = await flow.deps.nlu.parse(text)
    confident = parse.confidence >= flow.deps.settings.nlu.confidence_threshold
    if confident and parse.intent in ESCAPE_INTENTS - stay:
        await flow.state.set_state(None)
        flow.intent, flow.confidence = parse.intent, parse.confidence
        await ROUTES[parse.intent](flow, text, parse)
        return None
    return parse


# -- routes ------------------------------------------------------------------------------------


async def _greet(flow: Flow, text: str, parse: ParseResult) -> None:
    await send_menu(flow, "nlu.greet")


async def _goodbye(flow: Flow, text: str, parse: ParseResult) -> None:
    await flow.say(flow.t("nlu.goodbye"))


async def _thanks(flow: Flow, text: str, parse: ParseResult) -> None:
    await flow.say(flow.t("nlu.thanks"))


async def _affirm_deny(flow: Flow, text: str, parse: ParseResult) -> None:
    await send_menu(flow, "nlu.how_can_i_help")


async def _fault(flow: Flow, text: str, parse: ParseResult) -> None:
    await faults.start_fault(
        flow,
        serial=parse.first("serial_number"),
        category=parse.first("product_category"),
        symptom=text,
    )


async def _fault_solved(flow: Flow, text: str, parse: ParseResult) -> None:
    await faults.mark_solved(flow)


async def _fault_unsolved(flow: Flow, text: str, parse: ParseResult) -> None:
    await faults.open_ticket(flow)


async def _product_question(flow: Flow, text: str, parse: ParseResult) -> None:
    await products.answer_question(
        flow,
        text,
        category=parse.first("product_category"),
        model=parse.first("product_model"),
    )


# An account request (my warranty, my order, a return) names a record or acts on the
# customer's own ones; with nothing on the record to act on it is answered as the policy
# question it then is ("return policy?" read as return_refund still gets the policy).


async def _warranty(flow: Flow, text: str, parse: ParseResult) -> None:
    serial, number = parse.first("serial_number"), parse.first("order_number")
    if serial is None and number is None and not await _has_units(flow):
        await policy.answer_policy(flow, text, asked="check_warranty")
        return
    await warranty.show_warranty(flow, serial=serial, order_number=number)


async def _order_status(flow: Flow, text: str, parse: ParseResult) -> None:
    number = parse.first("order_number")
    if number is not None:
        await orders.show_order(flow, number)
    elif await _has_orders(flow):
        await orders.show_orders(flow)
    else:
        await policy.answer_policy(flow, text, asked="order_status")


async def _return(flow: Flow, text: str, parse: ParseResult) -> None:
    number = parse.first("order_number")
    if number is not None:
        await orders.start_return(flow, number)
    elif await _has_orders(flow):
        await orders.show_orders(flow, for_return=True)
    else:
        await policy.answer_policy(flow, text, asked="return_refund")


async def _policy(flow: Flow, text: str, parse: ParseResult) -> None:
    await policy.answer_policy(flow, text)


async def _has_orders(flow: Flow) -> bool:
    return bool(await flow.crm.orders.list_orders(flow.customer.id, limit=1))


async def _has_units(flow: Flow) -> bool:
    return bool(await flow.crm.warranties.warranty_for_customer(flow.customer.id))


async def _purchase(flow: Flow, text: str, parse: ParseResult) -> None:
    accessory = sales.accessory_request(parse)
    if accessory is not None:
        await sales.accessory_inquiry(flow, text, accessory)
        return
    await sales.start_inquiry(
        flow,
        text,
        category=parse.first("product_category"),
        model=parse.first("product_model"),
    )


async def _human(flow: Flow, text: str, parse: ParseResult) -> None:
    await flow.state.set_state(None)
    await hand_to_human(flow, REQUEST_HUMAN, category=parse.first("product_category"))


async def _complaint(flow: Flow, text: str, parse: ParseResult) -> None:
    await flow.state.set_state(None)
    await feedback.file_complaint(flow, text, category=parse.first("product_category"))


async def _unsubscribe(flow: Flow, text: str, parse: ParseResult) -> None:
    await privacy.stop_marketing(flow, privacy.UNSUBSCRIBE_SOURCE)


ROUTES: dict[str, Route] = {
    "greet": _greet,
    "goodbye": _goodbye,
    "thanks": _thanks,
    "affirm": _affirm_deny,
    "deny": _affirm_deny,
    "report_fault": _fault,
    "fault_solved": _fault_solved,
    "fault_unsolved": _fault_unsolved,
    "product_question": _product_question,
    "check_warranty": _warranty,
    "order_status": _order_status,
    "return_refund": _return,
    "policy_question": _policy,
    "purchase_inquiry": _purchase,
    "request_human": _human,
    "complaint": _complaint,
    "unsubscribe": _unsubscribe,
}


# -- photos ------------------------------------------------------------------------------------
# Stickers, voice, files ... are left to the runtime's fallback router ("I read text and photos").


@router.message(F.photo)
async def on_photo(message: Message, flow: Flow) -> None:
    """A photo outside a fault report: its caption is routed like text when it clearly asks
    for something else; otherwise it starts a fault report and the photo is kept for it."""
    assert message.photo
    caption = message.caption or ""
    if caption:
        parse = await flow.deps.nlu.parse(caption)
        flow.intent, flow.confidence = parse.intent, parse.confidence
        route = ROUTES.get(parse.intent)
        confident = parse.confidence >= flow.deps.settings.nlu.confidence_threshold
        if route is not None and confident and parse.intent != "report_fault":
            await route(flow, caption, parse)
            return
    await faults.start_fault(flow, symptom=caption or None, photos=[message.photo[-1].file_id])

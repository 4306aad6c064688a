"""Fault report, answer first: the symptom gets the best knowledge-base solution in the first
reply; the device (which one, its serial, its warranty), the ticket and the RMA follow as
offers in that same reply, and proceed as they always did.

    symptom → [device + warranty when known] + KB solution + "Solved?"
            → solved | not solved → (which device? when not known and the customer has any)
            → ticket (RMA under warranty, paid repair out of warranty, plain fault otherwise)
            → a person.

The device is known without asking when the customer named its serial or owns exactly one
device of the category named ("my GPU ..."); a linked customer with several candidates gets
them as buttons beside the answer; a customer with no devices here (a prospect) is never
asked for a serial (it could only be refused: units are looked up on the customer's own
record). Without a symptom (the menu, /fault) the bot asks for it first — for a customer with
devices, picking one is offered as a single tap before that.

The draft of the report lives in the FSM data (`fault`): the device's serial (checked to be
the customer's own whenever it is set), its category, the symptom, the photo file ids,
whether the answer was shown (`answered`) and what waits for the device (`then`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiogram import F
from aiogram.filters import StateFilter
from aiogram.types import CallbackQuery, Message

from bot.callbacks import DeviceCb, FaultCb
from bot.flows.context import PLAIN_TEXT, Flow, customer_router
from bot.flows.human import LOW_CONFIDENCE, NOT_SOLVED, human_button
from bot.flows.kb import answer_text, ask_kb, source_button
from bot.flows.policy import DIAGNOSIS_FEE, QUOTE_BUSINESS_DAYS, diagnosis_fee_note
from bot.flows.render import device_label, fmt_money, warranty_status_text
from bot.flows.states import FaultStates
from bot.keyboards import button, rows, solved_keyboard, stack
from crm_core.errors import NotFound, ValidationFailed
from crm_core.ids import normalize_serial_number
from crm_core.tickets.schemas import TicketDTO, TicketKind
from crm_core.tickets.service import RmaRefused
from crm_core.warranties.schemas import WarrantyStatus

router = customer_router("faults")

DRAFT = "fault"
NO_DEVICE = "-"
MAX_DEVICE_BUTTONS = 8
# Devices offered as buttons beside the first answer (more would bury the answer).
MAX_DEVICE_OFFERS = 3
THEN_TICKET = "ticket"


# -- the draft ---------------------------------------------------------------------------------


async def _draft(flow: Flow) -> dict[str, Any]:
    value = (await flow.state.get_data()).get(DRAFT)
    return dict(value) if isinstance(value, dict) else {}


async def _save(flow: Flow, draft: dict[str, Any]) -> None:
    await flow.state.update_data({DRAFT: draft})


def _new_draft(category: str | None, symptom: str | None, photos: Iterable[str]) -> dict[str, Any]:
    return {
        "serial": None,
        "device": None,
        "category": category,
        "symptom": symptom,
        "photos": list(photos),
        "device_chosen": False,
        "ticket": None,
        "answered": False,
        "then": None,
    }


def _set_device(draft: dict[str, Any], unit: WarrantyStatus | None, lang: str) -> None:
    draft["device_chosen"] = True
    if unit is None:
        return
    draft["serial"] = unit.serial_number
    draft["category"] = unit.category
    draft["device"] = device_label(
        lang, unit.product_name_en, unit.product_name_zh, unit.serial_number
    )


# -- entry -------------------------------------------------------------------------------------


async def start_fault(
    flow: Flow,
    *,
    serial: str | None = None,
    category: str | None = None,
    symptom: str | None = None,
    photos: Iterable[str] = (),
) -> None:
    """Start a fault report with whatever is known already (from the NLU or the menu): with a
    symptom, answer it at once; without one, ask for it (or for the device, when the customer
    has devices to pick from)."""
    draft = _new_draft(category, symptom, photos)
    if serial is not None:
        unit = await _own_unit(flow, serial)
        if unit is not None:
            _set_device(draft, unit, flow.lang)
    units: list[WarrantyStatus] = []
    if not draft["device_chosen"]:
        units = await _candidates(flow, category)
        if category is not None and len(units) == 1 and units[0].category == category:
            _set_device(draft, units[0], flow.lang)
    await _save(flow, draft)
    if draft["symptom"]:
        await _diagnose(flow, draft, [] if draft["device_chosen"] else units)
    elif not draft["device_chosen"] and units:
        await _ask_device(flow, draft, units)
    else:
        await _ask_symptom(flow, draft)


async def _candidates(flow: Flow, category: str | None) -> list[WarrantyStatus]:
    """The customer's units with a serial that the report may be about (the named category's
    when it has any)."""
    units = [
        u
        for u in await flow.crm.warranties.warranty_for_customer(flow.customer.id)
        if u.serial_number
    ]
    matching = [u for u in units if category is not None and u.category == category]
    return matching or units


async def _own_unit(flow: Flow, serial: str) -> WarrantyStatus | None:
    """The customer's own unit with this serial; says so (and returns None) otherwise."""
    try:
        return await flow.crm.warranties.warranty_by_serial(serial, customer_id=flow.customer.id)
    except NotFound:
        await flow.say(flow.t("fault.serial_not_found"))
        return None


async def _ask_device(flow: Flow, draft: dict[str, Any], units: list[WarrantyStatus]) -> None:
    await flow.state.set_state(FaultStates.device)
    buttons = [
        button(
            device_label(flow.lang, u.product_name_en, u.product_name_zh, u.serial_number),
            DeviceCb(serial=u.serial_number or NO_DEVICE).pack(),
        )
        for u in units[:MAX_DEVICE_BUTTONS]
        if u.serial_number
    ]
    buttons.append(button(flow.t("fault.no_device_button"), DeviceCb(serial=NO_DEVICE).pack()))
    if draft.get("then") == THEN_TICKET:
        key = "fault.ask_device_for_ticket"
    else:
        key = "fault.ask_device" if len(buttons) > 1 else "fault.ask_serial"
    await flow.say(flow.t(key), rows(buttons))


async def _ask_symptom(flow: Flow, draft: dict[str, Any]) -> None:
    await flow.state.set_state(FaultStates.symptom)
    device = draft.get("device") or flow.t("fault.unknown_device")
    await flow.say(flow.t("fault.ask_symptom", device=device))


async def _after_device(flow: Flow, draft: dict[str, Any]) -> None:
    """The device is settled: open the ticket that waited for it, or confirm it under the
    answer already shown, or go on with the report."""
    if draft.get("then") == THEN_TICKET:
        draft["then"] = None
        await _save(flow, draft)
        await open_ticket(flow)
        return
    await _save(flow, draft)
    if draft.get("answered"):
        await _confirm_device(flow, draft)
    elif draft.get("symptom"):
        await _diagnose(flow, draft, [])
    else:
        await _ask_symptom(flow, draft)


async def _confirm_device(flow: Flow, draft: dict[str, Any]) -> None:
    """A device picked under the answer: its warranty, and "Solved?" again."""
    await flow.state.set_state(FaultStates.outcome)
    text = flow.t("fault.solved_question")
    if draft.get("serial"):
        text = await _device_warranty(flow, draft) + "\n\n" + text
    await flow.say(text, solved_keyboard(flow.t))


async def _device_warranty(flow: Flow, draft: dict[str, Any]) -> str:
    unit = await flow.crm.warranties.warranty_by_serial(
        draft["serial"], customer_id=flow.customer.id
    )
    return flow.t(
        "fault.device_warranty",
        device=draft["device"],
        warranty=warranty_status_text(flow.t, unit),
    )


# -- device ------------------------------------------------------------------------------------


@router.callback_query(DeviceCb.filter())
async def on_device(query: CallbackQuery, callback_data: DeviceCb, flow: Flow) -> None:
    """A device button: re-checked to be the customer's own (forged serials are refused)."""
    draft = await _draft(flow)
    if not draft:
        draft = _new_draft(None, None, ())
    if callback_data.serial == NO_DEVICE:
        draft["device_chosen"] = True
        await _after_device(flow, draft)
        return
    unit = await _own_unit(flow, callback_data.serial)
    if unit is None:
        return
    _set_device(draft, unit, flow.lang)
    await _after_device(flow, draft)


@router.message(StateFilter(FaultStates.device), PLAIN_TEXT)
async def on_device_text(message: Message, flow: Flow) -> None:
    """A typed serial; anything else is kept as the symptom when none is known yet."""
    draft = await _draft(flow)
    serial = normalize_serial_number(message.text or "")
    if serial is not None:
        unit = await _own_unit(flow, serial)
        if unit is not None:
            _set_device(draft, unit, flow.lang)
            await _after_device(flow, draft)
        return
    if await _escaped(flow, message.text or ""):
        return
    if not draft.get("symptom"):
        # The problem itself, typed instead of picking a device: answer it first.
        draft["symptom"] = message.text
        await _save(flow, draft)
        await _diagnose(flow, draft, await _candidates(flow, draft.get("category")))
        return
    await flow.say(flow.t("fault.ask_serial_again"))


async def _escaped(flow: Flow, text: str) -> bool:
    """The customer asked for something else instead (a person, an order ...): routed."""
    from bot.routers.free_text import parse_or_escape

    return await parse_or_escape(flow, text, stay=frozenset({"product_question"})) is None


# -- symptom and photos ------------------------------------------------------------------------


@router.message(StateFilter(FaultStates.symptom), PLAIN_TEXT)
async def on_symptom(message: Message, flow: Flow) -> None:
    if await _escaped(flow, message.text or ""):
        return
    draft = await _draft(flow)
    draft["symptom"] = message.text
    await _save(flow, draft)
    units = [] if draft.get("device_chosen") else await _candidates(flow, draft.get("category"))
    await _diagnose(flow, draft, units)


@router.message(StateFilter(FaultStates.ticket_open), F.photo)
async def on_ticket_photo(message: Message, flow: Flow) -> None:
    """A photo after the ticket was opened: attached to that ticket (the customer's own)."""
    draft = await _draft(flow)
    number = str(draft.get("ticket") or "")
    assert message.photo
    try:
        await flow.crm.tickets.add_attachment(
            number, message.photo[-1].file_id, customer_id=flow.customer.id
        )
    except (NotFound, ValidationFailed):
        await flow.say(flow.t("fault.photo_not_attached"))
        return
    await flow.say(flow.t("fault.photo_added", ticket=number))


@router.message(StateFilter(FaultStates.device, FaultStates.symptom, FaultStates.outcome), F.photo)
async def on_photo(message: Message, flow: Flow) -> None:
    """Photos of the fault: kept for the ticket; a caption counts as the description."""
    await add_photo(flow, message)


async def add_photo(flow: Flow, message: Message) -> None:
    """Keep the photo's file id in the draft (a new report when none is in progress)."""
    assert message.photo
    draft = await _draft(flow)
    if not draft:
        await start_fault(flow, symptom=message.caption, photos=[message.photo[-1].file_id])
        return
    draft["photos"] = [*draft.get("photos", []), message.photo[-1].file_id]
    if message.caption and not draft.get("symptom"):
        draft["symptom"] = message.caption
    await _save(flow, draft)
    current = await flow.state.get_state()
    if current == FaultStates.symptom.state and draft.get("symptom"):
        await _diagnose(flow, draft, [])
    elif current == FaultStates.symptom.state:
        await flow.say(flow.t("fault.photo_saved_describe"))
    else:
        await flow.say(flow.t("fault.photo_saved"))


# -- diagnosis ---------------------------------------------------------------------------------


async def _diagnose(flow: Flow, draft: dict[str, Any], offers: list[WarrantyStatus]) -> None:
    """The first answer: the device's warranty (when known) + the best KB solution, with
    "Solved?", "Not solved? Open a repair request", the source, and — when the device is not
    known — the customer's candidate devices as buttons."""
    await flow.state.set_state(FaultStates.outcome)
    parts: list[str] = []
    if draft.get("serial"):
        parts.append(await _device_warranty(flow, draft))
    answer = await ask_kb(flow, str(draft.get("symptom") or ""), draft.get("category"))
    device_buttons = [
        button(
            flow.t(
                "fault.device_offer_button",
                device=device_label(
                    flow.lang, u.product_name_en, u.product_name_zh, u.serial_number
                ),
            ),
            DeviceCb(serial=u.serial_number or NO_DEVICE).pack(),
        )
        for u in (offers if len(offers) <= MAX_DEVICE_OFFERS else [])
        if u.serial_number
    ]
    if answer is None:
        parts.append(flow.t("fault.no_kb_answer"))
        markup = stack(
            [button(flow.t("fault.open_ticket_button"), FaultCb(action="unsolved").pack())],
            *[[b] for b in device_buttons],
            [human_button(flow, LOW_CONFIDENCE)],
        )
    else:
        draft["article"] = answer.article_id
        parts.append(flow.t("fault.kb_intro"))
        parts.append(answer_text(flow, answer))
        parts.append(flow.t("fault.solved_question"))
        markup = stack(
            [
                button(flow.t("fault.solved_button"), FaultCb(action="solved").pack()),
                button(flow.t("fault.unsolved_button"), FaultCb(action="unsolved").pack()),
            ],
            [source_button(flow, answer)],
            *[[b] for b in device_buttons],
        )
    if device_buttons:
        parts.append(flow.t("fault.which_device_offer"))
    draft["answered"] = True
    await _save(flow, draft)
    await flow.say("\n\n".join(parts), markup)


# -- outcome -----------------------------------------------------------------------------------


@router.callback_query(FaultCb.filter(F.action == "solved"))
async def on_solved(query: CallbackQuery, flow: Flow) -> None:
    await mark_solved(flow)


async def mark_solved(flow: Flow) -> None:
    """The KB solution helped: nothing to open."""
    await flow.state.update_data({DRAFT: None})
    await flow.state.set_state(None)
    await flow.say(flow.t("fault.glad"))


@router.callback_query(FaultCb.filter(F.action == "unsolved"))
async def on_unsolved(query: CallbackQuery, flow: Flow) -> None:
    await open_ticket(flow)


async def open_ticket(flow: Flow) -> None:
    """Not solved: an RMA when under warranty, else the paid-repair offer; a plain fault
    ticket when no device is known."""
    draft = await _draft(flow)
    if not draft.get("symptom"):
        await flow.say(flow.t("fault.expired"))
        await start_fault(flow)
        return
    if draft.get("ticket"):
        await flow.say(flow.t("fault.ticket_exists", ticket=draft["ticket"]))
        return
    if not draft.get("device_chosen"):
        units = await _candidates(flow, draft.get("category"))
        if units:  # which device decides RMA or paid repair: ask now, then open it
            draft["then"] = THEN_TICKET
            await _save(flow, draft)
            await _ask_device(flow, draft, units)
            return
    serial = draft.get("serial")
    kind = TicketKind.RMA if serial else TicketKind.FAULT
    try:
        ticket = await flow.crm.tickets.create(
            flow.customer.id,
            kind=kind,
            symptom=str(draft["symptom"]),
            serial_number=serial,
            attachments=draft.get("photos", []),
        )
    except RmaRefused as refused:
        await _offer_paid_repair(flow, draft, refused.warranty)
        return
    except NotFound:
        await flow.say(flow.t("fault.serial_not_found"))
        return
    await _ticket_opened(flow, draft, ticket)


async def _offer_paid_repair(flow: Flow, draft: dict[str, Any], unit: WarrantyStatus) -> None:
    fee = " / ".join(fmt_money(flow.t, amount, currency) for amount, currency in DIAGNOSIS_FEE)
    text = flow.t(
        "fault.paid_repair_offer",
        device=draft.get("device") or "",
        warranty=warranty_status_text(flow.t, unit),
        fee=fee,
        days=QUOTE_BUSINESS_DAYS,
    )
    markup = rows(
        [
            button(flow.t("fault.paid_repair_button"), FaultCb(action="repair").pack()),
            human_button(flow, NOT_SOLVED),
        ]
    )
    await flow.say(text, markup)


@router.callback_query(FaultCb.filter(F.action == "repair"))
async def on_paid_repair(query: CallbackQuery, flow: Flow) -> None:
    """The customer accepts the paid-repair terms: a repair ticket with the fee noted."""
    draft = await _draft(flow)
    if not draft.get("symptom") or not draft.get("serial"):
        await flow.say(flow.t("fault.expired"))
        return
    if draft.get("ticket"):
        await flow.say(flow.t("fault.ticket_exists", ticket=draft["ticket"]))
        return
    try:
        ticket = await flow.crm.tickets.create(
            flow.customer.id,
            kind=TicketKind.REPAIR,
            symptom=f"{draft['symptom']}\n\n{diagnosis_fee_note()}",
            subject=str(draft["symptom"]).splitlines()[0][:200],
            serial_number=draft["serial"],
            attachments=draft.get("photos", []),
        )
    except NotFound:
        await flow.say(flow.t("fault.serial_not_found"))
        return
    await _ticket_opened(flow, draft, ticket)


async def _ticket_opened(flow: Flow, draft: dict[str, Any], ticket: TicketDTO) -> None:
    draft["ticket"] = ticket.ticket_number
    await _save(flow, draft)
    await flow.state.set_state(FaultStates.ticket_open)
    key = {
        TicketKind.RMA.value: "fault.ticket_rma",
        TicketKind.REPAIR.value: "fault.ticket_repair",
    }.get(ticket.kind, "fault.ticket_fault")
    await flow.say(
        flow.t(key, ticket=ticket.ticket_number, days=QUOTE_BUSINESS_DAYS),
        stack([human_button(flow, NOT_SOLVED, ticket.ticket_number)]),
    )

"""/stop (and the `unsubscribe` intent): marketing consent withdrawn. /privacy: export my data
(a JSON file in the chat) and delete my data (two confirmations, then erased with the actor
`customer:<id>`).

Each deletion step carries a random nonce that the previous step stored in the FSM data, so
the erase runs only after both confirmations in this chat, never from one forged button.
"""

from __future__ import annotations

import json
import secrets

from aiogram import F
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.callbacks import PrivacyCb
from bot.flows.context import Flow, customer_router
from bot.keyboards import confirm_keyboard, privacy_keyboard

router = customer_router("privacy")

STOP_SOURCE = "telegram:/stop"
UNSUBSCRIBE_SOURCE = "telegram:unsubscribe"
NONCE_KEY = "erase_nonce"


@router.message(Command("stop"))
async def on_stop(message: Message, flow: Flow) -> None:
    await stop_marketing(flow, STOP_SOURCE)


async def stop_marketing(flow: Flow, source: str) -> None:
    """Withdraw marketing consent (idempotent) and confirm it."""
    change = await flow.crm.customers.withdraw_consent(flow.customer.id, source)
    key = "privacy.unsubscribed" if change.changed else "privacy.already_unsubscribed"
    await flow.say(flow.t(key))


@router.message(Command("privacy"))
async def on_privacy(message: Message, flow: Flow) -> None:
    await show_privacy(flow)


async def show_privacy(flow: Flow) -> None:
    await flow.state.update_data({NONCE_KEY: None})
    await flow.say(flow.t("privacy.menu"), privacy_keyboard(flow.t))


@router.callback_query(PrivacyCb.filter(F.action == "export"))
async def on_export(query: CallbackQuery, flow: Flow) -> None:
    """Everything the CRM holds about the customer, as a JSON document in the chat."""
    customer_id = flow.customer.id
    data = await flow.crm.customers.export_customer(
        customer_id,
        actor=f"customer:{customer_id}",
        reason="GDPR data export requested by the customer in Telegram",
    )
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    day = flow.deps.clock.now().date().isoformat()
    await flow.send_file(body, f"my-data-{day}.json", flow.t("privacy.export_caption"))


@router.callback_query(PrivacyCb.filter(F.action == "delete"))
async def on_delete(query: CallbackQuery, flow: Flow) -> None:
    """First confirmation."""
    nonce = await _new_nonce(flow, "confirm")
    await flow.say(
        flow.t("privacy.delete_confirm_1"),
        confirm_keyboard(
            flow.t, flow.t("privacy.delete_yes_button"), PrivacyCb(action="confirm", nonce=nonce)
        ),
    )


@router.callback_query(PrivacyCb.filter(F.action == "confirm"))
async def on_delete_confirmed(query: CallbackQuery, callback_data: PrivacyCb, flow: Flow) -> None:
    """Second (last) confirmation, only after the first one in this chat."""
    if not await _nonce_matches(flow, "confirm", callback_data.nonce):
        await flow.say(flow.t("privacy.confirmation_expired"))
        return
    nonce = await _new_nonce(flow, "erase")
    await flow.say(
        flow.t("privacy.delete_confirm_2"),
        confirm_keyboard(
            flow.t, flow.t("privacy.delete_final_button"), PrivacyCb(action="erase", nonce=nonce)
        ),
    )


@router.callback_query(PrivacyCb.filter(F.action == "erase"))
async def on_erase(query: CallbackQuery, callback_data: PrivacyCb, flow: Flow) -> None:
    """Erase: the record is anonymised; the chat starts over as an unknown person."""
    if not await _nonce_matches(flow, "erase", callback_data.nonce):
        await flow.say(flow.t("privacy.confirmation_expired"))
        return
    customer_id = flow.customer.id
    await flow.crm.customers.erase_customer(
        customer_id,
        actor=f"customer:{customer_id}",
        reason="right to erasure requested by the customer in Telegram (/privacy)",
    )
    await flow.state.clear()
    await flow.say(flow.t("privacy.erased"))


@router.callback_query(PrivacyCb.filter(F.action == "cancel"))
async def on_cancel(query: CallbackQuery, flow: Flow) -> None:
    await flow.state.update_data({NONCE_KEY: None})
    await flow.say(flow.t("privacy.delete_cancelled"))


async def _new_nonce(flow: Flow, step: str) -> str:
    nonce = secrets.token_hex(4)
    await flow.state.update_data({NONCE_KEY: f"{step}:{nonce}"})
    return nonce


async def _nonce_matches(flow: Flow, step: str, nonce: str) -> bool:
    stored = (await flow.state.get_data()).get(NONCE_KEY)
    ok = bool(nonce) and secrets.compare_digest(str(stored or ""), f"{step}:{nonce}")
    if not ok:
        await flow.state.update_data({NONCE_KEY: None})
    return ok

"""Callback data of every inline button of the customer flows (aiogram CallbackData factories).

Callback data comes back from the customer's client and can be forged: a handler never trusts
an order number, serial, ticket or conversation id in it. Each one is re-checked in the CRM
service with the customer's id (someone else's record is refused exactly like a missing one).
Telegram limits callback data to 64 bytes; every factory here stays well below it.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class MenuCb(CallbackData, prefix="m"):
    """Main-menu shortcuts: fault, warranty, orders, returns, product, buy, human, link,
    language, privacy."""

    action: str


class LangCb(CallbackData, prefix="lang"):
    """/language: switch to `code` (zh | en)."""

    code: str


class DeviceCb(CallbackData, prefix="dev"):
    """Fault report: the device picked from the customer's purchases ("-" = not in the list)."""

    serial: str


class FaultCb(CallbackData, prefix="flt"):
    """Fault report outcome: solved | unsolved | repair (accept the paid-repair path)."""

    action: str


class HumanCb(CallbackData, prefix="hum"):
    """Talk to a person; `reason` is passed to the handoff, `ticket` names the ticket, if any."""

    reason: str
    ticket: str = ""


class ExtendCb(CallbackData, prefix="ext"):
    """Extended-warranty offer: +`months` for the unit `serial`."""

    serial: str
    months: int


class OrderCb(CallbackData, prefix="ord"):
    """Orders: show | ret (start a return) | item (one line) | retok | retdoa | cancel |
    cancelok | list | rlist."""

    action: str
    number: str = ""
    item: int = 0


class ProductCb(CallbackData, prefix="prd"):
    """A catalog product: info (details) | compat (what fits) | sales (ask sales)."""

    action: str
    sku: str


class CategoryCb(CallbackData, prefix="cat"):
    """Purchase inquiry: the product category the customer is shopping for."""

    category: str


class AccessoryCb(CallbackData, prefix="acc"):
    """Accessory purchase: dev (show accessories of `category` for the device product id) |
    sales (ask sales about them: a lead, then a person). `budget` is "" when none was given."""

    action: str
    device: int
    category: str
    budget: str = ""


class PrivacyCb(CallbackData, prefix="prv"):
    """/privacy: export | delete | confirm | erase | cancel. `nonce` binds each deletion step
    to the one before it (kept in the FSM), so no single forged button erases anything."""

    action: str
    nonce: str = ""


class RateCb(CallbackData, prefix="rate"):
    """Satisfaction rating 1-5 about a ticket (`ticket` number) or a conversation (`conv` id)."""

    score: int
    ticket: str = ""
    conv: int = 0


class RateCommentCb(CallbackData, prefix="ratec"):
    """After a rating: skip the optional comment."""

    action: str = "skip"

"""/start, /help, the command menu, /language and account linking — through the real
dispatcher, in zh and en, on SQLite and PostgreSQL.

Linking uses a demo customer without a Telegram account (found in the database); the person
writing is a new Telegram user, so the middleware has made them a prospect first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.callbacks import LangCb, MenuCb
from bot.i18n import Translator
from bot.routers.start import COMMANDS, set_commands
from crm_core.clock import FixedClock
from crm_core.customers.models import Customer
from crm_core.orders.models import Order
from crm_core.services import CrmServices
from tests.bot.conftest import LANGS, said
from tests.bot.harness import BotHarness

T = Translator()
CrmRun = Callable[[Callable[[CrmServices], Awaitable[Any]]], Awaitable[Any]]


async def unlinked_customer(crm_run: CrmRun) -> tuple[int, str, str, str]:
    """(id, name, phone, one order number) of a demo customer with no Telegram account."""

    async def find(crm: CrmServices) -> tuple[int, str, str, str]:
        row = (
            await crm.session.execute(
                select(Customer.id, Customer.name, Customer.phone, Order.order_number)
                .join(Order, Order.customer_id == Customer.id)
                .where(
                    Customer.telegram_user_id.is_(None),
                    Customer.phone.is_not(None),
                    Customer.erased_at.is_(None),
                )
                .order_by(Customer.id, Order.id)
                .limit(1)
            )
        ).one()
        return int(row[0]), str(row[1]), str(row[2]), str(row[3])

    return await crm_run(find)


async def telegram_of(crm_run: CrmRun, customer_id: int) -> int | None:
    async def get(crm: CrmServices) -> int | None:
        return (await crm.customers.get_customer(customer_id)).telegram_user_id

    return await crm_run(get)


# -- /start, /help, menu, commands -------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
async def test_start_greets_a_known_customer_by_name_with_the_menu(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    calls = await bot_harness.send(user, "/start")
    text = said(calls)
    assert T.t("start.hello_known", lang, name="James Carter") in text
    labels = [label for label, _ in bot_harness.buttons(calls)]
    assert T.t("menu.fault", lang) in labels and T.t("menu.human", lang) in labels
    assert MenuCb(action="link").pack() not in [d for _, d in bot_harness.buttons(calls)]


@pytest.mark.parametrize("lang", LANGS)
async def test_start_offers_an_unknown_person_linking_with_a_contact_request_button(
    bot_harness: BotHarness, lang: str
) -> None:
    user = bot_harness.user(880_001, lang)
    calls = await bot_harness.send(user, "/start")
    assert calls[0].text == T.t("start.hello_new", lang)
    keyboard = calls[0].params["reply_markup"].keyboard
    assert keyboard[0][0].request_contact is True
    assert keyboard[0][0].text == T.t("link.share_contact_button", lang)
    assert keyboard[1][0].text == T.t("link.by_order_button", lang)
    assert MenuCb(action="link").pack() in [d for _, d in bot_harness.buttons(calls)]


@pytest.mark.parametrize("lang", LANGS)
async def test_help_lists_the_commands_in_the_customers_language(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    calls = await bot_harness.send(user, "/help")
    assert said(calls).startswith(T.t("help.text", lang)[:10])
    assert "/fault" in said(calls) and "/privacy" in said(calls)


async def test_set_commands_publishes_the_menu_in_both_languages(bot_harness: BotHarness) -> None:
    await set_commands(bot_harness.bot, T)
    calls = [c for c in bot_harness.api.calls if c.method == "setMyCommands"]
    by_lang = {c.params.get("language_code"): c.params["commands"] for c in calls}
    assert set(by_lang) == {None, "zh", "en"}
    for lang in ("zh", "en"):
        commands = by_lang[lang]
        assert [c["command"] for c in commands] == list(COMMANDS)
        assert commands[0]["description"] == T.t("command.start", lang)
    assert by_lang[None] == by_lang["en"]


@pytest.mark.parametrize("lang", LANGS)
async def test_an_unknown_command_gets_the_menu(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    calls = await bot_harness.send(user, "/frobnicate")
    assert T.t("nlu.unknown_command", lang) in said(calls)


# -- /language --------------------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "other"), [("zh", "en"), ("en", "zh")])
async def test_language_switch_is_saved_on_the_customer_and_used_from_then_on(
    bot_harness: BotHarness, speaker: Any, crm_run: CrmRun, lang: str, other: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    calls = await bot_harness.send(user, "/language")
    assert T.t("language.prompt", lang) in said(calls)
    calls = await bot_harness.press(user, LangCb(code=other).pack())
    assert T.t("language.saved", other) in said(calls)

    async def language(crm: CrmServices) -> str:
        customer = await crm.customers.find_by_telegram_id(1002)
        assert customer is not None
        return customer.language

    assert await crm_run(language) == other
    # Telegram still says `lang`; the saved choice wins.
    calls = await bot_harness.send(bot_harness.user(1002, lang), "/help")
    assert T.t("help.text", other) in said(calls)


# -- linking ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
async def test_sharing_ones_own_contact_links_the_customer_record(
    bot_harness: BotHarness, crm_run: CrmRun, lang: str
) -> None:
    customer_id, name, phone, _ = await unlinked_customer(crm_run)
    user = bot_harness.user(880_010, lang)
    await bot_harness.send(user, "/start")
    # Telegram sends the contact's number in international format, often without the "+".
    calls = await bot_harness.share_contact(user, phone.lstrip("+"), contact_user_id=880_010)
    assert T.t("link.done", lang, name=name) in said(calls)
    assert await telegram_of(crm_run, customer_id) == 880_010
    # From now on the bot knows them: /start greets by name, no linking offer.
    calls = await bot_harness.send(user, "/start")
    assert T.t("start.hello_known", lang, name=name) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_someone_elses_contact_is_refused_and_links_nothing(
    bot_harness: BotHarness, crm_run: CrmRun, lang: str
) -> None:
    customer_id, _, phone, _ = await unlinked_customer(crm_run)
    user = bot_harness.user(880_020, lang)
    calls = await bot_harness.share_contact(user, phone, contact_user_id=880_999)
    assert T.t("link.not_your_contact", lang) in said(calls)
    calls = await bot_harness.share_contact(user, phone, contact_user_id=None)
    assert T.t("link.not_your_contact", lang) in said(calls)
    assert await telegram_of(crm_run, customer_id) is None


@pytest.mark.parametrize("lang", LANGS)
async def test_an_own_contact_without_a_customer_record_is_told_to_use_an_order(
    bot_harness: BotHarness, lang: str
) -> None:
    user = bot_harness.user(880_030, lang)
    calls = await bot_harness.share_contact(user, "+8613000000001", contact_user_id=880_030)
    assert T.t("link.contact_unknown", lang) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_linking_with_an_order_number_and_the_last_four_phone_digits(
    bot_harness: BotHarness, crm_run: CrmRun, lang: str
) -> None:
    customer_id, name, phone, order = await unlinked_customer(crm_run)
    user = bot_harness.user(880_040, lang)
    await bot_harness.send(user, "/start")
    calls = await bot_harness.send(user, T.t("link.by_order_button", lang))
    assert T.t("link.ask_order", lang) in said(calls)
    calls = await bot_harness.send(user, "not an order")
    assert T.t("link.bad_order", lang) in said(calls)
    calls = await bot_harness.send(user, order.lower().replace("-", " "))
    assert T.t("link.ask_digits", lang, order=order) in said(calls)
    calls = await bot_harness.send(user, "12")
    assert T.t("link.bad_digits", lang) in said(calls)
    calls = await bot_harness.send(user, phone[-4:])
    assert T.t("link.done", lang, name=name) in said(calls)
    assert await telegram_of(crm_run, customer_id) == 880_040


@pytest.mark.parametrize("lang", LANGS)
async def test_wrong_order_digit_tries_are_limited_to_five_an_hour(
    bot_harness: BotHarness, crm_run: CrmRun, demo_clock: FixedClock, lang: str
) -> None:
    customer_id, name, phone, order = await unlinked_customer(crm_run)
    wrong = f"{(int(phone[-4:]) + 1) % 10000:04d}"
    user = bot_harness.user(880_050, lang)
    await bot_harness.send(user, "/link")
    for attempt in range(1, 6):
        await bot_harness.send(user, order)
        calls = await bot_harness.send(user, wrong)
        if attempt < 5:
            assert T.t("link.no_match", lang, left=5 - attempt) in said(calls)
    assert T.t("link.too_many", lang, time="", date="")[:12] in said(calls)
    # Blocked: even the right digits do not link now (and the try is not even asked for).
    calls = await bot_harness.send(user, "/link")
    calls += await bot_harness.send(user, order)
    calls += await bot_harness.send(user, phone[-4:])
    assert T.t("link.done", lang, name=name) not in said(calls)
    assert await telegram_of(crm_run, customer_id) is None
    # Another Telegram user is not affected by this user's failures.
    other = bot_harness.user(880_051, lang)
    await bot_harness.send(other, "/link")
    await bot_harness.send(other, order)
    calls = await bot_harness.send(other, wrong)
    assert T.t("link.no_match", lang, left=4) in said(calls)
    # An hour after the failures the user may try again.
    demo_clock.advance(timedelta(hours=1, minutes=1))
    await bot_harness.send(user, "/link")
    await bot_harness.send(user, order)
    calls = await bot_harness.send(user, phone[-4:])
    assert T.t("link.done", lang, name=name) in said(calls)
    assert await telegram_of(crm_run, customer_id) == 880_050


@pytest.mark.parametrize("lang", LANGS)
async def test_a_linked_customer_is_not_asked_to_link_again(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    calls = await bot_harness.send(user, "/link")
    assert T.t("link.already", lang, name="张伟") in said(calls)

"""Order status, returns, refunds and cancellation, in zh and en, on SQLite and PostgreSQL.

Demo: 1001 张伟 — SO-29380288 (delivered 2025-11-29: RTX 4070 + SSD) and SO-48729239;
1002 James Carter — SO-87427141; 1003 陈静 — SO-36125043 shipped, not delivered yet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from bot.callbacks import MenuCb, OrderCb
from bot.i18n import Translator
from crm_core.clock import FixedClock
from crm_core.orders.models import Order
from crm_core.orders.schemas import ReturnDTO
from crm_core.services import CrmServices
from tests.bot.conftest import LANGS, button_data, button_datas, said
from tests.bot.harness import BotHarness

T = Translator()
ORDER_1001 = "SO-29380288"
OLD_ORDER_1001 = "SO-48729239"
ORDER_1002 = "SO-87427141"
SHIPPED_1003 = "SO-36125043"


def day(lang: str, y: int, m: int, d: int) -> str:
    return T.t("fmt.date", lang, y=y, m=m, d=d)


async def returns_of(crm_run: Any, telegram_id: int, number: str) -> list[ReturnDTO]:
    async def get(crm: CrmServices) -> list[ReturnDTO]:
        customer = await crm.customers.find_by_telegram_id(telegram_id)
        assert customer is not None
        return await crm.orders.returns_for_order(number, customer.id)

    return list(await crm_run(get))


@pytest.mark.parametrize("lang", LANGS)
async def test_orders_list_and_one_orders_status_with_items_and_serials(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    calls = await h.press(user, MenuCb(action="orders").pack())
    assert button_datas(calls, "ord:show:") == [
        OrderCb(action="show", number=ORDER_1001).pack(),
        OrderCb(action="show", number=OLD_ORDER_1001).pack(),
    ]
    calls = await h.press(user, OrderCb(action="show", number=ORDER_1001).pack())
    text = said(calls)
    assert ORDER_1001 in text and T.t("orders.status.delivered", lang) in text
    assert day(lang, 2025, 11, 29) in text
    assert "SNCUKOIJOJ6K" in text and "RTX 4070" in text
    assert T.t("fmt.money", lang, amount="5,198.00", currency="CNY") in text
    assert OrderCb(action="ret", number=ORDER_1001).pack() in button_datas(calls, "ord:")


@pytest.mark.parametrize("lang", LANGS)
async def test_an_order_number_in_free_text_goes_straight_to_its_status(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    text = {"zh": f"订单 {ORDER_1001} 到哪了", "en": f"my order {ORDER_1001} where is it"}
    calls = await bot_harness.send(user, text[lang])
    assert len(calls) == 1
    assert T.t("orders.status.delivered", lang) in said(calls) and "SNCUKOIJOJ6K" in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_another_customers_order_in_forged_callback_data_is_refused(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, demo_clock: FixedClock, lang: str
) -> None:
    h = bot_harness
    demo_clock.set(datetime(2026, 3, 25, 12, tzinfo=UTC))  # inside 1002's return window
    user = await speaker(h, 1001, lang)
    for action in ("show", "ret", "retok", "retdoa", "cancel", "cancelok"):
        calls = await h.press(user, OrderCb(action=action, number=ORDER_1002, item=1).pack())
        text = said(calls)
        assert text == T.t("orders.not_found", lang, number=ORDER_1002), action
    calls = await h.press(user, OrderCb(action="item", number=ORDER_1002, item=1).pack())
    assert said(calls) == T.t("orders.not_found", lang, number=ORDER_1002)
    assert await returns_of(crm_run, 1002, ORDER_1002) == []
    # Typed, too: nothing about the other customer's order is revealed.
    calls = await h.send(user, f"where is my order {ORDER_1002}")
    assert "LG" not in said(calls) and "4,999" not in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_return_inside_the_window_is_requested_and_shown_on_the_order(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, demo_clock: FixedClock, lang: str
) -> None:
    h = bot_harness
    demo_clock.set(datetime(2025, 12, 3, 12, tzinfo=UTC))  # 4 days after delivery
    user = await speaker(h, 1001, lang)
    calls = await h.press(user, OrderCb(action="ret", number=ORDER_1001).pack())
    assert T.t("orders.pick_item", lang, number=ORDER_1001) in said(calls)
    gpu_item = button_data(calls, "ord:item:")
    calls = await h.press(user, gpu_item)
    text = said(calls)
    assert (
        T.t(
            "orders.eligibility.no_reason_return",
            lang,
            delivered=day(lang, 2025, 11, 29),
            until=day(lang, 2025, 12, 13),
            days=14,
            refund_days=7,
        )
        in text
    )
    assert (
        T.t("orders.eligibility.doa_replacement", lang, until=day(lang, 2025, 12, 29), days=30)
        in text
    )
    assert (
        len(button_datas(calls, "ord:retok:")) == 1 and len(button_datas(calls, "ord:retdoa:")) == 1
    )
    calls = await h.press(user, button_data(calls, "ord:retok:"))
    returns = await returns_of(crm_run, 1001, ORDER_1001)
    assert len(returns) == 1 and returns[0].status == "requested" and returns[0].quantity == 1
    assert T.t(
        "orders.return_requested",
        lang,
        id=returns[0].id,
        number=ORDER_1001,
        quantity=1,
        refund_days=7,
    ) in said(calls)
    calls = await h.press(user, OrderCb(action="show", number=ORDER_1001).pack())
    assert T.t("orders.return_status.requested", lang) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_after_the_windows_a_return_is_refused_with_the_policy_and_a_fault_report_offered(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    text = {"zh": f"我要退货 {ORDER_1001}", "en": f"I want to return {ORDER_1001}"}
    calls = await h.send(user, text[lang])
    calls += await h.press(user, button_data(calls, "ord:item:"))
    text_out = said(calls)
    assert (
        T.t(
            "orders.eligibility.window_expired",
            lang,
            delivered=day(lang, 2025, 11, 29),
            until=day(lang, 2025, 12, 13),
            days=14,
        )
        in text_out
    )
    assert (
        T.t("orders.eligibility.doa_window_expired", lang, until=day(lang, 2025, 12, 29), days=30)
        in text_out
    )
    assert button_datas(calls, "ord:retok:") == [] and button_datas(calls, "ord:retdoa:") == []
    assert MenuCb(action="fault").pack() in button_datas(calls, "m:")
    assert await returns_of(crm_run, 1001, ORDER_1001) == []


@pytest.mark.parametrize("lang", LANGS)
async def test_an_order_on_its_way_is_not_returned_but_can_be_refused_on_delivery(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1003, lang)
    calls = await bot_harness.press(user, OrderCb(action="ret", number=SHIPPED_1003).pack())
    assert T.t("orders.eligibility.not_delivered", lang, number=SHIPPED_1003, days=14) in said(
        calls
    )
    assert button_datas(calls, "ord:retok:") == []


@pytest.mark.parametrize("lang", LANGS)
async def test_an_order_not_shipped_yet_can_be_cancelled_after_confirmation(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    async def make_paid(crm: CrmServices) -> None:
        await crm.session.execute(
            update(Order)
            .where(Order.order_number == OLD_ORDER_1001)
            .values(status="paid", delivered_at=None)
        )

    await crm_run(make_paid)
    h = bot_harness
    user = await speaker(h, 1001, lang)
    calls = await h.press(user, OrderCb(action="show", number=OLD_ORDER_1001).pack())
    assert T.t("orders.status.paid", lang) in said(calls)
    calls = await h.press(user, OrderCb(action="cancel", number=OLD_ORDER_1001).pack())
    assert T.t("orders.cancel_confirm", lang, number=OLD_ORDER_1001) in said(calls)
    calls = await h.press(user, OrderCb(action="cancelok", number=OLD_ORDER_1001).pack())
    assert T.t("orders.cancelled", lang, number=OLD_ORDER_1001) in said(calls)

    async def status(crm: CrmServices) -> str:
        customer = await crm.customers.find_by_telegram_id(1001)
        assert customer is not None
        return (await crm.orders.get_order(OLD_ORDER_1001, customer.id)).status

    assert await crm_run(status) == "cancelled"
    calls = await h.press(user, OrderCb(action="cancelok", number=OLD_ORDER_1001).pack())
    assert T.t("orders.cannot_cancel", lang, number=OLD_ORDER_1001) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_prospect_without_orders_is_pointed_to_linking(
    bot_harness: BotHarness, lang: str
) -> None:
    calls = await bot_harness.send(bot_harness.user(883_001, lang), "/orders")
    assert T.t("orders.none", lang, hint=T.t("link.hint", lang)) in said(calls)

"""Accessory purchases through the real dispatcher, in zh and en, on SQLite and PostgreSQL.

"A PSU for my graphics card, budget 500" is a power supply for the customer's graphics card
(not a graphics card under 500): the owned GPU for a linked customer, the named model for a
prospect. Every item the bot lists is re-checked here with the catalog's compatibility check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from bot.callbacks import AccessoryCb
from bot.i18n import Translator
from crm_core.catalog.schemas import ProductDTO
from crm_core.orders.models import Order, OrderItem, OrderItemSerial
from crm_core.services import CrmServices
from tests.bot.conftest import LANGS, button_datas, said
from tests.bot.harness import BotHarness
from tests.bot.test_flow_products import leads_of

T = Translator()
PROSPECT = 990_001  # a Telegram user the CRM has never seen: a prospect, never linked
LINKED_GPU_OWNER = 1001  # demo customer who bought an MSI RTX 4070 VENTUS 2X
OWNED_GPU = "GPU-MSI-4070-VENTUS2X"


def listed(calls: list[Any]) -> list[str]:
    """The SKUs of the products the reply lists (their details buttons), in order."""
    return [d.removeprefix("prd:info:") for d in button_datas(calls, "prd:info:")]


async def assert_all_fit(
    crm_run: Any, device_sku: str, skus: list[str], budget: Decimal | None
) -> None:
    """Each listed item passes the catalog's compatibility check with the device, in budget."""

    async def check(crm: CrmServices) -> None:
        for sku in skus:
            verdict = await crm.compatibility.check(device_sku, sku)
            assert verdict.ok and verdict.rules, (device_sku, sku, verdict)
            if budget is not None:
                assert (await crm.catalog.get(sku)).price <= budget

    await crm_run(check)


async def product(crm_run: Any, sku: str) -> ProductDTO:
    async def get(crm: CrmServices) -> ProductDTO:
        return await crm.catalog.get(sku)

    return await crm_run(get)


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("zh", "给我的显卡配个电源，预算500"),
        ("en", "a PSU for my graphics card, budget 500"),
    ],
)
async def test_linked_customer_asks_for_a_psu_for_my_graphics_card_and_gets_psus_for_the_owned_gpu(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str, message: str
) -> None:
    h = bot_harness
    user = await speaker(h, LINKED_GPU_OWNER, lang)
    calls = await h.send(user, message)
    text = said(calls)
    gpu = await product(crm_run, OWNED_GPU)
    budget = Decimal(500)

    async def expected(crm: CrmServices) -> Any:
        return await crm.accessories.match(gpu, "psu", budget=budget, limit=5)

    match = await crm_run(expected)
    money = T.t("fmt.money", lang, amount="500.00", currency="CNY")
    # Never "no graphics card within 500": the accessory is the category asked for.
    wrong = T.t(
        "sales.nothing_in_budget",
        lang,
        what=T.t("category.gpu", lang),
        budget=money,
        name="\0",
        price="\0",
    ).split("\0")[0]
    assert wrong not in text
    assert gpu.name(lang) in text
    skus = listed(calls)
    assert skus, text
    if match.suggestions:
        assert (
            T.t(
                "sales.acc_header_budget",
                lang,
                accessory=T.t("category.psu", lang),
                device=gpu.name(lang),
                budget=money,
            )
            in text
        )
        assert skus == [s.product.sku for s in match.suggestions]
        await assert_all_fit(crm_run, OWNED_GPU, skus, budget)
        for s in match.suggestions:
            assert s.reason(lang) in text  # why it fits, in the customer's language
    else:
        assert match.nearest is not None and skus == [match.nearest.product.sku]
        await assert_all_fit(crm_run, OWNED_GPU, skus, None)
    assert button_datas(calls, "acc:sales:")


@pytest.mark.parametrize(
    ("lang", "message", "budget"),
    [
        ("zh", "想给我的RTX 4070买个电源，800以内", Decimal(800)),
        ("en", "looking for a power supply for my rtx 4070 under 800", Decimal(800)),
    ],
)
async def test_a_prospect_naming_a_model_gets_compatible_psus_within_budget_with_reasons(
    bot_harness: BotHarness, crm_run: Any, lang: str, message: str, budget: Decimal
) -> None:
    h = bot_harness
    user = h.user(PROSPECT, lang)
    calls = await h.send(user, message)
    text = said(calls)
    skus = listed(calls)
    assert skus, text

    async def device_in_reply(crm: CrmServices) -> ProductDTO:
        gpus = await crm.catalog.search("RTX 4070", category="gpu", limit=50)
        named = [g for g in gpus if g.name(lang) in text]
        assert named, text
        return named[0]

    gpu = await crm_run(device_in_reply)
    assert "4070" in gpu.name_en
    await assert_all_fit(crm_run, gpu.sku, skus, budget)
    assert "✓" in text
    assert T.t("category.psu", lang) in text
    # Other RTX 4070 models are one tap away.
    assert T.t("sales.acc_other_models", lang) in text
    other = button_datas(calls, "acc:dev:")
    assert other
    # A prospect has nothing in the CRM yet: no lead until they ask sales.
    before = await leads_of(crm_run, PROSPECT)
    calls = await h.press(user, button_datas(calls, "acc:sales:")[0])
    leads = await leads_of(crm_run, PROSPECT)
    assert len(leads) == len(before) + 1
    assert leads[0].products_of_interest == ["psu", gpu.sku]
    assert leads[0].budget == budget
    assert T.t("handoff.customer_queued", lang) in said(calls)
    # Picking another model re-checks for that model.
    calls = await h.press(user, other[0])
    chosen = AccessoryCb.unpack(other[0])

    async def sku_of(crm: CrmServices) -> str:
        return (await crm.catalog.get_by_id(chosen.device)).sku

    await assert_all_fit(crm_run, await crm_run(sku_of), listed(calls), budget)


@pytest.mark.parametrize(
    ("lang", "message", "model"),
    [("zh", "想给我的CPU配个散热器", "7800X3D"), ("en", "need a cooler for my cpu", "7800X3D")],
)
async def test_a_prospect_without_a_model_is_asked_for_it_then_gets_coolers_for_that_cpu(
    bot_harness: BotHarness, crm_run: Any, lang: str, message: str, model: str
) -> None:
    h = bot_harness
    user = h.user(PROSPECT + 1, lang)
    calls = await h.send(user, message)
    asked = T.t(
        "sales.acc_ask_device",
        lang,
        device=T.t("category.cpu", lang),
        accessory=T.t("category.cooler", lang),
        example="\0",
    ).split("\0")[0]
    assert asked in said(calls)
    calls = await h.send(user, model)
    text = said(calls)
    cpu = await product(crm_run, "CPU-AMD-R7-7800X3D")
    assert cpu.name(lang) in text
    skus = listed(calls)
    assert skus
    await assert_all_fit(crm_run, cpu.sku, skus, None)
    assert "AM5" in text


@pytest.mark.parametrize(
    ("lang", "message"),
    [("zh", "B650主板配什么内存"), ("en", "RAM for my B650 board")],
)
async def test_ram_for_a_named_board_is_of_the_boards_memory_type(
    bot_harness: BotHarness, crm_run: Any, lang: str, message: str
) -> None:
    h = bot_harness
    user = h.user(PROSPECT + 2, lang)
    calls = await h.send(user, message)
    text = said(calls)
    skus = listed(calls)
    assert skus, text
    board = await product(crm_run, "MB-MSI-B650-TOMAHAWK")
    assert board.name(lang) in text
    await assert_all_fit(crm_run, board.sku, skus, None)
    for sku in skus:
        assert (await product(crm_run, sku)).specs["type"] == "DDR5"


async def give_gpu(crm_run: Any, sku: str, order_number: str, serial: str) -> ProductDTO:
    """Demo customer 1001 also bought this GPU (a delivered order with a serial)."""

    async def add(crm: CrmServices) -> ProductDTO:
        customer = await crm.customers.find_by_telegram_id(LINKED_GPU_OWNER)
        assert customer is not None
        gpu = await crm.catalog.get(sku)
        when = datetime(2026, 5, 1, tzinfo=UTC)
        order = Order(
            order_number=order_number,
            customer_id=customer.id,
            status="delivered",
            placed_at=when,
            delivered_at=when,
            total=gpu.price,
        )
        crm.session.add(order)
        await crm.session.flush()
        item = OrderItem(order_id=order.id, product_id=gpu.id, quantity=1, unit_price=gpu.price)
        crm.session.add(item)
        await crm.session.flush()
        crm.session.add(OrderItemSerial(order_item_id=item.id, serial_number=serial))
        return gpu

    return await crm_run(add)


@pytest.mark.parametrize(
    ("lang", "message"),
    [("zh", "要给我的4090配个电源"), ("en", "want to buy a psu for my 4090")],
)
async def test_a_linked_customer_naming_a_model_gets_psus_for_the_unit_they_own(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str, message: str
) -> None:
    h = bot_harness
    owned = await give_gpu(crm_run, "GPU-ASUS-ROG-4090", "SO-99990002", "SNACC4090X02")
    other = await product(crm_run, "GPU-MSI-4090-SUPRIMX")
    assert other.price < owned.price  # a prospect naming "4090" would get this one first
    user = await speaker(h, LINKED_GPU_OWNER, lang)
    calls = await h.send(user, message)
    head = said(calls).split("\n")[0]
    assert owned.name(lang) in head and other.name(lang) not in head
    await assert_all_fit(crm_run, owned.sku, listed(calls), None)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_customer_with_two_gpus_chooses_which_one_then_gets_psus_for_it(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness

    gpu5090 = await give_gpu(crm_run, "GPU-ZOTAC-5090-SOLID", "SO-99990001", "SNACC5090X01")
    user = await speaker(h, LINKED_GPU_OWNER, lang)
    message = {"zh": "想给显卡买个电源", "en": "i want to buy a psu for my graphics card"}
    calls = await h.send(user, message[lang])
    assert T.t("sales.acc_choose_device", lang, device=T.t("category.gpu", lang)) in said(calls)
    choices = button_datas(calls, "acc:dev:")
    assert len(choices) == 2
    pick = next(c for c in choices if AccessoryCb.unpack(c).device == gpu5090.id)
    calls = await h.press(user, pick)
    text = said(calls)
    assert gpu5090.name(lang) in text
    skus = listed(calls)
    assert skus
    await assert_all_fit(crm_run, gpu5090.sku, skus, None)
    # 575 W card: every PSU listed is at least 1100 W with a native 12V-2x6.
    for sku in skus:
        specs = (await product(crm_run, sku)).specs
        assert specs["wattage_w"] >= 1100 and specs["connectors"]["12V-2x6"] >= 1


@pytest.mark.parametrize(
    ("lang", "message"),
    [("zh", "给我的4090配个电源，预算300"), ("en", "need a psu for my rtx 4090, budget 300")],
)
async def test_nothing_compatible_within_budget_gets_the_nearest_option_and_a_person(
    bot_harness: BotHarness, crm_run: Any, lang: str, message: str
) -> None:
    h = bot_harness
    user = h.user(PROSPECT + 3, lang)
    calls = await h.send(user, message)
    text = said(calls)
    skus = listed(calls)
    assert len(skus) == 1, text
    assert T.t("sales.acc_offer_person", lang) in text
    assert (await product(crm_run, skus[0])).price > Decimal(300)
    assert button_datas(calls, "acc:sales:")
    head = text.split("\n")[0]
    assert T.t("category.psu", lang) in head


@pytest.mark.parametrize("lang", LANGS)
async def test_an_unknown_model_is_said_honestly_and_the_next_message_names_it(
    bot_harness: BotHarness, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = h.user(PROSPECT + 4, lang)
    message = {"zh": "给我的RTX 9999配个电源", "en": "a psu for my RTX 9999 please"}
    calls = await h.send(user, message[lang])
    text = said(calls)
    assert "9999" in text and listed(calls) == []
    assert button_datas(calls, "hum:")
    calls = await h.send(user, "RTX 4070")
    assert listed(calls)


@pytest.mark.parametrize(
    ("lang", "message"),
    [("zh", "给我的笔记本配个键盘，500以内"), ("en", "a keyboard for my laptop, under 500")],
)
async def test_an_accessory_without_a_compatibility_rule_gets_plain_suggestions_of_its_category(
    bot_harness: BotHarness, crm_run: Any, lang: str, message: str
) -> None:
    h = bot_harness
    user = h.user(PROSPECT + 5, lang)
    calls = await h.send(user, message)
    text = said(calls)
    money = T.t("fmt.money", lang, amount="500.00", currency="CNY")
    header = T.t(
        "sales.suggestions_budget", lang, what=T.t("category.keyboard", lang), budget=money
    )
    assert header in text, text
    for sku in listed(calls):
        item = await product(crm_run, sku)
        assert item.category == "keyboard" and item.price <= Decimal(500)

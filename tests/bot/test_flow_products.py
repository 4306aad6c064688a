"""Product questions and purchase inquiries, in zh and en, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.callbacks import CategoryCb, HumanCb, ProductCb
from bot.i18n import Translator
from bot.routers.sales import parse_budget
from crm_core.catalog.schemas import ProductDTO
from crm_core.leads.schemas import LeadDTO
from crm_core.services import CrmServices
from knowledge_base.answer import Answer
from tests.bot.conftest import LANGS, button_data, button_datas, links, said
from tests.bot.harness import BotHarness

T = Translator()
PSU_QUESTION = {
    "zh": "RTX 4070 需要多大功率的电源",
    "en": "which power supply do I need for RTX 4070",
}


class NoAnswerKb:
    """Knowledge-base double: a passage, but never a confident one."""

    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        return Answer(
            "INVENTED-PASSAGE", "x.en", "INVENTED-TITLE", "https://x.example", lang, 0.1, False
        )


async def leads_of(crm_run: Any, telegram_id: int) -> list[LeadDTO]:
    async def get(crm: CrmServices) -> list[LeadDTO]:
        customer = await crm.customers.find_by_telegram_id(telegram_id)
        assert customer is not None
        return await crm.leads.list_leads(customer_id=customer.id)

    return list(await crm_run(get))


# -- product questions ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
async def test_a_gpu_question_gets_the_kb_answer_and_psus_and_cases_that_fit(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    calls = await h.send(user, PSU_QUESTION[lang])
    text = said(calls)

    async def expected(crm: CrmServices) -> tuple[ProductDTO, set[str], set[str]]:
        gpu = (await crm.catalog.search("RTX 4070", limit=5))[0]
        psus = {p.product.sku for p in await crm.compatibility.compatible(gpu.sku, "psu", 3)}
        cases = {p.product.sku for p in await crm.compatibility.compatible(gpu.sku, "case", 3)}
        return gpu, psus, cases

    gpu, psus, cases = await crm_run(expected)
    assert gpu.name(lang) in text
    assert T.t("product.accessories_header", lang, category=T.t("category.psu", lang)) in text
    assert T.t("product.accessories_header", lang, category=T.t("category.case", lang)) in text
    shown = {d.removeprefix("prd:info:") for d in button_datas(calls, "prd:info:")}
    assert psus | cases <= shown
    # The PSU section comes first (that is what was asked about).
    assert text.index(T.t("category.psu", lang)) < text.index(
        T.t("category.case", lang) + "：" if lang == "zh" else T.t("category.case", lang) + ":"
    )
    answer = h.deps.kb.answer(PSU_QUESTION[lang], lang, "psu")
    if answer.confident:
        assert answer.title and answer.title in text and answer.url and answer.url in links(calls)
    else:
        assert T.t("product.no_article", lang) in text and "📖" not in text
    assert HumanCb(reason="sales").pack() in button_datas(calls, "hum:")


@pytest.mark.parametrize("lang", LANGS)
async def test_show_details_then_ask_sales_records_a_lead_and_hands_off(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1002, lang)
    calls = await h.press(user, ProductCb(action="info", sku="PSU-MSI-A650BN").pack())
    text = said(calls)
    assert T.t("product.specs_header", lang) in text
    assert T.t("category.psu", lang) in text
    calls = await h.press(user, button_data(calls, "prd:compat:"))
    assert T.t("product.accessories_intro", lang) in said(calls)
    before = await leads_of(crm_run, 1002)
    calls = await h.press(user, ProductCb(action="sales", sku="PSU-MSI-A650BN").pack())
    leads = await leads_of(crm_run, 1002)
    assert len(leads) == len(before) + 1
    assert leads[0].products_of_interest == ["PSU-MSI-A650BN"] and leads[0].source == "bot"
    assert T.t("handoff.customer_queued", lang) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_product_question_without_a_confident_answer_is_answered_honestly(
    make_harness: Any, speaker: Any, lang: str
) -> None:
    h = make_harness(kb=NoAnswerKb())
    user = await speaker(h, 1001, lang)
    await h.send(user, "/product")
    question = {"zh": "怎么开启 XMP", "en": "how do I enable XMP"}
    calls = await h.send(user, question[lang])
    text = said(calls)
    assert text == T.t("product.no_answer", lang)
    assert "INVENTED" not in text and "x.example" not in text
    assert HumanCb(reason="low_confidence").pack() in button_datas(calls, "hum:")


# -- purchase inquiries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("I want a graphics card under 5000", Decimal("5000")),
        ("budget: 8k for a new PC", Decimal("8000")),
        ("我想买个显示器预算2000", Decimal("2000")),
        ("显卡 3000元以内", Decimal("3000")),
        ("预算5千", Decimal("5000")),
        ("something around ¥3,000", Decimal("3000")),
        ("a PSU for my RTX 4070", None),
        ("I want to buy an RTX 5070", None),
    ],
)
def test_budgets_are_read_only_next_to_a_budget_word_or_currency(
    text: str, budget: Decimal | None
) -> None:
    assert parse_budget(text) == budget


@pytest.mark.parametrize("lang", LANGS)
async def test_purchase_inquiry_suggests_products_within_budget_and_records_a_lead(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    text = {"zh": "我想买一张显卡，预算5000", "en": "I want to buy a graphics card under 5000"}
    before = await leads_of(crm_run, 1001)
    calls = await h.send(user, text[lang])
    budget = T.t("fmt.money", lang, amount="5,000.00", currency="CNY")
    assert T.t(
        "sales.suggestions_budget", lang, what=T.t("category.gpu", lang), budget=budget
    ) in said(calls)
    skus = [d.removeprefix("prd:info:") for d in button_datas(calls, "prd:info:")]
    assert 1 <= len(skus) <= 5

    async def prices(crm: CrmServices) -> list[tuple[str, Decimal]]:
        return [(p.category, p.price) for p in [await crm.catalog.get(s) for s in skus]]

    assert all(cat == "gpu" and price <= 5000 for cat, price in await crm_run(prices))
    leads = await leads_of(crm_run, 1001)
    assert len(leads) == len(before) + 1
    lead = leads[0]
    assert lead.source == "bot" and lead.budget == Decimal("5000")
    assert lead.products_of_interest == ["gpu"] and lead.notes == text[lang]
    assert T.t("sales.lead_recorded", lang, lead=lead.id) in said(calls)
    calls = await h.press(user, HumanCb(reason="sales").pack())
    assert T.t("handoff.customer_queued", lang) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_purchase_inquiry_without_a_category_asks_for_one(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1002, lang)
    calls = await h.send(user, "/buy")
    assert T.t("sales.ask_category", lang) in said(calls)
    assert CategoryCb(category="monitor").pack() in button_datas(calls, "cat:")
    calls = await h.press(user, CategoryCb(category="monitor").pack())
    assert T.t("sales.suggestions", lang, what=T.t("category.monitor", lang)) in said(calls)
    assert (await leads_of(crm_run, 1002))[0].products_of_interest == ["monitor"]


@pytest.mark.parametrize("lang", LANGS)
async def test_nothing_within_a_tiny_budget_names_the_most_affordable_one(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    text = {"zh": "我想买一张显卡，预算100元", "en": "I want to buy a graphics card under 100"}
    calls = await bot_harness.send(user, text[lang])
    prefix = T.t("sales.nothing_in_budget", lang, what="", budget="", name="", price="")[:2]
    assert prefix in said(calls)
    assert button_datas(calls, "prd:info:") == []


@pytest.mark.parametrize("lang", LANGS)
async def test_the_same_purchase_inquiry_twice_in_a_day_records_one_lead(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    text = {"zh": "我想买一张显卡，预算5000", "en": "I want to buy a graphics card under 5000"}
    before = len(await leads_of(crm_run, 1001))
    first = await bot_harness.send(user, text[lang])
    second = await bot_harness.send(user, text[lang])
    leads = await leads_of(crm_run, 1001)
    assert len(leads) == before + 1
    recorded = T.t("sales.lead_recorded", lang, lead=leads[0].id)
    assert recorded in said(first) and recorded in said(second)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_different_request_while_a_product_question_is_awaited_is_routed(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    await bot_harness.send(user, "/product")
    text = {"zh": "我的订单到哪了", "en": "where is my order"}
    calls = await bot_harness.send(user, text[lang])
    assert T.t("orders.pick", lang) in said(calls)

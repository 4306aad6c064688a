"""Answer first, and policy questions are questions (issue 8) — through the real dispatcher, in
zh and en, on SQLite and PostgreSQL, for a never-linked Telegram user and a linked customer.

Unlinked: a Telegram id the CRM has never seen (the bot makes it a prospect). Linked: demo
customer 1001 张伟 (an RTX 4070 under warranty SNCUKOIJOJ6K, an SSD, a mouse; delivered order
SO-29380288). Messages are written the way customers write, not copied from the articles.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.callbacks import DeviceCb, FaultCb, MenuCb, OrderCb
from bot.first_answer import article_urls, cited_articles
from bot.i18n import Translator
from crm_core.customers.schemas import CustomerCreate
from crm_core.services import CrmServices
from crm_core.tickets.schemas import TicketDTO
from knowledge_base.answer import Answer
from nlu.schemas import IntentScore, ParsedEntity, ParseResult
from tests.bot.conftest import LANGS, PROJECT_ROOT, button_datas, said
from tests.bot.harness import BotHarness

T = Translator()
URLS = article_urls(PROJECT_ROOT / "knowledge_base" / "articles")
GPU_1001 = "SNCUKOIJOJ6K"
ORDER_1001 = "SO-29380288"
ORDERS_1001 = {"SO-29380288", "SO-48729239"}
LINK = MenuCb(action="link").pack()


class ArticleKb:
    """Knowledge-base double: a confident answer from one article for every query."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.asked: list[tuple[str, str | None, str | None]] = []

    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        self.asked.append((query, lang, category))
        return Answer(
            passage=f"PASSAGE-{self.slug}-{lang}",
            article_id=f"{self.slug}.{lang}",
            title=f"TITLE-{self.slug}",
            url=f"https://kb.example/{self.slug}?lang={lang}",
            language=lang,
            confidence=0.9,
            confident=True,
        )


class IntentNlu:
    """NLU double: one intent, confident, no entities (to pin down routing alone)."""

    def __init__(self, intent: str) -> None:
        self.intent = intent

    async def parse(self, text: str) -> ParseResult:
        return ParseResult(
            text=text,
            intent=self.intent,
            confidence=0.95,
            ranking=[IntentScore(name=self.intent, confidence=0.95)],
            backend="test",
        )


async def tickets_of(crm_run: Any, telegram_id: int) -> list[TicketDTO]:
    async def get(crm: CrmServices) -> list[TicketDTO]:
        customer = await crm.customers.find_by_telegram_id(telegram_id)
        assert customer is not None
        return await crm.tickets.list_for_customer(customer.id)

    return list(await crm_run(get))


def messages(calls: list[Any]) -> list[Any]:
    return [c for c in calls if c.method == "sendMessage"]


# -- answer first: faults ---------------------------------------------------------------------

FAULT = {
    "zh": "显卡一打游戏屏幕上就有彩色条纹和雪花点",
    "en": "whenever i play games my graphics card puts weird coloured lines all over the screen",
}


@pytest.mark.parametrize("lang", LANGS)
async def test_unlinked_customer_describing_a_fault_gets_the_fix_first_and_repair_as_an_offer(
    bot_harness: BotHarness, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = h.user(883_001, lang)
    calls = await h.send(user, FAULT[lang])
    text = said(calls)
    # One reply: the article that fixes it, with its source; no serial number asked for.
    assert len(messages(calls)) == 1
    assert "gpu-artifacts" in cited_articles(calls, URLS)
    assert T.t("fault.ask_serial", lang) not in text
    assert T.t("fault.ask_device", lang) not in text
    assert button_datas(calls, "flt:") == [
        FaultCb(action="solved").pack(),
        FaultCb(action="unsolved").pack(),
    ]
    # "Not solved? Open a repair request" proceeds as always: a ticket for the technicians
    # (no devices here, so no device question either).
    calls = await h.press(user, FaultCb(action="unsolved").pack())
    ticket = (await tickets_of(crm_run, 883_001))[0]
    assert ticket.kind == "fault" and ticket.symptom == FAULT[lang]
    assert T.t("fault.ticket_fault", lang, ticket=ticket.ticket_number) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_linked_customer_with_one_gpu_sees_device_warranty_and_fix_in_the_same_reply(
    make_harness: Any, speaker: Any, lang: str
) -> None:
    kb = ArticleKb("gpu-artifacts")
    h = make_harness(kb=kb)
    user = await speaker(h, 1001, lang)
    calls = await h.send(user, FAULT[lang])
    assert len(messages(calls)) == 1
    text = said(calls)
    assert "RTX 4070" in text
    end = T.t("fmt.date", lang, y=2029, m=11, d=29)
    assert T.t("warranty.status.active", lang, end=end) in text
    assert f"PASSAGE-gpu-artifacts-{lang}" in text
    assert text.index("RTX 4070") < text.index("PASSAGE")
    assert kb.asked == [(FAULT[lang], lang, "gpu")]


@pytest.mark.parametrize("lang", LANGS)
async def test_linked_customer_not_saying_which_device_gets_the_fix_then_picks_it_for_the_rma(
    make_harness: Any, speaker: Any, crm_run: Any, lang: str
) -> None:
    # "it" — no category named: the answer still comes first; which device is asked only when
    # the customer wants a repair.
    h = make_harness(kb=ArticleKb("random-shutdowns"), nlu=IntentNlu("report_fault"))
    user = await speaker(h, 1001, lang)
    symptom = {"zh": "玩一会儿就自己关机了", "en": "it keeps switching itself off after a while"}
    calls = await h.send(user, symptom[lang])
    text = said(calls)
    assert f"PASSAGE-random-shutdowns-{lang}" in text
    assert T.t("fault.ask_device", lang) not in text
    calls = await h.press(user, FaultCb(action="unsolved").pack())
    assert T.t("fault.ask_device_for_ticket", lang) in said(calls)
    assert DeviceCb(serial=GPU_1001).pack() in button_datas(calls, "dev:")
    calls = await h.press(user, DeviceCb(serial=GPU_1001).pack())
    ticket = (await tickets_of(crm_run, 1001))[0]
    assert ticket.kind == "rma" and ticket.serial_number == GPU_1001
    assert ticket.symptom == symptom[lang]
    assert T.t("fault.ticket_rma", lang, ticket=ticket.ticket_number, days=3) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_unlinked_customer_asking_how_to_do_something_gets_the_article_first(
    bot_harness: BotHarness, lang: str
) -> None:
    h = bot_harness
    user = h.user(883_002, lang)
    question = {
        "zh": "主板的BIOS要怎么升级",
        "en": "how do i flash a newer bios on my motherboard",
    }
    calls = await h.send(user, question[lang])
    assert len(messages(calls)) == 1
    assert cited_articles(calls, URLS)[:1] in (["bios-update"], ["bios-flashback"])


# -- policy questions are questions -------------------------------------------------------------

RETURN_POLICY = {
    "zh": "你们这边退货是怎么规定的，几天内能退",
    "en": "whats the deal with returns, how long do i have to send something back",
}


@pytest.mark.parametrize("lang", LANGS)
async def test_unlinked_customer_asking_the_return_policy_gets_it_with_the_crm_numbers(
    bot_harness: BotHarness, lang: str
) -> None:
    h = bot_harness
    user = h.user(883_003, lang)
    calls = await h.send(user, RETURN_POLICY[lang])
    text = said(calls)
    assert len(messages(calls)) == 1
    assert "returns-refunds" in cited_articles(calls, URLS)
    assert T.t("policy.facts.returns", lang, days=14, refund_days=7, doa_days=30) in text
    assert T.t("orders.none", lang, hint=T.t("link.hint", lang)) not in text
    # Nothing to return here yet: the way to link the account is the action offered.
    assert button_datas(calls, "m:") == [LINK]


@pytest.mark.parametrize("lang", LANGS)
async def test_the_policy_answer_quotes_the_crm_settings_not_the_article_wording(
    make_harness: Any, lang: str
) -> None:
    h = make_harness(kb=ArticleKb("returns-refunds"), nlu=IntentNlu("policy_question"))
    h.deps.settings.crm.return_window_days = 10
    h.deps.settings.crm.doa_window_days = 21
    calls = await h.send(h.user(883_004, lang), RETURN_POLICY[lang])
    assert T.t("policy.facts.returns", lang, days=10, refund_days=7, doa_days=21) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_linked_customer_gets_the_return_policy_with_a_return_button_that_lists_orders(
    make_harness: Any, speaker: Any, lang: str
) -> None:
    h = make_harness(kb=ArticleKb("returns-refunds"), nlu=IntentNlu("policy_question"))
    user = await speaker(h, 1001, lang)
    calls = await h.send(user, RETURN_POLICY[lang])
    assert f"PASSAGE-returns-refunds-{lang}" in said(calls)
    assert button_datas(calls, "m:") == [MenuCb(action="returns").pack()]
    calls = await h.press(user, MenuCb(action="returns").pack())
    assert T.t("orders.pick_for_return", lang) in said(calls)
    assert {OrderCb.unpack(d).number for d in button_datas(calls, "ord:")} == ORDERS_1001


@pytest.mark.parametrize("lang", LANGS)
async def test_return_my_order_still_starts_the_return_for_a_linked_customer(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    mine = {"zh": "我要退货", "en": f"I want to return my order {ORDER_1001}"}
    calls = await h.send(user, mine[lang])
    text = said(calls)
    if lang == "zh":  # no order named: the terms (CRM numbers), then the orders to pick from
        facts = T.t("policy.facts.returns", lang, days=14, refund_days=7, doa_days=30)
        assert text.index(facts) < text.index(T.t("orders.pick_for_return", lang))
        assert {OrderCb.unpack(d).number for d in button_datas(calls, "ord:")} == ORDERS_1001
    else:  # that order's return: the window and the buttons that apply
        assert ORDER_1001 in text
        assert "policy.facts" not in text and "returns-refunds" not in cited_articles(calls, URLS)


@pytest.mark.parametrize("lang", LANGS)
async def test_unlinked_customer_wanting_to_return_gets_the_policy_and_the_way_to_link(
    bot_harness: BotHarness, lang: str
) -> None:
    h = bot_harness
    calls = await h.send(h.user(883_005, lang), {"zh": "我要退货", "en": "i want a refund"}[lang])
    text = said(calls)
    assert T.t("orders.none", lang, hint=T.t("link.hint", lang)) not in text
    assert "returns-refunds" in cited_articles(calls, URLS)
    assert LINK in button_datas(calls, "m:")


POLICY_QUESTIONS = [
    ("en", "how many days does delivery usually take", "shipping-delivery"),
    ("zh", "下单后多久发货", "shipping-delivery"),
    ("en", "roughly what do you charge to repair something thats out of warranty", "paid-repair"),
    ("zh", "过保了维修怎么收费", "paid-repair"),
    ("en", "can my company get a proper VAT invoice", "invoices"),
    ("zh", "公司采购可以开增值税专票吗", "invoices"),
]


@pytest.mark.parametrize(("lang", "question", "article"), POLICY_QUESTIONS)
async def test_unlinked_customer_general_policy_question_is_answered_not_sent_to_the_account(
    bot_harness: BotHarness, lang: str, question: str, article: str
) -> None:
    h = bot_harness
    calls = await h.send(h.user(883_010, lang), question)
    text = said(calls)
    assert article in cited_articles(calls, URLS)
    for none in ("orders.none", "warranty.none"):
        assert T.t(none, lang, hint=T.t("link.hint", lang)) not in text
    assert button_datas(calls, "m:") == [LINK]


@pytest.mark.parametrize("lang", LANGS)
async def test_linked_customer_warranty_terms_question_offers_the_warranty_check(
    make_harness: Any, speaker: Any, lang: str
) -> None:
    h = make_harness(kb=ArticleKb("warranty-policy"), nlu=IntentNlu("policy_question"))
    user = await speaker(h, 1001, lang)
    question = {"zh": "你们的东西一般保修几年", "en": "how long are your products covered for"}
    calls = await h.send(user, question[lang])
    assert f"PASSAGE-warranty-policy-{lang}" in said(calls)
    assert button_datas(calls, "m:") == [MenuCb(action="warranty").pack()]
    calls = await h.press(user, MenuCb(action="warranty").pack())
    assert GPU_1001 in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_linked_customer_without_orders_gets_no_account_button_beside_the_policy(
    make_harness: Any, crm_run: Any, lang: str
) -> None:
    h = make_harness(kb=ArticleKb("returns-refunds"), nlu=IntentNlu("policy_question"))

    async def create(crm: CrmServices) -> None:  # a customer record made by staff, no orders
        await crm.customers.create_customer(
            CustomerCreate(
                name="Li Na", telegram_user_id=883_020, language=lang, lifecycle_stage="new"
            )
        )

    await crm_run(create)
    user = h.user(883_020, lang)
    calls = await h.send(user, RETURN_POLICY[lang])
    assert "PASSAGE-returns-refunds" in said(calls)
    assert button_datas(calls, "m:") == []


class AccessoryQuestionNlu:
    """NLU double: a confident product question with "X for my Y" roles (RAM for my board)."""

    async def parse(self, text: str) -> ParseResult:
        return ParseResult(
            text=text,
            intent="product_question",
            confidence=0.95,
            ranking=[IntentScore(name="product_question", confidence=0.95)],
            entities=[
                ParsedEntity(entity="product_category", value="ram", text="ram", role="accessory"),
                ParsedEntity(
                    entity="product_category", value="motherboard", text="board", role="device"
                ),
            ],
            backend="test",
        )


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("telegram_id", [1001, 883_030], ids=["linked", "unlinked"])
async def test_a_compatibility_question_about_my_device_gets_the_article_before_the_products(
    make_harness: Any, speaker: Any, lang: str, telegram_id: int
) -> None:
    h = make_harness(kb=ArticleKb("ram-compatibility"), nlu=AccessoryQuestionNlu())
    user = await speaker(h, telegram_id, lang)
    question = {"zh": "这条内存我的主板能用吗", "en": "will this ram work with my motherboard"}
    calls = await h.send(user, question[lang])
    sent = messages(calls)
    assert len(sent) >= 2  # the article, then what fits (or how to name the board)
    assert f"PASSAGE-ram-compatibility-{lang}" in sent[0].text
    assert "PASSAGE" not in "".join(c.text for c in sent[1:])

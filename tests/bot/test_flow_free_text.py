"""Free text through the real NLU: routing by intent, honesty when unsure, the interaction log —
in zh and en, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.i18n import Translator
from crm_core.conversations.models import Interaction
from crm_core.services import CrmServices
from knowledge_base.answer import Answer
from nlu.schemas import IntentScore, ParseResult
from tests.bot.conftest import LANGS, button_datas, links, said
from tests.bot.harness import BotHarness

T = Translator()
NONSENSE = {"zh": "火星上天气怎么样", "en": "what's the weather on mars"}


class FixedKb:
    def __init__(self, *, confident: bool) -> None:
        self.confident = confident

    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        return Answer(
            "KB-PASSAGE", "a.en", "KB-TITLE", "https://kb.example/a", lang, 0.9, self.confident
        )


class UnsureNlu:
    """An NLU double that recognises the right intent, but below the confidence threshold."""

    async def parse(self, text: str) -> ParseResult:
        return ParseResult(
            text=text,
            intent="order_status",
            confidence=0.3,
            ranking=[IntentScore(name="order_status", confidence=0.3)],
            backend="test",
        )


async def outbound_of(crm_run: Any, telegram_id: int) -> list[Interaction]:
    async def get(crm: CrmServices) -> list[Interaction]:
        customer = await crm.customers.find_by_telegram_id(telegram_id)
        assert customer is not None
        rows = await crm.session.scalars(
            select(Interaction)
            .where(Interaction.customer_id == customer.id, Interaction.direction == "outbound")
            .order_by(Interaction.id)
        )
        return list(rows)

    return list(await crm_run(get))


@pytest.mark.parametrize("lang", LANGS)
async def test_greetings_and_thanks_get_a_short_reply(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    hello = {"zh": "你好", "en": "hello"}
    thanks = {"zh": "谢谢", "en": "thanks"}
    assert T.t("nlu.greet", lang) in said(await bot_harness.send(user, hello[lang]))
    assert said(await bot_harness.send(user, thanks[lang])) == T.t("nlu.thanks", lang)


@pytest.mark.parametrize("lang", LANGS)
async def test_out_of_scope_is_answered_honestly_with_a_person_offered(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    calls = await bot_harness.send(user, NONSENSE[lang])
    text = said(calls)
    assert text == T.t("nlu.not_sure", lang)
    assert "📖" not in text and "http" not in text
    assert button_datas(calls, "hum:") == ["hum:low_confidence:"]


@pytest.mark.parametrize("lang", LANGS)
async def test_an_unconfident_kb_passage_is_never_shown(
    make_harness: Any, speaker: Any, lang: str
) -> None:
    h = make_harness(kb=FixedKb(confident=False))
    user = await speaker(h, 1001, lang)
    calls = await h.send(user, NONSENSE[lang])
    assert said(calls) == T.t("nlu.not_sure", lang)
    assert "KB-PASSAGE" not in said(calls) and "KB-TITLE" not in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_an_unsure_intent_is_not_acted_on(make_harness: Any, speaker: Any, lang: str) -> None:
    h = make_harness(nlu=UnsureNlu(), kb=FixedKb(confident=False))
    user = await speaker(h, 1001, lang)
    calls = await h.send(user, "SO-29380288 ???")
    assert said(calls) == T.t("nlu.not_sure", lang)
    assert "SNCUKOIJOJ6K" not in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_out_of_scope_with_a_confident_kb_answer_shows_it_with_its_source(
    make_harness: Any, speaker: Any, lang: str
) -> None:
    h = make_harness(kb=FixedKb(confident=True))
    user = await speaker(h, 1001, lang)
    calls = await h.send(user, NONSENSE[lang])
    text = said(calls)
    assert text.startswith("KB-TITLE") and "KB-PASSAGE" in text
    assert links(calls) == ["https://kb.example/a"]


@pytest.mark.parametrize("lang", LANGS)
async def test_asking_for_a_person_hands_off(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    text = {"zh": "转人工", "en": "I want to talk to a human"}
    calls = await bot_harness.send(user, text[lang])
    assert T.t("handoff.customer_queued", lang) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_the_intent_and_confidence_are_recorded_with_the_reply(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    text = {"zh": "订单 SO-29380288 到哪了", "en": "my order SO-29380288 where is it"}
    await bot_harness.send(user, text[lang])
    reply = (await outbound_of(crm_run, 1001))[-1]
    assert reply.intent == "order_status"
    assert reply.confidence is not None and reply.confidence >= 0.5
    assert "SO-29380288" in reply.text


@pytest.mark.parametrize("lang", LANGS)
async def test_kb_articles_shown_are_recorded_with_the_reply(
    make_harness: Any, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = make_harness(kb=FixedKb(confident=True))
    user = await speaker(h, 1001, lang)
    await h.send(user, NONSENSE[lang])
    reply = (await outbound_of(crm_run, 1001))[-1]
    assert reply.intent == "out_of_scope" and reply.kb_hits == ["a.en"]


@pytest.mark.parametrize("lang", LANGS)
async def test_a_photo_outside_a_flow_starts_a_fault_report_and_keeps_the_photo(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    calls = await h.feed(h.updates.message(user, photo_file_id="broken-fan"))
    assert T.t("fault.ask_device", lang) in said(calls)
    draft = (await h.dispatcher.fsm.get_context(h.bot, 1001, 1001).get_data())["fault"]
    assert draft["photos"] == ["broken-fan"]


@pytest.mark.parametrize("data", ["ord:show", "rate:five:", "dev", "prv:erase:x:y:z", "zzz"])
async def test_malformed_callback_data_is_answered_without_acting(
    bot_harness: BotHarness, speaker: Any, data: str
) -> None:
    user = await speaker(bot_harness, 1001, "en")
    calls = await bot_harness.press(user, data)
    assert [c.method for c in calls] == ["answerCallbackQuery"]

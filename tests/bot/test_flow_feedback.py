"""Complaints and satisfaction ratings, in zh and en, on SQLite and PostgreSQL.

Demo: 1002 James Carter has an open repair ticket TK-33591375; 1001 张伟 has none of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.callbacks import RateCb
from bot.i18n import Translator
from bot.routers.feedback import ask_for_rating
from crm_core.conversations.models import SatisfactionRating
from crm_core.services import CrmServices
from crm_core.tickets.schemas import TicketDTO
from tests.bot.conftest import LANGS, button_data, button_datas, said
from tests.bot.harness import BotHarness

T = Translator()
TICKET_1002 = "TK-33591375"


async def ratings_of(crm_run: Any, telegram_id: int) -> list[SatisfactionRating]:
    async def get(crm: CrmServices) -> list[SatisfactionRating]:
        customer = await crm.customers.find_by_telegram_id(telegram_id)
        assert customer is not None
        rows = await crm.session.scalars(
            select(SatisfactionRating)
            .where(SatisfactionRating.customer_id == customer.id)
            .order_by(SatisfactionRating.id.desc())
        )
        return list(rows)

    return list(await crm_run(get))


async def ticket(crm_run: Any, number: str) -> TicketDTO:
    async def get(crm: CrmServices) -> TicketDTO:
        return await crm.tickets.get(number)

    return await crm_run(get)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_complaint_opens_a_high_priority_ticket_and_hands_off(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    text = {
        "zh": "你们的服务太差了，等了一个星期没人理",
        "en": "your service is terrible, I waited a week for an answer",
    }
    calls = await bot_harness.send(user, text[lang])

    async def newest(crm: CrmServices) -> TicketDTO:
        customer = await crm.customers.find_by_telegram_id(1002)
        assert customer is not None
        return (await crm.tickets.list_for_customer(customer.id))[0]

    complaint = await crm_run(newest)
    assert complaint.kind == "complaint" and complaint.priority == "high"
    assert complaint.symptom == text[lang]
    assert T.t("complaint.registered", lang, ticket=complaint.ticket_number) in said(calls)
    assert T.t("handoff.customer_queued", lang) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_rating_of_a_resolved_ticket_is_stored_with_its_comment(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1002, lang)
    before = len(h.api.calls)
    await ask_for_rating(h.bot, 1002, h.deps.translator, lang, ticket_number=TICKET_1002)
    asked = h.api.calls[before:]
    assert said(asked) == T.t("feedback.ask_ticket", lang, ticket=TICKET_1002)
    assert button_datas(asked, "rate:") == [
        RateCb(score=s, ticket=TICKET_1002).pack() for s in range(1, 6)
    ]
    calls = await h.press(user, RateCb(score=4, ticket=TICKET_1002).pack())
    assert T.t("feedback.ask_comment", lang, score=4) in said(calls)
    calls = await h.send(user, "Quick and friendly, thanks!")
    assert said(calls) == T.t("feedback.thanks", lang)
    rating = (await ratings_of(crm_run, 1002))[0]
    assert rating.score == 4 and rating.comment == "Quick and friendly, thanks!"
    assert rating.ticket_id == (await ticket(crm_run, TICKET_1002)).id


@pytest.mark.parametrize("lang", LANGS)
async def test_a_rating_without_comment_and_one_left_behind_are_both_stored(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1002, lang)
    before = len(await ratings_of(crm_run, 1002))
    calls = await h.press(user, RateCb(score=5, ticket=TICKET_1002).pack())
    calls = await h.press(user, button_data(calls, "ratec:"))
    assert said(calls) == T.t("feedback.thanks", lang)
    newest = (await ratings_of(crm_run, 1002))[0]
    assert newest.score == 5 and newest.comment is None
    # The customer presses a score and then moves on: the score is not lost.
    await h.press(user, RateCb(score=2, ticket=TICKET_1002).pack())
    await h.send(user, "/help")
    ratings = await ratings_of(crm_run, 1002)
    assert len(ratings) == before + 2
    assert ratings[0].score == 2 and ratings[0].comment is None


@pytest.mark.parametrize("lang", LANGS)
async def test_a_conversation_rating_after_an_agent_closed_the_session(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    await h.send(user, "/help")  # opens the conversation

    async def conversation_id(crm: CrmServices) -> int:
        customer = await crm.customers.find_by_telegram_id(1001)
        assert customer is not None
        return (await crm.conversations.for_customer(customer.id))[0].id

    conv = await crm_run(conversation_id)
    await ask_for_rating(h.bot, 1001, h.deps.translator, lang, conversation_id=conv)
    assert RateCb(score=3, conv=conv).pack() in button_datas(h.api.calls[-1:], "rate:")
    await h.press(user, RateCb(score=3, conv=conv).pack())
    await h.send(user, "ok")
    rating = (await ratings_of(crm_run, 1001))[0]
    assert rating.score == 3 and rating.conversation_id == conv and rating.comment == "ok"


@pytest.mark.parametrize("lang", LANGS)
async def test_rating_someone_elses_ticket_or_conversation_is_refused(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    other = await speaker(h, 1002, lang)
    await h.send(other, "/help")

    async def conversation_of_1002(crm: CrmServices) -> int:
        customer = await crm.customers.find_by_telegram_id(1002)
        assert customer is not None
        return (await crm.conversations.for_customer(customer.id))[0].id

    conv = await crm_run(conversation_of_1002)
    user = await speaker(h, 1001, lang)
    before = len(await ratings_of(crm_run, 1001))
    for forged in (
        RateCb(score=1, ticket=TICKET_1002).pack(),
        RateCb(score=1, conv=conv).pack(),
        RateCb(score=1, ticket="TK-00000000").pack(),
    ):
        calls = await h.press(user, forged)
        assert said(calls) == T.t("feedback.not_yours", lang)
        assert TICKET_1002 not in said(calls)
    calls = await h.send(user, "this should not become a rating comment")
    assert len(await ratings_of(crm_run, 1001)) == before

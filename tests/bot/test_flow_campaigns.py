"""Campaign pushes in the real bot: one-tap unsubscribe, STOP / 退订, bot-action buttons
(compatible accessories, extended warranty → lead), clicks recorded for the report; zh and en,
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.i18n import Translator
from crm_core.campaigns.models import CampaignDelivery, CampaignEvent
from crm_core.campaigns.repository import insert_deliveries
from crm_core.leads.models import Lead
from crm_core.services import CrmServices
from tests.bot.conftest import LANGS, said
from tests.bot.harness import BotHarness

T = Translator()


async def _customer_id(crm_run: Any, telegram_id: int) -> int:
    async def get(crm: CrmServices) -> int:
        found = await crm.customers.find_by_telegram_id(telegram_id)
        assert found is not None
        return found.id

    return int(await crm_run(get))


async def _push(crm_run: Any, telegram_id: int, key: str) -> int:
    """A sent marketing push to the demo customer with this Telegram id; its delivery id."""

    async def add(crm: CrmServices) -> int:
        customer = await crm.customers.find_by_telegram_id(telegram_id)
        assert customer is not None
        now = crm.clock.now()
        await insert_deliveries(
            crm.session,
            [
                {
                    "occurrence_key": key,
                    "rule": "accessory",
                    "customer_id": customer.id,
                    "chat_id": telegram_id,
                    "kind": "marketing",
                    "language": customer.language,
                    "state": "sent",
                    "due_at": now - timedelta(minutes=5),
                    "sending_at": now - timedelta(minutes=5),
                    "sent_at": now - timedelta(minutes=5),
                    "text": "promo",
                }
            ],
        )
        found = await crm.session.scalar(
            select(CampaignDelivery.id).where(CampaignDelivery.occurrence_key == key)
        )
        assert found is not None
        return int(found)

    return int(await crm_run(add))


async def _events(crm_run: Any, delivery_id: int) -> list[tuple[str, str | None]]:
    async def get(crm: CrmServices) -> list[tuple[str, str | None]]:
        rows = await crm.session.scalars(
            select(CampaignEvent)
            .where(CampaignEvent.delivery_id == delivery_id)
            .order_by(CampaignEvent.id)
        )
        return [(e.kind, e.button) for e in rows]

    return list(await crm_run(get))


async def _consent(crm_run: Any, customer_id: int) -> tuple[bool, str | None]:
    async def get(crm: CrmServices) -> tuple[bool, str | None]:
        c = await crm.customers.get_customer(customer_id)
        return c.marketing_consent, c.consent_source

    return await crm_run(get)


@pytest.mark.parametrize("lang", LANGS)
async def test_one_tap_unsubscribe_withdraws_consent_and_is_counted(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    cid = await _customer_id(crm_run, 1001)
    delivery = await _push(crm_run, 1001, f"rule:accessory:test-{lang}")
    calls = await bot_harness.press(user, f"cmp:u:{delivery}")
    assert said(calls) == T.t("privacy.unsubscribed", lang)
    assert await _consent(crm_run, cid) == (False, "telegram:campaign_button")
    assert await _events(crm_run, delivery) == [("unsubscribe", None)]


@pytest.mark.parametrize(("lang", "word"), [("en", "STOP"), ("zh", "退订"), ("en", " stop ")])
async def test_stop_word_withdraws_consent_before_any_nlu(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str, word: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    cid = await _customer_id(crm_run, 1001)
    calls = await bot_harness.send(user, word)
    assert said(calls) == T.t("privacy.unsubscribed", lang)
    assert await _consent(crm_run, cid) == (False, "telegram:stop_word")


async def test_forged_delivery_id_records_nothing_for_someone_elses_push(
    bot_harness: BotHarness, speaker: Any, crm_run: Any
) -> None:
    others = await _push(crm_run, 1002, "rule:accessory:someone-else")
    user = await speaker(bot_harness, 1001, "en")
    await bot_harness.press(user, f"cmp:u:{others}")
    await bot_harness.press(user, f"cmp:a:{others}:compatible:psu")
    assert await _events(crm_run, others) == []
    # James (1002) keeps his consent: only the one who pressed unsubscribed.
    james = await _customer_id(crm_run, 1002)
    assert (await _consent(crm_run, james))[0] is True


@pytest.mark.parametrize("lang", LANGS)
async def test_compatible_button_shows_what_fits_the_customers_own_gpu(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    delivery = await _push(crm_run, 1001, f"rule:accessory:compat-{lang}")
    calls = await bot_harness.press(user, f"cmp:a:{delivery}:compatible:psu")
    text = said(calls)
    header = T.t("campaigns.compatible_header", lang, device="X").split("X")[0]
    assert header in text
    assert ("所需" if lang == "zh" else "needed") in text  # why it fits, in their language
    assert await _events(crm_run, delivery) == [("click", "compatible:psu")]


async def test_extended_warranty_button_creates_a_lead_through_the_warranty_flow(
    bot_harness: BotHarness, speaker: Any, crm_run: Any
) -> None:
    user = await speaker(bot_harness, 1001, "en")
    cid = await _customer_id(crm_run, 1001)

    async def expiring_serial(crm: CrmServices) -> str:
        units = await crm.warranties.warranty_for_customer(cid)
        unit = next(u for u in units if u.status == "expiring" and u.extension_available)
        assert unit.serial_number is not None
        return unit.serial_number

    serial = await crm_run(expiring_serial)
    delivery = await _push(crm_run, 1001, "rule:warranty_expiring:serial:x")
    calls = await bot_harness.press(user, f"cmp:a:{delivery}:ext:{serial}:12")
    assert "12" in said(calls)

    async def leads(crm: CrmServices) -> list[str]:
        rows = await crm.session.scalars(select(Lead).where(Lead.customer_id == cid))
        return [lead.notes or "" for lead in rows]

    assert any(serial in note for note in await crm_run(leads))
    assert await _events(crm_run, delivery) == [("click", f"ext:{serial}:12")]


async def test_survey_button_rates_the_customers_own_resolved_ticket(
    bot_harness: BotHarness, speaker: Any, crm_run: Any
) -> None:
    user = await speaker(bot_harness, 1003, "zh")
    cid = await _customer_id(crm_run, 1003)

    async def done_ticket(crm: CrmServices) -> str:
        from crm_core.tickets.models import Ticket

        number = await crm.session.scalar(
            select(Ticket.ticket_number).where(
                Ticket.customer_id == cid, Ticket.status.in_(("resolved", "closed"))
            )
        )
        assert number is not None
        return str(number)

    number = await crm_run(done_ticket)
    delivery = await _push(crm_run, 1003, "rule:ticket_survey:ticket:x")
    calls = await bot_harness.press(user, f"cmp:a:{delivery}:rate:4:{number}")
    assert T.t("feedback.ask_comment", "zh", score=4) in said(calls)
    assert await _events(crm_run, delivery) == [("click", f"rate:4:{number}")]

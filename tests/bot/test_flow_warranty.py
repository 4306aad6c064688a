"""Warranty check and the extended-warranty offer, in zh and en, on SQLite and PostgreSQL.

Demo: 1001 张伟 — RTX 4070 active until 2029-11-29 (incl. +12 months), SSD active, mouse
SN2J0U3NA18U expiring on 2026-06-27 (12 days after the demo's today); 1002 James Carter — a
headset that expired on 2026-01-13 and an OLED monitor under warranty.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.callbacks import ExtendCb, MenuCb
from bot.i18n import Translator
from crm_core.leads.schemas import LeadDTO
from crm_core.services import CrmServices
from tests.bot.conftest import LANGS, button_datas, said
from tests.bot.harness import BotHarness

T = Translator()
MOUSE_1001 = "SN2J0U3NA18U"
GPU_1001 = "SNCUKOIJOJ6K"
HEADSET_1002 = "SNFD8WW72S9Z"


def day(lang: str, y: int, m: int, d: int) -> str:
    return T.t("fmt.date", lang, y=y, m=m, d=d)


async def leads_of(crm_run: Any, telegram_id: int) -> list[LeadDTO]:
    async def get(crm: CrmServices) -> list[LeadDTO]:
        customer = await crm.customers.find_by_telegram_id(telegram_id)
        assert customer is not None
        return await crm.leads.list_leads(customer_id=customer.id)

    return list(await crm_run(get))


@pytest.mark.parametrize("lang", LANGS)
async def test_warranty_lists_every_device_with_status_and_end_date(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    calls = await bot_harness.press(user, MenuCb(action="warranty").pack())
    text = said(calls)
    assert T.t("warranty.header", lang) in text
    assert T.t("warranty.status.active", lang, end=day(lang, 2029, 11, 29)) in text
    assert T.t("warranty.includes_extension", lang, months=12) in text
    assert T.t("warranty.status.expiring", lang, end=day(lang, 2026, 6, 27), days=12) in text
    assert GPU_1001 in text and MOUSE_1001 in text


@pytest.mark.parametrize("lang", LANGS)
async def test_expired_warranty_is_shown_as_expired_and_gets_no_offer(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    calls = await bot_harness.send(user, "/warranty")
    assert T.t("warranty.status.expired", lang, end=day(lang, 2026, 1, 13)) in said(calls)
    assert button_datas(calls, "ext:") == []


@pytest.mark.parametrize("lang", LANGS)
async def test_expiring_soon_offers_an_extension_recorded_as_a_lead_once(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    calls = await h.send(user, "/warranty")
    assert button_datas(calls, "ext:") == [
        ExtendCb(serial=MOUSE_1001, months=12).pack(),
        ExtendCb(serial=MOUSE_1001, months=24).pack(),
    ]
    before = await leads_of(crm_run, 1001)
    calls = await h.press(user, ExtendCb(serial=MOUSE_1001, months=24).pack())
    leads = await leads_of(crm_run, 1001)
    assert len(leads) == len(before) + 1
    lead = leads[0]
    assert lead.source == "bot" and lead.stage == "new"
    assert lead.products_of_interest == ["MOUSE-LOGITECH-G502XPLUS"]
    assert lead.notes and MOUSE_1001 in lead.notes and "+24 months" in lead.notes
    assert T.t("warranty.extension_requested", lang, months=24, lead=lead.id) in said(calls)
    # The same offer pressed again: no second open lead.
    calls = await h.press(user, ExtendCb(serial=MOUSE_1001, months=24).pack())
    assert T.t("warranty.extension_already_requested", lang) in said(calls)
    assert len(await leads_of(crm_run, 1001)) == len(before) + 1


@pytest.mark.parametrize("lang", LANGS)
async def test_extension_of_another_customers_unit_in_forged_callback_data_is_refused(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    before = await leads_of(crm_run, 1001)
    calls = await bot_harness.press(user, ExtendCb(serial=HEADSET_1002, months=12).pack())
    text = said(calls)
    assert T.t("warranty.serial_not_found", lang, number=HEADSET_1002) in text
    assert "HyperX" not in text
    assert await leads_of(crm_run, 1001) == before


@pytest.mark.parametrize("lang", LANGS)
async def test_an_expired_unit_cannot_be_extended(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    before = await leads_of(crm_run, 1002)
    calls = await bot_harness.press(user, ExtendCb(serial=HEADSET_1002, months=12).pack())
    assert T.t("warranty.not_extendable", lang, end=day(lang, 2026, 1, 13)) in said(calls)
    assert await leads_of(crm_run, 1002) == before


@pytest.mark.parametrize("lang", LANGS)
async def test_a_serial_in_free_text_checks_just_that_unit(
    bot_harness: BotHarness, speaker: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    text = {"zh": f"查一下 {GPU_1001} 的保修", "en": f"is my warranty still valid {GPU_1001}"}
    calls = await bot_harness.send(user, text[lang])
    assert GPU_1001 in said(calls)
    assert MOUSE_1001 not in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_prospect_without_purchases_is_pointed_to_linking(
    bot_harness: BotHarness, lang: str
) -> None:
    calls = await bot_harness.send(bot_harness.user(882_001, lang), "/warranty")
    assert T.t("warranty.none", lang, hint=T.t("link.hint", lang)) in said(calls)

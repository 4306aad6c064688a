"""/stop, the unsubscribe intent and /privacy (export, delete with two confirmations), in zh
and en, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiogram.types import BufferedInputFile
from sqlalchemy import select

from bot.callbacks import PrivacyCb
from bot.i18n import Translator
from crm_core.audit.models import AuditEntry
from crm_core.customers.schemas import ConsentEventDTO, CustomerDTO
from crm_core.services import CrmServices
from tests.bot.conftest import LANGS, button_data, said
from tests.bot.harness import BotHarness

T = Translator()


async def customer(crm_run: Any, customer_id: int) -> CustomerDTO:
    async def get(crm: CrmServices) -> CustomerDTO:
        return await crm.customers.get_customer(customer_id)

    return await crm_run(get)


async def customer_id_of(crm_run: Any, telegram_id: int) -> int:
    async def get(crm: CrmServices) -> int:
        found = await crm.customers.find_by_telegram_id(telegram_id)
        assert found is not None
        return found.id

    return int(await crm_run(get))


async def consent_events(crm_run: Any, customer_id: int) -> list[ConsentEventDTO]:
    async def get(crm: CrmServices) -> list[ConsentEventDTO]:
        return await crm.customers.consent_events(customer_id)

    return list(await crm_run(get))


async def audit(crm_run: Any, action: str, customer_id: int) -> list[AuditEntry]:
    async def get(crm: CrmServices) -> list[AuditEntry]:
        rows = await crm.session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == action, AuditEntry.customer_id == customer_id
            )
        )
        return list(rows)

    return list(await crm_run(get))


@pytest.mark.parametrize("lang", LANGS)
async def test_stop_withdraws_marketing_consent_once_and_confirms(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1001, lang)
    cid = await customer_id_of(crm_run, 1001)
    assert (await customer(crm_run, cid)).marketing_consent is True
    calls = await bot_harness.send(user, "/stop")
    assert said(calls) == T.t("privacy.unsubscribed", lang)
    after = await customer(crm_run, cid)
    assert after.marketing_consent is False and after.consent_source == "telegram:/stop"
    assert (await consent_events(crm_run, cid))[-1].source == "telegram:/stop"
    events = len(await consent_events(crm_run, cid))
    calls = await bot_harness.send(user, "/stop")
    assert said(calls) == T.t("privacy.already_unsubscribed", lang)
    assert len(await consent_events(crm_run, cid)) == events


@pytest.mark.parametrize("lang", LANGS)
async def test_the_unsubscribe_intent_withdraws_consent_too(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    cid = await customer_id_of(crm_run, 1002)
    text = {"zh": "不要再给我发广告了", "en": "stop sending me promotions"}
    calls = await bot_harness.send(user, text[lang])
    assert said(calls) == T.t("privacy.unsubscribed", lang)
    after = await customer(crm_run, cid)
    assert after.marketing_consent is False and after.consent_source == "telegram:unsubscribe"


@pytest.mark.parametrize("lang", LANGS)
async def test_export_sends_everything_about_the_customer_as_a_json_file(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    user = await speaker(bot_harness, 1002, lang)
    cid = await customer_id_of(crm_run, 1002)
    calls = await bot_harness.send(user, "/privacy")
    assert T.t("privacy.menu", lang) in said(calls)
    calls = await bot_harness.press(user, button_data(calls, "prv:export"))
    documents = [c for c in calls if c.method == "sendDocument"]
    assert len(documents) == 1 and documents[0].chat_id == 1002
    document = documents[0].params["document"]
    assert isinstance(document, BufferedInputFile)
    assert document.filename == "my-data-2026-06-15.json"
    data = json.loads(document.data.decode("utf-8"))
    assert data["format"] == "hwcrm-gdpr-export/1"
    assert data["customer"]["name"] == "James Carter" and data["customer"]["id"] == cid
    assert documents[0].params["caption"] == T.t("privacy.export_caption", lang)
    entries = await audit(crm_run, "export", cid)
    assert [e.actor for e in entries] == [f"customer:{cid}"]


@pytest.mark.parametrize("lang", LANGS)
async def test_delete_needs_two_confirmations_then_erases_as_the_customer(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    cid = await customer_id_of(crm_run, 1001)
    calls = await h.send(user, "/privacy")
    calls = await h.press(user, button_data(calls, "prv:delete"))
    assert T.t("privacy.delete_confirm_1", lang) in said(calls)
    assert (await customer(crm_run, cid)).erased_at is None
    calls = await h.press(user, button_data(calls, "prv:confirm:"))
    assert T.t("privacy.delete_confirm_2", lang) in said(calls)
    assert (await customer(crm_run, cid)).erased_at is None
    calls = await h.press(user, button_data(calls, "prv:erase:"))
    assert said(calls) == T.t("privacy.erased", lang)
    erased = await customer(crm_run, cid)
    assert erased.erased_at is not None and erased.name == "Erased customer"
    assert erased.telegram_user_id is None and erased.phone is None
    assert [e.actor for e in await audit(crm_run, "erase", cid)] == [f"customer:{cid}"]
    # The chat starts over as someone unknown.
    calls = await h.send(user, "/start")
    assert T.t("start.hello_new", lang) in said(calls)


@pytest.mark.parametrize("lang", LANGS)
async def test_forged_or_skipped_deletion_confirmations_erase_nothing(
    bot_harness: BotHarness, speaker: Any, crm_run: Any, lang: str
) -> None:
    h = bot_harness
    user = await speaker(h, 1001, lang)
    cid = await customer_id_of(crm_run, 1001)
    expired = T.t("privacy.confirmation_expired", lang)
    # A forged "erase" without any confirmation.
    assert said(await h.press(user, PrivacyCb(action="erase", nonce="deadbeef").pack())) == expired
    # The first step's nonce cannot be used for the last step.
    calls = await h.press(user, PrivacyCb(action="delete").pack())
    first = PrivacyCb.unpack(button_data(calls, "prv:confirm:"))
    forged = PrivacyCb(action="erase", nonce=first.nonce).pack()
    assert said(await h.press(user, forged)) == expired
    # A stale confirmation is spent once refused.
    assert said(await h.press(user, first.pack())) == expired
    # Cancel.
    calls = await h.press(user, PrivacyCb(action="delete").pack())
    calls = await h.press(user, button_data(calls, "prv:cancel"))
    assert said(calls) == T.t("privacy.delete_cancelled", lang)
    assert (await customer(crm_run, cid)).erased_at is None

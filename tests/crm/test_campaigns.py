"""Marketer campaigns: segments, templates, audience, schedule guards, enqueue, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CampaignsSection, CrmSection
from bot.i18n import Translator
from crm_core.campaigns.cron import parse_cron
from crm_core.campaigns.delivery import DeliveryService
from crm_core.campaigns.models import CampaignDelivery, CampaignEvent
from crm_core.campaigns.segments import validate_segment
from crm_core.campaigns.service import CampaignCreate, CampaignService
from crm_core.campaigns.templates import check_html, pick_variant, validate_variants
from crm_core.clock import FixedClock
from crm_core.customers.models import Customer
from crm_core.customers.service import CustomerService
from crm_core.errors import InvalidTransition, ValidationFailed
from tests.conftest import Database
from tests.crm.people_factories import make_customer, make_order, make_product

NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: not quiet hours
TEXTS = Translator()


def _service(session: AsyncSession, clock: FixedClock | None = None) -> CampaignService:
    return CampaignService(
        session, clock or FixedClock(NOW), CampaignsSection(), TEXTS, CrmSection()
    )


def _variants(**kw: Any) -> list[dict[str, Any]]:
    variant: dict[str, Any] = {
        "label": "A",
        "text": {
            "en": "Hi <b>{first_name}</b>, new PSUs for your {product}!",
            "zh": "{first_name}，您好！",
        },
        "buttons": [{"text": {"en": "Show PSUs", "zh": "看看电源"}, "action": "compatible:psu"}],
    }
    variant.update(kw)
    return [variant]


async def _gpu_owner(
    session: AsyncSession, tg: int, *, lang: str = "en", consent: bool = True
) -> Customer:
    customer = await make_customer(session, name=f"Alex {tg}", telegram_user_id=tg)
    customer.language = lang
    customer.marketing_consent = consent
    gpu = await make_product(session, category="gpu", name_en="RTX 4070", name_zh="RTX 4070 显卡")
    await make_order(session, customer.id, [(gpu, 1, [])], placed_at=NOW - timedelta(days=30))
    await session.flush()
    return customer


async def _create(session: AsyncSession, **kw: Any) -> int:
    data: dict[str, Any] = {
        "name": "GPU owners",
        "segment": {"owns": {"category": "gpu"}},
        "variants": _variants(),
    }
    data.update(kw)
    return (await _service(session).create(CampaignCreate(**data), actor="staff:1")).id


# ---------------------------------------------------------------------- pure checks


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({}, "give one condition"),
        ({"language": "fr"}, r"segment.language: unknown language 'fr'"),
        ({"and": [{"tag": "vip"}, {"lifecycle_stage": "sleeping"}]}, r"and\[1\].lifecycle_stage"),
        ({"owns": {"category": "gpuu"}}, "unknown product category 'gpuu'"),
        ({"owns": {"colour": "red"}}, "unknown key 'colour'"),
        ({"spend": {"min": 10, "max": 5}}, "min 10 is above max 5"),
        ({"last_purchase_days": {"max": 1.5}}, "whole number of days"),
        ({"language": "zh", "tag": "vip"}, "exactly one key"),
        ({"bought": "gpu"}, "unknown condition 'bought'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_segment_definitions_are_refused_naming_the_problem(
    definition: Any, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        validate_segment(definition)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hi {frist_name}", r"unknown variable \{frist_name\}"),
        ("Hi <div>x</div>", "tag <div> is not allowed"),
        ("Hi <b>x</i>", "</i> found where </b> was expected"),
        ("Hi <b>x", "unclosed <b>"),
        ("1 < 2", "bare '<'"),
        ("A & B", "bare '&'"),
        ("Hi {name", "braces"),
        ("x" * 4097, "4097 characters"),
        ("{name}" * 21, "Telegram allows 4096"),  # 21 x 200 characters at the longest
    ],
)
def test_bad_templates_are_refused_naming_variant_language_and_problem(
    text: str, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        validate_variants(_variants(text={"en": text}), languages=["en"])
    assert "variant A (en)" in str(info.value)


def test_missing_language_is_refused_when_the_audience_reads_it() -> None:
    with pytest.raises(ValidationFailed, match="variant A: no zh text"):
        validate_variants(_variants(text={"en": "Hi"}), languages=["en", "zh"])


def test_bad_buttons_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="unknown bot action 'dance'"):
        validate_variants(_variants(buttons=[{"text": {"en": "x", "zh": "x"}, "action": "dance"}]))
    with pytest.raises(ValidationFailed, match="exactly one of url or action"):
        validate_variants(_variants(buttons=[{"text": {"en": "x", "zh": "x"}}]))
    with pytest.raises(ValidationFailed, match="not an http"):
        validate_variants(_variants(buttons=[{"text": {"en": "x", "zh": "x"}, "url": "ftp://x"}]))


def test_telegram_html_passes_with_links_spoilers_and_entities() -> None:
    problems, visible = check_html(
        '<b>Sale</b> &amp; <a href="https://x.example">more</a> <span class="tg-spoiler">!</span>'
    )
    assert problems == [] and visible == len("Sale & more !")


def test_ab_split_is_deterministic_and_follows_the_weights() -> None:
    variants = [{"label": "A", "weight": 70}, {"label": "B", "weight": 30}]
    picks = [pick_variant(variants, 7, customer)["label"] for customer in range(2000)]
    assert picks == [pick_variant(variants, 7, customer)["label"] for customer in range(2000)]
    assert 0.65 < picks.count("A") / 2000 < 0.75


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("every monday", "expected 5 fields"),
        ("61 10 * * *", "'61' is not a valid minute"),
        ("0 10 * * funday", "not a valid weekday"),
        ("0 10 1 * mon", "not both"),
        ("*/0 * * * *", "step '0'"),
        ("0 10-8 * * *", "runs backwards"),
    ],
)
def test_cron_expressions_that_do_not_parse_are_refused(expression: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        parse_cron(expression)


def test_cron_next_fire_in_the_marketers_time_zone_and_fields_for_the_scheduler() -> None:
    spec = parse_cron("30 10 * * mon")
    # 2026-06-15 is a Monday; 04:00 UTC = 12:00 Shanghai, so 10:30 has passed → next Monday.
    assert spec.next_after(NOW, "Asia/Shanghai") == datetime(2026, 6, 22, 2, 30, tzinfo=UTC)
    assert spec.fields() == {
        "minute": "30",
        "hour": "10",
        "day": "*",
        "month": "1,2,3,4,5,6,7,8,9,10,11,12",
        "day_of_week": "mon",
    }
    assert parse_cron("0 9 * * 0").fields()["day_of_week"] == "sun"
    assert parse_cron("0 9 * * 7").fields()["day_of_week"] == "sun"


# ---------------------------------------------------------------------- segments on the DB


async def test_segment_combines_owned_category_language_tags_and_not(db: Database) -> None:
    async with db.sessions() as session:
        en = await _gpu_owner(session, 1001, lang="en")
        zh = await _gpu_owner(session, 1002, lang="zh")
        vip = await _gpu_owner(session, 1003, lang="zh")
        vip.tags = ["vip", "staff"]
        cpu_only = await make_customer(session, name="Cpu Only", telegram_user_id=1004)
        cpu = await make_product(
            session, category="cpu", name_en="Ryzen 7", name_zh="锐龙 7", price="1999.00"
        )
        await make_order(session, cpu_only.id, [(cpu, 1, [])], placed_at=NOW - timedelta(days=400))
        await session.flush()
        service = _service(session)
        audience = await service.audience_of(
            {"and": [{"owns": {"category": "gpu"}}, {"not": {"tag": "staff"}}]}, "service"
        )
        assert {r.customer_id for r in audience.sample} == {en.id, zh.id}
        audience = await service.audience_of(
            {"or": [{"language": "en"}, {"tag": "vip"}]}, "service"
        )
        assert {r.customer_id for r in audience.sample} == {en.id, vip.id, cpu_only.id}
        audience = await service.audience_of({"last_purchase_days": {"min": 365}}, "service")
        assert [r.customer_id for r in audience.sample] == [cpu_only.id]
        audience = await service.audience_of(
            {"owns": {"model": "4070", "brand": "acme"}}, "service"
        )
        assert audience.matched == 3 and audience.by_language == {"en": 1, "zh": 2}
        audience = await service.audience_of({"spend": {"min": 4999}}, "service")
        assert audience.matched == 3  # the GPU costs 4999, the CPU less


async def test_marketing_audience_counts_only_consenting_linked_unblocked_customers(
    db: Database,
) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1011)
        await _gpu_owner(session, 1012, consent=False)
        blocked = await _gpu_owner(session, 1013)
        blocked.tags = ["blocked_bot"]
        unlinked = await _gpu_owner(session, 1014)
        unlinked.telegram_user_id = None
        await session.flush()
        audience = await _service(session).audience_of({"owns": {"category": "gpu"}})
        assert (audience.matched, audience.reachable) == (4, 1)


async def test_segment_that_matches_nobody_refuses_scheduling_with_the_reason(db: Database) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1021)
        campaign_id = await _create(session, segment={"lifecycle_stage": "churned"})
        with pytest.raises(ValidationFailed, match="the segment matches no customer"):
            await _service(session).schedule(campaign_id, at=datetime(2026, 6, 16, 10, 0))


async def test_audience_without_consent_refuses_scheduling_saying_so(db: Database) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1022, consent=False)
        campaign_id = await _create(session)
        with pytest.raises(ValidationFailed, match="none gave marketing consent"):
            await _service(session).schedule(campaign_id, at=datetime(2026, 6, 16, 10, 0))


async def test_campaign_in_the_past_is_refused(db: Database) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1023)
        campaign_id = await _create(session)
        # 11:00 Shanghai is 03:00 UTC, an hour before NOW.
        with pytest.raises(
            ValidationFailed, match=r"2026-06-15 11:00 \(Asia/Shanghai\) is in the past"
        ):
            await _service(session).schedule(campaign_id, at=datetime(2026, 6, 15, 11, 0))


async def test_bad_cron_is_refused_and_the_campaign_stays_draft(db: Database) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1024)
        campaign_id = await _create(session)
        with pytest.raises(ValidationFailed, match="expected 5 fields"):
            await _service(session).schedule(campaign_id, cron="10 o'clock mondays")
        assert (await _service(session).get(campaign_id)).state == "draft"


async def test_unknown_variable_is_refused_when_creating(db: Database) -> None:
    async with db.sessions() as session:
        with pytest.raises(ValidationFailed, match=r"unknown variable \{coupon\}"):
            await _create(session, variants=_variants(text={"en": "Use {coupon}"}))


async def test_template_missing_the_audiences_language_refuses_scheduling(db: Database) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1025, lang="zh")
        campaign_id = await _create(session, variants=_variants(text={"en": "Hi"}, buttons=[]))
        with pytest.raises(ValidationFailed, match="no zh text"):
            await _service(session).schedule(campaign_id, at=datetime(2026, 6, 16, 10, 0))


# ---------------------------------------------------------------------- life cycle


async def test_schedule_enqueue_claim_cancel_full_path(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        a = await _gpu_owner(session, 1031)
        b = await _gpu_owner(session, 1032, lang="zh")
        service = _service(session, clock)
        campaign_id = await _create(session)
        campaign = await service.schedule(campaign_id, at=datetime(2026, 6, 16, 10, 0))
        assert campaign.state == "scheduled"
        assert campaign.one_shot_at == datetime(2026, 6, 16, 2, 0, tzinfo=UTC)
        (spec,) = await service.schedulable()
        assert spec.one_shot_at == campaign.one_shot_at
        progress: list[tuple[int, int]] = []
        added = await service.enqueue_occurrence(
            campaign_id, campaign.one_shot_at, on_progress=lambda d, t: progress.append((d, t))
        )
        assert added == 2 and progress[-1] == (2, 2)
        assert (
            await service.enqueue_occurrence(campaign_id, campaign.one_shot_at) == 0
        )  # idempotent
        assert (await service.get(campaign_id)).state == "running"
        assert await service.schedulable() == []  # the one-shot fired
        rows = {r.customer_id: r for r in await session.scalars(select(CampaignDelivery))}
        assert rows[a.id].text == "Hi <b>Alex</b>, new PSUs for your RTX 4070!"
        assert rows[b.id].text == "Alex，您好！" and rows[b.id].language == "zh"
        assert rows[a.id].buttons == [
            [{"text": "Show PSUs", "callback_data": "cmp:a:{d}:compatible:psu"}],
            [{"text": "🔕 Unsubscribe", "callback_data": "cmp:u:{d}"}],
        ]
        clock.set(datetime(2026, 6, 16, 2, 0, tzinfo=UTC))
        deliveries = DeliveryService(session, clock, CampaignsSection())
        (push,) = await deliveries.claim_due(1, "w")
        await deliveries.mark_sent(push.delivery_id, 1)
        cancelled, stopped = await service.cancel(campaign_id)
        assert cancelled.state == "cancelled" and stopped == 1
        states = sorted(
            r.state
            for r in await session.scalars(
                select(CampaignDelivery).execution_options(populate_existing=True)
            )
        )
        assert states == ["cancelled", "sent"]
        assert await deliveries.claim_due(10, "w") == []


async def test_cancelling_a_finished_campaign_is_refused(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        await _gpu_owner(session, 1041)
        service = _service(session, clock)
        campaign_id = await _create(session)
        campaign = await service.schedule(campaign_id, at=datetime(2026, 6, 15, 13, 0))
        assert campaign.one_shot_at is not None
        await service.enqueue_occurrence(campaign_id, campaign.one_shot_at)
        clock.set(campaign.one_shot_at)
        deliveries = DeliveryService(session, clock, CampaignsSection())
        (push,) = await deliveries.claim_due(10, "w")
        await deliveries.mark_sent(push.delivery_id, 5)
        with pytest.raises(InvalidTransition, match="already finished"):
            await service.cancel(campaign_id)
        with pytest.raises(InvalidTransition, match=r"already (cancelled|finished)"):
            await service.cancel(campaign_id)


async def test_pause_holds_queued_sends_and_resume_releases_them(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        await _gpu_owner(session, 1051)
        service = _service(session, clock)
        campaign_id = await _create(session)
        campaign = await service.schedule(campaign_id, at=datetime(2026, 6, 15, 13, 0))
        assert campaign.one_shot_at is not None
        await service.enqueue_occurrence(campaign_id, campaign.one_shot_at)
        assert (await service.pause(campaign_id)).state == "paused"
        with pytest.raises(InvalidTransition, match="is paused; it cannot pause"):
            await service.pause(campaign_id)
        clock.set(campaign.one_shot_at)
        deliveries = DeliveryService(session, clock, CampaignsSection())
        assert await deliveries.claim_due(10, "w") == []
        assert (await service.resume(campaign_id)).state == "running"
        assert len(await deliveries.claim_due(10, "w")) == 1


async def test_recurring_campaign_gets_one_row_per_occurrence_and_customer(db: Database) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1061)
        service = _service(session)
        campaign_id = await _create(session)
        campaign = await service.schedule(campaign_id, cron="0 10 * * mon")
        (spec,) = await service.schedulable()
        assert spec.cron == "0 10 * * mon" and spec.cron_fields is not None
        first = datetime(2026, 6, 22, 2, 0, tzinfo=UTC)
        assert await service.next_run(campaign) == first
        assert await service.enqueue_occurrence(campaign_id, first) == 1
        assert await service.enqueue_occurrence(campaign_id, first) == 0
        assert await service.enqueue_occurrence(campaign_id, first + timedelta(days=7)) == 1
        assert len(await service.schedulable()) == 1  # recurring keeps its job while running


async def test_send_at_local_time_uses_each_customers_time_zone(db: Database) -> None:
    async with db.sessions() as session:
        shanghai = await _gpu_owner(session, 1071)
        london = await _gpu_owner(session, 1072)
        london.timezone = "Europe/London"
        await session.flush()
        service = _service(session)
        campaign_id = await _create(session, send_local_time="10:00")
        await service.schedule(campaign_id, at=datetime(2026, 6, 16, 0, 0))  # midnight Shanghai
        await service.enqueue_occurrence(campaign_id, datetime(2026, 6, 15, 16, 0, tzinfo=UTC))
        due = {r.customer_id: r.due_at for r in await session.scalars(select(CampaignDelivery))}
        assert due[shanghai.id] == datetime(2026, 6, 16, 2, 0, tzinfo=UTC)  # 10:00 CST
        assert due[london.id] == datetime(2026, 6, 16, 9, 0, tzinfo=UTC)  # 10:00 BST


async def test_consent_withdrawn_after_enqueue_skips_the_customer_at_send_time(
    db: Database,
) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        customer = await _gpu_owner(session, 1081)
        service = _service(session, clock)
        campaign_id = await _create(session)
        campaign = await service.schedule(campaign_id, at=datetime(2026, 6, 15, 13, 0))
        assert campaign.one_shot_at is not None
        await service.enqueue_occurrence(campaign_id, campaign.one_shot_at)
        await CustomerService(session, clock).withdraw_consent(customer.id, "telegram:退订")
        clock.set(campaign.one_shot_at)
        assert await DeliveryService(session, clock, CampaignsSection()).claim_due(10, "w") == []
        row = (await session.scalars(select(CampaignDelivery))).one()
        assert (row.state, row.reason) == ("skipped", "no_consent")


async def test_preview_per_language_and_test_send_to_the_marketer(db: Database) -> None:
    async with db.sessions() as session:
        customer = await _gpu_owner(session, 1091)
        service = _service(session)
        campaign_id = await _create(session)
        previews = await service.preview(campaign_id)
        assert {(p.variant, p.language) for p in previews} == {("A", "en"), ("A", "zh")}
        en = next(p for p in previews if p.language == "en")
        assert en.customer_id == customer.id and "RTX 4070" in en.text
        zh = next(p for p in previews if p.language == "zh")
        assert (
            zh.customer_id is None and zh.text == "伟，您好！"
        )  # placeholder data: no zh customer
        delivery = await service.test_send(campaign_id, 5550001, "zh")
        assert (delivery.kind, delivery.chat_id, delivery.customer_id) == ("service", 5550001, None)
        (push,) = await DeliveryService(session, FixedClock(NOW), CampaignsSection()).claim_due(
            5, "w"
        )
        assert push.chat_id == 5550001 and push.buttons[-1][0]["text"] == "🔕 退订"


async def test_clicks_and_unsubscribes_are_recorded_with_the_button(db: Database) -> None:
    async with db.sessions() as session:
        await _gpu_owner(session, 1101)
        service = _service(session)
        campaign_id = await _create(session)
        campaign = await service.schedule(campaign_id, at=datetime(2026, 6, 15, 13, 0))
        assert campaign.one_shot_at is not None
        await service.enqueue_occurrence(campaign_id, campaign.one_shot_at)
        row = (await session.scalars(select(CampaignDelivery))).one()
        await service.record_click(row.id, "compatible:psu")
        await service.record_unsubscribe(row.id)
        events = sorted(
            (e.kind, e.button or "") for e in await session.scalars(select(CampaignEvent))
        )
        assert events == [("click", "compatible:psu"), ("unsubscribe", "")]


async def test_staff_looking_at_the_audience_sample_is_audited_per_customer(db: Database) -> None:
    from crm_core.audit.models import AuditEntry

    async with db.sessions() as session:
        a = await _gpu_owner(session, 1111)
        b = await _gpu_owner(session, 1112)
        service = _service(session)
        campaign_id = await _create(session)
        audience = await service.audience(campaign_id, actor="staff:6")
        assert {r.customer_id for r in audience.sample} == {a.id, b.id}
        await service.preview(campaign_id, "en", actor="staff:6")
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert [(e.actor, e.action, e.customer_id, e.reason) for e in entries] == [
            ("staff:6", "read", a.id, "audience sample"),
            ("staff:6", "read", b.id, "audience sample"),
            ("staff:6", "read", a.id, "campaign preview"),
        ]

"""Campaign reports: outcomes per A/B variant, unknown (crash window), reactions, attribution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CampaignsSection, CrmSection
from bot.i18n import Translator
from crm_core.campaigns.delivery import DeliveryService
from crm_core.campaigns.models import CampaignDelivery
from crm_core.campaigns.service import CampaignCreate, CampaignService
from crm_core.clock import FixedClock
from crm_core.customers.models import Customer
from crm_core.customers.service import CustomerService
from tests.conftest import Database
from tests.crm.people_factories import make_customer, make_order, make_product

NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
TEXTS = Translator()


async def _gpu_owners(session: AsyncSession, n: int) -> list[Customer]:
    gpu = await make_product(session, category="gpu", name_en="RTX 4070")
    out = []
    for i in range(n):
        c = await make_customer(session, name=f"Kim {i}", telegram_user_id=3000 + i)
        c.marketing_consent = True
        await make_order(session, c.id, [(gpu, 1, [])], placed_at=NOW - timedelta(days=60))
        out.append(c)
    await session.flush()
    return out


def _variants() -> list[dict[str, Any]]:
    return [
        {"label": "A", "weight": 1, "text": {"en": "A: PSUs for {first_name}", "zh": "A"}},
        {"label": "B", "weight": 1, "text": {"en": "B: PSUs for {first_name}", "zh": "B"}},
    ]


async def test_report_counts_every_outcome_per_variant_and_attributes_revenue(
    db: Database,
) -> None:
    clock = FixedClock(NOW)
    settings = CampaignsSection()
    async with db.sessions() as session:
        customers = await _gpu_owners(session, 12)
        psu = await make_product(session, category="psu", name_en="850 W PSU", price="899.00")
        other = await make_product(session, category="psu", name_en="Other PSU", price="499.00")
        service = CampaignService(session, clock, settings, TEXTS, CrmSection())
        created = await service.create(
            CampaignCreate(
                name="PSU push",
                segment={"owns": {"category": "gpu"}},
                variants=_variants(),
                product_ids=[psu.id],
                attribution_days=14,
            )
        )
        campaign = await service.schedule(created.id, at=datetime(2026, 6, 15, 13, 0))
        assert campaign.one_shot_at is not None
        assert await service.enqueue_occurrence(created.id, campaign.one_shot_at) == 12
        # Between scheduling and sending: one customer withdraws consent.
        await CustomerService(session, clock).withdraw_consent(customers[0].id, "telegram:/stop")
        clock.set(campaign.one_shot_at)
        deliveries = DeliveryService(session, clock, settings)
        pushes = await deliveries.claim_due(100, "w")
        assert len(pushes) == 11
        by_customer = {p.customer_id: p for p in pushes}
        sent_ids = []
        for c in customers[1:8]:
            await deliveries.mark_sent(by_customer[c.id].delivery_id, 100 + c.id)
            sent_ids.append(by_customer[c.id].delivery_id)
        await deliveries.mark_unreachable(by_customer[customers[8].id].delivery_id, "Forbidden")
        failing = by_customer[customers[9].id].delivery_id
        for _ in range(settings.max_attempts):
            await deliveries.mark_retry(failing, "Bad Gateway", clock.now())
            clock.advance(timedelta(seconds=1))
            await deliveries.claim_due(100, "w")
        # customers[10] and [11]: stuck in `sending` (the worker was killed) → unknown later.
        await service.record_click(sent_ids[0], "compatible:psu")
        await service.record_click(sent_ids[0], "compatible:psu")  # one delivery: one click
        await service.record_unsubscribe(sent_ids[1])
        # Orders: promoted product within 14 days (converts), after 20 days (not), another
        # product (not).
        sent_at = clock.now()
        await make_order(
            session, customers[1].id, [(psu, 2, [])], placed_at=sent_at + timedelta(days=3)
        )
        await make_order(
            session, customers[2].id, [(psu, 1, [])], placed_at=sent_at + timedelta(days=20)
        )
        await make_order(
            session, customers[3].id, [(other, 1, [])], placed_at=sent_at + timedelta(days=2)
        )
        clock.advance(timedelta(minutes=30))

        report = await service.report(created.id)
        total = report.total
        assert total.audience == 12
        assert total.sent == 7 and total.blocked == 1 and total.failed == 1
        assert total.skipped == {"no_consent": 1}
        assert total.unknown == 2 and total.sending == 0
        assert total.clicks == 1 and total.unsubscribes == 1
        assert total.conversions == 1 and total.revenue == Decimal("1798.00")
        assert {v.variant for v in report.variants} == {"A", "B"}
        assert sum(v.audience for v in report.variants) == 12
        variant_of = {r.id: r.variant for r in await session.scalars(select(CampaignDelivery))}
        converted = next(v for v in report.variants if v.conversions)
        assert converted.variant == variant_of[by_customer[customers[1].id].delivery_id]


async def test_category_push_converts_on_any_product_of_the_category(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        (customer,) = await _gpu_owners(session, 1)
        psu = await make_product(session, category="psu", name_en="Any PSU", price="600.00")
        service = CampaignService(session, clock, CampaignsSection(), TEXTS, CrmSection())
        created = await service.create(
            CampaignCreate(
                name="PSU week",
                segment={"all": True},
                variants=[{"text": {"en": "PSU week!", "zh": "电源周！"}}],
                category="psu",
            )
        )
        campaign = await service.schedule(created.id, at=datetime(2026, 6, 15, 13, 0))
        assert campaign.one_shot_at is not None
        await service.enqueue_occurrence(created.id, campaign.one_shot_at)
        clock.set(campaign.one_shot_at)
        deliveries = DeliveryService(session, clock, CampaignsSection())
        (push,) = await deliveries.claim_due(10, "w")
        await deliveries.mark_sent(push.delivery_id, 1)
        await make_order(
            session, customer.id, [(psu, 1, [])], placed_at=clock.now() + timedelta(days=1)
        )
        report = await service.report(created.id)
        assert (report.total.conversions, report.total.revenue) == (1, Decimal("600.00"))
        assert report.state == "finished"

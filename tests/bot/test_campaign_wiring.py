"""The scheduler's port onto the real campaign domain (bot/scheduler/wiring.py), both DBs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.settings import load_settings
from bot.i18n import Translator
from bot.scheduler.wiring import DomainSchedule, delivery_scope
from crm_core.campaigns.models import CampaignDelivery
from crm_core.campaigns.service import CampaignCreate
from crm_core.clock import FixedClock
from crm_core.services import CrmServices
from tests.conftest import Database
from tests.crm.people_factories import make_customer, make_order, make_product

NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)


async def test_scheduler_port_schedules_enqueues_runs_rules_and_claims(db: Database) -> None:
    settings = load_settings()
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        customer = await make_customer(session, name="Ivy Chen", telegram_user_id=8801)
        customer.marketing_consent = True
        customer.lifecycle_stage = "at_risk"
        gpu = await make_product(session, category="gpu")
        await make_order(session, customer.id, [(gpu, 1, [])], placed_at=NOW - timedelta(days=400))
        crm = CrmServices(session, clock, settings.crm, settings.campaigns, texts=Translator())
        port = DomainSchedule(crm)
        created = await crm.campaigns.create(
            CampaignCreate(
                name="Wiring",
                segment={"all": True},
                variants=[{"text": {"en": "Hi {first_name}", "zh": "你好"}}],
            )
        )
        await crm.campaigns.schedule(created.id, cron="0 10 * * mon")
        (spec,) = await port.schedulable()
        assert spec.cron_fields["day_of_week"] == "mon"
        assert await port.enqueue_occurrence(created.id, NOW + timedelta(hours=1)) == 1
        counts = await port.run_rules(NOW)
        assert counts["re_engagement"] == 1
        await session.commit()
    clock.set(NOW + timedelta(hours=1))
    async with delivery_scope(db.sessions, clock, settings)() as deliveries:
        pushes = await deliveries.claim_due(10, "w")
    assert sorted(p.rule or "campaign" for p in pushes) == ["campaign", "re_engagement"]
    async with db.sessions() as session:
        states = set(await session.scalars(select(CampaignDelivery.state)))
    assert states == {"sending"}

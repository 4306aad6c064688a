"""Automation rules against the real databases, and the accessory rule over the demo data."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CampaignsSection, CrmSection
from bot.i18n import Translator
from crm_core.campaigns.delivery import DeliveryService
from crm_core.campaigns.models import CampaignDelivery
from crm_core.campaigns.rules import RuleService
from crm_core.catalog.models import Product
from crm_core.catalog.schemas import GpuSpecs, PsuSpecs
from crm_core.clock import FixedClock
from crm_core.conversations.models import Conversation, SatisfactionRating
from crm_core.customers.models import Customer
from crm_core.db import unit_of_work
from crm_core.demo import DemoOptions, seed_demo
from crm_core.errors import NotFound, ValidationFailed
from crm_core.orders.models import Order, OrderItem
from crm_core.tickets.models import Ticket
from knowledge_base.models import KbArticle
from tests.conftest import Database
from tests.crm.people_factories import make_customer, make_order, make_product

NOW = datetime(2026, 6, 15, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
TEXTS = Translator()


def _rules(session: AsyncSession, now: datetime = NOW, **kw: Any) -> RuleService:
    return RuleService(session, FixedClock(now), CampaignsSection(**kw), TEXTS, CrmSection())


async def _customer(
    session: AsyncSession, tg: int, *, lang: str = "en", consent: bool = True, **kw: Any
) -> Customer:
    customer = await make_customer(session, name=f"Sam {tg}", telegram_user_id=tg, **kw)
    customer.language = lang
    customer.marketing_consent = consent
    await session.flush()
    return customer


async def _rows(session: AsyncSession, rule: str) -> list[CampaignDelivery]:
    return list(
        await session.scalars(
            select(CampaignDelivery)
            .where(CampaignDelivery.rule == rule)
            .order_by(CampaignDelivery.id)
        )
    )


# ---------------------------------------------------------------------- post-purchase


async def test_post_purchase_check_in_cites_kb_tips_for_the_category_once(db: Database) -> None:
    async with db.sessions() as session:
        for n, (lang, title) in enumerate(
            [("en", "GPU driver clean install"), ("en", "GPU sag bracket"), ("zh", "显卡驱动")]
        ):
            session.add(
                KbArticle(
                    article_id=f"gpu-{n}",
                    title=title,
                    language=lang,
                    categories=["gpu"],
                    tags=[],
                    source_url=f"https://kb.example/gpu-{n}",
                    source_path=f"gpu-{n}.md",
                    file_format="md",
                    content_hash="x",
                    embedder="e",
                    index_version="1",
                )
            )
        customer = await _customer(session, 2001, consent=False)  # service: no consent needed
        gpu = await make_product(session, category="gpu", name_en="RTX 4070")
        await make_order(
            session,
            customer.id,
            [(gpu, 1, [])],
            placed_at=NOW - timedelta(days=10),
            delivered_after=timedelta(days=2),  # delivered 8 days ago
        )
        old = await make_order(
            session,
            customer.id,
            [(gpu, 1, [])],
            placed_at=NOW - timedelta(days=40),
            delivered_after=timedelta(days=2),
        )
        assert await _rules(session).run_rules(only="post_purchase") == {"post_purchase": 1}
        (row,) = await _rows(session, "post_purchase")
        assert row.kind == "service" and row.customer_id == customer.id
        assert "<b>RTX 4070</b>" in row.text
        assert '📖 <a href="https://kb.example/gpu-0">GPU driver clean install</a>' in row.text
        assert "GPU sag bracket" in row.text and "显卡驱动" not in row.text
        assert row.occurrence_key != f"rule:post_purchase:order:{old.id}"
        assert row.buttons == []  # a service message carries no unsubscribe button
        assert await _rules(session).run_rules(only="post_purchase") == {"post_purchase": 0}


# ---------------------------------------------------------------------- warranty


async def test_warranty_expiring_offer_links_to_the_extension_flow(db: Database) -> None:
    async with db.sessions() as session:
        customer = await _customer(session, 2011, lang="zh")
        ssd = await make_product(session, category="ssd", name_en="990 Pro", name_zh="990 Pro 固态")
        # 36-month warranty (~1096 days) from delivery 1071 days ago: ends in ~25 days.
        await make_order(
            session,
            customer.id,
            [(ssd, 1, ["SNEXPIRE0001"])],
            placed_at=NOW - timedelta(days=1073),
            delivered_after=timedelta(days=2),
        )
        far = await _customer(session, 2012)
        await make_order(
            session, far.id, [(ssd, 1, ["SNACTIVE0001"])], placed_at=NOW - timedelta(days=100)
        )
        assert await _rules(session).run_rules(only="warranty_expiring") == {"warranty_expiring": 1}
        (row,) = await _rows(session, "warranty_expiring")
        assert row.occurrence_key == "rule:warranty_expiring:serial:SNEXPIRE0001"
        assert row.kind == "marketing" and "SNEXPIRE0001" in row.text and "延长" in row.text
        assert row.buttons[0][0]["callback_data"] == "cmp:a:{d}:ext:SNEXPIRE0001:12"
        assert row.buttons[-1][0] == {"text": "🔕 退订", "callback_data": "cmp:u:{d}"}
        assert row.product_ids == [ssd.id]


# ---------------------------------------------------------------------- survey


async def test_ticket_survey_a_day_after_resolution_only_when_not_rated(db: Database) -> None:
    async with db.sessions() as session:
        customer = await _customer(session, 2021)

        def ticket(n: int, resolved_hours_ago: float) -> Ticket:
            return Ticket(
                ticket_number=f"TK-0000002{n}",
                customer_id=customer.id,
                status="resolved",
                resolved_at=NOW - timedelta(hours=resolved_hours_ago),
            )

        due, rated, fresh = ticket(1, 25), ticket(2, 30), ticket(3, 2)
        session.add_all([due, rated, fresh])
        await session.flush()
        session.add(SatisfactionRating(customer_id=customer.id, ticket_id=rated.id, score=5))
        await session.flush()
        assert await _rules(session).run_rules(only="ticket_survey") == {"ticket_survey": 1}
        (row,) = await _rows(session, "ticket_survey")
        assert row.occurrence_key == f"rule:ticket_survey:ticket:{due.id}"
        assert row.kind == "service"
        assert [b["callback_data"] for b in row.buttons[0]] == [
            f"cmp:a:{{d}}:rate:{s}:TK-00000021" for s in range(1, 6)
        ]


# ---------------------------------------------------------------------- re-engagement


async def test_re_engagement_once_per_at_risk_episode_and_only_with_consent(db: Database) -> None:
    async with db.sessions() as session:
        at_risk = await _customer(session, 2031, lifecycle_stage="at_risk")
        no_consent = await _customer(session, 2032, lifecycle_stage="at_risk", consent=False)
        active = await _customer(session, 2033, lifecycle_stage="active")
        cpu = await make_product(session, category="cpu", name_en="Ryzen 5")
        for c in (at_risk, no_consent, active):
            await make_order(session, c.id, [(cpu, 1, [])], placed_at=NOW - timedelta(days=500))
        assert await _rules(session).run_rules(only="re_engagement") == {"re_engagement": 1}
        assert await _rules(session).run_rules(only="re_engagement") == {"re_engagement": 0}
        (row,) = await _rows(session, "re_engagement")
        assert row.customer_id == at_risk.id and "Ryzen 5" in row.text
        # A new purchase and a new at-risk episode later: a new message.
        await make_order(session, at_risk.id, [(cpu, 1, [])], placed_at=NOW - timedelta(days=400))
        assert await _rules(session).run_rules(only="re_engagement") == {"re_engagement": 1}


# ---------------------------------------------------------------------- configuration


async def test_rules_can_be_switched_off_tuned_and_dry_run(db: Database) -> None:
    async with db.sessions() as session:
        customer = await _customer(session, 2041, lifecycle_stage="at_risk")
        cpu = await make_product(session, category="cpu")
        await make_order(session, customer.id, [(cpu, 1, [])], placed_at=NOW - timedelta(days=500))
        rules = _rules(session)
        assert await rules.run_rules(dry_run=True, only="re_engagement") == {"re_engagement": 1}
        assert await _rows(session, "re_engagement") == []  # the dry run wrote nothing
        disabled = await rules.set_enabled("re_engagement", False, actor="staff:6")
        assert (disabled.enabled, disabled.overridden) == (False, True)
        assert "re_engagement" not in await rules.run_rules()
        await rules.set_enabled("re_engagement", True)
        tuned = await rules.set_params("post_purchase", {"days_after_delivery": 10})
        assert tuned.params["days_after_delivery"] == 10
        with pytest.raises(ValidationFailed, match="unknown setting"):
            await rules.set_params("post_purchase", {"days": 10})
        with pytest.raises(ValidationFailed, match="days_after_delivery"):
            await rules.set_params("post_purchase", {"days_after_delivery": "soon"})
        with pytest.raises(NotFound, match="no automation rule 'spam'"):
            await rules.set_enabled("spam", True)
        config_off = _rules(session)
        config_off._settings.rules.accessory.enabled = False
        assert {r.name: r.enabled for r in await config_off.list_rules()}["accessory"] is False


# ---------------------------------------------------------------------- accessory + demo data

DEMO_TODAY = date(2026, 6, 15)
DEMO = DemoOptions(today=DEMO_TODAY)  # the whole default demo set (`hwcrm demo seed`)


def _psu_needed_w(gpu: GpuSpecs) -> int:
    """Independent restatement of the PSU rule: max(maker's advice, (TBP + 250) x 1.3 → 50 W)."""
    formula = math.ceil((gpu.board_power_w + 250) * 1.3 / 50) * 50
    return max(gpu.recommended_psu_w, formula)


@pytest.mark.slow
async def test_every_demo_gpu_owner_without_a_psu_is_offered_only_psus_that_fit(
    db: Database,
) -> None:
    async with unit_of_work(db.sessions) as session:
        await seed_demo(session, DEMO, crm_settings=CrmSection())
    now = DEMO.now
    async with db.sessions() as session:
        products = {p.id: p for p in await session.scalars(select(Product))}
        owned: dict[int, set[int]] = {}
        for customer_id, product_id in await session.execute(
            select(Order.customer_id, OrderItem.product_id)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .where(Order.status.in_(("paid", "shipped", "delivered")))
        ):
            owned.setdefault(customer_id, set()).add(product_id)
        gpu_no_psu = [
            c
            for c, items in owned.items()
            if any(products[p].category == "gpu" for p in items)
            and not any(products[p].category == "psu" for p in items)
        ]
        assert len(gpu_no_psu) > 100  # the whole demo set, not a hand-picked customer
        rules = _rules(session, now)
        checked = 0
        for customer_id in gpu_no_psu:
            offer = await rules.accessory_offer(customer_id, source_categories=["gpu"])
            assert offer is not None, f"customer {customer_id}: nothing offered for their GPU"
            device, category, suggestions = offer
            assert category == "psu"  # they own no PSU: the first related category
            gpu = GpuSpecs.model_validate(device.specs)
            for s in suggestions:
                psu = PsuSpecs.model_validate(s.product.specs)
                assert psu.wattage_w >= _psu_needed_w(gpu), (device.sku, s.product.sku)
                needs_16 = sum(1 for c in gpu.power_connectors if c == "12V-2x6")
                needs_8 = sum(1 for c in gpu.power_connectors if c in ("pcie_8pin", "pcie_6pin"))
                assert psu.connectors.get("12V-2x6", 0) >= needs_16, (device.sku, s.product.sku)
                assert psu.connectors.get("pcie_8pin", 0) >= needs_8, (device.sku, s.product.sku)
                assert s.product.in_stock and s.product.id not in owned[customer_id]
                assert s.reasons_en and s.reasons_zh
                checked += 1
        assert checked >= len(gpu_no_psu)

        # The rule run itself: pushes only to reachable, consenting customers; never an owned
        # item or category; why it fits in the customer's language; one per customer per run.
        added = (await rules.run_rules(now, only="accessory"))["accessory"]
        pushed = await _rows(session, "accessory")
        assert added == len(pushed) > 0
        assert len({r.customer_id for r in pushed}) == len(pushed)
        customers = {
            c.id: c
            for c in await session.scalars(
                select(Customer).where(Customer.id.in_({r.customer_id for r in pushed}))
            )
        }
        for row in pushed:
            customer = customers[row.customer_id or 0]
            assert customer.marketing_consent and customer.telegram_user_id == row.chat_id
            mine = owned[customer.id]
            assert not set(row.product_ids) & mine
            owned_categories = {products[p].category for p in mine}
            assert not {products[p].category for p in row.product_ids} & owned_categories
            marker = "所需" if customer.language == "zh" else "needed"
            if products[row.product_ids[0]].category == "psu":
                assert marker in row.text
            assert row.buttons[-1][0]["callback_data"] == "cmp:u:{d}"
        # A second run offers each customer the next (device, category) at most: never a repeat.
        await rules.run_rules(now, only="accessory")
        first = {r.customer_id: r.occurrence_key for r in pushed}
        for again in (await _rows(session, "accessory"))[len(pushed) :]:
            assert first.get(again.customer_id) != again.occurrence_key


async def test_accessory_promotion_waits_while_the_customer_talks_to_an_agent(
    db: Database,
) -> None:
    """Deferred, not dropped: the row stays queued until the conversation is back with the bot."""
    async with db.sessions() as session:
        customer = await _customer(session, 2051)
        conversation = Conversation(customer_id=customer.id, chat_id=2051, owner="agent")
        session.add(conversation)
        await session.flush()
        row = {
            "occurrence_key": "rule:accessory:device:1:psu",
            "rule": "accessory",
            "customer_id": customer.id,
            "chat_id": 2051,
            "kind": "marketing",
            "language": "en",
            "state": "queued",
            "due_at": NOW,
            "text": "x",
        }
        from crm_core.campaigns.repository import insert_deliveries

        await insert_deliveries(session, [row])
        clock = FixedClock(NOW)
        deliveries = DeliveryService(session, clock, CampaignsSection())
        assert await deliveries.claim_due(10, "w") == []
        conversation.owner = "bot"
        await session.flush()
        clock.advance(timedelta(minutes=31))
        assert len(await deliveries.claim_due(10, "w")) == 1
        count = await session.scalar(select(func.count()).select_from(CampaignDelivery))
        assert count == 1

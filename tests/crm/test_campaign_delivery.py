"""The delivery engine's rows: claim-time checks, outcomes, uniqueness, SKIP LOCKED claims."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CampaignsSection
from crm_core.campaigns.delivery import DeliveryService, parse_hhmm
from crm_core.campaigns.models import Campaign, CampaignDelivery
from crm_core.campaigns.repository import insert_deliveries
from crm_core.clock import FixedClock
from crm_core.conversations.models import Conversation
from crm_core.customers.models import Customer
from crm_core.customers.service import CustomerService
from crm_core.errors import ValidationFailed
from crm_core.tickets.models import Ticket
from tests.conftest import Database
from tests.crm.people_factories import make_customer

# 12:00 UTC = 20:00 in Shanghai: outside the default quiet hours (21:00-09:00).
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def _settings(**kw: Any) -> CampaignsSection:
    return CampaignsSection(**kw)


async def _customer(
    session: AsyncSession,
    tg: int,
    *,
    consent: bool = True,
    tz: str = "Asia/Shanghai",
    tags: list[str] | None = None,
) -> Customer:
    customer = await make_customer(session, name=f"C{tg}", telegram_user_id=tg)
    customer.marketing_consent = consent
    customer.timezone = tz
    customer.tags = tags or []
    await session.flush()
    return customer


def _row(customer: Customer | None, key: str = "campaign:1:x", **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "occurrence_key": key,
        "customer_id": customer.id if customer else None,
        "chat_id": (customer.telegram_user_id if customer else 999) or 0,
        "kind": "marketing",
        "language": "en",
        "state": "queued",
        "due_at": NOW - timedelta(minutes=1),
        "attempts": 0,
        "text": "<b>Hi</b>",
        "buttons": [[{"text": "Unsubscribe", "callback_data": "cmp:u:{d}"}]],
        "product_ids": [],
        "created_at": NOW,
        "updated_at": NOW,
    }
    row.update(kw)
    return row


async def _state(session: AsyncSession, delivery_id: int) -> CampaignDelivery:
    row = await session.get(CampaignDelivery, delivery_id, populate_existing=True)
    assert row is not None
    return row


async def _only(session: AsyncSession) -> CampaignDelivery:
    rows = list(
        await session.scalars(select(CampaignDelivery).execution_options(populate_existing=True))
    )
    assert len(rows) == 1
    return rows[0]


async def test_same_occurrence_and_customer_is_stored_once(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 101)
        assert await insert_deliveries(session, [_row(c)]) == 1
        # A re-run of the same occurrence adds nothing (the UNIQUE key de-duplicates).
        assert await insert_deliveries(session, [_row(c), _row(c, key="campaign:1:y")]) == 1
        await session.commit()
        session.add(CampaignDelivery(**_row(c)))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_claim_marks_sending_and_fills_the_delivery_id_into_buttons(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 102)
        await insert_deliveries(session, [_row(c)])
        pushes = await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w1")
        assert len(pushes) == 1
        push = pushes[0]
        assert push.chat_id == 102 and push.kind == "marketing" and push.text == "<b>Hi</b>"
        assert push.buttons == [
            [{"text": "Unsubscribe", "callback_data": f"cmp:u:{push.delivery_id}"}]
        ]
        row = await _only(session)
        assert (row.state, row.claimed_by, row.sending_at) == ("sending", "w1", NOW)
        # Claimed rows are not claimed again.
        assert (
            await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w2") == []
        )


async def test_not_yet_due_rows_wait(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 103)
        await insert_deliveries(session, [_row(c, due_at=NOW + timedelta(minutes=5))])
        assert await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w") == []


async def test_consent_withdrawn_after_scheduling_is_skipped_at_claim_time(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        c = await _customer(session, 104)
        await insert_deliveries(session, [_row(c)])
        await CustomerService(session, clock).withdraw_consent(c.id, "telegram:/stop")
        assert await DeliveryService(session, clock, _settings()).claim_due(10, "w") == []
        row = await _only(session)
        assert (row.state, row.reason) == ("skipped", "no_consent")


async def test_service_message_is_not_blocked_by_missing_marketing_consent(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 105, consent=False)
        await insert_deliveries(session, [_row(c, kind="service")])
        pushes = await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w")
        assert [p.kind for p in pushes] == ["service"]


async def test_customer_who_blocked_the_bot_gets_blocked_rows(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 106, tags=["blocked_bot"])
        await insert_deliveries(session, [_row(c), _row(c, key="rule:x:1", kind="service")])
        assert await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w") == []
        rows = list(await session.scalars(select(CampaignDelivery)))
        assert {(r.state, r.reason) for r in rows} == {("blocked", "unreachable")}


async def test_quiet_hours_defer_to_the_customers_morning_and_keep_the_row_queued(
    db: Database,
) -> None:
    # 12:00 UTC is 05:00 in Los Angeles (PDT): inside quiet hours until 09:00 local = 16:00 UTC.
    async with db.sessions() as session:
        c = await _customer(session, 107, tz="America/Los_Angeles")
        await insert_deliveries(session, [_row(c)])
        assert await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w") == []
        row = await _only(session)
        assert (row.state, row.reason) == ("queued", "quiet_hours")
        assert row.due_at == datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
        # At 09:00 local it goes out.
        later = FixedClock(datetime(2026, 6, 15, 16, 0, tzinfo=UTC))
        assert len(await DeliveryService(session, later, _settings()).claim_due(10, "w")) == 1


async def test_quiet_hours_late_evening_defer_to_next_morning() -> None:
    service = DeliveryService.__new__(DeliveryService)
    service._settings = _settings()
    service._quiet_start, service._quiet_end = parse_hhmm("21:00"), parse_hhmm("09:00")
    # 14:30 UTC = 22:30 Shanghai → 09:00 Shanghai next day = 01:00 UTC.
    at = datetime(2026, 6, 15, 14, 30, tzinfo=UTC)
    assert service._quiet_until(at, "Asia/Shanghai") == datetime(2026, 6, 16, 1, 0, tzinfo=UTC)
    assert service._quiet_until(NOW, "Asia/Shanghai") is None  # 20:00 local


async def test_frequency_cap_skips_the_third_promotion_in_seven_days(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        c = await _customer(session, 108)
        await insert_deliveries(
            session,
            [
                _row(c, key=f"campaign:{i}:x", due_at=NOW - timedelta(minutes=10 - i))
                for i in range(3)
            ],
        )
        # A service message does not count and is never capped.
        await insert_deliveries(session, [_row(c, key="rule:survey:1", kind="service")])
        pushes = await DeliveryService(session, clock, _settings()).claim_due(10, "w")
        assert sorted(p.kind for p in pushes) == ["marketing", "marketing", "service"]
        capped = await session.scalars(
            select(CampaignDelivery).where(CampaignDelivery.state == "skipped")
        )
        assert [(r.occurrence_key, r.reason) for r in capped] == [("campaign:2:x", "frequency_cap")]


async def test_frequency_cap_counts_earlier_sends_and_forgets_them_after_the_window(
    db: Database,
) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 109)
        old = NOW - timedelta(days=8)
        recent = NOW - timedelta(days=2)
        await insert_deliveries(
            session,
            [
                _row(c, key="campaign:a:x", state="sent", sending_at=old, sent_at=old),
                _row(c, key="campaign:b:x", state="sent", sending_at=recent, sent_at=recent),
                _row(c, key="campaign:c:x"),
                _row(c, key="campaign:d:x", due_at=NOW),
            ],
        )
        pushes = await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w")
        assert len(pushes) == 1  # 1 recent + 1 now = the cap of 2


async def test_live_agent_conversation_defers_promotions_not_service_messages(
    db: Database,
) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 110)
        session.add(Conversation(customer_id=c.id, chat_id=110, owner="agent"))
        await insert_deliveries(session, [_row(c), _row(c, key="rule:survey:1", kind="service")])
        pushes = await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w")
        assert [p.kind for p in pushes] == ["service"]
        row = (
            await session.scalars(
                select(CampaignDelivery).where(CampaignDelivery.kind == "marketing")
            )
        ).one()
        assert (row.state, row.reason) == ("queued", "agent_conversation")
        assert row.due_at == NOW + timedelta(minutes=30)


async def test_open_complaint_defers_the_promotion_until_it_is_resolved(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 111)
        ticket = Ticket(
            ticket_number="TK-00000001", customer_id=c.id, kind="complaint", status="in_progress"
        )
        session.add(ticket)
        await insert_deliveries(session, [_row(c)])
        clock = FixedClock(NOW)
        assert await DeliveryService(session, clock, _settings()).claim_due(10, "w") == []
        row = await _only(session)
        assert (row.state, row.reason) == ("queued", "open_complaint")
        ticket.status = "resolved"
        clock.advance(timedelta(minutes=30))
        assert len(await DeliveryService(session, clock, _settings()).claim_due(10, "w")) == 1


async def test_paused_campaign_rows_stay_queued_and_cancelled_ones_are_cancelled(
    db: Database,
) -> None:
    async with db.sessions() as session:
        paused = Campaign(name="p", state="paused")
        cancelled = Campaign(name="c", state="cancelled")
        session.add_all([paused, cancelled])
        await session.flush()
        c = await _customer(session, 112)
        await insert_deliveries(
            session,
            [
                _row(c, key=f"campaign:{paused.id}:x", campaign_id=paused.id),
                _row(c, key=f"campaign:{cancelled.id}:x", campaign_id=cancelled.id),
            ],
        )
        assert await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w") == []
        states = {
            r.campaign_id: (r.state, r.reason)
            for r in await session.scalars(select(CampaignDelivery))
        }
        assert states == {paused.id: ("queued", None), cancelled.id: ("cancelled", "cancelled")}


async def test_unlinked_or_erased_customer_is_skipped(db: Database) -> None:
    async with db.sessions() as session:
        gone = await _customer(session, 113)
        unlinked = await _customer(session, 114)
        await insert_deliveries(session, [_row(gone), _row(unlinked)])
        gone.erased_at = NOW
        unlinked.telegram_user_id = None
        await session.flush()
        assert await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w") == []
        reasons = {r.customer_id: r.reason for r in await session.scalars(select(CampaignDelivery))}
        assert reasons == {gone.id: "erased", unlinked.id: "unreachable"}


async def test_mark_sent_records_the_message_id_once(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 115)
        await insert_deliveries(session, [_row(c)])
        service = DeliveryService(session, FixedClock(NOW), _settings())
        (push,) = await service.claim_due(10, "w")
        assert await service.mark_sent(push.delivery_id, 777) is True
        assert await service.mark_sent(push.delivery_id, 778) is False  # no double transition
        row = await _state(session, push.delivery_id)
        assert (row.state, row.telegram_message_id, row.sent_at) == ("sent", 777, NOW)


async def test_403_blocks_the_row_tags_the_customer_and_blocks_later_pushes(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 116)
        await insert_deliveries(session, [_row(c)])
        service = DeliveryService(session, FixedClock(NOW), _settings())
        (push,) = await service.claim_due(10, "w")
        assert await service.mark_unreachable(
            push.delivery_id, "Forbidden: bot was blocked by the user"
        )
        row = await _state(session, push.delivery_id)
        assert row.state == "blocked" and row.reason is not None and "blocked" in row.reason
        customer = await session.get(Customer, c.id, populate_existing=True)
        assert customer is not None and "blocked_bot" in customer.tags
        await insert_deliveries(session, [_row(c, key="campaign:2:x", kind="service")])
        assert await service.claim_due(10, "w") == []


async def test_transient_errors_retry_with_attempts_then_fail_with_the_error(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        c = await _customer(session, 117)
        await insert_deliveries(session, [_row(c, kind="service")])
        service = DeliveryService(session, clock, _settings(max_attempts=2))
        (push,) = await service.claim_due(10, "w")
        retry_at = NOW + timedelta(seconds=30)
        assert await service.mark_retry(push.delivery_id, "Bad Gateway", retry_at) == "queued"
        row = await _state(session, push.delivery_id)
        assert (row.state, row.attempts, row.due_at) == ("queued", 1, retry_at)
        clock.set(retry_at)
        (push,) = await service.claim_due(10, "w")
        assert await service.mark_retry(push.delivery_id, "Bad Gateway", retry_at) == "failed"
        row = await _state(session, push.delivery_id)
        assert (row.state, row.attempts, row.reason) == ("failed", 2, "error: Bad Gateway")


async def test_release_after_429_requeues_without_counting_an_attempt(db: Database) -> None:
    async with db.sessions() as session:
        c = await _customer(session, 118)
        await insert_deliveries(session, [_row(c)])
        service = DeliveryService(session, FixedClock(NOW), _settings())
        (push,) = await service.claim_due(10, "w")
        later = NOW + timedelta(seconds=5)
        assert await service.release(push.delivery_id, later)
        row = await _state(session, push.delivery_id)
        assert (row.state, row.attempts, row.due_at) == ("queued", 0, later)


async def test_stale_sending_rows_are_counted_unknown_and_never_reclaimed(db: Database) -> None:
    clock = FixedClock(NOW)
    async with db.sessions() as session:
        c = await _customer(session, 119)
        await insert_deliveries(session, [_row(c, kind="service")])
        service = DeliveryService(session, clock, _settings())
        assert len(await service.claim_due(10, "w")) == 1  # and then the worker died
        assert await service.stale_sending() == 0
        clock.advance(timedelta(minutes=11))
        assert await service.stale_sending() == 1
        assert await service.claim_due(10, "w") == []


async def test_test_send_without_customer_goes_out(db: Database) -> None:
    async with db.sessions() as session:
        await insert_deliveries(session, [_row(None, key="test:1:x", kind="service")])
        (push,) = await DeliveryService(session, FixedClock(NOW), _settings()).claim_due(10, "w")
        assert push.chat_id == 999 and push.customer_id is None


def test_quiet_hours_setting_that_is_not_a_time_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="21h"):
        parse_hhmm("21h", "quiet_hours_start")


@pytest.mark.postgres
async def test_two_workers_claim_disjoint_rows_with_skip_locked(db: Database) -> None:
    if db.kind != "postgres":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    async with db.sessions() as session:
        customers = [await _customer(session, 200 + i) for i in range(40)]
        await insert_deliveries(session, [_row(c, kind="service") for c in customers])
        await session.commit()

    async def worker(name: str) -> list[int]:
        async with db.sessions() as s:
            pushes = await DeliveryService(s, FixedClock(NOW), _settings()).claim_due(25, name)
            await asyncio.sleep(0.2)  # hold the row locks while the other worker claims
            await s.commit()
            return [p.delivery_id for p in pushes]

    a, b = await asyncio.gather(worker("a"), worker("b"))
    assert not set(a) & set(b)
    assert len(a) + len(b) == 40


async def test_mark_sent_many_records_every_message_id_and_skips_rows_not_sending(
    db: Database,
) -> None:
    async with db.sessions() as session:
        customers = [await _customer(session, 300 + i) for i in range(3)]
        await insert_deliveries(session, [_row(c, kind="service") for c in customers])
        service = DeliveryService(session, FixedClock(NOW), _settings())
        pushes = await service.claim_due(2, "w")
        ids = [p.delivery_id for p in pushes]
        queued = (
            await session.scalars(
                select(CampaignDelivery.id).where(CampaignDelivery.state == "queued")
            )
        ).one()
        await service.mark_sent_many([(ids[0], 10), (ids[1], 11), (queued, 12)])
        rows = {
            r.id: (r.state, r.telegram_message_id)
            for r in await session.scalars(
                select(CampaignDelivery).execution_options(populate_existing=True)
            )
        }
        assert rows == {ids[0]: ("sent", 10), ids[1]: ("sent", 11), queued: ("queued", None)}

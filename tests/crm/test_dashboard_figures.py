"""Dashboard figures over a date range: conversations per day, bot-only resolution and
handoff shares, the median first agent reply, satisfaction per week, tickets by status and
category with SLA breaches, lifecycle stages."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.analytics.dashboard import MAX_DAYS, DashboardService, parse_range
from crm_core.clock import FixedClock
from crm_core.conversations.models import Conversation, Interaction, SatisfactionRating
from crm_core.customers.models import Customer
from crm_core.tickets.models import Ticket
from tests.conftest import Database


async def test_figures_count_only_the_range_and_follow_the_definitions(
    db: Database, clock: FixedClock
) -> None:
    now = clock.now()  # 2026-06-15 12:00 UTC
    day = timedelta(days=1)
    async with db.sessions() as session, session.begin():
        s: AsyncSession = session
        customer = Customer(name="A", language="en", lifecycle_stage="active")
        s.add_all([customer, Customer(name="B", language="zh", lifecycle_stage="at_risk")])
        await s.flush()
        bot_only = Conversation(customer_id=customer.id, started_at=now - day, closed_at=now)
        handed = Conversation(
            customer_id=customer.id, started_at=now - day, queued_at=now - day, closed_at=now
        )
        still_open = Conversation(customer_id=customer.id, started_at=now)
        outside = Conversation(customer_id=customer.id, started_at=now - 60 * day)
        s.add_all([bot_only, handed, still_open, outside])
        await s.flush()
        s.add_all(
            [
                Interaction(
                    conversation_id=handed.id,
                    direction="outbound",
                    text="hi",
                    agent_staff_id=None,
                    created_at=now - day + timedelta(minutes=1),
                ),
                SatisfactionRating(customer_id=customer.id, score=4, created_at=now - day),
                SatisfactionRating(customer_id=customer.id, score=2, created_at=now - day),
                Ticket(
                    ticket_number="TK-00000001",
                    customer_id=customer.id,
                    category="gpu",
                    status="new",
                    sla_due_at=now - timedelta(hours=1),  # open past its SLA: a breach
                    created_at=now - 2 * day,
                ),
                Ticket(
                    ticket_number="TK-00000002",
                    customer_id=customer.id,
                    status="resolved",
                    sla_due_at=now,
                    resolved_at=now - day,  # in time
                    created_at=now - 2 * day,
                ),
            ]
        )
        await s.flush()
    async with db.sessions() as session:
        start, end = date(2026, 6, 1), date(2026, 6, 15)
        figures = await DashboardService(session, clock).figures(start, end)
    assert figures.conversations == 3  # the one 60 days ago is outside
    assert figures.conversations_per_day[-2:] == [(date(2026, 6, 14), 2), (date(2026, 6, 15), 1)]
    assert len(figures.conversations_per_day) == 15
    assert (figures.resolved_by_bot, figures.handed_off) == (1, 1)
    assert round(figures.bot_share, 3) == 0.333
    # No agent has answered yet: the bot's outbound message is not an agent reply.
    assert figures.median_first_response_min is None
    assert figures.satisfaction_by_week == [("2026-W24", 3.0, 2)]
    assert figures.tickets_by_status == {"new": 1, "resolved": 1}
    assert figures.tickets_by_category == {"gpu": 1, "other": 1}
    assert figures.sla_breaches == 1
    assert figures.lifecycle == {"active": 1, "at_risk": 1}


async def test_the_median_first_reply_counts_from_the_queue_to_the_first_agent_message(
    db: Database, clock: FixedClock
) -> None:
    from crm_core.staff.models import StaffUser

    now = clock.now()
    async with db.sessions() as session, session.begin():
        agent = StaffUser(name="Agent", role="agent")
        session.add(agent)
        await session.flush()
        for minutes in (2, 6, 30):
            conv = Conversation(started_at=now, queued_at=now, owner="agent")
            session.add(conv)
            await session.flush()
            for later in (minutes, minutes + 5):
                session.add(
                    Interaction(
                        conversation_id=conv.id,
                        direction="outbound",
                        text="x",
                        agent_staff_id=agent.id,
                        created_at=now + timedelta(minutes=later),
                    )
                )
    async with db.sessions() as session:
        figures = await DashboardService(session, clock).figures(now.date(), now.date())
    assert figures.median_first_response_min == 6.0
    assert figures.handed_off == 3 and figures.handoff_rate == 1.0


def test_a_bad_or_reversed_range_falls_back_and_is_capped() -> None:
    today = date(2026, 6, 15)
    assert parse_range(None, None, today) == (date(2026, 5, 17), today)
    assert parse_range("2026-06-10", "2026-06-01", today) == (date(2026, 6, 1), date(2026, 6, 10))
    assert parse_range("garbage", "2026-06-10", today) == (date(2026, 5, 12), date(2026, 6, 10))
    first, last = parse_range("2000-01-01", None, today)
    assert (last - first).days == MAX_DAYS - 1

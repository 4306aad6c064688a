"""Analytics: lifecycle stages, RFM scores and segments, lifetime value, set-based recompute."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.analytics.service import (
    AnalyticsService,
    quantile_scores,
    rfm_segment,
)
from crm_core.clock import FixedClock
from crm_core.customers.models import Customer
from crm_core.errors import NotFound
from crm_core.orders.models import Order
from crm_core.tickets.models import Ticket
from tests.conftest import Database

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
_numbers = iter(range(10_000_000, 99_999_999))


async def customer_with_orders(
    session: AsyncSession,
    name: str,
    orders: list[tuple[float, str, str]],
    *,
    last_contact_days_ago: float | None = None,
) -> Customer:
    """A customer with orders given as (days before NOW, total, status)."""
    customer = Customer(
        name=name,
        updated_at=datetime(2020, 1, 1, tzinfo=UTC),
        last_contact_at=(
            NOW - timedelta(days=last_contact_days_ago)
            if last_contact_days_ago is not None
            else None
        ),
    )
    session.add(customer)
    await session.flush()
    for days_ago, total, status in orders:
        session.add(
            Order(
                order_number=f"SO-{next(_numbers)}",
                customer_id=customer.id,
                status=status,
                placed_at=NOW - timedelta(days=days_ago),
                total=Decimal(total),
            )
        )
    await session.flush()
    return customer


async def stored(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    row = (
        await session.execute(
            select(
                Customer.lifecycle_stage,
                Customer.rfm_recency,
                Customer.rfm_frequency,
                Customer.rfm_monetary,
                Customer.rfm_segment,
                Customer.lifetime_value,
                Customer.updated_at,
            ).where(Customer.id == customer.id)
        )
    ).one()
    return dict(row._mapping)


@pytest.fixture
def service(session: AsyncSession, clock: FixedClock) -> AnalyticsService:
    return AnalyticsService(session, clock, CrmSection())


@contextmanager
def count_statements(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


def test_quantile_scores_share_a_score_on_ties_and_run_1_to_q() -> None:
    assert quantile_scores([10, 10, 20, 30], 4) == [1, 1, 3, 4]
    assert quantile_scores([5, 4, 3, 2, 1], 5) == [5, 4, 3, 2, 1]
    assert quantile_scores([7, 7, 7], 5) == [1, 1, 1]
    assert quantile_scores([], 5) == []
    assert max(quantile_scores(list(range(1000)), 5)) == 5


def test_rfm_segment_mapping() -> None:
    assert rfm_segment(5, 5, 5, 5) == "champions"
    assert rfm_segment(3, 3, 4, 5) == "loyal"
    assert rfm_segment(5, 1, 2, 5) == "new"
    assert rfm_segment(4, 2, 2, 5) == "potential_loyalist"
    assert rfm_segment(1, 5, 4, 5) == "cant_lose"
    assert rfm_segment(2, 3, 3, 5) == "at_risk"
    assert rfm_segment(2, 1, 2, 5) == "hibernating"
    assert rfm_segment(1, 1, 1, 5) == "lost"
    # Other quantile counts are rescaled to 1..5 first: 3 of 3 is the top.
    assert rfm_segment(3, 3, 3, 3) == "champions"


async def test_lifecycle_each_stage(session: AsyncSession, service: AnalyticsService) -> None:
    c = {
        "prospect": await customer_with_orders(session, "no orders", []),
        "prospect_cancelled": await customer_with_orders(
            session, "only cancelled", [(10, "100", "cancelled")]
        ),
        "new": await customer_with_orders(session, "first 30d", [(30, "100", "delivered")]),
        "new_edge": await customer_with_orders(session, "first 90d", [(90, "100", "delivered")]),
        "active_edge": await customer_with_orders(session, "first 91d", [(91, "100", "delivered")]),
        "loyal": await customer_with_orders(
            session,
            "3 in window",
            [(700, "100", "delivered"), (200, "100", "delivered"), (10, "100", "delivered")],
        ),
        "active_not_loyal": await customer_with_orders(
            session,
            "3 but one outside window",
            [(800, "100", "delivered"), (200, "100", "delivered"), (10, "100", "delivered")],
        ),
        "active": await customer_with_orders(session, "last 365d", [(365, "100", "delivered")]),
        "at_risk": await customer_with_orders(session, "last 366d", [(366, "100", "delivered")]),
        "at_risk_730": await customer_with_orders(
            session, "last 730d", [(730, "100", "delivered")]
        ),
        "churned": await customer_with_orders(session, "last 731d", [(731, "100", "delivered")]),
        "at_risk_contacted": await customer_with_orders(
            session, "old but talked", [(900, "100", "delivered")], last_contact_days_ago=100
        ),
        "churned_old_contact": await customer_with_orders(
            session, "old, old talk", [(900, "100", "delivered")], last_contact_days_ago=400
        ),
        "returned_still_a_purchase": await customer_with_orders(
            session, "returned", [(20, "100", "returned")]
        ),
    }

    result = await service.recompute()

    stages = {key: (await stored(session, cust))["lifecycle_stage"] for key, cust in c.items()}
    assert stages == {
        "prospect": "prospect",
        "prospect_cancelled": "prospect",
        "new": "new",
        "new_edge": "new",
        "active_edge": "active",
        "loyal": "loyal",
        "active_not_loyal": "active",
        "active": "active",
        "at_risk": "at_risk",
        "at_risk_730": "at_risk",
        "churned": "churned",
        "at_risk_contacted": "at_risk",
        "churned_old_contact": "churned",
        "returned_still_a_purchase": "new",
    }
    assert result.customers == len(c) and result.customers_with_orders == len(c) - 2
    assert result.stages == {
        "prospect": 2,
        "new": 3,
        "active": 3,
        "loyal": 1,
        "at_risk": 3,
        "churned": 2,
    }


async def test_rfm_on_a_small_known_set(
    session: AsyncSession, service: AnalyticsService, db: Database
) -> None:
    def spread(n: int, last: int) -> list[tuple[float, str, str]]:
        return [(last + 10 * k, "100", "delivered") for k in range(n)]

    # recency rank / frequency rank / monetary rank → expected segment
    a = await customer_with_orders(session, "A", spread(1, 5))  # 5/1/1 → new
    b = await customer_with_orders(session, "B", spread(5, 20))  # 4/5/5 → champions
    c = await customer_with_orders(session, "C", spread(3, 100))  # 3/3/3 → loyal
    d = await customer_with_orders(session, "D", spread(4, 300))  # 2/4/4 → cant_lose
    e = await customer_with_orders(session, "E", spread(2, 600))  # 1/2/2 → lost
    nobody = await customer_with_orders(session, "prospect", [])
    service.chunk_size = 4

    with count_statements(db) as statements:
        result = await service.recompute()

    got = {
        name: (await stored(session, cust))
        for name, cust in {"A": a, "B": b, "C": c, "D": d, "E": e, "-": nobody}.items()
    }
    scores = {k: (v["rfm_recency"], v["rfm_frequency"], v["rfm_monetary"]) for k, v in got.items()}
    assert scores == {
        "A": (5, 1, 1),
        "B": (4, 5, 5),
        "C": (3, 3, 3),
        "D": (2, 4, 4),
        "E": (1, 2, 2),
        "-": (None, None, None),
    }
    assert {k: v["rfm_segment"] for k, v in got.items()} == {
        "A": "new",
        "B": "champions",
        "C": "loyal",
        "D": "cant_lose",
        "E": "lost",
        "-": None,
    }
    assert got["B"]["lifetime_value"] == Decimal("500.00")
    assert got["-"]["lifetime_value"] == Decimal("0.00")
    # Derived values do not touch the record's updated_at.
    assert got["A"]["updated_at"] == datetime(2020, 1, 1, tzinfo=UTC)
    # Set-based: one aggregate SELECT, then one executemany per chunk of 4 changed rows.
    assert len(statements) == 1 + 2
    assert result.updated == 6
    assert result.segments == {"new": 1, "champions": 1, "loyal": 1, "cant_lose": 1, "lost": 1}

    again = await service.recompute()
    assert again.updated == 0


async def test_clv_excludes_cancelled_and_returned_orders(
    session: AsyncSession, service: AnalyticsService
) -> None:
    customer = await customer_with_orders(
        session,
        "Mixed",
        [
            (10, "1000.50", "delivered"),
            (20, "250.25", "shipped"),
            (30, "500.00", "cancelled"),
            (40, "300.00", "returned"),
        ],
    )

    await service.recompute()
    summary = await service.customer_summary(customer.id)

    assert (await stored(session, customer))["lifetime_value"] == Decimal("1250.75")
    assert summary.lifetime_value == Decimal("1250.75")
    assert summary.order_count == 3  # the returned order was still a purchase
    assert summary.last_order_at == NOW - timedelta(days=10)


async def test_customer_summary_shows_live_stage_stored_rfm_and_open_tickets(
    session: AsyncSession, service: AnalyticsService, clock: FixedClock
) -> None:
    customer = await customer_with_orders(session, "Sum", [(400, "99.00", "delivered")])
    for number, status in [("TK-00000001", "in_progress"), ("TK-00000002", "closed")]:
        session.add(
            Ticket(ticket_number=number, customer_id=customer.id, status=status, symptom="x")
        )
    await session.flush()
    before = await service.customer_summary(customer.id)

    await service.recompute()
    clock.set(NOW + timedelta(days=400))  # the stage moves on without a recompute
    after = await service.customer_summary(customer.id)

    assert before.rfm_segment is None and before.lifecycle_stage == "at_risk"
    assert before.open_tickets == 1 and before.currency == "CNY"
    assert after.rfm_recency == 1 and after.rfm_segment is not None
    assert after.lifecycle_stage == "churned"
    with pytest.raises(NotFound):
        await service.customer_summary(424242)

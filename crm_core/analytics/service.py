"""Customer analytics: lifecycle stage, RFM scores and segment, lifetime value.

Which orders count
------------------
* Purchases (lifecycle, recency, frequency): every order that was not cancelled. A returned
  order still was a purchase and a contact with the customer.
* Money (monetary score, lifetime value): orders that were neither cancelled nor returned;
  lifetime value = the sum of their totals (partial refunds are not subtracted).

Lifecycle stage (`CrmSection.lifecycle`; "within N days" means now − t ≤ N days, "older than
N days" means now − t > N days). The rules are checked in this order; the first match wins:

1. prospect — no purchase at all.
2. new      — the FIRST purchase is within `new_days` (90).
3. loyal    — at least `loyal_min_orders` (3) purchases within `loyal_window_days` (730) and
              the last purchase within `active_days` (365).
4. active   — the last purchase is within `active_days`.
5. churned  — the last purchase is older than `churned_days` (730) and there was no contact
              (`customers.last_contact_at`) within `at_risk_days` (365).
6. at_risk  — everything else: the last purchase is older than `active_days`/`at_risk_days`
              but the customer is not churned (with the defaults active_days = at_risk_days,
              so this is exactly "older than at_risk_days and not churned"; if active_days is
              configured below at_risk_days, the gap also counts as at_risk).

RFM (over customers with at least one purchase; `q` = `rfm_quantiles`, default 5):
* recency = time of the last purchase (more recent is better), frequency = number of
  purchases, monetary = lifetime value.
* score(v) = 1 + ⌊q · (number of customers with a strictly worse value) / n⌋, so scores run
  1..q, equal values share a score, and the best customers get q.
* Segment, from r = recency score and fm = (frequency score + monetary score) / 2, both first
  rescaled to 1..5 (s → ⌈5·s/q⌉); first match wins:

      champions           r ≥ 4 and fm ≥ 4
      loyal               r ≥ 3 and fm ≥ 3
      new                 r ≥ 4 and fm ≤ 1.5    (recent, one small purchase)
      potential_loyalist  r ≥ 3                 (recent, still low frequency/spend)
      cant_lose           r ≤ 2 and fm ≥ 4      (were among the best, gone quiet)
      at_risk             r ≤ 2 and fm ≥ 3
      hibernating         r = 2
      lost                r = 1

Customers without purchases get stage prospect, no RFM scores or segment, lifetime value 0.

Scale: `recompute` runs ONE aggregate query (orders grouped per customer, outer-joined to
customers), streams it in chunks into compact arrays, ranks in Python, and writes back with
a Core UPDATE executed as executemany in chunks — only for rows whose values changed. No ORM
object is loaded per customer. `customers.updated_at` is left alone: these are derived
values, not edits of the customer's record.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.analytics.schemas import CustomerSummary, RecomputeResult
from crm_core.clock import Clock
from crm_core.customers.models import Customer
from crm_core.errors import NotFound, ValidationFailed
from crm_core.orders.models import Order
from crm_core.tickets.models import Ticket
from crm_core.tickets.state_machine import DONE_STATES

if TYPE_CHECKING:
    from app.settings import CrmSection, LifecycleRules

NOT_A_PURCHASE = ("cancelled",)
NO_REVENUE = ("cancelled", "returned")

STAGES = ("prospect", "new", "loyal", "active", "churned", "at_risk")
SEGMENTS = (
    "champions",
    "loyal",
    "new",
    "potential_loyalist",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
)
_NONE = -1  # "no value" in the compact integer arrays
_NO_MONEY = -(2**62)


@dataclass(frozen=True)
class PurchaseStats:
    """A customer's purchases as the lifecycle rules see them."""

    orders: int
    first_at: datetime | None
    last_at: datetime | None
    orders_in_loyal_window: int


def lifecycle_stage(
    stats: PurchaseStats, last_contact_at: datetime | None, now: datetime, rules: LifecycleRules
) -> str:
    """The lifecycle stage by the ordered rules of the module docstring."""
    if stats.orders == 0 or stats.first_at is None or stats.last_at is None:
        return "prospect"
    since_first = now - stats.first_at
    since_last = now - stats.last_at
    if since_first <= timedelta(days=rules.new_days):
        return "new"
    recent = since_last <= timedelta(days=rules.active_days)
    if recent and stats.orders_in_loyal_window >= rules.loyal_min_orders:
        return "loyal"
    if recent:
        return "active"
    no_recent_contact = last_contact_at is None or now - last_contact_at > timedelta(
        days=rules.at_risk_days
    )
    if since_last > timedelta(days=rules.churned_days) and no_recent_contact:
        return "churned"
    return "at_risk"


def quantile_scores(values: Sequence[float], q: int) -> list[int]:
    """1..q per value: 1 + ⌊q · (values strictly lower) / n⌋ (ties share a score)."""
    n = len(values)
    if n == 0:
        return []
    ordered = sorted(values)
    return [1 + (bisect_left(ordered, v) * q) // n for v in values]


def _to_five(score: int, q: int) -> int:
    return -(-score * 5 // q)  # ceil(5 * score / q)


def rfm_segment(recency: int, frequency: int, monetary: int, q: int) -> str:
    """Segment name from RFM scores on a 1..q scale (mapping in the module docstring)."""
    r = _to_five(recency, q)
    fm = (_to_five(frequency, q) + _to_five(monetary, q)) / 2
    if r >= 4 and fm >= 4:
        return "champions"
    if r >= 3 and fm >= 3:
        return "loyal"
    if r >= 4 and fm <= 1.5:
        return "new"
    if r >= 3:
        return "potential_loyalist"
    if fm >= 4:
        return "cant_lose"
    if fm >= 3:
        return "at_risk"
    if r == 2:
        return "hibernating"
    return "lost"


def _cents(value: Decimal | None) -> int:
    return _NO_MONEY if value is None else int((value * 100).to_integral_value())


def _money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


class _Table:
    """Per-customer values of one recompute run, in compact arrays (1M customers ≈ 60 MB)."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.stage = array("b")  # new stage, index into STAGES
        self.stage_or_ltv_changed = array("b")
        self.ltv = array("q")  # new lifetime value, cents
        self.cur_r = array("b")
        self.cur_f = array("b")
        self.cur_m = array("b")
        self.cur_segment = array("b")
        self.rfm_pos = array("q")  # index into the RFM arrays, or _NONE
        # RFM inputs of customers with purchases.
        self.last_ts = array("d")
        self.frequency = array("d")
        self.monetary = array("d")


class AnalyticsService:
    """Recomputes lifecycle/RFM/lifetime value for all customers; per-customer summaries."""

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: CrmSection,
        *,
        chunk_size: int = 5000,
    ) -> None:
        self.session = session
        self.clock = clock
        self.settings = settings
        self.chunk_size = chunk_size

    async def recompute(self, now: datetime | None = None) -> RecomputeResult:
        """Recompute every customer's stage, RFM scores/segment and lifetime value."""
        now = now or self.clock.now()
        q = self.settings.rfm_quantiles
        if q < 1:
            raise ValidationFailed("crm.rfm_quantiles must be at least 1.")
        started = time.perf_counter()
        table = await self._load(now)
        scores = self._rfm_scores(table, q)
        updated, stages, segments = await self._write(table, scores, q)
        return RecomputeResult(
            computed_at=now,
            customers=len(table.ids),
            customers_with_orders=len(table.last_ts),
            updated=updated,
            stages=dict(stages),
            segments=dict(segments),
            seconds=round(time.perf_counter() - started, 3),
        )

    async def customer_summary(self, customer_id: int) -> CustomerSummary:
        """Live order figures and stage, stored RFM, open tickets of one customer."""
        # populate_existing: `recompute` writes with Core UPDATEs, which do not refresh
        # Customer objects already in this session's identity map.
        customer = await self.session.get(Customer, customer_id, populate_existing=True)
        if customer is None:
            raise NotFound(f"No customer #{customer_id}.")
        now = self.clock.now()
        stats, ltv = await self._customer_stats(customer_id, now)
        open_tickets = await self.session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(
                Ticket.customer_id == customer_id,
                Ticket.status.not_in([s.value for s in DONE_STATES]),
            )
        )
        return CustomerSummary(
            customer_id=customer.id,
            name=customer.name,
            lifecycle_stage=lifecycle_stage(
                stats, customer.last_contact_at, now, self.settings.lifecycle
            ),
            order_count=stats.orders,
            first_order_at=stats.first_at,
            last_order_at=stats.last_at,
            lifetime_value=ltv,
            currency=self.settings.currency,
            last_contact_at=customer.last_contact_at,
            open_tickets=int(open_tickets or 0),
            rfm_recency=customer.rfm_recency,
            rfm_frequency=customer.rfm_frequency,
            rfm_monetary=customer.rfm_monetary,
            rfm_segment=customer.rfm_segment,
        )

    async def stage_counts(self) -> dict[str, int]:
        """Customers per stored lifecycle stage (after the last recompute)."""
        result = await self.session.execute(
            select(Customer.lifecycle_stage, func.count()).group_by(Customer.lifecycle_stage)
        )
        return {stage: int(n) for stage, n in result.all()}

    # --- internals -------------------------------------------------------------------------

    def _aggregate(self, now: datetime) -> Any:
        """Per-customer purchase aggregates (one GROUP BY over orders) as a subquery."""
        window_start = now - timedelta(days=self.settings.lifecycle.loyal_window_days)
        return (
            select(
                Order.customer_id.label("customer_id"),
                func.count().label("orders"),
                func.min(Order.placed_at).label("first_at"),
                func.max(Order.placed_at).label("last_at"),
                func.sum(case((Order.placed_at >= window_start, 1), else_=0)).label("in_window"),
                func.sum(case((Order.status.not_in(NO_REVENUE), Order.total), else_=0)).label(
                    "monetary"
                ),
            )
            .where(Order.status.not_in(NOT_A_PURCHASE))
            .group_by(Order.customer_id)
        )

    async def _customer_stats(
        self, customer_id: int, now: datetime
    ) -> tuple[PurchaseStats, Decimal]:
        row = (
            await self.session.execute(self._aggregate(now).where(Order.customer_id == customer_id))
        ).one_or_none()
        if row is None:
            return PurchaseStats(0, None, None, 0), Decimal("0.00")
        stats = PurchaseStats(int(row.orders), row.first_at, row.last_at, int(row.in_window or 0))
        return stats, _money(_cents(row.monetary or Decimal("0")))

    async def _load(self, now: datetime) -> _Table:
        """Pass 1: stream the one aggregate query into compact arrays; stage decided here."""
        agg = self._aggregate(now).subquery()
        stmt = select(
            Customer.id,
            Customer.last_contact_at,
            Customer.lifecycle_stage,
            Customer.lifetime_value,
            Customer.rfm_recency,
            Customer.rfm_frequency,
            Customer.rfm_monetary,
            Customer.rfm_segment,
            agg.c.orders,
            agg.c.first_at,
            agg.c.last_at,
            agg.c.in_window,
            agg.c.monetary,
        ).outerjoin(agg, agg.c.customer_id == Customer.id)
        rules = self.settings.lifecycle
        stage_index = {name: i for i, name in enumerate(STAGES)}
        segment_index = {name: i for i, name in enumerate(SEGMENTS)}
        t = _Table()
        result = await self.session.stream(stmt.execution_options(yield_per=self.chunk_size))
        async for rows in result.partitions(self.chunk_size):
            for row in rows:
                (cid, contact, cur_stage, cur_ltv, cur_r, cur_f, cur_m, cur_seg) = row[:8]
                orders, first_at, last_at, in_window, monetary = row[8:]
                stats = PurchaseStats(int(orders or 0), first_at, last_at, int(in_window or 0))
                stage = lifecycle_stage(stats, contact, now, rules)
                ltv = _cents(monetary or Decimal("0"))
                t.ids.append(cid)
                t.stage.append(stage_index[stage])
                t.ltv.append(ltv)
                t.stage_or_ltv_changed.append(int(stage != cur_stage or ltv != _cents(cur_ltv)))
                t.cur_r.append(_NONE if cur_r is None else cur_r)
                t.cur_f.append(_NONE if cur_f is None else cur_f)
                t.cur_m.append(_NONE if cur_m is None else cur_m)
                t.cur_segment.append(segment_index.get(cur_seg, _NONE) if cur_seg else _NONE)
                if stats.orders and last_at is not None:
                    t.rfm_pos.append(len(t.last_ts))
                    t.last_ts.append(last_at.timestamp())
                    t.frequency.append(float(stats.orders))
                    t.monetary.append(float(ltv))
                else:
                    t.rfm_pos.append(_NONE)
        return t

    @staticmethod
    def _rfm_scores(t: _Table, q: int) -> tuple[list[int], list[int], list[int]]:
        """Pass 2: quantile scores over every customer with purchases."""
        return (
            quantile_scores(t.last_ts, q),
            quantile_scores(t.frequency, q),
            quantile_scores(t.monetary, q),
        )

    async def _write(
        self, t: _Table, scores: tuple[list[int], list[int], list[int]], q: int
    ) -> tuple[int, Counter[str], Counter[str]]:
        """Pass 3: bulk UPDATE (executemany, in chunks) of the rows that changed."""
        customers = cast(Table, Customer.__table__)
        stmt = (
            update(customers)
            .where(customers.c.id == bindparam("b_id"))
            .values(
                lifecycle_stage=bindparam("b_stage"),
                rfm_recency=bindparam("b_r"),
                rfm_frequency=bindparam("b_f"),
                rfm_monetary=bindparam("b_m"),
                rfm_segment=bindparam("b_segment"),
                lifetime_value=bindparam("b_ltv"),
                # Derived values are not an edit of the record: keep updated_at as it was.
                updated_at=customers.c.updated_at,
            )
        )
        r_scores, f_scores, m_scores = scores
        segment_index = {name: i for i, name in enumerate(SEGMENTS)}
        stages: Counter[str] = Counter()
        segments: Counter[str] = Counter()
        batch: list[dict[str, Any]] = []
        updated = 0
        for i in range(len(t.ids)):
            stage = STAGES[t.stage[i]]
            stages[stage] += 1
            pos = t.rfm_pos[i]
            r: int | None = None
            f: int | None = None
            m: int | None = None
            segment: str | None = None
            if pos != _NONE:
                r, f, m = r_scores[pos], f_scores[pos], m_scores[pos]
                segment = rfm_segment(r, f, m, q)
                segments[segment] += 1
            changed = (
                t.stage_or_ltv_changed[i]
                or (r if r is not None else _NONE) != t.cur_r[i]
                or (f if f is not None else _NONE) != t.cur_f[i]
                or (m if m is not None else _NONE) != t.cur_m[i]
                or (segment_index[segment] if segment else _NONE) != t.cur_segment[i]
            )
            if not changed:
                continue
            batch.append(
                {
                    "b_id": t.ids[i],
                    "b_stage": stage,
                    "b_r": r,
                    "b_f": f,
                    "b_m": m,
                    "b_segment": segment,
                    "b_ltv": _money(t.ltv[i]),
                }
            )
            if len(batch) >= self.chunk_size:
                await self.session.execute(stmt, batch)
                updated += len(batch)
                batch = []
        if batch:
            await self.session.execute(stmt, batch)
            updated += len(batch)
        return updated, stages, segments

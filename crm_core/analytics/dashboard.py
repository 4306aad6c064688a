"""The console dashboard's figures over a date range, as one DTO (`DashboardService.figures`).

Definitions (UTC days):
- conversations per day: conversations started that day;
- handed off: the conversation was queued for a person (`queued_at`) or an agent wrote in it;
  resolved by the bot = closed and never handed off; shares are over conversations started
  in the range;
- first response: from `queued_at` to the first outbound message with an agent, per handed-
  off conversation started in the range (median, minutes);
- satisfaction: mean rating per ISO week of the rating;
- tickets by status and category: tickets created in the range; SLA breaches: of those, the
  ones resolved after `sla_due_at`, or still open past it now;
- lifecycle: every customer's stored stage (now, not ranged);
- campaigns: the report of each campaign that has sends (conversions and revenue attributed
  by `crm_core.campaigns.attribution`).
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field
from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import Clock
from crm_core.conversations.models import Conversation, Interaction, SatisfactionRating
from crm_core.customers.models import Customer
from crm_core.tickets.models import Ticket
from crm_core.tickets.state_machine import DONE_STATES

MAX_DAYS = 366


class CampaignFigures(BaseModel):
    name: str
    sent: int
    conversions: int
    revenue: Decimal
    currency: str


class DashboardFigures(BaseModel):
    start: date
    end: date  # inclusive
    conversations_per_day: list[tuple[date, int]] = Field(default_factory=list)
    conversations: int = 0
    handed_off: int = 0
    resolved_by_bot: int = 0
    median_first_response_min: float | None = None
    satisfaction_by_week: list[tuple[str, float, int]] = Field(default_factory=list)
    tickets_by_status: dict[str, int] = Field(default_factory=dict)
    tickets_by_category: dict[str, int] = Field(default_factory=dict)
    sla_breaches: int = 0
    lifecycle: dict[str, int] = Field(default_factory=dict)
    campaigns: list[CampaignFigures] = Field(default_factory=list)

    @property
    def bot_share(self) -> float:
        return self.resolved_by_bot / self.conversations if self.conversations else 0.0

    @property
    def handoff_rate(self) -> float:
        return self.handed_off / self.conversations if self.conversations else 0.0


def parse_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """The range of the filter form (default: the last 30 days); bad or reversed input falls
    back to the default rather than failing the dashboard, and is capped at MAX_DAYS."""
    try:
        last = date.fromisoformat(end) if end else today
    except ValueError:
        last = today
    try:
        first = date.fromisoformat(start) if start else last - timedelta(days=29)
    except ValueError:
        first = last - timedelta(days=29)
    if first > last:
        first, last = last, first
    if (last - first).days >= MAX_DAYS:
        first = last - timedelta(days=MAX_DAYS - 1)
    return first, last


class DashboardService:
    """Read-only figures for the console dashboard."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def figures(self, start: date, end: date) -> DashboardFigures:
        lo = datetime.combine(start, time.min, tzinfo=UTC)
        hi = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
        out = DashboardFigures(start=start, end=end)
        agent_wrote = exists().where(
            Interaction.conversation_id == Conversation.id, Interaction.agent_staff_id.is_not(None)
        )
        rows = (
            await self.session.execute(
                select(
                    Conversation.id,
                    Conversation.started_at,
                    Conversation.queued_at,
                    Conversation.closed_at,
                    agent_wrote.label("agent_wrote"),
                ).where(Conversation.started_at >= lo, Conversation.started_at < hi)
            )
        ).all()
        per_day: Counter[date] = Counter()
        handed: list[tuple[int, datetime]] = []
        for conv_id, started, queued, closed, wrote in rows:
            per_day[started.astimezone(UTC).date()] += 1
            if queued is not None or wrote:
                out.handed_off += 1
                if queued is not None:
                    handed.append((conv_id, queued))
            elif closed is not None:
                out.resolved_by_bot += 1
        out.conversations = len(rows)
        day, series = start, []
        while day <= end:
            series.append((day, per_day.get(day, 0)))
            day += timedelta(days=1)
        out.conversations_per_day = series
        out.median_first_response_min = await self._median_first_response(handed)
        out.satisfaction_by_week = await self._satisfaction(lo, hi)
        ticket_rows = (
            await self.session.execute(
                select(Ticket.status, Ticket.category, Ticket.sla_due_at, Ticket.resolved_at).where(
                    Ticket.created_at >= lo, Ticket.created_at < hi
                )
            )
        ).all()
        done = {s.value for s in DONE_STATES}
        now = self.clock.now()
        status: Counter[str] = Counter()
        category: Counter[str] = Counter()
        for st, cat, due, resolved in ticket_rows:
            status[st] += 1
            category[cat or "other"] += 1
            if due is not None and (
                (resolved is not None and resolved > due) or (st not in done and now > due)
            ):
                out.sla_breaches += 1
        out.tickets_by_status = dict(status.most_common())
        out.tickets_by_category = dict(category.most_common())
        stages = await self.session.execute(
            select(Customer.lifecycle_stage, func.count()).group_by(Customer.lifecycle_stage)
        )
        out.lifecycle = {str(s): int(n) for s, n in stages.all()}
        return out

    async def _median_first_response(self, handed: list[tuple[int, datetime]]) -> float | None:
        if not handed:
            return None
        queued = dict(handed)
        first = await self.session.execute(
            select(Interaction.conversation_id, func.min(Interaction.created_at))
            .where(
                Interaction.conversation_id.in_(list(queued)),
                Interaction.direction == "outbound",
                Interaction.agent_staff_id.is_not(None),
            )
            .group_by(Interaction.conversation_id)
        )
        waits = [
            (answered - queued[int(conv)]).total_seconds() / 60
            for conv, answered in first.all()
            if conv is not None and answered is not None and answered >= queued[int(conv)]
        ]
        return round(statistics.median(waits), 1) if waits else None

    async def _satisfaction(self, lo: datetime, hi: datetime) -> list[tuple[str, float, int]]:
        rows = await self.session.execute(
            select(SatisfactionRating.created_at, SatisfactionRating.score).where(
                SatisfactionRating.created_at >= lo, SatisfactionRating.created_at < hi
            )
        )
        weeks: dict[str, list[int]] = {}
        for at, score in rows.all():
            year, week, _ = at.astimezone(UTC).isocalendar()
            weeks.setdefault(f"{year}-W{week:02d}", []).append(int(score))
        return [(w, round(sum(s) / len(s), 2), len(s)) for w, s in sorted(weeks.items())]

"""Test doubles of the campaigns domain's delivery and schedule services (unit tests only;
the engine's integration tests run against the real `crm_core.campaigns` services).

`MemoryDeliveries` keeps the delivery rows in a dict with the same state machine as the
domain: queued → sending (claim) → sent | blocked | queued (retry / release) | failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass
class FakePush:
    delivery_id: int
    chat_id: int
    text: str
    buttons: Any = None
    kind: str = "marketing"
    campaign_id: int | None = 1
    customer_id: int | None = 0


@dataclass
class FakeRow:
    push: FakePush
    state: str = "queued"
    due_at: datetime = field(default_factory=lambda: datetime(2000, 1, 1, tzinfo=UTC))
    attempts: int = 0
    error: str = ""
    message_id: int | None = None
    claimed_by: str | None = None


class MemoryDeliveries:
    """The rows, and a `scope()` that hands out a port (optionally failing, like a database
    that is down: `fail_next`)."""

    def __init__(self, max_attempts: int = 3, now: Any = None) -> None:
        self.rows: dict[int, FakeRow] = {}
        self.max_attempts = max_attempts
        self.now = now or (lambda: datetime.now(UTC))
        self.fail_next = 0
        self.claims = 0

    def add(self, chat_id: int, text: str = "hello", **extra: Any) -> FakeRow:
        delivery_id = len(self.rows) + 1
        row = FakeRow(FakePush(delivery_id, chat_id, text, customer_id=chat_id, **extra))
        self.rows[delivery_id] = row
        return row

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.state] = counts.get(row.state, 0) + 1
        return counts

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[MemoryDeliveries]:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("the database is down (test double)")
        yield self

    async def claim_due(self, limit: int, worker: str) -> Sequence[FakePush]:
        self.claims += 1
        now = self.now()
        due = [r for r in self.rows.values() if r.state == "queued" and r.due_at <= now]
        claimed = due[:limit]
        for row in claimed:
            row.state, row.claimed_by = "sending", worker
        return [row.push for row in claimed]

    def _sending(self, delivery_id: int) -> FakeRow:
        row = self.rows[delivery_id]
        if row.state != "sending":
            raise AssertionError(f"delivery {delivery_id} is {row.state}, not sending")
        return row

    async def mark_sent(self, delivery_id: int, telegram_message_id: int) -> None:
        row = self._sending(delivery_id)
        row.state, row.message_id = "sent", telegram_message_id

    async def mark_unreachable(self, delivery_id: int, error: str) -> None:
        row = self._sending(delivery_id)
        row.state, row.error = "blocked", error

    async def mark_retry(self, delivery_id: int, error: str, retry_at: datetime) -> str:
        row = self._sending(delivery_id)
        row.attempts += 1
        row.error = error
        if row.attempts >= self.max_attempts:
            row.state = "failed"
        else:
            row.state, row.due_at = "queued", retry_at
        return row.state

    async def release(self, delivery_id: int, due_at: datetime) -> None:
        row = self._sending(delivery_id)
        row.state, row.due_at = "queued", due_at

    async def stale_sending(self, older_than: timedelta | None = None) -> int:
        return sum(1 for r in self.rows.values() if r.state == "sending")

    async def get(self, delivery_id: int) -> FakeRow:
        return self.rows[delivery_id]


@dataclass
class FakeSpec:
    campaign_id: int
    one_shot_at: datetime | None = None
    cron: str | None = None
    timezone: str | None = None
    state: str = "scheduled"


class MemoryCampaigns:
    """`schedulable()` / `enqueue_occurrence()` / `run_rules()` over a list of specs."""

    def __init__(self) -> None:
        self.specs: dict[int, FakeSpec] = {}
        self.occurrences: list[tuple[int, datetime]] = []
        self.rule_runs: list[datetime] = []

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[MemoryCampaigns]:
        yield self

    async def schedulable(self) -> Sequence[FakeSpec]:
        return list(self.specs.values())

    async def enqueue_occurrence(self, campaign_id: int, occurrence_at: datetime) -> int:
        if (campaign_id, occurrence_at) in self.occurrences:
            return 0
        self.occurrences.append((campaign_id, occurrence_at))
        return 1

    async def run_rules(self, now: datetime) -> dict[str, int]:
        self.rule_runs.append(now)
        return {}

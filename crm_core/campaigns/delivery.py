"""The delivery engine's state machine over `campaign_deliveries` rows.

    queued ──claim_due──▶ sending ──mark_sent──────▶ sent
      ▲  │                  │  ├──mark_unreachable──▶ blocked   (403: the customer blocked the bot)
      │  │                  │  ├──mark_retry────────▶ queued (due later) … failed after max_attempts
      │  │                  │  └──release───────────▶ queued (429 before Telegram accepted it)
      │  └─ claim-time checks: skipped (no_consent, frequency_cap, unreachable, erased),
      │     blocked (blocked_bot tag), cancelled (campaign cancelled)
      └──── deferred (stays queued, due_at moved): quiet_hours, agent_conversation,
            open_complaint

Crash safety: the sender commits `sending` BEFORE calling Telegram and `sent` after it. A row
left in `sending` (kill -9 between the two) is never resent automatically: `stale_sending`
counts it as `unknown` for the report. Every transition is one conditional UPDATE on the row's
current state, so a late or repeated call cannot move a row twice.

Claiming uses `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of worker
processes claim disjoint rows; SQLite serialises writers (one process, same code path).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import CursorResult, Table, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.campaigns.models import Campaign, CampaignDelivery
from crm_core.campaigns.repository import dialect_name
from crm_core.campaigns.schemas import DeliveryDTO, OutgoingPush
from crm_core.clock import Clock
from crm_core.conversations.models import Conversation
from crm_core.customers.models import Customer
from crm_core.errors import NotFound, ValidationFailed
from crm_core.tickets.models import Ticket
from crm_core.tickets.state_machine import DONE_STATES

if TYPE_CHECKING:
    from app.settings import CampaignsSection

log = logging.getLogger(__name__)

BLOCKED_TAG = "blocked_bot"  # the CRM's existing marker (bot/middlewares/interactions.py)
BUSY_OWNERS = ("queued", "agent")  # a customer waiting for or talking to an agent
ERROR_MAX = 280
TERMINAL_STATES = ("sent", "failed", "blocked", "skipped", "cancelled")


@dataclass(frozen=True)
class _Target:
    """What the claim-time checks need to know about one customer."""

    telegram_user_id: int | None
    consent: bool
    tags: list[str]
    timezone: str
    erased: bool


@dataclass(frozen=True)
class _Decision:
    state: str
    reason: str
    due_at: datetime | None = None  # set: deferred (stays queued, due later)


class DeliveryService:
    """Claims due pushes and records what Telegram said. Nothing here commits."""

    def __init__(self, session: AsyncSession, clock: Clock, settings: CampaignsSection) -> None:
        self._session = session
        self._clock = clock
        self._settings = settings
        self._quiet_start = parse_hhmm(settings.quiet_hours_start, "quiet_hours_start")
        self._quiet_end = parse_hhmm(settings.quiet_hours_end, "quiet_hours_end")

    # ------------------------------------------------------------------ claim

    async def claim_due(self, limit: int, worker: str) -> list[OutgoingPush]:
        """Claim up to `limit` due rows for `worker`: checks applied, the rest marked `sending`.

        The caller commits before calling Telegram. Rows of paused campaigns are not touched
        (they stay queued until resumed).
        """
        if limit <= 0:
            return []
        now = self._clock.now()
        table = CampaignDelivery.__table__
        paused = select(Campaign.id).where(Campaign.state == "paused")
        query = (
            select(table)
            .where(
                table.c.state == "queued",
                table.c.due_at <= now,
                or_(table.c.campaign_id.is_(None), table.c.campaign_id.not_in(paused)),
            )
            .order_by(table.c.due_at, table.c.id)
            .limit(limit)
        )
        if dialect_name(self._session) == "postgresql":
            query = query.with_for_update(skip_locked=True, of=table)
        rows = (await self._session.execute(query)).mappings().all()
        if not rows:
            return []

        customer_ids = {r["customer_id"] for r in rows if r["customer_id"] is not None}
        campaign_ids = {r["campaign_id"] for r in rows if r["campaign_id"] is not None}
        targets = await self._targets(customer_ids)
        cancelled = await self._cancelled_campaigns(campaign_ids)
        marketing_ids = {
            r["customer_id"] for r in rows if r["kind"] == "marketing" and r["customer_id"]
        }
        busy = await self._busy(marketing_ids)
        recent = await self._recent_promotions(marketing_ids, now)

        sending: list[dict[str, Any]] = []
        finals: list[tuple[int, str, str]] = []  # (id, state, reason)
        deferred: list[tuple[int, datetime, str]] = []  # (id, new due_at, reason)
        for row in rows:
            decision = self._decide(row, targets, cancelled, busy, recent, now)
            if decision is None:
                sending.append(dict(row))
                if row["kind"] == "marketing" and row["customer_id"] is not None:
                    recent[row["customer_id"]] += 1
            elif decision.due_at is not None:
                deferred.append((row["id"], decision.due_at, decision.reason))
            else:
                finals.append((row["id"], decision.state, decision.reason))

        # One UPDATE per outcome (customers of one time zone share their deferral time).
        final_groups: dict[tuple[str, str], list[int]] = {}
        for delivery_id, state, reason in finals:
            final_groups.setdefault((state, reason), []).append(delivery_id)
        for (state, reason), ids in final_groups.items():
            await self._move_many(ids, state=state, reason=reason)
        deferral_groups: dict[tuple[datetime, str], list[int]] = {}
        for delivery_id, due_at, reason in deferred:
            deferral_groups.setdefault((due_at, reason), []).append(delivery_id)
        for (due_at, reason), ids in deferral_groups.items():
            await self._move_many(ids, due_at=due_at, reason=reason)
        pushes: list[OutgoingPush] = []
        if sending:
            ids = [r["id"] for r in sending]
            await self._session.execute(
                update(CampaignDelivery)
                .where(CampaignDelivery.id.in_(ids), CampaignDelivery.state == "queued")
                .values(state="sending", sending_at=now, claimed_by=worker[:64], updated_at=now)
                .execution_options(synchronize_session=False)
            )
            for claimed in sending:
                chat_id = claimed["chat_id"]
                target = targets.get(claimed["customer_id"]) if claimed["customer_id"] else None
                if target is not None and target.telegram_user_id not in (None, chat_id):
                    # Re-linked to another Telegram account since enqueue: send to the current one.
                    chat_id = target.telegram_user_id
                    await self._move(claimed["id"], ("sending",), chat_id=chat_id)
                pushes.append(
                    OutgoingPush(
                        delivery_id=claimed["id"],
                        chat_id=chat_id,
                        text=claimed["text"],
                        buttons=_with_delivery_id(claimed["buttons"] or [], claimed["id"]),
                        kind=claimed["kind"],
                        campaign_id=claimed["campaign_id"],
                        customer_id=claimed["customer_id"],
                        rule=claimed["rule"],
                    )
                )
        return pushes

    def _decide(
        self,
        row: Any,
        targets: dict[int, _Target],
        cancelled: set[int],
        busy: dict[int, str],
        recent: Counter[int],
        now: datetime,
    ) -> _Decision | None:
        """None = send now; otherwise a final state, or a deferral (due_at set, stays queued)."""
        if row["campaign_id"] is not None and row["campaign_id"] in cancelled:
            return _Decision("cancelled", "cancelled")
        customer_id = row["customer_id"]
        if customer_id is None:  # a marketer's test send: no customer rules apply
            return None
        target = targets.get(customer_id)
        if target is None or target.erased:
            return _Decision("skipped", "erased")
        if target.telegram_user_id is None:
            return _Decision("skipped", "unreachable")
        if BLOCKED_TAG in target.tags:
            return _Decision("blocked", "unreachable")
        marketing = row["kind"] == "marketing"
        if marketing and not target.consent:
            return _Decision("skipped", "no_consent")
        quiet_until = self._quiet_until(now, target.timezone)
        if quiet_until is not None:
            return _Decision("queued", "quiet_hours", quiet_until)
        if marketing and customer_id in busy:
            later = now + timedelta(minutes=self._settings.busy_defer_minutes)
            return _Decision("queued", busy[customer_id], later)
        if marketing and recent[customer_id] >= self._settings.frequency_cap:
            return _Decision("skipped", "frequency_cap")
        return None

    def _quiet_until(self, now: datetime, timezone: str) -> datetime | None:
        """The end of the customer's quiet hours when `now` falls inside them, else None."""
        if self._quiet_start == self._quiet_end:
            return None
        zone = _zone(timezone) or _zone(self._settings.marketer_timezone)
        local = now.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        start, end = self._quiet_start, self._quiet_end
        inside = (start <= clock or clock < end) if start > end else (start <= clock < end)
        if not inside:
            return None
        day = local.date() if clock < end else local.date() + timedelta(days=1)
        # fold/gap: ZoneInfo resolves a non-existent local time forward, which is what we want.
        resume = datetime.combine(day, end, tzinfo=zone)
        return resume.astimezone(now.tzinfo)

    async def _targets(self, ids: set[int]) -> dict[int, _Target]:
        if not ids:
            return {}
        rows = await self._session.execute(
            select(
                Customer.id,
                Customer.telegram_user_id,
                Customer.marketing_consent,
                Customer.tags,
                Customer.timezone,
                Customer.erased_at,
            ).where(Customer.id.in_(ids))
        )
        return {
            r.id: _Target(
                telegram_user_id=r.telegram_user_id,
                consent=bool(r.marketing_consent),
                tags=list(r.tags or []),
                timezone=r.timezone or self._settings.marketer_timezone,
                erased=r.erased_at is not None,
            )
            for r in rows
        }

    async def _cancelled_campaigns(self, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        rows = await self._session.scalars(
            select(Campaign.id).where(Campaign.id.in_(ids), Campaign.state == "cancelled")
        )
        return set(rows)

    async def _busy(self, ids: set[int]) -> dict[int, str]:
        """Customers who must not get a promotion now, with why (live agent chat, complaint)."""
        if not ids:
            return {}
        busy: dict[int, str] = {}
        complaints = await self._session.scalars(
            select(Ticket.customer_id).where(
                Ticket.customer_id.in_(ids),
                Ticket.kind == "complaint",
                Ticket.status.not_in([s.value for s in DONE_STATES]),
            )
        )
        for complainer in complaints:
            busy[complainer] = "open_complaint"
        talking = await self._session.scalars(
            select(Conversation.customer_id).where(
                Conversation.customer_id.in_(ids),
                Conversation.owner.in_(BUSY_OWNERS),
                Conversation.closed_at.is_(None),
            )
        )
        for customer_id in talking:
            if customer_id is not None:
                busy[customer_id] = "agent_conversation"
        return busy

    async def _recent_promotions(self, ids: set[int], now: datetime) -> Counter[int]:
        """Promotions sent (or being sent) to each customer inside the frequency window."""
        counts: Counter[int] = Counter()
        if not ids:
            return counts
        since = now - timedelta(days=self._settings.frequency_window_days)
        rows = await self._session.execute(
            select(CampaignDelivery.customer_id, func.count())
            .where(
                CampaignDelivery.customer_id.in_(ids),
                CampaignDelivery.kind == "marketing",
                CampaignDelivery.state.in_(("sending", "sent")),
                CampaignDelivery.sending_at >= since,
            )
            .group_by(CampaignDelivery.customer_id)
        )
        for customer_id, count in rows:
            if customer_id is not None:
                counts[customer_id] = int(count)
        return counts

    # ------------------------------------------------------------------ outcomes

    async def mark_sent(self, delivery_id: int, telegram_message_id: int | None) -> bool:
        """Telegram accepted the message. False when the row was not `sending` (no change)."""
        now = self._clock.now()
        return await self._move(
            delivery_id,
            ("sending",),
            state="sent",
            sent_at=now,
            telegram_message_id=telegram_message_id,
        )

    async def mark_sent_many(self, sent: Sequence[tuple[int, int | None]]) -> None:
        """`mark_sent` for many rows at once: (delivery id, Telegram message id) pairs, one
        statement executed for all of them (rows not in `sending` are left alone)."""
        if not sent:
            return
        now = self._clock.now()
        table = cast(Table, CampaignDelivery.__table__)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.state == "sending")
            .values(
                state="sent",
                sent_at=now,
                updated_at=now,
                telegram_message_id=bindparam("b_message"),
            )
        )
        await self._session.execute(
            stmt, [{"b_id": delivery_id, "b_message": message} for delivery_id, message in sent]
        )

    async def mark_unreachable(self, delivery_id: int, error: str) -> bool:
        """403: the customer blocked the bot. Row `blocked`; the customer tagged `blocked_bot`,
        so every later push to them is blocked at claim time until they write again."""
        row = await self._get(delivery_id)
        moved = await self._move(
            delivery_id, ("sending",), state="blocked", reason=f"unreachable: {_short(error)}"
        )
        if moved and row.customer_id is not None:
            customer = await self._session.get(Customer, row.customer_id)
            if customer is not None and BLOCKED_TAG not in (customer.tags or []):
                customer.tags = [*(customer.tags or []), BLOCKED_TAG]
                customer.updated_at = self._clock.now()
                await self._session.flush()
        return moved

    async def mark_retry(self, delivery_id: int, error: str, retry_at: datetime) -> str:
        """A transient error: back to `queued` at `retry_at` with one more attempt counted,
        or `failed` with the error once `max_attempts` is reached. Returns the new state."""
        row = await self._get(delivery_id)
        attempts = row.attempts + 1
        if attempts >= self._settings.max_attempts:
            moved = await self._move(
                delivery_id,
                ("sending",),
                state="failed",
                attempts=attempts,
                reason=f"error: {_short(error)}",
            )
            return "failed" if moved else row.state
        moved = await self._move(
            delivery_id,
            ("sending",),
            state="queued",
            attempts=attempts,
            due_at=retry_at,
            reason=f"retry: {_short(error)}",
        )
        return "queued" if moved else row.state

    async def release(self, delivery_id: int, due_at: datetime) -> bool:
        """Back to `queued` without counting an attempt (a 429 before Telegram took it)."""
        return await self._move(
            delivery_id, ("sending",), state="queued", due_at=due_at, claimed_by=None
        )

    async def stale_sending(self, older_than: timedelta | None = None) -> int:
        """Rows stuck in `sending` longer than `older_than` (the crash window): `unknown`.

        They are reported, never resent: Telegram may or may not have delivered them.
        """
        if older_than is None:
            older_than = timedelta(minutes=self._settings.stale_sending_minutes)
        cutoff = self._clock.now() - older_than
        count = await self._session.scalar(
            select(func.count()).where(
                CampaignDelivery.state == "sending", CampaignDelivery.sending_at < cutoff
            )
        )
        return int(count or 0)

    async def get(self, delivery_id: int) -> DeliveryDTO:
        return DeliveryDTO.model_validate(await self._get(delivery_id))

    async def _get(self, delivery_id: int) -> CampaignDelivery:
        row = await self._session.get(CampaignDelivery, delivery_id)
        if row is None:
            raise NotFound(f"delivery #{delivery_id} does not exist")
        return row

    async def _move_many(self, ids: list[int], **values: Any) -> None:
        """Queued rows (still queued: conditional) → `values`, in one statement."""
        values.setdefault("updated_at", self._clock.now())
        await self._session.execute(
            update(CampaignDelivery)
            .where(CampaignDelivery.id.in_(ids), CampaignDelivery.state == "queued")
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def _move(self, delivery_id: int, from_states: tuple[str, ...], **values: Any) -> bool:
        """One conditional UPDATE: the row changes only if it is still in `from_states`."""
        values.setdefault("updated_at", self._clock.now())
        result = await self._session.execute(
            update(CampaignDelivery)
            .where(CampaignDelivery.id == delivery_id, CampaignDelivery.state.in_(from_states))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        moved = isinstance(result, CursorResult) and result.rowcount == 1
        if not moved:
            log.info("delivery #%s not moved: not in %s", delivery_id, from_states)
        return moved


# ---------------------------------------------------------------------- helpers


def parse_hhmm(value: str, what: str = "time") -> time:
    """'21:00' → time(21, 0); a clear error otherwise."""
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise ValidationFailed(f"{what}: {value!r} is not a time of day like 21:00") from None


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _short(error: str) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


def _with_delivery_id(
    rows: list[list[dict[str, str]]], delivery_id: int
) -> list[list[dict[str, str]]]:
    """Callback data is stored with a `{d}` placeholder: the row's own id, known only now."""
    out: list[list[dict[str, str]]] = []
    for buttons in rows:
        out.append(
            [
                {
                    k: (v.replace("{d}", str(delivery_id)) if k == "callback_data" else v)
                    for k, v in b.items()
                }
                for b in buttons
            ]
        )
    return out

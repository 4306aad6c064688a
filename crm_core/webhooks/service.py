"""Outbound webhooks: subscriptions, an outbox filled in the same transaction as the change,
signed deliveries with retries and a delivery log.

Events (`EVENTS`): `ticket.created`, `ticket.status_changed`, `ticket.assigned` (every
`ticket_events` row) and `handoff.<event>` (request, claim, transfer, cancel, queue_timeout,
release, close, inactivity: every ownership change of `crm_core.conversations.handoff`).
`install_outbox(sessions)` (called by the composition root) watches each flush of that
session factory for those rows and adds one `webhook_deliveries` row per subscribed endpoint
in the same transaction — whichever inbox, CLI or job made the change, and nothing is sent
for a change that rolls back.

Delivery (`deliver_due`): POST the JSON body with headers
  `Webhook-Id: <event id>`, `Webhook-Timestamp: <unix seconds>`,
  `Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
A 2xx answer marks it delivered; anything else (or no answer within the timeout) is retried
after 30 s, 2 min, 8 min, 32 min, ... (×4) up to `max_attempts`, then marked failed. Receivers
verify the signature and refuse timestamps older than the tolerance (replay protection) and
event ids seen before — see `verify_signature` and the snippet in console/README.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from crm_core.clock import Clock
from crm_core.conversations.models import Conversation, Interaction
from crm_core.db import unit_of_work
from crm_core.errors import NotFound, ValidationFailed
from crm_core.tickets.models import Ticket, TicketEvent
from crm_core.webhooks.models import WebhookDelivery, WebhookEndpoint

HANDOFF_EVENTS = (
    "request",
    "claim",
    "transfer",
    "cancel",
    "queue_timeout",
    "release",
    "close",
    "inactivity",
)
EVENTS: tuple[str, ...] = (
    "ticket.created",
    "ticket.status_changed",
    "ticket.assigned",
    *(f"handoff.{e}" for e in HANDOFF_EVENTS),
)
RETRY_BASE_S = 30
RETRY_FACTOR = 4


@dataclass(frozen=True)
class WebhookSettings:
    tolerance_s: int = 300
    max_attempts: int = 6
    timeout_s: float = 10.0


class WebhookEndpointDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class WebhookDeliveryDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: int
    event: str
    event_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Webhook-Signature` header value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the timestamp is recent and the signature matches."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


class WebhookService:
    """Endpoints and the delivery log. Nothing here commits."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    async def create_endpoint(
        self, url: str, events: list[str] | None = None
    ) -> tuple[WebhookEndpointDTO, str]:
        """A new endpoint and its signing secret (shown once)."""
        url = (url or "").strip()
        if not url.startswith(("https://", "http://")) or len(url) > 500:
            raise ValidationFailed("a webhook URL is http(s)://… and at most 500 characters")
        wanted = sorted(set(events or []))
        unknown = [e for e in wanted if e not in EVENTS]
        if unknown:
            raise ValidationFailed(
                f"unknown event(s) {', '.join(unknown)}; choose from {', '.join(EVENTS)}"
            )
        secret = "whsec_" + secrets.token_urlsafe(32)
        row = WebhookEndpoint(
            url=url, secret=secret, events=wanted, active=True, created_at=self._clock.now()
        )
        self._session.add(row)
        await self._session.flush()
        return WebhookEndpointDTO.model_validate(row), secret

    async def list_endpoints(self) -> list[WebhookEndpointDTO]:
        rows = await self._session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.active.is_(True))
            .order_by(WebhookEndpoint.id)
        )
        return [WebhookEndpointDTO.model_validate(r) for r in rows]

    async def deactivate(self, endpoint_id: int) -> WebhookEndpointDTO:
        row = await self._session.get(WebhookEndpoint, endpoint_id)
        if row is None or not row.active:
            raise NotFound(f"no webhook endpoint #{endpoint_id}")
        row.active = False
        await self._session.flush()
        return WebhookEndpointDTO.model_validate(row)

    async def deliveries(self, endpoint_id: int, limit: int = 100) -> list[WebhookDeliveryDTO]:
        """The delivery log of an endpoint, newest first."""
        if await self._session.get(WebhookEndpoint, endpoint_id) is None:
            raise NotFound(f"no webhook endpoint #{endpoint_id}")
        rows = await self._session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        return [WebhookDeliveryDTO.model_validate(r) for r in rows]


# --- the outbox ----------------------------------------------------------------------------


def install_outbox(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
    """Enqueue webhook deliveries for ticket and handoff changes flushed by `sessions`
    (idempotent; only sessions of this factory are watched)."""
    base = sessions.kw.get("sync_session_class", Session)
    if getattr(base, "_hwcrm_outbox", False):
        return

    def before_flush(session: Session, _context: Any, _instances: Any) -> None:
        events = [e for obj in list(session.new) if (e := _event_of(session, obj)) is not None]
        if not events:
            return
        with session.no_autoflush:
            endpoints = session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True))
            ).all()
        now = clock.now()
        for name, payload in events:
            event_id = f"evt_{uuid.uuid4().hex}"
            body = {"id": event_id, "type": name, "created_at": now.isoformat(), "data": payload}
            for endpoint in endpoints:
                if endpoint.events and name not in endpoint.events:
                    continue
                session.add(
                    WebhookDelivery(
                        endpoint_id=endpoint.id,
                        event=name,
                        event_id=event_id,
                        payload=body,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )

    outbox_class = type("OutboxSession", (base,), {"_hwcrm_outbox": True})
    sa_event.listen(outbox_class, "before_flush", before_flush)
    sessions.configure(sync_session_class=outbox_class)


def _event_of(session: Session, obj: object) -> tuple[str, dict[str, Any]] | None:
    if isinstance(obj, TicketEvent):
        ticket = session.get(Ticket, obj.ticket_id) if obj.ticket_id else None
        if obj.from_status is None:
            name = "ticket.created"
        elif obj.from_status == obj.to_status:
            name = "ticket.assigned"
        else:
            name = "ticket.status_changed"
        return name, {
            "ticket_number": ticket.ticket_number if ticket else None,
            "customer_id": ticket.customer_id if ticket else None,
            "from_status": obj.from_status,
            "to_status": obj.to_status,
            "actor": obj.actor,
            "note": obj.note,
        }
    if (
        isinstance(obj, Interaction)
        and obj.direction == "event"
        and obj.text.startswith("handoff.")
        and " " in obj.text
    ):
        head, _, raw = obj.text.partition(" ")
        kind = head.removeprefix("handoff.")
        if kind not in HANDOFF_EVENTS:
            return None
        try:
            details = json.loads(raw)
        except ValueError:
            details = {}
        conversation = session.get(Conversation, obj.conversation_id)
        return f"handoff.{kind}", {
            "conversation_id": obj.conversation_id,
            "customer_id": conversation.customer_id if conversation else None,
            "owner": conversation.owner if conversation else None,
            "agent_staff_id": conversation.agent_staff_id if conversation else None,
            **(details if isinstance(details, dict) else {}),
        }
    return None


# --- delivery ------------------------------------------------------------------------------


class WebhookTransport(Protocol):
    """Sends one HTTP POST; returns the status code (raises on no answer)."""

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int: ...


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    transport: WebhookTransport,
    settings: WebhookSettings,
    *,
    limit: int = 50,
) -> int:
    """Send the deliveries that are due (each attempt recorded in its own transaction; no
    transaction stays open during the HTTP call). Returns how many were attempted."""
    now = clock.now()
    async with unit_of_work(sessions) as session:
        due = list(
            (
                await session.execute(
                    select(WebhookDelivery.id, WebhookEndpoint.url, WebhookEndpoint.secret)
                    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                    .where(
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                        WebhookEndpoint.active.is_(True),
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(limit)
                )
            ).all()
        )
        payloads = {
            d.id: d.payload
            for d in await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.id.in_([r[0] for r in due]))
            )
        }
    for delivery_id, url, secret in due:
        body = json.dumps(payloads[delivery_id], ensure_ascii=False, sort_keys=True).encode()
        ts = int(clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "Webhook-Id": str(payloads[delivery_id].get("id", "")),
            "Webhook-Timestamp": str(ts),
            "Webhook-Signature": sign(secret, ts, body),
        }
        code: int | None = None
        error: str | None = None
        try:
            code = await transport.post(url, body, headers, settings.timeout_s)
        except Exception as exc:  # any transport failure is a failed attempt, retried
            error = f"{type(exc).__name__}: {exc}"[:500]
        async with unit_of_work(sessions) as session:
            row = await session.get(WebhookDelivery, delivery_id)
            if row is None:
                continue
            row.attempts += 1
            row.last_status_code = code
            row.last_error = (
                error if code is None else (None if 200 <= code < 300 else f"HTTP {code}")
            )
            if code is not None and 200 <= code < 300:
                row.status = "delivered"
                row.delivered_at = clock.now()
            elif row.attempts >= settings.max_attempts:
                row.status = "failed"
            else:
                delay = RETRY_BASE_S * RETRY_FACTOR ** (row.attempts - 1)
                row.next_attempt_at = clock.now() + timedelta(seconds=delay)
    return len(due)

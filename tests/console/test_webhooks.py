"""Outbound webhooks against a real HTTP receiver: queued with the change, signed, verified
by the snippet documented in console/README.md, retried with backoff, logged, and replays
refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.console import HttpxTransport
from crm_core.clock import FixedClock
from crm_core.conversations.handoff import HandoffService
from crm_core.webhooks.service import WebhookSettings, deliver_due, install_outbox
from tests.console.conftest import Console
from tests.console.test_api import call, make_key

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")
README = Path(__file__).resolve().parents[2] / "console" / "README.md"


def documented_verifier() -> Any:
    """The verification snippet exactly as documented (the README's last python block)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    namespace: dict[str, Any] = {}
    exec(blocks[-1], namespace)
    return namespace["verify_webhook"]


class Receiver:
    """An ERP's webhook endpoint: answers with the next queued status, records requests."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(({k.lower(): v for k, v in request.headers.items()}, body))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    await runner.cleanup()


async def test_a_ticket_event_is_signed_retried_with_backoff_and_verified(
    console: Console, receiver: Receiver, clock: FixedClock
) -> None:
    install_outbox(console.db.sessions, clock)
    _, key = await make_key(console, "webhooks:manage")
    async with console.client() as client:
        made = await call(
            client,
            "POST",
            "/api/v1/webhooks",
            {"url": receiver.url, "events": ["ticket.created", "handoff.claim"]},
            key,
        )
        assert made.status_code == 201
        endpoint, secret = made.json()["id"], made.json()["secret"]
        assert secret.startswith("whsec_")
        async for crm in console.crm():
            ticket = await crm.tickets.create(console.customers[0], symptom="fan stopped")
        receiver.statuses = [500]
        transport = HttpxTransport()
        settings = WebhookSettings(max_attempts=3)
        try:
            assert await deliver_due(console.db.sessions, clock, transport, settings) == 1
            # Not due again before its backoff (30 s).
            clock.advance(timedelta(seconds=20))
            assert await deliver_due(console.db.sessions, clock, transport, settings) == 0
            clock.advance(timedelta(seconds=11))
            assert await deliver_due(console.db.sessions, clock, transport, settings) == 1
        finally:
            await transport.aclose()
        log = (
            await call(client, "GET", f"/api/v1/webhooks/{endpoint}/deliveries", None, key)
        ).json()
    assert [(d["event"], d["status"], d["attempts"]) for d in log] == [
        ("ticket.created", "delivered", 2)
    ]
    verify = documented_verifier()
    now = clock.now().timestamp()
    (first_headers, _first_body), (headers, body) = receiver.requests
    assert first_headers["webhook-id"] == headers["webhook-id"]  # a retry, not a new event
    assert verify(secret, headers, body, now=now)
    import json

    payload = json.loads(body)
    assert payload["type"] == "ticket.created"
    assert payload["data"]["ticket_number"] == ticket.ticket_number
    # Tampered body, wrong secret, or an old request replayed later: refused.
    assert not verify(secret, headers, body.replace(b'"new"', b'"closed"'), now=now)
    assert not verify("whsec_other", headers, body, now=now)
    assert not verify(secret, headers, body, now=now + 301)
    assert not verify(secret, {**headers, "webhook-timestamp": "soon"}, body, now=now)


async def test_handoff_events_reach_subscribers_and_failures_end_as_failed(
    console: Console, receiver: Receiver, clock: FixedClock
) -> None:
    install_outbox(console.db.sessions, clock)
    _, key = await make_key(console, "webhooks:manage")
    async with console.client() as client:
        made = await call(
            client,
            "POST",
            "/api/v1/webhooks",
            {"url": receiver.url, "events": ["handoff.claim"]},
            key,
        )
        endpoint = made.json()["id"]
        bad = await call(client, "POST", "/api/v1/webhooks", {"url": "ftp://x", "events": []}, key)
        assert bad.status_code == 422
        unknown = await call(
            client, "POST", "/api/v1/webhooks", {"url": receiver.url, "events": ["nope"]}, key
        )
        assert unknown.status_code == 422
    async for crm in console.crm():
        conv = await crm.conversations.open_or_get(console.customers[0], 5000)
        svc = HandoffService(crm.session, crm.clock)
        await svc.request(conv.id, reason="request_human")  # not subscribed
        await svc.claim(conv.id, console.staff["agent"])
    receiver.statuses = [503, 503]
    transport = HttpxTransport()
    try:
        settings = WebhookSettings(max_attempts=2)
        await deliver_due(console.db.sessions, clock, transport, settings)
        clock.advance(timedelta(seconds=31))
        await deliver_due(console.db.sessions, clock, transport, settings)
        clock.advance(timedelta(hours=1))
        assert await deliver_due(console.db.sessions, clock, transport, settings) == 0
    finally:
        await transport.aclose()
    async with console.client() as client:
        log = (
            await call(client, "GET", f"/api/v1/webhooks/{endpoint}/deliveries", None, key)
        ).json()
        gone = await call(client, "DELETE", f"/api/v1/webhooks/{endpoint}", None, key)
        assert gone.status_code == 200
        assert (await call(client, "GET", "/api/v1/webhooks", None, key)).json() == []
    assert [(d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("handoff.claim", "failed", 2, 503)
    ]
    import json

    data = json.loads(receiver.requests[0][1])["data"]
    assert data["owner"] == "agent" and data["agent_staff_id"] == console.staff["agent"]

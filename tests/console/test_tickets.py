"""Console tickets: the queue with SLA countdown and filters, the ticket page (audited), status
changes along the ticket state machine (invalid ones refused with the reason), assignment."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_core.audit.models import AuditEntry
from crm_core.clock import FixedClock
from tests.console.conftest import Console, csrf_of, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


async def test_queue_ticket_page_status_changes_and_assignment(
    console: Console, clock: FixedClock
) -> None:
    async for crm in console.crm():
        ticket = await crm.tickets.create(
            console.customers[1], symptom="no display", subject="Monitor dead"
        )
        other = await crm.tickets.create(console.customers[0], symptom="noise", subject="Fan noise")
    number = ticket.ticket_number
    async with console.client() as client:
        await login(client, "agent")
        queue = await client.get("/tickets")
        assert number in queue.text and other.ticket_number in queue.text
        assert re.search(r"\d+ min left", queue.text)
        page = await client.get(f"/tickets/{number}")
        assert page.status_code == 200 and "James Carter" in page.text
        csrf = csrf_of(page.text)
        refused = await client.post(
            f"/tickets/{number}/status", data={"csrf": csrf, "status": "closed"}
        )
        shown = await client.get(refused.headers["location"])
        assert "flash bad" in shown.text and "triaged" in shown.text  # the allowed next state
        done = await client.post(
            f"/tickets/{number}/status", data={"csrf": csrf, "status": "triaged", "note": "checked"}
        )
        assert done.status_code == 303
        assign = await client.post(
            f"/tickets/{number}/assign",
            data={"csrf": csrf, "staff_id": str(console.staff["agent"])},
        )
        assert assign.status_code == 303
        mine = await client.get("/tickets", params={"mine": 1})
        assert number in mine.text and other.ticket_number not in mine.text
        clock.advance(timedelta(days=30))
        await login(client, "agent")  # the old session idled out meanwhile
        late = await client.get("/tickets", params={"overdue": 1})
        assert "min overdue" in late.text
        triaged = await client.get("/tickets", params={"status": "triaged"})
        assert number in triaged.text and other.ticket_number not in triaged.text
        assert (await client.get("/tickets/TK-99999999")).status_code == 404
    async for crm in console.crm():
        moved = await crm.tickets.get(number)
        events = await crm.tickets.events(number)
        reads = list(
            await crm.session.scalars(
                select(AuditEntry.reason).where(
                    AuditEntry.action == "read", AuditEntry.customer_id == console.customers[1]
                )
            )
        )
    actor = f"staff:{console.staff['agent']}"
    assert moved.status == "triaged" and moved.assignee_staff_id == console.staff["agent"]
    assert [(e.to_status, e.actor) for e in events[1:]] == [("triaged", actor), ("triaged", actor)]
    assert reads and all(r.startswith("console: ticket") for r in reads)

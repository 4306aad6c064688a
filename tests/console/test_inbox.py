"""The console inbox without a Telegram bot: conversations can be read, but an action that
must reach the customer is refused with the reason and changes nothing."""

from __future__ import annotations

import pytest

from crm_core.conversations.handoff import HandoffService
from crm_core.conversations.models import Conversation
from tests.console.conftest import Console, csrf_of, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


async def test_without_a_bot_the_inbox_reads_but_refuses_to_claim(console: Console) -> None:
    async for crm in console.crm():
        conv = await crm.conversations.open_or_get(console.customers[1], 5001)
        await HandoffService(crm.session, crm.clock).request(conv.id, reason="request_human")
    async with console.client() as client:
        await login(client, "agent")
        inbox = await client.get("/inbox")
        assert f'data-conversation="{conv.id}"' in inbox.text and "James Carter" in inbox.text
        page = await client.get(f"/inbox/{conv.id}")
        assert page.status_code == 200 and 'data-owner="queued"' in page.text
        refused = await client.post(f"/inbox/{conv.id}/claim", data={"csrf": csrf_of(page.text)})
        assert refused.status_code == 400 and "no Telegram bot is configured" in refused.text
        missing = await client.get("/inbox/987654")
        assert missing.status_code == 404
        unknown = await client.post(f"/inbox/{conv.id}/explode", data={"csrf": csrf_of(page.text)})
        assert unknown.status_code == 404
    async for crm in console.crm():
        row = await crm.session.get(Conversation, conv.id)
        assert row is not None and (row.owner, row.agent_staff_id) == ("queued", None)

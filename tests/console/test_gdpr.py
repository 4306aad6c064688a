"""Data protection in the console: admins export a customer's data (audited) and erase a
customer only after typing the id and a reason; agents and marketers cannot."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_core.audit.models import AuditEntry
from crm_core.customers.models import Customer
from tests.console.conftest import Console, csrf_of, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


async def test_admin_exports_and_erases_with_confirmation_and_agents_cannot(
    console: Console,
) -> None:
    customer = console.customers[1]
    async with console.client() as agent:
        await login(agent, "agent")
        page = await agent.get(f"/customers/{customer}")
        assert "/export" not in page.text
        csrf = csrf_of(page.text)
        assert (
            await agent.post(f"/customers/{customer}/export", data={"csrf": csrf})
        ).status_code == 403
        erase = await agent.post(
            f"/customers/{customer}/erase",
            data={"csrf": csrf, "confirm": str(customer), "reason": "x"},
        )
        assert erase.status_code == 403
    async with console.client() as admin:
        await login(admin, "admin")
        page = await admin.get(f"/customers/{customer}")
        csrf = csrf_of(page.text)
        export = await admin.post(f"/customers/{customer}/export", data={"csrf": csrf})
        assert export.status_code == 200
        assert "attachment" in export.headers["content-disposition"]
        assert export.json()["customer"]["name"] == "James Carter"
        unconfirmed = await admin.post(
            f"/customers/{customer}/erase", data={"csrf": csrf, "confirm": "1", "reason": "asked"}
        )
        assert "erase" in unconfirmed.headers["location"]
        async for crm in console.crm():
            row = await crm.session.get(Customer, customer)
            assert row is not None and row.erased_at is None
        confirm = await admin.get(f"/customers/{customer}/erase")
        assert confirm.status_code == 200
        done = await admin.post(
            f"/customers/{customer}/erase",
            data={"csrf": csrf, "confirm": str(customer), "reason": "customer asked by e-mail"},
        )
        assert done.status_code == 303
        after = await admin.get(done.headers["location"])
        assert "James Carter" not in after.text
    async for crm in console.crm():
        row = await crm.session.get(Customer, customer)
        actions = list(
            await crm.session.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.customer_id == customer,
                    AuditEntry.actor == f"staff:{console.staff['admin']}",
                )
            )
        )
    assert row is not None and row.erased_at is not None and row.phone is None
    assert "export" in actions and "erase" in actions

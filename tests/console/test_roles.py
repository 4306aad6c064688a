"""Roles on every console page and action (route × role table), and audited customer views."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from console.deps import PAGE_ROLES, Allow
from crm_core.audit.models import AuditEntry
from tests.console.conftest import ROLES, Console, csrf_of, login
from tests.crm.people_factories import make_order, make_product

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

PUBLIC = {"/login"}


def console_routes(console: Console) -> list[tuple[APIRoute, str]]:
    """(route, page name of its Allow dependency) of every console (non-API) route."""
    from console.pages import router
    from console.pages_campaigns import router as campaigns
    from console.pages_imports import router as imports

    out = []
    for route in [*router.routes, *campaigns.routes, *imports.routes]:
        assert isinstance(route, APIRoute)
        if route.path in PUBLIC:
            continue
        pages = [d.call.page for d in route.dependant.dependencies if isinstance(d.call, Allow)]
        assert len(pages) == 1, f"{route.path} must depend on exactly one Allow(...)"
        out.append((route, pages[0]))
    return out


def test_every_console_route_has_a_role_rule() -> None:
    assert set(PAGE_ROLES) >= {"dashboard", "customers", "customer", "inbox", "apikeys"}


# (method, path, page) for every route; the ids/forms are filled per test.
GET_PAGES = [
    ("/", "dashboard"),
    ("/customers?q=Carter", "customers"),
    ("/customers/{customer}", "customer"),
    ("/inbox", "inbox"),
    ("/tickets", "tickets"),
    ("/customers/{customer}/erase", "gdpr"),
    ("/admin/apikeys", "apikeys"),
    ("/admin/staff", "staff"),
    ("/admin/imports", "imports"),
    ("/campaigns", "campaigns"),
    ("/campaigns/new", "campaigns"),
]


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_sees_exactly_the_pages_of_the_table(console: Console, role: str) -> None:
    routes = console_routes(console)
    covered = {page for _, page in routes}
    assert covered <= set(PAGE_ROLES)
    async with console.client() as client:
        await login(client, role)
        for path, page in GET_PAGES:
            response = await client.get(path.format(customer=console.customers[1]))
            expected = 200 if role in PAGE_ROLES[page] else 403
            assert response.status_code == expected, (role, path, response.text[:200])
        csrf = csrf_of((await client.get("/")).text)
        # State-changing actions: refused for roles outside the table before anything runs.
        posts = [
            ("/admin/apikeys", "apikeys_change", {"name": "x", "scopes": "tickets:read"}),
            ("/admin/apikeys/999/revoke", "apikeys_change", {}),
            ("/inbox/1/claim", "inbox_action", {}),
            ("/customers/999999/export", "gdpr", {}),
            ("/admin/staff/999999/disable", "staff_change", {}),
            ("/tickets/TK-00000001/status", "ticket_change", {"status": "triaged"}),
            ("/admin/imports/AAAAAAAAAAAAAAAAAAAAAA/discard", "imports_change", {}),
            ("/campaigns/999999/pause", "campaigns_change", {}),
            ("/campaigns/rules/no_such_rule/enable", "campaigns_change", {}),
            ("/campaigns/new", "campaigns_change", {"name": "x", "segment": "{}"}),
        ]
        for path, page, form in posts:
            response = await client.post(path, data={"csrf": csrf, **form})
            if role in PAGE_ROLES[page]:
                assert response.status_code != 403, (role, path)
            else:
                assert response.status_code == 403, (role, path)
    # Every route of the app is one of those checked here.
    paths = {r.path for r, _ in routes}
    assert paths == {
        "/",
        "/customers",
        "/customers/{customer_id}",
        "/inbox",
        "/inbox/{conversation_id}",
        "/inbox/{conversation_id}/{action}",
        "/admin/apikeys",
        "/admin/apikeys/{key_id}/revoke",
        "/logout",
        "/language",
        "/tickets",
        "/tickets/{ticket_number}",
        "/tickets/{ticket_number}/{action}",
        "/customers/{customer_id}/export",
        "/customers/{customer_id}/erase",
        "/admin/staff",
        "/admin/staff/{staff_id}/{action}",
        "/admin/imports",
        "/admin/imports/{upload_id}/{action}",
        "/campaigns",
        "/campaigns/new",
        "/campaigns/audience",
        "/campaigns/{campaign_id}",
        "/campaigns/{campaign_id}/{action}",
        "/campaigns/rules/{name}/{action}",
    }


async def test_opening_a_customer_writes_who_what_when_why_to_the_audit_log(
    console: Console,
) -> None:
    customer = console.customers[1]
    async for crm in console.crm():
        product = await make_product(crm.session, sku="MON-27-4K")
        await make_order(
            crm.session,
            customer,
            [(product, 1, ["SNMON0000001"])],
            placed_at=crm.clock.now() - timedelta(days=40),
            number="SO-30000001",
        )
        await crm.customers.grant_consent(customer, "web-signup")
    async with console.client() as client:
        await login(client, "agent")
        page = await client.get(f"/customers/{customer}")
        assert page.status_code == 200 and "James Carter" in page.text
        # The 360 view: devices with warranty, orders, consent history.
        assert "SNMON0000001" in page.text and "SO-30000001" in page.text
        assert "web-signup" in page.text
        search = await client.get("/customers", params={"q": "+447911123456"})
        assert "James Carter" in search.text
        missing = await client.get("/customers/999999")
        assert missing.status_code == 404
    async for crm in console.crm():
        rows = list(
            await crm.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.customer_id == customer, AuditEntry.action == "read")
                .order_by(AuditEntry.id)
            )
        )
    actor = f"staff:{console.staff['agent']}"
    assert [(r.actor, r.action, r.entity) for r in rows] == [
        (actor, "read", "customer"),
        (actor, "read", "customer"),
    ]
    assert rows[0].reason == "console: customer 360 view"
    assert rows[1].reason == "console: customer search" and rows[1].details == {"via": "search"}
    assert rows[0].at is not None

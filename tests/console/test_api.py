"""REST API v1: keys and scopes on every endpoint, problem+json errors, upserts with the CLI
import's validation (all-or-nothing batches), keyset pagination, tickets, warranty."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from crm_core.access.service import SCOPES, AccessService
from crm_core.audit.models import AuditEntry
from crm_core.customers.models import Customer
from tests.console.conftest import Console

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

PRODUCT = {
    "sku": "GPU-4070-API",
    "name_en": "RTX 4070 12GB",
    "name_zh": "RTX 4070 显卡",
    "category": "gpu",
    "brand": "NVIDIA",
    "price": "4299.00",
    "warranty_months": 36,
}
ORDER_LINE = {
    "order_number": "SO-20260001",
    "customer_phone": "+8613800000001",
    "placed_at": "2026-05-01",
    "delivered_at": "2026-05-03",
    "sku": "GPU-4070-API",
    "quantity": 1,
    "unit_price": "4299.00",
    "serial_numbers": ["SNAPI0000001"],
    "status": "delivered",
}

# Every endpoint with the scope it needs and a request that is otherwise valid.
ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/customers", "customers:read", None),
    ("GET", "/api/v1/customers/{customer}", "customers:read", None),
    (
        "POST",
        "/api/v1/customers",
        "customers:write",
        {"records": [{"name": "X", "email": "x@e.com"}], "dry_run": True},
    ),
    ("POST", "/api/v1/products", "products:write", {"records": [PRODUCT], "dry_run": True}),
    ("POST", "/api/v1/orders", "orders:write", {"records": [ORDER_LINE], "dry_run": True}),
    ("GET", "/api/v1/orders/SO-99999999", "orders:read", None),
    ("GET", "/api/v1/products/NO-SUCH-SKU", "products:read", None),
    ("GET", "/api/v1/tickets", "tickets:read", None),
    ("GET", "/api/v1/warranty/SNAPI0000009", "warranty:read", None),
    ("GET", "/api/v1/webhooks", "webhooks:manage", None),
    ("POST", "/api/v1/webhooks", "webhooks:manage", {"url": "https://erp.example/hook"}),
]


async def make_key(console: Console, *scopes: str, rate: int = 600) -> tuple[int, str]:
    async for crm in console.crm():
        key, plaintext = await AccessService(crm.session, crm.clock).create_key(
            "test", scopes, rate_limit_per_minute=rate
        )
    return key.id, plaintext


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await client.request(method, path, json=body, headers=headers)


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    return body


async def test_every_endpoint_refuses_no_key_a_wrong_key_and_a_revoked_key(
    console: Console,
) -> None:
    key_id, key = await make_key(console, *SCOPES)
    async for crm in console.crm():
        await AccessService(crm.session, crm.clock).revoke_key(key_id)
    _, good = await make_key(console, *SCOPES)
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    async with console.client() as client:
        for method, path, _, body in ENDPOINTS:
            path = path.format(customer=console.customers[0])
            assert "WWW-Authenticate" in (await call(client, method, path, body, None)).headers
            is_problem(await call(client, method, path, body, None), 401)
            is_problem(await call(client, method, path, body, "hwk_nonsense"), 401)
            is_problem(await call(client, method, path, body, wrong), 401)
            is_problem(await call(client, method, path, body, key), 401)
            ok = await call(client, method, path, body, good)
            assert ok.status_code not in (401, 403, 429), (path, ok.text)


@pytest.mark.parametrize("scope", SCOPES)
async def test_each_scope_opens_exactly_its_endpoints(console: Console, scope: str) -> None:
    _, key = await make_key(console, scope)
    async with console.client() as client:
        for method, path, needed, body in ENDPOINTS:
            path = path.format(customer=console.customers[0])
            response = await call(client, method, path, body, key)
            if needed == scope:  # past authorisation (an order for an unknown SKU is 422)
                assert response.status_code not in (401, 403), (scope, path, response.text)
            else:
                detail = is_problem(response, 403)["detail"]
                assert needed in detail


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(console: Console) -> None:
    _, key = await make_key(console, "tickets:read", rate=3)
    async with console.client() as client:
        for _ in range(3):
            assert (await call(client, "GET", "/api/v1/tickets", None, key)).status_code == 200
        limited = await call(client, "GET", "/api/v1/tickets", None, key)
    is_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1


async def test_guessed_ids_get_the_same_404_and_reads_are_audited(console: Console) -> None:
    key_id, key = await make_key(console, "customers:read", "tickets:read", "warranty:read")
    async with console.client() as client:
        one = await call(client, "GET", f"/api/v1/customers/{console.customers[1]}", None, key)
        assert one.status_code == 200 and one.json()["name"] == "James Carter"
        for guess in (999_999, 123_456):
            body = is_problem(
                await call(client, "GET", f"/api/v1/customers/{guess}", None, key), 404
            )
            assert str(guess) in body["detail"]
        is_problem(await call(client, "GET", "/api/v1/tickets/TK-99999999", None, key), 404)
        is_problem(await call(client, "GET", "/api/v1/tickets/nonsense", None, key), 404)
        is_problem(await call(client, "GET", "/api/v1/warranty/SN0000000000", None, key), 404)
        is_problem(await call(client, "GET", "/api/v1/customers/abc", None, key), 422)
        is_problem(await call(client, "GET", "/api/v1/nothing-here", None, key), 404)
    async for crm in console.crm():
        actors = list(
            await crm.session.scalars(
                select(AuditEntry.actor).where(
                    AuditEntry.action == "read", AuditEntry.customer_id == console.customers[1]
                )
            )
        )
    assert actors == [f"apikey:{key_id}"]


async def test_a_batch_with_one_bad_record_writes_nothing_and_says_which(console: Console) -> None:
    _, key = await make_key(console, "customers:write", "customers:read")
    batch = {
        "records": [
            {"name": "Good One", "email": "good@example.com"},
            {"name": "Bad Phone", "phone": "12"},
            {"name": "", "email": "empty@example.com"},
        ]
    }
    async with console.client() as client:
        body = is_problem(await call(client, "POST", "/api/v1/customers", batch, key), 422)
        assert {e["record"] for e in body["errors"]} == {2, 3}
        assert any(e["field"] == "phone" for e in body["errors"])
        async for crm in console.crm():
            assert await crm.session.scalar(select(func.count()).select_from(Customer)) == 3
        partial = await call(client, "POST", "/api/v1/customers", {**batch, "partial": True}, key)
        assert partial.status_code == 200 and partial.json()["inserted"] == 1
        assert partial.json()["rejected_rows"] == 2
        # The same record again updates nothing; a changed one is an update (matched by e-mail).
        again = await call(
            client,
            "POST",
            "/api/v1/customers",
            {"records": [{"name": "Good One", "email": "GOOD@example.com", "language": "zh"}]},
            key,
        )
        assert again.json()["updated"] == 1 and again.json()["inserted"] == 0
        is_problem(await call(client, "POST", "/api/v1/customers", {"records": []}, key), 422)
        is_problem(await call(client, "POST", "/api/v1/customers", {"nope": 1}, key), 422)


async def test_products_then_orders_upsert_and_the_warranty_is_readable(console: Console) -> None:
    _, key = await make_key(console, "products:write", "orders:write", "warranty:read")
    async with console.client() as client:
        dry = await call(
            client, "POST", "/api/v1/products", {"records": [PRODUCT], "dry_run": True}, key
        )
        assert dry.status_code == 200 and dry.json()["dry_run"] and dry.json()["inserted"] == 1
        missing = await call(client, "POST", "/api/v1/orders", {"records": [ORDER_LINE]}, key)
        assert any(
            "GPU-4070-API" in e["reason"] or e["field"] == "sku"
            for e in is_problem(missing, 422)["errors"]
        )
        made = await call(client, "POST", "/api/v1/products", {"records": [PRODUCT]}, key)
        assert made.json()["inserted"] == 1
        order = await call(client, "POST", "/api/v1/orders", {"records": [ORDER_LINE]}, key)
        assert order.status_code == 200 and order.json()["inserted"] == 1, order.text
        status = await call(client, "GET", "/api/v1/warranty/snapi0000001", None, key)
        _, reader = await make_key(console, "orders:read", "products:read")
        got = await call(client, "GET", "/api/v1/orders/SO-20260001", None, reader)
        assert got.status_code == 200 and got.json()["items"][0]["sku"] == "GPU-4070-API"
        product = await call(client, "GET", "/api/v1/products/GPU-4070-API", None, reader)
        assert product.json()["warranty_months"] == 36
    assert status.status_code == 200
    data = status.json()
    assert data["serial_number"] == "SNAPI0000001" and data["order_number"] == "SO-20260001"
    assert data["total_months"] == 36


async def test_customers_are_paged_by_keyset_without_gaps_or_repeats(console: Console) -> None:
    _, key = await make_key(console, "customers:read")
    seen: list[int] = []
    cursor = None
    async with console.client() as client:
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await client.get(
                "/api/v1/customers", params=params, headers={"Authorization": f"Bearer {key}"}
            )
            assert page.status_code == 200
            seen += [c["id"] for c in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        bad = await client.get(
            "/api/v1/customers", params={"cursor": "!!"}, headers={"X-API-Key": key}
        )
    assert seen == sorted(console.customers)
    is_problem(bad, 422)


async def test_tickets_are_listed_filtered_and_read(console: Console) -> None:
    _, key = await make_key(console, "tickets:read")
    async for crm in console.crm():
        made = [
            await crm.tickets.create(console.customers[0], subject=f"fan {i}", symptom="noise")
            for i in range(3)
        ]
    async with console.client() as client:
        page = await call(client, "GET", "/api/v1/tickets?limit=2", None, key)
        assert [t["ticket_number"] for t in page.json()["items"]] == [
            t.ticket_number for t in made[:2]
        ]
        rest = await call(
            client, "GET", f"/api/v1/tickets?cursor={page.json()['next_cursor']}", None, key
        )
        assert [t["ticket_number"] for t in rest.json()["items"]] == [made[2].ticket_number]
        one = await call(client, "GET", f"/api/v1/tickets/{made[1].ticket_number}", None, key)
        assert one.json()["subject"] == "fan 1"
        other = await call(
            client, "GET", f"/api/v1/tickets?customer_id={console.customers[1]}", None, key
        )
        assert other.json()["items"] == []


async def test_the_openapi_schema_documents_every_endpoint_and_problem_bodies(
    console: Console,
) -> None:
    async with console.client() as client:
        schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    assert {p for p in paths} >= {
        "/api/v1/customers",
        "/api/v1/customers/{customer_id}",
        "/api/v1/products",
        "/api/v1/orders",
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_number}",
        "/api/v1/warranty/{serial_number}",
        "/api/v1/webhooks",
    }
    assert not any(p.startswith("/inbox") or p == "/login" for p in paths)
    assert (
        "application/problem+json"
        in paths["/api/v1/customers"]["get"]["responses"]["401"]["content"]
    )

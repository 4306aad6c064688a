"""REST API v1 (`/api/v1`): thin routes over the CRM services, authenticated by API key.

Every route depends on `Scope("<scope>")`: the key (Bearer or X-API-Key), its scopes and its
per-minute rate limit. Errors are problem details (console.problems). Writes use the CLI
import's validation (`crm_core.importexport`): a batch is all-or-nothing unless `partial`.
Lists are keyset-paginated (`cursor` = the `next_cursor` of the previous page).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from console.deps import Crm, Ctx
from console.problems import ApiProblem, Problem
from crm_core.access.schemas import ApiKeyDTO
from crm_core.access.service import AccessService
from crm_core.catalog.schemas import ProductDTO
from crm_core.customers.models import Customer
from crm_core.customers.schemas import CustomerDTO
from crm_core.errors import NotFound
from crm_core.importexport.schemas import Entity, ImportResult
from crm_core.importexport.service import ImportRejected, import_records
from crm_core.orders.schemas import OrderDTO
from crm_core.tickets.models import Ticket
from crm_core.tickets.schemas import TicketDTO
from crm_core.tickets.service import normalize_ticket_number
from crm_core.warranties.schemas import WarrantyStatus
from crm_core.webhooks.service import (
    EVENTS,
    WebhookDeliveryDTO,
    WebhookEndpointDTO,
    WebhookService,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (401, 403, 404, 409, 413, 422, 429)
}
router = APIRouter(prefix="/api/v1", responses=ERRORS)
MAX_LIMIT = 200


class Scope:
    """The API key of the request, when it is valid and has `scope`."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, request: Request, ctx: Ctx, crm: Crm) -> ApiKeyDTO:
        raw = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if raw is None and auth.lower().startswith("bearer "):
            raw = auth[7:].strip()
        challenge = {"WWW-Authenticate": 'Bearer realm="hwcrm"'}
        if not raw:
            raise ApiProblem(
                401, "an API key is required (Authorization: Bearer …)", headers=challenge
            )
        key = await AccessService(crm.session, ctx.clock, ctx.access).authenticate_key(raw)
        if key is None:
            raise ApiProblem(401, "the API key is unknown or revoked", headers=challenge)
        if self.scope not in key.scopes:
            raise ApiProblem(403, f"this API key lacks the scope {self.scope}")
        wait = ctx.api_limiter.hit(key.id, key.rate_limit_per_minute)
        if wait:
            raise ApiProblem(
                429,
                f"rate limit of {key.rate_limit_per_minute} requests per minute reached",
                headers={"Retry-After": str(wait)},
            )
        return key


def _cursor(last_id: int | None) -> str | None:
    if last_id is None:
        return None
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "id" or not value.isdigit():
            raise ValueError(raw)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(422, "the cursor is not one this API gave out") from None


Cursor = Annotated[
    str | None, Query(max_length=100, description="next_cursor of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


# --- customers -----------------------------------------------------------------------------


class CustomerPage(BaseModel):
    items: list[CustomerDTO]
    next_cursor: str | None = Field(None, description="pass as cursor for the next page")


@router.get("/customers", response_model=CustomerPage, tags=["customers"])
async def list_customers(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("customers:read"))],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> CustomerPage:
    """Customers by id (keyset pagination). Each record returned is audited."""
    after = _after(cursor)
    ids = list(
        (
            await crm.session.scalars(
                select(Customer.id)
                .where(Customer.id > after)
                .order_by(Customer.id)
                .limit(limit + 1)
            )
        ).all()
    )
    more = len(ids) > limit
    ids = ids[:limit]
    items = [await crm.customers.get_customer_as(key.actor, i, "api: list customers") for i in ids]
    return CustomerPage(items=items, next_cursor=_cursor(ids[-1]) if more and ids else None)


@router.get("/customers/{customer_id}", response_model=CustomerDTO, tags=["customers"])
async def get_customer(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("customers:read"))],
    customer_id: Annotated[int, Path(ge=1, le=2**62)],
) -> CustomerDTO:
    """One customer (audited)."""
    return await crm.customers.get_customer_as(key.actor, customer_id, "api: read customer")


class UpsertRequest(BaseModel):
    """One record or a batch, in the columns of the CLI import (importexport/FORMATS.md)."""

    records: list[dict[str, Any]] = Field(min_length=1, description="records to insert or update")
    partial: bool = Field(False, description="keep the valid records when others are rejected")
    dry_run: bool = Field(False, description="validate only; nothing is written")


class UpsertResult(BaseModel):
    rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected_rows: int
    dry_run: bool = False
    warnings: list[dict[str, Any]] = Field(default_factory=list)


async def _upsert(
    ctx: Ctx, crm: Crm, key: ApiKeyDTO, entity: Entity, body: UpsertRequest
) -> UpsertResult:
    limit = ctx.settings.console.api_max_batch
    if len(body.records) > limit:
        raise ApiProblem(413, f"at most {limit} records per request (console.api_max_batch)")
    try:
        result = await import_records(
            crm.session,
            ctx.clock,
            ctx.imports,
            entity,
            body.records,
            actor=key.actor,
            partial=body.partial,
            dry_run=body.dry_run,
        )
    except ImportRejected as rejected:
        res = rejected.result
        if body.dry_run and res.ok:
            # Validated, nothing rejected: say what would be written, keep nothing.
            await crm.session.rollback()
            return _summary(res)
        raise ApiProblem(
            422,
            res.file_error or f"{res.rejected_rows} record(s) rejected; nothing was written",
            errors=_issues(res),
        ) from None
    return _summary(result)


def _summary(result: ImportResult) -> UpsertResult:
    return UpsertResult(
        rows=result.rows,
        inserted=result.inserted,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected_rows=result.rejected_rows,
        dry_run=result.dry_run,
        warnings=[i.model_dump() for i in result.issues if i.severity == "warning"],
    )


def _issues(result: ImportResult) -> list[dict[str, Any]]:
    return [
        {
            "record": i.row,
            "field": i.column,
            "reason": i.reason,
            "value": i.value,
            "severity": i.severity,
        }
        for i in result.issues
    ]


@router.post("/customers", response_model=UpsertResult, tags=["customers"])
async def upsert_customers(
    ctx: Ctx,
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("customers:write"))],
    body: UpsertRequest,
) -> UpsertResult:
    """Insert or update customers (matched like the CLI import: phone, e-mail, Telegram id)."""
    return await _upsert(ctx, crm, key, Entity.CUSTOMERS, body)


@router.post("/products", response_model=UpsertResult, tags=["products"])
async def upsert_products(
    ctx: Ctx,
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("products:write"))],
    body: UpsertRequest,
) -> UpsertResult:
    """Insert or update products (by SKU)."""
    return await _upsert(ctx, crm, key, Entity.PRODUCTS, body)


@router.post("/orders", response_model=UpsertResult, tags=["orders"])
async def upsert_orders(
    ctx: Ctx,
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("orders:write"))],
    body: UpsertRequest,
) -> UpsertResult:
    """Insert or update orders (one record per order line, grouped by order number)."""
    return await _upsert(ctx, crm, key, Entity.ORDERS, body)


@router.get("/orders/{order_number}", response_model=OrderDTO, tags=["orders"])
async def get_order(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("orders:read"))],
    order_number: Annotated[str, Path(max_length=20)],
) -> OrderDTO:
    """One order with its lines (order numbers look like SO-12345678)."""
    return await crm.orders.get_order_for_staff(order_number)


@router.get("/products/{sku}", response_model=ProductDTO, tags=["products"])
async def get_product(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("products:read"))],
    sku: Annotated[str, Path(max_length=64)],
) -> ProductDTO:
    """One product by SKU."""
    return await crm.catalog.get(sku)


# --- tickets and warranty ------------------------------------------------------------------


class TicketPage(BaseModel):
    items: list[TicketDTO]
    next_cursor: str | None = None


@router.get("/tickets", response_model=TicketPage, tags=["tickets"])
async def list_tickets(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("tickets:read"))],
    cursor: Cursor = None,
    limit: Limit = 50,
    status: Annotated[str | None, Query(max_length=20)] = None,
    customer_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> TicketPage:
    """Tickets by id (keyset pagination), optionally of one status or customer."""
    after = _after(cursor)
    stmt = select(Ticket.ticket_number, Ticket.id).where(Ticket.id > after)
    if status:
        stmt = stmt.where(Ticket.status == status)
    if customer_id:
        stmt = stmt.where(Ticket.customer_id == customer_id)
    rows = (await crm.session.execute(stmt.order_by(Ticket.id).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [await crm.tickets.get(number) for number, _ in rows]
    return TicketPage(items=items, next_cursor=_cursor(rows[-1][1]) if more and rows else None)


@router.get("/tickets/{ticket_number}", response_model=TicketDTO, tags=["tickets"])
async def get_ticket(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("tickets:read"))],
    ticket_number: Annotated[str, Path(max_length=20)],
) -> TicketDTO:
    number = normalize_ticket_number(ticket_number)
    if number is None:
        raise NotFound(f"no ticket {ticket_number!r} (ticket numbers look like TK-12345678)")
    return await crm.tickets.get(number)


@router.get("/warranty/{serial_number}", response_model=WarrantyStatus, tags=["warranty"])
async def warranty(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("warranty:read"))],
    serial_number: Annotated[str, Path(max_length=40)],
) -> WarrantyStatus:
    """The warranty status of one unit."""
    return await crm.warranties.warranty_by_serial(serial_number)


# --- webhooks ------------------------------------------------------------------------------


class WebhookCreate(BaseModel):
    url: str = Field(max_length=500, description="https://… receiver")
    events: list[str] = Field(
        default_factory=list, description=f"subset of {', '.join(EVENTS)}; empty = all"
    )


class WebhookCreated(WebhookEndpointDTO):
    secret: str = Field(description="the signing secret; shown only now")


@router.post("/webhooks", response_model=WebhookCreated, status_code=201, tags=["webhooks"])
async def create_webhook(
    crm: Crm, key: Annotated[ApiKeyDTO, Depends(Scope("webhooks:manage"))], body: WebhookCreate
) -> WebhookCreated:
    endpoint, secret = await WebhookService(crm.session, crm.clock).create_endpoint(
        body.url, body.events
    )
    await crm.audit.record(key.actor, "create", "webhook", endpoint.id, reason="api")
    return WebhookCreated(**endpoint.model_dump(), secret=secret)


@router.get("/webhooks", response_model=list[WebhookEndpointDTO], tags=["webhooks"])
async def list_webhooks(
    crm: Crm, key: Annotated[ApiKeyDTO, Depends(Scope("webhooks:manage"))]
) -> list[WebhookEndpointDTO]:
    return await WebhookService(crm.session, crm.clock).list_endpoints()


@router.delete("/webhooks/{endpoint_id}", response_model=WebhookEndpointDTO, tags=["webhooks"])
async def delete_webhook(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("webhooks:manage"))],
    endpoint_id: Annotated[int, Path(ge=1, le=2**62)],
) -> WebhookEndpointDTO:
    return await WebhookService(crm.session, crm.clock).deactivate(endpoint_id)


@router.get(
    "/webhooks/{endpoint_id}/deliveries", response_model=list[WebhookDeliveryDTO], tags=["webhooks"]
)
async def webhook_deliveries(
    crm: Crm,
    key: Annotated[ApiKeyDTO, Depends(Scope("webhooks:manage"))],
    endpoint_id: Annotated[int, Path(ge=1, le=2**62)],
) -> list[WebhookDeliveryDTO]:
    """The delivery log (newest first)."""
    return await WebhookService(crm.session, crm.clock).deliveries(endpoint_id)

"""FastAPI dependencies: the unit of work per request, who is signed in, the role table, CSRF.

Every console page and action declares `Allow("<page>")`: the one dependency that checks
the session and the role against `PAGE_ROLES` (a test walks every route × role). State-
changing requests also depend on `csrf_ok` (a per-session token in each form, or the
`X-CSRF-Token` header for scripts).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from console.context import ConsoleContext
from crm_core.access.schemas import SessionInfo
from crm_core.access.service import AccessService
from crm_core.db import unit_of_work
from crm_core.services import CrmServices

SESSION_COOKIE = "hwcrm_session"
LOGIN_CSRF_COOKIE = "hwcrm_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

ADMIN, AGENT, MARKETER = "admin", "agent", "marketer"
EVERYONE = (ADMIN, AGENT, MARKETER)

# page / action → roles allowed. Every console route is listed here (tests/console check it).
PAGE_ROLES: dict[str, tuple[str, ...]] = {
    "dashboard": EVERYONE,
    "language": EVERYONE,
    "logout": EVERYONE,
    "customers": (ADMIN, AGENT),
    "customer": (ADMIN, AGENT),
    "gdpr": (ADMIN,),
    "inbox": (ADMIN, AGENT),
    "inbox_action": (ADMIN, AGENT),
    "tickets": (ADMIN, AGENT),
    "ticket": (ADMIN, AGENT),
    "ticket_change": (ADMIN, AGENT),
    "apikeys": (ADMIN,),
    "staff": (ADMIN,),
    "staff_change": (ADMIN,),
    "apikeys_change": (ADMIN,),
    "campaigns": (ADMIN, MARKETER),
    "campaigns_change": (ADMIN, MARKETER),
    "imports": (ADMIN,),
    "imports_change": (ADMIN,),
}


class LoginRequired(Exception):
    """No valid session: pages redirect to /login, scripts get 401."""


class Forbidden(Exception):
    """Signed in, but the role may not open this page."""

    def __init__(self, info: SessionInfo, page: str) -> None:
        super().__init__(page)
        self.info = info
        self.page = page


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token."""


def context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.console
    return ctx


Ctx = Annotated[ConsoleContext, Depends(context)]


async def crm(ctx: Ctx) -> AsyncIterator[CrmServices]:
    """One unit of work per request: committed when the route returns, rolled back when it
    raises (before the response is sent, so a failed commit is an error response)."""
    async with unit_of_work(ctx.sessions) as session:
        yield CrmServices(
            session, ctx.clock, ctx.settings.crm, ctx.settings.campaigns, texts=ctx.texts
        )


Crm = Annotated[CrmServices, Depends(crm, scope="function")]


def access(ctx: ConsoleContext, services: CrmServices) -> AccessService:
    return AccessService(services.session, ctx.clock, ctx.access)


async def signed_in(request: Request, ctx: Ctx, services: Crm) -> SessionInfo:
    info = await access(ctx, services).session_for(request.cookies.get(SESSION_COOKIE))
    if info is None:
        raise LoginRequired()
    request.state.session = info
    return info


class Allow:
    """The role check of one page: `Depends(Allow("customers"))`."""

    def __init__(self, page: str) -> None:
        if page not in PAGE_ROLES:
            raise KeyError(f"page {page!r} is missing from PAGE_ROLES")
        self.page = page

    async def __call__(self, info: Annotated[SessionInfo, Depends(signed_in)]) -> SessionInfo:
        if info.staff.role not in PAGE_ROLES[self.page]:
            raise Forbidden(info, self.page)
        return info


async def csrf_ok(request: Request, info: Annotated[SessionInfo, Depends(signed_in)]) -> None:
    """The request carries this session's CSRF token (form field or header)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, info.csrf):
        raise CsrfFailed()


CsrfOk = Depends(csrf_ok)


def client_ip(request: Request) -> str:
    """The client's address (uvicorn resolves X-Forwarded-For from trusted proxies only)."""
    return request.client.host if request.client else "?"

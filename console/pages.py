"""The console's pages and form actions. Thin: parse the form, call one service, render.

Every route depends on `Allow(<page>)` (role table in `console.deps.PAGE_ROLES`); every
POST also on `CsrfOk`. Agent actions call the same `AgentDesk` as the Telegram staff group.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from console.deps import (
    LOGIN_CSRF_COOKIE,
    PAGE_ROLES,
    SESSION_COOKIE,
    Allow,
    Crm,
    CsrfOk,
    Ctx,
    access,
    client_ip,
)
from console.render import render
from crm_core.access.schemas import SessionInfo
from crm_core.access.service import SCOPES
from crm_core.conversations.handoff import AGENT_ROLES, HandoffService
from crm_core.conversations.handoff_schemas import Owner
from crm_core.conversations.models import Conversation
from crm_core.customers.models import Customer
from crm_core.errors import InvalidTransition, NotFound, PermissionDenied
from crm_core.services import CrmServices
from crm_core.staff.models import ROLES
from crm_core.support.desk import AgentDesk, DeskResult, NoDelivery, inbox
from crm_core.tickets.models import Ticket
from crm_core.tickets.state_machine import DONE_STATES, TicketStatus, allowed_targets

router = APIRouter(include_in_schema=False)

VIEW_REASON = "console: customer 360 view"


def secure_cookie(request: Request, ctx: Ctx) -> bool:
    mode = ctx.settings.console.secure_cookies
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def safe_next(value: str | None) -> str:
    """Only paths of this console (no open redirect to another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def redirect(request: Request, path: str, **query: str) -> RedirectResponse:
    root = request.scope.get("root_path", "")
    q = "&".join(f"{k}={quote(v)}" for k, v in query.items())
    return RedirectResponse(root + path + (f"?{q}" if q else ""), status_code=303)


# --- login / logout / language -------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, ctx: Ctx, next: str = "/", lang: str | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    language = lang if lang in ("zh", "en") else ctx.settings.app.default_language
    page = render(
        request,
        ctx,
        "login.html",
        None,
        lang=language,
        login_csrf=token,
        next=safe_next(next),
        login="",
        error=None,
    )
    page.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, ctx),
        path="/",
    )
    return page


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    login: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not csrf or not cookie or not hmac.compare_digest(csrf, cookie):
        # No session yet: a double-submit token (cookie + form field) stops login CSRF.
        return await _login_again(request, ctx, login, next, "console.login_expired_form", 400)
    outcome = await access(ctx, crm).login(
        login, password, ip=client_ip(request), user_agent=request.headers.get("user-agent", "")
    )
    if outcome.status == "locked":
        minutes = max(1, (outcome.retry_after_s + 59) // 60)
        return await _login_again(
            request,
            ctx,
            login,
            next,
            "console.login_locked",
            429,
            minutes=minutes,
            retry_after=outcome.retry_after_s,
        )
    if outcome.status == "rate_limited":
        return await _login_again(
            request,
            ctx,
            login,
            next,
            "console.login_rate_limited",
            429,
            retry_after=outcome.retry_after_s,
        )
    if outcome.status != "ok" or outcome.token is None:
        return await _login_again(request, ctx, login, next, "console.login_invalid", 401)
    response = redirect(request, safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        outcome.token,
        max_age=ctx.access.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, ctx),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def _login_again(
    request: Request,
    ctx: Ctx,
    login: str,
    next: str,
    key: str,
    status: int,
    *,
    retry_after: int | None = None,
    **params: object,
) -> Response:
    token = secrets.token_urlsafe(24)
    lang = ctx.settings.app.default_language
    page = render(
        request,
        ctx,
        "login.html",
        None,
        status=status,
        lang=lang,
        login_csrf=token,
        next=safe_next(next),
        login=login,
        error=ctx.ui.t(key, lang, **params),
    )
    page.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, ctx),
        path="/",
    )
    if retry_after:
        page.headers["Retry-After"] = str(retry_after)
    return page


@router.post("/logout", dependencies=[CsrfOk])
async def logout(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("logout"))],
) -> Response:
    await access(ctx, crm).logout(request.cookies.get(SESSION_COOKIE))
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language", dependencies=[CsrfOk])
async def language(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("language"))],
    language: Annotated[str, Form(max_length=2)] = "en",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    await access(ctx, crm).set_language(info.session_id, language)
    root = request.scope.get("root_path", "")
    target = safe_next(next)
    if root and target.startswith(root):
        target = target[len(root) :] or "/"
    return redirect(request, target)


# --- dashboard -----------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("dashboard"))],
    start: str | None = None,
    end: str | None = None,
) -> Response:
    from console.dashboard import dashboard_charts

    session = crm.session
    done = [s.value for s in DONE_STATES]
    kpis = {
        "customers": await session.scalar(select(func.count()).select_from(Customer)),
        "open_tickets": await session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.status.not_in(done))
        ),
        "queued": await _count_owner(crm, Owner.QUEUED),
        "with_agents": await _count_owner(crm, Owner.AGENT),
    }
    charts = await dashboard_charts(ctx, crm, info, start, end)
    return render(request, ctx, "dashboard.html", info, kpis=kpis, **charts)


async def _count_owner(crm: CrmServices, owner: Owner) -> int:
    value = await crm.session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.owner == owner.value, Conversation.closed_at.is_(None))
    )
    return int(value or 0)


# --- customers -----------------------------------------------------------------------------


@router.get("/customers", response_class=HTMLResponse)
async def customers(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("customers"))],
    q: str = "",
) -> Response:
    query = q.strip()[:200]
    results = (
        await crm.customers.search_as(info.staff.actor, query, "console: customer search")
        if query
        else []
    )
    return render(request, ctx, "customers.html", info, query=query, results=results)


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
async def customer(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("customer"))],
    customer_id: int,
    flash: str | None = None,
) -> Response:
    record = await crm.customers.get_customer_for_staff(info.staff.id, customer_id, VIEW_REASON)
    return render(
        request,
        ctx,
        "customer.html",
        info,
        customer=record,
        devices=await crm.warranties.warranty_for_customer(customer_id),
        tickets=await crm.tickets.list_for_customer(customer_id),
        orders=await crm.customers.purchase_history(customer_id),
        consent=await crm.customers.consent_events(customer_id),
        leads=await crm.leads.list_leads(customer_id=customer_id, limit=20),
        conversations=(await crm.conversations.for_customer(customer_id))[:10],
        may_gdpr=info.staff.role in PAGE_ROLES["gdpr"],
        flash=flash,
    )


# --- data protection (admins) --------------------------------------------------------------


@router.post("/customers/{customer_id}/export", dependencies=[CsrfOk])
async def customer_export(
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("gdpr"))],
    customer_id: int,
) -> Response:
    """Everything about the customer as a JSON download (GDPR access request; audited)."""
    data = await crm.customers.export_customer(
        customer_id, actor=info.staff.actor, reason="GDPR data export from the console"
    )
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="customer-{customer_id}.json"'},
    )


@router.get("/customers/{customer_id}/erase", response_class=HTMLResponse)
async def customer_erase_confirm(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("gdpr"))],
    customer_id: int,
    error: str | None = None,
) -> Response:
    record = await crm.customers.get_customer_for_staff(
        info.staff.id, customer_id, "console: erase confirmation"
    )
    return render(
        request, ctx, "erase.html", info, customer=record, flash=error, flash_bad=bool(error)
    )


@router.post("/customers/{customer_id}/erase", dependencies=[CsrfOk])
async def customer_erase(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("gdpr"))],
    customer_id: int,
) -> Response:
    """Erase (anonymise) after the admin typed the customer's id and a reason."""
    form = await request.form()
    confirm = str(form.get("confirm") or "").strip()
    reason = str(form.get("reason") or "").strip()[:500]
    lang = info.language
    if confirm != str(customer_id) or not reason:
        return redirect(
            request,
            f"/customers/{customer_id}/erase",
            error=ctx.ui.t("console.erase_unconfirmed", lang),
        )
    result = await crm.customers.erase_customer(customer_id, info.staff.actor, reason)
    return redirect(request, f"/customers/{customer_id}", flash=result.message)


# --- live inbox ----------------------------------------------------------------------------


@router.get("/inbox", response_class=HTMLResponse)
async def inbox_page(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("inbox"))],
) -> Response:
    t = ctx.ui
    lang = info.language
    queued, mine, others = [], [], []
    for row in await inbox(crm.session):
        item = {
            "id": row.conversation_id,
            "customer": row.customer_name,
            "owner_text": _owner_text(ctx, lang, row.owner, row.agent_name),
            "since": (row.queued_at or row.last_activity_at or "").__str__()[:16],
        }
        if row.owner == Owner.QUEUED:
            queued.append(item)
        elif row.agent_staff_id == info.staff.id:
            mine.append(item)
        else:
            others.append(item)
    sections = [
        (t.t("console.inbox_queued", lang), queued),
        (t.t("console.inbox_mine", lang), mine),
        (t.t("console.inbox_others", lang), others),
    ]
    return render(request, ctx, "inbox.html", info, sections=sections)


def _owner_text(ctx: Ctx, lang: str, owner: str, agent: str | None) -> str:
    if owner == Owner.AGENT:
        return ctx.ui.t("console.owner_agent", lang, agent=agent or "?")
    if owner == Owner.QUEUED:
        return ctx.ui.t("console.owner_queued", lang)
    return ctx.ui.t("console.owner_bot", lang)


@router.get("/inbox/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("inbox"))],
    conversation_id: int,
    flash: str | None = None,
    bad: int = 0,
) -> Response:
    desk = _desk(ctx, crm)
    chat = await desk.context(conversation_id)
    # The conversation shows the customer's record: audited like any other view.
    await crm.customers.get_customer_for_staff(
        info.staff.id, chat.customer.id, "console: inbox conversation"
    )
    messages = await HandoffService(crm.session, crm.clock).recent_messages(conversation_id, 50)
    agent_name = None
    if chat.conversation.agent_staff_id is not None:
        found = await crm.staff.find(chat.conversation.agent_staff_id)
        agent_name = found.name if found else None
    agents = [
        s for s in await crm.staff.list_staff() if s.role in AGENT_ROLES and s.id != info.staff.id
    ]
    return render(
        request,
        ctx,
        "conversation.html",
        info,
        conv=chat.conversation,
        customer=chat.customer,
        messages=messages,
        owner_text=_owner_text(ctx, info.language, chat.conversation.owner, agent_name),
        canned=desk.canned_names(),
        agents=agents,
        flash=flash,
        flash_bad=bool(bad),
    )


ACTIONS = ("claim", "reply", "note", "canned", "transfer", "release", "close", "ticket")


@router.post("/inbox/{conversation_id}/{action}", dependencies=[CsrfOk])
async def conversation_action(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("inbox_action"))],
    conversation_id: int,
    action: str,
) -> Response:
    """One agent action through the agent desk; the result is shown on the conversation."""
    if action not in ACTIONS:
        return render(
            request,
            ctx,
            "error.html",
            info,
            status=404,
            title=ctx.ui.t("console.not_found_title", info.language),
            message=ctx.ui.t("console.not_found", info.language),
        )
    form = await request.form()

    def field(name: str) -> str:
        value = form.get(name)
        return value[:4000] if isinstance(value, str) else ""

    desk = _desk(ctx, crm)
    chat = await desk.context(conversation_id)
    agent = info.staff
    result: DeskResult
    if action == "claim":
        result = await desk.claim(agent, chat)
    elif action == "reply":
        result = await desk.reply(agent, chat, field("text"))
    elif action == "note":
        result = await desk.note(agent, chat, field("text"))
    elif action == "canned":
        result = await desk.canned(agent, chat, field("name"))
    elif action == "transfer":
        result = await desk.transfer(agent, chat, field("to"))
    elif action == "release":
        result = await desk.release(agent, chat)
    elif action == "close":
        result = await desk.close(agent, chat)
    else:
        result = await desk.change_ticket(
            agent, chat, field("status").strip() or None, note=field("note").strip() or None
        )
    lang = info.language
    if result.reply is not None:
        message = ctx.texts.t(result.reply.key, lang, **result.reply.params)
    else:
        message = ctx.ui.t("console.done", lang)
    return redirect(
        request, f"/inbox/{conversation_id}", flash=message, bad="0" if result.ok else "1"
    )


NO_BOT = "no Telegram bot is configured (HWCRM_BOT__TOKEN): nothing can reach the customer"


def _desk(ctx: Ctx, crm: CrmServices) -> AgentDesk:
    notifier = ctx.notifier(crm) if ctx.notifier is not None else NoDelivery(NO_BOT)
    return AgentDesk(crm, notifier, ctx.settings.handoff.canned)


# --- tickets -------------------------------------------------------------------------------


@router.get("/tickets", response_class=HTMLResponse)
async def tickets_page(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("tickets"))],
    status: str = "",
    mine: int = 0,
    overdue: int = 0,
) -> Response:
    """The ticket queue, most urgent SLA first; filters: status, mine, overdue."""
    wanted = status if status in {s.value for s in TicketStatus} else None
    rows = await crm.tickets.list_tickets(
        status=wanted,
        assignee_staff_id=info.staff.id if mine else None,
        overdue=bool(overdue),
        limit=200,
    )
    now = ctx.clock.now()
    items = [
        {
            "ticket": t,
            "sla_minutes": int((t.sla_due_at - now).total_seconds() // 60)
            if t.sla_due_at
            else None,
        }
        for t in rows
    ]
    return render(
        request,
        ctx,
        "tickets.html",
        info,
        items=items,
        statuses=[s.value for s in TicketStatus],
        selected_status=wanted or "",
        mine=bool(mine),
        overdue=bool(overdue),
    )


@router.get("/tickets/{ticket_number}", response_class=HTMLResponse)
async def ticket_page(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("ticket"))],
    ticket_number: str,
    flash: str | None = None,
    bad: int = 0,
) -> Response:
    ticket = await crm.tickets.get(ticket_number)
    customer = await crm.customers.get_customer_for_staff(
        info.staff.id, ticket.customer_id, f"console: ticket {ticket.ticket_number}"
    )
    events = await crm.tickets.events(ticket.ticket_number)
    agents = [s for s in await crm.staff.list_staff() if s.role in AGENT_ROLES]
    return render(
        request,
        ctx,
        "ticket.html",
        info,
        ticket=ticket,
        customer=customer,
        events=events,
        allowed=[s.value for s in allowed_targets(ticket.status)],
        agents=agents,
        flash=flash,
        flash_bad=bool(bad),
    )


@router.post("/tickets/{ticket_number}/{action}", dependencies=[CsrfOk])
async def ticket_action(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("ticket_change"))],
    ticket_number: str,
    action: str,
) -> Response:
    """Status change along the ticket state machine, or assignment; a refusal is shown with
    the state machine's reason (and nothing changes)."""
    form = await request.form()
    note = str(form.get("note") or "").strip()[:2000] or None
    ticket = await crm.tickets.get(ticket_number)
    path = f"/tickets/{ticket.ticket_number}"
    lang = info.language
    if action == "status":
        target = str(form.get("status") or "")
        try:
            await crm.tickets.transition(
                ticket.ticket_number, target, actor=info.staff.actor, note=note
            )
        except InvalidTransition as exc:
            return redirect(request, path, flash=str(exc), bad="1")
    elif action == "assign":
        raw = str(form.get("staff_id") or "")
        await crm.tickets.assign(
            ticket.ticket_number,
            int(raw) if raw.isdigit() else None,
            actor=info.staff.actor,
            note=note,
        )
    else:
        raise NotFound(f"no ticket action {action!r}")
    return redirect(request, path, flash=ctx.ui.t("console.done", lang), bad="0")


# --- staff (admins) ------------------------------------------------------------------------


@router.get("/admin/staff", response_class=HTMLResponse)
async def staff_page(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("staff"))],
    flash: str | None = None,
    bad: int = 0,
) -> Response:
    members = await crm.staff.list_staff(include_inactive=True)
    return render(
        request,
        ctx,
        "staff.html",
        info,
        members=members,
        roles=ROLES,
        flash=flash,
        flash_bad=bool(bad),
    )


@router.post("/admin/staff", dependencies=[CsrfOk])
async def staff_add(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("staff_change"))],
) -> Response:
    """Add a staff member (a console login needs a password of 8+ characters)."""
    form = await request.form()
    tg = str(form.get("telegram_user_id") or "").strip()
    member = await crm.staff.add_staff(
        str(form.get("name") or ""),
        str(form.get("role") or ""),
        telegram_user_id=int(tg) if tg.isdigit() else None,
        login=str(form.get("login") or "").strip() or None,
        password=str(form.get("password") or "") or None,
        languages=str(form.get("languages") or "zh,en"),
    )
    await crm.audit.record(info.staff.actor, "create", "staff", member.id, reason="console")
    return redirect(
        request,
        "/admin/staff",
        flash=ctx.ui.t("console.staff_added", info.language, name=member.name),
    )


@router.post("/admin/staff/{staff_id}/{action}", dependencies=[CsrfOk])
async def staff_change(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("staff_change"))],
    staff_id: int,
    action: str,
) -> Response:
    """Disable a staff member, or set a new password; either ends their console sessions."""
    svc = access(ctx, crm)
    if action == "disable":
        if staff_id == info.staff.id:
            raise PermissionDenied("you cannot disable your own account")
        await crm.staff.deactivate(staff_id)
    elif action == "password":
        form = await request.form()
        await crm.staff.set_password(staff_id, str(form.get("password") or ""))
    else:
        raise NotFound(f"no staff action {action!r}")
    await svc.end_sessions_of(staff_id)
    await crm.audit.record(info.staff.actor, action, "staff", staff_id, reason="console")
    return redirect(request, "/admin/staff", flash=ctx.ui.t("console.done", info.language))


# --- API keys (admins) ---------------------------------------------------------------------


@router.get("/admin/apikeys", response_class=HTMLResponse)
async def apikeys(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("apikeys"))],
) -> Response:
    keys = await access(ctx, crm).list_keys()
    return render(
        request,
        ctx,
        "apikeys.html",
        info,
        keys=keys,
        scopes=SCOPES,
        new_key=None,
        default_rate=ctx.settings.console.api_rate_limit_per_minute,
    )


@router.post("/admin/apikeys", response_class=HTMLResponse, dependencies=[CsrfOk])
async def apikey_create(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("apikeys_change"))],
) -> Response:
    form = await request.form()
    name = str(form.get("name") or "")
    scopes = [str(s) for s in form.getlist("scopes")]
    rate = str(form.get("rate_limit") or ctx.settings.console.api_rate_limit_per_minute)
    svc = access(ctx, crm)
    _, plaintext = await svc.create_key(
        name,
        scopes,
        rate_limit_per_minute=int(rate) if rate.isdigit() else 0,
        created_by_staff_id=info.staff.id,
    )
    await crm.audit.record(info.staff.actor, "create", "api_key", name, reason="console")
    keys = await svc.list_keys()
    return render(
        request,
        ctx,
        "apikeys.html",
        info,
        keys=keys,
        scopes=SCOPES,
        new_key=plaintext,
        default_rate=ctx.settings.console.api_rate_limit_per_minute,
    )


@router.post("/admin/apikeys/{key_id}/revoke", dependencies=[CsrfOk])
async def apikey_revoke(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("apikeys_change"))],
    key_id: int,
) -> Response:
    await access(ctx, crm).revoke_key(key_id)
    await crm.audit.record(info.staff.actor, "revoke", "api_key", key_id, reason="console")
    return redirect(request, "/admin/apikeys")

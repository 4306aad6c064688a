"""Campaigns and automation rules (marketers and admins), on `crm_core.campaigns`.

Thin like the other pages: parse the form, call `CampaignService` / `RuleService` (the same
calls as `hwcrm campaign …` / `hwcrm rules …`), render. The segment is JSON (the grammar of
`crm_core/campaigns/segments.py`); its live audience count comes from a small fetch to
`POST /campaigns/audience` (JSON, CSRF header). Every customer a preview shows is audited.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from console.charts import grouped_bars
from console.deps import Allow, Crm, CsrfOk, Ctx
from console.pages import redirect
from console.render import render
from crm_core.access.schemas import SessionInfo
from crm_core.campaigns.service import CampaignCreate
from crm_core.errors import DomainError, NotFound, ValidationFailed

router = APIRouter(include_in_schema=False)

DEFAULT_SEGMENT = '{"and": [{"consent": true}, {"owns": {"category": "gpu"}}]}'
ACTIONS = {  # action → the flash shown after it
    "schedule": "console.campaign_scheduled",
    "pause": "console.campaign_paused",
    "resume": "console.campaign_resumed",
    "cancel": "console.campaign_cancelled",
}


def _segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"segment: not valid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValidationFailed('segment: a JSON object, e.g. {"all": true}')
    return value


def _variants(form: Any) -> list[dict[str, Any]]:
    """Variants A and B from the form (B only when it has a text)."""
    out = []
    for label in ("A", "B"):
        texts = {
            lang: str(form.get(f"text_{label}_{lang}") or "").strip()
            for lang in ("zh", "en")
            if str(form.get(f"text_{label}_{lang}") or "").strip()
        }
        if not texts:
            continue
        weight = str(form.get(f"weight_{label}") or "1").strip()
        out.append(
            {"label": label, "text": texts, "weight": int(weight) if weight.isdigit() else weight}
        )
    return out


@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns_page(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("campaigns"))],
    flash: str | None = None,
    bad: int = 0,
) -> Response:
    campaigns = await crm.campaigns.list_campaigns()
    rows = [(c, await crm.campaigns.next_run(c)) for c in campaigns]
    return render(
        request,
        ctx,
        "campaigns.html",
        info,
        rows=rows,
        rules=await crm.rules.list_rules(),
        flash=flash,
        flash_bad=bool(bad),
    )


@router.get("/campaigns/new", response_class=HTMLResponse)
async def campaign_new(
    request: Request,
    ctx: Ctx,
    info: Annotated[SessionInfo, Depends(Allow("campaigns"))],
) -> Response:
    return render(request, ctx, "campaign_new.html", info, form={"segment": DEFAULT_SEGMENT})


@router.post("/campaigns/new", response_class=HTMLResponse, dependencies=[CsrfOk])
async def campaign_create(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("campaigns_change"))],
) -> Response:
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    try:
        campaign = await crm.campaigns.create(
            CampaignCreate(
                name=values.get("name", ""),
                kind=values.get("kind", "marketing"),
                segment=_segment(values.get("segment", "")),
                variants=_variants(form),
                send_local_time=values.get("send_local_time") or None,
            ),
            actor=info.staff.actor,
        )
    except DomainError as exc:
        # Shown on the form with what was typed (nothing was written).
        return render(
            request,
            ctx,
            "campaign_new.html",
            info,
            status=422,
            form=values,
            flash=str(exc),
            flash_bad=True,
        )
    return redirect(
        request,
        f"/campaigns/{campaign.id}",
        flash=ctx.ui.t("console.campaign_created", info.language),
    )


@router.post("/campaigns/audience", dependencies=[CsrfOk])
async def campaign_audience(
    request: Request,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("campaigns"))],
) -> Response:
    """The live audience count of a segment being typed (no customer names: counts only)."""
    body = await request.json()
    try:
        audience = await crm.campaigns.audience_of(
            _segment(str(body.get("segment", ""))), str(body.get("kind", "marketing")), sample=0
        )
    except ValidationFailed as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return JSONResponse(
        {
            "matched": audience.matched,
            "reachable": audience.reachable,
            "by_language": audience.by_language,
            "reason_empty": audience.reason_empty,
        }
    )


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("campaigns"))],
    campaign_id: int,
    flash: str | None = None,
    bad: int = 0,
) -> Response:
    campaign = await crm.campaigns.get(campaign_id)
    report = await crm.campaigns.report(campaign_id)
    try:
        previews = await crm.campaigns.preview(campaign_id, actor=info.staff.actor)
    except DomainError:
        previews = []
    t = ctx.ui
    lang = info.language
    chart = grouped_bars(
        [v.variant for v in report.variants] or ["A"],
        [
            (t.t("console.campaign_sent", lang), [v.sent for v in report.variants]),
            (t.t("console.campaign_clicks", lang), [v.clicks for v in report.variants]),
            (t.t("console.campaign_conversions", lang), [v.conversions for v in report.variants]),
        ],
        title=t.t("console.campaign_results", lang),
    )
    return render(
        request,
        ctx,
        "campaign.html",
        info,
        campaign=campaign,
        next_run=await crm.campaigns.next_run(campaign),
        report=report,
        previews=previews,
        chart=Markup(chart),  # built from numbers and escaped labels (console.charts)
        flash=flash,
        flash_bad=bool(bad),
    )


@router.post("/campaigns/{campaign_id}/{action}", dependencies=[CsrfOk])
async def campaign_action(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("campaigns_change"))],
    campaign_id: int,
    action: str,
) -> Response:
    """schedule (a one-shot local time or a cron expression), pause, resume, cancel."""
    if action not in ACTIONS:
        raise NotFound(f"unknown action {action!r}")
    form = await request.form()
    lang = info.language
    try:
        if action == "schedule":
            at_text = str(form.get("at") or "").strip()
            cron = str(form.get("cron") or "").strip() or None
            at = datetime.fromisoformat(at_text) if at_text and cron is None else None
            await crm.campaigns.schedule(campaign_id, at=at, cron=cron)
        elif action == "pause":
            await crm.campaigns.pause(campaign_id)
        elif action == "resume":
            await crm.campaigns.resume(campaign_id)
        else:
            await crm.campaigns.cancel(campaign_id)
    except ValueError as exc:  # a malformed date/time
        return redirect(request, f"/campaigns/{campaign_id}", flash=str(exc), bad="1")
    except NotFound:
        raise
    except DomainError as exc:  # refused with the reason; the unit of work rolls nothing in
        return redirect(request, f"/campaigns/{campaign_id}", flash=str(exc), bad="1")
    return redirect(request, f"/campaigns/{campaign_id}", flash=ctx.ui.t(ACTIONS[action], lang))


@router.post("/campaigns/rules/{name}/{action}", dependencies=[CsrfOk])
async def rule_toggle(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("campaigns_change"))],
    name: str,
    action: str,
) -> Response:
    if action not in ("enable", "disable"):
        raise NotFound(f"unknown action {action!r}")
    rule = await crm.rules.set_enabled(name, action == "enable", actor=info.staff.actor)
    key = "console.rule_enabled" if rule.enabled else "console.rule_disabled"
    return redirect(request, "/campaigns", flash=ctx.ui.t(key, info.language, rule=rule.name))

"""The dashboard's charts: figures from `crm_core.analytics.dashboard`, drawn as inline SVG."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from console.charts import column_series, grouped_bars, horizontal_bars
from console.context import ConsoleContext
from crm_core.access.schemas import SessionInfo
from crm_core.analytics.dashboard import CampaignFigures, DashboardService, parse_range
from crm_core.services import CrmServices


async def dashboard_charts(
    ctx: ConsoleContext,
    crm: CrmServices,
    info: SessionInfo,
    start: str | None,
    end: str | None,
) -> dict[str, Any]:
    """Template values: the range, the figures and each chart as safe SVG markup (the SVG
    is built from numbers and escaped labels in console.charts)."""
    lang = info.language

    def t(key: str) -> str:
        return ctx.ui.t(key, lang)

    first, last = parse_range(start, end, crm.clock.now().date())
    figures = await DashboardService(crm.session, crm.clock).figures(first, last)
    for campaign in await crm.campaigns.list_campaigns():
        if campaign.state == "draft":
            continue
        report = await crm.campaigns.report(campaign.id)
        figures.campaigns.append(
            CampaignFigures(
                name=campaign.name,
                sent=report.total.sent,
                conversions=report.total.conversions,
                revenue=report.total.revenue,
                currency=report.currency,
            )
        )
    per_day = figures.conversations_per_day
    charts = {
        "chart_conversations": column_series(
            [d.strftime("%m-%d") for d, _ in per_day],
            [n for _, n in per_day],
            title=t("console.chart_conversations"),
            width=1040,
        ),
        "chart_satisfaction": column_series(
            [w for w, _, _ in figures.satisfaction_by_week],
            [avg for _, avg, _ in figures.satisfaction_by_week],
            title=t("console.chart_satisfaction"),
            label_every=2,
            height=140,
        ),
        "chart_status": horizontal_bars(
            list(figures.tickets_by_status.items()), title=t("console.chart_ticket_status")
        ),
        "chart_category": horizontal_bars(
            list(figures.tickets_by_category.items()), title=t("console.chart_ticket_category")
        ),
        "chart_lifecycle": horizontal_bars(
            sorted(figures.lifecycle.items(), key=lambda kv: -kv[1]),
            title=t("console.chart_lifecycle"),
        ),
        "chart_campaigns": grouped_bars(
            [c.name[:18] for c in figures.campaigns] or ["—"],
            [
                (t("console.campaign_sent"), [c.sent for c in figures.campaigns]),
                (t("console.campaign_conversions"), [c.conversions for c in figures.campaigns]),
            ],
            title=t("console.chart_campaigns"),
        ),
    }
    return {
        "figures": figures,
        "range_start": first.isoformat(),
        "range_end": last.isoformat(),
        **{k: Markup(v) for k, v in charts.items()},
    }

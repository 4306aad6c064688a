"""Campaign and rule reports: audience, outcomes by state and reason, reactions, conversions.

Per A/B variant and in total. `unknown` = rows stuck in `sending` longer than the crash window
(`campaigns.stale_sending_minutes`): Telegram may or may not have delivered them; they are
never resent. `deferred` = rows still queued that were pushed back (quiet hours, a live agent
conversation, an open complaint), by reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.campaigns.attribution import SentPush, conversions
from crm_core.campaigns.models import CampaignDelivery, CampaignEvent
from crm_core.campaigns.schemas import CampaignReport, VariantReport

if TYPE_CHECKING:
    from app.settings import CampaignsSection

NO_VARIANT = "-"
DEFERRAL_REASONS = ("quiet_hours", "agent_conversation", "open_complaint")


async def build_report(
    session: AsyncSession,
    now: datetime,
    settings: CampaignsSection,
    *,
    name: str,
    state: str,
    where: ColumnElement[bool],
    attribution_days: int,
    currency: str,
    campaign_id: int | None = None,
    rule: str | None = None,
) -> CampaignReport:
    """The report over the delivery rows selected by `where`."""
    stale_before = now - timedelta(minutes=settings.stale_sending_minutes)
    variants: dict[str, VariantReport] = {}

    def of(label: str | None) -> VariantReport:
        key = label or NO_VARIANT
        return variants.setdefault(key, VariantReport(variant=key))

    D = CampaignDelivery
    stale = D.sending_at < stale_before
    rows = await session.execute(
        select(D.variant, D.state, D.reason, stale.label("stale"), func.count())
        .where(where)
        .group_by(D.variant, D.state, D.reason, stale)
    )
    for variant, state_, reason, is_stale, count in rows:
        report = of(variant)
        n = int(count)
        report.audience += n
        if state_ == "queued":
            report.queued += n
            if reason in DEFERRAL_REASONS:
                report.deferred[reason] = report.deferred.get(reason, 0) + n
        elif state_ == "sending":
            if is_stale:
                report.unknown += n
            else:
                report.sending += n
        elif state_ == "skipped":
            key = reason or "unknown"
            report.skipped[key] = report.skipped.get(key, 0) + n
        elif state_ in ("sent", "failed", "blocked", "cancelled"):
            setattr(report, state_, getattr(report, state_) + n)

    events = await session.execute(
        select(D.variant, CampaignEvent.kind, func.count(func.distinct(CampaignEvent.delivery_id)))
        .join(D, D.id == CampaignEvent.delivery_id)
        .where(where)
        .group_by(D.variant, CampaignEvent.kind)
    )
    for variant, kind, count in events:
        report = of(variant)
        if kind == "click":
            report.clicks += int(count)
        elif kind == "unsubscribe":
            report.unsubscribes += int(count)

    sent = await session.execute(
        select(D.id, D.variant, D.customer_id, D.sent_at, D.product_ids, D.category).where(
            where, D.state == "sent", D.customer_id.is_not(None), D.sent_at.is_not(None)
        )
    )
    variant_of: dict[int, str | None] = {}
    pushes: list[SentPush] = []
    for delivery_id, variant, customer_id, sent_at, product_ids, category in sent:
        variant_of[delivery_id] = variant
        if customer_id is None or sent_at is None:  # excluded by the query; for the types
            continue
        pushes.append(
            SentPush(delivery_id, customer_id, sent_at, tuple(product_ids or ()), category)
        )
    for delivery_id, hit in (await conversions(session, pushes, attribution_days)).items():
        report = of(variant_of[delivery_id])
        report.conversions += 1
        report.revenue += hit.revenue

    ordered = sorted(variants.values(), key=lambda v: v.variant)
    total = VariantReport(variant="total")
    for v in ordered:
        for field in (
            "audience",
            "queued",
            "sending",
            "sent",
            "failed",
            "blocked",
            "cancelled",
            "unknown",
            "clicks",
            "unsubscribes",
            "conversions",
        ):
            setattr(total, field, getattr(total, field) + getattr(v, field))
        total.revenue += v.revenue
        for reason, n in v.skipped.items():
            total.skipped[reason] = total.skipped.get(reason, 0) + n
        for reason, n in v.deferred.items():
            total.deferred[reason] = total.deferred.get(reason, 0) + n
    return CampaignReport(
        campaign_id=campaign_id,
        rule=rule,
        name=name,
        state=state,
        currency=currency,
        variants=ordered,
        total=total,
    )

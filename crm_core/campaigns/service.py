"""Marketer campaigns: create, audience, preview, test send, schedule, pause/resume/cancel,
materialise an occurrence into delivery rows.

Campaign states (one conditional UPDATE per change, like the handoff table):

    draft ──schedule──▶ scheduled ──first occurrence──▶ running ──all sent (one-shot)──▶ finished
                           │  ▲                            │  ▲
                           pause│resume                    pause│resume
                           ▼  │                            ▼  │
                          paused ◀─────────────────────────┘  │
    draft | scheduled | running | paused ──cancel──▶ cancelled (every queued row → cancelled)

Scheduling is refused with the reason when the segment reaches nobody, a template misses a
language the audience reads (or has an unknown variable, bad HTML, is too long), the one-shot
time is in the past, or the cron expression does not parse. Cancelling a finished or cancelled
campaign is refused. Occurrences that fire while paused are materialised and wait (queued)
until the campaign is resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, CursorResult, and_, func, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.campaigns.cron import parse_cron
from crm_core.campaigns.delivery import BLOCKED_TAG, parse_hhmm
from crm_core.campaigns.models import Campaign, CampaignDelivery, CampaignEvent
from crm_core.campaigns.repository import dialect_name, insert_deliveries
from crm_core.campaigns.schemas import (
    AudienceDTO,
    CampaignDTO,
    CampaignReport,
    DeliveryDTO,
    PreviewDTO,
    Recipient,
    ScheduleSpec,
)
from crm_core.campaigns.segments import compile_segment, has_tag, validate_segment
from crm_core.campaigns.templates import (
    first_name,
    pick_variant,
    render,
    template_variables,
    validate_variants,
)
from crm_core.catalog.categories import CATEGORY_KEYS, CATEGORY_NAMES
from crm_core.catalog.models import Product
from crm_core.clock import Clock
from crm_core.customers.models import Customer
from crm_core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from crm_core.orders.models import Order, OrderItem

if TYPE_CHECKING:
    from app.settings import CampaignsSection, CrmSection

log = logging.getLogger(__name__)

ENQUEUE_BATCH = 2000
PRODUCT_VARIABLES = {"product", "brand", "category", "order_number"}
WARRANTY_VARIABLES = {"warranty_end", "serial_number", "days_left"}
UNSUBSCRIBE_CALLBACK = "cmp:u:{d}"
ACTION_CALLBACK = "cmp:a:{d}:"  # + the bot action (bot/routers/campaigns.py)

# event → (states it may start from, state it leads to)
TRANSITIONS: MappingProxyType[str, tuple[frozenset[str], str]] = MappingProxyType(
    {
        "schedule": (frozenset({"draft", "scheduled"}), "scheduled"),
        "start": (frozenset({"scheduled"}), "running"),
        "pause": (frozenset({"scheduled", "running"}), "paused"),
        "resume_scheduled": (frozenset({"paused"}), "scheduled"),
        "resume_running": (frozenset({"paused"}), "running"),
        "finish": (frozenset({"running"}), "finished"),
        "cancel": (frozenset({"draft", "scheduled", "running", "paused"}), "cancelled"),
    }
)


class Texts(Protocol):
    """Locale texts (bot/locales): `texts(key, lang, **params)`; wired by the composition root."""

    def __call__(self, key: str, lang: str, /, **params: object) -> str: ...


class CampaignCreate(BaseModel):
    name: str
    kind: str = "marketing"  # marketing | service
    segment: dict[str, Any]
    variants: list[dict[str, Any]]
    timezone: str | None = None  # the marketer's; default campaigns.marketer_timezone
    send_local_time: str | None = None  # "10:00" in each customer's own time zone
    product_ids: list[int] = Field(default_factory=list)
    category: str | None = None
    attribution_days: int | None = None


ProgressFn = Callable[[int, int], None]


class CampaignService:
    """Campaigns of marketers. Nothing here commits (the caller's unit of work does)."""

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: CampaignsSection,
        texts: Texts | None = None,
        crm: CrmSection | None = None,
    ) -> None:
        self._session = session
        self._clock = clock
        self._settings = settings
        self._texts = texts
        self._crm = crm

    # ------------------------------------------------------------------ create / read

    async def create(self, data: CampaignCreate, *, actor: str = "system") -> CampaignDTO:
        """A draft campaign; segment and templates are validated now (languages at schedule)."""
        name = " ".join(data.name.split())
        if not name or len(name) > 200:
            raise ValidationFailed("campaign name: 1-200 characters")
        if data.kind not in ("marketing", "service"):
            raise ValidationFailed(f"kind {data.kind!r}: marketing or service")
        if await self._session.scalar(select(Campaign.id).where(Campaign.name == name)):
            raise Conflict(f"a campaign named {name!r} already exists")
        segment = validate_segment(data.segment)
        variants = validate_variants(data.variants, languages=())
        timezone = _valid_timezone(data.timezone or self._settings.marketer_timezone)
        if data.send_local_time is not None:
            parse_hhmm(data.send_local_time, "send_local_time")
        if data.category is not None and data.category not in CATEGORY_KEYS:
            raise ValidationFailed(f"category {data.category!r}: not a product category key")
        if data.product_ids:
            found = set(
                await self._session.scalars(
                    select(Product.id).where(Product.id.in_(data.product_ids))
                )
            )
            missing = sorted(set(data.product_ids) - found)
            if missing:
                raise ValidationFailed(f"product ids not in the catalog: {missing}")
        days = data.attribution_days or self._settings.attribution_days
        if days <= 0:
            raise ValidationFailed("attribution_days must be > 0")
        campaign = Campaign(
            name=name,
            kind=data.kind,
            state="draft",
            segment=segment,
            variants=variants,
            timezone=timezone,
            send_local_time=data.send_local_time,
            product_ids=list(data.product_ids),
            category=data.category,
            attribution_days=days,
            created_by=actor[:64],
            created_at=self._clock.now(),
            updated_at=self._clock.now(),
        )
        self._session.add(campaign)
        await self._session.flush()
        return CampaignDTO.model_validate(campaign)

    async def get(self, ref: int | str) -> CampaignDTO:
        return CampaignDTO.model_validate(await self._load(ref))

    async def list_campaigns(self) -> list[CampaignDTO]:
        await self.finish_done()
        rows = await self._session.scalars(select(Campaign).order_by(Campaign.id))
        return [CampaignDTO.model_validate(r) for r in rows]

    async def next_run(self, campaign: CampaignDTO) -> datetime | None:
        """When the campaign fires next (UTC), for display."""
        if campaign.state not in ("scheduled", "running", "paused"):
            return None
        if campaign.cron:
            return parse_cron(campaign.cron).next_after(self._clock.now(), campaign.timezone)
        return campaign.one_shot_at if campaign.state == "scheduled" else None

    # ------------------------------------------------------------------ audience

    async def audience(
        self, ref: int | str, *, sample: int | None = None, actor: str | None = None
    ) -> AudienceDTO:
        campaign = await self._load(ref)
        return await self.audience_of(campaign.segment, campaign.kind, sample=sample, actor=actor)

    async def audience_of(
        self,
        segment: dict[str, Any],
        kind: str = "marketing",
        *,
        sample: int | None = None,
        actor: str | None = None,
    ) -> AudienceDTO:
        """Live count of a segment: matched, reachable (and per language), and a sample.

        With `actor` (a staff member looking at it), each sampled customer shown is audited
        as a read of their record.
        """
        segment = validate_segment(segment)
        matched_where = self._matched(segment)
        reachable_where = and_(matched_where, self._reachable(kind))
        matched = int(
            await self._session.scalar(
                select(func.count()).select_from(Customer).where(matched_where)
            )
            or 0
        )
        by_language = {
            str(lang): int(n)
            for lang, n in await self._session.execute(
                select(Customer.language, func.count())
                .where(reachable_where)
                .group_by(Customer.language)
            )
        }
        reachable = sum(by_language.values())
        size = self._settings.sample_size if sample is None else sample
        rows = await self._session.execute(
            select(Customer).where(reachable_where).order_by(Customer.id).limit(size)
        )
        recipients = [
            Recipient(
                customer_id=c.id,
                name=c.name,
                language=c.language,
                lifecycle_stage=c.lifecycle_stage,
                marketing_consent=c.marketing_consent,
                reachable=True,
            )
            for (c,) in rows
        ]
        if actor is not None:
            await self._audit_reads(actor, [r.customer_id for r in recipients], "audience sample")
        reason = None
        if reachable == 0:
            reason = await self._why_empty(segment, kind, matched)
        return AudienceDTO(
            matched=matched,
            reachable=reachable,
            by_language=by_language,
            sample=recipients,
            reason_empty=reason,
        )

    async def _why_empty(self, segment: dict[str, Any], kind: str, matched: int) -> str:
        if matched == 0:
            return "the segment matches no customer"
        base = self._matched(segment)
        linked = int(
            await self._session.scalar(
                select(func.count()).where(base, Customer.telegram_user_id.is_not(None))
            )
            or 0
        )
        if linked == 0:
            return f"the segment matches {matched} customers, but none is linked to Telegram"
        if kind == "marketing":
            consenting = int(
                await self._session.scalar(
                    select(func.count()).where(
                        base,
                        Customer.telegram_user_id.is_not(None),
                        Customer.marketing_consent.is_(True),
                    )
                )
                or 0
            )
            if consenting == 0:
                return (
                    f"the segment matches {matched} customers ({linked} on Telegram), but none "
                    "gave marketing consent"
                )
        return f"the segment matches {matched} customers, but all of them blocked the bot"

    def _matched(self, segment: dict[str, Any]) -> ColumnElement[bool]:
        return and_(
            compile_segment(segment, self._clock.now(), dialect_name(self._session)),
            Customer.erased_at.is_(None),
        )

    def _reachable(self, kind: str) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = [
            Customer.telegram_user_id.is_not(None),
            not_(has_tag(BLOCKED_TAG, dialect_name(self._session))),
        ]
        if kind == "marketing":
            conditions.append(Customer.marketing_consent.is_(True))
        return and_(*conditions)

    # ------------------------------------------------------------------ preview / test

    async def preview(
        self, ref: int | str, language: str | None = None, *, actor: str | None = None
    ) -> list[PreviewDTO]:
        """Every variant in every language (or one), filled with a sample customer's data
        (audited as a read of that customer's record when `actor` is given)."""
        campaign = await self._load(ref)
        out: list[PreviewDTO] = []
        for variant in campaign.variants:
            for lang in variant["text"]:
                if language and lang != language:
                    continue
                sample = await self._session.scalar(
                    select(Customer)
                    .where(self._matched(campaign.segment), self._reachable(campaign.kind))
                    .where(Customer.language == lang)
                    .order_by(Customer.id)
                    .limit(1)
                )
                values = (
                    (await self._values([sample], variant))[sample.id]
                    if sample is not None
                    else _placeholder_values(lang)
                )
                text, buttons = self._render(campaign, variant, lang, values)
                out.append(
                    PreviewDTO(
                        variant=variant["label"],
                        language=lang,
                        text=text,
                        buttons=_preview_buttons(buttons),
                        customer_id=sample.id if sample is not None else None,
                    )
                )
        if language and not out:
            raise ValidationFailed(f"the campaign has no {language} text")
        if actor is not None:
            shown = sorted({p.customer_id for p in out if p.customer_id is not None})
            await self._audit_reads(actor, shown, "campaign preview")
        return out

    async def test_send(
        self, ref: int | str, chat_id: int, language: str, *, variant: str | None = None
    ) -> DeliveryDTO:
        """Queue the campaign to the marketer's own chat (a `service` delivery, sent at once)."""
        campaign = await self._load(ref)
        chosen = campaign.variants[0]
        if variant is not None:
            matches = [v for v in campaign.variants if v["label"] == variant.upper()]
            if not matches:
                raise NotFound(f"campaign {campaign.name!r} has no variant {variant!r}")
            chosen = matches[0]
        if language not in chosen["text"]:
            raise ValidationFailed(f"variant {chosen['label']} has no {language} text")
        if not chat_id:
            raise ValidationFailed(
                "test send: give your Telegram chat id (link it with hwcrm staff)"
            )
        text, buttons = self._render(campaign, chosen, language, _placeholder_values(language))
        now = self._clock.now()
        key = f"test:{campaign.id}:{now.isoformat()}:{chat_id}"
        await insert_deliveries(
            self._session,
            [
                {
                    "occurrence_key": key,
                    "campaign_id": None,  # not counted in the campaign's report
                    "rule": f"test:{campaign.id}",
                    "variant": chosen["label"],
                    "customer_id": None,
                    "chat_id": chat_id,
                    "kind": "service",
                    "language": language,
                    "state": "queued",
                    "due_at": now,
                    "attempts": 0,
                    "text": text,
                    "buttons": buttons,
                    "product_ids": [],
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        row = await self._session.scalar(
            select(CampaignDelivery).where(CampaignDelivery.occurrence_key == key)
        )
        assert row is not None
        return DeliveryDTO.model_validate(row)

    # ------------------------------------------------------------------ schedule

    async def schedule(
        self,
        ref: int | str,
        *,
        at: datetime | None = None,
        cron: str | None = None,
        timezone: str | None = None,
    ) -> CampaignDTO:
        """One-shot at `at` (naive = the marketer's time zone) or recurring by `cron`."""
        campaign = await self._load(ref)
        if (at is None) == (cron is None):
            raise ValidationFailed("schedule: give either a time (--at) or a cron expression")
        zone_name = _valid_timezone(timezone or campaign.timezone)
        zone = ZoneInfo(zone_name)
        one_shot: datetime | None = None
        if at is not None:
            local = at if at.tzinfo is not None else at.replace(tzinfo=zone)
            one_shot = local.astimezone(UTC)
            if one_shot <= self._clock.now():
                shown = local.astimezone(zone).strftime("%Y-%m-%d %H:%M")
                raise ValidationFailed(
                    f"schedule: {shown} ({zone_name}) is in the past; now it is "
                    f"{self._clock.now().astimezone(zone):%Y-%m-%d %H:%M}"
                )
        cron_text = parse_cron(cron).expression if cron is not None else None
        audience = await self.audience_of(campaign.segment, campaign.kind, sample=0)
        if audience.reachable == 0:
            raise ValidationFailed(f"schedule refused: {audience.reason_empty}")
        validate_variants(campaign.variants, languages=sorted(audience.by_language))
        values: dict[str, Any] = {
            "one_shot_at": one_shot,
            "cron": cron_text,
            "timezone": zone_name,
            "scheduled_at": self._clock.now(),
        }
        await self._transition(campaign, "schedule", **values)
        return CampaignDTO.model_validate(campaign)

    async def pause(self, ref: int | str) -> CampaignDTO:
        campaign = await self._load(ref)
        await self._transition(campaign, "pause")
        return CampaignDTO.model_validate(campaign)

    async def resume(self, ref: int | str) -> CampaignDTO:
        campaign = await self._load(ref)
        started = await self._session.scalar(
            select(func.count()).where(CampaignDelivery.campaign_id == campaign.id)
        )
        await self._transition(campaign, "resume_running" if started else "resume_scheduled")
        return CampaignDTO.model_validate(campaign)

    async def cancel(self, ref: int | str) -> tuple[CampaignDTO, int]:
        """Cancel: no more occurrences, and every queued send becomes `cancelled` now.

        Returns the campaign and how many queued sends were stopped. Rows already `sending`
        finish (Telegram may have them); `claim_due` cancels any row it meets later.
        """
        await self.finish_done()
        campaign = await self._load(ref)
        if campaign.state in ("finished", "cancelled"):
            raise InvalidTransition(
                f"campaign {campaign.name!r} is already {campaign.state}; nothing to cancel"
            )
        now = self._clock.now()
        await self._transition(campaign, "cancel", cancelled_at=now)
        result = await self._session.execute(
            update(CampaignDelivery)
            .where(CampaignDelivery.campaign_id == campaign.id, CampaignDelivery.state == "queued")
            .values(state="cancelled", reason="cancelled", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        stopped = result.rowcount if isinstance(result, CursorResult) else 0
        return CampaignDTO.model_validate(campaign), int(stopped or 0)

    async def finish_done(self) -> int:
        """One-shot campaigns whose every send is done become `finished`. Returns how many."""
        pending = (
            select(CampaignDelivery.id)
            .where(
                CampaignDelivery.campaign_id == Campaign.id,
                CampaignDelivery.state.in_(("queued", "sending")),
            )
            .exists()
        )
        result = await self._session.execute(
            update(Campaign)
            .where(Campaign.state == "running", Campaign.cron.is_(None), ~pending)
            .values(state="finished", finished_at=self._clock.now(), updated_at=self._clock.now())
            .execution_options(synchronize_session="fetch")
        )
        return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0

    async def schedulable(self) -> list[ScheduleSpec]:
        """Campaigns the scheduler must have jobs for (one-shots not yet fired, recurring)."""
        rows = await self._session.scalars(
            select(Campaign)
            .where(Campaign.state.in_(("scheduled", "running", "paused")))
            .order_by(Campaign.id)
        )
        out: list[ScheduleSpec] = []
        for c in rows:
            if c.cron is None and (c.state != "scheduled" or c.one_shot_at is None):
                continue  # a one-shot that already fired has no job any more
            out.append(
                ScheduleSpec(
                    campaign_id=c.id,
                    state=c.state,
                    one_shot_at=c.one_shot_at,
                    cron=c.cron,
                    cron_fields=parse_cron(c.cron).fields() if c.cron else None,
                    timezone=c.timezone,
                )
            )
        return out

    # ------------------------------------------------------------------ enqueue

    async def enqueue_occurrence(
        self, campaign_id: int, occurrence_at: datetime, *, on_progress: ProgressFn | None = None
    ) -> int:
        """Materialise the audience of one occurrence into delivery rows; returns rows added.

        Idempotent: (occurrence key, customer) is UNIQUE, so a re-run adds nothing. A
        cancelled, finished or draft campaign adds nothing.
        """
        campaign = await self._session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFound(f"campaign #{campaign_id} does not exist")
        if campaign.state not in ("scheduled", "running", "paused"):
            log.info("campaign #%s is %s: occurrence not enqueued", campaign_id, campaign.state)
            return 0
        occurrence_at = occurrence_at.astimezone(UTC).replace(microsecond=0)
        key = f"campaign:{campaign.id}:{occurrence_at.isoformat()}"
        where = and_(self._matched(campaign.segment), self._reachable(campaign.kind))
        total = int(await self._session.scalar(select(func.count()).where(where)) or 0)
        send_at = parse_hhmm(campaign.send_local_time) if campaign.send_local_time else None
        added = done = 0
        last_id = 0
        now = self._clock.now()
        while True:
            batch = list(
                await self._session.scalars(
                    select(Customer)
                    .where(where, Customer.id > last_id)
                    .order_by(Customer.id)
                    .limit(ENQUEUE_BATCH)
                )
            )
            if not batch:
                break
            last_id = batch[-1].id
            rows: list[dict[str, Any]] = []
            by_variant: dict[str, list[Customer]] = {}
            for customer in batch:
                variant = pick_variant(campaign.variants, campaign.id, customer.id)
                by_variant.setdefault(variant["label"], []).append(customer)
            for label, customers in by_variant.items():
                variant = next(v for v in campaign.variants if v["label"] == label)
                values = await self._values(customers, variant)
                for customer in customers:
                    lang = customer.language if customer.language in variant["text"] else None
                    if lang is None:  # validated at schedule; the customer changed language
                        lang = next(iter(variant["text"]))
                    text, buttons = self._render(campaign, variant, lang, values[customer.id])
                    due = occurrence_at
                    if send_at is not None:
                        due = _local_time_on_or_after(occurrence_at, send_at, customer.timezone)
                    rows.append(
                        {
                            "occurrence_key": key,
                            "campaign_id": campaign.id,
                            "rule": None,
                            "variant": label,
                            "customer_id": customer.id,
                            "chat_id": customer.telegram_user_id,
                            "kind": campaign.kind,
                            "language": lang,
                            "state": "queued",
                            "due_at": due,
                            "attempts": 0,
                            "text": text,
                            "buttons": buttons,
                            "product_ids": list(campaign.product_ids or []),
                            "category": campaign.category,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            added += await insert_deliveries(self._session, rows)
            done += len(batch)
            if on_progress is not None:
                on_progress(done, total)
        if campaign.state == "scheduled":
            await self._transition(campaign, "start")
        return added

    # ------------------------------------------------------------------ report

    async def report(self, ref: int | str) -> CampaignReport:
        """Audience, sent, blocked, skipped by reason, unknown, clicks, unsubscribes,
        conversions and revenue, per A/B variant and in total."""
        from crm_core.campaigns.reports import build_report

        await self.finish_done()
        campaign = await self._load(ref)
        return await build_report(
            self._session,
            self._clock.now(),
            self._settings,
            name=campaign.name,
            state=campaign.state,
            where=CampaignDelivery.campaign_id == campaign.id,
            attribution_days=campaign.attribution_days,
            currency=self._crm.currency if self._crm is not None else "CNY",
            campaign_id=campaign.id,
        )

    # ------------------------------------------------------------------ reactions

    async def record_click(self, delivery_id: int, action: str) -> DeliveryDTO:
        """A customer tapped a bot-action button of a push: recorded for the report."""
        row = await self._session.get(CampaignDelivery, delivery_id)
        if row is None:
            raise NotFound(f"delivery #{delivery_id} does not exist")
        self._session.add(
            CampaignEvent(
                delivery_id=row.id,
                campaign_id=row.campaign_id,
                customer_id=row.customer_id,
                kind="click",
                button=action[:64],
                at=self._clock.now(),
            )
        )
        await self._session.flush()
        return DeliveryDTO.model_validate(row)

    async def record_unsubscribe(self, delivery_id: int) -> DeliveryDTO:
        """The one-tap unsubscribe of a push was used (consent itself: CustomerService)."""
        row = await self._session.get(CampaignDelivery, delivery_id)
        if row is None:
            raise NotFound(f"delivery #{delivery_id} does not exist")
        self._session.add(
            CampaignEvent(
                delivery_id=row.id,
                campaign_id=row.campaign_id,
                customer_id=row.customer_id,
                kind="unsubscribe",
                at=self._clock.now(),
            )
        )
        await self._session.flush()
        return DeliveryDTO.model_validate(row)

    # ------------------------------------------------------------------ internals

    def _render(
        self,
        campaign: Campaign | CampaignDTO,
        variant: dict[str, Any],
        lang: str,
        values: dict[str, str | None],
    ) -> tuple[str, list[list[dict[str, str]]]]:
        text = render(variant["text"][lang], values)
        rows: list[list[dict[str, str]]] = []
        for button in variant.get("buttons") or []:
            label = button["text"].get(lang) or next(iter(button["text"].values()))
            if button.get("url"):
                rows.append([{"text": label, "url": button["url"]}])
            else:
                rows.append([{"text": label, "callback_data": ACTION_CALLBACK + button["action"]}])
        if campaign.kind == "marketing":
            rows.append(
                [
                    {
                        "text": self._text("campaigns.unsubscribe_button", lang),
                        "callback_data": UNSUBSCRIBE_CALLBACK,
                    }
                ]
            )
        return text, rows

    def _text(self, key: str, lang: str, **params: object) -> str:
        if self._texts is None:
            raise RuntimeError("CampaignService needs the locale texts (wired in app/)")
        return self._texts(key, lang, **params)

    async def _values(
        self, customers: Sequence[Customer], variant: dict[str, Any]
    ) -> dict[int, dict[str, str | None]]:
        """Template variables per customer; only the lookups the variant's texts need."""
        used: set[str] = set()
        for text in variant["text"].values():
            used.update(template_variables(text))
        out: dict[int, dict[str, str | None]] = {
            c.id: {"first_name": first_name(c.name), "name": c.name} for c in customers
        }
        ids = [c.id for c in customers]
        lang_of = {c.id: c.language for c in customers}
        if used & PRODUCT_VARIABLES:
            latest = (
                select(
                    Order.customer_id,
                    Order.order_number,
                    Product.name_en,
                    Product.name_zh,
                    Product.brand,
                    Product.category,
                    func.row_number()
                    .over(
                        partition_by=Order.customer_id,
                        order_by=(Order.placed_at.desc(), OrderItem.id),
                    )
                    .label("rank"),
                )
                .join(OrderItem, OrderItem.order_id == Order.id)
                .join(Product, Product.id == OrderItem.product_id)
                .where(
                    Order.customer_id.in_(ids), Order.status.in_(("paid", "shipped", "delivered"))
                )
                .subquery()
            )
            for r in await self._session.execute(select(latest).where(latest.c.rank == 1)):
                lang = lang_of[r.customer_id]
                out[r.customer_id].update(
                    product=r.name_zh if lang == "zh" else r.name_en,
                    brand=r.brand,
                    category=CATEGORY_NAMES.get(r.category, {}).get(lang, r.category),
                    order_number=r.order_number,
                )
        if used & WARRANTY_VARIABLES:
            from crm_core.warranties.service import WarrantyService

            if self._crm is None:
                raise RuntimeError("warranty variables need the crm settings (wired in app/)")
            warranties = WarrantyService(self._session, self._clock, self._crm)
            for customer_id in ids:
                states = [
                    w
                    for w in await warranties.warranty_for_customer(customer_id)
                    if w.status in ("active", "expiring")
                ]
                if states:
                    soonest = min(states, key=lambda w: w.ends_on)
                    out[customer_id].update(
                        warranty_end=soonest.ends_on.isoformat(),
                        serial_number=soonest.serial_number,
                        days_left=str(soonest.days_left),
                    )
                    if "product" not in out[customer_id]:
                        lang = lang_of[customer_id]
                        out[customer_id]["product"] = (
                            soonest.product_name_zh if lang == "zh" else soonest.product_name_en
                        )
        return out

    async def _audit_reads(self, actor: str, customer_ids: list[int], reason: str) -> None:
        from crm_core.audit.service import AuditService

        audit = AuditService(self._session, self._clock)
        for customer_id in customer_ids:
            await audit.record(
                actor, "read", "customer", customer_id, customer_id, reason, {"via": "campaign"}
            )

    async def _load(self, ref: int | str) -> Campaign:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            campaign = await self._session.get(Campaign, int(ref))
        else:
            campaign = await self._session.scalar(select(Campaign).where(Campaign.name == ref))
        if campaign is None:
            raise NotFound(f"no campaign {ref!r} (see hwcrm campaign list)")
        return campaign

    async def _transition(self, campaign: Campaign, event: str, **values: Any) -> None:
        """One conditional UPDATE: it wins only if the campaign is still in an allowed state."""
        allowed, target = TRANSITIONS[event]
        now = self._clock.now()
        result = await self._session.execute(
            update(Campaign)
            .where(Campaign.id == campaign.id, Campaign.state.in_(allowed))
            .values(state=target, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if not isinstance(result, CursorResult) or result.rowcount != 1:
            await self._session.refresh(campaign)
            verb = event.split("_")[0]
            raise InvalidTransition(
                f"campaign {campaign.name!r} is {campaign.state}; it cannot {verb} "
                f"(allowed from: {', '.join(sorted(allowed))})"
            )
        await self._session.refresh(campaign)


def _valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone {name!r} (e.g. Asia/Shanghai)") from None
    return name


def _local_time_on_or_after(at: datetime, local: Any, timezone: str) -> datetime:
    """The first `local` time of day in the customer's zone at or after `at` (UTC)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    day = at.astimezone(zone).date()
    candidate = datetime.combine(day, local, tzinfo=zone)
    if candidate < at:
        candidate = datetime.combine(day + timedelta(days=1), local, tzinfo=zone)
    return candidate.astimezone(UTC)


def _placeholder_values(lang: str) -> dict[str, str | None]:
    zh = lang == "zh"
    return {
        "first_name": "伟" if zh else "Alex",
        "name": "李伟" if zh else "Alex Smith",
        "product": "RTX 4070 Super 12G 显卡" if zh else "RTX 4070 Super 12G",
        "category": "显卡" if zh else "Graphics card",
        "brand": "NVIDIA",
        "order_number": "SO-10000001",
        "serial_number": "SN0000000001",
        "warranty_end": "2027-01-31",
        "days_left": "30",
    }


def _preview_buttons(rows: list[list[dict[str, str]]]) -> list[list[dict[str, str]]]:
    return [[{k: v.replace("{d}", "…") for k, v in b.items()} for b in row] for row in rows]

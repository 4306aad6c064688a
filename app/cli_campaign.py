"""`hwcrm campaign …` and `hwcrm rules …`: marketer campaigns and automation rules.

Thin layer: parse options, call crm_core.campaigns in one unit of work, render with Rich.

    hwcrm campaign create --name "GPU owners: PSU week" \\
        --segment '{"and": [{"owns": {"category": "gpu"}}, {"language": "zh"}]}' \\
        --text-zh '{first_name}，您好！电源周 8 折' \\
        --text-en 'Hi {first_name}! PSU week: 20% off' \\
        --button '看看兼容电源|Show me compatible PSUs|compatible:psu' --category psu
    hwcrm campaign preview 1           hwcrm campaign test 1 --staff 6 --lang zh
    hwcrm campaign schedule 1 --at "2026-06-20 10:00"     (the marketer's time zone)
    hwcrm campaign schedule 1 --cron "0 10 * * mon"       hwcrm campaign schedule 1 --now
    hwcrm campaign pause|resume|cancel 1                  hwcrm campaign report 1
    hwcrm rules list | enable NAME | disable NAME | set NAME key=value | run [--dry-run]
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
import yaml
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crm_core.campaigns.schemas import AudienceDTO, CampaignReport
from crm_core.errors import DomainError

if TYPE_CHECKING:
    from app.container import Container
    from crm_core.services import CrmServices

T = TypeVar("T")

campaign_app = typer.Typer(
    help="Marketer campaigns: segments, templates, preview, test, schedule, report.",
    no_args_is_help=True,
)
rules_app = typer.Typer(
    help="Automation rules: post-purchase, accessory, warranty, survey, re-engagement.",
    no_args_is_help=True,
)


def register(cli: typer.Typer) -> None:
    """Attach `hwcrm campaign` and `hwcrm rules` to the root CLI."""
    cli.add_typer(campaign_app, name="campaign")
    cli.add_typer(rules_app, name="rules")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    from app.cli import err_console, run_async

    try:
        return run_async(coro)
    except DomainError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


def _in_unit_of_work(work: Callable[[Container, CrmServices], Awaitable[T]]) -> T:
    from app.container import container_scope

    async def go() -> T:
        async with container_scope() as container, container.unit_of_work() as session:
            return await work(container, container.crm(session))

    return _run(go())


def _json_arg(value: str, what: str) -> Any:
    """JSON/YAML given inline or as @file."""
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise typer.BadParameter(f"{what}: no file {path}")
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise typer.BadParameter(f"{what}: neither JSON nor YAML ({exc})") from None


def _parse_button(value: str) -> dict[str, Any]:
    parts = value.split("|")
    if len(parts) != 3:
        raise typer.BadParameter(
            f"--button {value!r}: write 'zh text|en text|url-or-action' "
            "(e.g. '看看电源|Show PSUs|compatible:psu')"
        )
    zh, en, target = (p.strip() for p in parts)
    entry: dict[str, Any] = {"text": {"zh": zh, "en": en}}
    entry["url" if "://" in target else "action"] = target
    return entry


def _print_audience(audience: AudienceDTO) -> None:
    from app.cli import console

    languages = ", ".join(f"{k} {v}" for k, v in sorted(audience.by_language.items())) or "-"
    console.print(
        f"audience: [bold]{audience.reachable}[/bold] reachable of {audience.matched} matched "
        f"({languages})"
    )
    if audience.reason_empty:
        console.print(f"[yellow]nobody would get it:[/yellow] {escape(audience.reason_empty)}")
    if audience.sample:
        table = Table(title="Sample of recipients")
        for column in ("id", "name", "lang", "stage", "consent"):
            table.add_column(column)
        for r in audience.sample:
            table.add_row(
                str(r.customer_id),
                escape(r.name),
                r.language,
                r.lifecycle_stage,
                "yes" if r.marketing_consent else "no",
            )
        console.print(table)


# ---------------------------------------------------------------------- campaign


@campaign_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="A unique name."),
    segment: str = typer.Option(
        ..., "--segment", help='Segment JSON (or @file), e.g. \'{"owns": {"category": "gpu"}}\'.'
    ),
    variants: str | None = typer.Option(
        None, "--variants", help="A/B variants as JSON/YAML (or @file); see templates.py."
    ),
    text_zh: str | None = typer.Option(None, "--text-zh", help="Chinese text (one variant)."),
    text_en: str | None = typer.Option(None, "--text-en", help="English text (one variant)."),
    buttons: list[str] = typer.Option(
        [], "--button", help="'zh text|en text|url-or-action' (repeatable)."
    ),
    kind: str = typer.Option("marketing", "--kind", help="marketing | service"),
    timezone: str | None = typer.Option(None, "--timezone", help="The marketer's time zone."),
    send_local_time: str | None = typer.Option(
        None, "--send-local-time", help="HH:MM in each customer's own time zone."
    ),
    products: list[str] = typer.Option([], "--product", help="Promoted SKU (repeatable)."),
    category: str | None = typer.Option(None, "--category", help="Promoted category."),
    attribution_days: int | None = typer.Option(None, "--attribution-days", min=1),
    actor: str = typer.Option("cli", "--actor", help="Who creates it (e.g. staff:6)."),
) -> None:
    """Create a draft campaign (validated) and show its live audience."""
    from app.cli import console
    from crm_core.campaigns.service import CampaignCreate

    if variants is not None:
        parsed = _json_arg(variants, "--variants")
        variant_list = parsed if isinstance(parsed, list) else [parsed]
    else:
        texts = {k: v for k, v in (("zh", text_zh), ("en", text_en)) if v}
        variant_list = [
            {"label": "A", "text": texts, "buttons": [_parse_button(b) for b in buttons]}
        ]

    async def work(container: Container, crm: CrmServices) -> tuple[Any, AudienceDTO]:
        product_ids = [(await crm.catalog.get(sku)).id for sku in products]
        campaign = await crm.campaigns.create(
            CampaignCreate(
                name=name,
                kind=kind,
                segment=_json_arg(segment, "--segment"),
                variants=variant_list,
                timezone=timezone,
                send_local_time=send_local_time,
                product_ids=product_ids,
                category=category,
                attribution_days=attribution_days,
            ),
            actor=actor,
        )
        return campaign, await crm.campaigns.audience(campaign.id, actor=actor)

    campaign, audience = _in_unit_of_work(work)
    console.print(f"created campaign [bold]#{campaign.id}[/bold] {escape(campaign.name)} (draft)")
    _print_audience(audience)


ACTOR_HELP = "Who is looking (e.g. staff:6); sampled customers are audited as read by it."


@campaign_app.command("audience")
def audience(
    ref: str = typer.Argument(..., help="Campaign id or name."),
    actor: str = typer.Option("cli", "--actor", help=ACTOR_HELP),
) -> None:
    """Live audience count and a sample of recipients."""

    async def work(container: Container, crm: CrmServices) -> AudienceDTO:
        return await crm.campaigns.audience(ref, actor=actor)

    _print_audience(_in_unit_of_work(work))


@campaign_app.command("preview")
def preview(
    ref: str = typer.Argument(..., help="Campaign id or name."),
    lang: str | None = typer.Option(None, "--lang", help="zh | en (default: both)."),
    actor: str = typer.Option("cli", "--actor", help=ACTOR_HELP),
) -> None:
    """Each variant in each language, filled in with a sample recipient's data."""
    from app.cli import console

    async def work(container: Container, crm: CrmServices) -> list[Any]:
        return await crm.campaigns.preview(ref, lang, actor=actor)

    for p in _in_unit_of_work(work):
        who = f"customer #{p.customer_id}" if p.customer_id else "placeholder data"
        console.rule(f"variant {p.variant} · {p.language} · {who}")
        console.print(escape(p.text))
        for row in p.buttons:
            console.print("  " + "  ".join(f"[{escape(b['text'])}]" for b in row))


@campaign_app.command("test")
def test_send(
    ref: str = typer.Argument(..., help="Campaign id or name."),
    lang: str = typer.Option(..., "--lang", help="zh | en"),
    chat_id: int | None = typer.Option(None, "--chat-id", help="Your Telegram id."),
    staff: int | None = typer.Option(None, "--staff", help="Staff id (its Telegram id is used)."),
    variant: str | None = typer.Option(None, "--variant"),
) -> None:
    """Queue a test send to your own Telegram (the scheduler's sender delivers it)."""
    from app.cli import console, err_console

    async def work(container: Container, crm: CrmServices) -> Any:
        target = chat_id
        if staff is not None:
            member = await crm.staff.get(staff)
            target = member.telegram_user_id
        if not target:
            err_console.print("[red]error:[/red] give --chat-id, or --staff with a Telegram id")
            raise typer.Exit(1)
        return await crm.campaigns.test_send(ref, target, lang, variant=variant)

    delivery = _in_unit_of_work(work)
    console.print(
        f"test send queued: delivery #{delivery.id} to chat {delivery.chat_id} "
        f"({delivery.language})"
    )


@campaign_app.command("schedule")
def schedule(
    ref: str = typer.Argument(..., help="Campaign id or name."),
    at: str | None = typer.Option(
        None, "--at", help="One-shot time 'YYYY-MM-DD HH:MM' in the marketer's time zone."
    ),
    cron: str | None = typer.Option(None, "--cron", help="Recurring: '0 10 * * mon'."),
    timezone: str | None = typer.Option(None, "--timezone"),
    now: bool = typer.Option(
        False, "--now", help="Send now: schedule and materialise the audience at once."
    ),
) -> None:
    """Schedule (refused with the reason: empty audience, past time, bad cron, bad template)."""
    from app.cli import console

    when: datetime | None = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise typer.BadParameter(f"--at {at!r}: write YYYY-MM-DD HH:MM") from None

    async def work(container: Container, crm: CrmServices) -> tuple[Any, int | None]:
        start = when
        if now:
            start = container.clock.now() + timedelta(seconds=1)
        campaign = await crm.campaigns.schedule(ref, at=start, cron=cron, timezone=timezone)
        if not now or campaign.one_shot_at is None:
            return campaign, None
        with _progress() as bar:
            task = bar.add_task("materialising the audience", total=None)
            added = await crm.campaigns.enqueue_occurrence(
                campaign.id,
                campaign.one_shot_at,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        return campaign, added

    campaign, added = _in_unit_of_work(work)
    when_text = (
        f"cron {campaign.cron} ({campaign.timezone})"
        if campaign.cron
        else f"{campaign.one_shot_at:%Y-%m-%d %H:%M} UTC"
    )
    console.print(f"campaign [bold]#{campaign.id}[/bold] scheduled: {when_text}")
    if added is not None:
        console.print(f"{added} sends queued")


def _state_command(verb: str) -> Callable[[str], None]:
    def command(ref: str = typer.Argument(..., help="Campaign id or name.")) -> None:
        from app.cli import console

        async def work(container: Container, crm: CrmServices) -> tuple[Any, int | None]:
            if verb == "cancel":
                return await crm.campaigns.cancel(ref)
            method = getattr(crm.campaigns, verb)
            return await method(ref), None

        campaign, stopped = _in_unit_of_work(work)
        extra = f"; {stopped} queued sends cancelled" if stopped is not None else ""
        console.print(f"campaign [bold]#{campaign.id}[/bold] is {campaign.state}{extra}")

    command.__doc__ = {
        "pause": "Pause: queued sends wait until resumed.",
        "resume": "Resume a paused campaign.",
        "cancel": "Cancel: every queued send is stopped now (a finished campaign is refused).",
    }[verb]
    return command


for _verb in ("pause", "resume", "cancel"):
    campaign_app.command(_verb)(_state_command(_verb))


@campaign_app.command("list")
def list_campaigns() -> None:
    """All campaigns with their state and next run."""
    from app.cli import console

    async def work(container: Container, crm: CrmServices) -> list[tuple[Any, Any]]:
        out = []
        for c in await crm.campaigns.list_campaigns():
            out.append((c, await crm.campaigns.next_run(c)))
        return out

    table = Table(title="Campaigns")
    for column in ("id", "name", "kind", "state", "schedule", "next run (UTC)", "variants"):
        table.add_column(column)
    for c, next_run in _in_unit_of_work(work):
        schedule_text = c.cron or (f"{c.one_shot_at:%Y-%m-%d %H:%M}" if c.one_shot_at else "-")
        table.add_row(
            str(c.id),
            escape(c.name),
            c.kind,
            c.state,
            escape(schedule_text),
            f"{next_run:%Y-%m-%d %H:%M}" if next_run else "-",
            ",".join(v["label"] for v in c.variants),
        )
    console.print(table)


@campaign_app.command("report")
def report(ref: str = typer.Argument(..., help="Campaign id or name.")) -> None:
    """Sent, blocked, skipped, unknown, clicks, unsubscribes, conversions per A/B variant."""

    async def work(container: Container, crm: CrmServices) -> CampaignReport:
        return await crm.campaigns.report(ref)

    _print_report(_in_unit_of_work(work))


def _print_report(report: CampaignReport) -> None:
    """One row per measure, one column per A/B variant and the total (fits a terminal)."""
    from app.cli import console

    table = Table(title=f"{report.name} ({report.state})")
    table.add_column("")
    variants = [*report.variants, report.total]
    for v in variants:
        table.add_column(v.variant, justify="right", style="bold" if v.variant == "total" else None)
    measures: list[tuple[str, Callable[[Any], str]]] = [
        ("audience", lambda v: str(v.audience)),
        ("queued", lambda v: str(v.queued)),
        ("sent", lambda v: str(v.sent)),
        ("blocked", lambda v: str(v.blocked)),
        ("failed", lambda v: str(v.failed)),
        ("cancelled", lambda v: str(v.cancelled)),
        ("unknown", lambda v: str(v.unknown)),
        ("clicks", lambda v: str(v.clicks)),
        ("unsubscribes", lambda v: str(v.unsubscribes)),
        ("conversions", lambda v: str(v.conversions)),
        (f"revenue ({report.currency})", lambda v: f"{v.revenue:,.2f}"),
    ]
    reasons = sorted({r for v in variants for r in v.skipped})
    deferrals = sorted({r for v in variants for r in v.deferred})
    for name, value in measures:
        table.add_row(name, *(value(v) for v in variants))
    for reason in reasons:
        table.add_row(f"skipped: {reason}", *(str(v.skipped.get(reason, 0)) for v in variants))
    for reason in deferrals:
        table.add_row(
            f"queued, deferred: {reason}", *(str(v.deferred.get(reason, 0)) for v in variants)
        )
    console.print(table)
    if report.total.unknown:
        console.print(
            f"[yellow]{report.total.unknown} unknown[/yellow]: claimed but never confirmed "
            "(the sender stopped between the Bot API call and recording it); not resent."
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


# ---------------------------------------------------------------------- rules


@rules_app.command("list")
def rules_list() -> None:
    """Every automation rule: on/off, kind and parameters (config.yml, or a DB override)."""
    from app.cli import console

    async def work(container: Container, crm: CrmServices) -> list[Any]:
        return await crm.rules.list_rules()

    table = Table(title="Automation rules")
    for column in ("rule", "enabled", "kind", "parameters", "source"):
        table.add_column(column)
    for r in _in_unit_of_work(work):
        params = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "-"
        table.add_row(
            r.name,
            "yes" if r.enabled else "no",
            r.kind,
            escape(params),
            "override" if r.overridden else "config.yml",
        )
    console.print(table)


def _toggle(enabled: bool) -> Callable[[str], None]:
    def command(name: str = typer.Argument(..., help="Rule name (see hwcrm rules list).")) -> None:
        from app.cli import console

        async def work(container: Container, crm: CrmServices) -> Any:
            return await crm.rules.set_enabled(name, enabled, actor="cli")

        rule = _in_unit_of_work(work)
        console.print(f"rule {rule.name}: {'enabled' if rule.enabled else 'disabled'}")

    command.__doc__ = "Switch a rule on." if enabled else "Switch a rule off."
    return command


rules_app.command("enable")(_toggle(True))
rules_app.command("disable")(_toggle(False))


@rules_app.command("set")
def rules_set(
    name: str = typer.Argument(..., help="Rule name."),
    values: list[str] = typer.Argument(..., help="key=value (value as JSON/YAML: 10, [gpu])."),
) -> None:
    """Tune a rule's parameters (stored in the database; wins over config.yml)."""
    from app.cli import console

    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write key=value")
        params[key.strip()] = yaml.safe_load(raw)

    async def work(container: Container, crm: CrmServices) -> Any:
        return await crm.rules.set_params(name, params, actor="cli")

    rule = _in_unit_of_work(work)
    console.print(f"rule {rule.name}: " + ", ".join(f"{k}={v}" for k, v in rule.params.items()))


@rules_app.command("run")
def rules_run(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count, write nothing."),
    only: str | None = typer.Option(None, "--only", help="Run one rule."),
) -> None:
    """Evaluate the enabled rules now and queue their messages (the scheduler does this too)."""
    from app.cli import console
    from crm_core.campaigns.rules import RULE_NAMES

    async def work(container: Container, crm: CrmServices) -> dict[str, int]:
        counts: dict[str, int] = {}
        names = [only] if only else list(RULE_NAMES)
        with _progress() as bar:
            task = bar.add_task("rules", total=len(names))
            for name in names:
                bar.update(task, description=f"rule {name}")
                counts.update(await crm.rules.run_rules(dry_run=dry_run, only=name))
                bar.advance(task)
        if dry_run:
            await crm.session.rollback()
        return counts

    counts = _in_unit_of_work(work)
    table = Table(title="Rule run (dry run: nothing written)" if dry_run else "Rule run")
    table.add_column("rule")
    table.add_column("would queue" if dry_run else "queued", justify="right")
    for name, n in counts.items():
        table.add_row(name, str(n))
    console.print(table)


@rules_app.command("report")
def rules_report(name: str = typer.Argument(..., help="Rule name.")) -> None:
    """The outcomes of one rule's messages, like `hwcrm campaign report`."""

    async def work(container: Container, crm: CrmServices) -> CampaignReport:
        return await crm.rules.report(name)

    _print_report(_in_unit_of_work(work))

"""`hwcrm demo …`: load the demo data set, show the demo identities (registered by app/cli.py).

Thin layer: parse options, call crm_core.demo in one unit of work, render progress with Rich.
"""

from __future__ import annotations

from datetime import date

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import select

from crm_core.demo import (
    DEMO_IDENTITIES,
    STAFF,
    DemoOptions,
    DemoSummary,
    ensure_empty_or_reset,
    is_empty,
    reset_demo_data,
    seed_demo,
)
from crm_core.errors import DomainError

demo_app = typer.Typer(
    help="Demo data: seed a realistic data set, show demo identities.", no_args_is_help=True
)


def register(cli: typer.Typer) -> None:
    """Attach `hwcrm demo` to the root CLI."""
    cli.add_typer(demo_app, name="demo")


def _parse_today(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@demo_app.command("seed")
def seed(
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same data."),
    customers: int = typer.Option(
        2000, "--customers", min=3, help="Number of customers (up to millions, in bulk)."
    ),
    orders: int | None = typer.Option(
        None, "--orders", min=0, help="Number of orders (default: 2.5 × customers)."
    ),
    today: str | None = typer.Option(
        None,
        "--today",
        help="The demo's 'today' (YYYY-MM-DD); orders span the three years before it. "
        "Default: today.",
    ),
    reset: bool = typer.Option(
        False, "--reset", help="Delete ALL CRM data (customers, orders, staff, ...) first."
    ),
    analytics: bool = typer.Option(
        True, "--analytics/--no-analytics", help="Recompute lifecycle/RFM after seeding."
    ),
) -> None:
    """Load the demo data set (refuses a database that already holds data, unless --reset)."""
    from app.cli import console, err_console, run_async
    from app.container import container_scope

    day = _parse_today(today)

    async def go() -> DemoSummary:
        async with container_scope() as container:
            options = DemoOptions(
                today=day or container.clock.now().date(),
                seed=seed,
                customers=customers,
                orders=orders,
            )
            async with container.unit_of_work() as session:
                ensure_empty_or_reset(await is_empty(session), reset)
                if reset:
                    cleared = await reset_demo_data(session)
                    console.print(f"reset: emptied {len(cleared)} tables")
                with _progress_bar() as bar:
                    task = bar.add_task("customers, orders, tickets", total=customers)
                    analytics_task: list[TaskID] = []

                    def on_progress(stage: str, done: int, total: int) -> None:
                        if stage == "customers":
                            bar.update(task, completed=done, total=total)
                        elif not analytics_task:
                            analytics_task.append(bar.add_task("analytics", total=total))
                        else:
                            bar.update(analytics_task[0], completed=done)

                    summary = await seed_demo(
                        session,
                        options,
                        on_progress,
                        crm_settings=container.settings.crm if analytics else None,
                    )
            async with container.unit_of_work() as session:
                logins.extend(await set_demo_passwords(session, container.clock))
            return summary

    from crm_core.demo.logins import set_demo_passwords

    logins: list[tuple[str, str, str]] = []
    try:
        summary = run_async(go())
    except DomainError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    _render_summary(summary)
    print_demo_logins(logins)


def print_demo_logins(logins: list[tuple[str, str, str]]) -> None:
    """The demo staff's console logins (demo data only: printed on purpose)."""
    from app.cli import console

    if not logins:
        return
    table = Table(title="Console demo logins (demo data only)", title_justify="left")
    for column in ("login", "role", "password"):
        table.add_column(column, no_wrap=True)
    for login, role, password in logins:
        table.add_row(login, role, password)
    console.print(table)


@demo_app.command("identities")
def identities() -> None:
    """Show the fixed demo identities (Telegram ids to try the bot with) and their records."""
    from app.cli import console, run_async
    from app.container import container_scope
    from crm_core.customers.models import Customer
    from crm_core.orders.models import Order, OrderItem, OrderItemSerial
    from crm_core.tickets.models import Ticket

    async def go() -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        async with container_scope() as container, container.unit_of_work() as session:
            for identity in DEMO_IDENTITIES:
                customer = await session.scalar(
                    select(Customer).where(Customer.telegram_user_id == identity.telegram_user_id)
                )
                if customer is None:
                    continue
                rows = await session.execute(
                    select(Order.order_number, Order.status, OrderItemSerial.serial_number)
                    .join(OrderItem, OrderItem.order_id == Order.id)
                    .outerjoin(OrderItemSerial, OrderItemSerial.order_item_id == OrderItem.id)
                    .where(Order.customer_id == customer.id)
                    .order_by(Order.placed_at, OrderItem.id, OrderItemSerial.id)
                )
                orders: dict[tuple[str, str], list[str]] = {}
                for number, status, serial in rows.all():
                    serials = orders.setdefault((number, status), [])
                    if serial:
                        serials.append(serial)
                lines = [
                    f"order {number} ({status})"
                    + (f": {', '.join(serials[:4])}" if serials else "")
                    + (f" … (+{len(serials) - 4})" if len(serials) > 4 else "")
                    for (number, status), serials in orders.items()
                ]
                tickets = await session.execute(
                    select(Ticket.ticket_number, Ticket.status, Ticket.serial_number).where(
                        Ticket.customer_id == customer.id
                    )
                )
                lines += [
                    f"ticket {number} ({status}) on {serial}"
                    for number, status, serial in tickets.all()
                ]
                found[identity.telegram_user_id] = lines
        return found

    records = run_async(go())
    for identity in DEMO_IDENTITIES:
        console.print(
            f"[bold]Telegram {identity.telegram_user_id}[/bold] — {escape(identity.name)} "
            f"({identity.language})"
        )
        console.print(f"  {escape(identity.description_en)}")
        console.print(f"  {escape(identity.description_zh)}")
        for line in records.get(identity.telegram_user_id, ["(not in this database)"]):
            console.print(f"    {escape(line)}")
    staff = ", ".join(
        f"{login} ({role}{f', Telegram {tg}' if tg else ''})" for _, role, login, tg, _ in STAFF
    )
    console.print(f"[bold]Staff[/bold] (no passwords; set one with `hwcrm staff`): {staff}")


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


def _render_summary(summary: DemoSummary) -> None:
    from app.cli import console

    table = Table(title="Demo data loaded")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}")
    table.add_row("[bold]total", f"[bold]{summary.total_rows:,}")
    console.print(table)
    options = summary.options
    console.print(
        f"seed {options.seed}, today {options.today.isoformat()}, {summary.seconds:.1f} s "
        f"({summary.method}, {summary.total_rows / max(summary.seconds, 0.001):,.0f} rows/s). "
        "Try the bot as Telegram users "
        + ", ".join(str(i.telegram_user_id) for i in DEMO_IDENTITIES)
        + " (`hwcrm demo identities`)."
    )

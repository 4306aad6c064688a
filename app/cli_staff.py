"""`hwcrm staff …` and `hwcrm customer find` (registered by app/cli.py).

Thin layer: parse options, call one service in one unit of work, render with Rich. Domain
errors become a one-line message and exit code 1; passwords are prompted hidden (or read
from $HWCRM_STAFF_PASSWORD for scripts) and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli import console, err_console, run_async
from app.container import Container, container_scope
from crm_core.customers.schemas import CustomerDTO
from crm_core.customers.service import CustomerService
from crm_core.errors import DomainError
from crm_core.staff.models import ROLES
from crm_core.staff.schemas import StaffDTO
from crm_core.staff.service import StaffService

T = TypeVar("T")

PASSWORD_ENV = "HWCRM_STAFF_PASSWORD"
CLI_ACTOR = "cli"

staff_app = typer.Typer(help="Staff members: agents, marketers and admins.", no_args_is_help=True)
customer_app = typer.Typer(
    help="Look up customer records (every read is written to the audit log).",
    no_args_is_help=True,
)


def register(cli: typer.Typer) -> None:
    """Attach this module's commands to the root CLI."""
    cli.add_typer(staff_app, name="staff")
    cli.add_typer(customer_app, name="customer")


def _in_unit_of_work(work: Callable[[Container, AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction of a freshly built container; clean domain errors."""

    async def go() -> T:
        async with container_scope() as container, container.unit_of_work() as session:
            return await work(container, session)

    return _run(go())


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return run_async(coro)
    except DomainError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


@staff_app.command("add")
def staff_add(
    name: str = typer.Option(..., "--name", help="Full name shown to colleagues."),
    role: str = typer.Option(..., "--role", help="agent | marketer | admin"),
    telegram_id: int | None = typer.Option(
        None, "--telegram-id", help="Telegram user id (for the staff group)."
    ),
    login: str | None = typer.Option(
        None, "--login", help=f"Console login; the password is prompted (or ${PASSWORD_ENV})."
    ),
) -> None:
    """Add a staff member."""
    if role.strip().lower() not in ROLES:
        err_console.print(
            f"[red]error:[/red] unknown role {escape(role)!r}; use {', '.join(ROLES)}"
        )
        raise typer.Exit(1)
    password: str | None = None
    if login:
        password = os.environ.get(PASSWORD_ENV) or typer.prompt(
            "Password", hide_input=True, confirmation_prompt=True
        )

    async def work(container: Container, session: AsyncSession) -> StaffDTO:
        service = StaffService(session, container.clock)
        return await service.add_staff(
            name, role, telegram_user_id=telegram_id, login=login, password=password
        )

    staff = _in_unit_of_work(work)
    extra = f", login {staff.login}" if staff.login else ""
    console.print(
        f"added staff member [bold]#{staff.id}[/bold] {escape(staff.name)} ({staff.role}{extra})"
    )


@staff_app.command("list")
def staff_list(
    include_inactive: bool = typer.Option(
        False, "--all", help="Also show deactivated staff members."
    ),
) -> None:
    """List staff members."""

    async def work(container: Container, session: AsyncSession) -> list[StaffDTO]:
        return await StaffService(session, container.clock).list_staff(
            include_inactive=include_inactive
        )

    members = _in_unit_of_work(work)
    if not members:
        console.print("no staff members yet; add one with `hwcrm staff add`")
        return
    table = Table(title="Staff")
    for column in ("id", "name", "role", "login", "telegram id", "active"):
        table.add_column(column, no_wrap=column != "name")
    for m in members:
        table.add_row(
            str(m.id),
            escape(m.name),
            m.role,
            m.login or "",
            str(m.telegram_user_id or ""),
            "yes" if m.active else "no",
        )
    console.print(table)


@staff_app.command("deactivate")
def staff_deactivate(staff_id: int = typer.Argument(..., help="Staff id.")) -> None:
    """Deactivate a staff member (their history stays attributed to them)."""

    async def work(container: Container, session: AsyncSession) -> StaffDTO:
        return await StaffService(session, container.clock).deactivate(staff_id)

    staff = _in_unit_of_work(work)
    console.print(f"staff member #{staff.id} {escape(staff.name)} is deactivated")


@staff_app.command("disable")
def staff_disable(staff_id: int = typer.Argument(..., help="Staff id.")) -> None:
    """Disable a staff member: no more console or staff-group access, every console session
    ends (their history stays attributed to them)."""
    from crm_core.access.service import AccessService

    async def work(container: Container, session: AsyncSession) -> tuple[StaffDTO, int]:
        staff = await StaffService(session, container.clock).deactivate(staff_id)
        ended = await AccessService(session, container.clock).end_sessions_of(staff_id)
        return staff, ended

    staff, ended = _in_unit_of_work(work)
    console.print(
        f"staff member #{staff.id} {escape(staff.name)} is disabled ({ended} session(s) ended)"
    )


@staff_app.command("passwd")
def staff_passwd(
    staff_id: int = typer.Argument(..., help="Staff id."),
    login: str | None = typer.Option(
        None, "--login", help="Give a staff member without a console login this login."
    ),
) -> None:
    """Set a staff member's console password (prompted, or $HWCRM_STAFF_PASSWORD); their
    other console sessions end."""
    from crm_core.access.service import AccessService

    password = os.environ.get(PASSWORD_ENV) or typer.prompt(
        "New password", hide_input=True, confirmation_prompt=True
    )

    async def work(container: Container, session: AsyncSession) -> StaffDTO:
        service = StaffService(session, container.clock)
        if login:
            await service.set_login(staff_id, login)
        await service.set_password(staff_id, password)
        await AccessService(session, container.clock).end_sessions_of(staff_id)
        return await service.get(staff_id)

    staff = _in_unit_of_work(work)
    console.print(f"password of #{staff.id} {escape(staff.name)} ({staff.login}) is set")


@customer_app.command("find")
def customer_find(
    query: str = typer.Argument(
        ..., help="Telegram user id, phone (any format), e-mail, order or serial number, name."
    ),
    reason: str = typer.Option(
        "hwcrm customer find", "--reason", help="Why you look (recorded in the audit log)."
    ),
) -> None:
    """Find customers; each record shown is audited as read by actor "cli"."""

    async def work(container: Container, session: AsyncSession) -> list[CustomerDTO]:
        service = CustomerService(session, container.clock, container.settings.crm)
        return await service.search_as(CLI_ACTOR, query, reason)

    found = _in_unit_of_work(work)
    if not found:
        err_console.print(f"no customer matches {escape(query)!r}")
        raise typer.Exit(1)
    table = Table(title=f"Customers matching {escape(query)!r}")
    table.add_column("id", no_wrap=True)
    table.add_column("name", min_width=14)
    table.add_column("phone", no_wrap=True)
    table.add_column("e-mail", min_width=10)
    table.add_column("telegram", no_wrap=True)
    table.add_column("type / lang / stage")
    table.add_column("consent")
    for c in found:
        name = c.name if not c.is_erased else f"{c.name} ({c.anonymous_id})"
        if c.company_name:
            name += f" / {c.company_name}"
        table.add_row(
            str(c.id),
            escape(name),
            c.phone or "",
            escape(c.email or ""),
            str(c.telegram_user_id or ""),
            f"{c.customer_type} / {c.language} / {c.lifecycle_stage}",
            "yes" if c.marketing_consent else "no",
        )
    console.print(table)

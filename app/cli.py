"""`hwcrm`: the single command-line entry point (Typer + Rich)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from app.settings import load_settings
from crm_core.migrate import SchemaBehindError

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

cli = typer.Typer(
    name="hwcrm",
    help="Telegram support & sales assistant with a CRM core, for computer-hardware vendors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
cli.add_typer(config_app, name="config")
cli.add_typer(db_app, name="db")


def run_async(
    coro: Coroutine[Any, Any, T],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run a coroutine for a CLI command (on a loop from `loop_factory`, default asyncio's);
    a database that is behind is a clean error."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)
    except SchemaBehindError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (config.yml + environment), secrets masked."""
    console.print_json(json.dumps(load_settings().redacted(), ensure_ascii=False))


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the database to the newest schema (explicit on PostgreSQL)."""
    from crm_core.migrate import current_revision, upgrade

    url = load_settings().db.url

    async def go() -> str | None:
        await upgrade(url, revision)
        return await current_revision(url)

    console.print(f"database at revision [bold]{run_async(go())}[/bold]")


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base."),
) -> None:
    """Migrate the database down to an older revision."""
    from crm_core.migrate import downgrade

    run_async(downgrade(load_settings().db.url, revision))
    console.print(f"downgraded to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one this code knows."""
    from crm_core.migrate import current_revision, head_revision

    url = load_settings().db.url
    console.print(f"current: {run_async(current_revision(url))}  head: {head_revision(url)}")


def _register_subcommands() -> None:
    # Feature command groups live next to their feature; registering them here keeps one
    # entry point. Imports are cheap: heavy models load lazily inside the commands.
    from app import (
        cli_bot,
        cli_campaign,
        cli_console,
        cli_demo,
        cli_importexport,
        cli_kb,
        cli_nlu,
        cli_scheduler,
        cli_staff,
    )

    for module in (
        cli_staff,
        cli_importexport,
        cli_demo,
        cli_kb,
        cli_nlu,
        cli_bot,
        cli_console,
        cli_scheduler,
        cli_campaign,
    ):
        module.register(cli)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register_subcommands()
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

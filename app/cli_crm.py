"""CRM commands: demo data, import/export, staff, customer lookup."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    """Attach the CRM command groups to the root CLI."""
    demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
    cli.add_typer(demo_app, name="demo")

"""`hwcrm` commands for importexport (registered by app/cli.py)."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    """Attach this module's commands to the root CLI."""

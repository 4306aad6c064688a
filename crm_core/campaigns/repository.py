"""Queries of the campaigns domain that several services share (bulk enqueue, dialect bits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.campaigns.models import CampaignDelivery

# Rows per INSERT statement (SQLite allows 32,766 bound parameters; a row has ~16).
INSERT_BATCH = 1000


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert delivery rows, skipping any (occurrence_key, customer_id) that already exists.

    The UNIQUE constraint does the de-duplication, so two schedulers (or a re-run after a
    crash) enqueuing the same occurrence add nothing. Returns the number of rows added
    (counted from RETURNING, which yields only the rows actually inserted). One statement,
    compiled once and executed for many parameter sets (SQLAlchemy's insertmanyvalues).
    """
    if not rows:
        return 0
    uniform = _uniform(rows)
    stmt: Any
    if dialect_name(session) == "postgresql":
        stmt = postgresql.insert(CampaignDelivery).on_conflict_do_nothing(
            constraint="uq_campaign_deliveries_occurrence"
        )
    else:
        stmt = sqlite.insert(CampaignDelivery).on_conflict_do_nothing(
            index_elements=["occurrence_key", "customer_id"]
        )
    stmt = stmt.returning(CampaignDelivery.id)
    added = 0
    for start in range(0, len(uniform), INSERT_BATCH):
        result = await session.execute(stmt, uniform[start : start + INSERT_BATCH])
        added += len(result.all())
    return added


def _uniform(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with the same keys (a multi-row VALUES needs them); gaps get the defaults."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row)
    defaults: dict[str, Any] = {}
    for key in keys:
        column = CampaignDelivery.__table__.c[key]
        default = column.default
        if default is None:
            defaults[key] = None
        elif getattr(default, "is_callable", False):
            defaults[key] = default.arg  # called per row below
        else:
            defaults[key] = getattr(default, "arg", None)
    out: list[dict[str, Any]] = []
    for row in rows:
        full = dict(row)
        for key in keys - row.keys():
            value = defaults[key]
            full[key] = value(None) if callable(value) else value
        out.append(full)
    return out

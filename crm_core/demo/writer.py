"""Loading demo rows into the database fast, emptiness checks, reset and a content hash.

Rows are plain tuples from `DemoGenerator`; no ORM object is built per row. PostgreSQL gets
them through asyncpg's binary COPY (`copy_records_to_table` on the session's own connection,
so it stays inside the caller's transaction); SQLite (and PostgreSQL with `use_copy=False`)
through SQLAlchemy Core `insert()` executed as executemany.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, exists, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from crm_core.catalog.compatibility import seed_default_rules
from crm_core.catalog.models import CompatibilityRule
from crm_core.demo.generator import (
    COLUMNS,
    JSON_COLUMNS,
    TABLE_ORDER,
    Batch,
    DemoGenerator,
    DemoOptions,
)
from crm_core.errors import Conflict
from crm_core.models import metadata
from crm_core.staff.models import StaffUser

if TYPE_CHECKING:
    from app.settings import CrmSection

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "customers" (done/total customers) or "analytics"."""

# A database is "empty" for the demo when none of these has a row (staff users and
# compatibility rules may exist: an admin account made before the first run is fine).
CONTENT_TABLES = ("customers", "companies", "products", "orders", "tickets", "leads")


@dataclass
class DemoSummary:
    """What `seed_demo` wrote."""

    options: DemoOptions
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    method: str = "insert"  # "copy" (PostgreSQL COPY) or "insert" (executemany)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _table(name: str) -> Table:
    return metadata.tables[name]


async def is_empty(session: AsyncSession) -> bool:
    """True when the database holds no customers, companies, products, orders, tickets, leads."""
    for name in CONTENT_TABLES:
        if await session.scalar(select(exists().select_from(_table(name)))):
            return False
    return True


def reset_tables() -> list[Table]:
    """The tables `--reset` empties: the demo's tables, the audit log and their dependents."""
    names = {*TABLE_ORDER, "audit_log"}
    changed = True
    while changed:
        changed = False
        for table in metadata.sorted_tables:
            if table.name in names:
                continue
            if any(fk.column.table.name in names for fk in table.foreign_keys):
                names.add(table.name)
                changed = True
    return [t for t in metadata.sorted_tables if t.name in names]


async def reset_demo_data(session: AsyncSession) -> list[str]:
    """Delete every row of the CRM tables (customers, orders, tickets, staff, ...)."""
    tables = reset_tables()
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(tables):
            await conn.execute(table.delete())
    return [t.name for t in tables]


async def seed_demo(
    session: AsyncSession,
    options: DemoOptions,
    progress: ProgressCallback | None = None,
    *,
    use_copy: bool | None = None,
    fast_fk: bool = True,
    crm_settings: CrmSection | None = None,
) -> DemoSummary:
    """Write the demo data set for `options` into the session's transaction (not committed).

    The caller checks `is_empty` first (or resets). PostgreSQL loads through COPY unless
    `use_copy=False`; as a superuser with `fast_fk`, foreign-key triggers are skipped for the
    load (SET LOCAL session_replication_role = replica). With `crm_settings`, the analytics
    (lifecycle stage, RFM, lifetime value) are recomputed at the demo's "now" afterwards.
    """
    started = time.perf_counter()
    conn = await session.connection()
    postgres = conn.dialect.name == "postgresql"
    copy = postgres and use_copy is not False
    staff_base = int(await session.scalar(select(func.coalesce(func.max(StaffUser.id), 0))) or 0)
    taken_logins = set((await session.scalars(select(StaffUser.login))).all())
    taken_tg = set((await session.scalars(select(StaffUser.telegram_user_id))).all())
    rules_exist = bool(await session.scalar(select(exists().select_from(CompatibilityRule))))

    generator = DemoGenerator(options, staff_id_base=staff_base)
    writer = _Writer(conn, copy=copy)
    skip_fk = copy and fast_fk and await _is_superuser(conn)
    if skip_fk:
        # The rows are consistent by construction (the same generator runs with foreign
        # keys enforced on SQLite in the tests); per-row FK triggers would double the time.
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
    counts: Counter[str] = Counter()
    total = options.customers
    if progress:
        progress("customers", 0, total)
    # Pipeline: the next chunk is generated in a worker thread while this one is written
    # (the event loop mostly waits on the database meanwhile).
    batches = generator.batches()
    pending = asyncio.create_task(asyncio.to_thread(next, batches, None))
    try:
        while (item := await pending) is not None:
            batch, done = item
            pending = asyncio.create_task(asyncio.to_thread(next, batches, None))
            _fit_staff(batch, taken_logins, taken_tg)
            if rules_exist:
                batch["compatibility_rules"] = []
            for name in TABLE_ORDER:
                rows = batch[name]
                if rows:
                    await writer.write(name, rows)
                    counts[name] += len(rows)
            if progress and done:
                progress("customers", done, total)
    finally:
        if not pending.done():
            # A write failed: let the generator thread finish its chunk before unwinding.
            await asyncio.wait([pending])
    if skip_fk:
        await conn.execute(text("SET LOCAL session_replication_role = origin"))
    if rules_exist:
        counts["compatibility_rules"] += await seed_default_rules(session)
    if postgres:
        await _sync_sequences(conn, [n for n in TABLE_ORDER if counts[n]])
    if crm_settings is not None:
        from crm_core.analytics.service import AnalyticsService
        from crm_core.clock import FixedClock

        if progress:
            progress("analytics", 0, 1)
        await AnalyticsService(session, FixedClock(options.now), crm_settings).recompute(
            options.now
        )
        if progress:
            progress("analytics", 1, 1)
    return DemoSummary(
        options=options,
        rows={n: counts[n] for n in TABLE_ORDER},
        seconds=round(time.perf_counter() - started, 2),
        method="copy" if copy else "insert",
    )


def _fit_staff(batch: Batch, logins: set[str | None], telegram_ids: set[int | None]) -> None:
    """Demo staff must not collide with staff accounts that already exist."""
    rows = batch["staff_users"]
    for i, row in enumerate(rows):
        login, tg = row[3], row[4]
        if login in logins:
            login = f"{login}.demo"
        if tg in telegram_ids:
            tg = None
        rows[i] = (*row[:3], login, tg, *row[5:])


class _Writer:
    """Bulk insert of row tuples: COPY on PostgreSQL, executemany elsewhere."""

    def __init__(self, conn: AsyncConnection, *, copy: bool) -> None:
        self.conn = conn
        self.copy = copy
        self._raw: Any = None

    async def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        columns = COLUMNS[table]
        json_idx = [i for i, c in enumerate(columns) if c in JSON_COLUMNS.get(table, ())]
        if self.copy:
            if self._raw is None:
                raw = await self.conn.get_raw_connection()
                self._raw = raw.driver_connection
            records: Iterable[tuple[Any, ...]] = rows
            if json_idx:
                records = [_json_encoded(row, json_idx) for row in rows]
            await self._raw.copy_records_to_table(table, records=records, columns=list(columns))
            return
        dicts = [dict(zip(columns, row, strict=True)) for row in rows]
        step = 5000
        for start in range(0, len(dicts), step):
            await self.conn.execute(insert(_table(table)), dicts[start : start + step])


def _json_encoded(row: tuple[Any, ...], idx: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in idx:
        values[i] = json.dumps(values[i], ensure_ascii=False)
    return tuple(values)


async def _is_superuser(conn: AsyncConnection) -> bool:
    return bool(
        await conn.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    )


async def _sync_sequences(conn: AsyncConnection, tables: Iterable[str]) -> None:
    """After explicit ids, move each id sequence past the largest id (PostgreSQL)."""
    for name in tables:
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f'COALESCE((SELECT MAX(id) FROM "{name}"), 0) + 1, false)'
            )
        )


async def content_hash(session: AsyncSession, tables: Sequence[str] = TABLE_ORDER) -> str:
    """SHA-256 over the demo tables' rows in id order, normalised so that SQLite and
    PostgreSQL holding the same data give the same hash."""
    digest = hashlib.sha256()
    for name in tables:
        table = _table(name)
        cols = [table.c[c] for c in COLUMNS[name]]
        result = await session.stream(select(*cols).order_by(table.c.id))
        digest.update(f"\x1d{name}\x1d".encode())
        async for row in result:
            digest.update("\x1f".join(_norm(v) for v in row).encode())
            digest.update(b"\x1e")
    return digest.hexdigest()


def _norm(value: Any) -> str:
    if value is None:
        return "\u2205"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def ensure_empty_or_reset(empty: bool, reset: bool) -> None:
    """Refuse to seed into existing data unless a reset was asked for."""
    if not empty and not reset:
        raise Conflict(
            "the database already holds CRM data (customers, products or orders); "
            "seeding demo data on top would mix the two. Use --reset to delete ALL CRM data "
            "first, or point HWCRM_DB__URL at an empty database."
        )

"""What every entity importer shares: the report, the file's key register, the batch loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, MetaData, Table, bindparam, insert
from sqlalchemy import Integer as SqlInteger
from sqlalchemy import Text as SqlText
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import Clock
from crm_core.errors import DomainError
from crm_core.importexport import fields
from crm_core.importexport.columns import Layout
from crm_core.importexport.reader import Record
from crm_core.importexport.schemas import ImportConfig, Issue, IssueCallback, Severity

MAX_VALUE_IN_REPORT = 100


class Report:
    """Collects the issues of one import.

    Every issue goes to `on_issue` (for a report file) and is counted; only the first
    `keep` are kept in memory, so a file full of errors cannot exhaust memory.
    """

    def __init__(
        self,
        keep: int,
        on_issue: IssueCallback | None = None,
        header_name: Callable[[str], str] = lambda column: column,
    ) -> None:
        self.keep = keep
        self.on_issue = on_issue
        self.header_name = header_name
        self.issues: list[Issue] = []
        self.errors = 0
        self.warnings = 0
        self.rejected_rows = 0

    def add(self, issue: Issue) -> None:
        if issue.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.issues) < self.keep:
            self.issues.append(issue)
        if self.on_issue is not None:
            self.on_issue(issue)

    def issue(
        self,
        row: int,
        column: str,
        reason: str,
        value: Any = "",
        severity: Severity = "error",
    ) -> None:
        """Record a problem; `column` is canonical and is reported as the file spells it."""
        shown = value if isinstance(value, str) else ("" if value is None else str(value))
        if len(shown) > MAX_VALUE_IN_REPORT:
            shown = shown[: MAX_VALUE_IN_REPORT - 1] + "…"
        columns = ", ".join(self.header_name(c) for c in column.split(",") if c) if column else ""
        self.add(Issue(row=row, column=columns, reason=reason, value=shown, severity=severity))

    def reject(self, rows: int = 1) -> None:
        self.rejected_rows += rows


class FileKeys:
    """The natural keys seen so far in this file, for duplicate detection across batches.

    Keys are namespaced strings (`phone:+86…`, `sku:…`, `serial:SN…`); each remembers the
    first row it appeared on and an optional value (used to check that repeated mentions of
    a company or an order agree).

    The first `memory_limit` keys live in a dict (no database round trips for the files most
    imports see); beyond that they all move to a temporary table of the import's
    transaction, so memory stays bounded however large the file is.
    """

    TABLE = "hwcrm_import_keys"
    CHUNK = 5000
    # Described for bulk inserts only; created by _spill (not part of the schema).
    _TABLE = Table(
        TABLE,
        MetaData(),
        Column("k", SqlText, primary_key=True),
        Column("row_no", SqlInteger, nullable=False),
        Column("v", SqlText),
    )

    def __init__(self, session: AsyncSession, memory_limit: int = 200_000) -> None:
        self.session = session
        self.memory_limit = memory_limit
        self._memory: dict[str, tuple[int, str | None]] | None = {}

    @property
    def spilled(self) -> bool:
        """True once the keys moved to the temporary table."""
        return self._memory is None

    async def close(self) -> None:
        """Free what the keys use (the table's rows; on PostgreSQL it is dropped at commit)."""
        if self._memory is None:
            await self.session.execute(sql(f"DELETE FROM {self.TABLE}"))
        else:
            self._memory.clear()

    async def claim(
        self, items: Sequence[tuple[str, int, str | None]]
    ) -> list[tuple[int, str | None] | None]:
        """Register `(key, row, value)` items in file order.

        Returns, per item, None when the key is new, else the `(row, value)` of its first
        appearance (earlier in this batch or in an earlier batch).
        """
        if not items:
            return []
        memory = self._memory
        if memory is not None and len(memory) + len(items) > self.memory_limit:
            await self._spill(memory)
            memory = None
        if memory is not None:
            result: list[tuple[int, str | None] | None] = []
            for key, row, value in items:
                previous = memory.get(key)
                result.append(previous)
                if previous is None:
                    memory[key] = (row, value)
            return result
        return await self._claim_in_table(items)

    async def _spill(self, memory: dict[str, tuple[int, str | None]]) -> None:
        postgres = self.session.get_bind().dialect.name == "postgresql"
        await self.session.execute(
            sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.TABLE} "
                "(k TEXT PRIMARY KEY, row_no INTEGER NOT NULL, v TEXT)"
                + (" ON COMMIT DROP" if postgres else "")
            )
        )
        await self.session.execute(sql(f"DELETE FROM {self.TABLE}"))
        rows = [{"k": k, "row_no": r, "v": v} for k, (r, v) in memory.items()]
        for start in range(0, len(rows), self.CHUNK):
            await bulk_insert(self.session, self._TABLE, rows[start : start + self.CHUNK])
        self._memory = None

    async def _claim_in_table(
        self, items: Sequence[tuple[str, int, str | None]]
    ) -> list[tuple[int, str | None] | None]:
        keys = list({key for key, _, _ in items})
        known: dict[str, tuple[int, str | None]] = {}
        for start in range(0, len(keys), self.CHUNK):
            found = await self.session.execute(
                sql(f"SELECT k, row_no, v FROM {self.TABLE} WHERE k IN :keys").bindparams(
                    bindparam("keys", expanding=True)
                ),
                {"keys": keys[start : start + self.CHUNK]},
            )
            known.update((k, (r, v)) for k, r, v in found.all())
        result: list[tuple[int, str | None] | None] = []
        new: list[dict[str, Any]] = []
        for key, row, value in items:
            previous = known.get(key)
            result.append(previous)
            if previous is None:
                known[key] = (row, value)
                new.append({"k": key, "row_no": row, "v": value})
        await bulk_insert(self.session, self._TABLE, new)
        return result


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


@dataclass
class ImportContext:
    """Everything an entity importer needs for one file."""

    session: AsyncSession
    clock: Clock
    config: ImportConfig
    zone: tzinfo
    report: Report
    keys: FileKeys
    now: datetime
    counts: Counts = field(default_factory=Counts)


P = TypeVar("P")


class EntityImporter(ABC, Generic[P]):
    """Parses records (no database) and writes them in batches (one query set per batch).

    `parse` validates one record and returns what to write, or None when the row is
    rejected (after reporting why). `write` checks a batch against the database and the
    rest of the file, then inserts/updates it.
    """

    layout: Layout
    # The tables this importer fills, the first one growing like the file (PostgreSQL
    # statistics are refreshed for them, see _refresh_statistics).
    tables: tuple[str, ...] = ()

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self._pending: list[P] = []
        self._rows_written = 0
        self._analyzed_at: float | None = None  # estimated table size at the last ANALYZE
        self._base_size = 0.0

    async def start(self) -> None:
        """Hook called once before the first record."""

    async def feed(self, record: Record) -> None:
        if record.problem is not None:
            self.ctx.report.add(record.problem)
            self.reject_row()
            return
        parsed = self.parse(record)
        if parsed is None:
            return
        self._pending.append(parsed)
        if len(self._pending) >= self.ctx.config.batch_size:
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            await self.write(batch)
            await self._refresh_statistics(self.rows_in(batch))

    def rows_in(self, batch: list[P]) -> int:
        """How many file rows a batch holds."""
        return len(batch)

    async def _refresh_statistics(self, rows: int) -> None:
        """Keep PostgreSQL's planner informed while a large import fills a table.

        The batch queries are planned from table statistics, and autovacuum cannot see the
        rows of a transaction that has not committed: a fresh database filled by one big
        import would be planned as if empty (nested loops over sequential scans, minutes per
        batch). So the importer runs ANALYZE (which does count its own transaction's rows)
        on its tables whenever they may have doubled in size: O(log n) times per import,
        never for a table that is already large compared with the file.
        """
        self._rows_written += rows
        session = self.ctx.session
        if not self.tables or session.get_bind().dialect.name != "postgresql":
            return
        if self._analyzed_at is None:
            found = await session.scalar(
                sql("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                {"t": self.tables[0]},
            )
            self._base_size = max(float(found or 0), 0.0)
            self._analyzed_at = self._base_size
        size = self._base_size + self._rows_written
        if size < 2 * self._analyzed_at or self._rows_written < self.ctx.config.batch_size:
            return
        names = [*self.tables, *([FileKeys.TABLE] if self.ctx.keys.spilled else [])]
        for name in names:
            await session.execute(sql(f"ANALYZE {name}"))
        self._analyzed_at = size

    async def finish(self) -> None:
        await self.flush()

    @abstractmethod
    def parse(self, record: Record) -> P | None: ...

    @abstractmethod
    async def write(self, batch: list[P]) -> None: ...

    # -- helpers ---------------------------------------------------------------------------

    def reject_row(self, rows: int = 1, records: int = 1) -> None:
        self.ctx.report.reject(rows)
        self.ctx.counts.rejected += records

    def error(self, row: int, column: str, reason: str, value: Any = "") -> None:
        self.ctx.report.issue(row, column, reason, value)


class RowParser:
    """Collects the field errors of one row, so that a row reports all its problems at once."""

    def __init__(self, report: Report, record: Record) -> None:
        self.report = report
        self.record = record
        self.failed = False

    def has(self, column: str) -> bool:
        """True when the column holds a value (empty cells and nulls count as absent)."""
        return _present(self.record.values.get(column))

    def get(self, column: str, parse: Callable[[Any], Any], *, required: bool = False) -> Any:
        """The parsed value of `column`, or None when empty (or invalid: the error is reported)."""
        value = self.record.values.get(column)
        if not _present(value):
            if required:
                self.fail(column, "required")
            return None
        try:
            return parse(value)
        except (fields.FieldError, DomainError) as exc:
            # Field parsers raise FieldError; the shared phone/e-mail normalisers ValidationFailed.
            self.fail(column, str(exc), value)
            return None

    def fail(self, column: str, reason: str, value: Any = "") -> None:
        self.failed = True
        self.report.issue(self.record.row, column, reason, value)


async def bulk_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows that need no ids back, in the session's transaction.

    On PostgreSQL this is COPY (asyncpg's `copy_records_to_table`), several times cheaper
    for the server than multi-row INSERTs; elsewhere a bulk INSERT. Values must be plain
    Python values the driver takes as they are (ints, text, booleans, aware datetimes,
    decimals): no JSON columns.
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(insert(table), rows)
        return
    columns = list(rows[0])
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.copy_records_to_table(
        table.name,
        records=[tuple(row[c] for c in columns) for row in rows],
        columns=columns,
        schema_name=table.schema,
    )


def _present(value: Any) -> bool:
    if value is None:
        return False
    if value.__class__ is str:
        return bool(value) and not value.isspace()
    if isinstance(value, list | dict):
        return bool(value)
    return True


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

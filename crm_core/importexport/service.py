"""Import and export of customers, products and orders as CSV or JSON Lines.

An import is one transaction: the file is streamed in batches, each batch validated and
written (bulk selects, inserts and updates), and at the end the transaction is committed
only when nothing was rejected, or with `partial`, when the valid rows are wanted anyway.
Otherwise `ImportRejected` is raised so that the caller's unit of work rolls everything
back: nothing half-written. See FORMATS.md for the file formats and the rules.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.audit.models import AuditEntry
from crm_core.catalog.models import Product
from crm_core.clock import Clock
from crm_core.customers.models import Customer
from crm_core.db import unit_of_work
from crm_core.errors import Conflict, ValidationFailed
from crm_core.importexport import customers, fields, orders, products
from crm_core.importexport.columns import LAYOUTS
from crm_core.importexport.common import EntityImporter, FileKeys, ImportContext, Report
from crm_core.importexport.encoding import EncodingProblem, detect_encoding
from crm_core.importexport.reader import FileRefused, RecordReader
from crm_core.importexport.schemas import (
    Entity,
    ExportResult,
    FileFormat,
    ImportConfig,
    ImportProgress,
    ImportRequest,
    ImportResult,
    Issue,
    IssueCallback,
    ProgressCallback,
)
from crm_core.orders.models import Order, OrderItem

PROGRESS_EVERY_ROWS = 500

IMPORTERS: dict[Entity, type[EntityImporter[Any]]] = {
    Entity.CUSTOMERS: customers.CustomerImporter,
    Entity.PRODUCTS: products.ProductImporter,
    Entity.ORDERS: orders.OrderImporter,
}
EXPORTERS: dict[Entity, Callable[[AsyncSession, int], AsyncIterator[dict[str, Any]]]] = {
    Entity.CUSTOMERS: customers.export_rows,
    Entity.PRODUCTS: products.export_rows,
    Entity.ORDERS: orders.export_rows,
}
EXPORT_COLUMNS: dict[Entity, tuple[str, ...]] = {
    entity: layout.names for entity, layout in LAYOUTS.items()
}


class ImportRejected(ValidationFailed):
    """The import was rolled back (rows rejected without `partial`, a refused file, or a dry
    run); `result` says what was found and what would have been written."""

    def __init__(self, result: ImportResult) -> None:
        reason = result.file_error or (
            "dry run" if result.dry_run else f"{result.rejected_rows} row(s) rejected"
        )
        super().__init__(f"import of {result.path} rolled back: {reason}")
        self.result = result


def guess_format(path: Path) -> FileFormat:
    """JSON Lines for .jsonl/.ndjson/.json, CSV otherwise."""
    suffixes = [s.lower() for s in path.suffixes]
    if any(s in (".jsonl", ".ndjson", ".json") for s in suffixes):
        return FileFormat.JSONL
    return FileFormat.CSV


class ImportService:
    """Imports one file into the caller's transaction (see the module docstring)."""

    def __init__(self, session: AsyncSession, clock: Clock, config: ImportConfig) -> None:
        self._session = session
        self._clock = clock
        self._config = config

    async def import_file(
        self,
        request: ImportRequest,
        *,
        progress: ProgressCallback | None = None,
        on_issue: IssueCallback | None = None,
    ) -> ImportResult:
        """Import `request.path`; returns the result when it may be committed, else raises
        ImportRejected (the caller's unit of work then rolls back)."""
        started = time.perf_counter()
        path = request.path
        file_format = request.file_format or guess_format(path)
        result = ImportResult(
            entity=request.entity,
            path=str(path),
            file_format=file_format,
            partial=request.partial,
            dry_run=request.dry_run,
        )
        report = Report(self._config.keep_issues, on_issue)
        try:
            await self._run(request, file_format, result, report, progress)
        except IntegrityError as exc:
            # The lookups saw no such key, so another writer added it meanwhile.
            raise Conflict(
                "another change to the database collided with this import "
                f"({exc.orig}); nothing was written, run the import again"
            ) from exc
        except (FileRefused, EncodingProblem, fields.FieldError) as exc:
            result.file_error = str(exc)
            for issue in getattr(exc, "issues", None) or [Issue(row=0, reason=str(exc))]:
                report.add(issue)
        result.seconds = time.perf_counter() - started
        result.errors = report.errors
        result.warnings = report.warnings
        result.rejected_rows = report.rejected_rows
        result.issues = sorted(report.issues, key=lambda issue: issue.row)
        result.issues_truncated = report.errors + report.warnings > len(report.issues)
        if result.file_error or request.dry_run or (result.rejected_rows and not request.partial):
            raise ImportRejected(result)
        if result.inserted or result.updated:
            await self._audit(request, result)
        return result

    async def _run(
        self,
        request: ImportRequest,
        file_format: FileFormat,
        result: ImportResult,
        report: Report,
        progress: ProgressCallback | None,
    ) -> None:
        path = request.path
        if not path.is_file():
            raise FileRefused(f"no such file: {path}")
        size = path.stat().st_size
        limit = self._config.max_file_bytes
        if limit and size > limit:
            raise FileRefused(
                f"the file has {size:,} bytes, more than the limit of {limit:,} "
                "(setting import.max_file_bytes)"
            )

        def scanned(done: int) -> None:
            if progress:
                progress(ImportProgress("scan", done, size, 0))

        result.encoding = detect_encoding(path, request.encoding, scanned)
        zone = fields.zone(request.timezone or self._config.default_timezone)
        layout = LAYOUTS[request.entity]
        reader = RecordReader(path, layout, file_format, result.encoding, on_warning=report.add)
        report.header_name = reader.header_name
        keys = FileKeys(self._session, self._config.memory_keys)
        ctx = ImportContext(
            session=self._session,
            clock=self._clock,
            config=self._config,
            zone=zone,
            report=report,
            keys=keys,
            now=self._clock.now(),
        )
        importer = IMPORTERS[request.entity](ctx)
        await importer.start()
        rows = 0
        for record in reader:
            rows += 1
            await importer.feed(record)
            if progress and rows % PROGRESS_EVERY_ROWS == 0:
                progress(ImportProgress("import", reader.bytes_read, size, rows))
        await importer.finish()
        await keys.close()
        if progress:
            progress(ImportProgress("import", size, size, rows))
        result.rows = rows
        result.inserted = ctx.counts.inserted
        result.updated = ctx.counts.updated
        result.unchanged = ctx.counts.unchanged
        result.rejected_records = ctx.counts.rejected

    async def _audit(self, request: ImportRequest, result: ImportResult) -> None:
        await self._session.execute(
            insert(AuditEntry).values(
                at=self._clock.now(),
                actor=request.actor[:64],
                action="import",
                entity=request.entity.value.rstrip("s"),
                reason=f"bulk import of {Path(result.path).name}"[:500],
                details={
                    "file": result.path,
                    "rows": result.rows,
                    "inserted": result.inserted,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "rejected_rows": result.rejected_rows,
                    "partial": result.partial,
                },
            )
        )


async def run_import(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    config: ImportConfig,
    request: ImportRequest,
    *,
    progress: ProgressCallback | None = None,
    on_issue: IssueCallback | None = None,
) -> ImportResult:
    """Import a file in its own transaction; `committed` says whether it was kept."""
    try:
        async with unit_of_work(sessions) as session:
            result = await ImportService(session, clock, config).import_file(
                request, progress=progress, on_issue=on_issue
            )
    except ImportRejected as rejected:
        return rejected.result
    result.committed = True
    return result


class ExportService:
    """Writes every customer, product or order as a file that imports back unchanged."""

    def __init__(self, session: AsyncSession, clock: Clock, *, batch_size: int = 2000) -> None:
        self._session = session
        self._clock = clock
        self._batch_size = batch_size

    async def count(self, entity: Entity) -> int:
        """How many rows an export of `entity` writes (for a progress bar)."""
        if entity is Entity.CUSTOMERS:
            stmt = select(func.count()).select_from(Customer)
        elif entity is Entity.PRODUCTS:
            stmt = select(func.count()).select_from(Product)
        else:
            stmt = select(func.count()).select_from(
                Order.__table__.outerjoin(
                    OrderItem.__table__, OrderItem.__table__.c.order_id == Order.__table__.c.id
                )
            )
        return int(await self._session.scalar(stmt) or 0)

    async def export(
        self,
        entity: Entity,
        out: TextIO,
        file_format: FileFormat = FileFormat.CSV,
        *,
        encoding: str = "utf-8",
        progress: Callable[[int], None] | None = None,
        actor: str = "cli",
    ) -> ExportResult:
        """Write `entity` to the text stream `out` (opened with newline='' for CSV)."""
        columns = EXPORT_COLUMNS[entity]
        result = ExportResult(entity=entity, file_format=file_format, encoding=encoding)
        writer = csv.writer(out, lineterminator="\r\n") if file_format is FileFormat.CSV else None
        if writer is not None:
            writer.writerow(columns)
        last_key: Any = None
        async for row in EXPORTERS[entity](self._session, self._batch_size):
            if writer is not None:
                writer.writerow([_csv_value(row.get(column)) for column in columns])
            else:
                data = {column: _json_value(row[column]) for column in columns if column in row}
                out.write(json.dumps(data, ensure_ascii=False) + "\n")
            result.rows += 1
            key = row.get("order_number") if entity is Entity.ORDERS else result.rows
            if key != last_key:
                result.records += 1
                last_key = key
            if progress and result.rows % PROGRESS_EVERY_ROWS == 0:
                progress(result.rows)
        if progress:
            progress(result.rows)
        if entity is Entity.CUSTOMERS:
            await self._session.execute(
                insert(AuditEntry).values(
                    at=self._clock.now(),
                    actor=actor[:64],
                    action="export",
                    entity="customer",
                    reason="bulk export",
                    details={"rows": result.rows, "format": file_format.value},
                )
            )
        return result

    async def export_to_path(
        self,
        entity: Entity,
        path: Path,
        file_format: FileFormat = FileFormat.CSV,
        *,
        encoding: str = "utf-8",
        progress: Callable[[int], None] | None = None,
        actor: str = "cli",
    ) -> ExportResult:
        """Export into `path` atomically: a temporary file next to it, renamed at the end, so
        a failed export never leaves a half-written file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with tmp.open("w", encoding=encoding, newline="") as out:
                result = await self.export(
                    entity, out, file_format, encoding=encoding, progress=progress, actor=actor
                )
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        result.path = str(path)
        return result


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return fields.iso(value)
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return fields.iso(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


async def import_records(
    session: AsyncSession,
    clock: Clock,
    config: ImportConfig,
    entity: Entity,
    records: list[dict[str, Any]],
    *,
    actor: str,
    partial: bool = False,
    dry_run: bool = False,
    timezone: str | None = None,
) -> ImportResult:
    """Import records given as data (the REST API) with exactly the file import's rules:
    they are written as a JSON Lines file (record n = row n) and imported from it in the
    caller's transaction. Raises ImportRejected like `ImportService.import_file`."""
    fd, name = tempfile.mkstemp(prefix="hwcrm-api-", suffix=".jsonl")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        request = ImportRequest(
            entity=entity,
            path=path,
            file_format=FileFormat.JSONL,
            encoding="utf-8",
            partial=partial,
            dry_run=dry_run,
            timezone=timezone,
            actor=actor,
        )
        try:
            result = await ImportService(session, clock, config).import_file(request)
        except ImportRejected as rejected:
            rejected.result.path = "request"
            raise
        result.path = "request"
        return result
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)

"""`hwcrm import …` and `hwcrm export …`: bulk CSV / JSON Lines exchange with ERPs.

Thin layer: parse options, call crm_core.importexport, render progress, the per-row report
and the summary. The file formats are in crm_core/importexport/FORMATS.md.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from app.settings import Settings
from crm_core.errors import DomainError
from crm_core.importexport import (
    Entity,
    ExportResult,
    ExportService,
    FileFormat,
    ImportConfig,
    ImportProgress,
    ImportRequest,
    ImportResult,
    Issue,
    guess_format,
    run_import,
)

ISSUES_SHOWN = 50
REPORT_COLUMNS = ("row", "column", "severity", "reason", "value")

import_app = typer.Typer(
    help="Import customers, products or orders from CSV or JSON Lines (e.g. ERP exports).",
    no_args_is_help=True,
)
export_app = typer.Typer(
    help="Export customers, products or orders as CSV or JSON Lines (imports back unchanged).",
    no_args_is_help=True,
)


class ExportEncoding(StrEnum):
    UTF8 = "utf-8"
    UTF8_SIG = "utf-8-sig"
    GB18030 = "gb18030"


def register(cli: typer.Typer) -> None:
    """Attach `import` and `export` to the root CLI."""
    cli.add_typer(import_app, name="import")
    cli.add_typer(export_app, name="export")


def import_config(settings: Settings) -> ImportConfig:
    """The importer's knobs from the typed settings."""
    return ImportConfig(
        batch_size=settings.import_.batch_size,
        max_file_bytes=settings.import_.max_file_bytes,
        currency=settings.crm.currency,
        default_language=settings.app.default_language,
        default_timezone=settings.app.default_timezone,
    )


# -- import ----------------------------------------------------------------------------------


def _import_command(entity: Entity) -> Callable[..., None]:
    def command(
        file: Path = typer.Argument(..., help="CSV (.csv) or JSON Lines (.jsonl) file."),
        partial: bool = typer.Option(
            False, "--partial", help="Commit the valid rows even when others are rejected."
        ),
        report: Path | None = typer.Option(
            None, "--report", help="Write every problem (row, column, reason) to this CSV."
        ),
        encoding: str | None = typer.Option(
            None,
            "--encoding",
            help="Force the file's encoding (default: BOM, else UTF-8, else GB18030).",
        ),
        file_format: FileFormat | None = typer.Option(
            None, "--format", help="csv or jsonl (default: from the file name)."
        ),
        timezone: str | None = typer.Option(
            None, "--timezone", help="Zone of date/times without an offset (default: app's)."
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Validate everything, write nothing."
        ),
    ) -> None:
        from app.cli import err_console, run_async

        request = ImportRequest(
            entity=entity,
            path=file,
            file_format=file_format,
            encoding=encoding,
            partial=partial,
            dry_run=dry_run,
            timezone=timezone,
        )
        try:
            result = run_async(_run_import(request, report))
        except DomainError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None
        raise typer.Exit(_render_import(result, report))

    command.__doc__ = (
        f"Import {entity.value} from FILE (CSV or JSON Lines; UTF-8, UTF-8 with BOM or "
        f"GB18030). All-or-nothing unless --partial. Exit code 1 when a row was rejected."
    )
    return command


for _entity in Entity:
    import_app.command(_entity.value)(_import_command(_entity))


async def _run_import(request: ImportRequest, report_path: Path | None) -> ImportResult:
    from app.container import build_container

    container = await build_container()
    try:
        with _report_writer(report_path) as on_issue, _ImportBar() as bar:
            return await run_import(
                container.sessions,
                container.clock,
                import_config(container.settings),
                request,
                progress=bar.update,
                on_issue=on_issue,
            )
    finally:
        await container.aclose()


@contextmanager
def _report_writer(path: Path | None) -> Iterator[Callable[[Issue], None] | None]:
    """Streams issues into the --report CSV (UTF-8 with BOM, so spreadsheets show Chinese)."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(REPORT_COLUMNS)

        def write(issue: Issue) -> None:
            writer.writerow([issue.row, issue.column, issue.severity, issue.reason, issue.value])

        yield write


class _ImportBar:
    """A Rich progress bar by bytes: one task for the encoding check, one for the import."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[rows]:>10,} rows"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _ImportBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, event: ImportProgress) -> None:
        task = self._tasks.get(event.phase)
        if task is None:
            label = "checking encoding" if event.phase == "scan" else "importing"
            task = self._progress.add_task(label, total=event.bytes_total or None, rows=0)
            self._tasks[event.phase] = task
        self._progress.update(task, completed=event.bytes_done, rows=event.rows)


def _render_import(result: ImportResult, report_path: Path | None) -> int:
    """Print the issues table and the summary; return the exit code."""
    from app.cli import console

    if result.issues:
        table = Table(title=f"Problems in {escape(result.path)}", show_lines=False)
        for name in ("row", "column", "", "reason", "value"):
            table.add_column(name, overflow="fold")
        for issue in result.issues[:ISSUES_SHOWN]:
            style = "red" if issue.severity == "error" else "yellow"
            table.add_row(
                str(issue.row),
                escape(issue.column),
                f"[{style}]{issue.severity}[/{style}]",
                escape(issue.reason),
                escape(issue.value),
            )
        console.print(table)
        more = result.errors + result.warnings - min(len(result.issues), ISSUES_SHOWN)
        if more > 0:
            where = f"all are in {report_path}" if report_path else "use --report FILE.csv"
            console.print(f"… and {more:,} more problem(s) ({where})")
    elif report_path:
        console.print(f"no problems; report written to {escape(str(report_path))}")
    noun = "orders" if result.entity is Entity.ORDERS else result.entity.value
    counts = (
        f"{result.inserted:,} inserted, {result.updated:,} updated, "
        f"{result.unchanged:,} unchanged, {result.rejected_records:,} rejected"
    )
    rows = f"{result.rows:,} rows read, {result.rejected_rows:,} rejected"
    speed = f"{result.seconds:.1f} s, {result.rows_per_second:,.0f} rows/s"
    if result.file_error:
        console.print(f"[red]file refused:[/red] {escape(result.file_error)}")
        console.print("nothing was written")
        return 1
    if result.committed:
        console.print(f"[green]{noun}: {counts}[/green] ({rows}; {speed}; {result.encoding})")
    elif result.dry_run:
        console.print(f"dry run, nothing written — would have: {noun}: {counts} ({rows})")
    else:
        console.print(
            f"[red]nothing written:[/red] {result.rejected_rows:,} row(s) rejected and the "
            "import is all-or-nothing; fix the file or use --partial"
        )
        console.print(f"would have: {noun}: {counts} ({rows})")
    if result.warnings:
        console.print(f"[yellow]{result.warnings:,} warning(s)[/yellow] (see the table above)")
    return 1 if result.rejected_rows else 0


# -- export ----------------------------------------------------------------------------------


def _export_command(entity: Entity) -> Callable[..., None]:
    def command(
        file_format: FileFormat | None = typer.Option(
            None, "--format", help="csv or jsonl (default: from --output's name, else csv)."
        ),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="File to write (default: standard output)."
        ),
        encoding: ExportEncoding = typer.Option(
            ExportEncoding.UTF8, "--encoding", help="Text encoding of the file."
        ),
    ) -> None:
        from app.cli import console, err_console, run_async

        fmt = file_format or (guess_format(output) if output else FileFormat.CSV)
        result = run_async(_run_export(entity, fmt, output, encoding.value))
        noun = "orders" if entity is Entity.ORDERS else entity.value
        where = escape(str(output)) if output else "standard output"
        message = (
            f"exported {result.records:,} {noun} ({result.rows:,} rows) as {fmt.value}, "
            f"{result.encoding}, to {where}"
        )
        (console if output else err_console).print(message)

    command.__doc__ = (
        f"Export all {entity.value} as CSV or JSON Lines; the file imports back "
        + {
            Entity.CUSTOMERS: "unchanged. Erased customers appear with their anonymous id only.",
            Entity.PRODUCTS: "unchanged.",
            Entity.ORDERS: "unchanged (one row per line). Erased customers' orders name them "
            "by anonymous id.",
        }[entity]
    )
    return command


for _entity in Entity:
    export_app.command(_entity.value)(_export_command(_entity))


async def _run_export(
    entity: Entity, fmt: FileFormat, output: Path | None, encoding: str
) -> ExportResult:
    from app.container import build_container

    container = await build_container()
    try:
        async with container.unit_of_work() as session:
            service = ExportService(
                session, container.clock, batch_size=container.settings.import_.batch_size
            )
            if output is None:
                stream = io.TextIOWrapper(sys.stdout.buffer, encoding=encoding, newline="")
                try:
                    return await service.export(entity, stream, fmt, encoding=encoding)
                finally:
                    stream.flush()
                    stream.detach()
            total = await service.count(entity)
            with _rows_bar(total) as advance:
                return await service.export_to_path(
                    entity, output, fmt, encoding=encoding, progress=advance
                )
    finally:
        await container.aclose()


@contextmanager
def _rows_bar(total: int) -> Iterator[Callable[[int], None]]:
    progress = Progress(
        TextColumn("[bold]exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("export", total=total)
    with progress:
        yield lambda done: progress.update(task, completed=done)

"""Data shapes of import and export: entities, options, the per-row report and the results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Entity(StrEnum):
    """What a file holds."""

    CUSTOMERS = "customers"
    PRODUCTS = "products"
    ORDERS = "orders"


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


Severity = Literal["error", "warning"]


class Issue(BaseModel):
    """One problem found in a file: where (row, column) and why.

    `row` counts like a spreadsheet: in CSV the header is row 1 and the first data record row
    2 (a quoted value spanning several lines is still one row); in JSON Lines it is the line
    number. Header problems (missing or unknown columns) are on row 1; problems of the whole
    file that have no row (size, encoding without a line) use row 0.
    """

    model_config = ConfigDict(frozen=True)

    row: int
    column: str = ""
    reason: str
    value: str = ""
    severity: Severity = "error"


@dataclass(frozen=True)
class ImportProgress:
    """Progress of one import: `phase` is "scan" (encoding check) or "import"."""

    phase: Literal["scan", "import"]
    bytes_done: int
    bytes_total: int
    rows: int


ProgressCallback = Callable[[ImportProgress], None]
IssueCallback = Callable[[Issue], None]


@dataclass(frozen=True)
class ImportConfig:
    """Knobs of the importer, filled by the composition root from settings.

    `keep_issues` bounds how many issues the result keeps in memory; every issue still goes to
    the `on_issue` callback (the CLI streams them into the `--report` file). `memory_keys`
    bounds how many natural keys duplicate detection keeps in memory before it moves them to
    a temporary table (~150 bytes per key).
    """

    batch_size: int = 2000
    max_file_bytes: int = 0
    currency: str = "CNY"
    default_language: str = "en"
    default_timezone: str = "Asia/Shanghai"
    phone_region: str = "CN"
    keep_issues: int = 1000
    memory_keys: int = 200_000
    max_future_days: int = 1
    max_lines_per_order: int = 10_000


@dataclass(frozen=True)
class ImportRequest:
    """One file to import and how.

    `partial`: commit the valid rows/orders even when others were rejected (default: the file
    is all-or-nothing). `dry_run`: validate and roll back whatever happens. `encoding`: force
    a codec instead of detecting one. `timezone`: the zone of date/times without an offset
    (default: `ImportConfig.default_timezone`).
    """

    entity: Entity
    path: Path
    file_format: FileFormat | None = None
    encoding: str | None = None
    partial: bool = False
    dry_run: bool = False
    timezone: str | None = None
    actor: str = "cli"


class ImportResult(BaseModel):
    """What an import did (or would have done, when it was rolled back)."""

    entity: Entity
    path: str
    file_format: FileFormat
    encoding: str = ""
    rows: int = Field(0, description="data rows read")
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_rows: int = 0
    rejected_records: int = Field(0, description="customers/products/orders not imported")
    errors: int = 0
    warnings: int = 0
    issues: list[Issue] = Field(default_factory=list)
    issues_truncated: bool = False
    file_error: str | None = Field(None, description="why the whole file was refused")
    partial: bool = False
    dry_run: bool = False
    committed: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing was rejected (warnings allowed)."""
        return self.file_error is None and self.rejected_rows == 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class ExportResult(BaseModel):
    entity: Entity
    file_format: FileFormat
    encoding: str
    rows: int = 0
    records: int = 0
    path: str | None = None

"""Streaming readers: a CSV or JSON Lines file → records keyed by canonical column names.

Only the current record is in memory. The header is mapped onto the entity's layout (any
case, Chinese aliases); unknown columns become warnings and are ignored; missing required
columns refuse the file. Rows whose number of values does not match the header are row
errors.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_core.importexport.columns import Layout
from crm_core.importexport.schemas import FileFormat, Issue

DELIMITERS = (",", "\t", ";", "|")


class FileRefused(ValueError):
    """The file as a whole cannot be imported (header, syntax, size, encoding)."""

    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []


@dataclass(slots=True)
class Record:
    """One data row: its row number in the file and its values by canonical column name.

    `problem` is set when the row cannot be read as a whole (wrong number of values, not a
    JSON object); `values` then holds what could be read by position, if anything.
    """

    row: int
    values: dict[str, Any]
    problem: Issue | None = None


@dataclass
class RecordReader:
    """Iterates the records of one file; `bytes_read` follows the progress through the file."""

    path: Path
    layout: Layout
    file_format: FileFormat
    encoding: str
    on_warning: Callable[[Issue], None] = lambda issue: None
    columns: dict[str, str] = field(default_factory=dict)  # canonical → header as written
    _binary: io.BufferedReader | None = None

    @property
    def bytes_read(self) -> int:
        if self._binary is None or self._binary.closed:
            return 0
        return self._binary.tell()

    def header_name(self, column: str) -> str:
        """The column as the file spells it (for the report)."""
        return self.columns.get(column, column)

    def __iter__(self) -> Iterator[Record]:
        with self.path.open("rb") as binary:
            self._binary = binary
            if self.file_format is FileFormat.CSV:
                yield from self._csv(binary)
            else:
                yield from self._jsonl(binary)

    # -- CSV -------------------------------------------------------------------------------

    def _csv(self, binary: io.BufferedReader) -> Iterator[Record]:
        stream = io.TextIOWrapper(binary, encoding=self.encoding, newline="")
        header_line = stream.readline()
        if header_line and not header_line.strip():
            raise FileRefused(
                "the file starts with an empty line; the first row must be the header"
            )
        if not header_line:
            raise FileRefused("the file is empty")
        delimiter = self._pick_delimiter(header_line)
        # strict: an unclosed quote or text after a closing quote is an error, not a row
        # that silently swallows the rest of the file.
        reader = csv.reader(
            itertools.chain([header_line], stream), delimiter=delimiter, strict=True
        )
        try:
            header = next(reader)
        except csv.Error as exc:
            raise FileRefused(f"row 1 (header): CSV syntax error: {exc}") from None
        index = self._map_header(header)
        width = len(header)
        row = 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileRefused(f"row {row + 1}: CSV syntax error: {exc}") from None
            row += 1
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != width:
                # Trailing empty cells some spreadsheets add are harmless.
                extra = values[width:]
                if len(values) > width and not any(v.strip() for v in extra):
                    values = values[:width]
                else:
                    # Best-effort values (the order number, say) so that an order importer
                    # can reject the order this broken row belongs to.
                    partial = {name: values[i] for i, name in index if i < len(values)}
                    yield Record(
                        row,
                        partial,
                        Issue(
                            row=row,
                            reason=f"has {len(values)} values but the header has {width} columns",
                        ),
                    )
                    continue
            yield Record(row, {name: values[i] for i, name in index})

    def _pick_delimiter(self, header_line: str) -> str:
        """The separator that splits the header into the most known columns (`,` on a tie)."""
        best, best_hits = ",", -1
        for delimiter in DELIMITERS:
            try:
                cells = next(csv.reader([header_line], delimiter=delimiter), [])
            except csv.Error:
                continue
            hits = sum(1 for cell in cells if self.layout.resolve(cell))
            if hits > best_hits:
                best, best_hits = delimiter, hits
        return best

    def _map_header(self, header: list[str]) -> list[tuple[int, str]]:
        index: list[tuple[int, str]] = []
        problems: list[Issue] = []
        for i, raw in enumerate(header):
            title = raw.replace("\ufeff", "").strip()
            name = self.layout.resolve(title)
            if name is None:
                if title:
                    self.on_warning(
                        Issue(
                            row=1,
                            column=title,
                            reason="unknown column, ignored",
                            severity="warning",
                        )
                    )
                continue
            if name in self.columns:
                problems.append(
                    Issue(
                        row=1,
                        column=title,
                        reason=f"is the same column as {self.columns[name]!r} ({name})",
                    )
                )
                continue
            self.columns[name] = title
            index.append((i, name))
        missing = self.layout.missing(set(self.columns))
        if missing:
            problems.append(
                Issue(row=1, column=", ".join(missing), reason="missing required columns")
            )
        if problems:
            raise FileRefused(
                "; ".join(
                    f"{p.reason}: {p.column}"
                    if p.reason.startswith("missing")
                    else f"column {p.column!r} {p.reason}"
                    for p in problems
                ),
                problems,
            )
        return index

    # -- JSON Lines ------------------------------------------------------------------------

    def _jsonl(self, binary: io.BufferedReader) -> Iterator[Record]:
        stream = io.TextIOWrapper(binary, encoding=self.encoding)
        warned: set[str] = set()
        for row, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Record(row, {}, Issue(row=row, reason=f"not valid JSON: {exc.msg}"))
                continue
            if not isinstance(obj, dict):
                yield Record(row, {}, Issue(row=row, reason="expected a JSON object per line"))
                continue
            values: dict[str, Any] = {}
            for key, value in obj.items():
                name = self.layout.resolve(str(key))
                if name is None:
                    if key not in warned:
                        warned.add(key)
                        self.on_warning(
                            Issue(
                                row=row,
                                column=str(key),
                                reason="unknown field, ignored",
                                severity="warning",
                            )
                        )
                    continue
                self.columns.setdefault(name, str(key))
                values[name] = value
            yield Record(row, values)

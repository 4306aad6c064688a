"""Which text encoding a file is in, decided before a single row is imported.

Order of checks: a byte-order mark; else strict UTF-8 over the whole file; else GB18030 (what
Chinese ERPs export) when the whole file decodes cleanly; else the file is refused with a
message that names the first undecodable byte. A forced encoding (`--encoding`) is still
checked strictly over the whole file. The check streams the file in 1 MiB chunks through
incremental decoders, so memory stays flat however large the file is.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class EncodingProblem(ValueError):
    """The file cannot be read as text in any accepted encoding."""


@dataclass(frozen=True)
class DecodeFailure:
    encoding: str
    offset: int
    line: int
    byte: int | None

    def describe(self) -> str:
        where = f"line {self.line}, byte offset {self.offset}"
        if self.byte is None:
            return (
                f"not valid {self.encoding}: the file ends in the middle of a character ({where})"
            )
        return f"not valid {self.encoding}: byte 0x{self.byte:02x} at {where}"


def detect_encoding(
    path: Path,
    forced: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Return the Python codec name to read `path` with, or raise EncodingProblem."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if forced:
        try:
            name = codecs.lookup(forced).name
        except LookupError:
            raise EncodingProblem(f"unknown encoding {forced!r}") from None
        failure = _first_failure(path, name, progress)
        if failure:
            raise EncodingProblem(
                f"the file is {failure.describe()}, although --encoding {forced} was given"
            )
        return "utf-8-sig" if name == "utf-8" and head.startswith(codecs.BOM_UTF8) else name
    for bom, name in _BOMS:
        if head.startswith(bom):
            if name != "utf-8-sig":
                raise EncodingProblem(
                    f"the file is {name.upper()} (byte-order mark found); save it as UTF-8 "
                    f"or pass --encoding {name}"
                )
            failure = _first_failure(path, name, progress)
            if failure:
                raise EncodingProblem(
                    f"the file starts with a UTF-8 byte-order mark but is {failure.describe()}"
                )
            return name
    utf8 = _first_failure(path, "utf-8", progress)
    if utf8 is None:
        return "utf-8"
    gb = _first_failure(path, "gb18030", progress)
    if gb is None:
        return "gb18030"
    raise EncodingProblem(
        f"cannot tell the file's encoding: it is {utf8.describe()}, and {gb.describe()}. "
        "Save it as UTF-8 (or GB18030), or pass --encoding with its real encoding"
    )


def _first_failure(
    path: Path, encoding: str, progress: Callable[[int], None] | None
) -> DecodeFailure | None:
    """Decode the whole file incrementally; where it first fails, or None."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    lines = 1
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            final = not chunk
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                # exc.start is relative to the bytes the decoder saw in this call, which
                # include up to a few bytes buffered from the previous chunk.
                buffered = max(len(exc.object) - len(chunk), 0)
                position = exc.start - buffered
                is_truncated = final or "unexpected end" in exc.reason
                byte = None if is_truncated else exc.object[exc.start]
                return DecodeFailure(
                    encoding.upper().replace("_", "-"),
                    offset + position,
                    lines + chunk.count(b"\n", 0, max(position, 0)),
                    byte,
                )
            if final:
                return None
            offset += len(chunk)
            lines += chunk.count(b"\n")
            if progress:
                progress(offset)

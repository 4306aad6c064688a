"""Splitting articles into retrievable chunks: by headings first, then by size with overlap."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_RE = re.compile(r"(?<=[。！？；!?;])|(?<=[.](?=\s))")


@dataclass(frozen=True)
class Chunk:
    """A piece of an article: `heading` is the section it came from."""

    position: int
    heading: str
    text: str


def split_sections(body: str) -> list[tuple[str, str]]:
    """(heading, text) per Markdown section; text before the first heading has heading ''."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_code = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING_RE.match(line)
        if match:
            sections.append((match.group(2).strip(), []))
        else:
            sections[-1][1].append(line)
    out: list[tuple[str, str]] = []
    for heading, lines in sections:
        text = "\n".join(lines).strip()
        if text:
            out.append((heading, text))
    return out


@dataclass(frozen=True)
class Section:
    """A heading with everything below it up to the next heading of the same or a higher
    level (its subsections included), as Markdown without the heading line."""

    heading: str
    level: int
    markdown: str


def outline(body: str) -> list[Section]:
    """Every headed section of a Markdown body (nested sections appear inside their parent
    and on their own)."""
    lines = body.splitlines()
    heads: list[tuple[int, int, str]] = []  # (line number, level, heading)
    in_code = False
    for number, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING_RE.match(line)
        if match:
            heads.append((number, len(match.group(1)), match.group(2).strip()))
    sections = []
    for i, (number, level, heading) in enumerate(heads):
        end = len(lines)
        for later, later_level, _ in heads[i + 1 :]:
            if later_level <= level:
                end = later
                break
        sections.append(Section(heading, level, "\n".join(lines[number + 1 : end]).strip()))
    return sections


def solution_sections(body: str, headings: list[str]) -> list[Section]:
    """The sections named by an article's front matter `solution:` list, in that order.

    Raises ValueError naming a heading that is not in the article (or is empty)."""
    by_heading: dict[str, Section] = {}
    for section in outline(body):
        by_heading.setdefault(_norm(section.heading), section)
    out = []
    for heading in headings:
        found = by_heading.get(_norm(heading))
        if found is None:
            raise ValueError(f"no heading {heading!r} in the article")
        if not found.markdown:
            raise ValueError(f"the section {heading!r} is empty")
        out.append(found)
    return out


def _norm(heading: str) -> str:
    return " ".join(heading.split()).casefold()


def _pieces(text: str, size: int) -> list[str]:
    """Split text into units no longer than `size`: paragraphs, then sentences, then chars."""
    units: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= size:
            units.append(para)
            continue
        for sentence in _SENTENCE_RE.split(para):
            sentence = sentence.strip()
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                units.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                units.append(sentence)
    return units


def _tail(text: str, overlap: int) -> str:
    """The last ~`overlap` characters of text, starting at a word or sentence boundary."""
    if overlap <= 0 or len(text) <= overlap:
        return text if overlap > 0 else ""
    tail = text[-overlap:]
    for boundary in ("\n", "。", ". ", " "):
        idx = tail.find(boundary)
        if 0 <= idx < overlap // 2:
            return tail[idx + len(boundary) :].strip()
    return tail.strip()


def split_text(text: str, size: int, overlap: int) -> list[str]:
    """Pack paragraphs/sentences into pieces of at most `size` chars, overlapping by `overlap`."""
    size = max(size, 50)
    overlap = max(0, min(overlap, size // 2))
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for unit in _pieces(text, size - overlap if overlap else size):
        candidate = f"{current}\n\n{unit}" if current else unit
        if len(candidate) <= size or not current:
            current = candidate
            continue
        chunks.append(current)
        tail = _tail(current, overlap)
        current = f"{tail}\n\n{unit}" if tail and len(tail) + len(unit) + 2 <= size else unit
    if current:
        chunks.append(current)
    return chunks


def chunk_article(body: str, *, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of an article body: one or more per heading section."""
    chunks: list[Chunk] = []
    for heading, text in split_sections(body):
        for piece in split_text(text, chunk_size, chunk_overlap):
            chunks.append(Chunk(position=len(chunks), heading=heading, text=piece))
    return chunks


def embedding_text(title: str, heading: str, text: str) -> str:
    """What is embedded and indexed for a chunk: title and heading give it context."""
    parts = [title.strip()]
    if heading and heading.strip() != title.strip():
        parts.append(heading.strip())
    parts.append(text.strip())
    return "\n".join(p for p in parts if p)

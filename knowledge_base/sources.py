"""Reading source files into articles: Markdown (YAML front matter), HTML, plain text, PDF.

Every problem with a file is a `SourceError` with a reason a person can act on; ingestion
reports it next to the file name and skips the file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.chunking import solution_sections
from knowledge_base.text import detect_language

LANGUAGES = ("zh", "en")
SUPPORTED_SUFFIXES = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".txt": "txt",
    ".pdf": "pdf",
}
# Documentation next to the articles, not articles.
IGNORED_NAMES = {"readme.md", "readme.txt", "readme"}


class SourceError(ValueError):
    """A source file that cannot be ingested; the message is the reason."""


@dataclass
class SourceArticle:
    """An article read from one file, before chunking."""

    article_id: str
    title: str
    language: str
    body: str  # Markdown-ish text: "#"-headings separate sections
    source_path: str  # relative to the ingested directory, "/"-separated
    file_format: str
    content_hash: str
    categories: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    source_url: str | None = None
    translation_of: str | None = None
    # The sections that say what to do (front matter `solution:`): what the bot shows.
    solution: list[dict[str, str]] = field(default_factory=list)


def is_candidate(path: Path) -> bool:
    """Files that ingestion looks at (hidden files and README files are not articles)."""
    return not path.name.startswith(".") and path.name.lower() not in IGNORED_NAMES


def read_source(path: Path, root: Path, *, max_bytes: int) -> SourceArticle:
    """Read and validate one file; raise `SourceError` with the reason when it is unusable."""
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(f"unsupported file type '{path.suffix or path.name}'")
    size = path.stat().st_size
    if size == 0:
        raise SourceError("empty file")
    if max_bytes and size > max_bytes:
        raise SourceError(f"file too large ({size:,} bytes; limit kb.max_file_bytes={max_bytes:,})")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    rel = path.relative_to(root).as_posix()
    default_id = _default_id(rel)
    if fmt == "pdf":
        title, body = _read_pdf(raw)
        meta: dict[str, Any] = {}
    else:
        text = _decode_text(raw)
        if fmt == "md":
            meta, body = _split_front_matter(text)
            title = _first_heading(body) or ""
        elif fmt == "html":
            meta, title, body = _read_html(text)
        else:
            meta, title, body = {}, _first_line(text), text
    if not body.strip():
        raise SourceError("empty file (no text)")
    return _build(meta, title, body, rel, fmt, digest, default_id)


def _build(
    meta: dict[str, Any],
    title: str,
    body: str,
    rel: str,
    fmt: str,
    digest: str,
    default_id: str,
) -> SourceArticle:
    article_id = _str_field(meta, "id") or default_id
    if not re.fullmatch(r"[\w.\-/]{1,200}", article_id):
        raise SourceError(f"invalid id {article_id!r} (letters, digits, '.', '-', '_' only)")
    language = _str_field(meta, "language") or _str_field(meta, "lang")
    if language:
        language = language.lower()
        if language not in LANGUAGES:
            raise SourceError(f"unknown language {language!r} (only zh and en are supported)")
    else:
        detected = detect_language(body)
        if detected is None:
            raise SourceError("unknown language: the text is neither Chinese nor English")
        language = detected
    title = _str_field(meta, "title") or title or Path(rel).stem
    categories = _list_field(meta, "categories")
    from crm_core.catalog.categories import CATEGORY_KEYS

    unknown = [c for c in categories if c not in CATEGORY_KEYS]
    if unknown:
        raise SourceError(
            f"unknown product categories {unknown} (use keys from crm_core/catalog/categories.py)"
        )
    solution = []
    try:
        for section in solution_sections(body, _list_field(meta, "solution", split=False)):
            solution.append({"heading": section.heading, "markdown": section.markdown})
    except ValueError as exc:
        raise SourceError(f"front matter field 'solution': {exc}") from None
    return SourceArticle(
        article_id=article_id,
        title=title.strip()[:500],
        language=language,
        body=body,
        source_path=rel,
        file_format=fmt,
        content_hash=digest,
        categories=categories,
        tags=_list_field(meta, "tags"),
        source_url=_str_field(meta, "source_url") or _str_field(meta, "url") or None,
        translation_of=_str_field(meta, "translation_of") or None,
        solution=solution,
    )


def _default_id(rel: str) -> str:
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    return re.sub(r"[^\w.\-]+", "-", stem.replace("/", "-")).strip("-") or "article"


def _str_field(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise SourceError(f"front matter field '{key}' must be text, not {type(value).__name__}")
    return str(value).strip()


def _list_field(meta: dict[str, Any], key: str, *, split: bool = True) -> list[str]:
    value = meta.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v] if split else [value]
    if not isinstance(value, list):
        raise SourceError(f"front matter field '{key}' must be a list")
    return [str(v).strip() for v in value if str(v).strip()]


def _decode_text(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise SourceError("binary file (contains NUL bytes)")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SourceError("binary file (not UTF-8 or GB18030 text)")
    sample = text[:20000]
    bad = sum(1 for c in sample if (ord(c) < 32 and c not in "\n\r\t\f") or c == "\ufffd")
    if sample and bad / len(sample) > 0.01:
        raise SourceError("binary file (control characters)")
    return text


_FRONT_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def _split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        return {}, text
    match = _FRONT_RE.match(text)
    if match is None:
        raise SourceError("broken front matter: no closing '---' line")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid YAML"
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise SourceError(f"broken front matter: {first}{where}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise SourceError("broken front matter: expected 'key: value' lines")
    return meta, text[match.end() :]


def _first_heading(body: str) -> str | None:
    match = re.search(r"^#{1,6}\s+(.+)$", body, re.MULTILINE)
    return match.group(1).strip() if match else None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _read_html(text: str) -> tuple[dict[str, Any], str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    meta: dict[str, Any] = {}
    html_tag = soup.find("html")
    lang = html_tag.get("lang") if html_tag is not None else None
    if isinstance(lang, str) and lang.strip():
        code = lang.strip().lower().split("-")[0]
        meta["language"] = code
    for tag in soup.find_all("meta"):
        name = str(tag.get("name") or tag.get("property") or "").lower().removeprefix("kb:")
        content = tag.get("content")
        if name in {"id", "categories", "tags", "translation_of", "language"} and content:
            meta[name] = str(content)
    canonical = soup.find("link", rel="canonical")
    if canonical is not None and canonical.get("href"):
        meta["source_url"] = str(canonical.get("href"))
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag is not None else ""
    for tag in soup(["script", "style", "noscript", "head"]):
        tag.decompose()
    lines: list[str] = []
    root = soup.body or soup
    for el in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td"]):
        if el.find_parent(["p", "li", "pre", "td"]) is not None:
            continue
        content = el.get_text(" ", strip=True)
        if not content:
            continue
        if el.name and el.name[0] == "h" and el.name[1:].isdigit():
            lines.append(f"\n{'#' * int(el.name[1:])} {content}\n")
            title = title or content
        elif el.name == "li":
            lines.append(f"- {content}")
        else:
            lines.append(content + "\n")
    body = "\n".join(lines).strip()
    if not body:
        body = root.get_text("\n", strip=True)
    return meta, title, body


def _read_pdf(raw: bytes) -> tuple[str, str]:
    if not raw.startswith(b"%PDF"):
        raise SourceError("not a PDF file (missing %PDF header)")
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"unreadable PDF: {exc}") from None
    body = "\n\n".join(p.strip() for p in pages if p.strip())
    if not body.strip():
        raise SourceError("empty file (the PDF has no extractable text; scanned?)")
    return title or _first_line(body), body

"""Input hygiene for customer messages before any model sees them.

Telegram delivers anything: empty strings, 10,000-character pastes, emoji-only replies,
control characters, lone surrogates, full-width ASCII typed on a Chinese keyboard. The
parsers never raise on such input; they call :func:`prepare_text` and either classify the
cleaned text or, when nothing classifiable is left, answer ``out_of_scope`` directly.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

DEFAULT_MAX_CHARS = 1000
"""Messages are cut to this many characters for the models (the bot keeps the original)."""

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_RE = re.compile(r"[A-Za-z]")
_WS_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class PreparedText:
    """A message cleaned for the models, with what was done to it."""

    text: str
    """Normalised (NFKC), control characters removed, whitespace collapsed, truncated."""
    original_length: int
    truncated: bool
    has_content: bool
    """False when no letter or digit is left (empty, whitespace, emoji or punctuation only)."""
    notes: tuple[str, ...] = field(default_factory=tuple)


def _clean_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cc":  # C0/C1 controls; \t \n \r become spaces like other whitespace
        return " "
    if category in ("Cs", "Co", "Cn"):  # lone surrogates, private use, unassigned
        return ""
    if category == "Cf":  # zero-width and bidi controls
        return ""
    return ch


def prepare_text(raw: str | None, max_chars: int = DEFAULT_MAX_CHARS) -> PreparedText:
    """Clean `raw` for classification; never raises.

    NFKC folds full-width forms (``ＳＯ－１００２３４５６`` → ``SO-10023456``), control and
    format characters are dropped, whitespace is collapsed, and text longer than
    `max_chars` is cut at a word boundary when one is near (noted in ``notes``).
    """
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raw = str(raw)
    original_length = len(raw)
    notes: list[str] = []
    # Work on a bounded prefix: normalising a megabyte only to throw it away is wasted time.
    work = raw[: max_chars * 4 + 64]
    work = unicodedata.normalize("NFKC", work)
    cleaned = "".join(_clean_char(ch) for ch in work)
    if any(unicodedata.category(c)[0] == "C" and c not in "\t\n\r" for c in work):
        notes.append("control characters removed")
    cleaned = _WS_RE.sub(" ", cleaned).strip()
    truncated = False
    if len(cleaned) > max_chars or original_length > len(work):
        cut = cleaned[:max_chars]
        space = cut.rfind(" ")
        if space > max_chars * 0.8:
            cut = cut[:space]
        cleaned = cut.rstrip()
        truncated = True
        notes.append(f"truncated from {original_length} to {len(cleaned)} characters for the model")
    has_content = any(unicodedata.category(c)[0] in ("L", "N") for c in cleaned)
    if not cleaned:
        notes.append("empty message")
    elif not has_content:
        notes.append("no letters or digits to classify")
    return PreparedText(
        text=cleaned,
        original_length=original_length,
        truncated=truncated,
        has_content=has_content,
        notes=tuple(notes),
    )


def detect_language(text: str) -> str:
    """``zh`` when the text contains CJK ideographs, else ``en`` (the two product languages)."""
    return "zh" if _CJK_RE.search(text) else "en"


def has_latin(text: str) -> bool:
    """Whether `text` contains ASCII letters (used to describe mixed-script input)."""
    return bool(_LATIN_RE.search(text))

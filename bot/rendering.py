"""The one renderer of bot output: Telegram HTML (parse mode HTML), safe and phone-sized.

- `Html` marks text that is already Telegram HTML (locale templates are trusted HTML; what
  the `Translator` returns is `Html`). `escape()` turns anything else into safe HTML; the
  Translator escapes every parameter that is not `Html`, so customer, agent and catalog text
  can never inject markup or break parsing.
- `markdown_blocks()` renders knowledge-base Markdown into HTML blocks: headings → bold
  lines, lists → "•"/"1." lines, **bold**, *italic*, `code`, [links](url), code fences →
  <pre>, tables → a <pre> block when it fits TABLE_PRE_WIDTH columns, else "label: value"
  lines. Nothing of the Markdown syntax stays visible.
- `fit_blocks()` keeps whole blocks within a visible-length budget (Telegram counts the text
  *after* entity parsing, in UTF-16 units) and says whether it cut; `truncate_html()` is the
  last-resort cut of any HTML message at a word boundary with its tags closed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.telegram_html import TelegramHtmlError, parse_html, utf16_len

# Telegram: 1-4096 characters after entity parsing.
MESSAGE_LIMIT = 4096
# The widest <pre> table that reads on a phone without wrapping (≈ 34 monospace columns).
TABLE_PRE_WIDTH = 34


class Html(str):
    """Text that is valid Telegram HTML already (never escaped again).

    Concatenating and joining give plain `str` (by convention still HTML: what `Flow.say`
    sends); wrap such a result in `Html(...)` before passing it as a `t()` parameter, or use
    `join_html`, or it is escaped a second time (the fake Bot API catches that in tests)."""

    __slots__ = ()

    def join_html(self, parts: Iterable[object]) -> Html:
        """`self` between `parts`, escaping the parts that are not `Html`."""
        return Html(str.join(self, (escape(p) for p in parts)))


_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_ESCAPE_RE = re.compile(r'[&<>"]')


def escape(value: object) -> Html:
    """`value` as Telegram HTML: `Html` stays as it is, anything else is escaped."""
    if isinstance(value, Html):
        return value
    return Html(_ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], str(value)))


def format_html(template: str, params: Mapping[str, object]) -> Html:
    """A trusted HTML template with escaped parameters (numbers keep their format specs)."""
    safe = {
        k: v if isinstance(v, int | float) and not isinstance(v, bool) else escape(v)
        for k, v in params.items()
    }
    return Html(template.format(**safe))


def bold(text: object) -> Html:
    return Html(f"<b>{escape(text)}</b>")


def link(text: object, url: str) -> Html:
    return Html(f'<a href="{escape(url)}">{escape(text)}</a>')


def visible_length(html_text: str) -> int:
    """How long Telegram counts this HTML message (UTF-16 units of the visible text)."""
    return parse_html(html_text).length


# -- Markdown → HTML blocks ------------------------------------------------------------------

_INLINE_RE = re.compile(
    r"(?P<code>`+)(?P<code_text>.+?)(?P=code)"
    r"|!\[(?P<img_alt>[^\]]*)\]\((?P<img_url>[^)\s]+)(?:\s+\"[^\"]*\")?\)"
    r"|\[(?P<link_text>[^\]]+)\]\((?P<link_url>[^)\s]+)(?:\s+\"[^\"]*\")?\)"
    r"|<(?P<auto>https?://[^>\s]+)>"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|__(?P<bold2>.+?)__"
    r"|~~(?P<strike>.+?)~~"
    r"|(?<![\w*])\*(?P<ital>[^*\s](?:[^*]*[^*\s])?)\*(?![\w*])"
    r"|(?<![\w])_(?P<ital2>[^_\s](?:[^_]*[^_\s])?)_(?![\w])"
    r"|\\(?P<esc>[\\`*_{}\[\]()#+\-.!|>~])"
)


def inline_html(text: str) -> Html:
    """One line/paragraph of Markdown inline syntax as Telegram HTML."""
    out: list[str] = []
    pos = 0
    for m in _INLINE_RE.finditer(text):
        out.append(escape(text[pos : m.start()]))
        pos = m.end()
        g = m.groupdict()
        if g["code"]:
            out.append(f"<code>{escape(g['code_text'].strip())}</code>")
        elif g["img_url"] is not None:
            out.append(link(g["img_alt"] or g["img_url"], g["img_url"]))
        elif g["link_text"] is not None:
            label = inline_html(g["link_text"])
            out.append(f'<a href="{escape(g["link_url"])}">{label}</a>')
        elif g["auto"]:
            out.append(escape(g["auto"]))
        elif g["bold"] is not None or g["bold2"] is not None:
            out.append(f"<b>{inline_html(g['bold'] or g['bold2'])}</b>")
        elif g["strike"] is not None:
            out.append(f"<s>{inline_html(g['strike'])}</s>")
        elif g["ital"] is not None or g["ital2"] is not None:
            out.append(f"<i>{inline_html(g['ital'] or g['ital2'])}</i>")
        elif g["esc"]:
            out.append(escape(g["esc"]))
    out.append(escape(text[pos:]))
    return Html("".join(out))


def inline_plain(text: str) -> str:
    """Markdown inline syntax reduced to the text a person reads (for <pre> tables)."""
    return parse_html(inline_html(text)).text


_HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_RE = re.compile(r"^(\s*)([-*+]|\d{1,3}[.)])\s+(.*)$")
_FENCE_RE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_RULE_RE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


@dataclass(frozen=True)
class Block:
    """One rendered block (paragraph, list, table, ...); `kind` says which."""

    kind: str
    html: Html


def markdown_blocks(markdown: str) -> list[Block]:
    """Render Markdown as Telegram HTML blocks (join them with a blank line)."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or _RULE_RE.match(line):
            i += 1
            continue
        fence = _FENCE_RE.match(line)
        if fence:
            marker, language = fence.group(1), fence.group(2)
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end)
            code = escape("\n".join(body).strip("\n"))
            if language:
                blocks.append(
                    Block(
                        "code", Html(f'<pre><code class="language-{language}">{code}</code></pre>')
                    )
                )
            else:
                blocks.append(Block("code", Html(f"<pre>{code}</pre>")))
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            blocks.append(Block("heading", Html(f"<b>{inline_html(heading.group(2))}</b>")))
            i += 1
            continue
        if line.lstrip().startswith("|"):
            rows: list[str] = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            blocks.append(Block("table", table_html(rows)))
            continue
        if line.lstrip().startswith(">"):
            quoted: list[str] = []
            while i < len(lines) and lines[i].lstrip().startswith(">"):
                quoted.append(lines[i].lstrip()[1:].strip())
                i += 1
            inner = "\n".join(inline_html(q) for q in quoted if q)
            blocks.append(Block("quote", Html(f"<blockquote>{inner}</blockquote>")))
            continue
        if _LIST_RE.match(line):
            items: list[tuple[int, str, str]] = []  # (level, marker, text)
            while i < len(lines) and lines[i].strip():
                item = _LIST_RE.match(lines[i])
                if item:
                    indent = len(item.group(1).replace("\t", "    "))
                    items.append((indent, item.group(2), item.group(3).strip()))
                elif items and not _HEADING_RE.match(lines[i]) and not _FENCE_RE.match(lines[i]):
                    level, marker, text = items[-1]
                    items[-1] = (level, marker, f"{text} {lines[i].strip()}")
                else:
                    break
                i += 1
            blocks.append(Block("list", _list_html(items)))
            continue
        paragraph: list[str] = []
        while i < len(lines) and lines[i].strip():
            if paragraph and (
                _HEADING_RE.match(lines[i])
                or _LIST_RE.match(lines[i])
                or _FENCE_RE.match(lines[i])
                or lines[i].lstrip().startswith(("|", ">"))
            ):
                break
            paragraph.append(lines[i].strip())
            i += 1
        blocks.append(Block("paragraph", inline_html(_join_lines(paragraph))))
    return blocks


def _join_lines(lines: list[str]) -> str:
    """Soft line breaks of a paragraph: a space between words, nothing between CJK text."""
    out = ""
    for line in lines:
        if out and not (_is_wide(out[-1]) and _is_wide(line[0])):
            out += " "
        out += line
    return out


def _list_html(items: list[tuple[int, str, str]]) -> Html:
    levels = sorted({indent for indent, _, _ in items})
    lines = []
    for indent, marker, text in items:
        depth = min(levels.index(indent), 2)
        bullet = marker if marker[0].isdigit() else ("•", "◦", "▪")[depth]
        if marker[0].isdigit() and marker.endswith(")"):
            bullet = marker[:-1] + "."
        lines.append(f"{'   ' * depth}{bullet} {inline_html(text)}")
    return Html("\n".join(lines))


def _cells(row: str) -> list[str]:
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def display_width(text: str) -> int:
    """Monospace columns of `text` (CJK characters take two)."""
    return sum(2 if _is_wide(c) else 0 if unicodedata.combining(c) else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def _colon(label: str) -> str:
    """ "：" after a Chinese label, ": " after any other."""
    label = inline_plain(label).rstrip()
    return "：" if label and _is_wide(label[-1]) else ": "


def table_html(rows: list[str]) -> Html:
    """A Markdown table for a phone: a <pre> block when every line fits TABLE_PRE_WIDTH
    monospace columns, else one "label: value" group per row (the first cell is the label)."""
    parsed = [_cells(r) for r in rows if not _TABLE_SEP_RE.match(r)]
    parsed = [r for r in parsed if any(c for c in r)]
    if not parsed:
        return Html("")
    header, body = parsed[0], parsed[1:]
    ncols = max(len(r) for r in parsed)
    header = header + [""] * (ncols - len(header))
    body = [r + [""] * (ncols - len(r)) for r in body]
    plain = [[inline_plain(c) for c in r] for r in [header, *body]]
    widths = [max(display_width(r[j]) for r in plain) for j in range(ncols)]
    if sum(widths) + 2 * (ncols - 1) <= TABLE_PRE_WIDTH:
        lines = ["  ".join(_pad(c, widths[j]) for j, c in enumerate(r)).rstrip() for r in plain]
        lines.insert(1, "  ".join("─" * w for w in widths))
        return Html(f"<pre>{escape(chr(10).join(lines))}</pre>")
    if not body:  # a header without rows: just its cells
        return Html(" · ".join(inline_html(c) for c in header if c))
    if ncols == 2:
        lines = [f"<i>{inline_html(header[0])}{_colon(header[0])}{inline_html(header[1])}</i>"]
        lines += [f"• <b>{inline_html(r[0])}</b>{_colon(r[0])}{inline_html(r[1])}" for r in body]
        return Html("\n".join(lines))
    groups = []
    for r in body:
        group = [f"<b>{inline_html(r[0])}</b>"]
        group += [
            f"{inline_html(header[j]) if header[j] else '—'}{_colon(header[j])}{inline_html(r[j])}"
            for j in range(1, ncols)
            if r[j]
        ]
        groups.append("\n".join(group))
    return Html("\n\n".join(groups))


def markdown_html(markdown: str) -> Html:
    """A whole Markdown text as one Telegram HTML text."""
    return join_blocks(markdown_blocks(markdown))


def join_blocks(blocks: Iterable[Block | Html]) -> Html:
    parts = [b.html if isinstance(b, Block) else b for b in blocks]
    return Html("\n\n".join(p for p in parts if p))


# -- length ----------------------------------------------------------------------------------


def fit_blocks(blocks: list[Block], budget: int) -> tuple[list[Block], bool]:
    """The leading blocks whose joined visible length stays within `budget`, and whether
    some were left out. A first block that alone is too long is cut at a word boundary;
    a heading is never left dangling at the end."""
    kept: list[Block] = []
    used = 0
    for block in blocks:
        length = visible_length(block.html) + (2 if kept else 0)
        if used + length <= budget:
            kept.append(block)
            used += length
            continue
        room = budget - used - (2 if kept else 0)
        if room >= min(200, budget // 2) and block.kind in ("paragraph", "list", "quote", "table"):
            kept.append(Block(block.kind, truncate_html(block.html, room)))
        break
    else:
        return kept, False
    while kept and kept[-1].kind == "heading":
        kept.pop()
    return kept, True


_TOKEN_RE = re.compile(r"<[^>]*>|&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);|[\s\S]")
_BREAK_CHARS = " \n\t。！？；，、.!?;,"


def truncate_html(html_text: str, limit: int, ellipsis: str = "…") -> Html:
    """`html_text` cut to at most `limit` visible UTF-16 units: at a word (or CJK sentence)
    boundary, open tags closed, `ellipsis` appended. Unchanged when it fits."""
    try:
        if visible_length(html_text) <= limit:
            return Html(html_text)
    except TelegramHtmlError:
        html_text = escape(html_text)
    budget = max(0, limit - utf16_len(ellipsis))
    out: list[str] = []
    open_tags: list[str] = []
    used = 0
    last_break: tuple[int, list[str]] | None = None  # (len(out), open tags) at a boundary
    for token in _TOKEN_RE.findall(html_text):
        if token.startswith("<") and len(token) > 1:
            name = re.match(r"</?\s*([\w-]+)", token)
            tag = name.group(1).lower() if name else ""
            if token.startswith("</"):
                if open_tags:
                    open_tags.pop()
            elif not token.endswith("/>"):
                open_tags.append(tag)
            out.append(token)
            continue
        size = 1 if token.startswith("&") else utf16_len(token)
        if used + size > budget:
            break
        char = "&" if token.startswith("&") else token
        if char in _BREAK_CHARS:
            keep = len(out) + (0 if char.isspace() else 1)
            last_break = (keep, list(open_tags))
        out.append(token)
        used += size
    else:
        return Html(html_text)
    tags = open_tags
    if last_break is not None and last_break[0] > len(out) // 2:
        out, tags = out[: last_break[0]], last_break[1]
    text = "".join(out).rstrip()
    closing = "".join(f"</{t}>" for t in reversed(tags))
    return Html(text + closing + escape(ellipsis))

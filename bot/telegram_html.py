"""Telegram's HTML parse mode, parsed the way Telegram parses it (a port of TDLib's
`parse_html`): the plain text a person sees plus its message entities.

The test doubles of the Bot API (`bot.fake_telegram`, `tests/bot/fake_bot_api_server.py`)
run every HTML message through `parse_html`, so a tag Telegram does not support, an
unclosed tag or a stray `<` fails in tests with the same 400 error Telegram returns; the
renderer uses it to measure what counts against Telegram's length limit (characters
*after* entity parsing, counted in UTF-16 code units).

Supported like Telegram: <b> <strong> <i> <em> <u> <ins> <s> <strike> <del>
<span class="tg-spoiler"> <tg-spoiler> <a href> <code> <pre> (with <code class="language-x">
inside) <blockquote> (optionally `expandable`) <tg-emoji emoji-id>; the named entities
&lt; &gt; &amp; &quot; and numeric entities (&#39; &#x27;). Any other `&...` is literal text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ERROR_PREFIX = "Bad Request: can't parse entities: "

_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_SPACE = " \t\r\n\v\f"


class TelegramHtmlError(ValueError):
    """Telegram would answer 400 with this description."""

    def __init__(self, reason: str) -> None:
        super().__init__(ERROR_PREFIX + reason)
        self.reason = reason
        self.description = ERROR_PREFIX + reason


@dataclass(frozen=True)
class ParsedMessage:
    """What Telegram makes of an HTML text: the visible text and its entities."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)

    @property
    def length(self) -> int:
        """The length Telegram checks against its limits (UTF-16 code units)."""
        return utf16_len(self.text)

    def of_type(self, kind: str) -> list[str]:
        """The visible text covered by each entity of `kind` (e.g. "bold", "text_link")."""
        units = self.text.encode("utf-16-le")
        out = []
        for e in self.entities:
            if e["type"] == kind:
                start, end = 2 * e["offset"], 2 * (e["offset"] + e["length"])
                out.append(units[start:end].decode("utf-16-le"))
        return out

    def links(self) -> list[tuple[str, str]]:
        """(visible text, url) of every text link."""
        texts = self.of_type("text_link")
        urls = [e["url"] for e in self.entities if e["type"] == "text_link"]
        return list(zip(texts, urls, strict=True))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """(character, index after the entity) when an HTML entity starts at text[i]."""
    match = _ENTITY_RE.match(text, i)
    if match is None:
        return None
    dec, hexa, name = match.groups()
    if name:
        return _NAMED[name], match.end()
    code = int(dec) if dec else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int  # UTF-16 offset in the result
    entity_index: int  # where its entity goes (entities are ordered by start)


def parse_html(text: str) -> ParsedMessage:
    """Parse `text` like Telegram's HTML parse mode; raise `TelegramHtmlError` like Telegram.

    Like Telegram, leading and trailing whitespace of the message is removed (entities are
    shifted/cut to match)."""
    out: list[str] = []
    size = 0  # UTF-16 length of the output so far
    stack: list[_Open] = []
    entities: list[dict[str, Any] | None] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded is not None:
                out.append(decoded[0])
                size += utf16_len(decoded[0])
                i = decoded[1]
                continue
        if c != "<":
            out.append(c)
            size += 2 if ord(c) > 0xFFFF else 1
            i += 1
            continue
        begin = i
        i += 1
        if i < n and text[i] != "/":
            while i < n and text[i] not in _SPACE and text[i] != ">":
                i += 1
            if i >= n:
                raise TelegramHtmlError(
                    f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                )
            tag = text[begin + 1 : i].lower()
            if tag not in _TAG_TYPES:
                raise TelegramHtmlError(
                    f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
                )
            argument = ""
            while text[i] != ">":
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n:
                    raise TelegramHtmlError(
                        f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
                    )
                if text[i] == ">":
                    break
                name_start = i
                while i < n and text[i] not in _SPACE and text[i] != "=" and text[i] != ">":
                    i += 1
                name = text[name_start:i].lower()
                if not name:
                    raise TelegramHtmlError(
                        f'Empty attribute name in the tag "{tag}" at byte offset '
                        f"{_byte_offset(text, begin)}"
                    )
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n or text[i] != "=":
                    if tag == "blockquote" and name == "expandable":
                        continue  # a boolean attribute Telegram accepts
                    raise TelegramHtmlError(
                        f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                        f"at byte offset {_byte_offset(text, begin)}"
                    )
                i += 1
                while i < n and text[i] in _SPACE:
                    i += 1
                if i >= n:
                    raise TelegramHtmlError(
                        f'Unclosed start tag "{tag}" at byte offset {_byte_offset(text, begin)}'
                    )
                if text[i] not in "'\"":
                    token_start = i
                    while i < n and (text[i].isalnum() or text[i] in ".-"):
                        i += 1
                    value = text[token_start:i].lower()
                    if i < n and text[i] not in _SPACE and text[i] != ">":
                        raise TelegramHtmlError(
                            f"Unexpected end of name token at byte offset "
                            f"{_byte_offset(text, token_start)}"
                        )
                else:
                    quote = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            decoded = _decode_entity(text, i)
                            if decoded is not None:
                                chars.append(decoded[0])
                                i = decoded[1]
                                continue
                        chars.append(text[i])
                        i += 1
                    if i < n:
                        i += 1
                    value = "".join(chars)
                if i >= n:
                    raise TelegramHtmlError(
                        f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                    )
                if tag == "a" and name == "href":
                    argument = value
                elif tag == "code" and name == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and name == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and name == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise TelegramHtmlError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset '
                    f"{_byte_offset(text, begin)}"
                )
            i += 1  # the '>'
            stack.append(_Open(tag, argument, size, len(entities)))
            entities.append(None)
            continue
        # an end tag
        if not stack:
            raise TelegramHtmlError(
                f"Unexpected end tag at byte offset {_byte_offset(text, begin)}"
            )
        i += 1
        while i < n and text[i] not in _SPACE and text[i] != ">":
            i += 1
        end_name = text[begin + 2 : i].lower()
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n or text[i] != ">":
            raise TelegramHtmlError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
        i += 1
        top = stack.pop()
        if end_name and end_name != top.tag:
            raise TelegramHtmlError(
                f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, expected "
                f'"</{top.tag}>", found "</{end_name}>"'
            )
        length = size - top.offset
        if length <= 0:
            continue
        entity = _entity(top, length, stack)
        if entity is not None:
            entities[top.entity_index] = entity
    if stack:
        raise TelegramHtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    return _strip("".join(out), [e for e in entities if e is not None])


def _entity(top: _Open, length: int, outer: list[_Open]) -> dict[str, Any] | None:
    kind = _TAG_TYPES[top.tag]
    entity: dict[str, Any] = {"type": kind, "offset": top.offset, "length": length}
    if kind == "text_link":
        if not top.argument:
            return None  # Telegram drops links without a usable URL
        entity["url"] = top.argument
    elif kind == "code" and outer and outer[-1].tag == "pre":
        # <pre><code class="language-x"> is one pre entity with a language
        if top.argument:
            outer[-1].argument = top.argument
        return None
    elif kind == "pre" and top.argument:
        entity["language"] = top.argument
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = top.argument
    return entity


def _strip(text: str, entities: list[dict[str, Any]]) -> ParsedMessage:
    """Telegram trims the message; entities keep covering the same characters."""
    stripped = text.lstrip()
    lead = utf16_len(text) - utf16_len(stripped)
    stripped = stripped.rstrip()
    total = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(0, entity["offset"] - lead)
        end = min(total, entity["offset"] + entity["length"] - lead)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    kept.sort(key=lambda e: (e["offset"], -e["length"]))
    return ParsedMessage(stripped, kept)


def visible_text(html_text: str) -> str:
    """What a person sees of an HTML message (raises `TelegramHtmlError` when invalid)."""
    return parse_html(html_text).text


def plain_or_same(text: str) -> str:
    """Text as a person sees it if it is valid Telegram HTML; else the text unchanged.

    For places Telegram shows as plain text (button labels, callback alerts) that receive
    texts rendered for HTML messages."""
    if "<" not in text and "&" not in text:
        return text
    try:
        return parse_html(text).text
    except TelegramHtmlError:
        return text

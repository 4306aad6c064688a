"""Campaign message templates: per language, with variables, checked before scheduling.

A campaign has one or more variants (A/B):

    {"label": "A", "weight": 50,
     "text": {"zh": "<b>{first_name}</b>，...", "en": "Hi <b>{first_name}</b>, ..."},
     "buttons": [{"text": {"zh": "看看兼容电源", "en": "Show me compatible PSUs"},
                  "action": "compatible:psu"},
                 {"text": {"zh": "活动详情", "en": "Details"}, "url": "https://shop.example/sale"}]}

Texts are Telegram HTML (only Telegram's tags). Variables are `{name}` (literal braces: `{{`
and `}}`); their values are HTML-escaped when filled in. `validate_variants` raises
ValidationFailed naming the variant, the language and the problem.
"""

from __future__ import annotations

import hashlib
import html
import re
import string
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from crm_core.catalog.categories import CATEGORY_KEYS
from crm_core.customers.models import LANGUAGES
from crm_core.errors import ValidationFailed

MAX_TEXT = 4096  # Telegram's limit for a message, counted after entities are parsed
MAX_BUTTON_TEXT = 64
MAX_BUTTONS = 8
MAX_VARIANTS = 5
LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")

# Variable → the longest value it can take (used to prove a text fits Telegram's limit).
VARIABLES: dict[str, int] = {
    "first_name": 64,
    "name": 200,
    "product": 200,
    "category": 32,
    "brand": 64,
    "order_number": 11,
    "serial_number": 12,
    "warranty_end": 10,
    "days_left": 4,
}

# Bot actions a button may trigger (handled by bot/routers/campaigns.py).
ACTIONS: dict[str, str] = {
    "compatible": "show the accessories that fit the customer's device (compatible:<category>)",
    "extended_warranty": "offer the extended warranty; accepting creates a lead",
    "rate": "rate the resolved ticket (rate:<1-5>)",
    "contact": "talk to a person (hands the conversation to an agent)",
}

# Telegram's HTML (https://core.telegram.org/bots/api#html-style): tag → allowed attributes.
ALLOWED_TAGS: dict[str, frozenset[str]] = {
    "b": frozenset(),
    "strong": frozenset(),
    "i": frozenset(),
    "em": frozenset(),
    "u": frozenset(),
    "ins": frozenset(),
    "s": frozenset(),
    "strike": frozenset(),
    "del": frozenset(),
    "span": frozenset({"class"}),
    "tg-spoiler": frozenset(),
    "a": frozenset({"href"}),
    "code": frozenset({"class"}),
    "pre": frozenset(),
    "blockquote": frozenset({"expandable"}),
    "tg-emoji": frozenset({"emoji-id"}),
}


class _TelegramHtml(HTMLParser):
    """Checks Telegram HTML: known tags, allowed attributes, balanced nesting; counts text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            allowed = ", ".join(f"<{t}>" for t in ALLOWED_TAGS)
            self.errors.append(f"tag <{tag}> is not allowed by Telegram (allowed: {allowed})")
            return
        for name, value in attrs:
            if name not in ALLOWED_TAGS[tag]:
                self.errors.append(f"<{tag}> may not have the attribute {name!r}")
            if tag == "a" and name == "href" and not value:
                self.errors.append("<a> needs an href")
            if tag == "span" and name == "class" and value != "tg-spoiler":
                self.errors.append('<span> is only allowed as <span class="tg-spoiler">')
        if tag == "span" and not attrs:
            self.errors.append('<span> is only allowed as <span class="tg-spoiler">')
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.errors.append(f"<{tag}/>: Telegram does not allow self-closing tags")

    def handle_endtag(self, tag: str) -> None:
        if tag not in ALLOWED_TAGS:
            return  # already reported at the start tag (or a stray close of an unknown tag)
        if not self.stack:
            self.errors.append(f"</{tag}> closes a tag that was never opened")
        elif self.stack[-1] != tag:
            self.errors.append(f"</{tag}> found where </{self.stack[-1]}> was expected")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.visible.append(data)


def check_html(text: str) -> tuple[list[str], int]:
    """(problems, visible length) of a Telegram HTML text."""
    problems: list[str] = []
    if re.search(r"<(?![A-Za-z/!])", text):
        problems.append("a bare '<' must be written as &lt;")
    if re.search(r"&(?!(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);)", text):
        problems.append("a bare '&' must be written as &amp;")
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    problems.extend(parser.errors)
    if parser.stack:
        problems.append("unclosed " + ", ".join(f"<{t}>" for t in parser.stack))
    return problems, len("".join(parser.visible))


def template_variables(template: str) -> list[str]:
    """The variable names used in a template; raises on a malformed one (e.g. `{name`)."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValidationFailed(f"braces: {exc} (write literal braces as {{{{ and }}}})") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field or spec or conversion:
            raise ValidationFailed(
                f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
                ": write variables as {name}"
            )
        names.append(field)
    return names


def validate_variants(
    variants: Any, *, languages: tuple[str, ...] | list[str] = LANGUAGES
) -> list[dict[str, Any]]:
    """Check variants (labels, weights, texts per language, variables, HTML, length, buttons).

    `languages` are the languages every variant must have (the audience's languages when
    scheduling). Returns the variants normalised (weights as ints, labels upper-cased).
    """
    if not isinstance(variants, list) or not variants:
        raise ValidationFailed("template: give at least one variant with a text per language")
    if len(variants) > MAX_VARIANTS:
        raise ValidationFailed(f"template: at most {MAX_VARIANTS} A/B variants")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, variant in enumerate(variants):
        if not isinstance(variant, dict):
            raise ValidationFailed(f"variant {i + 1}: expected an object with label, text, ...")
        label = str(variant.get("label") or chr(ord("A") + i)).upper()
        where = f"variant {label}"
        if not LABEL_RE.match(label):
            raise ValidationFailed(f"{where}: a label is 1-16 letters, digits, - or _")
        if label in seen:
            raise ValidationFailed(f"{where}: two variants have the same label")
        seen.add(label)
        weight = variant.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
            raise ValidationFailed(f"{where}: weight must be a whole number > 0, got {weight!r}")
        texts = variant.get("text")
        if isinstance(texts, str):
            raise ValidationFailed(
                f'{where}: give the text per language, e.g. {{"zh": "...", "en": "..."}}'
            )
        if not isinstance(texts, dict) or not texts:
            raise ValidationFailed(f"{where}: no text")
        for lang in texts:
            if lang not in LANGUAGES:
                raise ValidationFailed(f"{where}: unknown language {lang!r}; known: zh, en")
        for lang in languages:
            if not str(texts.get(lang) or "").strip():
                raise ValidationFailed(
                    f"{where}: no {lang} text, but the audience has customers who read {lang}"
                )
        for lang, text in texts.items():
            _check_text(str(text), f"{where} ({lang})")
        buttons = _check_buttons(variant.get("buttons") or [], where, list(texts))
        out.append({"label": label, "weight": weight, "text": dict(texts), "buttons": buttons})
    return out


def _check_text(text: str, where: str) -> None:
    if not text.strip():
        raise ValidationFailed(f"{where}: the text is empty")
    try:
        names = template_variables(text)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{where}: {exc}") from None
    for name in names:
        if name not in VARIABLES:
            known = ", ".join("{" + v + "}" for v in VARIABLES)
            raise ValidationFailed(f"{where}: unknown variable {{{name}}}; known: {known}")
    # The longest the text can become: every variable at its longest value.
    longest = text.replace("{{", "{").replace("}}", "}")
    for name in set(names):
        longest = longest.replace("{" + name + "}", "x" * VARIABLES[name])
    problems, visible = check_html(longest)
    if problems:
        raise ValidationFailed(f"{where}: bad HTML: {'; '.join(problems)}")
    if visible > MAX_TEXT:
        raise ValidationFailed(
            f"{where}: {visible} characters with the variables filled in at their longest; "
            f"Telegram allows {MAX_TEXT}"
        )


def _check_buttons(buttons: Any, where: str, languages: list[str]) -> list[dict[str, Any]]:
    if not isinstance(buttons, list):
        raise ValidationFailed(f"{where}: buttons must be a list")
    if len(buttons) > MAX_BUTTONS:
        raise ValidationFailed(f"{where}: at most {MAX_BUTTONS} buttons")
    out: list[dict[str, Any]] = []
    for n, button in enumerate(buttons, start=1):
        at = f"{where}, button {n}"
        if not isinstance(button, dict):
            raise ValidationFailed(f"{at}: expected an object with text and url or action")
        texts = button.get("text")
        if not isinstance(texts, dict):
            raise ValidationFailed(f'{at}: give the text per language, e.g. {{"en": "Details"}}')
        for lang in languages:
            label = str(texts.get(lang) or "").strip()
            if not label:
                raise ValidationFailed(f"{at}: no {lang} text")
            if len(label) > MAX_BUTTON_TEXT:
                raise ValidationFailed(f"{at} ({lang}): longer than {MAX_BUTTON_TEXT} characters")
        url, action = button.get("url"), button.get("action")
        if bool(url) == bool(action):
            raise ValidationFailed(f"{at}: give exactly one of url or action")
        if url and not re.match(r"^(https?|tg)://\S+$", str(url)):
            raise ValidationFailed(f"{at}: {url!r} is not an http(s):// or tg:// link")
        if action:
            check_action(str(action), at)
        entry: dict[str, Any] = {"text": dict(texts)}
        entry["url" if url else "action"] = str(url or action)
        out.append(entry)
    return out


def check_action(action: str, where: str = "button") -> None:
    """A bot action: `compatible:<category>`, `extended_warranty`, `rate:<1-5>`, `contact`."""
    name, _, arg = action.partition(":")
    if name not in ACTIONS:
        known = "; ".join(f"{k}: {v}" for k, v in ACTIONS.items())
        raise ValidationFailed(f"{where}: unknown bot action {action!r}; known: {known}")
    if name == "compatible" and arg not in CATEGORY_KEYS:
        raise ValidationFailed(f"{where}: compatible:<category> needs a product category key")
    if name == "rate" and arg not in {"1", "2", "3", "4", "5"}:
        raise ValidationFailed(f"{where}: rate:<score> needs a score 1-5")


def render(template: str, values: Mapping[str, str | None]) -> str:
    """Fill the variables in (HTML-escaped); a variable without a value becomes empty."""
    safe = {name: html.escape(values.get(name) or "", quote=False) for name in VARIABLES}
    return template.format(**safe)


def pick_variant(
    variants: list[dict[str, Any]], campaign_id: int, customer_id: int
) -> dict[str, Any]:
    """The customer's A/B variant: deterministic (same customer, same variant), by weight."""
    if len(variants) == 1:
        return variants[0]
    total = sum(int(v["weight"]) for v in variants)
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for variant in variants:
        point -= int(variant["weight"])
        if point < 0:
            return variant
    return variants[-1]


def first_name(name: str) -> str:
    """'Li Wei' → 'Li'; Chinese names without spaces stay whole (surname first: use it all)."""
    parts = name.split()
    return parts[0] if len(parts) > 1 else name

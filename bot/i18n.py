"""Customer-facing text in zh and en, loaded from YAML locale files (never from handler code).

Locale files live in `bot/locales/<lang>/<feature>.yml` (flat `key: text` mappings, keys unique
across features). `Translator.check()` proves that every key exists in every language with the
same placeholders; a test runs it.

Every text is Telegram HTML (the bot sends with parse mode HTML): templates are trusted and may
use <b>, <i>, <u>, <s>, <a href>, <code>, <pre>; a literal <, > or & in a template is written
&lt; &gt; &amp;. Parameters are escaped here, unless they are `bot.rendering.Html` already (the
result of another `t()` or of the renderer), so customer, agent and catalog text can never
break a message or inject markup.
"""

from __future__ import annotations

import string
from pathlib import Path

import yaml

from bot.rendering import Html, format_html

LANGUAGES = ("zh", "en")
LOCALES_DIR = Path(__file__).resolve().parent / "locales"


def pick_language(code: str | None, default: str = "en") -> str:
    """Map a Telegram `language_code` (e.g. zh-hans, zh-CN, en-US) onto zh or en."""
    if not code:
        return default
    code = code.lower()
    if code.startswith("zh"):
        return "zh"
    if code.startswith("en"):
        return "en"
    return default


class Translator:
    """Looks up texts by key and language; formats placeholders with `str.format`."""

    def __init__(self, locales_dir: Path = LOCALES_DIR) -> None:
        self._texts: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            merged: dict[str, str] = {}
            for path in sorted((locales_dir / lang).glob("*.yml")):
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                for key, value in data.items():
                    if key in merged:
                        raise ValueError(f"{path}: duplicate locale key {key!r}")
                    merged[str(key)] = str(value)
            self._texts[lang] = merged

    def __call__(self, key: str, lang: str, /, **params: object) -> Html:
        return self.t(key, lang, **params)

    def t(self, key: str, lang: str, /, **params: object) -> Html:
        """The HTML text for `key` in `lang` (en when lang is unknown), with `params` filled
        in escaped (`Html` params are inserted as they are)."""
        texts = self._texts.get(lang) or self._texts["en"]
        template = texts.get(key)
        if template is None:
            raise KeyError(f"missing locale key {key!r} ({lang})")
        return format_html(template, params) if params else Html(template)

    def template(self, key: str, lang: str) -> str:
        """The raw template of `key` (for checks)."""
        return self._texts[lang][key]

    def keys(self, lang: str) -> set[str]:
        return set(self._texts[lang])

    def check(self) -> list[str]:
        """Problems: keys missing in a language, or placeholders that differ between languages."""
        problems: list[str] = []
        all_keys = set().union(*(self.keys(lang) for lang in LANGUAGES))
        for key in sorted(all_keys):
            fields: dict[str, set[str]] = {}
            for lang in LANGUAGES:
                if key not in self._texts[lang]:
                    problems.append(f"{key}: missing in {lang}")
                    continue
                fields[lang] = {
                    name
                    for _, name, _, _ in string.Formatter().parse(self._texts[lang][key])
                    if name
                }
            if len({frozenset(v) for v in fields.values()}) > 1:
                problems.append(f"{key}: placeholders differ {fields}")
        return problems

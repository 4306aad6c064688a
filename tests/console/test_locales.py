"""Every console text exists in zh and en with the same placeholders, and every key the
templates use is defined."""

from __future__ import annotations

import re
from pathlib import Path

from app.console import CONSOLE_LOCALES
from bot.i18n import Translator

TEMPLATES = Path(__file__).resolve().parents[2] / "console" / "templates"


def test_console_locales_are_complete_in_both_languages() -> None:
    ui = Translator(CONSOLE_LOCALES)
    assert ui.check() == []
    used = {
        key
        for path in TEMPLATES.glob("*.html")
        for key in re.findall(r"\bt\('([a-z_.]+)'", path.read_text(encoding="utf-8"))
    }
    assert used and used <= ui.keys("en") and used <= ui.keys("zh")


def test_templates_have_no_inline_scripts_the_csp_would_block() -> None:
    """The Content-Security-Policy allows scripts from the app only: no inline handlers or
    inline <script> blocks, and every asset is served by the app (no CDN)."""
    for path in TEMPLATES.glob("*.html"):
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"\son[a-z]+\s*=", html), path.name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path.name
        assert "http://" not in html and "https://" not in html, path.name

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


def test_keys_completed_in_templates_exist_for_every_value() -> None:
    """Campaign states, import entities and issue severities are shown by key prefix."""
    from typing import get_args

    from crm_core.campaigns.service import TRANSITIONS
    from crm_core.importexport.schemas import Entity, Severity

    ui = Translator(CONSOLE_LOCALES)
    states = {"draft"} | {target for _, target in TRANSITIONS.values()}
    keys = (
        {f"console.campaign_state_{s}" for s in states}
        | {f"console.import_entity_{e.value}" for e in Entity}
        | {f"console.import_{s}" for s in get_args(Severity)}
    )
    assert keys <= ui.keys("en") and keys <= ui.keys("zh")

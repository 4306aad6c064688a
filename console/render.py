"""Server-side rendering: Jinja2 templates with the signed-in staff member's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from console.context import ConsoleContext
from crm_core.access.schemas import SessionInfo

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

NAV = (
    ("dashboard", "/", "console.nav_dashboard"),
    ("customers", "/customers", "console.nav_customers"),
    ("inbox", "/inbox", "console.nav_inbox"),
    ("tickets", "/tickets", "console.nav_tickets"),
    ("campaigns", "/campaigns", "console.nav_campaigns"),
    ("imports", "/admin/imports", "console.nav_imports"),
    ("staff", "/admin/staff", "console.nav_staff"),
    ("apikeys", "/admin/apikeys", "console.nav_apikeys"),
)


def render(
    request: Request,
    ctx: ConsoleContext,
    template: str,
    info: SessionInfo | None,
    *,
    status: int = 200,
    lang: str | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render `template` for the signed-in staff member (or the login page: `info` None)."""
    from console.deps import PAGE_ROLES

    language = lang or (info.language if info else ctx.settings.app.default_language)

    def t(key: str, **params: object) -> str:
        return ctx.ui.t(key, language, **params)

    root = request.scope.get("root_path", "")
    nav = []
    if info is not None:
        nav = [
            (page, root + path, t(key))
            for page, path, key in NAV
            if info.staff.role in PAGE_ROLES[page]
        ]
    html = _env.get_template(template).render(
        t=t,
        lang=language,
        root=root,
        info=info,
        staff=info.staff if info else None,
        csrf=info.csrf if info else "",
        nav=nav,
        path=request.url.path,
        # Prefixes of keys completed in templates (tests/console/test_locales checks them).
        state_key="console.campaign_state_",
        entity_key="console.import_entity_",
        severity_key="console.import_",
        **values,
    )
    return HTMLResponse(html, status_code=status)

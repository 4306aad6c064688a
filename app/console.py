"""Composition of the staff console: settings → ConsoleContext → FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from app.container import Container
from app.settings import Settings

log = logging.getLogger("console")
CONSOLE_LOCALES = Path(__file__).resolve().parent.parent / "console" / "locales"


def build_console_context(container: Container, *, bot: Any | None = None) -> Any:
    """The console's services. `bot`: an aiogram Bot to reach customers (default: built from
    settings when HWCRM_BOT__TOKEN is set; tests pass one on the fake Bot API)."""
    from app.cli_importexport import import_config
    from bot.i18n import Translator
    from console.context import ConsoleContext
    from crm_core.access.service import AccessSettings
    from crm_core.webhooks.service import WebhookSettings

    settings = container.settings
    texts = Translator()
    c = settings.console
    has_token = settings.bot.token is not None and bool(settings.bot.token.get_secret_value())
    if bot is None and has_token:
        from bot.desk import console_bot

        bot = console_bot(settings, texts, container.sessions, container.clock)
    notifier = None
    if bot is not None:
        from bot.desk import ConsoleDeskNotifier

        def notifier(crm: Any) -> Any:
            return ConsoleDeskNotifier(bot, settings, texts, crm)

    return ConsoleContext(
        settings=settings,
        sessions=container.sessions,
        clock=container.clock,
        ui=Translator(CONSOLE_LOCALES),
        texts=texts,
        access=AccessSettings(
            session_ttl_s=c.session_ttl_s,
            session_idle_s=c.session_idle_s,
            login_window_s=c.login_window_s,
            login_ip_limit=c.login_ip_limit,
            login_max_failures=c.login_max_failures,
            lockout_s=c.lockout_s,
        ),
        imports=import_config(settings),
        webhooks=WebhookSettings(
            tolerance_s=c.webhook_tolerance_s,
            max_attempts=c.webhook_max_attempts,
            timeout_s=c.webhook_timeout_s,
        ),
        notifier=notifier,
    )


class HttpxTransport:
    """Webhook POSTs over httpx."""

    def __init__(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(follow_redirects=False)

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        response = await self._client.post(url, content=body, headers=headers, timeout=timeout)
        return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()


def build_console_app(
    container: Container, *, bot: Any | None = None, deliver_webhooks: bool = True
) -> FastAPI:
    """The console app; with `deliver_webhooks`, a background task sends due webhooks."""
    from console.app import create_app
    from crm_core.webhooks.service import deliver_due

    ctx = build_console_context(container, bot=bot)
    app = create_app(ctx)
    if deliver_webhooks:

        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            transport = HttpxTransport()

            async def loop() -> None:
                while True:
                    try:
                        await deliver_due(ctx.sessions, ctx.clock, transport, ctx.webhooks)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("webhook delivery pass failed")
                    await asyncio.sleep(5)

            task = asyncio.create_task(loop(), name="webhooks")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await transport.aclose()

        app.router.lifespan_context = lifespan
    return app


def console_url(settings: Settings) -> str:
    c = settings.console
    return f"http://{c.host}:{c.port}{c.root_path}/login"

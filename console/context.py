"""What the console receives from the composition root (`app/console.py`): no globals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import Translator
from console.ratelimit import RateLimiter
from crm_core.access.service import AccessSettings
from crm_core.clock import Clock
from crm_core.importexport.schemas import ImportConfig
from crm_core.services import CrmServices
from crm_core.support.desk import DeskNotifier

if TYPE_CHECKING:
    from app.settings import Settings
    from crm_core.webhooks.service import WebhookSettings


@dataclass
class ConsoleContext:
    """The console's services, built once per process by `app.console.build_console_app`.

    notifier — builds the agent desk's notifier for one unit of work (Telegram: customer
        messages go out through the bot's sender); None when no bot is configured (the
        console then refuses actions that must reach the customer).
    """

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    ui: Translator  # the console's own texts (console/locales)
    texts: Translator  # the bot's texts (the agent desk's notices are bot locale keys)
    access: AccessSettings
    imports: ImportConfig
    webhooks: WebhookSettings
    notifier: Callable[[CrmServices], DeskNotifier] | None = None
    api_limiter: RateLimiter = field(default_factory=RateLimiter)

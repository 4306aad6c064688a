"""What the bot's handlers receive: the services of the product, built once in `app/`.

Handlers get, as aiogram workflow data:
- `deps: BotDeps` — process-wide things (settings, translator, NLU, knowledge base, clock);
- `crm: CrmServices` — the CRM services of this update's unit of work (see middlewares);
- `customer: CustomerDTO | None`, `lang: "zh" | "en"`, `t: Texts` — who is writing and how to
  talk to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import Translator
from crm_core.clock import Clock

if TYPE_CHECKING:
    from app.settings import Settings
    from knowledge_base.answer import Answer
    from nlu.schemas import ParseResult


class IntentParser(Protocol):
    """NLU as the bot sees it (Rasa with embedded fallback, or embedded only)."""

    async def parse(self, text: str) -> ParseResult: ...


class Answerer(Protocol):
    """The knowledge base as the bot sees it."""

    def answer(
        self, query: str, lang: str | None = None, category: str | None = None
    ) -> Answer: ...


@dataclass
class BotDeps:
    """Process-wide dependencies of the bot (one per process, built by the composition root)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    translator: Translator
    nlu: IntentParser
    kb: Answerer


class Texts:
    """The translator bound to one customer's language: `t("key", name=...)`."""

    def __init__(self, translator: Translator, lang: str) -> None:
        self.translator = translator
        self.lang = lang

    def __call__(self, key: str, /, **params: object) -> str:
        """Telegram HTML (parameters escaped by the Translator); at run time an `Html`, so
        passing it on as a parameter of another text does not escape it again."""
        return self.translator.t(key, self.lang, **params)

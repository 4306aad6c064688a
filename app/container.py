"""The composition root: the one place that builds engines, models and services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings, load_settings
from crm_core.clock import Clock, SystemClock
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.migrate import ensure_schema

if TYPE_CHECKING:
    from bot.deps import BotDeps


@dataclass
class Container:
    """Everything a delivery layer (CLI, bot, console, scheduler) needs, built once."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=SystemClock)
    _bot_deps: BotDeps | None = field(default=None, init=False, repr=False)

    def unit_of_work(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction: commit on success, roll back on error."""
        return unit_of_work(self.sessions)

    def bot_deps(self, *, nlu: Any | None = None, kb: Any | None = None) -> BotDeps:
        """What the bot's handlers receive (built once). The knowledge base and the NLU
        parser are created from settings but load their models and index lazily, on first
        use (or on `nlu.warm_up()`); `nlu`/`kb` replace them (tests, benchmarks)."""
        if self._bot_deps is None:
            from bot.deps import BotDeps
            from bot.i18n import Translator

            if kb is None:
                from knowledge_base.service import KnowledgeBase

                kb = KnowledgeBase.from_settings(self.settings.kb)
            if nlu is None:
                from nlu.factory import build_nlu_service

                nlu = build_nlu_service(self.settings.nlu)  # type: ignore[arg-type]
            self._bot_deps = BotDeps(
                settings=self.settings,
                sessions=self.sessions,
                clock=self.clock,
                translator=Translator(),
                nlu=nlu,
                kb=kb,
            )
        return self._bot_deps

    async def aclose(self) -> None:
        if self._bot_deps is not None:
            close = getattr(self._bot_deps.nlu, "aclose", None)
            if close is not None:
                await close()
        await self.engine.dispose()


async def build_container(
    settings: Settings | None = None, *, check_schema: bool = True, clock: Clock | None = None
) -> Container:
    """Build the container. SQLite databases are migrated on the fly; PostgreSQL must be current."""
    settings = settings or load_settings()
    if check_schema:
        await ensure_schema(settings.db.url)
    engine = create_engine(settings.db.url, echo=settings.db.echo, pool_size=settings.db.pool_size)
    return Container(
        settings=settings,
        engine=engine,
        sessions=create_session_factory(engine),
        clock=clock or SystemClock(),
    )


@asynccontextmanager
async def container_scope(
    settings: Settings | None = None, *, check_schema: bool = True
) -> AsyncIterator[Container]:
    container = await build_container(settings, check_schema=check_schema)
    try:
        yield container
    finally:
        await container.aclose()

"""The composition root: the one place that builds engines, models and services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings, load_settings
from crm_core.clock import Clock, SystemClock
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.migrate import ensure_schema


@dataclass
class Container:
    """Everything a delivery layer (CLI, bot, console, scheduler) needs, built once."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=SystemClock)

    def unit_of_work(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction: commit on success, roll back on error."""
        return unit_of_work(self.sessions)

    async def aclose(self) -> None:
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

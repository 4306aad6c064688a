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
    from crm_core.services import CrmServices


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

    def crm(self, session: AsyncSession) -> CrmServices:
        """The CRM services of one unit of work, with the campaigns settings and locale texts."""
        from bot.i18n import Translator
        from crm_core.services import CrmServices

        return CrmServices(
            session, self.clock, self.settings.crm, self.settings.campaigns, texts=Translator()
        )

    def bot_deps(self, *, nlu: Any | None = None, kb: Any | None = None) -> BotDeps:
        """What the bot's handlers receive (built once). The knowledge base and the NLU
        parser are created from settings but load their models and index lazily, on first
        use (or on `nlu.warm_up()`); `nlu`/`kb` replace them (tests, benchmarks)."""
        if self._bot_deps is None:
            from bot.deps import BotDeps
            from bot.i18n import Translator

            embedder = None
            if kb is None or nlu is None:
                embedder = serving_embedder(self.settings.kb.embedder)
            if kb is None:
                from knowledge_base.service import KnowledgeBase

                kb = KnowledgeBase.from_settings(self.settings.kb, embedder=embedder)
                if kb.english_embedder is not None:
                    kb.english_embedder = SingleThreadTorchEmbedder(kb.english_embedder)
            if nlu is None:
                from nlu.factory import build_nlu_service

                kb_model = self.settings.kb.embedder
                same_model = getattr(self.settings.nlu, "embedder", None) == kb_model
                nlu_embedder = embedder if same_model else None
                nlu = build_nlu_service(self.settings.nlu, embedder=nlu_embedder)  # type: ignore[arg-type]
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


class RecentTextsEmbedder:
    """An embedder for serving: remembers the vectors of the last `size` texts.

    The bot embeds each customer message twice with the same model (the NLU classifier,
    then the knowledge base); the second time is a dictionary look-up.
    """

    def __init__(self, inner: Any, size: int = 2048) -> None:
        import threading
        from collections import OrderedDict

        self.inner = inner
        self.size = size
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def encode(self, texts: Any, batch_size: int = 64) -> Any:
        import numpy as np

        texts = list(texts)
        with self._lock:
            found = {t: self._recent.get(t) for t in texts}
        missing = [t for t, v in found.items() if v is None]
        if missing:
            vectors = self.inner.encode(missing, batch_size)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    found[text] = vector
                    self._recent[text] = vector
                while len(self._recent) > self.size:
                    self._recent.popitem(last=False)
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if not texts:
            return self.inner.encode(texts, batch_size)
        return np.vstack([np.asarray(found[t]) for t in texts])


class SingleThreadTorchEmbedder:
    """A torch (sentence-transformers) embedder for serving: one intra-op thread.

    torch's default (a thread per core, spin-waiting) makes one short sentence cost
    ≈ 300 ms of CPU on a busy 2-core machine; with one thread it is ≈ 17 ms (measured for
    MiniLM, issue 8). A server embeds many single sentences concurrently, so threads per
    call only add overhead. Applied process-wide (`torch.set_num_threads(1)`) before the
    first encode, in the bot only (batch jobs such as ingestion keep torch's default)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._pinned = False

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def encode(self, texts: Any, batch_size: int = 64) -> Any:
        if not self._pinned:
            import torch

            torch.set_num_threads(1)
            self._pinned = True
        return self.inner.encode(texts, batch_size)


def serving_embedder(spec: str) -> Any:
    """The embedder the bot serves with: USE with one thread per call (a server handles many
    small concurrent requests; intra-op threads on a busy 2-core machine make single
    sentences ~10x slower), shared by NLU and knowledge base, remembering recent texts."""
    from knowledge_base.embedders import UseMultilingualEmbedder, get_embedder

    inner = UseMultilingualEmbedder(threads=1) if spec in ("use-multilingual", "use") else None
    return RecentTextsEmbedder(inner or get_embedder(spec))


async def build_container(
    settings: Settings | None = None, *, check_schema: bool = True, clock: Clock | None = None
) -> Container:
    """Build the container. SQLite databases are migrated on the fly; PostgreSQL must be current."""
    settings = settings or load_settings()
    if check_schema:
        await ensure_schema(settings.db.url)
    engine = create_engine(settings.db.url, echo=settings.db.echo, pool_size=settings.db.pool_size)
    sessions = create_session_factory(engine)
    clock = clock or SystemClock()
    # Ticket and handoff changes enqueue webhook deliveries in their own transaction.
    from crm_core.webhooks.service import install_outbox

    install_outbox(sessions, clock)
    return Container(settings=settings, engine=engine, sessions=sessions, clock=clock)


@asynccontextmanager
async def container_scope(
    settings: Settings | None = None, *, check_schema: bool = True
) -> AsyncIterator[Container]:
    container = await build_container(settings, check_schema=check_schema)
    try:
        yield container
    finally:
        await container.aclose()

"""Fixtures for bot scenario tests: a demo-seeded database on SQLite and PostgreSQL, whose
changes each test rolls back, and the real dispatcher wired to it."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiogram import Bot
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import User
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import KbSection, load_settings
from bot.deps import BotDeps
from bot.fake_telegram import InProcessBotAPI, SentCall
from bot.i18n import Translator
from bot.middlewares.options import RuntimeOptions
from bot.runtime import build_bot, build_dispatcher
from crm_core.clock import FixedClock
from crm_core.customers.schemas import CustomerUpdate
from crm_core.db import create_engine, unit_of_work
from crm_core.demo import DemoOptions, seed_demo
from crm_core.migrate import upgrade
from crm_core.services import CrmServices
from knowledge_base.ingest import Ingestor
from knowledge_base.service import KnowledgeBase
from nlu.embedded import EmbeddedParser
from nlu.service import NluService
from tests.bot.harness import BotHarness
from tests.conftest import PG_BASE_URL, _with_search_path

T = TypeVar("T")


def _test_cache_dir(name: str) -> Path:
    """A cache folder under var/test-cache (git-ignored; works with `-p no:cacheprovider`)."""
    path = Path(__file__).resolve().parents[2] / "var" / "test-cache" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


DEMO_TODAY = date(2026, 6, 15)
DEMO_CUSTOMERS = 60


async def _migrate_and_seed(url: str) -> None:
    await upgrade(url)
    engine = create_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with unit_of_work(sessions) as session:
        await seed_demo(session, DemoOptions(today=DEMO_TODAY, customers=DEMO_CUSTOMERS))
    await engine.dispose()


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "demo.sqlite3"
    asyncio.run(_migrate_and_seed(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def seeded_postgres() -> Iterator[str]:
    schema = f"hwcrm_bot_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        engine = create_engine(PG_BASE_URL)
        async with engine.begin() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    url = _with_search_path(PG_BASE_URL, schema)
    try:
        asyncio.run(_migrate_and_seed(url))
        yield url
    finally:
        asyncio.run(run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def demo_sessions(
    request: pytest.FixtureRequest, tmp_path: Path, seeded_sqlite: Path, seeded_postgres: str
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a demo-seeded database; everything a test commits is rolled back after it."""
    if request.param == "sqlite":
        path = tmp_path / "demo.sqlite3"
        shutil.copy(seeded_sqlite, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = seeded_postgres
    engine = create_engine(url)
    async with engine.connect() as connection:
        outer = await connection.begin()
        yield async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        await outer.rollback()
    await engine.dispose()


@pytest.fixture
def demo_clock() -> FixedClock:
    """The demo data's "now" (noon UTC on DEMO_TODAY)."""
    return FixedClock(datetime(DEMO_TODAY.year, DEMO_TODAY.month, DEMO_TODAY.day, 12, tzinfo=UTC))


@pytest.fixture
async def offline_bot() -> AsyncIterator[Bot]:
    from app.settings import load_settings
    from bot.fake_telegram import InProcessBotAPI
    from bot.runtime import build_bot

    bot = build_bot(load_settings(), session=InProcessBotAPI())
    yield bot


# -- the real NLU and knowledge base, and the scenario harness on top of them ---------------

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def real_nlu(request: pytest.FixtureRequest) -> NluService:
    """The embedded NLU (the product's default backend), trained from nlu/rasa/data.

    The trained model is kept in var/test-cache, guarded by the classifier's own
    fingerprint (data files, configuration, library versions): it is retrained only when the
    training data changes, instead of for every test session (~1 min).
    """
    model_dir = _test_cache_dir("hwcrm-nlu-embedded")
    parser = EmbeddedParser(PROJECT_ROOT / "nlu" / "rasa" / "data", model_dir)
    parser.model()
    return NluService(parser)


def _kb_build_key(settings: KbSection, articles: Path) -> str:
    """What the index depends on: every article file, the knowledge-base code, the settings."""
    digest = hashlib.sha256(settings.model_dump_json(exclude={"index_dir"}).encode())
    for folder in (articles, PROJECT_ROOT / "knowledge_base"):
        for path in sorted(
            p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ):
            digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def real_kb(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> KnowledgeBase:
    """The real knowledge base: knowledge_base/articles ingested into a temporary index
    (faiss + lexical, the configured embedder and calibration), once per session.

    Ingesting takes a minute or more on a busy 2-core machine, so the built index is also kept
    in var/test-cache under a hash of everything it depends on (article files, the
    knowledge_base package's code, the kb settings); an unchanged input reuses it.
    """
    root = tmp_path_factory.mktemp("kb")
    articles = PROJECT_ROOT / "knowledge_base" / "articles"
    settings = load_settings().kb.model_copy(update={"index_dir": root / "index"})
    cached = _test_cache_dir("hwcrm-kb-index") / _kb_build_key(settings, articles)
    if (cached / "CURRENT").is_file():
        shutil.copytree(cached, settings.index_dir)
    else:
        url = f"sqlite+aiosqlite:///{root / 'kb.sqlite3'}"

        async def build() -> None:
            await upgrade(url)
            engine = create_engine(url)
            try:
                sessions = async_sessionmaker(engine, expire_on_commit=False)
                await Ingestor.from_settings(sessions, settings).ingest(articles)
            finally:
                await engine.dispose()

        asyncio.run(build())
        staging = cached.with_name(f".{cached.name}.{uuid.uuid4().hex[:8]}")
        shutil.copytree(settings.index_dir, staging, ignore=shutil.ignore_patterns(".*lock"))
        try:
            staging.rename(cached)
        except OSError:  # another session stored the same build first
            shutil.rmtree(staging, ignore_errors=True)
    kb = KnowledgeBase.from_settings(settings)
    kb.require()
    return kb


@pytest.fixture(scope="session")
def translator() -> Translator:
    return Translator()


STAFF_CHAT_ID = -100_555_000_111
"""The staff supergroup of the scenario harness (so that handoffs really queue)."""

HarnessFactory = Callable[..., BotHarness]


@pytest.fixture
def make_harness(
    demo_sessions: async_sessionmaker[AsyncSession],
    demo_clock: FixedClock,
    real_nlu: NluService,
    real_kb: KnowledgeBase,
    translator: Translator,
) -> HarnessFactory:
    """Builds the real dispatcher (middlewares, routers, FSM in memory) on the demo database,
    Telegram in-process, with the real embedded NLU and knowledge base unless a test passes
    doubles (`nlu=`, `kb=`) to pin down one behaviour."""

    def make(*, nlu: Any = None, kb: Any = None) -> BotHarness:
        settings = load_settings()
        settings.bot.staff_chat_id = STAFF_CHAT_ID
        deps = BotDeps(
            settings=settings,
            sessions=demo_sessions,
            clock=demo_clock,
            translator=translator,
            nlu=nlu or real_nlu,
            kb=kb or real_kb,
        )
        api = InProcessBotAPI()
        bot = build_bot(settings, session=api)
        # Flow scenarios type faster than a person; anti-flood has its own tests.
        options = RuntimeOptions(throttle_messages=10_000)
        dispatcher = build_dispatcher(deps, storage=MemoryStorage(), options=options)
        return BotHarness(deps=deps, dispatcher=dispatcher, bot=bot, api=api)

    return make


@pytest.fixture
def bot_harness(make_harness: HarnessFactory) -> BotHarness:
    """The scenario harness with the real embedded NLU and the real knowledge base."""
    return make_harness()


@pytest.fixture
def crm_run(
    demo_sessions: async_sessionmaker[AsyncSession], demo_clock: FixedClock
) -> Callable[[Callable[[CrmServices], Awaitable[T]]], Awaitable[T]]:
    """Run `action(crm)` in a unit of work of its own (test setup and checks)."""
    settings = load_settings().crm

    async def run(action: Callable[[CrmServices], Awaitable[T]]) -> T:
        async with unit_of_work(demo_sessions) as session:
            return await action(CrmServices(session, demo_clock, settings))

    return run


# -- helpers of the flow scenario tests ----------------------------------------------------------

LANGS = ["zh", "en"]


@pytest.fixture
def speaker(
    crm_run: Callable[[Callable[[CrmServices], Awaitable[Any]]], Awaitable[Any]],
) -> Callable[[BotHarness, int, str], Awaitable[User]]:
    """`await speaker(h, telegram_id, lang)`: the Telegram user of a demo customer whose saved
    language is set to `lang` first (what /language does), so every flow runs in zh and en."""

    async def make(h: BotHarness, telegram_id: int, lang: str) -> User:
        async def set_language(crm: CrmServices) -> None:
            customer = await crm.customers.find_by_telegram_id(telegram_id)
            if customer is not None and customer.language != lang:
                await crm.customers.update_customer(customer.id, CustomerUpdate(language=lang))

        await crm_run(set_language)
        return h.user(telegram_id, lang)

    return make


def said(calls: list[SentCall]) -> str:
    """Everything the bot said in `calls` (texts and captions, as the person sees them: HTML
    parsed by the fake Bot API), one message per line."""
    return "\n".join(c.text for c in calls if c.text)


def links(calls: list[SentCall]) -> list[str]:
    """The URLs of the text links in what the bot said in `calls`."""
    return [e["url"] for c in calls for e in c.entities if e["type"] == "text_link"]


def button_data(calls: list[SentCall], prefix: str, *, index: int = 0) -> str:
    """The callback data of the `index`-th inline button whose data starts with `prefix`."""
    found = [data for c in calls for _, data in c.buttons() if data.startswith(prefix)]
    assert len(found) > index, f"no button {prefix!r} in {[c.buttons() for c in calls]}"
    return found[index]


def button_datas(calls: list[SentCall], prefix: str) -> list[str]:
    return [data for c in calls for _, data in c.buttons() if data.startswith(prefix)]

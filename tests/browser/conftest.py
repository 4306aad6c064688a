"""Browser tests: the real console (uvicorn on a free port, a demo-seeded SQLite database)
with the bot's fake Bot API server, driven by Playwright in Debian's headless Chromium
(`/usr/bin/chromium`, installed by `make chromium`; Playwright never downloads a browser).

One server and one browser per module; each test gets a fresh browser context (cookies).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "123456:browser-tests"

if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it first
    # In CI nothing is skipped: a missing browser is a failure, like a missing PostgreSQL.
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        raise RuntimeError("Debian chromium is missing: `make test` installs it (`make chromium`)")
    pytest.skip("Debian chromium is missing: run `make chromium`", allow_module_level=True)


@dataclass
class LiveConsole:
    """The console on http://127.0.0.1:<port>, its database and the fake Bot API."""

    url: str
    db_url: str
    api: Any  # FakeBotAPIServer (runs on the server thread's loop)
    loop: asyncio.AbstractEventLoop
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, coro_fn: Callable[[], Any]) -> Any:
        """Run a coroutine on the server's loop (database set-up and checks)."""
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(60)

    def sql(self, query: str, **params: Any) -> list[Any]:
        from crm_core.db import create_engine

        async def go() -> list[Any]:
            engine = create_engine(self.db_url)
            async with engine.connect() as conn:
                rows = list((await conn.execute(text(query), params)).all())
            await engine.dispose()
            return rows

        return list(self.run(go))

    def wait_for_message(self, chat_id: int, contains: str, timeout: float = 10.0) -> Any:
        """The fake Bot API's recorded sendMessage to `chat_id` containing `contains`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in list(self.api.calls):
                if (call.method, call.chat_id) == ("sendMessage", chat_id) and (
                    contains in call.text
                ):
                    return call
            time.sleep(0.05)
        raise AssertionError(f"no message to {chat_id} containing {contains!r}")


async def _conversation_history(session: Any, now: Any) -> None:
    """A month of conversations (the demo seed has none): some handled by the bot alone,
    some handed to an agent who answered after a few minutes. Deterministic."""
    import random
    from datetime import timedelta

    from sqlalchemy import select

    from crm_core.conversations.models import Conversation, Interaction
    from crm_core.customers.models import Customer
    from crm_core.staff.models import StaffUser

    rng = random.Random(7)
    customers = list(await session.scalars(select(Customer.id).order_by(Customer.id)))
    agents = list(await session.scalars(select(StaffUser.id).where(StaffUser.role == "agent")))
    for _ in range(240):
        started = now - timedelta(days=rng.uniform(0.5, 30), minutes=rng.randint(0, 600))
        handed = rng.random() < 0.3
        conv = Conversation(
            customer_id=rng.choice(customers),
            started_at=started,
            last_activity_at=started + timedelta(minutes=20),
            queued_at=started + timedelta(minutes=1) if handed else None,
            closed_at=started + timedelta(minutes=30) if rng.random() < 0.9 else None,
            owner="bot",
        )
        session.add(conv)
        await session.flush()
        if handed and agents:
            wait = timedelta(minutes=1 + rng.expovariate(1 / 6))
            session.add(
                Interaction(
                    conversation_id=conv.id,
                    customer_id=conv.customer_id,
                    direction="outbound",
                    text="…",
                    agent_staff_id=rng.choice(agents),
                    created_at=started + timedelta(minutes=1) + wait,
                )
            )


def _serve(db_url: str, ready: threading.Event, box: dict[str, Any]) -> None:
    import uvicorn

    from app.cli_console import uvicorn_config
    from app.console import build_console_app
    from app.container import Container
    from app.settings import load_settings
    from bot.desk import console_bot
    from bot.i18n import Translator
    from crm_core.clock import SystemClock
    from crm_core.db import create_engine, create_session_factory, unit_of_work
    from crm_core.demo import DemoOptions, seed_demo
    from crm_core.demo.logins import set_demo_passwords
    from tests.bot.fake_bot_api_server import FakeBotAPIServer

    async def main() -> None:
        clock = SystemClock()
        engine = create_engine(db_url)
        sessions = create_session_factory(engine)
        async with unit_of_work(sessions) as session:
            await seed_demo(session, DemoOptions(today=date.today(), customers=40))
            await set_demo_passwords(session, clock)
            await _conversation_history(session, clock.now())
        async with FakeBotAPIServer(TOKEN) as api:
            settings = load_settings()
            settings.db.url = db_url
            settings.app.data_dir = Path(db_url.removeprefix("sqlite+aiosqlite:///")).parent
            settings.console.port = 0
            settings.console.host = "127.0.0.1"
            settings.bot.token = SecretStr(TOKEN)
            settings.bot.api_base_url = api.base_url
            container = Container(settings=settings, engine=engine, sessions=sessions, clock=clock)
            bot = console_bot(settings, Translator(), sessions, clock)
            app = build_console_app(container, bot=bot, deliver_webhooks=False)
            config = uvicorn_config(app, settings)
            config.log_level = "warning"
            server = uvicorn.Server(config)
            box["server"], box["api"], box["loop"] = server, api, asyncio.get_running_loop()
            task = asyncio.create_task(server.serve())
            for _ in range(1200):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            box["port"] = server.servers[0].sockets[0].getsockname()[1]
            ready.set()
            await task
            await bot.session.close()
        await engine.dispose()

    try:
        asyncio.run(main())
    except BaseException as exc:  # surfaced by the fixture instead of hanging
        box["error"] = exc
        ready.set()


@pytest.fixture(scope="module")
def live_console(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[LiveConsole]:
    path = tmp_path_factory.mktemp("browser") / "hwcrm.sqlite3"
    shutil.copy(sqlite_template, path)
    db_url = f"sqlite+aiosqlite:///{path}"
    ready = threading.Event()
    box: dict[str, Any] = {}
    thread = threading.Thread(target=_serve, args=(db_url, ready, box), daemon=True)
    thread.start()
    assert ready.wait(120), "the console did not start"
    if "error" in box:
        raise box["error"]
    live = LiveConsole(f"http://127.0.0.1:{box['port']}", db_url, box["api"], box["loop"])
    yield live
    box["server"].should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_console: LiveConsole) -> Iterator[Any]:
    context = browser.new_context(base_url=live_console.url, locale="en-GB")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, login: str, password: str) -> None:
    """Sign in through the login form (the page lands on the dashboard or `next`)."""
    page.goto("/login?lang=en")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("header .me")

"""`hwcrm bot`, `hwcrm chat`, `hwcrm start` (what `make run` calls).

- `hwcrm bot`: the Telegram bot, in polling or webhook mode per `bot.mode` (needs
  HWCRM_BOT__TOKEN; refuses to start without it).
- `hwcrm chat`: the real bot in the terminal, offline, as a demo customer (and optionally an
  agent in the staff group): bot/terminal.py.
- `hwcrm start`: prepare the embedded product (database migrated, demo data when empty,
  knowledge-base index and embedded NLU model built when missing), then run the Telegram bot
  when a token is set, else print a summary and start `hwcrm chat` (interactive terminals
  only: with stdin not a TTY it exits 0 after the summary, unless `--chat`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from app.container import Container
    from app.settings import Settings


def register(cli: typer.Typer) -> None:
    """Attach `hwcrm bot`, `hwcrm chat` and `hwcrm start` to the root CLI."""
    cli.command("bot")(bot_cmd)
    cli.command("chat")(chat_cmd)
    cli.command("start")(start_cmd)


def _configure_logging(settings: Settings) -> None:
    level = getattr(logging, str(settings.app.log_level).upper(), logging.INFO)
    for name in ("bot", "aiogram", "app", "knowledge_base", "nlu", "crm_core"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("aiogram.event").setLevel(max(level, logging.WARNING))  # per-update lines


def _progress() -> Progress:
    from app.cli import err_console

    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


# -- preparing the embedded product ---------------------------------------------------------


@dataclass
class Prepared:
    """What `prepare` found or built."""

    database: str
    seeded: bool = False
    customers: int = 0
    orders: int = 0
    kb_built: bool = False
    kb_articles: int = 0
    kb_chunks: int = 0
    nlu_trained: bool = False
    nlu_intents: int = 0
    demo_logins: list[tuple[str, str, str]] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)


async def prepare(container: Container, *, quiet: bool = False) -> Prepared:
    """Demo data when the database is empty, the knowledge-base index and the embedded NLU
    model when missing (each with a progress bar). The database itself was migrated when the
    container was built (SQLite automatically; PostgreSQL must be current)."""
    from sqlalchemy import func, select

    from app.settings import redact_url
    from crm_core.customers.models import Customer
    from crm_core.demo import DemoOptions, is_empty, seed_demo
    from crm_core.orders.models import Order

    settings = container.settings
    result = Prepared(database=redact_url(settings.db.url))
    _quiet_bm25s()

    started = time.perf_counter()
    async with container.unit_of_work() as session:
        if await is_empty(session):
            options = DemoOptions(today=container.clock.now().date())
            with _progress() as bar:
                task = bar.add_task(
                    "demo data: customers, orders, tickets", total=options.customers
                )
                analytics: list[TaskID] = []

                def on_progress(stage: str, done: int, total: int) -> None:
                    if stage == "customers":
                        bar.update(task, completed=done, total=total)
                    elif not analytics:
                        analytics.append(bar.add_task("demo data: analytics", total=total))
                    else:
                        bar.update(analytics[0], completed=done, total=total)

                await seed_demo(session, options, on_progress, crm_settings=settings.crm)
            result.seeded = True
    from crm_core.demo.logins import set_demo_passwords

    async with container.unit_of_work() as session:
        result.demo_logins = await set_demo_passwords(session, container.clock)
    async with container.unit_of_work() as session:
        result.customers = int(await session.scalar(select(func.count(Customer.id))) or 0)
        result.orders = int(await session.scalar(select(func.count(Order.id))) or 0)
    result.steps["demo data"] = time.perf_counter() - started

    started = time.perf_counter()
    await _prepare_kb(container, result)
    result.steps["knowledge base"] = time.perf_counter() - started

    started = time.perf_counter()
    await _prepare_nlu(container, result, quiet=quiet)
    result.steps["NLU model"] = time.perf_counter() - started
    return result


def _quiet_bm25s() -> None:
    """bm25s sets its logger to DEBUG when imported and logs every index build."""
    import bm25s  # noqa: F401

    logging.getLogger("bm25s").setLevel(logging.WARNING)


async def _prepare_kb(container: Container, result: Prepared) -> None:
    from crm_core.db import create_session_factory
    from knowledge_base.ingest import Ingestor
    from knowledge_base.store import IndexStore

    settings = container.settings.kb
    manifest = IndexStore(settings.index_dir).current_manifest()
    if manifest is None:
        stages = {"read": "knowledge base: reading", "embed": "knowledge base: embedding"}
        stages["index"] = "knowledge base: indexing"
        stages["embed-en"] = "knowledge base: embedding (English model)"
        ingestor = Ingestor.from_settings(create_session_factory(container.engine), settings)
        with _progress() as bar:
            tasks: dict[str, TaskID] = {}

            def on_progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stages.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            await ingestor.ingest(settings.articles_dir, on_progress)
        manifest = IndexStore(settings.index_dir).current_manifest()
        result.kb_built = True
    if manifest is not None:
        result.kb_articles = int(manifest.get("articles", 0))
        result.kb_chunks = int(manifest.get("chunks", 0))


async def _prepare_nlu(container: Container, result: Prepared, *, quiet: bool) -> None:
    import asyncio

    from app.cli import err_console
    from nlu.embedded import EmbeddedConfig, load_or_train
    from nlu.factory import embedded_dir, source_path

    settings = container.settings.nlu
    status = err_console.status("NLU: loading the embedded model (trains when missing)…")

    def say(message: str) -> None:
        if not quiet:
            status.update(f"NLU: {escape(message)}")

    with status:
        model, trained = await asyncio.to_thread(
            load_or_train,
            source_path(settings.data_dir),
            embedded_dir(settings),
            EmbeddedConfig(embedder=settings.embedder),
            progress=say,
        )
    result.nlu_trained = trained
    result.nlu_intents = len(model.labels)


def _summary(
    result: Prepared, settings: Settings, *, chat_next: bool, console_next: bool = False
) -> None:
    from app.cli import console
    from crm_core.demo import DEMO_IDENTITIES

    def did(flag: bool, verb: str) -> str:
        return f" [green]({verb})[/green]" if flag else ""

    console.print("[bold cyan]hwcrm is ready[/bold cyan] (embedded defaults)")
    console.print(f"  database        {escape(result.database)}")
    console.print(
        f"  CRM             {result.customers:,} customers, {result.orders:,} orders"
        + did(result.seeded, "demo data loaded")
    )
    console.print(
        f"  knowledge base  {result.kb_articles} articles, {result.kb_chunks} chunks"
        + did(result.kb_built, "index built")
    )
    console.print(
        f"  NLU             embedded classifier, {result.nlu_intents} intents"
        + did(result.nlu_trained, "trained")
    )
    console.print("  Telegram        no HWCRM_BOT__TOKEN (set it to run the bot on Telegram)")
    table = Table(title="Try the real bot offline", title_justify="left", show_edge=False)
    table.add_column("command", style="bold", no_wrap=True)
    table.add_column("who")
    for identity in DEMO_IDENTITIES:
        first = identity.description_en.split(":", 1)[-1].split(";")[0].strip()
        table.add_row(
            f"hwcrm chat --as {identity.telegram_user_id}",
            f"{escape(identity.name)} ({identity.language}): {escape(first)}",
        )
    table.add_row("hwcrm chat --as-agent 9001", "also the staff group, as agent wang.fang")
    console.print(table)
    from app.cli_demo import print_demo_logins
    from app.console import console_url

    how = "starting now" if console_next else "serve it with `hwcrm console`"
    console.print(f"  staff console   {console_url(settings)} ({how})")
    print_demo_logins(result.demo_logins)
    if chat_next:
        console.print("Starting the chat as demo customer 1001 (张伟) — :help for commands.\n")


# -- commands -------------------------------------------------------------------------------


def bot_cmd(
    mode: str = typer.Option(
        None, "--mode", help="polling | webhook (default: bot.mode from the configuration)."
    ),
    warm_up: bool = typer.Option(
        True,
        "--warm-up/--no-warm-up",
        help="Load the NLU model and knowledge-base index before taking updates "
        "(otherwise on the first message that needs them).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Webhook mode: worker processes sharing the port (needs bot.fsm_storage: redis).",
    ),
    worker_index: int = typer.Option(0, "--worker-index", hidden=True),
) -> None:
    """Run the Telegram bot (long polling or webhook per bot.mode; needs HWCRM_BOT__TOKEN)."""
    from app.cli import err_console, run_async
    from app.settings import load_settings

    settings = load_settings()
    if mode not in (None, "polling", "webhook"):
        raise typer.BadParameter("--mode is polling or webhook")
    if workers > 1 and (mode or settings.bot.mode) != "webhook":
        raise typer.BadParameter("--workers needs webhook mode (polling is one process)")
    if workers > 1 and settings.bot.fsm_storage != "redis":
        err_console.print(
            "[red]error:[/red] several workers share conversation state, de-duplication and "
            "per-chat locks through Redis: set HWCRM_BOT__FSM_STORAGE=redis (and "
            "HWCRM_BOT__REDIS_URL)."
        )
        raise typer.Exit(2)
    if settings.bot.token is None or not settings.bot.token.get_secret_value().strip():
        err_console.print(
            "[red]error:[/red] HWCRM_BOT__TOKEN is not set. Put the token @BotFather gave you "
            "into the environment (never into config.yml), or try the bot offline with "
            "`hwcrm chat`."
        )
        raise typer.Exit(2)
    _configure_logging(settings)
    from bot.runtime import event_loop_factory

    loop_factory = event_loop_factory(settings.bot.event_loop)
    logging.getLogger("bot.runtime").info(
        "event loop: %s", "uvloop" if loop_factory is not None else "asyncio"
    )
    children = _spawn_workers(settings, workers, mode, warm_up) if worker_index == 0 else []
    try:
        run_async(
            _run_bot(settings, mode, warm_up=warm_up, worker_index=worker_index, workers=workers),
            loop_factory,
        )
    finally:
        _stop_workers(children)


def _spawn_workers(
    settings: Settings, workers: int, mode: str | None, warm_up: bool
) -> list[subprocess.Popen[bytes]]:
    """Start workers 1..N-1 (this process is worker 0); they share the webhook secret,
    passed in their environment (never on a command line, never logged)."""
    if workers <= 1:
        return []
    from pydantic import SecretStr

    from bot.runtime import webhook_secret

    secret = webhook_secret(settings)
    settings.bot.webhook_secret = SecretStr(secret)
    env = {**os.environ, "HWCRM_BOT__WEBHOOK_SECRET": secret}
    args = [sys.executable, "-m", "app.cli", "bot", "--mode", mode or settings.bot.mode]
    args += ["--workers", str(workers)] + ([] if warm_up else ["--no-warm-up"])
    return [
        subprocess.Popen([*args, "--worker-index", str(index)], env=env)
        for index in range(1, workers)
    ]


def _stop_workers(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()


async def _run_bot(
    settings: Settings,
    mode: str | None,
    *,
    warm_up: bool = True,
    worker_index: int = 0,
    workers: int = 1,
) -> None:

    from app.container import container_scope
    from bot.middlewares.errors import install_secret_redaction
    from bot.runtime import run_bot

    install_secret_redaction(
        settings.bot.token.get_secret_value() if settings.bot.token else None,
        settings.bot.webhook_secret.get_secret_value() if settings.bot.webhook_secret else None,
    )
    async with container_scope(settings) as container:
        deps = container.bot_deps()
        if warm_up:
            # before taking updates (Telegram keeps them meanwhile): a model loading on the
            # first message would hold up every update behind it
            await _warm_up(deps)
        await run_bot(deps, mode=mode, worker_index=worker_index, workers=workers)


async def _warm_up(deps: Any) -> None:
    import asyncio

    log = logging.getLogger("bot.runtime")
    try:
        warm = getattr(deps.nlu, "warm_up", None)
        if warm is not None:
            await warm()
        current = getattr(deps.kb, "current", None)
        if current is not None:
            await asyncio.to_thread(current)
        log.info("models loaded")
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("warming up the models failed; they load on first use")


def chat_cmd(
    as_: int = typer.Option(1001, "--as", help="Telegram id of the customer you are."),
    lang: str = typer.Option(None, "--lang", help="zh | en (default: the customer's language)."),
    as_agent: int = typer.Option(
        None, "--as-agent", help="Also be this staff member (Telegram id) in the staff group."
    ),
) -> None:
    """Talk to the real bot in the terminal (offline; buttons by number, :help, :quit)."""
    from app.cli import console, run_async
    from app.settings import load_settings

    if lang not in (None, "zh", "en"):
        raise typer.BadParameter("--lang is zh or en")
    settings = load_settings()
    run_async(_chat(settings, as_, lang, as_agent, prepare_first=True))
    console.print("bye")


async def _chat(
    settings: Settings,
    customer: int,
    lang: str | None,
    agent: int | None,
    *,
    prepare_first: bool,
    read_line: Any = None,
) -> None:
    from app.cli import console
    from app.container import container_scope
    from bot.terminal import TerminalChat, make_reader

    async with container_scope(settings) as container:
        if prepare_first:
            await prepare(container, quiet=True)
        deps = container.bot_deps()
        warm = getattr(deps.nlu, "warm_up", None)
        if warm is not None:
            with console.status("loading the models…"):
                await warm()
        chat = TerminalChat(deps, customer_id=customer, lang=lang, agent_id=agent, console=console)
        delivery = _chat_delivery(chat, customer)
        try:
            await chat.run(read_line or make_reader(console))
        finally:
            if delivery is not None:
                await delivery.stop()


def _chat_delivery(chat: Any, customer: int) -> Any:
    """The embedded scheduler + sender next to the terminal chat, so a follow-up or a campaign
    push to the customer on the terminal shows up while chatting. It sends only that chat's
    pushes (the other customers' stay queued for the real bot)."""
    import inspect

    from bot.scheduler.embedded import EmbeddedDelivery
    from crm_core.campaigns.delivery import DeliveryService

    ratelimit = chat.dp.runtime.ratelimit
    if ratelimit is None:
        return None
    can_filter = "chat_ids" in inspect.signature(DeliveryService.claim_due).parameters
    deps = chat.deps
    return EmbeddedDelivery.start(
        deps.settings,
        deps.sessions,
        deps.clock,
        chat.bot,
        ratelimit.limiter,
        sending=can_filter,
        on_sent=chat.render_new,
        only_chats=frozenset({customer}),
    )


def start_cmd(
    chat: bool = typer.Option(
        None,
        "--chat/--no-chat",
        help="Start the terminal chat after preparing (default: when stdin is a terminal).",
    ),
) -> None:
    """Prepare and start the product: the Telegram bot with a token, else the terminal chat.

    Migrates the embedded database, loads demo data when it is empty, builds the knowledge
    base index and the embedded NLU model when missing. With HWCRM_BOT__TOKEN set it runs the
    Telegram bot; without, it prints a summary and starts `hwcrm chat` as demo customer 1001
    (only when stdin is a terminal, unless --chat/--no-chat says otherwise)."""
    from app.cli import console, run_async
    from app.container import container_scope
    from app.settings import load_settings

    settings = load_settings()
    has_token = settings.bot.token is not None and bool(settings.bot.token.get_secret_value())
    started = time.perf_counter()

    async def go() -> Prepared:
        async with container_scope(settings) as container:
            return await prepare(container)

    result = run_async(go())
    console.print(f"[dim]prepared in {time.perf_counter() - started:.1f}s[/dim]")
    if has_token:
        _configure_logging(settings)
        _summary(result, settings, chat_next=False, console_next=True)
        start_console_thread(settings)
        console.print(f"starting the Telegram bot ({settings.bot.mode} mode)…")
        run_async(_run_bot(settings, None))
        return
    interactive = sys.stdin.isatty() if chat is None else chat
    _summary(result, settings, chat_next=interactive, console_next=interactive)
    if not interactive:
        return
    start_console_thread(settings)
    run_async(_chat(settings, 1001, None, None, prepare_first=False))
    console.print("bye")


def start_console_thread(settings: Settings) -> Any:
    """Serve the staff console beside the chat/bot (a daemon thread with its own event loop
    and container; it stops with the process)."""
    import asyncio
    import threading

    def run() -> None:
        import uvicorn

        from app.cli_console import uvicorn_config
        from app.console import build_console_app
        from app.container import container_scope

        async def serve() -> None:
            async with container_scope(settings) as container:
                server = uvicorn.Server(uvicorn_config(build_console_app(container), settings))
                await server.serve()

        try:
            asyncio.run(serve())
        except Exception:
            logging.getLogger("console").exception("the staff console stopped")

    thread = threading.Thread(target=run, name="console", daemon=True)
    thread.start()
    return thread

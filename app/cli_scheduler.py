"""`hwcrm scheduler`: the campaign scheduler and push sender as their own process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("app.scheduler")


def register(cli: typer.Typer) -> None:
    """Attach `hwcrm scheduler` to the root CLI."""
    cli.command("scheduler")(scheduler_cmd)


def scheduler_cmd(
    send: bool = typer.Option(
        True, "--send/--no-send", help="Send due pushes (any number of processes may send)."
    ),
    schedule: bool = typer.Option(
        True,
        "--schedule/--no-schedule",
        help="Take part in the leader election and schedule campaigns while leader.",
    ),
    concurrency: int = typer.Option(
        None, "--concurrency", min=1, max=1024, help="Pushes in flight (scheduler.concurrency)."
    ),
    worker: str = typer.Option(None, "--worker", help="Name of this sender (default host:pid)."),
) -> None:
    """Run the campaign scheduler and push sender (production: its own process).

    With several processes on PostgreSQL exactly one schedules (an advisory lock; when it
    stops or loses its database connection another takes over) and every one sends, under
    one rate limit shared through Redis with the bot's replies. SIGTERM/SIGINT: pushes in
    flight finish and are recorded, then it stops."""
    from app.cli import err_console, run_async
    from app.cli_bot import _configure_logging
    from app.settings import load_settings

    settings = load_settings()
    if concurrency:
        settings.scheduler.concurrency = concurrency
        settings.scheduler.claim_batch = min(settings.scheduler.claim_batch, concurrency)
    if send and (settings.bot.token is None or not settings.bot.token.get_secret_value().strip()):
        err_console.print(
            "[red]error:[/red] HWCRM_BOT__TOKEN is not set: the sender sends as the bot. Set "
            "it, or run `hwcrm scheduler --no-send` to schedule only."
        )
        raise typer.Exit(2)
    if not send and not schedule:
        raise typer.BadParameter("--no-send and --no-schedule together leave nothing to do")
    _configure_logging(settings)
    logging.getLogger().setLevel(logging.INFO)
    from bot.runtime import event_loop_factory

    # the same event loop as `hwcrm bot` (bot.event_loop: uvloop when installed)
    run_async(
        run_scheduler(settings, send=send, schedule=schedule, worker=worker),
        event_loop_factory(settings.bot.event_loop),
    )


async def run_scheduler(
    settings: Settings,
    *,
    send: bool = True,
    schedule: bool = True,
    worker: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """The process body of `hwcrm scheduler` (until SIGTERM/SIGINT or `stop`)."""
    from app.container import container_scope
    from bot.middlewares.errors import install_secret_redaction
    from bot.runtime import build_bot
    from bot.scheduler.runner import build_engine, limiter_from_settings

    token = settings.bot.token.get_secret_value() if settings.bot.token else None
    install_secret_redaction(token)
    stop = stop or _stop_on_signals()
    async with container_scope(settings) as container:
        bot = build_bot(settings)
        limiter = limiter_from_settings(settings)
        if (
            send
            and settings.db.is_sqlite is False
            and limiter.store.__class__.__name__ == ("MemoryBucketStore")
        ):
            log.warning(
                "the rate limit is in-process: with several senders or bot workers set "
                "scheduler.rate_limit.backend: redis so that they share Telegram's limit"
            )
        engine = build_engine(
            container.settings,
            container.sessions,
            container.clock,
            bot,
            limiter,
            scheduling=schedule,
            sending=send,
            worker=worker,
        )
        try:
            await engine.run(stop)
        finally:
            await bot.session.close()
            redis = getattr(limiter.store, "redis", None)
            if redis is not None:
                with contextlib.suppress(Exception):
                    await redis.aclose()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop

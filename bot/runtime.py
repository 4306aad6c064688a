"""Builds the Bot and the Dispatcher; runs them in polling or webhook mode.

Update middlewares, outermost first (after aiogram's own error, user-context and FSM
middlewares; the FSM middleware holds the per-chat lock of `ChatIsolation`):

1. `GateMiddleware`         re-delivered update ids dropped; update scope; SQLite: one at a time
2. `ErrorMiddleware`        any failure: trace logged, polite answer, CRM record kept
3. `GroupGuardMiddleware`   groups other than the staff group: not handled (one hint)
4. `UnitOfWorkMiddleware`   one transaction per update (`crm`)
5. `CustomerMiddleware`     `customer`, `lang`, `t`
6. `InboundLoggingMiddleware` the inbound message in the CRM (`conversation`)
7. `ThrottleMiddleware`     anti-flood (the excess was logged in 6 and is not handled)
   (+ the handoff middleware: relays while a human owns the conversation)

then the feature routers and, last, the fallback router (bot/middlewares/safety.py).

Bot API request middlewares (on the bot's session, wired by the dispatcher on first use):
outbound logging → 403 handling → 429 retry → over-long text guard.

Per-chat order: updates of one chat run one at a time in arrival order (webhook mode handles
updates in background tasks, polling mode as tasks; both pass the per-chat FIFO lock). With
`bot.fsm_storage: redis`, FSM state, de-duplication, throttling counters and a per-chat lock
live in Redis, so several webhook workers behind a load balancer can share the traffic (set
`HWCRM_BOT__WEBHOOK_SECRET` so that they all accept the same secret, and let one of them call
setWebhook). Shutdown (SIGTERM/SIGINT) stops taking updates and lets the ones in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import orjson
from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from bot.deps import BotDeps
from bot.middlewares.context import CustomerMiddleware, DbWriter, UnitOfWorkMiddleware
from bot.middlewares.errors import ErrorMiddleware, install_secret_redaction
from bot.middlewares.gate import (
    ChatIsolation,
    Deduplicator,
    GateMiddleware,
    InFlight,
    MemoryDeduplicator,
    RedisDeduplicator,
)
from bot.middlewares.handoff import HandoffMiddleware
from bot.middlewares.interactions import InboundLoggingMiddleware, OutboundLoggingMiddleware
from bot.middlewares.options import RuntimeOptions
from bot.middlewares.safety import GroupGuardMiddleware, fallback_router
from bot.middlewares.telegram_api import (
    ForbiddenMiddleware,
    LengthGuardMiddleware,
    ResponseTypePinMiddleware,
    RetryAfterMiddleware,
)
from bot.middlewares.throttle import (
    MemoryRateCounter,
    RateCounter,
    RedisRateCounter,
    ThrottleMiddleware,
)
from bot.ratelimit import RateLimitMiddleware, limiter_from_settings
from bot.routers import all_routers

log = logging.getLogger("bot.runtime")

OFFLINE_TOKEN = "42:offline-terminal-token"  # `hwcrm chat` / tests: never sent to Telegram


class MissingTokenError(RuntimeError):
    """`hwcrm bot` without HWCRM_BOT__TOKEN."""


def event_loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop `hwcrm bot` runs on (`bot.event_loop`): uvloop when installed ("auto")
    or asked for, else asyncio's (None). uvloop's socket and scheduling code is native; it
    cuts the event loop's share of the CPU per update (aiohttp, asyncpg and redis all run on
    it). "uvloop" without the package installed is an error, not a silent fallback."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError(
                "bot.event_loop is uvloop but the uvloop package is not installed"
            ) from None
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def json_codec() -> tuple[Callable[[str | bytes], Any], Callable[[Any], str]]:
    """(loads, dumps) for the Bot API session and the webhook: orjson (several times faster
    than the standard library on the updates, keyboards and results of every message)."""
    return orjson.loads, _json_dumps


def build_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    """The Bot, talking to `bot.api_base_url` (or to an in-process session in tests/chat).

    Its session middlewares (outbound logging, 403/429 handling) are wired by the dispatcher
    that handles its updates (`BotDispatcher.wire`). Requests and webhook updates are
    (de)serialised with orjson (`json_codec`)."""
    if session is None:
        loads, dumps = json_codec()
        session = AiohttpSession(
            api=TelegramAPIServer.from_base(settings.bot.api_base_url),
            json_loads=loads,
            json_dumps=dumps,
        )
    token = settings.bot.token.get_secret_value() if settings.bot.token else OFFLINE_TOKEN
    # All bot output is Telegram HTML (bot.rendering; the Translator escapes parameters).
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode="HTML"))


def build_redis(settings: Settings) -> Any:
    """The bot's Redis client (production: FSM, de-duplication, throttling, chat locks)."""
    from redis.asyncio import Redis

    return Redis.from_url(settings.bot.redis_url)


def build_storage(
    settings: Settings, redis: Any | None = None, prefix: str = "hwcrm:bot"
) -> BaseStorage:
    """FSM storage: memory on the embedded default, Redis with `bot.fsm_storage: redis`."""
    if settings.bot.fsm_storage == "redis":
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage(
            redis if redis is not None else build_redis(settings),
            key_builder=DefaultKeyBuilder(prefix=f"{prefix}:fsm", with_bot_id=True),
        )
    return MemoryStorage()


def _binds_sqlite(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> bool:
    bind = sessions.kw.get("bind")
    if bind is not None:
        return bool(bind.dialect.name == "sqlite")
    return settings.db.is_sqlite


@dataclass
class Runtime:
    """The moving parts of one dispatcher (exposed for the CLI, tests and benchmarks)."""

    deps: BotDeps
    options: RuntimeOptions
    inflight: InFlight
    isolation: ChatIsolation
    writer: DbWriter
    gate: GateMiddleware
    errors: ErrorMiddleware
    group_guard: GroupGuardMiddleware
    throttle: ThrottleMiddleware
    outbound: OutboundLoggingMiddleware
    forbidden: ForbiddenMiddleware
    retry: RetryAfterMiddleware
    length_guard: LengthGuardMiddleware
    redis: Any | None = None
    pin_types: ResponseTypePinMiddleware = field(default_factory=ResponseTypePinMiddleware)
    # innermost: every request that reaches Telegram (each 429 retry too) takes its token
    ratelimit: RateLimitMiddleware | None = None

    @property
    def request_middlewares(self) -> list[Any]:
        chain = [self.outbound, self.forbidden, self.retry, self.length_guard, self.pin_types]
        return chain + ([self.ratelimit] if self.ratelimit is not None else [])

    def wire(self, bot: Bot) -> None:
        """Install the request middlewares on `bot`'s session (once; replaces those of an
        earlier dispatcher, e.g. when tests build a new one for the same bot)."""
        session = bot.session
        if getattr(session, "_hwcrm_runtime", None) is self:
            return
        previous: list[Any] = getattr(session, "_hwcrm_request_middlewares", [])
        for middleware in previous:
            with contextlib.suppress(ValueError):
                session.middleware.unregister(middleware)
        mine = self.request_middlewares
        for middleware in mine:
            session.middleware(middleware)
        session._hwcrm_request_middlewares = mine  # type: ignore[attr-defined]
        session._hwcrm_runtime = self  # type: ignore[attr-defined]

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for the updates in flight (graceful shutdown)."""
        return await self.inflight.drain(
            self.options.drain_timeout_s if timeout is None else timeout
        )


class BotDispatcher(Dispatcher):
    """aiogram's Dispatcher that wires its bots, tracks updates in flight, and lets them
    finish before shutting down."""

    runtime: Runtime

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        self.runtime.wire(bot)
        with self.runtime.inflight.track():
            return await super().feed_update(bot, update, **kwargs)

    async def emit_shutdown(self, *args: Any, **kwargs: Any) -> None:
        await self.runtime.drain()
        pending = [t for t in getattr(self, "_handle_update_tasks", ()) if not t.done()]
        if pending:  # polling: tasks created but not started when the stop came
            await asyncio.wait(pending, timeout=self.runtime.options.drain_timeout_s)
        try:
            await super().emit_shutdown(*args, **kwargs)
        finally:
            if self.runtime.redis is not None:
                with contextlib.suppress(Exception):
                    await self.runtime.redis.aclose()


def build_dispatcher(
    deps: BotDeps,
    storage: BaseStorage | None = None,
    *,
    options: RuntimeOptions | None = None,
    redis: Any | None = None,
    routers: Sequence[Router] | None = None,
) -> BotDispatcher:
    """The dispatcher with every middleware and router of the product.

    `routers` defaults to `all_routers()`; tests may put their own in front. The fallback
    router is always last. With `bot.fsm_storage: redis`, `redis` (or a client built from
    `bot.redis_url`) backs FSM, de-duplication, throttling and the per-chat lock.
    """
    settings = deps.settings
    options = options or RuntimeOptions.from_settings(settings.bot)
    use_redis = settings.bot.fsm_storage == "redis"
    if use_redis and redis is None:
        redis = build_redis(settings)
    if not use_redis:
        redis = None
    prefix = options.redis_prefix
    isolation = ChatIsolation(redis, prefix=prefix, lock_ttl_s=options.chat_lock_ttl_s)
    dp = BotDispatcher(
        storage=storage or build_storage(settings, redis, prefix),
        events_isolation=isolation,
    )
    db_lock = asyncio.Lock() if _binds_sqlite(deps.sessions, settings) else None
    writer = DbWriter(deps.sessions, deps.clock, settings.crm, db_lock)
    dedup: Deduplicator
    counter: RateCounter
    if redis is not None:
        bot_id = _bot_id(settings)
        dedup = RedisDeduplicator(redis, prefix, bot_id, options.dedup_ttl_s)
        counter = RedisRateCounter(redis, f"{prefix}:{bot_id}", options.throttle_window_s)
    else:
        dedup = MemoryDeduplicator(options.dedup_size)
        counter = MemoryRateCounter(options.throttle_window_s)
    runtime = Runtime(
        deps=deps,
        options=options,
        inflight=InFlight(),
        isolation=isolation,
        writer=writer,
        gate=GateMiddleware(dedup, db_lock, writer),
        errors=ErrorMiddleware(deps, writer),
        group_guard=GroupGuardMiddleware(
            settings.bot.staff_chat_id,
            deps.translator,
            settings.app.default_language,
            options.group_hint_interval_s,
        ),
        throttle=ThrottleMiddleware(counter, options.throttle_messages),
        outbound=OutboundLoggingMiddleware(writer),
        forbidden=ForbiddenMiddleware(writer),
        retry=RetryAfterMiddleware(options.retry_max_attempts, options.retry_max_wait_s),
        length_guard=LengthGuardMiddleware(),
        redis=redis,
        ratelimit=RateLimitMiddleware(limiter_from_settings(settings, redis)),
    )
    dp.runtime = runtime
    dp["deps"] = deps
    dp.update.outer_middleware(runtime.gate)
    dp.update.outer_middleware(runtime.errors)
    dp.update.outer_middleware(runtime.group_guard)
    dp.update.outer_middleware(UnitOfWorkMiddleware(deps, writer))
    dp.update.outer_middleware(CustomerMiddleware(deps))
    dp.update.outer_middleware(InboundLoggingMiddleware())
    dp.update.outer_middleware(runtime.throttle)
    dp.update.outer_middleware(HandoffMiddleware(deps))
    for router in routers if routers is not None else all_routers():
        _detach(router)
        dp.include_router(router)
    dp.include_router(fallback_router())
    return dp


def _detach(router: Router) -> None:
    """Feature routers are module-level objects; a new dispatcher (tests, `hwcrm chat` after a
    test) takes them over from the previous one instead of failing."""
    parent = router.parent_router
    if parent is not None:
        with contextlib.suppress(ValueError):
            parent.sub_routers.remove(router)
        router._parent_router = None


def _bot_id(settings: Settings) -> int:
    token = settings.bot.token.get_secret_value() if settings.bot.token else OFFLINE_TOKEN
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else 0


# -- running -------------------------------------------------------------------------------


def webhook_secret(settings: Settings) -> str:
    """`HWCRM_BOT__WEBHOOK_SECRET`, or a fresh random one for this run (never logged)."""
    if settings.bot.webhook_secret is not None and settings.bot.webhook_secret.get_secret_value():
        return settings.bot.webhook_secret.get_secret_value()
    return secrets.token_urlsafe(32)


def webhook_path(settings: Settings, options: RuntimeOptions) -> str:
    path = urlparse(settings.bot.webhook_url).path if settings.bot.webhook_url else ""
    return path if path and path != "/" else options.webhook_path


class DrainingRequestHandler(SimpleRequestHandler):
    """aiogram's webhook handler (secret verified: a wrong or missing
    `X-Telegram-Bot-Api-Secret-Token` gets 401 and nothing is handled) that, on shutdown,
    lets the updates it accepted finish before the bot's session closes."""

    def __init__(self, dispatcher: BotDispatcher, bot: Bot, secret_token: str) -> None:
        if not secret_token:
            raise ValueError("a webhook needs a secret token")
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret_token)
        self.runtime = dispatcher.runtime

    async def close(self) -> None:
        pending = [t for t in self._background_feed_update_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.runtime.options.drain_timeout_s)
        await self.runtime.drain()
        await super().close()


def build_webhook_app(
    bot: Bot, dp: BotDispatcher, secret: str, path: str
) -> tuple[web.Application, DrainingRequestHandler]:
    """The aiohttp application: POST `path` (Telegram) and GET /healthz."""
    app = web.Application()
    handler = DrainingRequestHandler(dp, bot, secret)
    handler.register(app, path=path)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "in_flight": dp.runtime.inflight.count})

    app.router.add_get("/healthz", health)
    setup_application(app, dp, bot=bot)
    return app, handler


def _stop_event_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def run_webhook(
    bot: Bot,
    dp: BotDispatcher,
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], Awaitable[None] | None] | None = None,
    set_webhook: bool = True,
    reuse_port: bool = False,
) -> None:
    """Serve the webhook until SIGTERM/SIGINT (or `stop`), then shut down gracefully.

    Several worker processes can serve one port (`reuse_port`, SO_REUSEPORT: the kernel
    spreads connections over them); only one of them registers the webhook (`set_webhook`)."""
    options = dp.runtime.options
    if not settings.bot.webhook_url:
        raise ValueError(
            "bot.mode is webhook but bot.webhook_url is empty: set HWCRM_BOT__WEBHOOK_URL to the "
            "public HTTPS URL Telegram should call"
        )
    secret = webhook_secret(settings)
    install_secret_redaction(secret)
    path = webhook_path(settings, options)
    app, _ = build_webhook_app(bot, dp, secret, path)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner, settings.bot.webhook_host, settings.bot.webhook_port, reuse_port=reuse_port
    )
    await site.start()
    stop = stop or _stop_event_on_signals()
    try:
        if set_webhook:
            await bot.set_webhook(
                settings.bot.webhook_url,
                secret_token=secret,
                allowed_updates=dp.resolve_used_update_types(),
                drop_pending_updates=False,
            )
        log.info(
            "webhook mode: listening on %s:%s%s",
            settings.bot.webhook_host,
            settings.bot.webhook_port,
            path,
        )
        if on_ready is not None:
            result = on_ready()
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        log.info("stopping: finishing updates in flight")
    finally:
        await runner.cleanup()  # stops accepting, drains (handler.close, emit_shutdown)


async def run_polling(bot: Bot, dp: BotDispatcher, *, polling_timeout: int = 30) -> None:
    """Long polling until SIGTERM/SIGINT; in-flight updates finish before the bot stops."""
    await bot.delete_webhook(drop_pending_updates=False)  # getUpdates fails while one is set
    log.info("polling mode: fetching updates from the Bot API")
    await dp.start_polling(
        bot,
        polling_timeout=polling_timeout,
        handle_signals=True,
        close_bot_session=True,
        tasks_concurrency_limit=dp.runtime.options.concurrency_limit,
    )


async def run_bot(
    deps: BotDeps, *, mode: str | None = None, worker_index: int = 0, workers: int = 1
) -> None:
    """`hwcrm bot`: the Telegram bot in the configured (or given) mode.

    Webhook mode can run as several worker processes on one port (`workers`, each calling
    this with its `worker_index`); worker 0 registers the webhook."""
    settings = deps.settings
    if settings.bot.token is None or not settings.bot.token.get_secret_value():
        raise MissingTokenError(
            "no bot token: set HWCRM_BOT__TOKEN to the token @BotFather gave you "
            "(or run `hwcrm chat` to try the bot offline)"
        )
    install_secret_redaction(settings.bot.token.get_secret_value())
    bot = build_bot(settings)
    dp = build_dispatcher(deps)
    dp.runtime.wire(bot)
    sweeper = await _start_leader_duties(bot, dp, deps) if worker_index == 0 else None
    delivery = _start_delivery(bot, dp, deps) if worker_index == 0 else None
    try:
        if (mode or settings.bot.mode) == "webhook":
            try:
                await run_webhook(
                    bot, dp, settings, set_webhook=worker_index == 0, reuse_port=workers > 1
                )
            finally:
                if delivery is not None:
                    await delivery.stop()
                await bot.session.close()
        else:
            await run_polling(bot, dp)
    finally:
        if sweeper is not None:
            sweeper.cancel()
        if delivery is not None:
            await delivery.stop()


def _start_delivery(bot: Bot, dp: BotDispatcher, deps: BotDeps) -> Any:
    """Embedded default (`scheduler.in_bot`): campaigns scheduled and pushes sent by this
    process, through this bot and its rate limiter (replies first)."""
    from bot.scheduler.embedded import EmbeddedDelivery

    ratelimit = dp.runtime.ratelimit
    if ratelimit is None:
        return None
    delivery = EmbeddedDelivery.start(
        deps.settings, deps.sessions, deps.clock, bot, ratelimit.limiter
    )
    if delivery is not None:  # polling: stop (pushes in flight recorded) before the session closes
        dp.shutdown.register(delivery.stop)
    return delivery


async def _start_leader_duties(bot: Bot, dp: BotDispatcher, deps: BotDeps) -> asyncio.Task[None]:
    """What one process does for all workers: publish the zh/en command menu, and sweep
    handoffs (expected-wait notices, queue and inactivity timeouts)."""
    from bot.handoff import start_handoff_sweeper
    from bot.routers.start import set_commands

    try:
        await set_commands(bot, deps.translator)
    except Exception:  # the bot still works without a menu; say why in the log
        log.exception("could not publish the command menu")
    return start_handoff_sweeper(bot, deps, run=dp.runtime.writer.write)

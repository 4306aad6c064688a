"""Builds the Bot and the Dispatcher; runs them in polling or webhook mode."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage

from app.settings import Settings
from bot.deps import BotDeps
from bot.middlewares.context import CustomerMiddleware, UnitOfWorkMiddleware
from bot.middlewares.handoff import HandoffMiddleware
from bot.routers import all_routers

OFFLINE_TOKEN = "42:offline-terminal-token"  # `hwcrm chat` / tests: never sent to Telegram


def build_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    """The Bot, talking to `bot.api_base_url` (or to an in-process session in tests/chat)."""
    if session is None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.bot.api_base_url))
    token = settings.bot.token.get_secret_value() if settings.bot.token else OFFLINE_TOKEN
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=None))


def build_storage(settings: Settings) -> BaseStorage:
    if settings.bot.fsm_storage == "redis":
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(settings.bot.redis_url)
    return MemoryStorage()


def build_dispatcher(deps: BotDeps, storage: BaseStorage | None = None) -> Dispatcher:
    """The dispatcher with every middleware and router of the product."""
    dp = Dispatcher(storage=storage or build_storage(deps.settings))
    dp["deps"] = deps
    dp.update.outer_middleware(UnitOfWorkMiddleware(deps))
    dp.update.outer_middleware(CustomerMiddleware(deps))
    dp.update.outer_middleware(HandoffMiddleware(deps))
    for router in all_routers():
        dp.include_router(router)
    return dp

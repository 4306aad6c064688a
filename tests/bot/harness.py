"""Scenario-test harness: the real dispatcher, handlers and CRM, with Telegram in-process.

`BotHarness.send(...)` feeds an update through the real dispatcher (middlewares, routers,
services, database) and returns the Bot API calls the bot made in response.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.types import Chat, Update, User

from bot.deps import BotDeps
from bot.fake_telegram import InProcessBotAPI, SentCall, UpdateFactory


@dataclass
class BotHarness:
    deps: BotDeps
    dispatcher: Dispatcher
    bot: Bot
    api: InProcessBotAPI
    updates: UpdateFactory = field(default_factory=UpdateFactory)

    async def feed(self, update: Update) -> list[SentCall]:
        """Process one update; return the calls the bot made while handling it."""
        before = len(self.api.calls)
        await self.dispatcher.feed_update(self.bot, update)
        return self.api.calls[before:]

    def user(self, user_id: int, lang: str = "en", name: str = "Customer") -> User:
        return self.updates.user(user_id, language_code=lang, name=name)

    async def send(self, user: User, text: str, *, chat: Chat | None = None) -> list[SentCall]:
        return await self.feed(self.updates.message(user, text, chat=chat))

    async def press(self, user: User, callback_data: str) -> list[SentCall]:
        return await self.feed(self.updates.callback(user, callback_data))

    async def share_contact(
        self, user: User, phone: str, contact_user_id: int | None
    ) -> list[SentCall]:
        return await self.feed(self.updates.contact(user, phone, contact_user_id))

    @staticmethod
    def texts(calls: list[SentCall]) -> str:
        """Everything the bot said in `calls`, one message per line (for assertions)."""
        return "\n".join(c.text for c in calls if c.text)

    @staticmethod
    def buttons(calls: list[SentCall]) -> list[tuple[str, str]]:
        return [b for c in calls for b in c.buttons()]

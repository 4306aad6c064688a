"""The generic safety layer: groups, content the bot cannot read, stale buttons, blocks.

- `GroupGuardMiddleware`: the bot serves customers in private chats only (their orders and
  devices must never show up in a group). In any group or channel other than the staff
  supergroup, updates are not handled; a command, a mention of the bot, a reply to it, or
  the bot being added gets one "message me privately" hint per chat and interval.
- `fallback_router()`: included after every feature router, so it only sees what no flow
  took. A flow that expects a photo (or anything else) handles it first, in its state.
  Stickers, voice, video, locations ... get "I can read text and photos"; a photo outside a
  flow gets "tell me what it is about"; unhandled text gets a /help hint; a button of an old
  message is answered (no endless spinner); edits are logged (inbound middleware) and not
  answered; a private `my_chat_member` update "kicked"/"member" records that the customer
  blocked/unblocked the bot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, F, Router
from aiogram.enums import ChatMemberStatus, ContentType
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message, TelegramObject, Update

from bot.deps import Texts
from bot.i18n import pick_language
from bot.middlewares.context import event_chat
from bot.middlewares.interactions import record_blocked, set_blocked
from crm_core.services import CrmServices

log = logging.getLogger("bot.safety")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

GROUP_TYPES = {"group", "supergroup", "channel"}


class GroupGuardMiddleware(BaseMiddleware):
    """Keeps the bot out of groups (except the staff supergroup)."""

    def __init__(
        self,
        staff_chat_id: int,
        translator: Any,
        default_language: str = "en",
        hint_interval_s: float = 3_600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.staff_chat_id = staff_chat_id
        self.translator = translator
        self.default_language = default_language
        self.hint_interval_s = hint_interval_s
        self.monotonic = monotonic
        self._hinted: dict[int, float] = {}
        self.ignored = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        if event.channel_post is not None or event.edited_channel_post is not None:
            self.ignored += 1
            return None
        chat = event_chat(event)
        if chat is None or chat.type not in GROUP_TYPES:
            return await handler(event, data)
        if self.staff_chat_id and chat.id == self.staff_chat_id:
            return await handler(event, data)
        self.ignored += 1
        bot: Bot = data["bot"]
        if event.callback_query is not None:
            await bot.answer_callback_query(event.callback_query.id)
            return None
        if await self._wants_hint(event, bot):
            await self._hint(bot, event, chat.id)
        return None

    async def _wants_hint(self, update: Update, bot: Bot) -> bool:
        if update.my_chat_member is not None:
            status = update.my_chat_member.new_chat_member.status
            return status in (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR)
        message = update.message
        if message is None:
            return False
        text = message.text or message.caption or ""
        me = await bot.me()
        if text.startswith("/"):
            return True
        if me.username and f"@{me.username}".lower() in text.lower():
            return True
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == me.id)

    async def _hint(self, bot: Bot, update: Update, chat_id: int) -> None:
        now = self.monotonic()
        last = self._hinted.get(chat_id)
        if last is not None and now - last < self.hint_interval_s:
            return
        self._hinted[chat_id] = now
        if len(self._hinted) > 10_000:  # forget the oldest hints
            for key in sorted(self._hinted, key=self._hinted.__getitem__)[:5_000]:
                del self._hinted[key]
        user = update.message.from_user if update.message else None
        lang = pick_language(user.language_code if user else None, self.default_language)
        me = await bot.me()
        await bot.send_message(
            chat_id, self.translator.t("common.group_hint", lang, bot_username=me.username or "")
        )


def fallback_router() -> Router:
    """The last router: what no flow handled (a new Router per dispatcher)."""
    router = Router(name="fallback")
    private = F.chat.type == "private"

    @router.message(private, F.content_type == ContentType.TEXT)
    async def unhandled_text(message: Message, t: Texts) -> None:
        await message.answer(t("common.not_understood"))

    @router.message(private, F.content_type == ContentType.PHOTO)
    async def photo_outside_a_flow(message: Message, t: Texts) -> None:
        await message.answer(t("common.photo_without_context"))

    @router.message(private)
    async def unsupported_content(message: Message, t: Texts) -> None:
        await message.answer(t("common.unsupported_content"))

    @router.callback_query()
    async def stale_button(query: CallbackQuery, t: Texts) -> None:
        await query.answer(t("common.button_expired"))

    @router.my_chat_member(F.chat.type == "private")
    async def blocked_or_unblocked(event: ChatMemberUpdated, crm: CrmServices) -> None:
        status = event.new_chat_member.status
        if status == ChatMemberStatus.KICKED:
            await record_blocked(
                crm, event.chat.id, "blocked_bot: the customer blocked the bot in Telegram"
            )
        elif status == ChatMemberStatus.MEMBER:
            customer = await crm.customers.find_by_telegram_id(event.chat.id)
            if customer is not None:
                await set_blocked(crm, customer, blocked=False)

    return router

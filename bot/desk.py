"""The Telegram implementation of the agent desk's notifier port (`crm_core.support.desk`).

Both inboxes use it: the staff group (`bot.handoff`, through `desk_for`) and the web console
(with `mirror=True`: what a console agent writes to the customer is also shown in the
customer's staff topic, and topic notices never fail the console's action). Customer messages
go through the product's `Bot` — the same sender, request middlewares (outbound logging,
403 handling, 429 retry) and rate limit as the bot's own replies.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup, Message

from bot.i18n import Translator
from bot.rendering import escape
from crm_core.services import CrmServices
from crm_core.staff.schemas import StaffDTO
from crm_core.support.desk import AgentDesk, ChatContext, Notice

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger(__name__)


def as_agent(staff_id: int) -> contextlib.AbstractContextManager[None]:
    """Messages sent inside this block are logged (by the runtime's outbound logging) as
    written by this agent."""
    try:
        from bot.middlewares.interactions import annotate_outbound
    except ImportError:  # the runtime without outbound logging
        return contextlib.nullcontext()
    return annotate_outbound(agent_staff_id=staff_id)


async def tell_customer(
    bot: Bot, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Send the customer a message; None when they blocked the bot (403)."""
    try:
        return await bot.send_message(chat_id, text, reply_markup=reply_markup)
    except TelegramForbiddenError:
        log.info("customer chat %s blocked the bot", chat_id)
        return None


class TelegramDeskNotifier:
    """`DeskNotifier` over the Telegram Bot API.

    mirror — the caller is not Telegram (the console): the agent's messages to the customer
        are also posted in the staff topic, and topic posts are best effort (logged, never
        raised), since the console's action already succeeded.
    """

    def __init__(
        self, bot: Bot, settings: Settings, translator: Translator, *, mirror: bool = False
    ) -> None:
        self.bot = bot
        self.settings = settings
        self.translator = translator
        self.mirror = mirror

    def staff_text(self, notice: Notice) -> str:
        return self.translator.t(notice.key, self.settings.handoff.staff_language, **notice.params)

    async def tell_customer(self, ctx: ChatContext, notice: Notice) -> bool:
        text = self.translator.t(notice.key, ctx.customer.language, **notice.params)
        return await tell_customer(self.bot, ctx.chat_id, text) is not None

    async def send_agent_message(
        self, ctx: ChatContext, agent: StaffDTO, text: str, content: object | None = None
    ) -> bool:
        try:
            with as_agent(agent.id):
                if isinstance(content, Message):
                    await self.bot.copy_message(
                        chat_id=ctx.chat_id,
                        from_chat_id=content.chat.id,
                        message_id=content.message_id,
                    )
                else:  # the agent's own words: shown as typed, never taken as markup
                    await self.bot.send_message(ctx.chat_id, escape(text))
        except TelegramForbiddenError:
            log.info("customer chat %s blocked the bot", ctx.chat_id)
            return False
        if self.mirror:
            await self.post_in_topic(
                ctx,
                Notice("handoff.topic_console_reply", {"agent": agent.name, "text": text}),
            )
        return True

    async def ask_for_rating(self, ctx: ChatContext, ticket_number: str | None) -> None:
        from bot.routers import feedback

        ask = getattr(feedback, "ask_for_rating", None)
        if ask is None:
            log.warning("bot.routers.feedback.ask_for_rating is missing: no rating asked")
            return
        await ask(
            self.bot,
            ctx.chat_id,
            self.translator,
            ctx.customer.language,
            ticket_number=ticket_number,
            conversation_id=ctx.conversation.id,
        )

    async def post_in_topic(self, ctx: ChatContext, notice: Notice) -> None:
        staff_chat = self.settings.bot.staff_chat_id
        if not staff_chat or ctx.topic_id is None:
            return
        text = self.staff_text(notice)
        if not self.mirror:
            await self.bot.send_message(staff_chat, text, message_thread_id=ctx.topic_id)
            return
        try:
            await self.bot.send_message(staff_chat, text, message_thread_id=ctx.topic_id)
        except TelegramAPIError:
            log.warning(
                "could not post in the staff topic of conversation #%s", ctx.conversation.id
            )

    async def notify_agent(self, agent: StaffDTO, notice: Notice) -> None:
        if not self.settings.handoff.notify_by_dm or not agent.telegram_user_id:
            return
        # Agents who never started the bot cannot be messaged: skipped silently.
        with contextlib.suppress(TelegramForbiddenError, TelegramBadRequest):
            await self.bot.send_message(agent.telegram_user_id, self.staff_text(notice))


def desk_for(
    bot: Bot, settings: Settings, translator: Translator, crm: CrmServices, *, mirror: bool = False
) -> AgentDesk:
    """The agent desk of one unit of work, delivering through Telegram."""
    notifier = TelegramDeskNotifier(bot, settings, translator, mirror=mirror)
    return AgentDesk(crm, notifier, settings.handoff.canned)


class ConsoleDeskNotifier(TelegramDeskNotifier):
    """The console's notifier: Telegram (mirrored into the staff topic), with every send
    made inside an update scope bound to the console request's unit of work — so the bot's
    outbound logging records the message in that same transaction (one writer on SQLite)."""

    def __init__(
        self, bot: Bot, settings: Settings, translator: Translator, crm: CrmServices
    ) -> None:
        super().__init__(bot, settings, translator, mirror=True)
        self.crm = crm

    @contextlib.asynccontextmanager
    async def _scope(self, ctx: ChatContext | None) -> AsyncIterator[None]:
        from bot.middlewares.context import UpdateScope, update_scope

        scope = UpdateScope(
            update_id=0,
            chat_id=ctx.chat_id if ctx else None,
            holds_db_lock=True,
            crm=self.crm,
            customer=ctx.customer if ctx else None,
            conversation_id=ctx.conversation.id if ctx else None,
        )
        with update_scope(scope):
            yield
        # What was logged moves the conversation's last activity, as after a bot update.
        await scope.apply_touches()

    async def tell_customer(self, ctx: ChatContext, notice: Notice) -> bool:
        async with self._scope(ctx):
            return await super().tell_customer(ctx, notice)

    async def send_agent_message(
        self, ctx: ChatContext, agent: StaffDTO, text: str, content: object | None = None
    ) -> bool:
        async with self._scope(ctx):
            return await super().send_agent_message(ctx, agent, text, content)

    async def ask_for_rating(self, ctx: ChatContext, ticket_number: str | None) -> None:
        async with self._scope(ctx):
            await super().ask_for_rating(ctx, ticket_number)

    async def post_in_topic(self, ctx: ChatContext, notice: Notice) -> None:
        async with self._scope(ctx):
            await super().post_in_topic(ctx, notice)

    async def notify_agent(self, agent: StaffDTO, notice: Notice) -> None:
        async with self._scope(None):
            await super().notify_agent(agent, notice)


def console_bot(
    settings: Settings,
    translator: Translator,
    sessions: object,
    clock: object,
    session: object | None = None,
) -> Bot:
    """A Bot for the console with the bot runtime's request middlewares (outbound logging,
    403 handling, 429 retry, length guard): the same sender as the bot's replies."""
    from bot.deps import BotDeps
    from bot.runtime import build_bot, build_dispatcher

    bot = build_bot(settings, session=session)  # type: ignore[arg-type]
    deps = BotDeps(
        settings=settings,
        sessions=sessions,  # type: ignore[arg-type]
        clock=clock,  # type: ignore[arg-type]
        translator=translator,
        nlu=_Unused(),  # type: ignore[arg-type]
        kb=_Unused(),  # type: ignore[arg-type]
    )
    build_dispatcher(deps).runtime.wire(bot)
    return bot


class _Unused:
    """The console never feeds updates: NLU and knowledge base are never asked."""

    async def parse(self, text: str) -> object:
        raise RuntimeError("the console does not parse customer messages")

    def answer(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("the console does not answer customers")

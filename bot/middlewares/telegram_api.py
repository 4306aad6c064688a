"""Bot API request middlewares: what the bot does when Telegram says no.

Registered on the bot's session (`bot.session.middleware(...)`) in this order, outermost
first: outbound logging (interactions.py), `ForbiddenMiddleware`, `RetryAfterMiddleware`,
`LengthGuardMiddleware`. So a send is logged once, after it finally succeeded.

- 429 Too Many Requests (`TelegramRetryAfter`): wait `retry_after` seconds and try again, at
  most `max_attempts` times in all; a wait longer than `max_wait_s` is not attempted.
- 403 Forbidden (`TelegramForbiddenError`) on a private chat: the user blocked the bot (or
  deleted their account). The customer gets the `blocked_bot` tag and an `event` interaction
  — durably, even when the update that tried to send rolls back — and the error goes on to
  the caller (the error middleware treats it as expected, not as a crash).
- Texts longer than Telegram accepts (4096 characters, captions 1024) are shortened with an
  ellipsis instead of failing with 400.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import AnswerCallbackQuery, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot.middlewares.context import DbWriter
from bot.middlewares.interactions import record_blocked
from bot.rendering import truncate_html
from bot.telegram_html import plain_or_same
from crm_core.services import CrmServices

log = logging.getLogger("bot.telegram")

MAX_TEXT = 4096
MAX_CAPTION = 1024


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Retries a call that got 429, after the `retry_after` Telegram asked for."""

    def __init__(
        self,
        max_attempts: int = 3,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.max_attempts = max(1, max_attempts)
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.retries = 0

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt >= self.max_attempts or exc.retry_after > self.max_wait_s:
                    log.warning(
                        "%s: still rate-limited after %d attempt(s) (retry after %ss): giving up",
                        method.__api_method__,
                        attempt,
                        exc.retry_after,
                    )
                    raise
                log.info(
                    "%s: rate-limited by Telegram, retrying in %ss (attempt %d/%d)",
                    method.__api_method__,
                    exc.retry_after,
                    attempt + 1,
                    self.max_attempts,
                )
                self.retries += 1
                attempt += 1
                await self.sleep(exc.retry_after)


class ForbiddenMiddleware(BaseRequestMiddleware):
    """Records a 403 on a private chat in the CRM (the user blocked the bot), then re-raises."""

    def __init__(self, writer: DbWriter) -> None:
        self.writer = writer
        self.blocked = 0

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramForbiddenError:
            chat_id = getattr(method, "chat_id", None)
            if isinstance(chat_id, int) and chat_id > 0:
                self.blocked += 1
                log.warning(
                    "%s to chat %s: 403, the user blocked the bot", method.__api_method__, chat_id
                )

                async def mark(crm: CrmServices) -> None:
                    await record_blocked(
                        crm,
                        chat_id,
                        f"blocked_bot: Telegram refused {method.__api_method__} (403, the "
                        "customer blocked the bot or deleted the account)",
                    )

                try:
                    await self.writer.write(mark, durable=True)
                except Exception:
                    log.exception("could not record the block of chat %s", chat_id)
            raise


def _is_html(method: TelegramMethod[Any]) -> bool:
    """Whether Telegram parses this call's text as HTML (the bot's default parse mode)."""
    mode = getattr(method, "parse_mode", None)
    if isinstance(mode, Default):
        return True  # DefaultBotProperties(parse_mode="HTML"), see bot.runtime.build_bot
    return isinstance(mode, str) and mode.upper() == "HTML"


_RESPONSE_TYPES: dict[type, type] = {}


class ResponseTypePinMiddleware(BaseRequestMiddleware):
    """Keeps aiogram's `Response[<result type>]` classes alive for every method the bot calls.

    aiogram parses each Bot API result with `Response[method.__returning__]`; pydantic caches
    parametrised generic classes only weakly, so after a garbage collection the class is
    built again — a full pydantic schema build (tens of ms on a busy core) in the middle of
    a customer's reply, and 2-4 % of the bot's CPU in the profile of issue 8. One strong
    reference per method type (a few dozen classes per process) keeps them built."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in _RESPONSE_TYPES:
            _RESPONSE_TYPES[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


def _shorten(text: str, limit: int, html: bool) -> str:
    if html:
        return truncate_html(text, limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain_labels(markup: Any) -> Any:
    """Button labels are plain text in Telegram: labels made with `t()` (HTML) are shown as a
    person reads them ("&amp;" → "&", tags dropped)."""
    rows_attr = "inline_keyboard" if isinstance(markup, InlineKeyboardMarkup) else "keyboard"
    if not isinstance(markup, InlineKeyboardMarkup | ReplyKeyboardMarkup):
        return markup
    rows = getattr(markup, rows_attr)
    changed = False
    new_rows = []
    for row in rows:
        new_row = []
        for button in row:
            label = plain_or_same(button.text)
            if label != button.text:
                button = button.model_copy(update={"text": label})
                changed = True
            new_row.append(button)
        new_rows.append(new_row)
    return markup.model_copy(update={rows_attr: new_rows}) if changed else markup


class LengthGuardMiddleware(BaseRequestMiddleware):
    """Shortens texts and captions that Telegram would refuse as too long (HTML-aware: the
    visible text is measured and tags stay balanced), and shows button labels and callback
    alerts as plain text."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        html = _is_html(method)
        updates: dict[str, Any] = {}
        text = getattr(method, "text", None)
        if isinstance(method, AnswerCallbackQuery):
            if isinstance(text, str):
                updates["text"] = plain_or_same(text)
        elif isinstance(text, str):
            updates["text"] = _shorten(text, MAX_TEXT, html)
        caption = getattr(method, "caption", None)
        if isinstance(caption, str):
            updates["caption"] = _shorten(caption, MAX_CAPTION, html)
        markup = getattr(method, "reply_markup", None)
        if markup is not None:
            updates["reply_markup"] = _plain_labels(markup)
        changed = {
            k: v
            for k, v in updates.items()
            if v is not getattr(method, k) and v != getattr(method, k)
        }
        if changed:
            method = method.model_copy(update=changed)
        return await make_request(bot, method)

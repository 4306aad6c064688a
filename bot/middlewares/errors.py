"""When a handler fails: log the trace, answer the customer politely, keep the CRM record.

The failed update's unit of work has rolled back by the time this middleware sees the error,
so the inbound message is logged again in a short unit of work of its own, with an `event`
interaction naming the error type (never its message, which may hold customer data). The
apology is logged like every outbound message. 403 (the customer blocked the bot) is not an
error of ours: no apology can be delivered; it is recorded (see `telegram_api.py`).

`SecretRedactingFilter` keeps the bot token and the webhook secret out of every log line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import TelegramObject, Update

from bot.deps import BotDeps
from bot.i18n import pick_language
from bot.middlewares.context import (
    DbWriter,
    current_scope,
    event_chat,
    event_user,
    run_deferred,
)
from bot.middlewares.interactions import describe_inbound
from crm_core.services import CrmServices

log = logging.getLogger("bot.errors")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ErrorMiddleware(BaseMiddleware):
    """Catches every exception of an update: the update is handled (never re-raised)."""

    def __init__(self, deps: BotDeps, writer: DbWriter) -> None:
        self.deps = deps
        self.writer = writer
        self.errors = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        try:
            return await handler(event, data)
        except TelegramForbiddenError:
            log.warning("update %s: the user blocked the bot (403); recorded", event.update_id)
            await self._recover(event, data, None)
            return None
        except Exception as exc:
            self.errors += 1
            log.exception(
                "update %s failed in %s: %s",
                event.update_id,
                event.event_type,
                type(exc).__name__,
            )
            await self._recover(event, data, exc)
            return None
        finally:
            scope = current_scope()
            if scope is not None and scope.after and scope.crm is None:
                await run_deferred(scope, self.writer)

    async def _recover(
        self, update: Update, data: dict[str, Any], exc: BaseException | None
    ) -> None:
        """Record the failed update in the CRM again; apologise unless `exc` is None (403)."""
        chat = event_chat(update)
        user = event_user(update)
        if chat is None or chat.type != "private" or user is None or user.is_bot:
            return
        lang = data.get("lang") or pick_language(
            user.language_code, self.deps.settings.app.default_language
        )
        inbound = describe_inbound(update)

        async def record(crm: CrmServices) -> None:
            customer = await crm.customers.get_or_create_prospect(user.id, user.full_name, lang)
            conversation = await crm.conversations.open_or_get(customer.id, chat.id)
            if inbound is not None:
                await crm.conversations.log_interaction(
                    conversation.id, "inbound", inbound[0], external_id=inbound[1]
                )
            if exc is not None:
                await crm.conversations.log_interaction(
                    conversation.id,
                    "event",
                    f"error: the bot failed on this update ({type(exc).__name__})",
                )
            scope = current_scope()
            if scope is not None:  # the apology goes into this conversation
                scope.customer, scope.conversation_id = customer, conversation.id

        try:
            await self.writer.write(record)
        except Exception:
            log.exception("update %s: could not record the failure in the CRM", update.update_id)
        bot: Bot | None = data.get("bot")
        if bot is None or exc is None:
            return
        try:
            if update.callback_query is not None:
                await bot.answer_callback_query(update.callback_query.id)
            await bot.send_message(chat.id, self.deps.translator.t("common.error", lang))
        except TelegramAPIError as api_error:
            log.warning(
                "update %s: could not send the apology (%s)",
                update.update_id,
                type(api_error).__name__,
            )
        except Exception:
            log.exception("update %s: could not send the apology", update.update_id)


class SecretRedactingFilter(logging.Filter):
    """Replaces secrets (bot token, webhook secret, ...) in log records with `********`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "********")
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text = record.exc_text
            for secret in self.secrets:
                text = text.replace(secret, "********")
            record.exc_text = text
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_installed: SecretRedactingFilter | None = None


def install_secret_redaction(*secrets: str | None) -> SecretRedactingFilter:
    """Redact `secrets` from every log record of the process, whichever logger or handler
    (a log-record factory, so it also covers handlers added later, e.g. by pytest)."""
    global _installed
    new = [s for s in secrets if s]
    if _installed is not None:
        _installed.secrets = sorted(
            set(_installed.secrets) | set(SecretRedactingFilter(new).secrets),
            key=len,
            reverse=True,
        )
        return _installed
    flt = SecretRedactingFilter(new)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        flt.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = flt
    return flt

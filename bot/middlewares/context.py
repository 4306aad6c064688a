"""Unit of work per update, and who is writing (customer, language).

Besides the two middlewares, this module holds the *update scope*: a context variable that
says which update is being handled, and (while it is open) its unit of work. Code that runs
while an update is handled — handlers, and the Bot API request middlewares that log outbound
messages — finds it with `current_scope()`; `DbWriter.write` uses it to write in the update's
unit of work, or in a short one of its own when there is none.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, Update, User
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.deps import BotDeps, Texts
from bot.i18n import pick_language
from crm_core.clock import Clock
from crm_core.customers.schemas import CustomerDTO
from crm_core.db import unit_of_work
from crm_core.services import CrmServices

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
T = TypeVar("T")
DbAction = Callable[[CrmServices], Awaitable[Any]]


def event_user(update: Update) -> User | None:
    """The Telegram user behind an update, if any."""
    for event in (
        update.message,
        update.edited_message,
        update.callback_query,
        update.my_chat_member,
    ):
        if event is not None and getattr(event, "from_user", None) is not None:
            return event.from_user  # type: ignore[no-any-return]
    return None


def event_chat(update: Update) -> Chat | None:
    """The chat an update happened in, if any."""
    if update.message is not None:
        return update.message.chat
    if update.edited_message is not None:
        return update.edited_message.chat
    if update.callback_query is not None and update.callback_query.message is not None:
        return update.callback_query.message.chat
    if update.my_chat_member is not None:
        return update.my_chat_member.chat
    return None


def event_chat_type(update: Update) -> str | None:
    chat = event_chat(update)
    return chat.type if chat is not None else None


@dataclass
class UpdateScope:
    """The update being handled in this task (see `current_scope`)."""

    update_id: int
    chat_id: int | None = None
    holds_db_lock: bool = False
    """The update holds the process-wide database lock (embedded SQLite)."""
    crm: CrmServices | None = None
    """The update's unit of work, while it is open."""
    customer: CustomerDTO | None = None
    conversation_id: int | None = None
    after: list[DbAction] = field(default_factory=list)
    """Durable writes to run after the unit of work ended (committed or rolled back)."""
    session_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises use of the session by concurrent sends of one handler (asyncio.gather)."""
    touches: dict[int, tuple[datetime, bool]] = field(default_factory=dict)
    """Conversations whose interactions were logged in this update's unit of work: the time
    of the last one, and whether one of them was a customer contact (not an event). Their
    last activity (and the customer's last contact) are moved once, before the commit."""

    def defer_touch(self, conversation_id: int, at: datetime, *, customer_contact: bool) -> None:
        """Remember to touch this conversation before the update's unit of work commits."""
        previous = self.touches.get(conversation_id)
        if previous is not None:
            at = max(at, previous[0])
            customer_contact = customer_contact or previous[1]
        self.touches[conversation_id] = (at, customer_contact)

    async def apply_touches(self) -> None:
        """Move last activity / last contact of the conversations logged in this update
        (in its unit of work, which must be open); called by `UnitOfWorkMiddleware`."""
        pending, self.touches = self.touches, {}
        if self.crm is None:
            return
        for conversation_id, (at, customer_contact) in pending.items():
            await self.crm.conversations.touch(
                conversation_id, at, customer_contact=customer_contact
            )


_SCOPE: contextvars.ContextVar[UpdateScope | None] = contextvars.ContextVar(
    "hwcrm_update_scope", default=None
)


def current_scope() -> UpdateScope | None:
    """The update being handled by the current task, or None (scheduler, startup, ...)."""
    return _SCOPE.get()


@contextmanager
def update_scope(scope: UpdateScope) -> Iterator[UpdateScope]:
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


class DbWriter:
    """Writes to the CRM from anywhere in the bot, in the right transaction.

    - inside an update whose unit of work is open: in that unit of work (commits or rolls
      back with it), unless `durable=True`, which defers the write until the update's unit of
      work has ended (so that it survives a rollback);
    - otherwise: in a short unit of work of its own. With embedded SQLite (one writer at a
      time) that short unit of work first takes the process-wide database lock, unless the
      current update already holds it.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        crm_settings: Any,
        db_lock: asyncio.Lock | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.crm_settings = crm_settings
        self.db_lock = db_lock

    async def write(self, action: DbAction, *, durable: bool = False) -> Any:
        scope = current_scope()
        if scope is not None and scope.crm is not None:
            if durable:
                scope.after.append(action)
                return None
            async with scope.session_lock:
                return await action(scope.crm)
        if self.db_lock is None or (scope is not None and scope.holds_db_lock):
            return await self.run(action)
        async with self.db_lock:
            return await self.run(action)

    async def run(self, action: DbAction) -> Any:
        """`action` in a new unit of work (no locking)."""
        async with unit_of_work(self.sessions) as session:
            return await action(CrmServices(session, self.clock, self.crm_settings))


class UnitOfWorkMiddleware(BaseMiddleware):
    """One transaction per update: commit when the handler succeeds, roll back when it raises.

    Durable writes deferred during the update (e.g. "this customer blocked the bot") run
    afterwards, each in its own short unit of work, whatever the outcome.
    """

    def __init__(self, deps: BotDeps, writer: DbWriter | None = None) -> None:
        self.deps = deps
        self.writer = writer or DbWriter(deps.sessions, deps.clock, deps.settings.crm)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        scope = current_scope()
        if scope is None:  # fed without the gate (unit tests of single middlewares)
            assert isinstance(event, Update)
            with update_scope(UpdateScope(update_id=event.update_id)):
                return await self(handler, event, data)
        async with unit_of_work(self.deps.sessions) as session:
            keep_loaded_objects(session)
            crm = CrmServices(
                session,
                self.deps.clock,
                self.deps.settings.crm,
                self.deps.settings.campaigns,
                texts=self.deps.translator,
            )
            data["crm"] = crm
            scope.crm = crm
            try:
                result = await handler(event, data)
                await scope.apply_touches()
            except BaseException:
                # rolled back: what the update created may not exist any more. Deferred
                # writes stay in the scope: the error middleware runs them after it has
                # recorded the failed update (the gate runs any that are left).
                scope.customer, scope.conversation_id = None, None
                scope.touches = {}
                raise
            finally:
                scope.crm = None
        await run_deferred(scope, self.writer)
        return result


def keep_loaded_objects(session: AsyncSession) -> None:
    """Hold every object the session loads until the unit of work ends.

    SQLAlchemy's identity map keeps objects weakly: a service that returns a DTO drops its
    ORM object, so the next service asking for the same row (`session.get`) queries the
    database again. One update asks for its customer and conversation several times (who is
    writing, inbound log, outbound logs): kept here, those are identity-map hits.
    """
    kept: list[object] = []
    session.info["hwcrm_kept"] = kept

    def keep(_session: Any, instance: object) -> None:
        kept.append(instance)

    sa_event.listen(session.sync_session, "loaded_as_persistent", keep)
    sa_event.listen(session.sync_session, "pending_to_persistent", keep)


async def run_deferred(scope: UpdateScope, writer: DbWriter) -> None:
    """Run the durable writes deferred during an update, each in its own unit of work."""
    pending, scope.after = scope.after, []
    for action in pending:
        try:
            await writer.run(action)
        except Exception:
            logging.getLogger(__name__).exception(
                "deferred CRM write after update %s failed", scope.update_id
            )


class CustomerMiddleware(BaseMiddleware):
    """Loads the customer writing in a private chat (unknown people become prospects) and
    picks their language: the customer's saved language (set by `/language` or on record),
    else Telegram's `language_code`, else the configured default."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user = event_user(event)
        crm: CrmServices = data["crm"]
        default = self.deps.settings.app.default_language
        lang = pick_language(user.language_code if user else None, default)
        customer = None
        if user is not None and not user.is_bot and event_chat_type(event) == "private":
            customer = await crm.customers.get_or_create_prospect(user.id, user.full_name, lang)
            lang = customer.language if customer.language in ("zh", "en") else lang
        scope = current_scope()
        if scope is not None:
            scope.customer = customer
        data["customer"] = customer
        data["lang"] = lang
        data["t"] = Texts(self.deps.translator, lang)
        data["deps"] = self.deps
        return await handler(event, data)

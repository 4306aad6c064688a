"""The audit trail: every staff read of a customer record, every change, export and erase."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from crm_core.audit.models import AuditEntry
from crm_core.audit.schemas import AuditEntryDTO
from crm_core.clock import Clock
from crm_core.errors import ValidationFailed

log = logging.getLogger(__name__)

ACTOR_MAX = 64
ACTION_MAX = 32
ENTITY_MAX = 32
ENTITY_ID_MAX = 64


class AuditService:
    """Writes and reads audit entries.

    `record()` writes in the caller's transaction (and is rolled back with it).
    `record_durable()` is for entries that must exist even when the caller's transaction rolls
    back, such as a denied access: the entry is written in the transaction as usual, and if
    that transaction ends without a commit (rollback or close), it is written again on its own
    right after (no second connection is used while the caller's transaction is open, so this
    works on SQLite too).
    """

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    async def record(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str | int | None = None,
        customer_id: int | None = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> AuditEntryDTO:
        """Add an entry in the current transaction and return it."""
        entry = self._build(actor, action, entity, entity_id, customer_id, reason, details)
        self._session.add(entry)
        await self._session.flush()
        return AuditEntryDTO.model_validate(entry)

    async def record_durable(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str | int | None = None,
        customer_id: int | None = None,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> AuditEntryDTO:
        """Add an entry that is kept even when the caller's transaction rolls back."""
        dto = await self.record(actor, action, entity, entity_id, customer_id, reason, details)
        _pending_durable(self._session.sync_session).append(dto.model_dump(exclude={"id"}))
        return dto

    async def for_customer(self, customer_id: int, limit: int | None = None) -> list[AuditEntryDTO]:
        """Entries about one customer, oldest first (the newest `limit` when given)."""
        stmt = select(AuditEntry).where(AuditEntry.customer_id == customer_id)
        if limit is not None:
            stmt = stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
            rows = list((await self._session.scalars(stmt)).all())
            rows.reverse()
        else:
            stmt = stmt.order_by(AuditEntry.at, AuditEntry.id)
            rows = list((await self._session.scalars(stmt)).all())
        return [AuditEntryDTO.model_validate(r) for r in rows]

    async def by_actor(
        self, actor: str, *, action: str | None = None, since: datetime | None = None
    ) -> list[AuditEntryDTO]:
        """Entries written by one actor (optionally one action, since a time), oldest first."""
        stmt = select(AuditEntry).where(AuditEntry.actor == actor)
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        rows = (await self._session.scalars(stmt.order_by(AuditEntry.at, AuditEntry.id))).all()
        return [AuditEntryDTO.model_validate(r) for r in rows]

    async def count(self, actor: str, action: str, since: datetime) -> int:
        """How many `action` entries `actor` produced since `since`."""
        stmt = (
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.actor == actor, AuditEntry.action == action, AuditEntry.at >= since)
        )
        return int((await self._session.scalar(stmt)) or 0)

    def _build(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str | int | None,
        customer_id: int | None,
        reason: str,
        details: dict[str, Any] | None,
    ) -> AuditEntry:
        actor = _required("actor", actor, ACTOR_MAX)
        action = _required("action", action, ACTION_MAX)
        entity = _required("entity", entity, ENTITY_MAX)
        entity_text = None if entity_id is None else str(entity_id)
        if entity_text is not None and len(entity_text) > ENTITY_ID_MAX:
            raise ValidationFailed(f"audit entity id is longer than {ENTITY_ID_MAX} characters")
        return AuditEntry(
            at=self._clock.now(),
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_text,
            customer_id=customer_id,
            reason=(reason or "").strip(),
            details=dict(details or {}),
        )


def _required(name: str, value: str, max_len: int) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationFailed(f"audit {name} must not be empty")
    if len(text) > max_len:
        raise ValidationFailed(f"audit {name} is longer than {max_len} characters: {text!r}")
    return text


_DURABLE_KEY = "hwcrm.audit.durable"


def _pending_durable(session: Session) -> list[dict[str, Any]]:
    """The durable entries of the session's current transaction (hooks installed once)."""
    pending: list[dict[str, Any]] | None = session.info.get(_DURABLE_KEY)
    if pending is None:
        pending = []
        session.info[_DURABLE_KEY] = pending
        event.listen(session, "after_commit", _forget_durable)
        event.listen(session, "after_transaction_end", _rewrite_durable)
    return pending


def _forget_durable(session: Session) -> None:
    session.info.get(_DURABLE_KEY, []).clear()


def _rewrite_durable(session: Session, transaction: SessionTransaction) -> None:
    """When a transaction ends without a commit, write its durable entries on their own."""
    pending: list[dict[str, Any]] = session.info.get(_DURABLE_KEY, [])
    if not pending or transaction.parent is not None:
        return
    rows, pending[:] = list(pending), []
    try:
        # Runs inside the async session's greenlet, so the sync engine API works here.
        bind = session.get_bind()
        engine = bind.engine if isinstance(bind, Connection) else bind
        with engine.connect() as conn:
            conn.execute(insert(AuditEntry), rows)
            conn.commit()
    except Exception:
        log.exception("could not keep %d audit entries after a rollback", len(rows))

"""Staff members (roles, Telegram ids, hashed passwords) and the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.audit.models import AuditEntry
from crm_core.audit.service import AuditService
from crm_core.clock import FixedClock
from crm_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crm_core.staff.models import StaffUser
from crm_core.staff.service import StaffService
from tests.conftest import Database

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

# Cheap parameters keep the tests fast; production uses argon2-cffi's defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"


def staff_service(session: AsyncSession, clock: FixedClock) -> StaffService:
    return StaffService(session, clock, hasher=FAST_HASHER)


async def test_staff_member_with_login_gets_an_argon2_hash_never_the_password(session, clock):
    svc = staff_service(session, clock)
    dto = await svc.add_staff(
        "Zhang Min", "agent", telegram_user_id=5001, login="zhang", password=PASSWORD
    )
    assert (dto.name, dto.role, dto.login, dto.telegram_user_id) == (
        "Zhang Min",
        "agent",
        "zhang",
        5001,
    )
    assert dto.has_password and dto.active and dto.actor == f"staff:{dto.id}"
    assert PASSWORD not in dto.model_dump_json()
    row = await session.get(StaffUser, dto.id)
    assert row is not None and row.password_hash is not None
    assert row.password_hash.startswith("$argon2") and PASSWORD not in row.password_hash


async def test_login_with_the_right_password_only(session, clock):
    svc = staff_service(session, clock)
    dto = await svc.add_staff("Zhang Min", "admin", login="zhang", password=PASSWORD)
    assert (await svc.authenticate("zhang", PASSWORD)).id == dto.id  # type: ignore[union-attr]
    assert await svc.authenticate("zhang", "wrong password") is None
    assert await svc.authenticate("nobody", PASSWORD) is None
    await svc.deactivate(dto.id)
    assert await svc.authenticate("zhang", PASSWORD) is None


async def test_staff_rules_are_enforced_with_clear_messages(session, clock):
    svc = staff_service(session, clock)
    with pytest.raises(ValidationFailed, match="unknown role 'boss'"):
        await svc.add_staff("A", "boss")
    with pytest.raises(ValidationFailed, match="needs a password"):
        await svc.add_staff("A", "agent", login="a-login")
    with pytest.raises(ValidationFailed, match="at least 8"):
        await svc.add_staff("A", "agent", login="a-login", password="short")
    with pytest.raises(ValidationFailed, match="without a login"):
        await svc.add_staff("A", "agent", password=PASSWORD)
    with pytest.raises(ValidationFailed, match="name"):
        await svc.add_staff(" ", "agent")


async def test_telegram_id_and_login_are_unique_among_staff(session, clock):
    svc = staff_service(session, clock)
    await svc.add_staff("A", "agent", telegram_user_id=5001, login="alogin", password=PASSWORD)
    with pytest.raises(Conflict, match="Telegram user 5001 already belongs"):
        await svc.add_staff("B", "agent", telegram_user_id=5001)
    with pytest.raises(Conflict, match="already taken"):
        await svc.add_staff("B", "agent", login="alogin", password=PASSWORD)


async def test_deactivated_staff_drop_out_of_lists_and_telegram_lookups(session, clock):
    svc = staff_service(session, clock)
    a = await svc.add_staff("A", "agent", telegram_user_id=5001)
    b = await svc.add_staff("B", "marketer")
    assert (await svc.get_by_telegram_id(5001)).id == a.id  # type: ignore[union-attr]
    await svc.deactivate(a.id)
    assert [s.id for s in await svc.list_staff()] == [b.id]
    assert [s.id for s in await svc.list_staff(include_inactive=True)] == [a.id, b.id]
    assert await svc.get_by_telegram_id(5001) is None
    assert (await svc.get_by_telegram_id(5001, include_inactive=True)).active is False  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await svc.deactivate(999)


async def test_require_role_refuses_other_roles_and_deactivated_staff(session, clock):
    svc = staff_service(session, clock)
    marketer = await svc.add_staff("M", "marketer")
    assert StaffService.require_role(marketer, "marketer", "admin") is marketer
    with pytest.raises(PermissionDenied, match="needs the role admin"):
        StaffService.require_role(marketer, "admin")
    gone = await svc.deactivate(marketer.id)
    with pytest.raises(PermissionDenied, match="deactivated"):
        StaffService.require_role(gone, "marketer")
    with pytest.raises(PermissionDenied):
        StaffService.require_role(None, "agent")


async def test_audit_entries_are_listed_per_customer_in_order(session, clock):
    audit = AuditService(session, clock)
    await audit.record("staff:1", "read", "customer", 7, 7, "ticket follow-up")
    clock.advance(timedelta(minutes=1))
    await audit.record("cli", "read", "customer", 8, 8, "lookup")
    await audit.record("staff:2", "update", "customer", 7, 7, details={"fields": ["email"]})
    entries = await audit.for_customer(7)
    assert [(e.actor, e.action) for e in entries] == [("staff:1", "read"), ("staff:2", "update")]
    assert entries[0].entity_id == "7" and entries[0].reason == "ticket follow-up"
    assert entries[1].details == {"fields": ["email"]} and entries[1].at == clock.now()
    assert [e.action for e in await audit.for_customer(7, limit=1)] == ["update"]


async def test_audit_entry_needs_an_actor_and_an_action(session, clock):
    audit = AuditService(session, clock)
    with pytest.raises(ValidationFailed, match="actor"):
        await audit.record("", "read", "customer")
    with pytest.raises(ValidationFailed, match="action"):
        await audit.record("cli", " ", "customer")


async def test_durable_audit_entry_survives_the_callers_rollback(db: Database, clock):
    async with db.sessions() as s:
        audit = AuditService(s, clock)
        await audit.record("cli", "read", "customer", 1, 1, "rolled back with the caller")
        await audit.record_durable("staff:9", "denied", "customer", 1, 1, "kept")
        await s.rollback()
    async with db.sessions() as check:
        rows = (await check.scalars(select(AuditEntry))).all()
    assert [(r.actor, r.action, r.reason, r.at) for r in rows] == [
        ("staff:9", "denied", "kept", clock.now())
    ]


async def test_durable_audit_entry_is_written_once_when_the_caller_commits(db: Database, clock):
    async with db.sessions() as s:
        audit = AuditService(s, clock)
        await audit.record_durable("staff:9", "denied", "customer", 1, 1, "kept")
        await s.commit()
        await audit.record("cli", "read", "customer", 1, 1, "later, rolled back")
        await s.rollback()
    async with db.sessions() as check:
        rows = (await check.scalars(select(AuditEntry))).all()
    assert [r.action for r in rows] == ["denied"]


async def test_durable_audit_entry_survives_a_session_closed_without_commit(db: Database, clock):
    async with db.sessions() as s:
        await AuditService(s, clock).record_durable("staff:9", "denied", "customer", 1, 1, "kept")
    async with db.sessions() as check:
        rows = (await check.scalars(select(AuditEntry))).all()
    assert [r.actor for r in rows] == ["staff:9"]

"""Known console passwords for the demo staff (`hwcrm demo seed`, `hwcrm start`).

Demo data only: printed on purpose so that anyone trying the product can sign in. A real
deployment adds its own staff with `hwcrm staff add` and never seeds the demo.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import Clock
from crm_core.demo.generator import STAFF
from crm_core.staff.models import StaffUser
from crm_core.staff.service import StaffService


def demo_password(role: str) -> str:
    return f"hwcrm-demo-{role}"


async def set_demo_passwords(session: AsyncSession, clock: Clock) -> list[tuple[str, str, str]]:
    """Give the demo logins that have no password yet their demo password; returns
    (login, role, password) of every demo login that can sign in with it."""
    service = StaffService(session, clock)
    out: list[tuple[str, str, str]] = []
    for _name, role, login, _tg, _langs in STAFF:
        staff = await session.scalar(select(StaffUser).where(StaffUser.login == login))
        if staff is None or not staff.active:
            continue
        if staff.password_hash is None:
            await service.set_password(staff.id, demo_password(role))
        elif not await service.authenticate(login, demo_password(role)):
            continue  # somebody changed it: not a demo password any more
        out.append((login, role, demo_password(role)))
    return out

"""Demo staff get known console passwords after `demo seed` (and `start`); a password
somebody changed is never reset or printed."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import FixedClock
from crm_core.demo import DemoOptions, seed_demo
from crm_core.demo.logins import demo_password, set_demo_passwords
from crm_core.staff.models import StaffUser
from crm_core.staff.service import StaffService

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


async def test_demo_staff_can_sign_in_with_the_printed_passwords(
    session: AsyncSession, clock: FixedClock
) -> None:
    await seed_demo(session, DemoOptions(today=date(2026, 6, 15), customers=5))
    logins = await set_demo_passwords(session, clock)
    assert ("admin", "admin", "hwcrm-demo-admin") in logins
    assert {role for _, role, _ in logins} == {"admin", "agent", "marketer"}
    staff = StaffService(session, clock)
    assert (await staff.authenticate("wang.fang", demo_password("agent"))) is not None
    sun = await session.scalar(select(StaffUser).where(StaffUser.login == "sun.li"))
    assert sun is not None
    await staff.set_password(sun.id, "my own secret 42")
    again = await set_demo_passwords(session, clock)
    assert "sun.li" not in {login for login, _, _ in again}
    assert (await staff.authenticate("sun.li", "my own secret 42")) is not None

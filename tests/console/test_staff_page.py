"""Admins manage staff in the console: add (argon2 password), set a password, disable — the
member's sessions end at once; an admin cannot disable themself."""

from __future__ import annotations

import pytest

from tests.console.conftest import Console, csrf_of, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


async def test_admin_adds_a_member_who_can_sign_in_and_is_locked_out_when_disabled(
    console: Console,
) -> None:
    async with console.client() as admin:
        await login(admin, "admin")
        page = await admin.get("/admin/staff")
        csrf = csrf_of(page.text)
        added = await admin.post(
            "/admin/staff",
            data={
                "csrf": csrf,
                "name": "赵磊",
                "role": "agent",
                "login": "zhao.lei",
                "password": "first pass 123",
                "languages": "zh,en",
            },
        )
        assert added.status_code == 303
        short = await admin.post(
            "/admin/staff",
            data={
                "csrf": csrf,
                "name": "X",
                "role": "agent",
                "login": "xx.yy",
                "password": "short",
            },
        )
        assert short.status_code == 422 and "8 characters" in short.text
        async for crm in console.crm():
            [zhao] = [m for m in await crm.staff.list_staff() if m.login == "zhao.lei"]
        async with console.client() as agent:
            assert (await login(agent, "zhao.lei", "first pass 123")).status_code == 303
            assert (await agent.get("/inbox")).status_code == 200
            await admin.post(
                f"/admin/staff/{zhao.id}/password",
                data={"csrf": csrf, "password": "second pass 456"},
            )
            assert (await agent.get("/inbox")).status_code == 303  # signed out everywhere
            assert (await login(agent, "zhao.lei", "second pass 456")).status_code == 303
            await admin.post(f"/admin/staff/{zhao.id}/disable", data={"csrf": csrf})
            assert (await agent.get("/inbox")).status_code == 303
            assert (await login(agent, "zhao.lei", "second pass 456")).status_code == 401
        own = await admin.post(
            f"/admin/staff/{console.staff['admin']}/disable", data={"csrf": csrf}
        )
        assert own.status_code == 403
        assert (await admin.get("/admin/staff")).status_code == 200

"""Console sign-in: argon2 passwords, server-side sessions with secure cookies, CSRF,
lockout and rate limit, logout, per-user language — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm_core.access.models import ConsoleSession, LoginAttempt
from crm_core.clock import FixedClock
from tests.console.conftest import PASSWORD, Console, csrf_of, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


async def test_sign_in_sets_a_server_side_session_cookie_and_sign_out_ends_it(
    console: Console,
) -> None:
    async with console.client() as client:
        assert (await client.get("/")).headers["location"] == "/login?next=/"
        response = await login(client, "agent")
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "hwcrm_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
        assert "Secure" not in cookie  # plain http: no Secure flag (it would never be sent)
        token = client.cookies["hwcrm_session"]
        page = await client.get("/")
        assert page.status_code == 200 and "Agent User" in page.text
        # Only the hash of the token is stored.
        async for crm in console.crm():
            hashes = list(await crm.session.scalars(select(ConsoleSession.token_hash)))
        assert token not in hashes and len(hashes) == 1
        out = await client.post("/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
    async with console.client(cookies={"hwcrm_session": token}) as replay:
        assert (await replay.get("/")).status_code == 303  # the old cookie is dead


async def test_behind_https_the_cookie_is_secure(console: Console) -> None:
    async with console.client(base_url="https://console") as client:
        response = await login(client, "admin")
        assert "Secure" in response.headers["set-cookie"]


async def test_wrong_password_is_refused_without_saying_which_part_was_wrong(
    console: Console,
) -> None:
    async with console.client() as client:
        wrong = await login(client, "agent", "not the password")
        unknown = await login(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong login or password." in wrong.text and "Wrong login or password." in unknown.text


async def test_login_without_the_forms_csrf_token_is_refused(console: Console) -> None:
    async with console.client() as client:
        response = await client.post(
            "/login", data={"login": "agent", "password": PASSWORD, "csrf": "forged"}
        )
    assert response.status_code == 400 and "hwcrm_session" not in response.headers.get(
        "set-cookie", ""
    )


async def test_state_changing_requests_need_the_sessions_csrf_token(console: Console) -> None:
    async with console.client() as client:
        await login(client, "agent")
        page = await client.get("/")
        assert (await client.post("/logout", data={})).status_code == 403
        assert (await client.post("/logout", data={"csrf": "x" * 43})).status_code == 403
        assert (await client.get("/")).status_code == 200  # still signed in
        ok = await client.post("/logout", headers={"X-CSRF-Token": csrf_of(page.text)})
        assert ok.status_code == 303


async def test_five_failures_lock_the_login_even_for_the_right_password(
    console: Console, clock: FixedClock
) -> None:
    async with console.client() as client:
        for _ in range(5):
            assert (await login(client, "agent", "wrong password!")).status_code == 401
        locked = await login(client, "agent")
        assert locked.status_code == 429 and "Try again in 15 minute(s)" in locked.text
        assert int(locked.headers["retry-after"]) == 900
        clock.advance(timedelta(minutes=16))
        assert (await login(client, "agent")).status_code == 303
    async for crm in console.crm():
        rows = list(await crm.session.scalars(select(LoginAttempt.success)))
    assert rows.count(False) == 6 and rows.count(True) == 1


async def test_too_many_attempts_from_one_address_are_rate_limited(console: Console) -> None:
    console.app.state.console.access = type(console.app.state.console.access)(login_ip_limit=3)
    async with console.client() as client:
        for who in ("a1", "a2", "a3"):
            assert (await login(client, who, "whatever123")).status_code == 401
        limited = await login(client, "admin")
    assert limited.status_code == 429 and "Wait a minute" in limited.text


async def test_a_session_ends_after_idling_and_when_the_staff_member_is_disabled(
    console: Console, clock: FixedClock
) -> None:
    async with console.client() as client:
        await login(client, "agent")
        clock.advance(timedelta(hours=1))
        assert (await client.get("/")).status_code == 200
        clock.advance(timedelta(hours=2, minutes=1))
        assert (await client.get("/")).status_code == 303  # idle > 2 h
        await login(client, "agent")
        async for crm in console.crm():
            await crm.staff.deactivate(console.staff["agent"])
        assert (await client.get("/")).status_code == 303


async def test_the_ui_language_is_per_user_and_remembered(console: Console) -> None:
    async with console.client() as client:
        await login(client, "marketer")
        page = await client.get("/")
        assert "Dashboard" in page.text and 'lang="en"' in page.text
        switched = await client.post(
            "/language", data={"csrf": csrf_of(page.text), "language": "zh", "next": "/"}
        )
        assert switched.status_code == 303
        page = await client.get("/")
        assert "概览" in page.text and 'lang="zh-CN"' in page.text
    async with console.client() as again:
        await login(again, "marketer")
        assert "概览" in (await again.get("/")).text
    async for crm in console.crm():
        count = await crm.session.scalar(select(func.count()).select_from(ConsoleSession))
    assert count == 2


async def test_next_never_redirects_to_another_site(console: Console) -> None:
    async with console.client() as client:
        page = await client.get("/login")
        import re

        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        response = await client.post(
            "/login",
            data={
                "login": "admin",
                "password": PASSWORD,
                "csrf": token.group(1),
                "next": "//evil.example/",
            },
        )
    assert response.headers["location"] == "/"


async def test_behind_a_proxy_prefix_links_and_redirects_carry_the_root_path(
    console: Console,
) -> None:
    import httpx

    transport = httpx.ASGITransport(app=console.app, root_path="/crm", client=("10.0.0.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        first = await client.get("/")
        assert first.headers["location"] == "/crm/login?next=/"
        page = await client.get("/login")
        assert 'href="/crm/static/console.css"' in page.text
        assert 'action="/crm/login"' in page.text
        schema = (await client.get("/openapi.json")).json()
    assert schema["servers"] == [{"url": "/crm"}]

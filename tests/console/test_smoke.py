from __future__ import annotations

import pytest

from tests.console.conftest import Console, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


async def test_login_dashboard_logout(console: Console) -> None:
    async with console.client() as client:
        r = await client.get("/")
        assert r.status_code == 303 and "/login" in r.headers["location"]
        r = await login(client, "admin")
        assert r.status_code == 303, r.text
        r = await client.get("/")
        assert r.status_code == 200, r.text
        assert "Dashboard" in r.text

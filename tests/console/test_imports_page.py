"""The imports page (admins): an upload is checked as a dry run with a per-row report, kept
server-side under a random id, then committed (all-or-nothing unless partial) or discarded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_core.audit.models import AuditEntry
from crm_core.customers.models import Customer
from tests.console.conftest import Console, csrf_of, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

BAD_CSV = (
    b"name,phone,email\n"
    b"Grace Hopper,13800138111,grace@example.com\n"
    b"Too Many,13800138112,b@example.com,surprise\n"
    b"Ada Lovelace,not a phone,ada@example.com\n"
)


@pytest.fixture
def console_data(console: Console, tmp_path: Path) -> Console:
    console.container.settings.app.data_dir = tmp_path / "var"
    return console


async def _count(console: Console) -> int:
    async for crm in console.crm():
        return int(await crm.session.scalar(select(func.count()).select_from(Customer)) or 0)
    raise AssertionError


async def test_an_upload_with_errors_shows_the_row_report_and_writes_nothing_until_committed(
    console_data: Console, tmp_path: Path
) -> None:
    console = console_data
    before = await _count(console)
    async with console.client() as client:
        await login(client, "admin")
        csrf = csrf_of((await client.get("/admin/imports")).text)
        report = await client.post(
            "/admin/imports",
            data={"csrf": csrf, "entity": "customers"},
            files={"file": ("../../etc/evil.csv", BAD_CSV, "text/csv")},
        )
        assert report.status_code == 200, report.text
        assert 'data-import-state="dry_run"' in report.text
        assert 'data-row="3"' in report.text and "has 4 values but the header has 3" in report.text
        assert 'data-row="4"' in report.text
        assert '<td data-count="rejected_rows">2</td>' in report.text
        assert '<td data-count="inserted">1</td>' in report.text
        assert await _count(console) == before  # a dry run wrote nothing
        # Kept server-side under a random id; the client's file name is never a path.
        [upload_id] = re.findall(r"/admin/imports/([A-Za-z0-9_-]{22})/commit", report.text)
        kept = tmp_path / "var" / "console-imports"
        assert sorted(p.name for p in kept.iterdir()) == [f"{upload_id}.csv", f"{upload_id}.json"]

        # All-or-nothing: a commit with rejected rows writes nothing and keeps the upload.
        refused = await client.post(f"/admin/imports/{upload_id}/commit", data={"csrf": csrf})
        assert 'data-import-state="rejected"' in refused.text
        assert await _count(console) == before
        # Only the valid rows.
        done = await client.post(
            f"/admin/imports/{upload_id}/commit", data={"csrf": csrf, "partial": "true"}
        )
        assert 'data-import-state="committed"' in done.text, done.text
        assert await _count(console) == before + 1
        assert list(kept.iterdir()) == []  # committed: the upload is gone
        again = await client.post(f"/admin/imports/{upload_id}/commit", data={"csrf": csrf})
        assert again.status_code == 404
    async for crm in console.crm():
        audit = await crm.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.actor == f"staff:{console.staff['admin']}")
        )
        assert audit and audit >= 1  # the import is audited as the admin


async def test_a_discarded_upload_is_deleted_and_guessed_ids_are_refused(
    console_data: Console, tmp_path: Path
) -> None:
    console = console_data
    async with console.client() as client:
        await login(client, "admin")
        csrf = csrf_of((await client.get("/admin/imports")).text)
        report = await client.post(
            "/admin/imports",
            data={"csrf": csrf, "entity": "products"},
            files={"file": ("p.csv", b"sku,name\n", "text/csv")},
        )
        [upload_id] = set(re.findall(r"/admin/imports/([A-Za-z0-9_-]{22})/discard", report.text))
        for bad in ("..%2F..%2Fetc%2Fpasswd", "short", "A" * 22):
            response = await client.post(f"/admin/imports/{bad}/commit", data={"csrf": csrf})
            assert response.status_code == 404, bad
        gone = await client.post(f"/admin/imports/{upload_id}/discard", data={"csrf": csrf})
        assert gone.status_code == 303
        assert list((tmp_path / "var" / "console-imports").iterdir()) == []
        no_csrf = await client.post("/admin/imports", data={"entity": "customers"})
        assert no_csrf.status_code == 403

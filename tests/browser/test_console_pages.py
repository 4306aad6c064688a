"""The console in a real browser (headless Chromium): sign-in and sign-out, a customer's 360
view (audited), an admin page refused to a marketer, and a handoff claimed and answered in
the inbox that the customer receives through the bot (the fake Bot API records it)."""

from __future__ import annotations

from typing import Any

import pytest

from crm_core.demo.logins import demo_password
from tests.browser.conftest import LiveConsole, sign_in

pytestmark = pytest.mark.usefixtures("sqlite_template")


def test_an_agent_signs_in_and_out_and_the_session_ends(page: Any) -> None:
    page.goto("/customers")
    assert "/login" in page.url  # not signed in: sent to the login form
    page.fill("#login", "wang.fang")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".flash.bad").is_visible()
    page.fill("#password", demo_password("agent"))
    page.click("button[type=submit]")
    page.wait_for_selector("header .me")
    assert page.url.endswith("/customers")  # back where the agent wanted to go
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["hwcrm_session"]["httpOnly"] and cookies["hwcrm_session"]["sameSite"] == "Lax"
    page.click("header form[action$='/logout'] button")
    page.wait_for_selector("#login")
    page.goto("/inbox")
    assert "/login" in page.url  # the old session no longer opens pages


def test_find_a_customer_and_open_the_360_view_writes_an_audit_row(
    page: Any, live_console: LiveConsole
) -> None:
    [(customer_id, name, phone)] = live_console.sql(
        "SELECT id, name, phone FROM customers WHERE phone IS NOT NULL ORDER BY id LIMIT 1"
    )
    sign_in(page, "admin", demo_password("admin"))
    page.click("header a[data-page=customers]")
    page.fill("input[name=q]", phone)
    page.click("form.card button[type=submit]")
    page.click(f"a[href$='/customers/{customer_id}']")
    page.wait_for_selector("h1")
    assert name in page.locator("h1").inner_text()
    [(staff_id,)] = live_console.sql("SELECT id FROM staff_users WHERE login = 'admin'")
    rows = live_console.sql(
        "SELECT actor, action, entity, reason FROM audit_log "
        "WHERE customer_id = :c AND action = 'read' ORDER BY id",
        c=customer_id,
    )
    assert (f"staff:{staff_id}", "read", "customer", "console: customer 360 view") in [
        tuple(r) for r in rows
    ]


def test_a_marketer_is_refused_on_an_admin_page(page: Any) -> None:
    sign_in(page, "sun.li", demo_password("marketer"))
    assert page.locator("header a[data-page=staff]").count() == 0  # not offered
    response = page.goto("/admin/staff")
    assert response is not None and response.status == 403
    assert "marketer" in page.locator("main").inner_text()
    response = page.goto("/admin/apikeys")
    assert response is not None and response.status == 403


def test_an_agent_claims_and_answers_a_handoff_and_the_customer_gets_it_on_telegram(
    page: Any, live_console: LiveConsole
) -> None:
    from crm_core.conversations.handoff import HandoffService
    from crm_core.db import create_engine, create_session_factory, unit_of_work
    from crm_core.services import CrmServices

    [(customer_id, chat_id, name)] = live_console.sql(
        "SELECT id, telegram_user_id, name FROM customers "
        "WHERE telegram_user_id IS NOT NULL ORDER BY id DESC LIMIT 1"
    )

    async def customer_asks_for_a_person() -> int:
        from app.settings import load_settings
        from crm_core.clock import SystemClock

        engine = create_engine(live_console.db_url)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                crm = CrmServices(session, SystemClock(), load_settings().crm)
                conv = await crm.conversations.open_or_get(customer_id, chat_id)
                await HandoffService(session, crm.clock).request(conv.id, reason="request_human")
                return conv.id
        finally:
            await engine.dispose()

    conversation = live_console.run(customer_asks_for_a_person)
    sign_in(page, "emily.turner", demo_password("agent"))
    page.click("header a[data-page=inbox]")
    page.click(f"[data-conversation='{conversation}'] a")
    page.wait_for_selector("[data-owner=queued]")
    page.click(f"form[action$='/inbox/{conversation}/claim'] button")
    page.wait_for_selector("[data-owner=agent]")
    live_console.wait_for_message(chat_id, "Emily")  # "Emily Turner is now with you"
    reply = "Hello, please send a photo of the fan on your graphics card."
    page.fill(f"form[action$='/inbox/{conversation}/reply'] textarea", reply)
    page.click(f"form[action$='/inbox/{conversation}/reply'] button")
    page.wait_for_selector(".flash")
    sent = live_console.wait_for_message(chat_id, reply)
    assert sent.text == reply
    [(owner, agent)] = live_console.sql(
        "SELECT c.owner, s.login FROM conversations c JOIN staff_users s "
        "ON s.id = c.agent_staff_id WHERE c.id = :c",
        c=conversation,
    )
    assert (owner, agent) == ("agent", "emily.turner")
    assert name in page.locator("main").inner_text()


def test_an_admin_uploads_an_import_with_errors_and_sees_the_row_report(
    page: Any, live_console: LiveConsole, tmp_path: Any
) -> None:
    upload = tmp_path / "customers.csv"
    upload.write_text(
        "name,phone,email\n"
        "Grace Hopper,13800138111,grace@example.com\n"
        "Too Many,13800138112,b@example.com,surprise\n",
        encoding="utf-8",
    )
    sign_in(page, "admin", demo_password("admin"))
    page.click("header a[data-page=imports]")
    page.select_option("select[name=entity]", "customers")
    page.set_input_files("input[type=file]", str(upload))
    page.click("form[enctype] button[type=submit]")
    page.wait_for_selector("[data-import-state=dry_run]")
    row = page.locator("table.issues tr[data-row='3']")
    assert "has 4 values but the header has 3 columns" in row.inner_text()
    assert page.locator("[data-count=inserted]").inner_text() == "1"
    assert not live_console.sql("SELECT id FROM customers WHERE email = 'grace@example.com'")
    page.check("input[name=partial]")
    page.click("form[action$='/commit'] button")
    page.wait_for_selector("[data-import-state=committed]")
    assert live_console.sql("SELECT id FROM customers WHERE email = 'grace@example.com'")


def test_a_marketer_creates_an_ab_campaign_with_a_live_audience_and_schedules_it(
    page: Any, live_console: LiveConsole
) -> None:
    from datetime import date, timedelta

    sign_in(page, "oliver.hughes", demo_password("marketer"))
    page.click("header a[data-page=campaigns]")
    page.click("a[href$='/campaigns/new']")
    page.fill("input[name=name]", "Browser GPU push")
    segment = page.locator("textarea[name=segment]")
    segment.fill('{"language": "fr"}')
    page.wait_for_selector("[data-audience].bad")  # the count names the mistake
    assert "fr" in page.locator("[data-audience]").inner_text()
    segment.fill('{"consent": true}')
    page.wait_for_selector("[data-audience][data-reachable]")
    reachable = int(page.locator("[data-audience]").get_attribute("data-reachable") or 0)
    assert reachable > 0
    page.fill("textarea[name=text_A_zh]", "{name}，显卡特惠！")
    page.fill("textarea[name=text_A_en]", "{name}, GPU deals!")
    page.fill("textarea[name=text_B_zh]", "显卡降价了")
    page.fill("textarea[name=text_B_en]", "GPUs are cheaper now")
    page.click("form.campaign-form button[type=submit]")
    page.wait_for_selector("h1 [data-state=draft]")
    assert page.locator("[data-preview='B-en']").inner_text().endswith("GPUs are cheaper now")
    assert page.locator("svg.chart").count() == 1
    when = f"{date.today() + timedelta(days=2):%Y-%m-%d}T10:00"
    page.fill("input[name=at]", when)
    page.click("form[action$='/schedule'] button")
    page.wait_for_selector("h1 [data-state=scheduled]")
    [(state, variants)] = live_console.sql(
        "SELECT state, variants FROM campaigns WHERE name = 'Browser GPU push'"
    )
    assert state == "scheduled" and "GPUs are cheaper now" in str(variants)


def test_dashboard_and_360_view_render_with_demo_data_for_the_screenshots(
    page: Any, live_console: LiveConsole, tmp_path: Any
) -> None:
    """Also the README's screenshots: `HWCRM_UPDATE_SCREENSHOTS=1` writes them to docs/."""
    import os
    from pathlib import Path

    out = (
        Path(__file__).resolve().parents[2] / "docs"
        if os.environ.get("HWCRM_UPDATE_SCREENSHOTS") == "1"
        else tmp_path
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, "admin", demo_password("admin"))
    page.goto("/")
    # English for the README (and Debian's chromium has no CJK font by default).
    with page.expect_navigation():
        page.select_option("header select[name=language]", "en")
    assert page.locator("svg.chart").count() >= 5
    assert int(page.locator("[data-kpi=conversations]").inner_text()) > 0
    assert page.locator("svg.chart rect[data-value]").count() > 10
    page.screenshot(path=str(out / "console-dashboard.png"), full_page=True)
    [(customer_id,)] = live_console.sql(
        "SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id "
        "JOIN tickets t ON t.customer_id = c.id GROUP BY c.id ORDER BY count(*) DESC LIMIT 1"
    )
    page.goto(f"/customers/{customer_id}")
    page.screenshot(path=str(out / "console-customer-360.png"), full_page=True)
    for name in ("console-dashboard.png", "console-customer-360.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""The campaigns page (marketers, admins) on CampaignService / RuleService: a draft with two
A/B variants, its live audience count, preview, schedule (refused with the reason when
nobody is reachable or the time is past), pause/resume/cancel, the report, and rules."""

from __future__ import annotations

import re

import pytest

from tests.console.conftest import Console, csrf_of, login

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


def flash(html: str) -> str:
    import html as h

    found = re.search(r'<div class="flash[^"]*" role="status">(.*?)</div>', html, re.S)
    return h.unescape(found.group(1)) if found else ""


async def test_a_marketer_creates_schedules_pauses_resumes_and_cancels_an_ab_campaign(
    console: Console,
) -> None:
    async for crm in console.crm():
        for customer in console.customers:
            await crm.customers.grant_consent(customer, "web-signup")
    async with console.client(follow_redirects=True) as client:
        await login(client, "marketer")
        csrf = csrf_of((await client.get("/campaigns/new")).text)
        count = await client.post(
            "/campaigns/audience",
            json={"segment": '{"consent": true}'},
            headers={"X-CSRF-Token": csrf},
        )
        assert count.json() == {
            "matched": 3,
            "reachable": 3,
            "by_language": {"en": 1, "zh": 2},
            "reason_empty": None,
        }
        bad = await client.post(
            "/campaigns/audience",
            json={"segment": '{"language": "fr"}'},
            headers={"X-CSRF-Token": csrf},
        )
        assert bad.status_code == 422 and "fr" in bad.json()["error"]
        no_csrf = await client.post("/campaigns/audience", json={"segment": "{}"})
        assert no_csrf.status_code == 403

        form = {
            "csrf": csrf,
            "name": "Summer GPU",
            "kind": "marketing",
            "segment": '{"consent": true}',
            "text_A_zh": "{name}，显卡夏季特惠！",
            "text_A_en": "{name}, summer GPU deals!",
            "weight_A": "1",
            "text_B_zh": "显卡降价了",
            "text_B_en": "GPUs are cheaper now",
            "weight_B": "1",
        }
        broken = await client.post("/campaigns/new", data={**form, "segment": "{nope"})
        assert broken.status_code == 422 and "not valid JSON" in flash(broken.text)
        assert "Summer GPU" in broken.text  # the form keeps what was typed
        page = await client.post("/campaigns/new", data=form)
        assert page.status_code == 200 and "Draft created" in flash(page.text)
        campaign = int(page.url.path.rsplit("/", 1)[1])
        assert 'data-state="draft"' in page.text
        assert 'data-preview="A-en"' in page.text and "summer GPU deals!" in page.text
        assert 'data-preview="B-zh"' in page.text and "<svg" in page.text

        past = await client.post(
            f"/campaigns/{campaign}/schedule", data={"csrf": csrf, "at": "2020-01-01T10:00"}
        )
        assert "in the past" in flash(past.text) and 'data-state="draft"' in past.text
        done = await client.post(
            f"/campaigns/{campaign}/schedule", data={"csrf": csrf, "at": "2026-07-01T10:00"}
        )
        assert flash(done.text) == "Scheduled." and 'data-state="scheduled"' in done.text
        assert "2026-07-01 02:00 UTC" in done.text  # 10:00 in Asia/Shanghai
        paused = await client.post(f"/campaigns/{campaign}/pause", data={"csrf": csrf})
        assert 'data-state="paused"' in paused.text
        resumed = await client.post(f"/campaigns/{campaign}/resume", data={"csrf": csrf})
        assert 'data-state="scheduled"' in resumed.text
        cancelled = await client.post(f"/campaigns/{campaign}/cancel", data={"csrf": csrf})
        assert 'data-state="cancelled"' in cancelled.text
        again = await client.post(f"/campaigns/{campaign}/pause", data={"csrf": csrf})
        assert "cancelled" in flash(again.text)  # refused with the reason
        listing = await client.get("/campaigns")
        assert f'data-campaign="{campaign}" data-state="cancelled"' in listing.text


async def test_a_marketer_switches_an_automation_rule_off_and_on(console: Console) -> None:
    async with console.client(follow_redirects=True) as client:
        await login(client, "marketer")
        page = await client.get("/campaigns")
        csrf = csrf_of(page.text)
        [rule] = re.findall(r'data-rule="([a-z_]+)" data-enabled="yes"', page.text)[:1]
        off = await client.post(f"/campaigns/rules/{rule}/disable", data={"csrf": csrf})
        assert f'data-rule="{rule}" data-enabled="no"' in off.text
        on = await client.post(f"/campaigns/rules/{rule}/enable", data={"csrf": csrf})
        assert f'data-rule="{rule}" data-enabled="yes"' in on.text
        unknown = await client.post("/campaigns/rules/no_such_rule/enable", data={"csrf": csrf})
        assert unknown.status_code in (404, 422)

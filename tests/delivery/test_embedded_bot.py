"""The embedded default: a real `python -m app.cli bot` process on SQLite schedules and sends
campaign pushes itself. A marketer schedules a campaign from another process (here: the
test, through CampaignService, as `hwcrm campaign schedule` does); the bot's own scheduler
picks it up, enqueues it at its time, and the push arrives at the fake Bot API server."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.settings import load_settings
from bot.i18n import Translator
from crm_core.campaigns.service import CampaignCreate, CampaignService
from crm_core.clock import SystemClock
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.migrate import upgrade
from tests.bot.fake_bot_api_server import FakeBotAPIServer
from tests.bot.test_smoke import TOKEN, bot_env, start_bot
from tests.crm.people_factories import make_customer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


async def test_hwcrm_bot_on_sqlite_runs_the_scheduler_and_sends_the_push(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    await upgrade(url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with unit_of_work(sessions) as session:
        customer = await make_customer(session, name="Lin Embedded", telegram_user_id=7_300_001)
        customer.marketing_consent = True
        customer.timezone = "UTC"
        customer.tags = ["embedded"]
    async with FakeBotAPIServer(TOKEN) as api:
        env = bot_env(
            tmp_path,
            api,
            HWCRM_SCHEDULER__RECONCILE_INTERVAL_S="0.5",
            HWCRM_CAMPAIGNS__QUIET_HOURS_START="00:00",
            HWCRM_CAMPAIGNS__QUIET_HOURS_END="00:00",
        )
        bot = await start_bot(env, tmp_path / "bot.log")
        try:
            await api.wait_for_method("getUpdates", timeout=240)  # the bot is up and polling
            settings = load_settings()
            settings.campaigns.quiet_hours_start = settings.campaigns.quiet_hours_end = "00:00"
            at = datetime.now(UTC) + timedelta(seconds=3)
            async with unit_of_work(sessions) as session:
                service = CampaignService(
                    session, SystemClock(), settings.campaigns, Translator(), settings.crm
                )
                campaign = await service.create(
                    CampaignCreate(
                        name="embedded",
                        segment={"tag": "embedded"},
                        variants=[{"label": "A", "text": {"en": "Hi {first_name}, new PSUs!"}}],
                    )
                )
                await service.schedule(campaign.id, at=at)
            push = await api.wait_for(
                lambda c: c.method == "sendMessage" and c.chat_id == 7_300_001, timeout=60
            )
            assert time.time() >= at.timestamp() - 0.5
            assert "new PSUs" in push.text
            await asyncio.sleep(1.5)
        finally:
            code = await bot.stop()
        await engine.dispose()
        assert code == 0, bot.output()[-3000:]
        pushes = [c for c in api.calls if c.method == "sendMessage" and c.chat_id == 7_300_001]
        assert len(pushes) == 1
        assert "campaign scheduler and sender run inside this process" in bot.output()

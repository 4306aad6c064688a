"""Crash safety with a REAL kill -9 of a sender process (`python -m app.cli scheduler`)
against the fake Bot API HTTP server, whose own record of received messages is the judge:

- duplicates (a chat that received its push twice): 0
- unknown (rows caught in `sending` by the kill): at most the sender's concurrency
- losses (a row neither sent nor unknown, or marked sent but never received): 0
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.bot.fake_bot_api_server import FakeBotAPIServer
from tests.conftest import Database
from tests.delivery.procs import scheduler_env, start_scheduler, stop
from tests.delivery.seed import delivery_states, past, seed_campaign, sent_chats

TOKEN = "4242:kill-nine-test"
CONCURRENCY = 8
RECIPIENTS = 400

pytestmark = pytest.mark.slow  # two process start-ups (~20 s each on a busy machine)


def received(api: FakeBotAPIServer) -> Counter[int]:
    return Counter(
        c.chat_id for c in api.calls if c.method == "sendMessage" and isinstance(c.result, dict)
    )


async def test_kill_9_mid_campaign_sends_nothing_twice_and_loses_nothing(
    db: Database, tmp_path: Path
) -> None:
    await seed_campaign(db.sessions, RECIPIENTS, due_at=past())
    async with FakeBotAPIServer(TOKEN) as api:
        env = scheduler_env(
            db.url,
            HWCRM_BOT__TOKEN=TOKEN,
            HWCRM_BOT__API_BASE_URL=api.base_url,
            HWCRM_SCHEDULER__CONCURRENCY=str(CONCURRENCY),
            HWCRM_SCHEDULER__CLAIM_BATCH=str(CONCURRENCY),
            HWCRM_SCHEDULER__POLL_INTERVAL_S="0.1",
            HWCRM_SCHEDULER__RATE_LIMIT__PER_SECOND="100",
            HWCRM_SCHEDULER__RATE_LIMIT__BACKEND="memory",
            HWCRM_CAMPAIGNS__QUIET_HOURS_START="00:00",
            HWCRM_CAMPAIGNS__QUIET_HOURS_END="00:00",
        )
        first = start_scheduler(env, "--no-schedule", log=tmp_path / "first.log")
        try:
            deadline = time.monotonic() + 240
            while sum(received(api).values()) < 150:
                assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                await asyncio.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 10)
        finally:
            await asyncio.to_thread(stop, first)  # (in a thread: the fake server runs here)
        at_kill = await delivery_states(db.sessions)
        unknown_at_kill = at_kill.get("sending", 0)
        assert unknown_at_kill <= CONCURRENCY
        assert at_kill.get("queued", 0) > 0  # the kill really came mid-campaign

        second = start_scheduler(env, "--no-schedule", log=tmp_path / "second.log")
        try:
            deadline = time.monotonic() + 240
            while (await delivery_states(db.sessions)).get("queued", 0):
                assert time.monotonic() < deadline, (tmp_path / "second.log").read_text()[-3000:]
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # the last outcomes are recorded
        finally:
            await asyncio.to_thread(stop, second)
        assert second.returncode == 0

        states = await sent_chats(db.sessions)
        got = received(api)
        duplicates = [chat for chat, n in got.items() if n > 1]
        unknown = states.get("sending", set())
        sent = states.get("sent", set())
        lost = RECIPIENTS - len(sent) - len(unknown)
        assert duplicates == []
        assert len(unknown) == unknown_at_kill <= CONCURRENCY  # never resent after the restart
        assert lost == 0
        assert sent <= set(got)  # every row marked sent really arrived
        assert set(got) <= sent | unknown  # nothing arrived that the database cannot explain

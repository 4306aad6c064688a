"""Smoke tests: the bot as a separate process (`python -m app.cli bot`) against the fake Bot
API HTTP server on loopback — the real HTTP path in both modes.

- polling: the bot deletes any webhook, long-polls getUpdates; /start → the reply arrives at
  the fake server; the update is confirmed (offset); SIGTERM stops it cleanly.
- webhook: the bot registers its webhook with a generated secret; an update POSTed with it is
  answered; a wrong or missing secret gets 401 and nothing is handled; neither the token nor
  the secret ever appears in the bot's output.
- no token: `hwcrm bot` refuses to start with a clear message.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bot.fake_bot_api_server import FakeBotAPIServer, message_update

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "4242:SMOKE-test-token_not-a-real-one"
DEMO_CUSTOMER = 1001  # 张伟 in the demo data

pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def stop(self, timeout: float = 30.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"the bot did not stop on SIGTERM:\n{self.output()}") from None


def bot_env(tmp_path: Path, api: FakeBotAPIServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWCRM_")}
    env.update(
        HWCRM_BOT__TOKEN=TOKEN,
        HWCRM_BOT__API_BASE_URL=api.base_url,
        HWCRM_DB__URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        HWCRM_APP__DATA_DIR=str(tmp_path / "var"),
        HWCRM_KB__INDEX_DIR=str(tmp_path / "var" / "kb"),
        HWCRM_NLU__MODEL_DIR=str(tmp_path / "var" / "nlu"),
        HWCRM_APP__LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


async def start_bot(env: dict[str, str], log: Path, *args: str) -> BotProcess:
    handle = log.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "bot",
        "--no-warm-up",
        *args,
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=asyncio.subprocess.STDOUT,
    )
    handle.close()
    return BotProcess(process, log)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPIServer]:
    async with FakeBotAPIServer(TOKEN) as server:
        yield server


@pytest.fixture
def seeded_copy(tmp_path: Path, seeded_sqlite: Path) -> Path:
    target = tmp_path / "bot.sqlite3"
    shutil.copy(seeded_sqlite, target)
    return target


async def test_polling_mode_answers_start_over_real_http(
    api: FakeBotAPIServer, tmp_path: Path, seeded_copy: Path
) -> None:
    # the standard library's event loop here; the webhook test below runs on uvloop (auto)
    env = bot_env(tmp_path, api, HWCRM_BOT__MODE="polling", HWCRM_BOT__EVENT_LOOP="asyncio")
    bot = await start_bot(env, tmp_path / "bot.log")
    try:
        await api.wait_for_method("deleteWebhook", timeout=90)
        await api.wait_for_method("getUpdates", timeout=30)
        update_id = await api.push_update(message_update(DEMO_CUSTOMER, "/start", lang="zh"))
        reply = await api.wait_for(
            lambda c: c.method == "sendMessage" and c.chat_id == DEMO_CUSTOMER, timeout=60
        )
        assert reply.text  # the greeting of the real /start flow
        # the command menu was published, in both languages
        menus = [c for c in api.calls if c.method == "setMyCommands"]
        assert {m.params.get("language_code") for m in menus} >= {"zh", "en"}
        # the next getUpdates confirms the update: Telegram would not deliver it again
        await api.wait_for(
            lambda c: c.method == "getUpdates" and int(c.params.get("offset") or 0) > update_id,
            timeout=30,
        )
    finally:
        code = await bot.stop()
    output = bot.output()
    assert code == 0, output
    assert "event loop: asyncio" in output
    assert TOKEN not in output and TOKEN.split(":")[1] not in output


async def test_webhook_mode_verifies_the_secret_and_answers_over_real_http(
    api: FakeBotAPIServer, tmp_path: Path, seeded_copy: Path
) -> None:
    port = free_port()
    env = bot_env(
        tmp_path,
        api,
        HWCRM_BOT__MODE="webhook",
        HWCRM_BOT__WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
        HWCRM_BOT__WEBHOOK_HOST="127.0.0.1",
        HWCRM_BOT__WEBHOOK_PORT=str(port),
    )
    bot = await start_bot(env, tmp_path / "bot.log")
    try:
        registered = await api.wait_for_method("setWebhook", timeout=90)
        secret = api.webhook_secret
        assert secret and len(secret) >= 32  # generated: HWCRM_BOT__WEBHOOK_SECRET is unset
        assert registered.params["url"] == f"http://127.0.0.1:{port}/telegram/webhook"

        for wrong in ("not-the-secret", None):
            update = message_update(7_770_001, "/start", update_id=api.new_update_id())
            assert await api.post_to_webhook(update, wrong) == 401

        status = await api.post_to_webhook(message_update(DEMO_CUSTOMER, "/start", lang="zh"))
        assert status == 200
        reply = await api.wait_for(
            lambda c: c.method == "sendMessage" and c.chat_id == DEMO_CUSTOMER, timeout=60
        )
        assert reply.text
        await asyncio.sleep(0.5)
        assert api.calls_to(7_770_001) == []  # the rejected updates were never handled
    finally:
        code = await bot.stop()
    output = bot.output()
    assert code == 0, output
    assert "event loop: uvloop" in output  # bot.event_loop: auto, uvloop installed
    assert secret not in output  # never logged
    assert TOKEN not in output


async def test_the_bot_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWCRM_")}
    env["HWCRM_DB__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "bot",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "HWCRM_BOT__TOKEN is not set" in out.decode()


async def test_two_webhook_workers_share_one_port_and_redis(
    api: FakeBotAPIServer, tmp_path: Path, seeded_copy: Path
) -> None:
    import itertools
    import random

    from redis.asyncio import Redis

    api._update_ids = itertools.count(random.randrange(10**6, 10**9))  # fresh for Redis de-dup
    port = free_port()
    env = bot_env(
        tmp_path,
        api,
        HWCRM_BOT__MODE="webhook",
        HWCRM_BOT__WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
        HWCRM_BOT__WEBHOOK_PORT=str(port),
        HWCRM_BOT__FSM_STORAGE="redis",
        HWCRM_BOT__REDIS_URL="redis://127.0.0.1:6379/0",
    )
    bot = await start_bot(env, tmp_path / "bot.log", "--workers", "2")
    try:
        await api.wait_for_method("setWebhook", timeout=90)
        deadline = asyncio.get_running_loop().time() + 90
        while bot.output().count("webhook mode: listening") < 2:
            assert asyncio.get_running_loop().time() < deadline, bot.output()
            await asyncio.sleep(0.2)
        users = range(7_780_001, 7_780_011)
        for user in users:
            assert await api.post_to_webhook(message_update(user, "/start")) == 200
        for user in users:
            await api.wait_for(lambda c, u=user: c.method == "sendMessage" and c.chat_id == u, 60)
        assert await api.post_to_webhook(message_update(7_780_001, "/start"), "wrong") == 401
    finally:
        code = await bot.stop()
        redis = Redis.from_url("redis://127.0.0.1:6379/0")
        keys = [k async for k in redis.scan_iter("hwcrm:bot:*4242:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    assert code == 0, bot.output()
    assert api.webhook_secret and api.webhook_secret not in bot.output()

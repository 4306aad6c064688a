"""Webhook mode in-process: aiogram's aiohttp handler behind our runtime, on a real socket.

The secret header is verified (a wrong or missing one gets 401 and nothing is handled);
updates are handled in background tasks, yet one chat's updates keep their order; shutdown
lets accepted updates finish. (tests/bot/test_smoke*.py runs the bot as a separate process.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.runtime import build_webhook_app
from tests.bot.test_runtime import Rig, make_rig
from tests.conftest import Database

SECRET = "s3cret-for-the-webhook-test"
PATH = "/telegram/webhook"


@pytest.fixture
async def served(db: Database, clock: Any) -> AsyncIterator[tuple[Rig, TestServer]]:
    rig = make_rig(db, clock)
    rig.dp.runtime.wire(rig.bot)
    app, _ = build_webhook_app(rig.bot, rig.dp, SECRET, PATH)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield rig, server
    await server.close()


async def post(server: TestServer, payload: dict[str, Any], secret: str | None) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url(PATH), json=payload, headers=headers) as response,
    ):
        return response.status


def payload(rig: Rig, user_id: int, text: str) -> dict[str, Any]:
    update = rig.updates.message(rig.updates.user(user_id), text)
    return update.model_dump(mode="json", exclude_none=True)


async def wait_for_calls(rig: Rig, chat_id: int, count: int, timeout: float = 5.0) -> list[str]:
    async def poll() -> list[str]:
        while len(rig.api.sent_to(chat_id)) < count or rig.dp.runtime.inflight.count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return [c.text for c in rig.api.sent_to(chat_id)]

    return await asyncio.wait_for(poll(), timeout)


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
async def test_a_wrong_or_missing_secret_gets_401_and_nothing_is_handled(
    served: tuple[Rig, TestServer], secret: str | None
) -> None:
    rig, server = served
    assert await post(server, payload(rig, 6001, "/echo sneaky"), secret) == 401
    await asyncio.sleep(0.05)
    assert rig.api.calls == [] and rig.probe.seen == []
    assert await rig.customer(6001) is None


async def test_the_right_secret_gets_200_and_the_reply_arrives(
    served: tuple[Rig, TestServer],
) -> None:
    rig, server = served
    assert await post(server, payload(rig, 6002, "/echo hello"), SECRET) == 200
    assert await wait_for_calls(rig, 6002, 1) == ["echo /echo hello"]
    assert await rig.interactions(6002) == [
        ("inbound", "/echo hello"),
        ("outbound", "echo /echo hello"),
    ]


async def test_background_handling_keeps_the_order_of_one_chat(
    served: tuple[Rig, TestServer],
) -> None:
    rig, server = served
    for label, nap in [("w1", 0.2), ("w2", 0.05), ("w3", 0.0), ("w4", 0.0)]:
        assert await post(server, payload(rig, 6003, f"/nap {nap} {label}"), SECRET) == 200
    assert await wait_for_calls(rig, 6003, 4) == ["nap w1", "nap w2", "nap w3", "nap w4"]


async def test_shutdown_finishes_an_accepted_update_before_closing(
    served: tuple[Rig, TestServer],
) -> None:
    rig, server = served
    assert await post(server, payload(rig, 6004, "/slow part"), SECRET) == 200
    await asyncio.wait_for(rig.probe.started.wait(), 5)
    closing = asyncio.create_task(server.close())
    await asyncio.sleep(0.1)
    assert not closing.done()
    rig.probe.release.set()
    await asyncio.wait_for(closing, 10)
    assert [c.text for c in rig.api.sent_to(6004)] == ["done /slow part"]
    assert ("outbound", "done /slow part") in await rig.interactions(6004)

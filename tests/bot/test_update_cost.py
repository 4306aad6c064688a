"""What one update costs the database, and that the cheaper path loses nothing.

Issue 8 ("cost per message"): the bot logs every message and reply in the CRM. Each
interaction is one INSERT; the conversation's last activity and the customer's last contact
are moved once per update, before its unit of work commits; pooled PostgreSQL connections
are checked without a round trip. These tests pin the statement count of a plain exchange
(so a regression shows up here, not only in `benchmarks/bot_load.py`) and check that what is
recorded is what it was before: both interactions, the reply's time as last activity.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from crm_core.conversations.models import Conversation, Interaction
from crm_core.customers.models import Customer
from crm_core.db import create_engine, create_session_factory, unit_of_work
from tests.bot.test_runtime import Rig, make_rig
from tests.conftest import Database


@pytest.fixture
async def rig(db: Database, clock: Any) -> Rig:
    return make_rig(db, clock)


def count_statements(db: Database) -> list[str]:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split()
        verb = words[0].upper()
        if verb == "SELECT":
            table = words[words.index("FROM") + 1]
        elif verb == "INSERT":
            table = words[2]
        else:
            table = words[1]
        statements.append(f"{verb} {table}")

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    return statements


async def test_a_message_and_its_reply_are_logged_with_one_touch_of_last_activity(
    rig: Rig, clock: Any
) -> None:
    await rig.send(6001, "/echo first")  # the customer and the conversation exist now
    clock.advance(timedelta(minutes=5))
    await rig.send(6001, "/echo again")
    assert await rig.interactions(6001) == [
        ("inbound", "/echo first"),
        ("outbound", "echo /echo first"),
        ("inbound", "/echo again"),
        ("outbound", "echo /echo again"),
    ]
    async with unit_of_work(rig.db.sessions) as session:
        customer = await session.scalar(select(Customer).where(Customer.telegram_user_id == 6001))
        assert customer is not None
        conversation = await session.scalar(
            select(Conversation).where(Conversation.customer_id == customer.id)
        )
        last = await session.scalar(
            select(Interaction.created_at)
            .where(Interaction.customer_id == customer.id)
            .order_by(Interaction.id.desc())
        )
    assert conversation is not None
    assert last == clock.now()
    assert conversation.last_activity_at == clock.now()
    assert customer.last_contact_at == clock.now()


async def test_a_known_customers_message_and_reply_cost_six_statements(
    rig: Rig, clock: Any
) -> None:
    await rig.send(6002, "/echo hello")
    clock.advance(timedelta(seconds=30))
    statements = count_statements(rig.db)
    await rig.send(6002, "/echo hello again")
    # who is writing, their open conversation, the two interactions, and one touch of the
    # conversation's last activity and the customer's last contact (was 8: two ORM flushes,
    # each updating both)
    assert statements == [
        "SELECT customers",
        "SELECT conversations",
        "INSERT interactions",
        "INSERT interactions",
        "UPDATE conversations",
        "UPDATE customers",
    ], statements


async def test_a_failed_update_keeps_its_inbound_message_but_not_the_deferred_touch(
    rig: Rig, clock: Any
) -> None:
    await rig.send(6003, "/echo hi")
    before = clock.now()
    clock.advance(timedelta(minutes=1))
    await rig.send(6003, "/boom")  # the handler replies, then raises: rolled back
    logged = await rig.interactions(6003)
    assert ("inbound", "/boom") in logged  # recorded again by the error middleware
    assert ("outbound", "about to fail") not in logged
    async with unit_of_work(rig.db.sessions) as session:
        conversation = await session.scalar(
            select(Conversation).join(Customer).where(Customer.telegram_user_id == 6003)
        )
    assert conversation is not None
    # the error middleware's own unit of work logged the message (and moved the time)
    assert conversation.last_activity_at > before


@pytest.mark.postgres
async def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error(
    db: Database,
) -> None:
    if db.kind != "postgres":
        pytest.skip("PostgreSQL only: SQLite has no server")
    engine = create_engine(db.url, pool_size=1)
    sessions = create_session_factory(engine)
    try:
        async with unit_of_work(sessions) as session:
            first_pid = await session.scalar(text("SELECT pg_backend_pid()"))
        async with db.engine.connect() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        await asyncio.sleep(0.2)  # the server's FATAL message and EOF reach the pooled socket
        async with unit_of_work(sessions) as session:
            second_pid = await session.scalar(text("SELECT pg_backend_pid()"))
        assert second_pid != first_pid
    finally:
        await engine.dispose()


def test_the_bots_event_loop_is_uvloop_when_installed_unless_asyncio_is_configured() -> None:
    import uvloop

    from bot.runtime import event_loop_factory

    assert event_loop_factory("auto") is uvloop.new_event_loop
    assert event_loop_factory("uvloop") is uvloop.new_event_loop
    assert event_loop_factory("asyncio") is None


def test_bot_api_json_is_orjson_and_round_trips_chinese_text_and_keyboards() -> None:
    import json

    from bot.runtime import json_codec

    loads, dumps = json_codec()
    keyboard = {"inline_keyboard": [[{"text": "打开文章", "url": "https://example.com/a?b=1"}]]}
    text = dumps(keyboard)
    assert isinstance(text, str)
    assert json.loads(text) == keyboard == loads(text)
    assert loads(b'{"ok": true, "result": {"message_id": 7}}')["result"]["message_id"] == 7


async def test_the_result_type_of_a_sent_message_is_built_once_not_after_every_gc(
    rig: Rig,
) -> None:
    import gc

    from aiogram.methods import Response, SendMessage

    await rig.send(6004, "/echo hi")
    built = Response[SendMessage.__returning__]  # type: ignore[name-defined]
    identity = id(built)
    del built
    gc.collect()  # without the pin, pydantic's weak cache loses the class here
    assert id(Response[SendMessage.__returning__]) == identity  # type: ignore[name-defined]


def test_the_bots_english_encoder_runs_torch_on_one_thread_and_keeps_its_name() -> None:
    import numpy as np
    import torch

    from app.container import SingleThreadTorchEmbedder

    class Inner:
        name = "sentence-transformers:minilm"
        dim = 3

        def encode(self, texts: Any, batch_size: int = 64) -> Any:
            return np.ones((len(texts), 3), dtype=np.float32)

    before = torch.get_num_threads()
    try:
        wrapped = SingleThreadTorchEmbedder(Inner())
        assert wrapped.name == "sentence-transformers:minilm" and wrapped.dim == 3
        assert wrapped.encode(["my gpu fan is loud"]).shape == (1, 3)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

"""Both fake Bot APIs parse HTML like Telegram: the real aiogram Bot gets Telegram's 400 for
invalid HTML, and tests see the visible text and its entities."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest

from app.settings import load_settings
from bot.fake_telegram import InProcessBotAPI
from bot.runtime import build_bot
from tests.bot.fake_bot_api_server import FakeBotAPIServer

TOKEN = "123456:TEST-entities"


async def test_the_http_fake_refuses_bad_html_and_returns_entities_like_telegram() -> None:
    async with FakeBotAPIServer(TOKEN) as api:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url))
        # the bot's own defaults (parse mode HTML), talking HTTP to the fake
        bot = Bot(TOKEN, session=session, default=build_bot(load_settings()).default)
        try:
            sent = await bot.send_message(
                42, "<b>Fix</b> it &amp; <a href='https://x.example'>go</a>"
            )
            assert sent.text == "Fix it & go"
            assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [
                ("bold", 0, 3),
                ("text_link", 9, 2),
            ]
            call = api.calls_to(42, ("sendMessage",))[-1]
            assert call.text == "Fix it & go" and call.html.startswith("<b>Fix</b>")
            with pytest.raises(TelegramBadRequest, match="can't parse entities: Unsupported start"):
                await bot.send_message(42, "| a | b |\n<table>")
            with pytest.raises(TelegramBadRequest, match="message is too long"):
                await bot.send_message(42, "x" * 4097)
            # parse mode None: sent as plain text, nothing parsed
            plain = await bot.send_message(42, "<b>not bold</b>", parse_mode=None)
            assert plain.text == "<b>not bold</b>" and not plain.entities
        finally:
            await bot.session.close()


async def test_the_in_process_fake_refuses_unclosed_tags_with_telegrams_error() -> None:
    api = InProcessBotAPI()
    bot = build_bot(load_settings(), session=api)
    with pytest.raises(TelegramBadRequest, match="Can't find end tag corresponding to start tag"):
        await bot.send_message(7, "<b>unclosed")
    sent = await bot.send_message(7, "<i>ok</i>")
    assert sent.text == "ok" and sent.entities and sent.entities[0].type == "italic"
    assert api.calls[-1].html == "<i>ok</i>"


async def test_escaped_twice_is_caught_in_tests() -> None:
    api = InProcessBotAPI()
    bot = build_bot(load_settings(), session=api)
    with pytest.raises(AssertionError, match="escaped twice"):
        await bot.send_message(7, "&lt;b&gt;Title&lt;/b&gt;")

"""Whatever a customer sends, the NLU answers with a valid parse (possibly out_of_scope)."""

from __future__ import annotations

import pytest

from nlu.contract import FALLBACK_INTENT, INTENTS
from nlu.embedded import EmbeddedParser
from nlu.schemas import ParseResult
from nlu.service import NluService
from nlu.text import detect_language, prepare_text

TINY_INTENTS = {"greet", "order_status", "report_fault", "out_of_scope"}


def _valid(result: ParseResult) -> None:
    assert isinstance(result, ParseResult)
    assert result.intent in TINY_INTENTS | set(INTENTS)
    assert 0.0 <= result.confidence <= 1.0
    assert result.ranking, "a ranking is always present"
    assert all(0.0 <= r.confidence <= 1.0 for r in result.ranking)


async def test_empty_message_is_out_of_scope_without_a_model(tiny_parser: EmbeddedParser) -> None:
    result = await NluService(tiny_parser).parse("")
    _valid(result)
    assert result.intent == FALLBACK_INTENT
    assert result.backend == "input"
    assert "empty message" in result.notes


async def test_whitespace_only_message_is_out_of_scope(tiny_parser: EmbeddedParser) -> None:
    result = await NluService(tiny_parser).parse(" \t\n\u3000  \r\n")
    _valid(result)
    assert result.intent == FALLBACK_INTENT
    assert result.text == ""


async def test_ten_thousand_characters_are_truncated_for_the_model_and_say_so(
    tiny_parser: EmbeddedParser,
) -> None:
    text = ("my gpu fan stopped spinning " * 400)[:10_000]
    result = await NluService(tiny_parser, max_chars=1000).parse(text)
    _valid(result)
    assert result.truncated
    assert len(result.text) <= 1000
    assert any("truncated from 10000" in note for note in result.notes)
    assert result.intent == "report_fault"


async def test_emoji_only_message_is_out_of_scope(tiny_parser: EmbeddedParser) -> None:
    result = await NluService(tiny_parser).parse("👍🔥😡🙏🏻")
    _valid(result)
    assert result.intent == FALLBACK_INTENT
    assert "no letters or digits to classify" in result.notes


async def test_control_characters_are_removed_and_the_rest_is_classified(
    tiny_parser: EmbeddedParser,
) -> None:
    result = await NluService(tiny_parser).parse(
        "where\x00 is my\x1b[31m order\u200b\x7f SO-10023456"
    )
    _valid(result)
    assert "\x00" not in result.text and "\x1b" not in result.text and "\u200b" not in result.text
    assert "control characters removed" in result.notes
    assert result.intent == "order_status"
    assert result.first("order_number") == "SO-10023456"


async def test_lone_surrogates_do_not_break_anything(tiny_parser: EmbeddedParser) -> None:
    result = await NluService(tiny_parser).parse("hello \ud800 there")
    _valid(result)
    result.model_dump_json()  # serialisable (the bot logs/stores it)


async def test_mixed_scripts_are_classified_with_entities(tiny_parser: EmbeddedParser) -> None:
    result = await NluService(tiny_parser).parse(
        "我的GPU风扇不转了 help pls ＳＮ７ｆ３ｋ９ｑ２ｌ１ｍ"
    )
    _valid(result)
    assert result.language == "zh"
    assert result.intent == "report_fault"
    assert result.first("serial_number") == "SN7F3K9Q2L1M"  # full-width folded by NFKC
    assert result.first("product_category") == "gpu"


@pytest.mark.parametrize(
    "text",
    [
        "?",
        "。。。。",
        "a",
        "1",
        "\u202eevil bidi\u202c",
        "x" * 100_000,
        "🙂" * 5000,
        "SO-",
        "[gpu](product_category)",
        '{"text": "json"}',
        "DROP TABLE orders; --",
        "ﷺ𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ｆｕｌｌ ｗｉｄｔｈ",
    ],
)
async def test_any_input_gives_a_valid_parse(tiny_parser: EmbeddedParser, text: str) -> None:
    _valid(await NluService(tiny_parser).parse(text))


def test_prepare_text_keeps_normal_messages_untouched() -> None:
    prepared = prepare_text("My GPU fan stopped")
    assert prepared.text == "My GPU fan stopped"
    assert prepared.notes == ()
    assert not prepared.truncated and prepared.has_content


def test_prepare_text_cuts_at_a_word_boundary() -> None:
    prepared = prepare_text("word " * 300, max_chars=100)
    assert prepared.truncated
    assert len(prepared.text) <= 100
    assert not prepared.text.endswith(" ") and prepared.text.endswith("word")


def test_prepare_text_accepts_none() -> None:
    assert prepare_text(None).text == ""


def test_language_detection_for_the_two_product_languages() -> None:
    assert detect_language("我的显卡坏了") == "zh"
    assert detect_language("my gpu died") == "en"
    assert detect_language("RTX 4090 花屏") == "zh"

"""The helpful passage, as the customer sees it on Telegram: a fault or product question is
answered with the article's solution sections (not the symptom paragraph that matched),
rendered as Telegram HTML (no raw Markdown, tables as lines), with the link to the article —
for a linked customer and for a stranger, in zh and en. Through the real dispatcher, NLU and
knowledge base; the fake Bot API parses the HTML like Telegram."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.fake_telegram import SentCall
from tests.bot.conftest import LANGS
from tests.bot.harness import BotHarness
from tests.bot.test_kb_rendering import _assert_clean

LINKED = 1001  # a demo customer with a graphics card
STRANGER = 884_001  # a Telegram user the CRM has never seen

# Written as customers write, not copied from the articles.
FAULT = {
    "zh": "打游戏的时候显卡花屏，画面上全是彩色的点点，是不是坏了",
    "en": "when I game my screen gets these weird coloured dots and stripes, is my GPU dying?",
}
FAULT_ARTICLE = "https://support.northbridge.example/kb/gpu-artifacts"
# The symptom paragraph of gpu-artifacts (what matched, not what helps).
SYMPTOM_WORDS = {"zh": "花屏是显卡输出的画面错误", "en": "Artifacts are errors in the image"}
# Steps of its solution sections.
STEP_WORDS = {"zh": ("超频", "驱动"), "en": ("overclock", "driver")}

PRODUCT = {
    "zh": "4070 显卡配 7800X3D，电源需要多少瓦才够？",
    "en": "building a pc with a 4070 and a 7800X3D, how many watts should the psu be",
}
PRODUCT_ARTICLE = "https://support.northbridge.example/kb/psu-sizing"


def kb_reply(calls: list[SentCall], article_url: str) -> SentCall:
    """The message that carries the knowledge-base answer (it links to the article)."""
    found = [
        c
        for c in calls
        if any(e["type"] == "text_link" and e["url"].startswith(article_url) for e in c.entities)
    ]
    assert found, f"no reply links to {article_url}: {[c.text for c in calls]}"
    return found[0]


async def customer(h: BotHarness, speaker: Any, who: int, lang: str) -> Any:
    return await speaker(h, who, lang) if who == LINKED else h.user(who, lang)


@pytest.mark.parametrize("who", [LINKED, STRANGER], ids=["linked", "stranger"])
@pytest.mark.parametrize("lang", LANGS)
async def test_a_fault_question_is_answered_with_the_steps_and_the_article_link(
    bot_harness: BotHarness, speaker: Any, lang: str, who: int
) -> None:
    h = bot_harness
    user = await customer(h, speaker, who, lang)
    calls = await h.send(user, FAULT[lang])
    reply = kb_reply(calls, FAULT_ARTICLE)
    assert reply.params["parse_mode"] == "HTML"
    assert reply.parsed is not None
    _assert_clean(reply.parsed, FAULT[lang])
    text = reply.text
    assert SYMPTOM_WORDS[lang] not in text  # not the paragraph describing the symptom
    assert all(re.search(w, text, re.IGNORECASE) for w in STEP_WORDS[lang]), text
    assert re.search(r"^1\. ", text, re.MULTILINE)  # numbered steps, rendered
    assert len(reply.parsed.of_type("bold")) >= 2  # the title and the section headings


@pytest.mark.parametrize("who", [LINKED, STRANGER], ids=["linked", "stranger"])
@pytest.mark.parametrize("lang", LANGS)
async def test_a_product_question_shows_the_articles_table_as_lines_a_phone_can_read(
    bot_harness: BotHarness, speaker: Any, lang: str, who: int
) -> None:
    h = bot_harness
    user = await customer(h, speaker, who, lang)
    calls = await h.send(user, PRODUCT[lang])
    reply = kb_reply(calls, PRODUCT_ARTICLE)
    assert reply.parsed is not None
    _assert_clean(reply.parsed, PRODUCT[lang])
    # the worked examples table: one row per system, "label: value" lines, no pipes
    assert "RTX 4070 + Ryzen 7 7800X3D" in reply.parsed.of_type("bold")
    assert re.search(r"^(Recommended: |推荐：)650 W$", reply.text, re.MULTILINE), reply.text
    assert "|" not in reply.text

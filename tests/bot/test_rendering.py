"""The renderer (Markdown → Telegram HTML, escaping, length) and the Telegram HTML parser the
fake Bot APIs use (it must refuse what Telegram refuses and show what Telegram shows)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.i18n import Translator
from bot.rendering import (
    TABLE_PRE_WIDTH,
    Html,
    display_width,
    escape,
    fit_blocks,
    markdown_blocks,
    markdown_html,
    truncate_html,
)
from bot.telegram_html import ERROR_PREFIX, TelegramHtmlError, parse_html, utf16_len

# -- the parser behaves like Telegram ---------------------------------------------------------


def test_nested_tags_become_entities_with_utf16_offsets() -> None:
    parsed = parse_html(
        '😀 <b>bold <i>both</i></b> <a href="https://x.example/?a=1&amp;b=2">link</a>'
    )
    assert parsed.text == "😀 bold both link"
    kinds = [(e["type"], e["offset"], e["length"]) for e in parsed.entities]
    # the emoji counts as two UTF-16 units, like in Telegram's offsets
    assert kinds == [("bold", 3, 9), ("italic", 8, 4), ("text_link", 13, 4)]
    assert parsed.links() == [("link", "https://x.example/?a=1&b=2")]
    assert parsed.of_type("italic") == ["both"]


def test_the_four_named_entities_and_numeric_ones_decode_others_stay_literal() -> None:
    parsed = parse_html("&lt;b&gt; &amp; &quot;q&quot; &#39;s &#x4E2D; &nbsp; AT&T")
    assert parsed.text == '<b> & "q" \'s 中 &nbsp; AT&T'
    assert parsed.entities == []


def test_pre_with_a_language_code_block_is_one_pre_entity() -> None:
    parsed = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert parsed.entities == [{"type": "pre", "offset": 0, "length": 5, "language": "python"}]


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("a <p>para</p>", 'Unsupported start tag "p" at byte offset 2'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("中 <b", "Unclosed start tag at byte offset 4"),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
    ],
)
def test_invalid_html_is_refused_with_telegrams_error(html: str, reason: str) -> None:
    with pytest.raises(TelegramHtmlError) as caught:
        parse_html(html)
    assert caught.value.description == ERROR_PREFIX + reason


def test_the_message_is_trimmed_and_entities_follow() -> None:
    parsed = parse_html("\n\n  <b>hi</b> there \n")
    assert parsed.text == "hi there"
    assert parsed.entities == [{"type": "bold", "offset": 0, "length": 2}]


# -- escaping ---------------------------------------------------------------------------------


def test_translator_escapes_parameters_but_not_html_parameters() -> None:
    t = Translator()
    hostile = '<b>boss</b> & "friends" </i>'
    text = t("handoff.customer_claimed", "en", agent=hostile)
    assert isinstance(text, Html)
    assert parse_html(text).text.startswith(hostile)  # shown literally, nothing injected
    assert parse_html(text).entities == []
    nested = t("handoff.customer_claimed", "en", agent=Html("<b>Emily</b>"))
    assert parse_html(nested).of_type("bold") == ["Emily"]


@given(st.text())
def test_any_escaped_text_parses_back_to_itself(text: str) -> None:
    assert parse_html(escape(text)).text == text.strip()


# -- Markdown → HTML --------------------------------------------------------------------------

ARTICLE = """## What to do

1. Open **GPU-Z** and check `GPU Temperature`.
2. Read [the guide](https://kb.example/guide) — it's *short*.
   It continues here.

- a bullet with a_snake_case name
  - nested

> A quote

```
code <here> & there
```

Text with C# and 100% & <angle> characters.
"""


def test_markdown_becomes_telegram_html_without_visible_syntax() -> None:
    parsed = parse_html(markdown_html(ARTICLE))
    lines = parsed.text.splitlines()
    assert lines[0] == "What to do"
    assert "1. Open GPU-Z and check GPU Temperature." in lines
    assert "2. Read the guide — it's short. It continues here." in lines
    assert "• a bullet with a_snake_case name" in lines
    assert "   ◦ nested" in lines
    assert "code <here> & there" in parsed.text
    assert "Text with C# and 100% & <angle> characters." in lines
    kinds = {e["type"] for e in parsed.entities}
    assert kinds == {"bold", "code", "text_link", "italic", "blockquote", "pre"}
    assert parsed.of_type("bold") == ["What to do", "GPU-Z"]
    assert parsed.links() == [("the guide", "https://kb.example/guide")]
    for syntax in ("**", "`", "](", "## "):
        assert syntax not in parsed.text


NARROW_TABLE = """| Slot | Use |
|---|---|
| A2 | 1st |
| B2 | 2nd |
"""

WIDE_TABLE = """| System | Calculation | Recommended |
|---|---|---|
| RTX 4070 + Ryzen 7 7800X3D | 200 + 120 + 75 = 395 W | **650 W** |
| RX 7800 XT + Core i5-14600K | 263 + 181 + 75 = 519 W | 750 W |
"""

TWO_COLUMNS_WIDE = """| 接口 | 说明 |
|---|---|
| 24-pin ATX | 主板供电，必须插到底，卡扣扣紧 |
| 8-pin EPS | CPU 供电，不要与显卡 PCIe 8-pin 混用 |
"""


def test_a_narrow_table_is_an_aligned_pre_block_within_phone_width() -> None:
    [block] = markdown_blocks(NARROW_TABLE)
    parsed = parse_html(block.html)
    assert [e["type"] for e in parsed.entities] == ["pre"]
    assert parsed.text.splitlines() == ["Slot  Use", "────  ───", "A2    1st", "B2    2nd"]
    assert all(display_width(line) <= TABLE_PRE_WIDTH for line in parsed.text.splitlines())


def test_a_wide_table_becomes_label_value_lines_per_row() -> None:
    [block] = markdown_blocks(WIDE_TABLE)
    parsed = parse_html(block.html)
    assert parsed.text.split("\n\n") == [
        "RTX 4070 + Ryzen 7 7800X3D\nCalculation: 200 + 120 + 75 = 395 W\nRecommended: 650 W",
        "RX 7800 XT + Core i5-14600K\nCalculation: 263 + 181 + 75 = 519 W\nRecommended: 750 W",
    ]
    assert "RTX 4070 + Ryzen 7 7800X3D" in parsed.of_type("bold")
    assert "|" not in parsed.text


def test_a_wide_two_column_table_is_a_list_of_label_value_lines() -> None:
    [block] = markdown_blocks(TWO_COLUMNS_WIDE)
    parsed = parse_html(block.html)
    assert parsed.text.splitlines() == [
        "接口：说明",
        "• 24-pin ATX: 主板供电，必须插到底，卡扣扣紧",
        "• 8-pin EPS: CPU 供电，不要与显卡 PCIe 8-pin 混用",
    ]


def test_cjk_paragraph_lines_join_without_a_space() -> None:
    parsed = parse_html(markdown_html("第一行\n第二行\nand English\nwords"))
    assert parsed.text == "第一行第二行 and English words"


# -- length -----------------------------------------------------------------------------------


def test_truncation_cuts_at_a_word_and_closes_tags() -> None:
    html = "<b>" + "word " * 50 + "</b><i>tail</i>"
    cut = truncate_html(html, 33)
    parsed = parse_html(cut)
    assert parsed.length <= 33
    assert parsed.text.endswith("word…")
    assert parsed.text.replace("…", "").split() == ["word"] * 6
    assert truncate_html("<b>short</b>", 100) == "<b>short</b>"


def test_truncation_never_splits_an_entity_or_a_surrogate_pair() -> None:
    html = "&amp;" * 30 + "😀" * 30
    for limit in range(1, 95, 7):
        parsed = parse_html(truncate_html(html, limit))
        assert parsed.length <= limit


def test_fit_blocks_keeps_whole_blocks_and_no_dangling_heading() -> None:
    blocks = markdown_blocks("## A\n\n" + "x " * 100 + "\n\n## B\n\n" + "y " * 400)
    kept, cut = fit_blocks(blocks, 260)
    assert cut
    assert [b.kind for b in kept] == ["heading", "paragraph"]
    kept, cut = fit_blocks(blocks, 10_000)
    assert not cut and len(kept) == 4


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_len("a😀中") == 4

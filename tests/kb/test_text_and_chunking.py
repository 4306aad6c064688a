"""Tokenizer (model numbers, stop codes, Chinese), language detection, chunking."""

from __future__ import annotations

import pytest

from knowledge_base.chunking import chunk_article, split_sections, split_text
from knowledge_base.text import detect_language, query_language, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x0000007B", "0x7b"),
        ("0x7B", "0x7b"),
        ("stop code 0000007B", "0x7b"),
        ("0x00000124 WHEA", "0x124"),
    ],
)
def test_windows_stop_codes_are_normalised_so_short_and_long_forms_match(
    text: str, expected: str
) -> None:
    assert expected in tokenize(text)


@pytest.mark.parametrize(
    ("query", "document"),
    [
        ("RTX 4070", "an rtx4070 system"),
        ("rtx4070", "RTX 4070 graphics card"),
        ("4070ti", "RTX 4070 Ti Super"),
        ("4070 Ti", "the 4070ti"),
        ("7800X3D", "Ryzen 7 7800X3D"),
        ("12V-2x6", "the 12v-2x6 connector"),
    ],
)
def test_model_numbers_share_a_token_whatever_the_spelling(query: str, document: str) -> None:
    assert set(tokenize(query)) & set(tokenize(document)) - {"rtx", "ti", "super"}


def test_chinese_is_segmented_with_jieba_and_character_bigrams() -> None:
    tokens = tokenize("显卡风扇不转了怎么办")
    assert "显卡" in tokens and "风扇" in tokens
    assert "怎么办" not in tokens  # stop word
    assert "卡风" in tokens  # bigram: robust to words jieba does not know


def test_mixed_chinese_english_queries_keep_both() -> None:
    tokens = tokenize("我的RTX 4070花屏了")
    assert {"rtx", "4070", "rtx4070", "花屏"} <= set(tokens)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("显卡风扇不转怎么办？很多显卡在低温时会停转风扇，这是正常的。", "zh"),
        ("我的 RTX 4070 在 BIOS 里显示 PCIe x8，GPU-Z 也一样，怎么办", "zh"),
        ("The graphics card fans do not spin at idle. This is the zero RPM mode.", "en"),
        (
            "Bonjour, ma carte graphique ne fonctionne plus depuis la mise à jour du pilote "
            "et je ne sais pas quoi faire maintenant.",
            None,
        ),
        ("グラフィックカードが動作しません", None),
        ("Моя видеокарта не работает после обновления драйвера", None),
    ],
)
def test_language_detection_knows_only_chinese_and_english(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_query_language_is_chinese_as_soon_as_there_are_chinese_characters() -> None:
    assert query_language("RTX 4070 花屏") == "zh"
    assert query_language("RTX 4070 artifacts") == "en"


def test_articles_split_by_headings_then_by_size_with_overlap() -> None:
    body = (
        "Intro line.\n\n## First\n\nShort section.\n\n## Second\n\n"
        + "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(6))
        + "\n\n```\n## not a heading inside code\n```\n"
    )
    sections = split_sections(body)
    assert [h for h, _ in sections] == ["", "First", "Second"]
    chunks = chunk_article(body, chunk_size=300, chunk_overlap=60)
    assert [c.heading for c in chunks[:2]] == ["", "First"]
    second = [c for c in chunks if c.heading == "Second"]
    assert len(second) >= 3
    assert all(len(c.text) <= 300 for c in chunks)
    # Consecutive pieces of one section overlap.
    assert second[0].text[-40:].split()[-1] in second[1].text
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_long_chinese_text_without_spaces_is_split_at_sentence_ends() -> None:
    text = "显卡花屏通常是显存问题。" * 60
    pieces = split_text(text, 200, 30)
    assert len(pieces) > 3 and all(len(p) <= 200 for p in pieces)
    assert all(p.endswith("。") for p in pieces)

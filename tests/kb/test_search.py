"""Search over the real articles with the real multilingual USE model."""

from __future__ import annotations

import pytest

from knowledge_base.service import KnowledgeBase


def topics(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.article_id.rsplit(".", 1)[0] for h in hits]


@pytest.mark.parametrize(
    ("query", "topic"),
    [
        ("我的显卡风扇不转了", "gpu-fan-not-spinning"),
        ("电脑蓝屏了，提示内存管理错误", "bsod-memory-management"),
        ("显示器一直提示无信号", "monitor-no-signal"),
        ("my new GPU shows artifacts and coloured lines in games", "gpu-artifacts"),
        ("how many watts does my power supply need", "psu-sizing"),
        ("laptop is plugged in but the battery is not charging", "laptop-battery-not-charging"),
    ],
)
def test_hybrid_search_finds_the_article_in_chinese_and_english(
    article_kb: KnowledgeBase, query: str, topic: str
) -> None:
    hits = article_kb.search(query, k=3)
    assert topic in topics(hits)


@pytest.mark.parametrize(
    ("query", "target", "topic"),
    [
        ("显卡花屏，屏幕上有彩色条纹", "en", "gpu-artifacts"),
        ("笔记本插着电源却不充电", "en", "laptop-battery-not-charging"),
        ("the ups keeps beeping every few seconds", "zh", "ups-beeping"),
        ("how do I return a product I don't want anymore", "zh", "returns-refunds"),
    ],
)
def test_cross_lingual_dense_search_finds_the_other_languages_article(
    article_kb: KnowledgeBase, query: str, target: str, topic: str
) -> None:
    hits = article_kb.search(query, k=3, lang=target, mode="dense")
    assert hits and all(h.language == target for h in hits)
    assert topic in topics(hits)


@pytest.mark.parametrize(
    ("query", "topic"),
    [
        ("0x7B", "bsod-inaccessible-boot-device"),
        ("0x0000007B", "bsod-inaccessible-boot-device"),
        ("蓝屏 0x124", "bsod-whea-uncorrectable"),
        ("0x1a", "bsod-memory-management"),
        ("blue screen 0x0000001A", "bsod-memory-management"),
        ("4070ti", "bsod-video-tdr"),  # the article says "RTX 4070 Ti SUPER"
        ("RX 7900 GRE", "bsod-video-tdr"),
        ("B650 支持 9800X3D 吗", "bios-new-cpu-support"),
    ],
)
def test_exact_model_numbers_and_error_codes_are_found_lexically(
    article_kb: KnowledgeBase, query: str, topic: str
) -> None:
    assert topics(article_kb.search(query, k=1, mode="lexical")) == [topic]


@pytest.mark.parametrize(
    ("query", "topic"),
    [
        ("0x7B", "bsod-inaccessible-boot-device"),
        ("0x0000007B", "bsod-inaccessible-boot-device"),
        ("blue screen 0x0000001A", "bsod-memory-management"),
        ("0x116 蓝屏", "bsod-video-tdr"),
        ("driver crash on my 4070ti", "bsod-video-tdr"),
        ("RX 7900 GRE", "bsod-video-tdr"),
    ],
)
def test_hybrid_search_keeps_exact_identifier_matches_near_the_top(
    article_kb: KnowledgeBase, query: str, topic: str
) -> None:
    assert topic in topics(article_kb.search(query, k=3))


def test_filters_by_language_and_category(article_kb: KnowledgeBase) -> None:
    hits = article_kb.search("screen flickering", k=10, category="monitor")
    assert hits
    assert all("monitor" in h.categories or h.categories == [] for h in hits)
    assert any(h.categories == [] for h in article_kb.search("warranty", k=10, category="ups"))
    zh = article_kb.search("warranty", k=10, lang="zh")
    assert zh and all(h.language == "zh" for h in zh)


def test_hits_carry_what_the_bot_shows(article_kb: KnowledgeBase) -> None:
    hit = article_kb.search("how do I update the BIOS", k=1, lang="en")[0]
    assert hit.article_id == "bios-update.en"
    assert hit.title and hit.snippet and hit.passage
    assert hit.url == "https://support.northbridge.example/kb/bios-update"
    assert hit.categories == ["motherboard"] and hit.score > 0


def test_several_queries_are_embedded_in_one_batch(article_kb: KnowledgeBase) -> None:
    calls: list[int] = []
    inner = article_kb.embedder
    original = inner.encode

    def spy(texts, batch_size=64):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(texts, batch_size)

    inner.encode = spy  # type: ignore[method-assign]
    try:
        results = article_kb.search_many(["显卡花屏", "ups beeping", "0x7B"], k=2)
    finally:
        inner.encode = original  # type: ignore[method-assign]
    assert calls == [3] and len(results) == 3

"""The helpful passage: every article names its solution sections (front matter `solution:`),
and the answer shows them — not the chunk that matched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowledge_base.chunking import outline, solution_sections
from knowledge_base.service import KnowledgeBase, solution_for
from knowledge_base.sources import SourceArticle, SourceError, is_candidate, read_source

ARTICLES = Path(__file__).resolve().parents[2] / "knowledge_base" / "articles"
ALL = sorted(p for p in ARTICLES.glob("*.md") if is_candidate(p))

# Policy articles: their solution sections must carry the rule a customer asks about.
POLICY_RULES = {
    "returns-refunds": (r"14", r"14"),
    "doa-policy": (r"30 days", r"30 天"),
    "warranty-policy": (r"\d+ months", r"\d+ 个月"),
    "extended-warranty": (r"\+12|12 months", r"12 个月"),
    "shipping-delivery": (r"days", r"天"),
    "invoices": (r"invoice", r"发票"),
    "paid-repair": (r"diagnosis fee|fee", r"检测费|费用"),
    "monitor-dead-pixels-policy": (r"pixel", r"坏点|亮点"),
    "rma-procedure": (r"TK-", r"TK-"),
}


def _read(path: Path) -> SourceArticle:
    return read_source(path, ARTICLES, max_bytes=0)


def test_there_are_168_articles() -> None:
    assert len(ALL) == 168


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_article_names_solution_sections_that_exist_and_say_something(path: Path) -> None:
    article = _read(path)
    assert article.solution, f"{path.name}: no `solution:` in the front matter"
    headings = {s.heading for s in outline(article.body)}
    for section in article.solution:
        assert section["heading"] in headings
        text = re.sub(r"\s+", "", section["markdown"])
        assert len(text) >= 30, f"{path.name}: section {section['heading']!r} is nearly empty"


@pytest.mark.parametrize(
    "topic", sorted({p.name.rsplit(".", 2)[0] for p in ALL}), ids=lambda t: str(t)
)
def test_translations_show_the_same_sections(topic: str) -> None:
    """zh and en versions list corresponding sections (same count and position in the body)."""
    en, zh = _read(ARTICLES / f"{topic}.en.md"), _read(ARTICLES / f"{topic}.zh.md")

    def positions(article: SourceArticle) -> list[int]:
        top = [s.heading for s in outline(article.body) if s.level == 2]
        return [top.index(s["heading"]) for s in article.solution]

    assert positions(en) == positions(zh)


@pytest.mark.parametrize("topic", sorted(POLICY_RULES))
def test_policy_articles_show_their_key_rules(topic: str) -> None:
    for lang, pattern in zip(("en", "zh"), POLICY_RULES[topic], strict=True):
        article = _read(ARTICLES / f"{topic}.{lang}.md")
        shown = "\n".join(s["markdown"] for s in article.solution)
        assert re.search(pattern, shown, re.IGNORECASE), (topic, lang)


def test_symptom_sections_are_never_the_solution() -> None:
    for path in ALL:
        for section in _read(path).solution:
            assert section["heading"] not in ("Symptoms", "故障现象", "常见表现", "常见现象")


def test_a_solution_heading_that_is_not_in_the_article_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text(
        "---\nlanguage: en\nsolution: [Fix it]\n---\n"
        "## Symptoms\n\nIt breaks.\n\n## Fix\n\nDo x.\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match="front matter field 'solution': no heading 'Fix it'"):
        read_source(path, tmp_path, max_bytes=0)


def test_a_solution_section_includes_its_subsections() -> None:
    body = "## Reset\n\nIntro.\n\n### Jumper\n\nShort the pins.\n\n## Later\n\nOther."
    [section] = solution_sections(body, ["reset"])  # headings match case-insensitively
    assert section.heading == "Reset"
    assert section.markdown == "Intro.\n\n### Jumper\n\nShort the pins."


def test_the_matched_solution_section_comes_first_others_keep_their_order() -> None:
    sections = [
        {"heading": "A", "markdown": "a"},
        {"heading": "B", "markdown": "b\n\n### B2\n\nb2"},
        {"heading": "C", "markdown": "c"},
    ]
    assert [s["heading"] for s in solution_for(sections, "C")] == ["C", "A", "B"]
    assert [s["heading"] for s in solution_for(sections, "B2")] == ["B", "A", "C"]
    assert [s["heading"] for s in solution_for(sections, "Symptoms")] == ["A", "B", "C"]


def test_a_symptom_question_is_answered_with_what_to_do(article_kb: KnowledgeBase) -> None:
    """The customer describes the symptom; the chunk that ranks is the symptom paragraph,
    but the answer carries the article's solution sections."""
    answer = article_kb.answer("my graphics card shows colourful dots and lines on screen")
    assert answer.confident and answer.article_id == "gpu-artifacts.en"
    assert answer.solution_headings
    assert "Symptoms" not in answer.solution_headings
    assert answer.solution_markdown.startswith(f"## {answer.solution_headings[0]}\n")
    assert answer.display_markdown == answer.solution_markdown
    zh = article_kb.answer("显卡花屏，屏幕上有彩色雪花点")
    assert zh.article_id == "gpu-artifacts.zh" and zh.solution_headings
    assert "故障现象" not in zh.solution_headings

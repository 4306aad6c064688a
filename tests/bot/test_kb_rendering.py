"""Every knowledge-base article, as the bot would send it, through the fake Bot API's
Telegram HTML parser: no parse error, no Markdown syntax visible, within Telegram's limit,
"read more" exactly when something was left out — for the answer (the solution sections)
and for the whole article. And every locale text parses in both languages."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from bot.deps import Texts
from bot.flows.render import ANSWER_MAX_CHARS, article_html, kb_answer_html
from bot.i18n import LANGUAGES, Translator
from bot.rendering import MESSAGE_LIMIT
from bot.telegram_html import ParsedMessage, parse_html
from knowledge_base.answer import Answer
from knowledge_base.service import solution_for
from knowledge_base.sources import SourceArticle, is_candidate, read_source

ARTICLES = Path(__file__).resolve().parents[2] / "knowledge_base" / "articles"
ALL = sorted(p for p in ARTICLES.glob("*.md") if is_candidate(p))
T = Translator()

# Markdown syntax that must never reach the customer.
RAW_MARKDOWN = [
    re.compile(r"\*\*|__|~~|`"),  # bold, strike, code markers
    re.compile(r"^\s*\||\|\s*:?-{3,}", re.MULTILINE),  # table rows and rules
    re.compile(r"^\s*#{1,6}\s", re.MULTILINE),  # headings
    re.compile(r"\]\(|!\["),  # links and images
    re.compile(r"^\s*[-*+]\s", re.MULTILINE),  # list markers (we render "•")
    re.compile(r"^\s*-{3,}\s*$", re.MULTILINE),  # rules
]


def _answer(article: SourceArticle, matched_heading: str = "") -> Answer:
    sections = solution_for(article.solution, matched_heading)
    return Answer(
        passage="(the matched chunk)",
        article_id=article.article_id,
        title=article.title,
        url=article.source_url,
        language=article.language,
        confidence=0.9,
        confident=True,
        heading=matched_heading,
        solution_markdown="\n\n".join(f"## {s['heading']}\n\n{s['markdown']}" for s in sections),
        solution_headings=[s["heading"] for s in sections],
    )


def _prose(parsed: ParsedMessage) -> str:
    """The visible text outside code and pre entities (code may show `|` or `#` itself)."""
    units = bytearray(parsed.text.encode("utf-16-le"))
    for e in parsed.entities:
        if e["type"] in ("code", "pre"):
            units[2 * e["offset"] : 2 * (e["offset"] + e["length"])] = (
                " ".encode("utf-16-le") * e["length"]
            )
    return units.decode("utf-16-le")


def _assert_clean(parsed: ParsedMessage, where: str) -> None:
    prose = _prose(parsed)
    for pattern in RAW_MARKDOWN:
        found = pattern.search(prose)
        assert found is None, f"{where}: raw Markdown {found.group(0)!r} in {parsed.text!r}"
    assert parsed.length <= MESSAGE_LIMIT, where


def _body(parsed: ParsedMessage) -> str:
    """The text without its last line (the link to the article)."""
    return parsed.text.rsplit("\n", 1)[0]


def _read_more(parsed: ParsedMessage, lang: str) -> bool:
    label = parse_html(T.t("kb.read_more", lang, title="", url="u")).text
    return any(text.startswith(label.removeprefix("📖 ")) for text, _ in parsed.links())


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_articles_answer_renders_cleanly_with_the_solution_and_its_link(path: Path) -> None:
    article = read_source(path, ARTICLES, max_bytes=0)
    t = Texts(T, article.language)
    answer = _answer(article)
    parsed = parse_html(kb_answer_html(t, answer))
    _assert_clean(parsed, path.name)
    # compact: the solution within its budget, plus title and link
    assert parsed.length <= ANSWER_MAX_CHARS + len(article.title) * 2 + 60
    # it shows what to do: the first solution section's heading (bold) and its first words
    first = article.solution[0]
    bold = parsed.of_type("bold")
    assert bold[0] == article.title and first["heading"] in bold
    # the link to the whole article; "read more" exactly when something was left out
    assert article.source_url and [u for _, u in parsed.links()] == [article.source_url]
    everything = parse_html(kb_answer_html(t, answer, budget=100_000))
    assert _read_more(parsed, article.language) == (_body(parsed) != _body(everything))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_whole_article_renders_cleanly_within_telegrams_limit(path: Path) -> None:
    article = read_source(path, ARTICLES, max_bytes=0)
    t = Texts(T, article.language)
    parsed = parse_html(article_html(t, article.title, article.body, article.source_url))
    _assert_clean(parsed, path.name)
    whole = parse_html(article_html(t, article.title, article.body, article.source_url, 10**6))
    short = parse_html(article_html(t, article.title, article.body, article.source_url, 1200))
    _assert_clean(short, path.name)
    assert short.length <= 1200
    # cut between blocks, with the link to the rest, exactly when something was left out
    assert _read_more(short, article.language) == (_body(short) != _body(whole))
    assert _read_more(parsed, article.language) == (_body(parsed) != _body(whole))


def test_answers_lead_with_the_section_the_question_matched() -> None:
    article = read_source(ARTICLES / "gpu-fan-not-spinning.en.md", ARTICLES, max_bytes=0)
    last = article.solution[-1]["heading"]
    parsed = parse_html(kb_answer_html(Texts(T, "en"), _answer(article, last)))
    assert parsed.of_type("bold")[1] == last


def test_an_article_with_a_table_reads_as_lines_on_a_phone() -> None:
    article = read_source(ARTICLES / "psu-sizing.en.md", ARTICLES, max_bytes=0)
    parsed = parse_html(kb_answer_html(Texts(T, "en"), _answer(article, "Examples")))
    assert "RTX 4070 + Ryzen 7 7800X3D\nCalculation: 200 + 120 + 75 = 395 W" in parsed.text
    assert "Recommended: 650 W" in parsed.text


def _sample(name: str) -> object:
    """A parameter value that would break HTML if it were not escaped."""
    if name in ("y", "m", "d", "days", "position", "minutes", "months", "count", "score"):
        return 7
    return f'<{name}> & "x"'


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_locale_text_is_valid_telegram_html_with_any_parameters(lang: str) -> None:
    for key in sorted(T.keys(lang)):
        template = T.template(key, lang)
        names = {n for _, n, _, _ in string.Formatter().parse(template) if n}
        try:
            text = T.t(key, lang, **{n: _sample(n) for n in names})
        except (ValueError, TypeError):  # a numeric format spec: numbers only
            text = T.t(key, lang, **{n: 7 for n in names})
        parsed = parse_html(text)  # raises like Telegram on invalid HTML
        for name in names:
            value = _sample(name)
            if isinstance(value, str) and f"{{{name}}}" in template:
                # shown literally (or kept whole as a link's URL), never taken as markup
                urls = [e.get("url") for e in parsed.entities]
                assert value in parsed.text or value in urls, (key, name)

"""The "first answer" evaluation: does a new customer's first message get the right article?

Each query of a set (`{"query", "lang", "relevant": [article ids], "kind"}` per JSONL line)
is written once, by a Telegram user the CRM has never seen (a prospect, never linked), into
the REAL dispatcher (middlewares, routers, NLU, knowledge base, CRM) with Telegram
in-process. The bot's reply to that one message is its *first answer*; it *cites* an article
when the article's source URL is in the reply's text or in one of its URL buttons (what the
customer can open). A query is a hit when the first answer cites one of its relevant articles
(ids with or without the `.zh` / `.en` language suffix: either translation counts).

Used by `benchmarks/first_answer.py` (the measured figure in BENCHMARKS.md), by
`hwcrm kb evaluate-first-answer`, and by the CI floor in `tests/bot/test_first_answer.py`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram.fsm.storage.memory import MemoryStorage

from bot.deps import BotDeps
from bot.fake_telegram import InProcessBotAPI, SentCall, UpdateFactory
from bot.middlewares.options import RuntimeOptions
from bot.runtime import build_bot, build_dispatcher
from knowledge_base.sources import SourceError, is_candidate, read_source

KINDS = ("fault", "product", "policy")
LANGS = ("zh", "en")
# Telegram ids of the evaluation's new customers: far above any demo or test customer.
FIRST_USER_ID = 7_700_000_000
_URL = re.compile(r"https?://[^\s\"'<>]+")


class QuerySetError(ValueError):
    """A query-set line that cannot be used; the message names the line and the reason."""


@dataclass(frozen=True)
class FirstAnswerQuery:
    query: str
    lang: str
    relevant: tuple[str, ...]
    kind: str


@dataclass
class QueryResult:
    query: FirstAnswerQuery
    cited: list[str]
    hit: bool
    reply: str


@dataclass
class FirstAnswerReport:
    results: list[QueryResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def hits(self) -> int:
        return sum(r.hit for r in self.results)

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def breakdown(self) -> dict[str, tuple[int, int]]:
        """(hits, total) per language, per kind and per language/kind."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in self.results:
            for key in (r.query.lang, r.query.kind, f"{r.query.lang}/{r.query.kind}"):
                out[key][0] += r.hit
                out[key][1] += 1
        return {key: (v[0], v[1]) for key, v in sorted(out.items())}

    def as_json(self) -> dict[str, Any]:
        return {
            "queries": self.total,
            "hits": self.hits,
            "first_answer_rate": round(self.rate, 4),
            "breakdown": {
                key: {"hits": h, "total": n, "rate": round(h / n, 4)}
                for key, (h, n) in self.breakdown().items()
            },
        }


def slug(article_id: str) -> str:
    """`gpu-artifacts.zh` → `gpu-artifacts` (translations count as the same article)."""
    for lang in LANGS:
        if article_id.endswith(f".{lang}"):
            return article_id[: -len(lang) - 1]
    return article_id


def load_queries(path: Path) -> list[FirstAnswerQuery]:
    """The query set; a malformed line raises `QuerySetError` naming it (nothing is skipped)."""
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query = FirstAnswerQuery(
                query=str(row["query"]),
                lang=str(row["lang"]),
                relevant=tuple(str(a) for a in row["relevant"]),
                kind=str(row["kind"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise QuerySetError(f"{path}:{number}: not a query line ({exc})") from exc
        if query.lang not in LANGS or query.kind not in KINDS or not query.relevant:
            raise QuerySetError(
                f"{path}:{number}: lang must be zh|en, kind fault|product|policy, "
                "relevant a non-empty list"
            )
        if not query.query.strip():
            raise QuerySetError(f"{path}:{number}: empty query")
        queries.append(query)
    return queries


def article_urls(articles_dir: Path) -> dict[str, str]:
    """Source URL → article slug, for every article with a URL under `articles_dir`."""
    urls: dict[str, str] = {}
    for path in sorted(articles_dir.rglob("*")):
        if not path.is_file() or not is_candidate(path):
            continue
        try:
            article = read_source(path, articles_dir, max_bytes=0)
        except SourceError:
            continue
        if article.source_url:
            urls[article.source_url] = slug(article.translation_of or article.article_id)
    return urls


def cited_articles(calls: Iterable[SentCall], urls: dict[str, str]) -> list[str]:
    """Slugs of the articles whose URL the bot's messages show (text links or URL buttons)."""
    found: list[str] = []
    for call in calls:
        candidates = _URL.findall(call.text)
        # the citation line is a text link (call.text is what the person sees, without URLs)
        candidates += [e["url"] for e in call.entities if e["type"] == "text_link"]
        candidates += [data for _, data in call.buttons() if data.startswith("http")]
        for url in candidates:
            url = url.rstrip(".,;:)）。").replace("&amp;", "&")
            article = urls.get(url)
            if article is not None and article not in found:
                found.append(article)
    return found


async def play_first_answers(
    deps: BotDeps,
    queries: list[FirstAnswerQuery],
    urls: dict[str, str],
    *,
    first_user_id: int = FIRST_USER_ID,
    progress: Callable[[int], None] | None = None,
) -> FirstAnswerReport:
    """Write each query as a new customer through the real dispatcher; score the replies."""
    api = InProcessBotAPI()
    bot = build_bot(deps.settings, session=api)
    dispatcher = build_dispatcher(
        deps, storage=MemoryStorage(), options=RuntimeOptions(throttle_messages=1_000_000)
    )
    updates = UpdateFactory()
    report = FirstAnswerReport()
    try:
        for offset, query in enumerate(queries):
            user = updates.user(first_user_id + offset, language_code=query.lang, name="New")
            before = len(api.calls)
            await dispatcher.feed_update(bot, updates.message(user, query.query))
            calls = api.calls[before:]
            cited = cited_articles(calls, urls)
            relevant = {slug(a) for a in query.relevant}
            report.results.append(
                QueryResult(
                    query=query,
                    cited=cited,
                    hit=any(c in relevant for c in cited),
                    reply="\n".join(c.text for c in calls if c.text),
                )
            )
            if progress is not None:
                progress(offset + 1)
    finally:
        await bot.session.close()
    return report

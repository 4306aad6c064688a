"""First answer: the share of new customers whose FIRST reply cites the right article.

    .venv/bin/python benchmarks/first_answer.py       # tests/data/first_answer_queries.jsonl
    .venv/bin/python benchmarks/first_answer.py --queries my.jsonl --show-misses

Every query (`{"query", "lang", "relevant": [article ids], "kind": fault|product|policy}` per
line) is written by a Telegram user the CRM has never seen (never linked: a prospect) into
the real dispatcher — middlewares, routers, the embedded NLU trained from nlu/rasa/data, the
knowledge base, the CRM on a demo-seeded SQLite database — with Telegram in-process
(`bot.first_answer`). A query counts when the bot's reply to that one message shows the URL
of one of its relevant articles (text or URL button). Reports the rate overall, per language,
per kind, and per language/kind: a table and, last, one JSON line with the machine and the
load average.

Set-up: a temporary SQLite database, migrated and seeded with the demo data (catalog,
customers); the knowledge-base index in `--kb-index-dir` (default `kb.index_dir`), ingested
there from knowledge_base/articles when it holds none (`hwcrm kb ingest`); the embedded NLU
model from `nlu.model_dir` (trained from the Rasa data when missing or stale).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.ext.asyncio import async_sessionmaker  # noqa: E402

from app.settings import load_settings  # noqa: E402
from bot.deps import BotDeps  # noqa: E402
from bot.first_answer import (  # noqa: E402
    FirstAnswerReport,
    article_urls,
    load_queries,
    play_first_answers,
)
from bot.i18n import Translator  # noqa: E402
from crm_core.clock import FixedClock  # noqa: E402
from crm_core.db import create_engine, unit_of_work  # noqa: E402
from crm_core.demo import DemoOptions, seed_demo  # noqa: E402
from crm_core.migrate import upgrade  # noqa: E402

DEMO_TODAY = date(2026, 6, 15)
DEFAULT_QUERIES = ROOT / "tests" / "data" / "first_answer_queries.jsonl"


def _machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "date": datetime.now(UTC).isoformat()}


def _print_report(report: FirstAnswerReport, *, show_misses: bool) -> None:
    rate = f"{report.hits}/{report.total} = {report.rate:.3f}"
    print(f"first answer cites a relevant article: {rate}")
    print(f"{'slice':<14}{'hits':>6}{'total':>7}{'rate':>8}")
    for key, (hits, total) in report.breakdown().items():
        print(f"{key:<14}{hits:>6}{total:>7}{hits / total:>8.3f}")
    if show_misses:
        print("\nmisses:")
        for r in report.results:
            if not r.hit:
                first = r.reply.replace("\n", " ")[:110]
                print(f"- [{r.query.lang}/{r.query.kind}] {r.query.query}")
                print(f"    relevant={list(r.query.relevant)} cited={r.cited} reply: {first}")


async def _kb(settings, work: Path):  # type: ignore[no-untyped-def]
    from knowledge_base.ingest import Ingestor
    from knowledge_base.service import KnowledgeBase

    kb_settings = settings.kb
    if not (Path(kb_settings.index_dir) / "CURRENT").is_file():
        url = f"sqlite+aiosqlite:///{work / 'kb.sqlite3'}"
        await upgrade(url)
        engine = create_engine(url)
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            started = time.perf_counter()
            ingestor = Ingestor.from_settings(sessions, kb_settings)
            await ingestor.ingest(ROOT / kb_settings.articles_dir)
            print(f"ingested the knowledge base in {time.perf_counter() - started:.0f} s")
        finally:
            await engine.dispose()
    kb = KnowledgeBase.from_settings(kb_settings)
    kb.require()
    return kb


async def main(args: argparse.Namespace) -> None:
    queries = load_queries(args.queries)
    settings = load_settings()
    if args.kb_index_dir:
        settings.kb.index_dir = args.kb_index_dir
    with tempfile.TemporaryDirectory(prefix="hwcrm-first-answer-") as tmp:
        work = Path(tmp)
        url = f"sqlite+aiosqlite:///{work / 'crm.sqlite3'}"
        started = time.perf_counter()
        await upgrade(url)
        engine = create_engine(url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with unit_of_work(sessions) as session:
            await seed_demo(session, DemoOptions(today=DEMO_TODAY, customers=60))
        print(f"database seeded in {time.perf_counter() - started:.0f} s")
        kb = await _kb(settings, work)
        from nlu.factory import build_nlu_service

        nlu = build_nlu_service(settings.nlu.model_copy(update={"rasa_url": ""}))
        started = time.perf_counter()
        await nlu.warm_up()
        print(f"NLU ready in {time.perf_counter() - started:.0f} s")
        deps = BotDeps(
            settings=settings,
            sessions=sessions,
            clock=FixedClock(datetime(2026, 6, 15, 12, tzinfo=UTC)),
            translator=Translator(),
            nlu=nlu,
            kb=kb,
        )
        urls = article_urls(ROOT / settings.kb.articles_dir)
        started = time.perf_counter()
        report = await play_first_answers(deps, queries, urls)
        elapsed = time.perf_counter() - started
        await engine.dispose()
    _print_report(report, show_misses=args.show_misses)
    print(f"{report.total} conversations in {elapsed:.1f} s")
    result = {
        "benchmark": "first_answer",
        "queries_file": str(args.queries),
        **report.as_json(),
        "machine": _machine(),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--kb-index-dir", type=Path, default=None)
    parser.add_argument("--show-misses", action="store_true")
    asyncio.run(main(parser.parse_args()))

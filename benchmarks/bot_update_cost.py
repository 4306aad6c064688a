"""CPU and database round trips per update, in process (no HTTP, no load generator).

    .venv/bin/python benchmarks/bot_update_cost.py --reuse           # after a bot_load --reuse run
    .venv/bin/python benchmarks/bot_update_cost.py --profile out.txt # + cProfile top functions

The real dispatcher (every middleware and router), the real embedded NLU and knowledge base
and PostgreSQL, exactly as `hwcrm bot` builds them (`app.container`), with Telegram
in-process (`bot.fake_telegram.InProcessBotAPI`): each of `--updates` messages of
`benchmarks/bot_load.py`'s message mix, from the same customers, is fed through the
dispatcher one after another. Reports the process CPU time per update (the bot's own cost,
without the webhook's HTTP and without the load generator sharing the cores), SQL statements
per update and, with `--profile FILE`, cProfile's top functions.

It uses the schema and knowledge-base index of `bot_load.py --reuse` (run that first once).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bot_load  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--updates", type=int, default=600, help="measured updates (600)")
    p.add_argument("--warmup", type=int, default=100, help="updates before measuring (100)")
    p.add_argument("--customers", type=int, default=200, help="distinct customers (200)")
    p.add_argument("--pg-url", default=bot_load.DEFAULT_PG)
    p.add_argument("--schema", default="hwcrm_bot_bench")
    p.add_argument("--profile", metavar="FILE", help="cProfile the measured updates")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--sql", action="store_true", help="print the statements of one update")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import event

    from app.container import build_container
    from app.settings import load_settings
    from bot.fake_telegram import InProcessBotAPI, UpdateFactory
    from bot.runtime import build_bot, build_dispatcher

    url = f"{args.pg_url}?search_path={args.schema}"
    kb_dir = ROOT / "var" / "bench" / f"kb-{args.schema}"
    if not await bot_load.schema_is_seeded(args.pg_url, args.schema) or not kb_dir.exists():
        raise SystemExit("run `benchmarks/bot_load.py --reuse` once first (schema + KB index)")
    os.environ.update(
        HWCRM_DB__URL=url,
        HWCRM_DB__POOL_SIZE="20",
        HWCRM_KB__INDEX_DIR=str(kb_dir),
        HWCRM_NLU__MODEL_DIR=str(ROOT / "var" / "nlu"),
        HWCRM_BOT__TOKEN=bot_load.TOKEN,
    )
    settings = load_settings()
    container = await build_container(settings)
    deps = container.bot_deps()
    await deps.nlu.warm_up()  # type: ignore[attr-defined]
    await asyncio.to_thread(deps.kb.current)  # type: ignore[attr-defined]
    api = InProcessBotAPI()
    bot = build_bot(settings, session=api)
    dp = build_dispatcher(deps)
    customers = await bot_load.customer_ids(url, args.customers)
    factory = UpdateFactory()
    rng = random.Random(args.seed)

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(container.engine.sync_engine, "before_cursor_execute", count)

    def next_update() -> Any:
        user_id, language = rng.choice(customers)
        lang, text = rng.choice([m for m in bot_load.MESSAGES if m[0] == language])
        user = factory.user(user_id, language_code=lang)
        return factory.message(user, text)

    for _ in range(args.warmup):
        await dp.feed_update(bot, next_update())
    if args.sql:  # the statements of each message of the mix, for one known customer
        user_id = customers[0][0]
        for lang, text in bot_load.MESSAGES:
            statements.clear()
            await dp.feed_update(bot, factory.message(factory.user(user_id, lang), text))
            print(f"-- {text!r}: {len(statements)} statements")
            for statement in statements:
                print("   ", " ".join(statement.split())[:150])
    statements.clear()
    calls_before = len(api.calls)
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    main_cpu0 = time.thread_time()
    times0 = os.times()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(args.updates):
        await dp.feed_update(bot, next_update())
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    times1 = os.times()
    main_cpu = time.thread_time() - main_cpu0
    kinds = Counter(s.split()[0].upper() for s in statements)
    result = {
        "benchmark": "bot_update_cost",
        "updates": args.updates,
        "cpu_ms_per_update": round(1000 * cpu / args.updates, 2),
        "user_ms_per_update": round(1000 * (times1.user - times0.user) / args.updates, 2),
        "system_ms_per_update": round(1000 * (times1.system - times0.system) / args.updates, 2),
        "event_loop_thread_ms_per_update": round(1000 * main_cpu / args.updates, 2),
        "wall_ms_per_update": round(1000 * wall / args.updates, 2),
        "sql_per_update": round(len(statements) / args.updates, 2),
        "sql_kinds_per_update": {k: round(v / args.updates, 2) for k, v in kinds.most_common()},
        "bot_api_calls_per_update": round((len(api.calls) - calls_before) / args.updates, 2),
        **bot_load.machine(),
    }
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.dump_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
    await container.aclose()
    return result


def main(argv: list[str] | None = None) -> None:
    result = asyncio.run(run(parse_args(argv)))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()

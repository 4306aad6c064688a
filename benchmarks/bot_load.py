"""The bot under load over the real HTTP path: latency from update to reply, messages/s.

    .venv/bin/python benchmarks/bot_load.py                          # 200 customers, 60 s
    .venv/bin/python benchmarks/bot_load.py --customers 50 --duration 20   # a quick run
    .venv/bin/python benchmarks/bot_load.py --point 1x30     # issue 8: one worker, 30 msg/s
    .venv/bin/python benchmarks/bot_load.py --point 2x150    # two workers offered 150 msg/s
    .venv/bin/python benchmarks/bot_load.py --point 2xmax    # two workers saturated
    .venv/bin/python benchmarks/bot_load.py --point 1x30 --profile prof.txt  # + py-spy top 25

Set-up (each step timed):
1. a fresh PostgreSQL schema (`--schema`, default `hwcrm_bot_bench`) in `--pg-url`, migrated
   and seeded with the demo data (`--seed-customers`, default 2,000);
2. the knowledge-base index: `--kb-index-dir` (default `var/kb`, built by `make run`) when it
   holds an index, else ingested from knowledge_base/articles into a temporary directory;
   the embedded NLU model from `nlu.model_dir` (trained when missing);
3. the fake Bot API server (tests/bot/fake_bot_api_server.py) on loopback, and the bot as a
   separate process (`python -m app.cli bot`) in webhook mode against it, with the embedded
   NLU, the knowledge base and PostgreSQL — the production code path, one worker.

Load: `--customers` simulated customers (demo customers with a Telegram id) in parallel, each
in a closed loop: POST an update to the bot's webhook (with the secret), wait for the bot's
first message to that chat at the fake Bot API, think for `--think-ms` (uniform between the
two values; the default keeps each customer under the bot's anti-flood limit of 12 messages
per 10 s), repeat, for `--duration` seconds after `--warmup` seconds. Messages are realistic
zh/en customer texts (fault reports, product questions, warranty, orders, small talk).

Reports p50/p95/p99 latency (update POSTed → first reply received), sustained messages/s
(answered updates per second of the measured window), and lost messages (updates that got no
reply within `--reply-timeout`): a table and, last, one JSON line with the machine and load
average. Goals on 2 cores: p95 ≤ 100 ms and ≥ 100 messages/s with nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from crm_core.db import create_engine, create_session_factory, unit_of_work  # noqa: E402
from tests.bot.fake_bot_api_server import (  # noqa: E402
    FakeBotAPIServer,
    RecordedCall,
    message_update,
)

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TOKEN = "4242:BENCH-token-not-a-real-one"
GOAL_P95_MS = 100.0
GOAL_RATE = 100.0
REPLY_METHODS = {
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "copyMessage",
    "editMessageText",
}

MESSAGES = [
    ("en", "my new GPU shows artifacts in games"),
    ("zh", "我的显卡风扇不转了"),
    ("en", "How do I update the BIOS on my motherboard?"),
    ("zh", "固态硬盘速度突然变得很慢怎么办"),
    ("en", "Is my mouse still under warranty?"),
    ("zh", "我的保修什么时候到期"),
    ("en", "where is my order?"),
    ("zh", "我的订单到哪了"),
    ("en", "which power supply do I need for an RTX 4070?"),
    ("zh", "电脑开机没反应，风扇也不转"),
    ("en", "I'd like to buy a 27 inch monitor for gaming"),
    ("zh", "想买一个机械键盘，有推荐吗"),
    ("en", "hello"),
    ("zh", "谢谢"),
    ("en", "the laptop battery drains very fast"),
    ("zh", "路由器经常断网"),
    ("en", "/help"),
    ("en", "/start"),
]


# Load points of issue 8, one command each (`--point NAME`): (workers, customers, goal p95 ms,
# goal messages/s). A customer sends about one message per 1.25 s (think 0.8-1.6 s + reply),
# so N customers offer about N / 1.25 messages/s.
POINTS: dict[str, tuple[int, int, float, float]] = {
    "1x30": (1, 38, 50.0, 30.0),  # one worker at Telegram's default 30 messages/s
    "2x150": (2, 188, 250.0, 150.0),  # two workers offered 150 messages/s
    "2xmax": (2, 400, 250.0, 150.0),  # two workers saturated: their maximum throughput
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--point",
        choices=sorted(POINTS),
        help="a load point of issue 8 (sets --workers and --customers; 60 s): 1x30 = one "
        "worker at 30 messages/s, 2x150 = two workers offered 150/s, 2xmax = two workers "
        "saturated; prints one result row for BENCHMARKS.md at the end",
    )
    p.add_argument("--customers", type=int, default=200, help="simulated customers (200)")
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds (60)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (10)")
    p.add_argument(
        "--think-ms",
        type=int,
        nargs=2,
        default=[800, 1600],
        metavar=("MIN", "MAX"),
        help="a customer's pause between a reply and their next message (800 1600)",
    )
    p.add_argument("--reply-timeout", type=float, default=15.0, help="seconds (15)")
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL URL ({DEFAULT_PG})")
    p.add_argument("--schema", default="hwcrm_bot_bench", help="schema (hwcrm_bot_bench)")
    p.add_argument("--seed-customers", type=int, default=2000, help="demo data size (2000)")
    p.add_argument("--kb-index-dir", default=str(ROOT / "var" / "kb"), help="(var/kb)")
    p.add_argument("--nlu-model-dir", default=str(ROOT / "var" / "nlu"), help="(var/nlu)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="bot worker processes on the webhook port (>1: state in Redis) (1)",
    )
    p.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/9",
        help="Redis for --workers > 1; the bot's keys there are deleted before and after",
    )
    p.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the schema and knowledge-base index of an earlier --reuse run when they "
        "exist (quick re-runs; implies --keep; the index is kept in var/bench/kb-<schema>)",
    )
    p.add_argument("--seed", type=int, default=7, help="random seed for the message mix")
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the bot's processes with py-spy during the measured window; write the "
        "collapsed stacks to FILE and print the top functions (self and inclusive time)",
    )
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s (100)")
    p.add_argument(
        "--profile-gil",
        action="store_true",
        help="sample only the thread holding the GIL (Python CPU time; without it, every "
        "thread the OS shows as running, which on a busy machine includes waiting for a core)",
    )
    p.add_argument("--profile-top", type=int, default=25, help="rows of the profile (25)")
    args = p.parse_args(argv)
    if args.point:
        args.workers, args.customers, args.goal_p95_ms, args.goal_rate = POINTS[args.point]
    else:
        args.goal_p95_ms, args.goal_rate = GOAL_P95_MS, GOAL_RATE
    return args


def machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {
        "nproc": nproc,
        "cpu_model": model,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(sorted(samples), n=1000, method="inclusive")[int(q * 10) - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- set-up ---------------------------------------------------------------------------------


async def prepare_database(url: str, base_url: str, schema: str, seed_customers: int) -> None:
    from crm_core.demo import DemoOptions, seed_demo
    from crm_core.migrate import upgrade

    engine = create_engine(base_url)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await engine.dispose()
    await upgrade(url)
    engine = create_engine(url)
    async with unit_of_work(create_session_factory(engine)) as session:
        await seed_demo(session, DemoOptions(today=date.today(), customers=seed_customers))
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def schema_is_seeded(base_url: str, schema: str) -> bool:
    """True when `schema` exists and holds customers (an earlier `--reuse` run)."""
    engine = create_engine(base_url)
    try:
        async with engine.connect() as conn:
            table = await conn.scalar(text(f"SELECT to_regclass('\"{schema}\".customers')"))
            if table is None:
                return False
            count = await conn.scalar(text(f'SELECT count(*) FROM "{schema}".customers'))
            return bool(count)
    finally:
        await engine.dispose()


async def prepare_kb(url: str, index_dir: Path, keep_dir: Path | None = None) -> Path:
    """An index dir that holds a knowledge-base index: `index_dir` when it has one, else
    `keep_dir` (kept for re-runs) when it has one, else ingested into `keep_dir` or a
    temporary directory."""
    from app.settings import load_settings
    from knowledge_base.ingest import Ingestor
    from knowledge_base.store import IndexStore

    if IndexStore(index_dir).current_manifest() is not None:
        return index_dir
    if keep_dir is not None and IndexStore(keep_dir).current_manifest() is not None:
        return keep_dir
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (set-up)
    target = keep_dir or Path(tempfile.mkdtemp(prefix="hwcrm-bench-kb-"))
    settings = load_settings().kb.model_copy(update={"index_dir": target})
    engine = create_engine(url)
    ingestor = Ingestor.from_settings(create_session_factory(engine), settings)
    await ingestor.ingest(ROOT / settings.articles_dir)
    await engine.dispose()
    return target


def prepare_nlu(model_dir: Path) -> None:
    from app.settings import load_settings
    from nlu.embedded import EmbeddedConfig, load_or_train
    from nlu.factory import embedded_dir, source_path

    settings = load_settings().nlu.model_copy(update={"model_dir": model_dir})
    load_or_train(
        source_path(settings.data_dir),
        embedded_dir(settings),  # type: ignore[arg-type]
        EmbeddedConfig(embedder=settings.embedder),
    )


async def customer_ids(url: str, count: int) -> list[tuple[int, str]]:
    from crm_core.customers.models import Customer

    engine = create_engine(url)
    async with unit_of_work(create_session_factory(engine)) as session:
        rows = (
            await session.execute(
                select(Customer.telegram_user_id, Customer.language)
                .where(Customer.telegram_user_id.is_not(None))
                .order_by(Customer.id)
                .limit(count)
            )
        ).all()
    await engine.dispose()
    found = [(int(tg), str(lang)) for tg, lang in rows if tg is not None]
    # more simulated customers than demo identities: the rest are new people (prospects)
    found += [(8_000_000 + i, "en" if i % 2 else "zh") for i in range(count - len(found))]
    return found


async def bot_cpu_seconds(pid: int, start: float, stop: float) -> float:
    """CPU seconds the bot's processes (worker 0 and its children) used in [start, stop]."""
    import psutil

    def total() -> float:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        seconds = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                seconds += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return seconds

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    before = total()
    await asyncio.sleep(max(0.0, stop - time.monotonic()))
    return total() - before


async def profile_bot(
    pid: int, start: float, seconds: float, out: Path, rate: int, gil: bool
) -> Path:
    """py-spy (sampling, outside the bot) on the bot and its worker processes in the window."""
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--subprocesses", "--function",
        "--rate", str(rate), "--duration", str(max(1, round(seconds))),
        "--format", "raw", "--output", str(out), *(["--gil"] if gil else []),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():  # noqa: ASYNC240 (after the window)
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    return out


def _frame_name(frame: str) -> str:
    """`fn (path/to/module.py:12)` → `fn (module/path.py:12)`, relative to the repo/site."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def summarize_profile(path: Path, top: int) -> dict[str, Any]:
    """Top functions by self samples and by inclusive samples from py-spy's collapsed stacks."""
    from collections import Counter

    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")[1:]]  # [0] is the process/thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def rows(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / max(1, total), 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "self": rows(own), "inclusive": rows(inclusive)}


def print_profile(summary: dict[str, Any]) -> None:
    print(f"profile: {summary['samples']} samples of the bot's active threads")
    for kind in ("self", "inclusive"):
        print(f"  top by {kind} time (% of samples)")
        for name, share in summary[kind]:
            print(f"    {share:5.1f}  {name}")


async def clear_redis(url: str) -> None:
    """Delete the bot's keys (FSM, de-duplication, locks, counters) in the benchmark's Redis."""
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    keys = [key async for key in redis.scan_iter("hwcrm:bot:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


# -- load -----------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    answered: int = 0
    lost: int = 0
    extra_replies: int = 0
    post_errors: int = 0


class Waiters:
    """Resolves each customer's pending update with the first reply to their chat."""

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[float]] = {}
        self.extra = 0

    def __call__(self, call: RecordedCall) -> None:
        if call.method not in REPLY_METHODS or call.chat_id is None:
            return
        future = self.pending.pop(call.chat_id, None)
        if future is None or future.done():
            self.extra += 1
            return
        future.set_result(call.at)


async def customer_loop(
    api: FakeBotAPIServer,
    http: aiohttp.ClientSession,
    waiters: Waiters,
    customer: tuple[int, str],
    *,
    measure_from: float,
    stop_at: float,
    think: tuple[float, float],
    reply_timeout: float,
    rng: random.Random,
    stats: Stats,
) -> None:
    user_id, language = customer
    await asyncio.sleep(rng.uniform(0, think[1]))  # customers do not all start at once
    loop = asyncio.get_running_loop()
    while time.monotonic() < stop_at:
        lang, message = rng.choice([m for m in MESSAGES if m[0] == language] or MESSAGES)
        update = message_update(user_id, message, lang=lang, update_id=api.new_update_id())
        future: asyncio.Future[float] = loop.create_future()
        waiters.pending[user_id] = future
        posted = time.monotonic()
        measured = posted >= measure_from
        try:
            async with http.post(
                api.webhook_url,
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": api.webhook_secret or ""},
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"webhook answered {response.status}")
        except Exception:
            stats.post_errors += 1
            waiters.pending.pop(user_id, None)
            await asyncio.sleep(0.5)
            continue
        if measured:
            stats.sent += 1
        try:
            replied_at = await asyncio.wait_for(future, reply_timeout)
        except TimeoutError:
            waiters.pending.pop(user_id, None)
            if measured:
                stats.lost += 1
            continue
        if measured and posted < stop_at:
            stats.answered += 1
            stats.latencies_ms.append((replied_at - posted) * 1000)
        await asyncio.sleep(rng.uniform(*think))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    steps: dict[str, float] = {}
    url = f"{args.pg_url}{'&' if '?' in args.pg_url else '?'}search_path={args.schema}"
    started = time.perf_counter()
    keep_kb = ROOT / "var" / "bench" / f"kb-{args.schema}" if args.reuse else None
    reused = args.reuse and await schema_is_seeded(args.pg_url, args.schema)
    if not reused:
        if keep_kb is not None:
            shutil.rmtree(keep_kb, ignore_errors=True)  # its metadata lived in the old schema
        await prepare_database(url, args.pg_url, args.schema, args.seed_customers)
    steps["schema + demo data"] = time.perf_counter() - started

    started = time.perf_counter()
    index_dir = await prepare_kb(url, Path(args.kb_index_dir), keep_kb)
    await asyncio.to_thread(prepare_nlu, Path(args.nlu_model_dir))
    steps["KB index + NLU model"] = time.perf_counter() - started

    customers = await customer_ids(url, args.customers)
    port = free_port()
    stats = Stats()
    waiters = Waiters()
    log_path = Path(tempfile.mkstemp(prefix="hwcrm-bench-bot-", suffix=".log")[1])
    async with FakeBotAPIServer(TOKEN) as api:
        api.listeners.append(waiters)
        # update ids never seen before (the bot de-duplicates them across restarts in Redis)
        api._update_ids = itertools.count(random.randrange(10**6, 10**9))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HWCRM_")}
        env.update(
            HWCRM_BOT__TOKEN=TOKEN,
            HWCRM_BOT__API_BASE_URL=api.base_url,
            HWCRM_BOT__MODE="webhook",
            HWCRM_BOT__WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
            HWCRM_BOT__WEBHOOK_HOST="127.0.0.1",
            HWCRM_BOT__WEBHOOK_PORT=str(port),
            HWCRM_DB__URL=url,
            HWCRM_DB__POOL_SIZE="20",
            HWCRM_KB__INDEX_DIR=str(index_dir),
            HWCRM_NLU__MODEL_DIR=str(Path(args.nlu_model_dir)),
            HWCRM_APP__LOG_LEVEL="INFO",  # "listening" lines: every worker is ready
            PYTHONUNBUFFERED="1",
        )
        if args.workers > 1:
            env.update(HWCRM_BOT__FSM_STORAGE="redis", HWCRM_BOT__REDIS_URL=args.redis_url)
            await clear_redis(args.redis_url)
        started = time.perf_counter()
        with log_path.open("wb") as log:  # noqa: ASYNC230 (set-up, not measured)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app.cli", "bot", "--workers", str(args.workers),
                cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        try:
            await api.wait_for_method("setWebhook", timeout=300)
            deadline = time.monotonic() + 300
            while log_path.read_text(errors="replace").count("webhook mode: listening") < (  # noqa: ASYNC240
                args.workers
            ):
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError(f"the bot workers did not start; see {log_path}")
                await asyncio.sleep(0.5)
            # the models load in the background: wait until a message is answered
            async with aiohttp.ClientSession() as http:
                probe = await _probe(api, http, waiters, customers[0][0])
                steps["bot start (models loaded)"] = time.perf_counter() - started
                load_before = os.getloadavg()[0]
                now = time.monotonic()
                measure_from = now + args.warmup
                stop_at = measure_from + args.duration
                rng = random.Random(args.seed)
                connector_http = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=max(100, args.customers))
                )
                cpu_probe = asyncio.create_task(bot_cpu_seconds(process.pid, measure_from, stop_at))
                profiler = (
                    asyncio.create_task(
                        profile_bot(
                            process.pid,
                            measure_from,
                            args.duration,
                            Path(args.profile),
                            args.profile_rate,
                            args.profile_gil,
                        )
                    )
                    if args.profile
                    else None
                )
                async with connector_http:
                    await asyncio.gather(
                        *(
                            customer_loop(
                                api,
                                connector_http,
                                waiters,
                                customer,
                                measure_from=measure_from,
                                stop_at=stop_at,
                                think=(args.think_ms[0] / 1000, args.think_ms[1] / 1000),
                                reply_timeout=args.reply_timeout,
                                rng=random.Random(rng.random()),
                                stats=stats,
                            )
                            for customer in customers
                        )
                    )
                load_after = os.getloadavg()[0]
                bot_cpu_s = await cpu_probe
                profile = summarize_profile(await profiler, args.profile_top) if profiler else None
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    process.kill()
        stats.extra_replies = waiters.extra
        bot_log = log_path.read_text(errors="replace")  # noqa: ASYNC240
    failures = bot_log.count("failed in ")
    if args.workers > 1:
        await clear_redis(args.redis_url)
    if not (args.keep or args.reuse):
        engine = create_engine(args.pg_url)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
        await engine.dispose()
    if index_dir not in (Path(args.kb_index_dir), keep_kb):
        shutil.rmtree(index_dir, ignore_errors=True)
    lat = stats.latencies_ms
    result = {
        "benchmark": "bot_load",
        "customers": args.customers,
        "workers": args.workers,
        "duration_s": args.duration,
        "think_ms": args.think_ms,
        "updates_sent": stats.sent,
        "updates_answered": stats.answered,
        "lost": stats.lost,
        "post_errors": stats.post_errors,
        "extra_replies": stats.extra_replies,
        "bot_update_failures": failures,
        "messages_per_s": round(stats.answered / args.duration, 1),
        "bot_cpu_ms_per_message": round(1000 * bot_cpu_s / max(1, stats.answered), 1),
        "capacity_estimate_per_s": round(
            min(args.workers, machine()["nproc"]) * stats.answered / max(bot_cpu_s, 1e-9), 0
        ),
        "p50_ms": round(pct(lat, 50), 1),
        "p95_ms": round(pct(lat, 95), 1),
        "p99_ms": round(pct(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "probe_reply_ms": round(probe, 1),
        "point": args.point,
        "goal_p95_ms": args.goal_p95_ms,
        "goal_messages_per_s": args.goal_rate,
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(load_after, 2),
        "steps_s": {k: round(v, 1) for k, v in steps.items()},
        "bot_log": str(log_path),
        "profile": profile,
        **machine(),
    }
    return result


async def _probe(
    api: FakeBotAPIServer, http: aiohttp.ClientSession, waiters: Waiters, user_id: int
) -> float:
    """One message that needs NLU + KB, retried until the bot answers (models loading)."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 600
    while True:
        future: asyncio.Future[float] = loop.create_future()
        waiters.pending[user_id] = future
        update = message_update(user_id, "how do I update my motherboard BIOS?")
        update["update_id"] = api.new_update_id()
        posted = time.monotonic()
        async with http.post(
            api.webhook_url,
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": api.webhook_secret or ""},
        ) as response:
            await response.read()
        try:
            replied = await asyncio.wait_for(future, 120)
            return (replied - posted) * 1000
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def report(result: dict[str, Any]) -> None:
    ok_lat = result["p95_ms"] <= result["goal_p95_ms"]
    ok_rate = result["messages_per_s"] >= result["goal_messages_per_s"]
    rows = [
        ("simulated customers", f"{result['customers']}"),
        ("bot worker processes", f"{result['workers']}"),
        ("measured window", f"{result['duration_s']:.0f} s (think {result['think_ms']} ms)"),
        ("updates sent / answered", f"{result['updates_sent']} / {result['updates_answered']}"),
        ("lost (no reply)", f"{result['lost']}" + ("  ✓" if result["lost"] == 0 else "  ✗")),
        ("sustained messages/s", f"{result['messages_per_s']}" + ("  ✓" if ok_rate else "  ✗")),
        ("latency p50", f"{result['p50_ms']} ms"),
        ("latency p95", f"{result['p95_ms']} ms" + ("  ✓" if ok_lat else "  ✗")),
        ("latency p99 / max", f"{result['p99_ms']} / {result['max_ms']} ms"),
        ("failed updates (bot log)", f"{result['bot_update_failures']}"),
        (
            "bot CPU per message",
            f"{result['bot_cpu_ms_per_message']} ms (a core per worker for the bot alone ≈ "
            f"{result['capacity_estimate_per_s']:.0f} messages/s)",
        ),
        (
            "load average (1 min)",
            f"{result['load_avg_1m_before']} → {result['load_avg_1m_after']} on "
            f"{result['nproc']} cores",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print(
        f"bot_load — webhook over loopback HTTP, embedded NLU + KB, PostgreSQL ({result['date']})"
    )
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    for step, seconds in result["steps_s"].items():
        print(f"  set-up: {step}: {seconds:.1f} s")
    if result.get("profile"):
        print_profile(result["profile"])
    print(
        "row: | point | workers | customers | messages/s | p50 | p95 | lost | bot CPU/message "
        "| load avg |"
    )
    print(
        f"row: | {result['point'] or '-'} | {result['workers']} | {result['customers']} "
        f"| {result['messages_per_s']} | {result['p50_ms']:.0f} ms | {result['p95_ms']:.0f} ms "
        f"| {result['lost']} | {result['bot_cpu_ms_per_message']} ms "
        f"| {result['load_avg_1m_before']}–{result['load_avg_1m_after']} |"
    )
    print(json.dumps(result, ensure_ascii=False))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    report(result)


if __name__ == "__main__":
    main()

"""Campaign delivery at scale: the real sender processes against a fake Bot API on loopback.

    .venv/bin/python benchmarks/campaign_delivery.py                      # 100,000 recipients
    .venv/bin/python benchmarks/campaign_delivery.py --recipients 5000 --window 15   # quick

Set-up: a fresh PostgreSQL schema (`--pg-url`), migrated; `--recipients` consenting customers
with one queued marketing push each, plus `--repeat-chats` customers who also get two
service pushes due right behind their first one (so the per-chat limit has work to do). The
fake Bot API server (tests/bot/fake_bot_api_server.py) runs in this process and records every
message it receives, with its arrival time: it is the judge of every figure below. Senders are
real `python -m app.cli scheduler --no-schedule` processes (the production code path:
DeliveryService on PostgreSQL with SKIP LOCKED claims, aiogram over HTTP, the Redis token
bucket shared by all processes).

Phases (one campaign, drained across them):
0. replies only: a reply probe sends `--reply-rate` messages/s through the bot's own outbound
   path (aiogram `Bot` + the bot session's rate-limit middleware on the same Redis bucket),
   no campaign running: reply latency p50/p95 (request → the fake server's answer).
1. limited (`--rate` messages/s, per chat 1/s), 2 sender processes sharing the bucket, for
   `--window` s: the sustained push rate and the largest count in any 1-s window; the
   per-chat gaps (every chat's consecutive messages).
2. the same, with the reply probe running: reply p50/p95 while the campaign saturates the
   bucket, and the total (pushes + replies) rate.
3. limits lifted, 1 sender process, `--window` s: the engine's own ceiling (messages/s).
4. limits lifted, 2 sender processes, `--window` s; then one of them is killed with SIGKILL,
   a new one started, and everything left is drained.
Finally, by the fake server's record: duplicates (a chat that got the same push twice),
unknown (rows left `sending` by the kill: at most the concurrency), losses (rows neither sent
nor unknown, or marked sent but never received).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from crm_core.campaigns.models import Campaign, CampaignDelivery  # noqa: E402
from crm_core.campaigns.repository import insert_deliveries  # noqa: E402
from crm_core.customers.models import Customer  # noqa: E402
from crm_core.db import create_engine, create_session_factory  # noqa: E402
from crm_core.migrate import upgrade  # noqa: E402
from tests.bot.fake_bot_api_server import FakeBotAPIServer  # noqa: E402

TOKEN = "4242:campaign-bench"
FIRST_CHAT = 20_000_000
PROBE_CHAT = 90_000_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- data ------------------------------------------------------------------------------------


async def seed(url: str, recipients: int, repeat_chats: int) -> int:
    """Customers + one marketing push each (+ 2 service pushes for `repeat_chats` of them, due
    right behind their first, so consecutive claims hit the same chat)."""
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    now = datetime.now(UTC)
    base = now - timedelta(hours=2)
    async with sessions() as session:
        campaign = Campaign(name="bench", kind="marketing", state="running", timezone="UTC")
        session.add(campaign)
        await session.flush()
        campaign_id = int(campaign.id)
        await session.commit()
    batch = 5000
    started = time.perf_counter()
    for start in range(0, recipients, batch):
        chats = list(range(FIRST_CHAT + start, FIRST_CHAT + min(recipients, start + batch)))
        async with sessions() as session:
            await session.execute(
                insert(Customer),
                [
                    {"name": f"Customer {c}", "telegram_user_id": c, "language": "en",
                     "timezone": "UTC", "tags": [], "marketing_consent": True,
                     "lifecycle_stage": "active", "created_at": now, "updated_at": now}
                    for c in chats
                ],
            )  # fmt: skip
            ids = dict(
                (
                    await session.execute(
                        select(Customer.telegram_user_id, Customer.id).where(
                            Customer.telegram_user_id.in_(chats)
                        )
                    )
                ).all()
            )
            rows = []
            for chat in chats:
                index = chat - FIRST_CHAT
                due = base + timedelta(milliseconds=10 * index)
                rows.append(_row(campaign_id, "main", ids[chat], chat, "marketing", due, now))
                if index < repeat_chats:
                    for n in (1, 2):  # 10 and 20 rows behind the first one
                        later = due + timedelta(milliseconds=100 * n + 5)
                        rows.append(
                            _row(campaign_id, f"r{n}", ids[chat], chat, "service", later, now)
                        )
            await insert_deliveries(session, rows)
            await session.commit()
        done = min(recipients, start + batch)
        if done % 20000 == 0 or done == recipients:
            log(f"seeded {done:,} recipients ({time.perf_counter() - started:.0f}s)")
    await engine.dispose()
    return campaign_id


def _row(campaign: int, key: str, customer: int, chat: int, kind: str, due: datetime,
         now: datetime) -> dict[str, Any]:  # fmt: skip
    return {
        "occurrence_key": f"campaign:{campaign}:{key}",
        "campaign_id": campaign,
        "customer_id": customer,
        "chat_id": chat,
        "kind": kind,
        "language": "en",
        "state": "queued",
        "due_at": due,
        "attempts": 0,
        "text": f"<b>Your GPU deserves a better PSU</b> — 650 W, 2×8-pin, in stock ({chat})",
        "buttons": [[{"text": "Unsubscribe", "callback_data": "cmp:u:{d}"}]],
        "product_ids": [],
        "created_at": now,
        "updated_at": now,
    }


async def states(url: str) -> Counter[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(CampaignDelivery.state, func.count()).group_by(CampaignDelivery.state)
            )
            return Counter({s: int(n) for s, n in rows})
    finally:
        await engine.dispose()


async def rows_by_state(url: str) -> dict[str, list[int]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(CampaignDelivery.state, CampaignDelivery.id))
            out: dict[str, list[int]] = defaultdict(list)
            for state, delivery_id in rows:
                out[state].append(int(delivery_id))
            return out
    finally:
        await engine.dispose()


# -- processes ---------------------------------------------------------------------------------


class Senders:
    def __init__(self, url: str, api_url: str, prefix: str, logs: Path) -> None:
        self.url, self.api_url, self.prefix, self.logs = url, api_url, prefix, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self, *, rate: float, per_chat: float, concurrency: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HWCRM_DB__URL": self.url,
            "HWCRM_DB__POOL_SIZE": "4",
            "HWCRM_BOT__TOKEN": TOKEN,
            "HWCRM_BOT__API_BASE_URL": self.api_url,
            "HWCRM_SCHEDULER__CONCURRENCY": str(concurrency),
            "HWCRM_SCHEDULER__CLAIM_BATCH": str(concurrency),
            "HWCRM_SCHEDULER__POLL_INTERVAL_S": "0.1",
            "HWCRM_SCHEDULER__RATE_LIMIT__BACKEND": "redis",
            "HWCRM_SCHEDULER__RATE_LIMIT__REDIS_PREFIX": self.prefix,
            "HWCRM_SCHEDULER__RATE_LIMIT__PER_SECOND": str(rate),
            "HWCRM_SCHEDULER__RATE_LIMIT__PER_CHAT_INTERVAL_S": str(per_chat),
            # quiet hours are the domain's (tested there); here: deliver at any hour
            "HWCRM_CAMPAIGNS__QUIET_HOURS_START": "00:00",
            "HWCRM_CAMPAIGNS__QUIET_HOURS_END": "00:00",
            "HWCRM_APP__LOG_LEVEL": "WARNING",
        }
        self.started += 1
        handle = (self.logs / f"sender-{self.started}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "scheduler", "--no-schedule"],
            cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """SIGTERM, then wait (blocking: call it in a thread, the fake server shares the loop)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []


# -- measuring ---------------------------------------------------------------------------------


def pushes(api: FakeBotAPIServer, since: float = 0.0) -> list[Any]:
    return [
        c for c in api.calls
        if c.method == "sendMessage" and isinstance(c.result, dict) and c.at >= since
        and (c.chat_id or 0) < PROBE_CHAT
    ]  # fmt: skip


def replies(api: FakeBotAPIServer, since: float) -> list[Any]:
    return [
        c for c in api.calls
        if c.method == "sendMessage" and c.at >= since and (c.chat_id or 0) >= PROBE_CHAT
    ]  # fmt: skip


async def first_push_after(api: FakeBotAPIServer, since: float, timeout: float = 180) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = pushes(api, since)
        if calls:
            return calls[0].at
        await asyncio.sleep(0.1)
    raise RuntimeError("no push arrived: see the sender logs")


def _cpu(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def window_rate(times: list[float], start: float, end: float) -> float:
    return sum(1 for t in times if start <= t < end) / (end - start)


def max_per_second(times: list[float]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class ReplyProbe:
    """The bot's outbound path: aiogram Bot + the bot session's rate-limit middleware (Redis
    bucket shared with the senders); latency = send → the fake server's answer."""

    def __init__(self, api_url: str, prefix: str, rate_limit: float) -> None:
        from redis.asyncio import Redis

        from app.settings import load_settings
        from bot.ratelimit import RateLimitMiddleware, limiter_from_settings
        from bot.runtime import build_bot

        settings = load_settings()
        settings.bot.token = __import__("pydantic").SecretStr(TOKEN)
        settings.bot.api_base_url = api_url
        settings.scheduler.rate_limit.backend = "redis"
        settings.scheduler.rate_limit.redis_prefix = prefix
        settings.scheduler.rate_limit.per_second = rate_limit
        self.redis = Redis.from_url(settings.bot.redis_url)
        self.bot = build_bot(settings)
        limiter = limiter_from_settings(settings, self.redis)
        self.bot.session.middleware(RateLimitMiddleware(limiter))
        # time spent taking the reply's token (Redis round trip; replies never wait for one)
        self.token_ms: list[float] = []
        note = limiter.note_reply

        async def timed_note(chat_id: Any) -> None:
            started = time.perf_counter()
            await note(chat_id)
            self.token_ms.append((time.perf_counter() - started) * 1000)

        limiter.note_reply = timed_note  # type: ignore[method-assign]
        self.latencies: list[float] = []
        self.chat = PROBE_CHAT

    async def run(self, seconds: float, rate: float) -> list[float]:
        latencies: list[float] = []
        stop = time.monotonic() + seconds
        tasks = []

        async def one(chat: int) -> None:
            started = time.perf_counter()
            await self.bot.send_message(chat, "Your order SO-10023456 shipped yesterday.")
            latencies.append((time.perf_counter() - started) * 1000)

        while time.monotonic() < stop:
            self.chat += 1
            tasks.append(asyncio.create_task(one(self.chat)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
        return latencies

    async def close(self) -> None:
        await self.bot.session.close()
        await self.redis.aclose()


# -- the run -------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> dict[str, Any]:
    schema = f"hwcrm_cd_{uuid.uuid4().hex[:8]}"
    base = create_engine(args.pg_url)
    async with base.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await base.dispose()
    url = f"{args.pg_url}{'&' if '?' in args.pg_url else '?'}search_path={schema}"
    logs = Path(args.logs or f"var/bench-campaign-{schema}")
    logs.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    prefix = f"hwcrm:bench:{schema}"
    result: dict[str, Any] = {"recipients": args.recipients, "schema": schema}
    try:
        log(f"schema {schema}: migrating and seeding {args.recipients:,} recipients")
        await upgrade(url)
        t0 = time.perf_counter()
        await seed(url, args.recipients, args.repeat_chats)
        total_rows = sum((await states(url)).values())
        result["rows"] = total_rows
        result["seed_s"] = round(time.perf_counter() - t0, 1)
        async with FakeBotAPIServer(TOKEN) as api:
            senders = Senders(url, api.base_url, prefix, logs)
            probe = ReplyProbe(api.base_url, prefix, args.rate)
            try:
                await run_phases(args, api, senders, probe, url, result)
            finally:
                await asyncio.to_thread(senders.stop_all)
                await probe.close()
            await asyncio.sleep(0.5)
            await judge(api, url, total_rows, args, result)
    finally:
        if not args.keep:
            base = create_engine(args.pg_url)
            async with base.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await base.dispose()
    return result


async def run_phases(
    args: argparse.Namespace,
    api: FakeBotAPIServer,
    senders: Senders,
    probe: ReplyProbe,
    url: str,
    result: dict[str, Any],
) -> None:
    # 0: replies alone
    log(f"phase 0: replies only ({args.reply_rate}/s for {args.reply_window}s)")
    base_lat = await probe.run(args.reply_window, args.reply_rate)
    result["reply_ms_without_campaign"] = {
        "p50": round(pct(base_lat, 0.5), 1),
        "p95": round(pct(base_lat, 0.95), 1),
        "token_p95": round(pct(probe.token_ms, 0.95), 2),
    }

    # 1: limited, 2 senders sharing the Redis bucket
    log(f"phase 1: {args.rate}/s limit, per chat 1/s, 2 sender processes, {args.window}s")
    mark = time.monotonic()
    for _ in range(2):
        senders.start(rate=args.rate, per_chat=1.0, concurrency=args.limited_concurrency)
    first = await first_push_after(api, mark)
    # the window opens after the repeat chats (per-chat waits) at the head of the queue
    start = first + args.limited_warmup
    end = start + args.window
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    times = [c.at for c in pushes(api, start) if c.at < end]
    result["limited"] = {
        "limit_per_s": args.rate,
        "window_s": args.window,
        "pushes_per_s": round(len(times) / args.window, 2),
        "ratio_to_limit": round(len(times) / args.window / args.rate, 3),
        "max_in_any_1s": max_per_second(times),
    }
    log(f"  {result['limited']}")

    # 2: the same with replies
    log(f"phase 2: + replies ({args.reply_rate}/s for {args.reply_window}s)")
    mark = time.monotonic()
    lat = await probe.run(args.reply_window, args.reply_rate)
    end = time.monotonic()
    push_times = [c.at for c in pushes(api, mark) if c.at < end]
    reply_times = [c.at for c in replies(api, mark) if c.at < end]
    result["reply_ms_with_campaign"] = {
        "p50": round(pct(lat, 0.5), 1),
        "p95": round(pct(lat, 0.95), 1),
        "token_p95": round(pct(probe.token_ms[-len(lat) :], 0.95), 2),
    }
    result["limited_with_replies"] = {
        "pushes_per_s": round(len(push_times) / (end - mark), 2),
        "replies_per_s": round(len(reply_times) / (end - mark), 2),
        "total_per_s": round((len(push_times) + len(reply_times)) / (end - mark), 2),
        "max_total_in_any_1s": max_per_second(push_times + reply_times),
    }
    log(f"  {result['limited_with_replies']} replies {result['reply_ms_with_campaign']}")
    await asyncio.to_thread(senders.stop_all)
    result["_limited_until"] = time.monotonic()
    result["rows_sent_in_limited_phases"] = len(pushes(api))

    # 3: ceiling, 1 sender
    for workers in (1, 2):
        log(f"phase {2 + workers}: limits lifted, {workers} sender process(es), {args.window}s")
        mark = time.monotonic()
        procs = [
            senders.start(rate=0, per_chat=0, concurrency=args.concurrency) for _ in range(workers)
        ]
        first = await first_push_after(api, mark)
        # every process is up (their first sends) before the window opens
        await asyncio.sleep(3.0 if workers == 1 else 8.0)
        start = time.monotonic()
        load_before = os.getloadavg()
        cpu_before = _cpu([p.pid for p in procs])
        own_before = time.process_time()
        await asyncio.sleep(args.window)
        end = time.monotonic()
        cpu_senders = _cpu([p.pid for p in procs]) - cpu_before
        cpu_server = time.process_time() - own_before
        times = [c.at for c in pushes(api, start) if c.at < end]
        rate = len(times) / (end - start)
        result[f"ceiling_{workers}_worker"] = {
            "messages_per_s": round(rate, 1),
            "window_s": args.window,
            "loadavg_1m": round(load_before[0], 2),
            "first_push_after_start_s": round(first - mark, 1),
            # CPU actually used per message (the machine is shared: wall rate is what we got)
            "sender_cpu_ms_per_msg": round(cpu_senders / max(1, len(times)) * 1000, 2),
            "fake_server_cpu_ms_per_msg": round(cpu_server / max(1, len(times)) * 1000, 2),
        }
        log(f"  {result[f'ceiling_{workers}_worker']}")
        if workers == 1:
            await asyncio.to_thread(senders.stop_all)
        else:
            # 4: kill -9 one sender mid-campaign, start another, drain everything
            left = (await states(url)).get("queued", 0)
            log(f"kill -9 of one sender with {left:,} rows still queued")
            procs[0].send_signal(signal.SIGKILL)
            await asyncio.to_thread(procs[0].wait, 10)
            at_kill = await states(url)
            result["at_kill"] = dict(at_kill)
            senders.start(rate=0, per_chat=0, concurrency=args.concurrency)
            restarted = time.monotonic()
            deadline = restarted + args.drain_timeout
            while (await states(url)).get("queued", 0) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(1.0)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(senders.stop_all)  # graceful: in-flight rows recorded
            result["after_restart"] = {
                "seconds": round(time.monotonic() - restarted, 1),
                "left_queued": (await states(url)).get("queued", 0),
            }


async def judge(
    api: FakeBotAPIServer, url: str, total_rows: int, args: argparse.Namespace,
    result: dict[str, Any],
) -> None:  # fmt: skip
    received: dict[str, list[float]] = defaultdict(list)
    for call in pushes(api):
        received[call.text].append(call.at)  # one text per row (chat + occurrence)
    by_chat: dict[int, list[float]] = defaultdict(list)
    for call in pushes(api):
        by_chat[int(call.chat_id or 0)].append(call.at)
    engine = create_engine(url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(CampaignDelivery.id, CampaignDelivery.state, CampaignDelivery.chat_id,
                       CampaignDelivery.occurrence_key, CampaignDelivery.telegram_message_id)
            )
        ).all()  # fmt: skip
    await engine.dispose()
    # a row's push is identified by (chat, message id) in the server's answer
    answered = Counter((int(c.chat_id or 0), int(c.result["message_id"])) for c in pushes(api))
    per_chat_count = Counter(int(c.chat_id or 0) for c in pushes(api))
    expected_per_chat: Counter[int] = Counter(int(r.chat_id) for r in rows)
    duplicates = sum(max(0, per_chat_count[c] - expected_per_chat[c]) for c in per_chat_count)
    state_count = Counter(r.state for r in rows)
    unknown = state_count.get("sending", 0)
    sent_not_received = sum(
        1 for r in rows if r.state == "sent"
        and answered.get((int(r.chat_id), int(r.telegram_message_id or 0)), 0) == 0
    )  # fmt: skip
    # queued rows (a drain cut short by --drain-timeout) are not lost: the next sender sends them
    queued = state_count.get("queued", 0)
    lost = total_rows - state_count.get("sent", 0) - unknown - queued + sent_not_received
    gaps = [
        b - a
        for times in by_chat.values()
        for a, b in zip(sorted(times), sorted(times)[1:], strict=False)
    ]
    result["states"] = dict(state_count)
    result["duplicates"] = duplicates
    result["unknown"] = unknown
    result["unknown_bound"] = args.concurrency
    result["losses"] = lost
    result["per_chat_min_gap_s"] = round(min(gaps), 3) if gaps else None
    result["per_chat_pairs_checked"] = len(gaps)
    result["per_chat_violations"] = sum(1 for g in gaps if g < 0.95)  # in the limited phases
    result.pop("_limited_until", None)
    result["received_total"] = sum(per_chat_count.values())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get(
        "HWCRM_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"))  # fmt: skip
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--repeat-chats", type=int, default=100)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--limited-warmup", type=float, default=15.0)
    parser.add_argument("--reply-rate", type=float, default=5.0)
    parser.add_argument("--reply-window", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--limited-concurrency", type=int, default=16)
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=240.0,
        help="after the kill and restart, drain at most this long (the rest stays queued)",
    )
    parser.add_argument("--logs", default="")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    load_start = os.getloadavg()
    started = time.perf_counter()
    outcome = asyncio.run(main(arguments))
    outcome["wall_s"] = round(time.perf_counter() - started, 1)
    outcome["loadavg_start"] = [round(x, 2) for x in load_start]
    outcome["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    cores = os.cpu_count()
    outcome["machine"] = f"{platform.machine()} {cores} cores, Python {platform.python_version()}"
    print(json.dumps(outcome, ensure_ascii=False))

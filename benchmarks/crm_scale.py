"""CRM at scale on PostgreSQL: bulk demo seed, warranty look-up latency, customer import rate.

    .venv/bin/python benchmarks/crm_scale.py                      # 1,000,000 customers
    .venv/bin/python benchmarks/crm_scale.py --customers 100000   # a quick run

Steps (each timed):
1. a fresh schema (`--schema`, default `hwcrm_bench`) in the `--pg-url` database, migrated with
   crm_core.migrate.upgrade, reached through `?search_path=<schema>`;
2. `hwcrm demo seed` at scale (crm_core.demo.seed_demo: ~2.5 orders and ~3 order items per
   customer, loaded with COPY), then ANALYZE;
3. p50/p95/p99 of `WarrantyService.warranty_for_telegram_user` and
   `WarrantyService.warranty_by_serial` over `--lookups` random keys (each in its own session,
   as the bot does per update; pool warm, 200 warm-up calls first). Goal: p95 ≤ 5 ms;
4. import of a `--import-rows` customers CSV (90% new customers, 10% updates of existing
   ones) through crm_core.importexport.run_import, the core of `hwcrm import customers`.

Prints a results table and, last, one JSON line with the numbers and the machine (nproc, CPU
model, load average, PostgreSQL version, date). This is a script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import CrmSection  # noqa: E402
from crm_core.clock import FixedClock, SystemClock  # noqa: E402
from crm_core.customers.models import Customer  # noqa: E402
from crm_core.db import create_engine, create_session_factory, unit_of_work  # noqa: E402
from crm_core.demo import DemoOptions, is_empty, seed_demo  # noqa: E402
from crm_core.demo.people import scramble  # noqa: E402
from crm_core.migrate import upgrade  # noqa: E402
from crm_core.models import metadata  # noqa: E402
from crm_core.orders.models import OrderItemSerial  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
GOAL_P95_MS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    p.add_argument("--schema", default="hwcrm_bench", help="schema to (re)create and use")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--orders", type=int, default=None, help="default 2.5 × customers")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--today", default=None, help="demo 'today' (YYYY-MM-DD), default today")
    p.add_argument("--lookups", type=int, default=2000, help="look-ups per operation (≥ 2000)")
    p.add_argument("--import-rows", type=int, default=100_000, help="0 skips the import step")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the data already in --schema (skip the seed) when it is not empty",
    )
    p.add_argument("--keep", action="store_true", help="do not drop the schema at the end")
    p.add_argument("--json-out", type=Path, default=None, help="also append the JSON line here")
    return p.parse_args(argv)


def _with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url)
    query = dict(parsed.query)
    query["search_path"] = schema
    return parsed.set(query=query).render_as_string(hide_password=False)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
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


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": round(q[49], 3),
        "p95_ms": round(q[94], 3),
        "p99_ms": round(q[98], 3),
        "max_ms": round(ordered[-1], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


async def prepare_schema(base_url: str, schema: str, *, reuse: bool) -> bool:
    """Create (or reuse) the schema; True when it already holds data to reuse."""
    engine = create_engine(base_url)
    try:
        async with engine.begin() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                {"s": schema},
            )
            if exists and not reuse:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                exists = None
            if not exists:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await engine.dispose()
    url = _with_search_path(base_url, schema)
    await upgrade(url)
    if not reuse:
        return False
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            return not await is_empty(session)
    finally:
        await engine.dispose()


async def drop_schema(base_url: str, schema: str) -> None:
    engine = create_engine(base_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


def _progress_printer(label: str) -> Any:
    state = {"last": 0.0, "start": time.perf_counter()}

    def report(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - state["last"] >= 5:
            state["last"] = now
            elapsed = now - state["start"]
            print(f"  {label} {stage}: {done:,}/{total:,} ({elapsed:,.0f} s)", file=sys.stderr)

    return report


async def seed(url: str, options: DemoOptions) -> dict[str, Any]:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    try:
        started = time.perf_counter()
        async with unit_of_work(sessions) as session:
            summary = await seed_demo(session, options, _progress_printer("seed"))
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in metadata.sorted_tables:
                await conn.execute(text(f'ANALYZE "{table.name}"'))
        analyzed = time.perf_counter() - started
        return {
            "seconds": round(seeded, 1),
            "analyze_seconds": round(analyzed, 1),
            "method": summary.method,
            "rows": summary.total_rows,
            "rows_per_second": round(summary.total_rows / seeded),
            "tables": summary.rows,
        }
    finally:
        await engine.dispose()


async def table_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            counts = {}
            for name in ("customers", "orders", "order_items", "order_item_serials"):
                counts[name] = int(await conn.scalar(text(f'SELECT count(*) FROM "{name}"')) or 0)
            size = await conn.scalar(
                text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                )
            )
            counts["schema_mb"] = int((size or 0) / 1024 / 1024)
            return counts
    finally:
        await engine.dispose()


async def lookups(url: str, n: int, seed_value: int, now: datetime) -> dict[str, Any]:
    from crm_core.warranties.service import WarrantyService

    engine = create_engine(url, pool_size=5)
    sessions = create_session_factory(engine)
    rng = random.Random(seed_value)
    settings = CrmSection()
    clock = FixedClock(now)
    try:
        async with sessions() as session:
            tg_ids: list[int] = [
                int(t)
                for t in (
                    await session.scalars(
                        select(Customer.telegram_user_id)
                        .where(Customer.telegram_user_id.is_not(None))
                        .order_by(func.random())
                        .limit(n + 200)
                    )
                ).all()
                if t is not None
            ]
            max_serial = int(await session.scalar(select(func.max(OrderItemSerial.id))) or 0)
            ids = rng.sample(range(1, max_serial + 1), min(max_serial, n + 200))
            serials = list(
                (
                    await session.scalars(
                        select(OrderItemSerial.serial_number).where(OrderItemSerial.id.in_(ids))
                    )
                ).all()
            )
        serials.sort()
        rng.shuffle(serials)
        results: dict[str, Any] = {}
        units_seen = 0

        async def by_telegram(service: WarrantyService, key: int) -> None:
            nonlocal units_seen
            units_seen += len(await service.warranty_for_telegram_user(key))

        async def by_serial(service: WarrantyService, key: str) -> None:
            await service.warranty_by_serial(key)

        async def measure(call: Any, keys: list[Any]) -> dict[str, float]:
            samples: list[float] = []
            for i, key in enumerate(keys[: n + 200]):
                async with sessions() as session:
                    service = WarrantyService(session, clock, settings)
                    started = time.perf_counter()
                    await call(service, key)
                    elapsed = (time.perf_counter() - started) * 1000
                if i >= 200:  # the first 200 warm the pool and the caches
                    samples.append(elapsed)
            return percentiles(samples)

        results["warranty_for_telegram_user"] = await measure(by_telegram, tg_ids)
        results["warranty_by_serial"] = await measure(by_serial, serials)
        # Server side: EXPLAIN ANALYZE of the exact statements the service sent, for a
        # sample of keys — separates query cost from client/scheduling time.
        for name, call, keys in (
            ("warranty_for_telegram_user", by_telegram, tg_ids),
            ("warranty_by_serial", by_serial, serials),
        ):
            results[name].update(await server_times(engine, sessions, clock, settings, call, keys))
        results["units_per_telegram_user"] = round(units_seen / max(1, len(tg_ids)), 2)
        return results
    finally:
        await engine.dispose()


async def server_times(
    engine: Any, sessions: Any, clock: Any, settings: Any, call: Any, keys: list[Any]
) -> dict[str, float]:
    """p50/p95 of PostgreSQL's own execution and planning time for the service's statements."""
    from crm_core.warranties.service import WarrantyService

    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        captured.append((statement, params))

    execution: list[float] = []
    planning: list[float] = []
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        for key in keys[:200]:
            captured.clear()
            async with sessions() as session:
                await call(WarrantyService(session, clock, settings), key)
            statement, params = next(
                c for c in captured if c[0].lstrip().upper().startswith("SELECT")
            )
            async with engine.connect() as conn:
                raw = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params
                )
                plan = raw.scalar()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            execution.append(float(plan[0]["Execution Time"]))
            planning.append(float(plan[0]["Planning Time"]))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    exec_p = percentiles(execution)
    plan_p = percentiles(planning)
    return {
        "server_exec_p50_ms": exec_p["p50_ms"],
        "server_exec_p95_ms": exec_p["p95_ms"],
        "server_plan_p50_ms": plan_p["p50_ms"],
    }


async def import_customers(url: str, rows: int, seed_value: int) -> dict[str, Any]:
    try:
        from crm_core.importexport import Entity, ImportConfig, ImportRequest, run_import
    except ImportError as exc:  # the importer is developed in parallel
        return {"skipped": f"crm_core.importexport is not available: {exc}"}

    engine = create_engine(url)
    sessions = create_session_factory(engine)
    rng = random.Random(seed_value)
    try:
        async with sessions() as session:
            existing = [
                e
                for e in (
                    await session.scalars(
                        select(Customer.email)
                        .where(Customer.email.is_not(None))
                        .order_by(func.random())
                        .limit(rows // 10)
                    )
                ).all()
                if e
            ]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "customers.csv"
            write_customers_csv(path, rows, existing, rng)
            request = ImportRequest(entity=Entity.CUSTOMERS, path=path, actor="benchmark")
            started = time.perf_counter()
            result = await run_import(sessions, SystemClock(), ImportConfig(), request)
            seconds = time.perf_counter() - started
        return {
            "rows": result.rows,
            "inserted": result.inserted,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected_rows": result.rejected_rows,
            "committed": result.committed,
            "seconds": round(seconds, 1),
            "rows_per_second": round(result.rows / seconds) if seconds else 0,
        }
    finally:
        await engine.dispose()


def write_customers_csv(path: Path, rows: int, existing: list[str], rng: random.Random) -> None:
    """90% new customers (phones outside the seeded number space), 10% updates by e-mail."""
    updates = set(rng.sample(range(rows), min(len(existing), rows // 10)))
    existing_iter = iter(existing)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["name", "phone", "email", "language", "timezone", "customer_type", "tags",
             "marketing_consent"]
        )  # fmt: skip
        for i in range(rows):
            if i in updates:
                email = next(existing_iter)
                out.writerow(["Imported Update", "", email, "en", "", "pro", "erp", "yes"])
                continue
            # Subscriber numbers from ids far above any seeded customer id: no collision.
            phone = f"+86199{scramble(50_000_000 + i, 10**8, 29):08d}"
            zh = rng.random() < 0.7
            name = f"导入客户{i}" if zh else f"Imported Customer {i}"
            out.writerow(
                [name, phone, f"bench.import.{i}@example.org", "zh" if zh else "en",
                 "Asia/Shanghai" if zh else "Europe/London",
                 "consumer", "erp;import", "yes" if rng.random() < 0.6 else "no"]
            )  # fmt: skip


async def server_version(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return str(await conn.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()


def print_table(result: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"CRM at scale — {result['counts'].get('customers', 0):,} customers")
    table.add_column("measure")
    table.add_column("value", justify="right")
    counts = result["counts"]
    table.add_row("orders / order items / serials",
                  f"{counts['orders']:,} / {counts['order_items']:,} / "
                  f"{counts['order_item_serials']:,}")  # fmt: skip
    table.add_row("schema size", f"{counts['schema_mb']:,} MB")
    s = result.get("seed")
    if s:
        table.add_row(
            "demo seed (COPY)", f"{s['seconds']:,.1f} s, {s['rows']:,} rows, "
            f"{s['rows_per_second']:,} rows/s"
        )  # fmt: skip
        table.add_row("ANALYZE", f"{s['analyze_seconds']:,.1f} s")
    for name in ("warranty_for_telegram_user", "warranty_by_serial"):
        r = result["lookups"][name]
        verdict = "ok" if r["p95_ms"] <= GOAL_P95_MS else "ABOVE GOAL"
        table.add_row(
            name,
            f"p50 {r['p50_ms']:.2f} ms · p95 {r['p95_ms']:.2f} ms · p99 {r['p99_ms']:.2f} ms "
            f"(n={r['n']}, {verdict})",
        )
        if "server_exec_p50_ms" in r:
            table.add_row(
                f"  {name} in PostgreSQL",
                f"execution p50 {r['server_exec_p50_ms']:.3f} ms · p95 "
                f"{r['server_exec_p95_ms']:.3f} ms · planning p50 {r['server_plan_p50_ms']:.3f} ms",
            )
    imp = result.get("import")
    if imp and "skipped" not in imp:
        table.add_row(
            "import customers CSV",
            f"{imp['rows']:,} rows in {imp['seconds']:,.1f} s = {imp['rows_per_second']:,} rows/s "
            f"({imp['inserted']:,} new, {imp['updated']:,} updated)",
        )
    elif imp:
        table.add_row("import customers CSV", imp["skipped"])
    m = result["machine"]
    table.add_row("machine", f"{m['nproc']} × {m['cpu_model']}, load {m['load_avg_1m']}")
    table.add_row("PostgreSQL", result["postgres"])
    Console(stderr=True).print(table)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.lookups < 2000:
        print("note: fewer than 2,000 look-ups gives unstable p95 values", file=sys.stderr)
    today = date.fromisoformat(args.today) if args.today else datetime.now(UTC).date()
    options = DemoOptions(today=today, seed=args.seed, customers=args.customers, orders=args.orders)
    url = _with_search_path(args.pg_url, args.schema)
    result: dict[str, Any] = {
        "benchmark": "crm_scale",
        "params": {
            "customers": args.customers,
            "orders": options.order_count,
            "seed": args.seed,
            "today": today.isoformat(),
            "lookups": args.lookups,
            "import_rows": args.import_rows,
        },
        "machine": machine(),
    }
    result["postgres"] = await server_version(args.pg_url)
    try:
        print(f"schema {args.schema}: preparing", file=sys.stderr)
        reused = await prepare_schema(args.pg_url, args.schema, reuse=args.reuse)
        if reused:
            print("  reusing the data already in the schema", file=sys.stderr)
        else:
            print(f"seeding {args.customers:,} customers", file=sys.stderr)
            result["seed"] = await seed(url, options)
        result["counts"] = await table_counts(url)
        print(f"look-ups: {args.lookups:,} each", file=sys.stderr)
        result["lookups"] = await lookups(url, args.lookups, args.seed, options.now)
        if args.import_rows > 0:
            print(f"import: {args.import_rows:,} customer rows", file=sys.stderr)
            result["import"] = await import_customers(url, args.import_rows, args.seed)
        result["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    finally:
        if not args.keep:
            await drop_schema(args.pg_url, args.schema)
    return result


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(main(args))
    print_table(result)
    line = json.dumps(result, ensure_ascii=False, sort_keys=True)
    print(line)
    if args.json_out:
        with args.json_out.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    p95s = [
        result["lookups"][k]["p95_ms"] for k in ("warranty_for_telegram_user", "warranty_by_serial")
    ]
    return 0 if max(p95s) <= GOAL_P95_MS else 1


if __name__ == "__main__":
    sys.exit(run())

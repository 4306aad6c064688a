"""Console and REST API at scale on PostgreSQL: customer search, warranty by serial, upsert rate.

    # once, under the bench lock: seed 1,000,000 customers and keep the schema
    .venv/bin/python benchmarks/crm_scale.py --schema hwcrm_console_bench --keep --import-rows 0
    # then, any number of times, reusing that schema
    .venv/bin/python benchmarks/console_api.py --schema hwcrm_console_bench
    .venv/bin/python benchmarks/console_api.py --schema hwcrm_console_dev --customers 20000

Steps:
1. the schema is reused when it holds data (`crm_scale.prepare_schema(reuse=True)`, which also
   migrates it to head), else seeded like `crm_scale.py` (COPY) with `--customers`;
2. query keys sampled at random from the seeded data: customer names, phones, e-mails,
   Telegram user ids, order numbers, serial numbers;
3. a staff member (role agent) and an API key (customers:read, customers:write,
   warranty:read) created through the services, as `hwcrm staff add` / `hwcrm apikey create`
   do;
4. the real console (`python -m app.cli console`, uvicorn) started in a subprocess on a free
   port with `HWCRM_DB__URL` pointing at the schema (`?search_path=`);
5. over HTTP, one request at a time: p50/p95 of the console's customer search
   (`GET /customers?q=…`, signed in — the search staff use; every result row is audited) per
   query kind, and of `GET /api/v1/warranty/{serial}` (Bearer key); then requests/s and
   records/s of `POST /api/v1/customers` (batch upsert of new customers, all-or-nothing);
6. in-database time: EXPLAIN ANALYZE of every SELECT the service sends for a sample of the same
   keys (summed per request), so queueing on a loaded machine can be told from query cost.

Goals: search p95 ≤ 50 ms, warranty p95 ≤ 10 ms. Telegram *usernames* are not stored by the
CRM (only the numeric Telegram user id), so "Telegram" here is the id. Prints a table and,
last, one JSON line. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import CrmSection  # noqa: E402
from benchmarks.crm_scale import (  # noqa: E402
    DEFAULT_PG,
    _with_search_path,
    machine,
    percentiles,
    prepare_schema,
    seed,
    server_version,
    table_counts,
)
from crm_core.access.service import AccessService  # noqa: E402
from crm_core.clock import SystemClock  # noqa: E402
from crm_core.customers.models import Customer  # noqa: E402
from crm_core.db import create_engine, create_session_factory, unit_of_work  # noqa: E402
from crm_core.demo import DemoOptions  # noqa: E402
from crm_core.orders.models import Order, OrderItemSerial  # noqa: E402
from crm_core.services import CrmServices  # noqa: E402
from crm_core.staff.service import StaffService  # noqa: E402

GOAL_SEARCH_P95_MS = 50.0
GOAL_WARRANTY_P95_MS = 10.0
KINDS = ("name", "phone", "email", "telegram_id", "order_number", "serial")
PASSWORD = "bench-console-password-1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    p.add_argument("--schema", default="hwcrm_console_bench", help="schema to reuse (or seed)")
    p.add_argument("--customers", type=int, default=1_000_000, help="only when seeding")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--requests", type=int, default=1000, help="measured requests per kind")
    p.add_argument("--warmup", type=int, default=50, help="unmeasured requests per kind first")
    p.add_argument("--explain", type=int, default=100, help="keys per kind for EXPLAIN ANALYZE")
    p.add_argument("--batches", type=int, default=40, help="upsert batches")
    p.add_argument("--batch-size", type=int, default=100, help="records per upsert batch")
    p.add_argument("--singles", type=int, default=200, help="one-record upserts")
    p.add_argument("--json-out", type=Path, default=None, help="also append the JSON line here")
    return p.parse_args(argv)


# --- keys from the data --------------------------------------------------------------------


async def sample_keys(url: str, n: int, seed_value: int) -> dict[str, list[str]]:
    """`n` random query strings per kind, taken from rows that exist."""
    rng = random.Random(seed_value)
    engine = create_engine(url, pool_size=2)
    try:
        async with create_session_factory(engine)() as session:
            top = int(await session.scalar(select(func.max(Customer.id))) or 0)
            ids = rng.sample(range(1, top + 1), min(top, 4 * n))
            rows = (
                await session.execute(
                    select(
                        Customer.name, Customer.phone, Customer.email, Customer.telegram_user_id
                    ).where(Customer.id.in_(ids), Customer.erased_at.is_(None))
                )
            ).all()
            top_order = int(await session.scalar(select(func.max(Order.id))) or 0)
            orders = list(
                (
                    await session.scalars(
                        select(Order.order_number).where(
                            Order.id.in_(rng.sample(range(1, top_order + 1), min(top_order, n)))
                        )
                    )
                ).all()
            )
            top_serial = int(await session.scalar(select(func.max(OrderItemSerial.id))) or 0)
            serials = list(
                (
                    await session.scalars(
                        select(OrderItemSerial.serial_number).where(
                            OrderItemSerial.id.in_(
                                rng.sample(range(1, top_serial + 1), min(top_serial, n))
                            )
                        )
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    keys: dict[str, list[str]] = {
        # The search treats a query with digits as an id/phone/number, never as a name.
        "name": [r.name for r in rows if r.name and not any(c.isdigit() for c in r.name)],
        "phone": [r.phone for r in rows if r.phone],
        "email": [r.email for r in rows if r.email],
        "telegram_id": [str(r.telegram_user_id) for r in rows if r.telegram_user_id],
        "order_number": orders,
        "serial": serials,
    }
    for values in keys.values():
        rng.shuffle(values)
        del values[n:]
    return keys


def _letters(i: int) -> str:
    """0 → "a", 25 → "z", 26 → "ba": a digit-free label (names with digits are not searched)."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out = chr(97 + r) + out
        if i == 0:
            return out


# --- credentials ---------------------------------------------------------------------------


async def credentials(url: str, login: str) -> str:
    """A staff member (agent) for the console and an API key; returns the key's plaintext."""
    engine = create_engine(url, pool_size=2)
    clock = SystemClock()
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            await StaffService(session, clock).add_staff(
                "Bench Agent", "agent", login=login, password=PASSWORD, languages="en"
            )
            _key, plaintext = await AccessService(session, clock).create_key(
                f"bench {login}",
                ["customers:read", "customers:write", "warranty:read"],
                rate_limit_per_minute=100_000,
            )
    finally:
        await engine.dispose()
    return plaintext


# --- the console in a subprocess -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_console(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HWCRM_DB__URL=url, PYTHONPATH=str(ROOT))
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "console",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the console exited ({proc.returncode}):\n{_tail(log)}")
        try:
            if (await client.get("/login")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the console did not start in 120 s:\n{_tail(log)}")


async def sign_in(client: httpx.AsyncClient, login: str) -> None:
    import re

    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError("no CSRF token on /login")
    reply = await client.post(
        "/login", data={"login": login, "password": PASSWORD, "csrf": token.group(1), "next": "/"}
    )
    if reply.status_code not in (200, 303) or "hwcrm_session" not in client.cookies:
        raise RuntimeError(f"sign-in failed: {reply.status_code} {reply.text[:300]}")


# --- measuring -----------------------------------------------------------------------------


async def timed(
    call: Callable[[str], Awaitable[httpx.Response]],
    keys: list[str],
    warmup: int,
    ok: Callable[[httpx.Response], bool],
) -> dict[str, Any]:
    samples: list[float] = []
    failures = 0
    for i, key in enumerate(keys[:warmup] + keys):
        started = time.perf_counter()
        reply = await call(key)
        elapsed = (time.perf_counter() - started) * 1000
        if not ok(reply):
            failures += 1
            if failures <= 3:
                print(f"  unexpected reply for {key!r}: {reply.status_code} {reply.text[:200]}",
                      file=sys.stderr)  # fmt: skip
        if i >= warmup:
            samples.append(elapsed)
    return {**percentiles(samples), "failures": failures}


async def http_part(
    base: str, login: str, api_key: str, keys: dict[str, list[str]], args: argparse.Namespace
) -> dict[str, Any]:
    results: dict[str, Any] = {"search": {}, "upsert": {}}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await sign_in(client, login)

        async def search(q: str) -> httpx.Response:
            return await client.get("/customers", params={"q": q})

        for kind in KINDS:
            print(f"  search by {kind}: {len(keys[kind]):,} requests", file=sys.stderr)
            # Every sampled key exists, so every page must show at least one result row.
            results["search"][kind] = await timed(
                search,
                keys[kind],
                args.warmup,
                lambda r: r.status_code == 200 and 'href="/customers/' in r.text,
            )
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as api:

        async def warranty(serial: str) -> httpx.Response:
            return await api.get(f"/api/v1/warranty/{serial}")

        print(f"  warranty: {len(keys['serial']):,} requests", file=sys.stderr)
        results["warranty"] = await timed(
            warranty, keys["serial"], args.warmup, lambda r: r.status_code == 200
        )
        stamp = int(time.time())

        def record(i: int) -> dict[str, Any]:
            return {
                "name": f"Bench Upsert {_letters(i)}",
                "email": f"bench.upsert.{stamp}.{i}@example.org",
                "language": "en",
                "customer_type": "consumer",
                "tags": "erp",
                "marketing_consent": "no",
            }

        for label, count, size in (
            ("batch", args.batches, args.batch_size),
            ("single", args.singles, 1),
        ):
            print(f"  upsert {label}: {count} × {size}", file=sys.stderr)
            offset = 10_000_000 if label == "single" else 0
            samples: list[float] = []
            failures = 0
            started_all = time.perf_counter()
            for b in range(count):
                body = {"records": [record(offset + b * size + j) for j in range(size)]}
                started = time.perf_counter()
                reply = await api.post("/api/v1/customers", json=body)
                samples.append((time.perf_counter() - started) * 1000)
                if reply.status_code != 200:
                    failures += 1
                    if failures <= 3:
                        print(f"  upsert refused: {reply.status_code} {reply.text[:300]}",
                              file=sys.stderr)  # fmt: skip
            wall = time.perf_counter() - started_all
            results["upsert"][label] = {
                **percentiles(samples),
                "batch_size": size,
                "requests_per_s": round(count / wall, 1),
                "records_per_s": round(count * size / wall, 1),
                "failures": failures,
            }
    return results


async def in_database(url: str, keys: dict[str, list[str]], n: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the SELECTs `search` and `warranty_by_serial` send, summed per call."""
    from crm_core.warranties.service import WarrantyService

    engine = create_engine(url, pool_size=2)
    sessions = create_session_factory(engine)
    clock = SystemClock()
    settings = CrmSection()
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, params))

    async def explain(call: Callable[[Any], Awaitable[Any]]) -> tuple[float, float, list[str]]:
        captured.clear()
        async with sessions() as session:
            await call(session)
        statements = list(captured)
        total_exec = total_plan = 0.0
        nodes: list[str] = []
        async with engine.connect() as conn:
            for statement, params in statements:
                raw = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params
                )
                plan = raw.scalar()
                plan = json.loads(plan) if isinstance(plan, str) else plan
                total_exec += float(plan[0]["Execution Time"])
                total_plan += float(plan[0]["Planning Time"])
                nodes.append(_scan_kinds(plan[0]["Plan"]))
        return total_exec, total_plan, nodes

    out: dict[str, Any] = {}
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        calls: dict[str, Callable[[str], Callable[[Any], Awaitable[Any]]]] = {
            kind: (lambda q: lambda s: CrmServices(s, clock, settings).customers.search(q))
            for kind in KINDS
        }
        calls["warranty"] = lambda serial: (
            lambda s: WarrantyService(s, clock, settings).warranty_by_serial(serial)
        )
        for kind, make in calls.items():
            source = keys["serial" if kind == "warranty" else kind][:n]
            execution: list[float] = []
            planning: list[float] = []
            plans: dict[str, int] = {}
            for key in source:
                e, p, nodes = await explain(make(key))
                execution.append(e)
                planning.append(p)
                for node in nodes:
                    plans[node] = plans.get(node, 0) + 1
            ex = percentiles(execution)
            out[kind] = {
                "server_exec_p50_ms": ex["p50_ms"],
                "server_exec_p95_ms": ex["p95_ms"],
                "server_plan_p50_ms": percentiles(planning)["p50_ms"],
                "statements_per_call": round(sum(plans.values()) / max(1, len(source)), 2),
                "scans": dict(sorted(plans.items(), key=lambda kv: -kv[1])[:4]),
            }
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
        await engine.dispose()
    return out


def _scan_kinds(node: dict[str, Any]) -> str:
    """The scan nodes of a plan, e.g. "Index Scan customers", for the report."""
    found: list[str] = []

    def walk(n: dict[str, Any]) -> None:
        if "Scan" in n.get("Node Type", ""):
            found.append(
                f"{n['Node Type']} {n.get('Relation Name', n.get('Index Name', ''))}".strip()
            )
        for child in n.get("Plans", []):
            walk(child)

    walk(node)
    return " + ".join(found) or node.get("Node Type", "?")


# --- main ----------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"console + API, {result['counts'].get('customers', 0):,} customers")
    for col in ("measure", "p50 ms", "p95 ms", "in-db p50", "in-db p95", "goal", "failures"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    db = result["in_database"]
    for kind in KINDS:
        r = result["http"]["search"][kind]
        d = db.get(kind, {})
        table.add_row(
            f"search by {kind}", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
            f"{d.get('server_exec_p50_ms', 0):.2f}", f"{d.get('server_exec_p95_ms', 0):.2f}",
            f"≤ {GOAL_SEARCH_P95_MS:.0f}", str(r["failures"]),
        )  # fmt: skip
    r, d = result["http"]["warranty"], db.get("warranty", {})
    table.add_row(
        "warranty by serial", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
        f"{d.get('server_exec_p50_ms', 0):.2f}", f"{d.get('server_exec_p95_ms', 0):.2f}",
        f"≤ {GOAL_WARRANTY_P95_MS:.0f}", str(r["failures"]),
    )  # fmt: skip
    for label, u in result["http"]["upsert"].items():
        table.add_row(
            f"upsert {label} ×{u['batch_size']}", f"{u['p50_ms']:.1f}", f"{u['p95_ms']:.1f}",
            "", "", f"{u['requests_per_s']} req/s, {u['records_per_s']} rec/s", str(u["failures"]),
        )  # fmt: skip
    Console(stderr=True).print(table)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = _with_search_path(args.pg_url, args.schema)
    result: dict[str, Any] = {
        "benchmark": "console_api",
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "postgres": await server_version(args.pg_url),
    }
    print(f"schema {args.schema}: reusing or seeding (and migrating to head)", file=sys.stderr)
    if not await prepare_schema(args.pg_url, args.schema, reuse=True):
        today = datetime.now(UTC).date()
        options = DemoOptions(today=today, seed=args.seed, customers=args.customers)
        print(f"  empty: seeding {args.customers:,} customers", file=sys.stderr)
        result["seed"] = await seed(url, options)
        result["seeded_today"] = date.isoformat(today)
    result["counts"] = await table_counts(url)
    keys = await sample_keys(url, args.requests, args.seed)
    result["keys_per_kind"] = {k: len(v) for k, v in keys.items()}
    login = f"bench{int(time.time())}"
    api_key = await credentials(url, login)
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"hwcrm-console-bench-{port}.log"
    proc = start_console(url, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as probe:
            await wait_ready(probe, proc, log)
        print(f"console up at {base}", file=sys.stderr)
        result["http"] = await http_part(base, login, api_key, keys, args)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"EXPLAIN ANALYZE: {args.explain} keys per kind", file=sys.stderr)
    result["in_database"] = await in_database(url, keys, args.explain)
    result["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
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
    search_p95 = max(v["p95_ms"] for v in result["http"]["search"].values())
    ok = (
        search_p95 <= GOAL_SEARCH_P95_MS
        and result["http"]["warranty"]["p95_ms"] <= GOAL_WARRANTY_P95_MS
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())

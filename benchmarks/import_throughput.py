"""Import throughput: rows per second for a customers CSV and an orders CSV.

    .venv/bin/python benchmarks/import_throughput.py [--rows 100000] [--db sqlite,postgres]

Generates (deterministically, in a temporary directory) a customers CSV with `--rows` rows,
a products CSV with 500 SKUs and an orders CSV with `--rows` order lines (1-4 lines per
order, serial numbers on most lines), imports them into a fresh, migrated database (a SQLite
file; a new schema on PostgreSQL from $HWCRM_TEST_PG_URL or the local `test` database),
re-imports both (all unchanged), and prints ONE JSON line with the results.

Per import: wall-clock `rows_per_s`; `cpu_seconds` of this process (importer, plus SQLite's
thread); on PostgreSQL `server_cpu_seconds` of the backend serving it; and `rows_per_cpu_s`
= rows / (all of that CPU), which does not depend on what else the machine is running.
`run()` is importable for the CRM benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, text

from crm_core.clock import FixedClock
from crm_core.db import create_engine, create_session_factory
from crm_core.importexport import (
    Entity,
    ImportConfig,
    ImportRequest,
    ImportResult,
    run_import,
)
from crm_core.migrate import upgrade

PG_URL = os.environ.get("HWCRM_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "涛", "明", "超", "霞"]
EN_NAMES = ["Alex", "Sam", "Chris", "Jordan", "Taylor", "Morgan", "Casey", "Jamie", "Robin"]
CATEGORIES = ["gpu", "cpu", "motherboard", "ram", "ssd", "psu", "cooler", "case", "monitor"]
PRODUCTS = 500


def phone(i: int) -> str:
    """A valid mainland mobile number, unique per i (139 + 8 digits)."""
    return f"139{i:08d}"


def write_files(directory: Path, rows: int, seed: int = 7) -> dict[str, Path]:
    """The three benchmark files; returns their paths."""
    rnd = random.Random(seed)
    customers = directory / "customers.csv"
    with customers.open("w", encoding="utf-8", newline="") as fh:
        fh.write(
            "name,phone,email,language,customer_type,company,tags,marketing_consent,"
            "consent_source\n"
        )
        for i in range(rows):
            if i % 3 == 0:
                name = f"{EN_NAMES[i % len(EN_NAMES)]} Lee{i}"
                language = "en"
            else:
                name = rnd.choice(SURNAMES) + rnd.choice(GIVEN) + rnd.choice(GIVEN)
                language = "zh"
            kind = "enterprise" if i % 20 == 0 else "consumer"
            company = f"Company {i % 1000}" if kind == "enterprise" else ""
            consent = "yes" if i % 2 else "no"
            fh.write(
                f"{name},{phone(i)},user{i}@example.com,{language},{kind},{company},"
                f"gamer;vip{i % 5},{consent},{'web' if consent == 'yes' else ''}\n"
            )
    products = directory / "products.csv"
    with products.open("w", encoding="utf-8", newline="") as fh:
        fh.write("sku,name_en,name_zh,category,brand,price,warranty_months,specs\n")
        for p in range(PRODUCTS):
            fh.write(
                f"SKU-{p:05d},Part {p},配件 {p},{CATEGORIES[p % len(CATEGORIES)]},Brand{p % 20},"
                f'{199 + p * 7}.00,{12 + (p % 4) * 12},"{{""model"": {p}}}"\n'
            )
    orders = directory / "orders.csv"
    serial = 0
    with orders.open("w", encoding="utf-8", newline="") as fh:
        fh.write(
            "order_number,customer_phone,channel,status,placed_at,delivered_at,sku,quantity,"
            "unit_price,serial_numbers\n"
        )
        written = 0
        order = 0
        while written < rows:
            order += 1
            customer = rnd.randrange(rows)
            placed = NOW - timedelta(days=rnd.randrange(1, 700), minutes=rnd.randrange(1440))
            delivered = placed + timedelta(days=rnd.randrange(1, 5))
            status = "delivered" if delivered < NOW else "shipped"
            for _ in range(min(rnd.randint(1, 4), rows - written)):
                sku = rnd.randrange(PRODUCTS)
                quantity = rnd.randint(1, 3)
                serials = []
                if rnd.random() < 0.8:
                    for _ in range(quantity):
                        serial += 1
                        serials.append(f"SN{serial:010d}")
                delivered_at = delivered.isoformat() if status == "delivered" else ""
                fh.write(
                    f"SO-{order:08d},{phone(customer)},online,{status},"
                    f"{placed.isoformat()},{delivered_at},"
                    f"SKU-{sku:05d},{quantity},{199 + sku * 7}.00,{';'.join(serials)}\n"
                )
                written += 1
    return {"customers": customers, "products": products, "orders": orders}


async def _fresh_database(kind: str, directory: Path) -> tuple[str, Any]:
    """A migrated empty database; returns (url, cleanup coroutine function)."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / f'bench-{uuid.uuid4().hex[:6]}.sqlite3'}"
        await upgrade(url)

        async def nothing() -> None:
            return None

        return url, nothing
    schema = f"hwcrm_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}search_path={schema}"
    await upgrade(url)

    async def drop() -> None:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()

    return url, drop


class _ServerCpu:
    """CPU seconds used by the PostgreSQL backends serving this engine's connections (read
    from /proc: the server runs on this machine). Zero for SQLite, whose work is done in a
    thread of this process and is already in `time.process_time()`."""

    def __init__(self, engine: Any) -> None:
        self.pids: set[int] = set()
        if engine.dialect.name == "postgresql":
            event.listen(engine.sync_engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection: Any, *_: Any) -> None:
        with contextlib.suppress(Exception):
            self.pids.add(int(dbapi_connection._connection.get_server_pid()))

    def seconds(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        return total


async def _measure(
    kind: str, files: dict[str, Path], directory: Path, batch: int
) -> dict[str, Any]:
    url, cleanup = await _fresh_database(kind, directory)
    engine = create_engine(url)
    server = _ServerCpu(engine)
    sessions = create_session_factory(engine)
    clock = FixedClock(NOW)
    config = ImportConfig(batch_size=batch)
    out: dict[str, Any] = {}

    async def timed(entity: Entity, label: str) -> ImportResult:
        cpu, server_cpu = time.process_time(), server.seconds()
        result = await run_import(
            sessions, clock, config, ImportRequest(entity, files[entity.value])
        )
        cpu, server_cpu = time.process_time() - cpu, server.seconds() - server_cpu
        if not result.committed or result.rejected_rows:
            raise RuntimeError(f"{label}: {result.file_error or result.issues[:3]}")
        out[f"{label}_rows"] = result.rows
        out[f"{label}_seconds"] = round(result.seconds, 2)
        out[f"{label}_rows_per_s"] = round(result.rows_per_second)
        # CPU of this Python process (the importer, plus SQLite's thread on SQLite) and of
        # the PostgreSQL backend: wall-clock rates on a busy machine understate the
        # importer; rows per CPU-second says what it costs, whatever else is running.
        out[f"{label}_cpu_seconds"] = round(cpu, 2)
        if kind == "postgres":
            out[f"{label}_server_cpu_seconds"] = round(server_cpu, 2)
        out[f"{label}_rows_per_cpu_s"] = round(result.rows / max(cpu + server_cpu, 1e-9))
        return result

    try:
        await timed(Entity.PRODUCTS, "products")
        await timed(Entity.CUSTOMERS, "customers")
        await timed(Entity.ORDERS, "orders")
        again = await timed(Entity.CUSTOMERS, "customers_reimport")
        assert again.unchanged == again.rows, "re-import must change nothing"
        again = await timed(Entity.ORDERS, "orders_reimport")
    finally:
        await engine.dispose()
        await cleanup()
    return out


async def run(
    rows: int = 100_000, dbs: tuple[str, ...] = ("sqlite", "postgres"), batch: int = 2000
) -> dict[str, Any]:
    """Generate the files, import them into each database, return the measurements."""
    with tempfile.TemporaryDirectory(prefix="hwcrm-bench-") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        files = write_files(directory, rows)
        result: dict[str, Any] = {
            "benchmark": "import_throughput",
            "rows": rows,
            "batch_size": batch,
            "file_mb": {k: round(p.stat().st_size / 1e6, 1) for k, p in files.items()},
            "generate_seconds": round(time.perf_counter() - started, 2),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        }
        for kind in dbs:
            result[kind] = await _measure(kind, files, directory, batch)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()
    dbs = tuple(d.strip() for d in args.db.split(",") if d.strip())
    print(json.dumps(asyncio.run(run(args.rows, dbs, args.batch_size)), ensure_ascii=False))


if __name__ == "__main__":
    main()

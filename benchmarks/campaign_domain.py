"""The campaign domain at scale on PostgreSQL: audience count, materialising an occurrence,
automation rules, and the claim → sent cycle of DeliveryService (no Telegram involved).

    .venv/bin/python benchmarks/campaign_domain.py                    # 100,000 demo customers
    .venv/bin/python benchmarks/campaign_domain.py --customers 20000  # quick run

Seeds the demo data set (`crm_core.demo`, as `hwcrm demo seed`) into schema `hwcrm_cmp_bench`,
then, each step timed: the live audience of `{"all": true}` (service kind: every customer
linked to Telegram), `enqueue_occurrence` of that campaign (rows/s), `run_rules` over every
enabled rule, and claim_due(500) → mark_sent_many for every row in one process (rows/s: the
domain's share of the delivery engine's ceiling; the sender adds the Bot API calls).
Prints a table and one JSON line per result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from app.settings import CampaignsSection, CrmSection
from bot.i18n import Translator
from crm_core.campaigns.delivery import DeliveryService
from crm_core.campaigns.rules import RuleService
from crm_core.campaigns.service import CampaignCreate, CampaignService
from crm_core.clock import FixedClock
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.demo import DemoOptions, seed_demo
from crm_core.migrate import upgrade

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg": os.getloadavg(),
    }


async def main(args: argparse.Namespace) -> None:
    admin = create_engine(args.pg_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
        await conn.execute(text(f'CREATE SCHEMA "{args.schema}"'))
    await admin.dispose()
    url = f"{args.pg_url}?search_path={args.schema}"
    results: list[dict[str, Any]] = []

    def record(step: str, seconds: float, rows: int | None = None) -> None:
        entry: dict[str, Any] = {"step": step, "seconds": round(seconds, 3)}
        if rows is not None:
            entry["rows"] = rows
            entry["rows_per_s"] = round(rows / seconds, 1) if seconds else None
        results.append(entry)
        print(
            f"{step:<34} {seconds:>9.2f} s"
            + (f"  {rows:>8} rows  {entry['rows_per_s']:>9} rows/s" if rows is not None else "")
        )

    try:
        await upgrade(url)
        engine = create_engine(url)
        sessions = create_session_factory(engine)
        options = DemoOptions(today=date(2026, 6, 15), customers=args.customers)
        now = options.now
        clock = FixedClock(now)
        settings = CampaignsSection()
        texts = Translator()
        started = time.perf_counter()
        async with unit_of_work(sessions) as session:
            await seed_demo(session, options, crm_settings=CrmSection())
        record(f"seed demo ({args.customers} customers)", time.perf_counter() - started)

        async with unit_of_work(sessions) as session:
            service = CampaignService(session, clock, settings, texts, CrmSection())
            created = await service.create(
                CampaignCreate(
                    name="bench",
                    kind="service",
                    segment={"all": True},
                    variants=[{"text": {"en": "Hi {first_name}!", "zh": "{first_name}，您好！"}}],
                )
            )
            started = time.perf_counter()
            audience = await service.audience(created.id)
            record("audience count (all linked)", time.perf_counter() - started, audience.reachable)
            campaign = await service.schedule(created.id, at=now + timedelta(minutes=1))
            assert campaign.one_shot_at is not None
            started = time.perf_counter()
            added = await service.enqueue_occurrence(created.id, campaign.one_shot_at)
            record("enqueue_occurrence", time.perf_counter() - started, added)

        async with unit_of_work(sessions) as session:
            rules = RuleService(session, clock, settings, texts, CrmSection())
            started = time.perf_counter()
            counts = await rules.run_rules(now)
            record("run_rules (all rules)", time.perf_counter() - started, sum(counts.values()))
            print("   ", counts)

        clock.set(now + timedelta(minutes=2))
        started = time.perf_counter()
        done = 0
        while True:
            async with unit_of_work(sessions) as session:
                pushes = await DeliveryService(session, clock, settings).claim_due(500, "bench")
            if not pushes:
                break
            async with unit_of_work(sessions) as session:
                deliveries = DeliveryService(session, clock, settings)
                await deliveries.mark_sent_many([(p.delivery_id, p.delivery_id) for p in pushes])
            done += len(pushes)
        record("claim_due(500) + mark_sent_many, 1 proc", time.perf_counter() - started, done)
        await engine.dispose()
    finally:
        if not args.keep:
            admin = create_engine(args.pg_url)
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
            await admin.dispose()
    machine = _machine()
    for entry in results:
        print(json.dumps({"benchmark": "campaign_domain", **entry, "machine": machine}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--pg-url", default=PG)
    parser.add_argument("--schema", default="hwcrm_cmp_bench")
    parser.add_argument("--keep", action="store_true", help="Keep the schema afterwards.")
    asyncio.run(main(parser.parse_args()))

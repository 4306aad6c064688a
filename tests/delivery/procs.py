"""Helpers for tests that run the real `hwcrm scheduler` as separate processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.scheduler.leader import lock_key
from crm_core.db import create_engine

ROOT = Path(__file__).resolve().parents[2]


def scheduler_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HWCRM_DB__URL": db_url,
        "HWCRM_SCHEDULER__LEADER_RETRY_S": "0.3",
        "HWCRM_SCHEDULER__LEADER_CHECK_S": "0.3",
        "HWCRM_SCHEDULER__JOBS_TABLE": f"apscheduler_jobs_{uuid.uuid4().hex[:8]}",
        "HWCRM_APP__LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def start_scheduler(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "scheduler", *args],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def lock_holder(db_url: str) -> tuple[int, int] | None:
    """(OS pid of the leader process, its server backend pid), or None when nobody leads."""
    key = lock_key(db_url) & 0xFFFF_FFFF_FFFF_FFFF
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT a.application_name, a.pid FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted "
                        "AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1"
                    ),
                    {"hi": key >> 32, "lo": key & 0xFFFF_FFFF},
                )
            ).first()
    finally:
        await engine.dispose()
    if row is None:
        return None
    name = str(row[0])
    return int(name.rsplit(":", 1)[1]), int(row[1])


async def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

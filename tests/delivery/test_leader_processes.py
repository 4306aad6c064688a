"""Leader election with two REAL `python -m app.cli scheduler` processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from crm_core.db import create_engine
from tests.delivery.procs import lock_holder, scheduler_env, start_scheduler, stop, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # process start-ups dominate


async def test_one_of_two_processes_leads_and_the_other_takes_over_after_kill_9(
    pg_schema_url: str, tmp_path: Path
) -> None:
    env = scheduler_env(pg_schema_url)
    one = start_scheduler(env, "--no-send", log=tmp_path / "one.log")
    two = start_scheduler(env, "--no-send", log=tmp_path / "two.log")
    procs = {one.pid: one, two.pid: two}
    try:
        holder = await wait_for(lambda: lock_holder(pg_schema_url), 180, "a leader")
        leader_pid, _ = holder
        assert leader_pid in procs
        follower_pid = next(pid for pid in procs if pid != leader_pid)
        follower_file = tmp_path / ("two.log" if leader_pid == one.pid else "one.log")

        async def follower_competes() -> bool:  # it is up and trying for the lock
            return "scheduling: PostgreSQL advisory lock" in follower_file.read_text()

        await wait_for(follower_competes, 180, "the follower to start")
        # exactly one leads, and keeps leading while nothing happens
        await asyncio.sleep(1.5)
        assert (await lock_holder(pg_schema_url))[0] == leader_pid  # type: ignore[index]
        leader_log = (tmp_path / ("one.log" if leader_pid == one.pid else "two.log")).read_text()
        follower_log = (tmp_path / ("two.log" if leader_pid == one.pid else "one.log")).read_text()
        assert "scheduler leader" in leader_log and "scheduler started" in leader_log
        assert "scheduler started" not in follower_log

        procs[leader_pid].send_signal(signal.SIGKILL)  # no clean-up at all
        procs[leader_pid].wait(10)

        async def follower_leads() -> bool:
            now = await lock_holder(pg_schema_url)
            return now is not None and now[0] == follower_pid

        started = time.monotonic()
        await wait_for(follower_leads, 60, "the follower to take over")
        assert time.monotonic() - started < 30  # retry every 0.3 s; slack for a loaded machine
    finally:
        for process in procs.values():
            stop(process)


async def test_a_leader_that_loses_its_lock_connection_stops_scheduling_at_once(
    pg_schema_url: str, tmp_path: Path
) -> None:
    env = scheduler_env(pg_schema_url)
    log = tmp_path / "leader.log"
    process = start_scheduler(env, "--no-send", log=log)
    try:
        _, backend = await wait_for(lambda: lock_holder(pg_schema_url), 180, "a leader")
        engine = create_engine(pg_schema_url)
        async with engine.connect() as conn:  # the database cuts the lock's connection
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await engine.dispose()

        async def stopped() -> bool:
            return "scheduler stopped" in log.read_text()

        await wait_for(stopped, 10, "the scheduler to stop")
        text_now = log.read_text()
        assert "leader lock lost" in text_now
        # then it competes again like any follower, and gets the lock back (nobody else runs)
        await wait_for(lambda: lock_holder(pg_schema_url), 60, "a new leader term")
        await wait_for(
            lambda: _async_true(log.read_text().count("scheduler started") >= 2), 20, "restart"
        )
    finally:
        stop(process)
    assert process.returncode == 0


async def _async_true(value: bool) -> bool:
    return value

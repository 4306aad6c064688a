"""Exactly one scheduling process: a PostgreSQL advisory lock on a dedicated connection.

Every `hwcrm scheduler` process (and a bot process that runs the scheduler) tries to take
the session-level advisory lock `pg_try_advisory_lock(key)` on a connection of its own
(never a pooled one: the lock belongs to the connection). The one that gets it schedules;
the others retry every `leader_retry_s`. The lock is released by PostgreSQL the moment that
connection ends — the leader stopped, was killed (kill -9 closes its socket), or the
connection was cut — so a follower takes over within `leader_retry_s`.

The leader checks its connection every `leader_check_s` (and asyncpg tells it at once when
the server closes it): lost → `watch()` returns and the caller stops scheduling at once. A
leader that lost its lock may have overlapped with the new one for at most `leader_check_s`;
that is harmless because enqueueing an occurrence is idempotent (unique delivery rows).

SQLite (the embedded default) is one process: `SingleProcessLeader` is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from typing import Any, Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger("bot.scheduler.leader")


class Leadership(Protocol):
    """Who schedules."""

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process is the leader (True) or `stop` is set (False)."""
        ...

    async def watch(self) -> None:
        """Return when the leadership is lost (never while it is held)."""
        ...

    async def release(self) -> None: ...

    @property
    def description(self) -> str: ...


class SingleProcessLeader:
    """SQLite: the one process is the leader (no lock needed)."""

    description = "single process (SQLite: no lock)"

    async def acquire(self, stop: asyncio.Event) -> bool:
        return not stop.is_set()

    async def watch(self) -> None:
        await asyncio.Event().wait()

    async def release(self) -> None:
        return None


def lock_key(url: str, name: str = "hwcrm:scheduler") -> int:
    """The advisory-lock key of one application database (database + schema), as a signed
    64-bit integer: two deployments (or test schemas) on one server never share a leader."""
    parsed = make_url(url)
    scope = f"{name}:{parsed.host}:{parsed.port}:{parsed.database}:"
    scope += str(parsed.query.get("search_path") or "public")
    digest = hashlib.blake2b(scope.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def asyncpg_dsn(url: str) -> tuple[str, dict[str, Any]]:
    """A plain asyncpg DSN and connect() keyword arguments for a SQLAlchemy URL."""
    parsed = make_url(url)
    search_path = parsed.query.get("search_path")
    parsed = parsed.difference_update_query(["search_path"]).set(drivername="postgresql")
    # the OS pid in the application name: operators (and tests) see who leads in pg_locks
    name = f"hwcrm-scheduler-leader:{os.getpid()}"
    kwargs: dict[str, Any] = {"server_settings": {"application_name": name}}
    if search_path:
        kwargs["server_settings"]["search_path"] = str(search_path)
    return parsed.render_as_string(hide_password=False), kwargs


class PgAdvisoryLeader:
    """The leader lock on PostgreSQL (see the module docstring)."""

    def __init__(
        self, url: str, *, retry_s: float = 2.0, check_s: float = 1.0, name: str = "hwcrm:scheduler"
    ) -> None:
        self.url = url
        self.key = lock_key(url, name)
        self.retry_s = retry_s
        self.check_s = check_s
        self._conn: Any | None = None
        self._lost = asyncio.Event()

    @property
    def description(self) -> str:
        return f"PostgreSQL advisory lock {self.key}"

    @property
    def backend_pid(self) -> int | None:
        """The server process holding the lock (tests cut it with pg_terminate_backend)."""
        return None if self._conn is None else int(self._conn.get_server_pid())

    async def acquire(self, stop: asyncio.Event) -> bool:
        import asyncpg

        dsn, kwargs = asyncpg_dsn(self.url)
        while not stop.is_set():
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(dsn, timeout=10, **kwargs)
                got = await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self.key, timeout=10
                )
                if got:
                    self._lost = asyncio.Event()
                    self._conn.add_termination_listener(lambda _conn: self._lost.set())
                    log.info("this process is the scheduler leader (%s)", self.description)
                    return True
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("leader lock: database unreachable (%s); retrying", exc)
                await self._close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_s)
        return False

    async def watch(self) -> None:
        conn = self._conn
        while conn is not None and not self._lost.is_set():
            try:
                await conn.fetchval("SELECT 1", timeout=max(self.check_s, 1.0))
            except Exception as exc:
                log.error("leader lock lost (%s): scheduling stops", exc)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self.check_s)
        else:
            log.error("leader lock lost (the connection closed): scheduling stops")
        self._lost.set()
        await self._close()

    async def release(self) -> None:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.fetchval("SELECT pg_advisory_unlock($1)", self.key, timeout=5)
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        if conn is not None and not conn.is_closed():
            conn.terminate()


def leadership_for(url: str, *, retry_s: float = 2.0, check_s: float = 1.0) -> Leadership:
    """PostgreSQL: the advisory lock; SQLite: the single process."""
    if make_url(url).get_backend_name() == "postgresql":
        return PgAdvisoryLeader(url, retry_s=retry_s, check_s=check_s)
    return SingleProcessLeader()

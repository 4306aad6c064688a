"""APScheduler wiring: the campaigns mirrored as jobs in a persistent job store.

While this process is the leader (`leader.py`) an `AsyncIOScheduler` runs with:
- one job per schedulable campaign in the application database's job store (APScheduler's
  `SQLAlchemyJobStore`, table `scheduler.jobs_table`; it needs a sync driver: sqlite3 for
  SQLite, psycopg 3 for PostgreSQL): a one-shot campaign is a `DateTrigger`, a recurring
  one a `CronTrigger` in its time zone. Jobs survive restarts: a time missed while no
  process ran fires on start (within `misfire_grace_s`; several missed cron times coalesce
  into the latest). The job calls `enqueue_occurrence(campaign, occurrence time)`; that is
  idempotent (one delivery row per occurrence and customer), so a job that runs twice
  (restart, leader change) adds nothing.
- `reconcile` every `reconcile_interval_s` (in memory): reads `schedulable()` and adds,
  replaces or removes campaign jobs, so a campaign scheduled, changed or cancelled by another
  process (the CLI, the console) is picked up within seconds.
- `rules` every `rules_interval_s` (in memory): `run_rules(now)`.

APScheduler pickles a job's function *by reference*, so the campaign job is the module-level
`fire_campaign`, and it finds the scheduler that runs it in `_RUNNING` (keyed by the
scheduler's name, set while it runs). That is the one registry of this package, and it only
exists because a persistent job store cannot hold a bound method.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from bot.scheduler.ports import ScheduleScope
from crm_core.campaigns.cron import parse_cron
from crm_core.errors import ValidationFailed

log = logging.getLogger("bot.scheduler")

PERSISTENT = "default"
EPHEMERAL = "memory"
_RUNNING: dict[str, CampaignScheduler] = {}


def sync_engine_for(url: str) -> Engine:
    """A synchronous engine on the application database for APScheduler's job store."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return create_engine(parsed.set(drivername="sqlite"), connect_args={"timeout": 30})
    if backend == "postgresql":
        search_path = parsed.query.get("search_path")
        parsed = parsed.difference_update_query(["search_path"]).set(
            drivername="postgresql+psycopg"
        )
        args = {"options": f"-csearch_path={search_path}"} if search_path else {}
        return create_engine(parsed, connect_args=args, pool_pre_ping=True, pool_size=2)
    raise ValueError(f"no job store for database backend {backend!r}")


def campaign_job_id(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def _fingerprint(spec: Any) -> str:
    when = spec.one_shot_at.astimezone(UTC).isoformat() if spec.one_shot_at else ""
    raw = f"{when}|{spec.cron or ''}|{spec.timezone or ''}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _zone(name: str | None, default: str) -> ZoneInfo:
    return ZoneInfo(name or default)


def trigger_for(spec: Any, default_tz: str) -> DateTrigger | CronTrigger:
    """One-shot: a DateTrigger at its UTC time (shown in the marketer's zone); recurring: the
    cron expression in the campaign's time zone."""
    zone = _zone(spec.timezone, default_tz)
    if spec.cron:
        return cron_trigger(spec.cron, zone)
    if spec.one_shot_at is None:
        raise ValueError(f"campaign {spec.campaign_id}: neither a time nor a cron expression")
    return DateTrigger(run_date=spec.one_shot_at.astimezone(zone), timezone=zone)


def cron_trigger(expression: str, zone: ZoneInfo) -> CronTrigger:
    """A crontab expression as APScheduler's trigger, through the domain's parser
    (`crm_core.campaigns.cron`): weekdays mean what they mean in crontab (0 and 7 = Sunday,
    1 = Monday), whereas APScheduler 3's own `from_crontab` counts 0 = Monday and would send
    "0 10 * * 1" on Tuesdays. Raises ValidationFailed naming the bad field."""
    return CronTrigger(**parse_cron(expression).fields(), timezone=zone)


def latest_cron_time(cron: str, timezone: str, now: datetime, lookback: timedelta) -> datetime:
    """The occurrence a cron job that fires now stands for: its latest time <= now (a late
    start coalesces missed times into the latest one)."""
    trigger = cron_trigger(cron, ZoneInfo(timezone))
    latest: datetime | None = None
    candidate = trigger.get_next_fire_time(None, now - lookback)
    for _ in range(1_000_000):  # bounded: lookback / the cron's period
        if candidate is None or candidate > now:
            break
        latest = candidate
        candidate = trigger.get_next_fire_time(latest, latest + timedelta(microseconds=1))
    return (latest or now).astimezone(UTC)


async def fire_campaign(
    scheduler: str,
    campaign_id: int,
    fingerprint: str,
    one_shot_at: str | None = None,
    cron: str | None = None,
    timezone: str | None = None,
) -> None:
    """The campaign job (module level: the persistent store refers to it by name)."""
    running = _RUNNING.get(scheduler)
    if running is None:
        log.warning("campaign %s fired with no scheduler %r running", campaign_id, scheduler)
        return
    if not cron:
        running._fired_once.add((campaign_id, fingerprint))
    # APScheduler already moved the job to its next time: enqueueing this occurrence must
    # finish even when the scheduler shuts down meanwhile (lock lost), or it would be lost.
    # It is shielded from the executor's cancellation and awaited by `drain()`.
    task = asyncio.create_task(running.fire(campaign_id, one_shot_at, cron, timezone))
    running._firing.add(task)
    task.add_done_callback(running._firing.discard)
    await asyncio.shield(task)


class CampaignScheduler:
    """The APScheduler of one leader term (see the module docstring)."""

    def __init__(
        self,
        schedule_scope: ScheduleScope,
        db_url: str,
        *,
        timezone: str = "Asia/Shanghai",
        jobs_table: str = "apscheduler_jobs",
        reconcile_interval_s: float = 3.0,
        rules_interval_s: float = 300.0,
        misfire_grace_s: int = 3600,
        name: str = "default",
        now: Any = None,
    ) -> None:
        self.schedule_scope = schedule_scope
        self.db_url = db_url
        self.timezone = timezone
        self.jobs_table = jobs_table
        self.reconcile_interval_s = reconcile_interval_s
        self.rules_interval_s = rules_interval_s
        self.misfire_grace_s = misfire_grace_s
        self.name = name
        self._now = now or (lambda: datetime.now(UTC))
        self._engine: Engine | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.fired: list[tuple[int, datetime, int]] = []  # (campaign, occurrence, rows added)
        self.reconciles = 0
        self._fired_once: set[tuple[int, str]] = set()  # one-shots fired in this term
        self._firing: set[asyncio.Task[int]] = set()

    @property
    def running(self) -> bool:
        return self.scheduler is not None and self.scheduler.running

    def start(self) -> None:
        """Start scheduling (in the running event loop): persisted jobs are loaded, a
        reconcile runs at once."""
        if _RUNNING.get(self.name) not in (None, self):
            raise RuntimeError(f"a scheduler named {self.name!r} already runs in this process")
        self._engine = sync_engine_for(self.db_url)
        store = SQLAlchemyJobStore(engine=self._engine, tablename=self.jobs_table)
        self.scheduler = AsyncIOScheduler(
            jobstores={PERSISTENT: store, EPHEMERAL: MemoryJobStore()},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.misfire_grace_s,
            },
            timezone=ZoneInfo(self.timezone),
        )
        now = self._now()
        self.scheduler.add_job(
            self.reconcile,
            "interval",
            seconds=self.reconcile_interval_s,
            id="reconcile",
            jobstore=EPHEMERAL,
            next_run_time=now,
        )
        self.scheduler.add_job(
            self.run_rules,
            "interval",
            seconds=self.rules_interval_s,
            id="rules",
            jobstore=EPHEMERAL,
            next_run_time=now + timedelta(seconds=min(5.0, self.rules_interval_s)),
        )
        _RUNNING[self.name] = self
        self.scheduler.start()
        log.info("scheduler started (job store table %s)", self.jobs_table)

    def shutdown(self) -> None:
        """Stop scheduling at once (jobs stay in the store for the next leader)."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.scheduler = None
        if _RUNNING.get(self.name) is self:
            del _RUNNING[self.name]
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        log.info("scheduler stopped")

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for campaign occurrences being enqueued (after `shutdown`)."""
        if self._firing:
            await asyncio.wait(list(self._firing), timeout=timeout)

    def campaign_jobs(self) -> dict[int, Any]:
        """The campaign jobs in the persistent store, by campaign id."""
        assert self.scheduler is not None
        return {
            int(job.kwargs["campaign_id"]): job
            for job in self.scheduler.get_jobs(jobstore=PERSISTENT)
            if job.id.startswith("campaign:")
        }

    async def reconcile(self) -> None:
        """Mirror `schedulable()` into campaign jobs (add new, replace changed, drop gone)."""
        if self.scheduler is None:
            return
        async with self.schedule_scope() as campaigns:
            specs = list(await campaigns.schedulable())
        self.reconciles += 1
        wanted = {int(spec.campaign_id): spec for spec in specs}
        present = self.campaign_jobs()
        for campaign_id, job in present.items():
            spec = wanted.get(campaign_id)
            if spec is not None and job.kwargs.get("fingerprint") == _fingerprint(spec):
                continue  # unchanged: keep the job and its persisted next run time
            job.remove()
            log.info("campaign %s: job removed (unscheduled or changed)", campaign_id)
        for campaign_id, spec in wanted.items():
            job = present.get(campaign_id)
            if (campaign_id, _fingerprint(spec)) in self._fired_once:
                continue  # a one-shot that already fired in this term (its job is gone)
            if job is None or job.kwargs.get("fingerprint") != _fingerprint(spec):
                self._add(spec)

    def _add(self, spec: Any) -> None:
        assert self.scheduler is not None
        try:
            trigger = trigger_for(spec, self.timezone)
        except (ValueError, ValidationFailed) as exc:  # a bad spec must not stop the others
            log.error("campaign %s cannot be scheduled: %s", spec.campaign_id, exc)
            return
        self.scheduler.add_job(
            fire_campaign,
            trigger,
            id=campaign_job_id(int(spec.campaign_id)),
            jobstore=PERSISTENT,
            replace_existing=True,
            kwargs={
                "scheduler": self.name,
                "campaign_id": int(spec.campaign_id),
                "fingerprint": _fingerprint(spec),
                "one_shot_at": spec.one_shot_at.astimezone(UTC).isoformat()
                if spec.one_shot_at
                else None,
                "cron": spec.cron,
                "timezone": spec.timezone or self.timezone,
            },
        )
        log.info("campaign %s: job scheduled (%s)", spec.campaign_id, spec.cron or "one-shot")

    async def fire(
        self, campaign_id: int, one_shot_at: str | None, cron: str | None, timezone: str | None
    ) -> int:
        """Enqueue the occurrence this firing stands for."""
        if cron:
            occurrence = latest_cron_time(
                cron,
                timezone or self.timezone,
                self._now(),
                timedelta(seconds=self.misfire_grace_s + 60),
            )
        elif one_shot_at:
            occurrence = datetime.fromisoformat(one_shot_at)
        else:
            occurrence = self._now()
        async with self.schedule_scope() as campaigns:
            added = await campaigns.enqueue_occurrence(campaign_id, occurrence)
        self.fired.append((campaign_id, occurrence, added))
        log.info("campaign %s at %s: %d deliveries queued", campaign_id, occurrence, added)
        return added

    async def run_rules(self) -> None:
        async with self.schedule_scope() as campaigns:
            counts = await campaigns.run_rules(self._now())
        if any(counts.values()):
            log.info("automation rules queued %s", counts)

"""APScheduler wiring: the Monday batch and the approval reminder, in the MSP's timezone.

The batch job fires on ``[schedule] cron`` (default Monday 06:00) in the MSP's timezone, so
06:00 stays 06:00 local across DST changes. If the process was down at that time, the batch runs
on start when the missed fire time is within ``misfire_grace_minutes`` — and never twice: the
batch itself skips every customer-week already finished (``scheduler.claims``), so a restart at
06:05 after a finished batch drafts nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from reporting.period import zone

log = logging.getLogger(__name__)


def trigger(cron: str, timezone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=zone(timezone))


def previous_fire_time(
    cron: str, timezone: str, now: datetime, lookback: timedelta = timedelta(days=8)
) -> datetime | None:
    """The last time ``cron`` fired at or before ``now`` (within ``lookback``)."""
    t = trigger(cron, timezone)
    last = None
    fire = t.get_next_fire_time(None, now - lookback)
    while fire is not None and fire <= now:
        last = fire
        fire = t.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def missed_run(cron: str, timezone: str, now: datetime, grace: timedelta) -> datetime | None:
    """The fire time a process starting at ``now`` should still honour (None: nothing due)."""
    last = previous_fire_time(cron, timezone, now)
    if last is None or now - last > grace:
        return None
    return last


class WeeklySchedule:
    def __init__(
        self,
        cron: str,
        reminder_cron: str,
        timezone: str,
        grace_minutes: float,
        run_batch: Callable[[], Awaitable[Any]],
        remind: Callable[[], Awaitable[Any]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        period_cron: str = "",
        run_periods: Callable[[], Awaitable[Any]] | None = None,
    ):
        self.cron, self.reminder_cron, self.timezone = cron, reminder_cron, timezone
        self.period_cron, self.run_periods = period_cron, run_periods
        self.grace = timedelta(minutes=grace_minutes)
        self.run_batch, self.remind, self.now = run_batch, remind, now
        self.scheduler = AsyncIOScheduler(timezone=zone(timezone))

    def start(self, *, run_now: bool = False) -> None:
        grace = int(self.grace.total_seconds()) or 1
        self.scheduler.add_job(
            self.run_batch,
            trigger(self.cron, self.timezone),
            id="weekly-batch",
            misfire_grace_time=grace,
            coalesce=True,
            max_instances=1,
        )
        if self.reminder_cron:
            self.scheduler.add_job(
                self.remind,
                trigger(self.reminder_cron, self.timezone),
                id="approval-reminder",
                misfire_grace_time=grace,
                coalesce=True,
                max_instances=1,
            )
        if self.period_cron and self.run_periods is not None:
            # fortnights, 30 days, months: drafted once ended (a no-op when nothing has ended since)
            self.scheduler.add_job(
                self.run_periods,
                trigger(self.period_cron, self.timezone),
                id="period-batch",
                misfire_grace_time=grace,
                coalesce=True,
                max_instances=1,
            )
        missed = missed_run(self.cron, self.timezone, self.now(), self.grace)
        if run_now or missed is not None:
            why = "--now" if run_now or missed is None else f"the run due at {missed.isoformat()} was missed"
            log.info("weekly batch starting now (%s)", why)
            self.scheduler.add_job(self.run_batch, id="weekly-batch-catch-up", max_instances=1)
        self.scheduler.start()

    def next_run(self) -> datetime | None:
        job = self.scheduler.get_job("weekly-batch")
        return job.next_run_time if job else None

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

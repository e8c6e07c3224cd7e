"""Reporting periods: the 7 days ending 00:00 Monday in the customer's timezone.

Periods are built from local calendar dates, never by adding hours, so a week that crosses a
DST change is 167 or 169 hours long, as the design requires.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reporting.models import Period


class PeriodError(ValueError):
    """A week or date that does not make a reporting period."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise PeriodError(f"unknown timezone {name!r}") from err


def week_containing(day: date, tz: str, days: int = 7) -> Period:
    """The Monday-based period that contains ``day``: ``[Monday 00:00, next Monday 00:00)`` local.

    ``days`` is the period length (7 today; 14 and 30 later) counted back from the period end.
    """
    monday = day - timedelta(days=day.weekday())
    end_day = monday + timedelta(days=7)
    start_day = end_day - timedelta(days=days)
    z = zone(tz)
    return Period(
        start=datetime.combine(start_day, time(0, 0), tzinfo=z),
        end=datetime.combine(end_day, time(0, 0), tzinfo=z),
        timezone=tz,
    )


def last_complete_week_day(now: datetime, tz: str) -> date:
    """A date inside the last complete Monday–Sunday week, as seen in ``tz`` at ``now``."""
    local = now.astimezone(zone(tz)).date()
    this_monday = local - timedelta(days=local.weekday())
    return this_monday - timedelta(days=1)


def previous_period(period: Period) -> Period:
    """The period of the same length that ends where ``period`` starts."""
    days = round((period.end.date() - period.start.date()).days)
    return week_containing(period.start.date() - timedelta(days=1), period.timezone, days=days)


def parse_week(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise PeriodError(f"--week takes a date as YYYY-MM-DD, not {text!r}") from err


class WeekNotEnded(PeriodError):
    """The week asked for has not ended yet in the customer's timezone (a future week, or the
    current one): a report of it would state figures of days that have not happened."""

    def __init__(self, code: str, period: Period, started: bool = True):
        from reporting import fmt  # fmt imports nothing of this module; kept local to stay a leaf

        self.code, self.period, self.started = code, period, started
        if started:
            ends = fmt.day(period.end.date()) + period.end.strftime(" %H:%M %Z")
            why = f"has not ended in {period.timezone} (it ends {ends})"
        else:
            starts = fmt.day(period.start.date()) + period.start.strftime(" %H:%M %Z")
            why = f"has not started in {period.timezone} (it starts {starts})"
        super().__init__(f"{code}: the week {fmt.week_span(period)} {why}")


def has_ended(period: Period, now: datetime) -> bool:
    """Whether ``period`` is over at ``now`` (its end is 00:00 Monday in the customer's timezone)."""
    return now.astimezone(UTC) >= period.end.astimezone(UTC)


def has_started(period: Period, now: datetime) -> bool:
    return now.astimezone(UTC) > period.start.astimezone(UTC)


def partial_read(period: Period, now: datetime) -> Period:
    """What a partial report of the unfinished ``period`` reads: from its start to the last local
    midnight before ``now`` (whole days, which daily sources such as a Zabbix SLA need), or to
    ``now`` (to the minute) on the week's first day."""
    local = now.astimezone(period.start.tzinfo)
    midnight = datetime.combine(local.date(), time(0, 0), tzinfo=period.start.tzinfo)
    end = midnight if midnight > period.start else local.replace(second=0, microsecond=0)
    return Period(start=period.start, end=end, timezone=period.timezone)

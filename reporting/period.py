"""Reporting periods: the 7 days ending 00:00 Monday in the customer's timezone.

Periods are built from local calendar dates, never by adding hours, so a week that crosses a
DST change is 167 or 169 hours long, as the design requires.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
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

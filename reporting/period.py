"""Reporting periods, built from local calendar dates in the customer's timezone.

Periods are built from local calendar dates, never by adding hours, so a week that crosses a
DST change is 167 or 169 hours long, as the design requires. Every period is ``[start, end)``:

- ``week``: the 7 days ending 00:00 Monday.
- ``fortnight``: the 14 days ending 00:00 on a fortnight Monday. Fortnight Mondays are
  :data:`ANCHOR` (Monday 1 January 2024) and every 14th day from it, before and after, so two
  consecutive fortnights never overlap and never leave a gap (2026: ... 16 Nov, 30 Nov, 14 Dec).
- ``30d``: the 30 days ending 00:00 on a 30-day Monday: :data:`ANCHOR` and every 28th day from
  it (2026: ... 2 Nov, 30 Nov, 28 Dec). A report every four weeks, so it stays on a Monday like
  the others; each one therefore also covers the last two days (Saturday and Sunday) of the one
  before it, and its comparison is with that previous 30-day report.
- ``month``: the calendar month, 00:00 on the 1st to 00:00 on the next 1st.

``period_end`` (file names, the store) is the end's local date: the Monday, or the next 1st.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reporting.models import PERIOD_KINDS, Period, PeriodKind

ANCHOR = date(2024, 1, 1)  # a Monday: fortnights and 30-day periods end on Mondays counted from it
STEP_DAYS: dict[str, int] = {"week": 7, "fortnight": 14, "30d": 28}  # days between two period ends
LENGTH_DAYS: dict[str, int] = {"week": 7, "fortnight": 14, "30d": 30}


class PeriodError(ValueError):
    """A week or date that does not make a reporting period."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise PeriodError(f"unknown timezone {name!r}") from err


def period_kind(text: str) -> PeriodKind:
    if text not in PERIOD_KINDS:
        raise PeriodError(f"unknown period {text!r}: use one of {', '.join(PERIOD_KINDS)}")
    return text


def _local(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone(tz))


def _first_of_next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def period_containing(day: date, tz: str, kind: PeriodKind = "week") -> Period:
    """The period of ``kind`` that ``day`` (a local date) falls in. A 30-day period overlaps the
    one before by two days; a day in that overlap names the earlier one (:func:`day_in` gives a
    day only one period holds)."""
    if kind == "month":
        start_day, end_day = day.replace(day=1), _first_of_next_month(day)
    elif kind == "week":
        end_day = day - timedelta(days=day.weekday()) + timedelta(days=7)
        start_day = end_day - timedelta(days=7)
    elif kind in STEP_DAYS:
        step = STEP_DAYS[kind]
        end_day = ANCHOR + timedelta(days=step * ((day - ANCHOR).days // step + 1))
        start_day = end_day - timedelta(days=LENGTH_DAYS[kind])
    else:
        raise PeriodError(f"unknown period {kind!r}: use one of {', '.join(PERIOD_KINDS)}")
    return Period(start=_local(start_day, tz), end=_local(end_day, tz), timezone=tz, kind=kind)


def week_containing(day: date, tz: str) -> Period:
    """The Monday-based week that contains ``day``: ``[Monday 00:00, next Monday 00:00)`` local."""
    return period_containing(day, tz, "week")


def day_in(period: Period) -> date:
    """A local date that only ``period`` of its kind contains (its first day, except for a 30-day
    period, whose first two days also belong to the one before)."""
    if period.kind == "30d":
        return period.end.date() - timedelta(days=STEP_DAYS["30d"])
    return period.start.date()


def previous_period(period: Period) -> Period:
    """The period of the same kind before ``period``: the one that ends where it starts (for a
    30-day period, the one that ends four weeks before it)."""
    if period.kind == "30d":
        return period_containing(day_in(period) - timedelta(days=1), period.timezone, "30d")
    return period_containing(period.start.date() - timedelta(days=1), period.timezone, period.kind)


def batch_period(week_day: date, tz: str, kind: PeriodKind, now: datetime) -> Period:
    """The period of ``kind`` a batch for the week that contains ``week_day`` reports: that week
    for ``week``; otherwise the newest period of ``kind`` that has ended at ``now`` and before the
    week after ``week_day``'s ended (the batch's own week, in which it runs)."""
    if kind == "week":
        return period_containing(week_day, tz, kind)
    next_week_end = period_containing(week_day, tz, "week").end + timedelta(days=7)
    return last_complete(min(now, next_week_end), tz, kind)


def last_complete(now: datetime, tz: str, kind: PeriodKind = "week") -> Period:
    """The newest period of ``kind`` that has ended in ``tz`` at ``now``."""
    today = now.astimezone(zone(tz)).date()
    current = period_containing(today, tz, kind)
    return current if current.end.date() <= today else previous_period(current)


def last_complete_week_day(now: datetime, tz: str) -> date:
    """A date inside the last complete Monday–Sunday week, as seen in ``tz`` at ``now``."""
    local = now.astimezone(zone(tz)).date()
    this_monday = local - timedelta(days=local.weekday())
    return this_monday - timedelta(days=1)


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
        noun = fmt.words(period).noun
        super().__init__(f"{code}: the {noun} {fmt.week_span(period)} {why}")


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
    return Period(start=period.start, end=end, timezone=period.timezone, kind=period.kind)

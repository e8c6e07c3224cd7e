"""Number and time formatting shared by every rendering (Markdown, PDF, cards, roll-up)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from reporting.models import Period, Report


def pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} %"


def points(value: float | None) -> str:
    """A signed difference in percentage points: '+0.4 pts', '−8.0 pts'."""
    if value is None:
        return "n/a"
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    return f"{sign}{abs(value):.1f} pts"


def duration(minutes: float) -> str:
    minutes = round(minutes)
    if minutes < 60:
        return f"{minutes} min"
    h, m = divmod(minutes, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h"


def hours(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} h"


def when(ts: datetime | None, tz: str) -> str:
    """'Fri 13 Nov 14:30' in the customer's timezone."""
    if ts is None:
        return "never"
    return ts.astimezone(ZoneInfo(tz)).strftime("%a %d %b %H:%M")


def stamp(ts: datetime, tz: str) -> str:
    """'2026-11-16 06:00 GMT' — for 'data as of'."""
    return ts.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


# ---- weeks: one label wherever a person reads it ("Week of Mon 23 Nov – Sun 29 Nov 2026") ----


def day(d: date, year: bool = False) -> str:
    """'Mon 23 Nov' (with ``year``: 'Mon 23 Nov 2026')."""
    text = f"{d:%a} {d.day} {d:%b}"
    return f"{text} {d.year}" if year else text


def _span(first: date, last: date) -> str:
    return f"{day(first, year=first.year != last.year)} \u2013 {day(last, year=True)}"


def week_span(period: Period) -> str:
    """'Mon 23 Nov – Sun 29 Nov 2026': the period's first and last local day."""
    return _span(period.start.date(), (period.end - timedelta(days=1)).date())


def week(period: Period) -> str:
    """'Week of Mon 23 Nov – Sun 29 Nov 2026'."""
    return f"Week of {week_span(period)}"


def week_ending(period_end: date, days: int = 7) -> str:
    """The same label from a ``period_end`` (the Monday after the week, as in file names)."""
    return f"Week of {_span(period_end - timedelta(days=days), period_end - timedelta(days=1))}"


def week_monday(period_end: date, days: int = 7) -> str:
    """A trend point's label: the week's Monday, '16 Nov' (never its end date)."""
    first = period_end - timedelta(days=days)
    return f"{first.day} {first:%b}"


def moment(ts: datetime, tz: str) -> str:
    """'Thu 3 Dec 14:30 GMT' in ``tz``."""
    local = ts.astimezone(ZoneInfo(tz))
    return f"{day(local.date())} {local:%H:%M %Z}"


def partial(as_of: datetime, tz: str) -> str:
    """'partial, as of Thu 3 Dec 14:30 GMT': the label of a report of a week not yet over."""
    return f"partial, as of {moment(as_of, tz)}"


def report_week(report: Report) -> str:
    """The week a report covers, as every rendering names it; 'Week of … (partial, as of …)' when
    the week had not ended when its figures were read."""
    label = week(report.period)
    if report.partial_as_of is not None:
        label += f" ({partial(report.partial_as_of, report.period.timezone)})"
    return label

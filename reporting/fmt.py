"""Number and time formatting shared by every rendering (Markdown, PDF, cards, roll-up)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


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

"""Number and time formatting shared by every rendering (Markdown, PDF, cards, roll-up)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from reporting.models import Changes, Tickets

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reporting.models import (
        BackupRunItem,
        DeviceUptime,
        DownSpell,
        IncidentItem,
        OutageEvent,
        Period,
        PlannedChange,
        ProtectedItem,
        Report,
        WaitingTicket,
    )


MINUS = "\u2212"

# One precision per quantity, wherever it is shown (sentence, tile, table, card):
UPTIME_DIGITS = 2  # uptime and public-site availability: 99.95 %
RATE_DIGITS = 1  # ticket SLA attainment, backup success rate, Secure Score: 96.6 %


def pct(value: float | None, digits: int = UPTIME_DIGITS) -> str:
    """'99.99 %'. A value below 100 never rounds up to 100 (99.996 → '99.99 %'), one above 0
    never rounds down to 0 (0.004 → '0.01 %'): a shortfall or a sliver is never hidden."""
    if value is None:
        return "n/a"
    step = 10.0**-digits
    text = f"{value:.{digits}f}"
    if value < 100 and float(text) >= 100:
        text = f"{100 - step:.{digits}f}"
    elif 0 < value and float(text) <= 0:
        text = f"{step:.{digits}f}"
    return text.replace("-", MINUS) + " %"


def uptime(value: float | None) -> str:
    """Uptime or availability: two decimals."""
    return pct(value, UPTIME_DIGITS)


def rate(value: float | None) -> str:
    """A rate of tickets or runs, or a score: one decimal."""
    return pct(value, RATE_DIGITS)


def target(value: float | None) -> str:
    """A target as configured, without padding zeros: '99.5 %', '90 %', '99.95 %'."""
    if value is None:
        return "n/a"
    return f"{value:.2f}".rstrip("0").rstrip(".") + " %"


def number(value: float | None, digits: int = 1) -> str:
    """'4,939.7'; an int as '1,204'; None as 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def signed(value: float | None, unit: str = "", digits: int = 1) -> str:
    """'+1.2 pts' / '−8.0 pts' / '±0 pts' with a real minus sign."""
    if value is None:
        return "n/a"
    body = f"{abs(value):,}" if isinstance(value, int) else f"{abs(value):,.{digits}f}"
    if float(body.replace(",", "")) == 0:
        sign = "\u00b1"
    else:
        sign = "+" if value > 0 else MINUS
    return f"{sign}{body}{(' ' + unit) if unit else ''}"


def points(value: float | None) -> str:
    """A signed difference in percentage points: '+0.4 pts', '−8.0 pts'."""
    return signed(value, "pts")


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


def _local(ts: datetime, tz: str | tzinfo) -> datetime:
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).astimezone(zone)


def when(ts: datetime | None, tz: str | tzinfo, never: str = "never") -> str:
    """'Fri 13 Nov 14:30' in the customer's timezone (table cells)."""
    if ts is None:
        return never
    local = _local(ts, tz)
    return f"{day(local.date())} {local:%H:%M}"


def when_compact(ts: datetime | None, tz: str | tzinfo, never: str = "never") -> str:
    """'13 Nov 14:30' in the customer's timezone: the technical report's dense lists."""
    if ts is None:
        return never
    local = _local(ts, tz)
    return f"{local.day} {local:%b %H:%M}"


def stamp(ts: datetime, tz: str | tzinfo) -> str:
    """'Mon 16 Nov 2026, 06:00 GMT' — for 'data as of', 'generated', a decision's time."""
    local = _local(ts, tz)
    return f"{day(local.date(), year=True)}, {local:%H:%M} {local.tzname() or ''}".rstrip()


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


@dataclass(frozen=True)
class Words:
    """How the customer's text names its period: "this week", "last month", "next fortnight's
    report". One per period kind (:func:`words`); every sentence that names the period takes it."""

    noun: str  # "week"
    this: str  # "this week"
    last: str  # "last week"
    before: str  # "the week before"
    next_report: str  # "next week's report"
    end: str  # "the end of the week"
    point: str  # the current period on a trend axis: "This week"
    adjective: str  # "weekly": "WEEKLY SERVICE REPORT", "the weekly figure"
    plural: str  # "weeks": "Uptime, last 6 weeks"
    at_end: str  # "week end": "Open at week end"

    @property
    def this_span(self) -> str:
        """The period as a noun phrase: "this week", "these 30 days" (``this`` without "in ")."""
        return self.this.removeprefix("in ")

    @property
    def last_span(self) -> str:
        """The previous period as a noun phrase: "last week", "the previous 30 days"."""
        return self.last.removeprefix("in ")


WORDS: dict[str, Words] = {
    "week": Words(
        "week",
        "this week",
        "last week",
        "the week before",
        "next week's report",
        "the end of the week",
        "This week",
        "weekly",
        "weeks",
        "week end",
    ),
    "fortnight": Words(
        "fortnight",
        "this fortnight",
        "last fortnight",
        "the fortnight before",
        "the next fortnightly report",
        "the end of the fortnight",
        "This fortnight",
        "fortnightly",
        "fortnights",
        "fortnight end",
    ),
    "30d": Words(
        "30 days",
        "in these 30 days",
        "in the previous 30 days",
        "the 30 days before",
        "the next report",
        "the end of the 30 days",
        "These 30 days",
        "30-day",
        "30-day periods",
        "period end",
    ),
    "month": Words(
        "month",
        "this month",
        "last month",
        "the month before",
        "next month's report",
        "the end of the month",
        "This month",
        "monthly",
        "months",
        "month end",
    ),
}


def words(period: Period | str) -> Words:
    """The words for ``period`` (or a period kind)."""
    return WORDS[period if isinstance(period, str) else period.kind]


def week(period: Period) -> str:
    """The period's one label wherever a person reads it: 'Week of Mon 23 Nov – Sun 29 Nov 2026',
    'Fortnight of Mon 16 Nov – Sun 29 Nov 2026', '30 days, Sat 31 Oct – Sun 29 Nov 2026',
    'November 2026'."""
    if period.kind == "month":
        return f"{period.start:%B %Y}"
    if period.kind == "30d":
        return f"30 days, {week_span(period)}"
    if period.kind == "fortnight":
        return f"Fortnight of {week_span(period)}"
    return f"Week of {week_span(period)}"


def week_ending(period_end: date, days: int = 7) -> str:
    """The same label from a ``period_end`` (the Monday after the week, as in file names)."""
    return f"Week of {_span(period_end - timedelta(days=days), period_end - timedelta(days=1))}"


def first_day(period_end: date, kind: str = "week") -> date:
    """The first local day of the period of ``kind`` that ends on ``period_end``."""
    if kind == "month":
        return (period_end - timedelta(days=1)).replace(day=1)
    return period_end - timedelta(days={"fortnight": 14, "30d": 30}.get(kind, 7))


def week_monday(period_end: date, kind: str = "week") -> str:
    """A trend point's label: the period's first day, '16 Nov' (never its end date); a calendar
    month by its name, 'Nov'."""
    first = first_day(period_end, kind)
    return f"{first:%b}" if kind == "month" else f"{first.day} {first:%b}"


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


# ---- outages and backups: the same words in every rendering -----------------------------

MAX_DEVICE_NAMES = 4


def outage_devices(o: OutageEvent) -> str:
    """'all 4 devices' / '1 of 4 devices: acme-leeds-se02' / '' for a site check."""
    if not o.devices:
        return ""
    n = len(o.devices)
    names = ", ".join(o.devices[:MAX_DEVICE_NAMES])
    if n > MAX_DEVICE_NAMES:
        names += f" and {n - MAX_DEVICE_NAMES} more"
    if o.site_devices and n >= o.site_devices:
        return f"all {n} device{'s' if n != 1 else ''} ({names})"
    of = f" of {o.site_devices}" if o.site_devices else ""
    return f"{n}{of} device{'s' if (o.site_devices or n) != 1 else ''}: {names}"


def _ended(w: Words | None) -> str:
    """'still down when the week ended' / '... when the month ended'."""
    noun = (w or WORDS["week"]).noun
    return f"still down when the {'period' if noun == '30 days' else noun} ended"


def outage_end(o: OutageEvent, tz: str | tzinfo, w: Words | None = None) -> str:
    return _ended(w) if o.ongoing else when(o.end, tz)


def outage_line(o: OutageEvent, tz: str | tzinfo, w: Words | None = None) -> str:
    """'Leeds plant: Wed 11 Nov 06:00 to Thu 12 Nov 02:12 (20 h 12 min), all 4 devices'."""
    end = _ended(w) if o.ongoing else f"to {when(o.end, tz)}"
    affected = outage_devices(o)
    return f"{o.site}: {when(o.start, tz)} {end} ({duration(o.minutes)})" + (f", {affected}" if affected else "")


def stopped(items: Sequence[ProtectedItem]) -> list[ProtectedItem]:
    """Items whose backups stopped running: no good backup within the stale limit, and no failed
    run since (a failure is reported as a failure)."""
    return [p for p in items if p.status == "stale"]


def capital(text: str) -> str:
    """The first letter upper-case, the rest untouched (a sentence from a phrase)."""
    return text[:1].upper() + text[1:]


def backup_stopped(p: ProtectedItem, tz: str | tzinfo) -> str:
    """'no backup of GLOBEX-FS01 ran after Fri 13 Nov 12:00'."""
    return f"no backup of {p.name} ran after {when(p.last_run or p.last_success, tz)}"


MAX_TIMELINE = 12
TREND_WEEKS = 6  # the uptime and Secure Score trends: this week and the five before


def timeline(events: Sequence[OutageEvent], limit: int = MAX_TIMELINE) -> list[OutageEvent]:
    """The entries a report lists: all of them, or the ``limit`` longest, oldest first."""
    if len(events) <= limit:
        return list(events)
    keep = sorted(events, key=lambda o: -o.minutes)[:limit]
    return sorted(keep, key=lambda o: (o.start, o.site))


# ---- "Next week": what the customer can expect, and what waits on them ----------------------

NEXT_WEEK_TITLE = "Next week"
PLANNED_LEAD = "Changes we have scheduled for the coming week:"
WAITING_LEAD = "These requests are waiting on a reply from you; please answer so we can finish them:"
PLANNED_NONE = "No changes are scheduled for the coming week."
WAITING_NONE = "Nothing is waiting on you."


def next_week(report: Report) -> tuple[Sequence[PlannedChange] | None, Sequence[WaitingTicket] | None]:
    """(planned changes, tickets waiting on the customer) for the report's "Next week" part;
    None for a part whose source section is unavailable (or, for waiting, whose PSA does not
    say which status waits on the customer). Both None: the part is left out."""
    ch = report.sections.get("changes")
    tk = report.sections.get("tickets")
    planned = ch.data.planned if ch is not None and ch.ok and isinstance(ch.data, Changes) else None
    waiting = tk.data.waiting if tk is not None and tk.ok and isinstance(tk.data, Tickets) else None
    return planned, waiting


# ---- the technical report: the detail behind the figures, in the same words everywhere ------

TECHNICAL_TITLE = "Technical detail"


def technical_lead(w: Words | None = None) -> str:
    """The technical detail's opening sentence."""
    span = (w or WORDS["week"]).this_span
    this = f"{span}'" if span.endswith("s") else f"{span}'s"  # this week's, these 30 days'
    return (
        f"Every item behind {this} figures, for your IT team: each device, ticket, backup run, "
        "security incident and public-site check. The counts here add up to the figures in the sections above."
    )


TECHNICAL_LEAD = technical_lead()

#: a ticket's SLA verdict (reporting.models.TicketVerdict) as the reader sees it
VERDICT_WORDS: dict[str, str] = {
    "met": "met",
    "missed": "missed",
    "no_target": "no target",
    "excluded": "not measured",
    "breached": "breached",
    "within": "within target",
}
RESTORES_TO = (
    "Restores to is the moment a restore from that run returns to, where the backup system names it "
    "(\u2013 where it does not, e.g. for all but a job's newest restore point)."
)
RUN_WORDS: dict[str, str] = {"success": "successful", "warning": "warning", "failed": "failed"}


def report_kind(report: Report) -> str:
    """'weekly report' / 'monthly technical report': what the document is, for its title lines."""
    adjective = words(report.period).adjective
    return f"{adjective} technical report" if report.audience == "technical" else f"{adjective} report"


def is_technical(report: Report) -> bool:
    return report.audience == "technical"


def age(hours_: float) -> str:
    """A ticket's age: '3 h 20 min', '2 d 4 h'."""
    return duration(hours_ * 60.0)


def verdict(word: str) -> str:
    return VERDICT_WORDS.get(word, word)


def run_result(status: str) -> str:
    return RUN_WORDS.get(status, status)


def ticket_tally(t: Tickets, period: Period) -> str:
    """How the ticket list adds up to the section's figures, in one sentence (each count is of
    the list's rows, so a reader can check it against the figures above)."""
    items = t.items
    opened = sum(1 for i in items if period.start <= i.created < period.end)
    closed = sum(1 for i in items if i.closed is not None)
    still = len(items) - closed
    missed = sum(1 for i in items if i.sla == "missed")
    breached = sum(1 for i in items if i.sla == "breached")
    w = words(period)
    return (
        f"{len(items)} ticket{'s' if len(items) != 1 else ''} listed: {opened} opened {w.this}, {closed} closed "
        f"{w.this}, {still} open at {w.at_end}; SLA breaches: {missed} closed late + {breached} open past target "
        f"= {missed + breached}."
    )


def run_tally(runs: Sequence[BackupRunItem], w: Words | None = None) -> str:
    ok = sum(1 for r in runs if r.status == "success")
    warn = sum(1 for r in runs if r.status == "warning")
    failed = sum(1 for r in runs if r.status == "failed")
    return (
        f"{len(runs)} run{'s' if len(runs) != 1 else ''} finished {(w or WORDS['week']).this}: {ok} successful, "
        f"{warn} with warnings (counted as successful), {failed} failed."
    )


def incident_tally(incidents: Sequence[IncidentItem], period: Period) -> str:
    new = sum(1 for i in incidents if period.start <= i.created < period.end)
    still = sum(1 for i in incidents if i.resolved is None)
    w = words(period)
    return (
        f"{len(incidents)} incident{'s' if len(incidents) != 1 else ''} listed: {new} new {w.this}, "
        f"{still} open at {w.at_end}."
    )


def device_spells(devices: Sequence[DeviceUptime]) -> list[tuple[DeviceUptime, DownSpell]]:
    """Every device's down spells, oldest first (the technical report's per-device outage list)."""
    rows = [(d, o) for d in devices for o in d.outages]
    return sorted(rows, key=lambda r: (r[1].start.astimezone(UTC), r[0].name))


def spell_end(o: DownSpell, tz: str | tzinfo, w: Words | None = None) -> str:
    return _ended(w) if o.ongoing else when_compact(o.end, tz)


def status_word(raw: str) -> str:
    """A source's status word for a reader: 'inProgress' -> 'In progress', 'resolved' -> 'Resolved'."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", raw.strip()).replace("_", " ").lower()
    return capital(spaced) if spaced else "–"


def incident_resolved(i: IncidentItem, tz: str | tzinfo, w: Words | None = None) -> str:
    return f"open at {(w or WORDS['week']).at_end}" if i.resolved is None else when_compact(i.resolved, tz)

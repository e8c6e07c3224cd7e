"""Vendor-neutral records and the formulas that turn them into report sections.

Each connector's mapper converts its vendor's JSON into these records and calls the functions
below, so a number means the same thing whichever system it came from. The definitions are the
ones in ``shared/design.md`` ("Definitions"); each function's docstring states its formula.
All intervals are half-open ``[start, end)`` and clipped to the period.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reporting.models import (
    BackupRunItem,
    Backups,
    BackupStatus,
    Change,
    Changes,
    DeviceUptime,
    DownSpell,
    IncidentItem,
    OpenIncident,
    OutageEvent,
    Period,
    PlannedChange,
    ProtectedItem,
    Security,
    SiteCheck,
    Sites,
    TicketItem,
    Tickets,
    TicketVerdict,
    Uptime,
    UptimeGroup,
    WaitingTicket,
)

# ---- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    site: str
    device_class: str


@dataclass(frozen=True)
class Outage:
    """A device unavailable from ``start`` to ``end`` (None: still down). ``planned``: maintenance."""

    device_id: str
    start: datetime
    end: datetime | None
    planned: bool = False


@dataclass(frozen=True)
class TicketRecord:
    id: str
    title: str
    priority: str
    created: datetime
    closed: datetime | None
    resolve_by: datetime | None  # the PSA's resolution target
    met_sla: bool | None = None  # the PSA's own verdict when it gives one
    is_change: bool = False
    sla_excluded: bool = False  # the PSA marks it outside SLA measurement (e.g. Halo excludefromsla)
    # open at period end: the PSA's own verdict whether it had breached by then (ConnectWise
    # isInSla with paused clocks, Halo fixbydate after hold time); None = judge by resolve_by
    breached_at_end: bool | None = None
    priority_rank: float | None = None  # the PSA's own order of the priority (1 = most urgent), when it gives one
    scheduled: datetime | None = None  # a change ticket's planned start, where the PSA has one
    waiting_on_customer: bool = False  # open, and its PSA status says the next move is the customer's
    status: str = ""  # the PSA's status name as read


@dataclass(frozen=True)
class BackupRun:
    item: str
    ended: datetime
    status: str  # "success" | "warning" | "failed"
    recovery_point: datetime | None  # what a restore from this run returns to (snapshot time)


@dataclass(frozen=True)
class IncidentRecord:
    id: str
    title: str
    severity: str  # high | medium | low | informational
    created: datetime
    resolved: datetime | None
    status: str = ""  # the source's own status word as read (Defender "active", Sentinel "New"...)


@dataclass(frozen=True)
class ScoreSnapshot:
    at: datetime
    current: float
    max: float


@dataclass(frozen=True)
class SiteCheckRecord:
    name: str
    unhealthy: tuple[tuple[datetime, datetime | None], ...]  # intervals the check reported unhealthy


# ---- interval arithmetic ------------------------------------------------------------------


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC)


def _clip(
    intervals: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Intervals cut to ``[start, end)``, in UTC (elapsed-time arithmetic is only right there)."""
    out = []
    start, end = _utc(start), _utc(end)
    for a, b in intervals:
        b = end if b is None else _utc(b)
        a, b = max(_utc(a), start), min(b, end)
        if a < b:
            out.append((a, b))
    return out


def merge(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Union of intervals, sorted, non-overlapping."""
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    return sum((b - a).total_seconds() for a, b in intervals)


def subtract(
    base: list[tuple[datetime, datetime]], holes: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """``base`` minus ``holes`` (both merged)."""
    out = []
    for a, b in base:
        cur = a
        for h0, h1 in holes:
            if h1 <= cur or h0 >= b:
                continue
            if h0 > cur:
                out.append((cur, h0))
            cur = max(cur, h1)
            if cur >= b:
                break
        if cur < b:
            out.append((cur, b))
    return out


def in_period(ts: datetime | None, period: Period) -> bool:
    """``ts`` falls inside ``period`` (start included, end excluded)."""
    return ts is not None and period.start <= ts < period.end


# ---- uptime ---------------------------------------------------------------------------------


def uptime_section(
    devices: Sequence[Device],
    outages: Iterable[Outage],
    period: Period,
    target_pct: float,
    sla_pct: float | None = None,
    sla_name: str | None = None,
) -> Uptime:
    """Device-weighted uptime.

    Per device: monitored = period − planned maintenance; down = unplanned outages − maintenance.
    ``uptime_pct`` of a group = 100 × Σ(monitored − down) / Σ monitored over its devices;
    ``downtime_minutes`` = Σ down / 60. ``overall_pct`` is ``sla_pct`` when the source defines
    an SLA (e.g. Zabbix SLA), else the device-weighted value over all devices. ``devices`` (the
    technical report's rows) carries each device's own terms of those sums — monitored, down and
    its down spells — so its rows add up to the site and class rows exactly.
    """
    by_device: dict[str, list[Outage]] = {}
    for o in outages:
        by_device.setdefault(o.device_id, []).append(o)
    stats: dict[str, tuple[float, float]] = {}
    down_by_device: dict[str, list[tuple[datetime, datetime]]] = {}
    still_down: set[str] = set()  # an unplanned outage open (or ending after) the period end
    for d in devices:
        os_ = by_device.get(d.id, [])
        planned = merge(_clip(((o.start, o.end) for o in os_ if o.planned), period.start, period.end))
        down = merge(_clip(((o.start, o.end) for o in os_ if not o.planned), period.start, period.end))
        monitored = period.seconds - seconds(planned)
        down_by_device[d.id] = subtract(down, planned)
        stats[d.id] = (monitored, seconds(down_by_device[d.id]))
        if any(not o.planned and o.start < period.end and (o.end is None or o.end > period.end) for o in os_):
            still_down.add(d.id)

    def group(rows: Sequence[Device], name: str) -> UptimeGroup:
        mon = sum(stats[d.id][0] for d in rows)
        down = sum(stats[d.id][1] for d in rows)
        pct = 100.0 if mon <= 0 else 100.0 * (mon - down) / mon
        return UptimeGroup(name=name, uptime_pct=pct, downtime_minutes=down / 60.0, devices=len(rows))

    def breakdown(key: str) -> tuple[UptimeGroup, ...]:
        groups: dict[str, list[Device]] = {}
        for d in devices:
            groups.setdefault(getattr(d, key), []).append(d)
        return tuple(group(rows, name) for name, rows in sorted(groups.items()))

    overall = group(devices, "all").uptime_pct
    tz = period.start.tzinfo
    end = _utc(period.end)
    rows = tuple(
        DeviceUptime(
            id=d.id,
            name=d.name,
            site=d.site,
            device_class=d.device_class,
            uptime_pct=group([d], d.name).uptime_pct,
            downtime_minutes=stats[d.id][1] / 60.0,
            monitored_minutes=stats[d.id][0] / 60.0,
            outages=tuple(
                DownSpell(a.astimezone(tz), b.astimezone(tz), ongoing=b >= end and d.id in still_down)
                for a, b in down_by_device[d.id]
            ),
        )
        for d in sorted(devices, key=lambda d: (d.site, d.name, d.id))
    )
    return Uptime(
        overall_pct=sla_pct if sla_pct is not None else overall,
        overall_source=f"SLA {sla_name}" if sla_pct is not None and sla_name else "device-weighted",
        target_pct=target_pct,
        by_site=breakdown("site"),
        by_class=breakdown("device_class"),
        outages=outage_timeline(devices, down_by_device, still_down, period),
        devices=rows,
    )


def outage_timeline(
    devices: Sequence[Device], down: dict[str, list[tuple[datetime, datetime]]], still_down: set[str], period: Period
) -> tuple[OutageEvent, ...]:
    """The outage timeline: per site, the union of its devices' unplanned down time (planned
    maintenance taken out, clipped to the period); each maximal interval of it is one outage,
    naming the devices down during it. Oldest first; times in the period's timezone."""
    tz = period.start.tzinfo
    out: list[OutageEvent] = []
    sites: dict[str, list[Device]] = {}
    for d in devices:
        sites.setdefault(d.site, []).append(d)
    end = _utc(period.end)
    for site, rows in sites.items():
        for a, b in merge(iv for d in rows for iv in down.get(d.id, [])):
            hit = [d for d in rows if any(x < b and y > a for x, y in down.get(d.id, []))]
            ongoing = b >= end and any(d.id in still_down for d in hit)
            out.append(
                OutageEvent(
                    site=site,
                    start=a.astimezone(tz),
                    end=b.astimezone(tz),
                    devices=tuple(sorted(d.name for d in hit)),
                    site_devices=len(rows),
                    ongoing=ongoing,
                )
            )
    return tuple(sorted(out, key=lambda o: (o.start, o.site)))


# ---- tickets and changes -----------------------------------------------------------------


def _met(t: TicketRecord) -> bool:
    if t.met_sla is not None:
        return t.met_sla
    if t.resolve_by is None or t.closed is None:
        return True  # no resolution target: nothing to miss
    return t.closed <= t.resolve_by


def ticket_met_sla(t: TicketRecord) -> bool:
    """Did a closed ticket meet its resolution target? The PSA's own verdict (``met_sla``) where it
    gives one, else ``closed <= resolve_by`` (no target: nothing to miss) — the rule
    :func:`tickets_section` counts attainment by, shared with the MSP's service-desk summary."""
    return _met(t)


def _open_breach(t: TicketRecord, period: Period) -> bool:
    if t.breached_at_end is not None:
        return t.breached_at_end
    return t.resolve_by is not None and t.resolve_by < period.end


# the conventional words for priorities, most urgent first: the order when the PSA gives none
_PRIORITY_WORDS = ("emergency", "critical", "urgent", "high", "medium", "normal", "moderate", "low", "planning")
_PRIORITY_NUMBER = re.compile(r"^\s*(?:p|priority)?\s*(\d+)\b", re.IGNORECASE)


def priority_key(name: str, rank: float | None = None) -> tuple[float, float, str]:
    """The order priorities are listed in: the PSA's own (its sort field or priority id) when
    it gives one, else by the usual words (Critical, High, Medium, Low) or a leading number
    ("P1", "Priority 2 - …"); never alphabetical first. Unknown names go last, by name."""
    if rank is not None:
        return (0, rank, name)
    words = name.lower()
    word = next((i for i, w in enumerate(_PRIORITY_WORDS) if w in words), None)
    if word is not None:
        return (1, word, name)
    number = _PRIORITY_NUMBER.match(name)
    return (2, int(number.group(1)), name) if number else (3, 0, name)


def tickets_section(
    tickets: Iterable[TicketRecord], period: Period, target_pct: float, *, reads_waiting: bool = True
) -> Tickets:
    """Ticket throughput and SLA.

    opened = created in period; closed = closed in period; backlog = created before end and not
    closed before end. sla_attainment_pct = 100 × met / (closed-in-period − excluded) (None if
    that is 0), where met is the PSA's own verdict or closed <= resolve_by, and excluded are
    tickets the PSA keeps out of SLA measurement. sla_breaches = closed-in-period that missed +
    open at end that had breached by then — the PSA's own verdict ``breached_at_end`` where the
    connector has one (clocks paused while waiting respected), else resolve_by < end (excluded
    tickets never breach). by_priority counts tickets opened. waiting = tickets still open (as read)
    that were created before end and whose status waits on the customer, oldest first; None when
    ``reads_waiting`` is false (the source does not say which status waits on the customer).
    items (the technical report's list) = every ticket counted in opened, closed or backlog, with
    the verdict it was counted by (:data:`reporting.models.TicketVerdict`), oldest first.
    """
    opened = closed = backlog = met = measured = breaches = 0
    waiting: list[WaitingTicket] = []
    items: list[TicketItem] = []
    prio: Counter[str] = Counter()
    ranks: dict[str, float] = {}
    for t in tickets:
        if t.is_change:
            continue
        verdict: TicketVerdict | None = None
        if in_period(t.created, period):
            opened += 1
            prio[t.priority] += 1
            if t.priority_rank is not None:
                ranks[t.priority] = min(t.priority_rank, ranks.get(t.priority, t.priority_rank))
        if in_period(t.closed, period):
            closed += 1
            verdict = "excluded"
            if not t.sla_excluded:
                measured += 1
                if _met(t):
                    met += 1
                    no_target = t.met_sla is None and t.resolve_by is None
                    verdict = "no_target" if no_target else "met"
                else:
                    breaches += 1
                    verdict = "missed"
        if t.created < period.end and (t.closed is None or t.closed >= period.end):
            backlog += 1
            verdict = "excluded"
            if not t.sla_excluded:
                verdict = "within"
                if _open_breach(t, period):
                    breaches += 1
                    verdict = "breached"
            if t.closed is None and t.waiting_on_customer:
                waiting.append(WaitingTicket(t.id, t.title, t.created, t.status))
        if verdict is not None:
            closed_at = t.closed if t.closed is not None and t.closed < period.end else None
            age = (_utc(closed_at or period.end) - _utc(t.created)).total_seconds() / 3600.0
            items.append(TicketItem(t.id, t.title, t.priority, t.created, closed_at, age, verdict, t.resolve_by))
    return Tickets(
        opened=opened,
        closed=closed,
        backlog=backlog,
        sla_breaches=breaches,
        sla_attainment_pct=None if measured == 0 else 100.0 * met / measured,
        by_priority={name: prio[name] for name in sorted(prio, key=lambda n: priority_key(n, ranks.get(n)))},
        target_pct=target_pct,
        waiting=tuple(sorted(waiting, key=lambda w: (w.created, w.id))) if reads_waiting else None,
        items=tuple(sorted(items, key=lambda i: (_utc(i.created), i.id))),
    )


def changes_section(tickets: Iterable[TicketRecord], period: Period) -> Changes:
    """Changes executed = change tickets closed in the period, oldest first. planned = change
    tickets created before end, not closed before end, whose scheduled start falls in the next
    period of the same length ``[end, end + (end − start))``, soonest first."""
    tickets = list(tickets)
    items = sorted(
        (
            Change(id=t.id, title=t.title, closed_at=t.closed)
            for t in tickets
            if t.is_change and t.closed and in_period(t.closed, period)
        ),
        key=lambda c: (c.closed_at, c.id),
    )
    horizon = period.end + (period.end - period.start)
    planned = sorted(
        (
            PlannedChange(t.id, t.title, t.scheduled)
            for t in tickets
            if t.is_change
            and t.scheduled is not None
            and period.end <= t.scheduled < horizon
            and t.created < period.end
            and (t.closed is None or t.closed >= period.end)
        ),
        key=lambda c: (c.start, c.id),
    )
    return Changes(count=len(items), items=tuple(items), planned=tuple(planned))


# ---- backups ------------------------------------------------------------------------------


def backups_section(
    items: Sequence[str], runs: Iterable[BackupRun], period: Period, stale_hours: float = 48.0
) -> Backups:
    """Backup posture per protected item.

    success_rate_pct = 100 × (success + warning) / runs finished in the period (None if none).
    last_success = newest recovery point of a successful (or warning) run that ended at or before
    period end; rpo_hours = (period end − last_success) in hours. status: "never" with no
    successful recovery point at all; "failed" when the item's latest run before period end
    failed; "stale" when rpo_hours > stale_hours; else "ok". runs (the technical report's list) =
    the runs finished in the period, the ones the rate counts, oldest first.
    """
    by_item: dict[str, list[BackupRun]] = {name: [] for name in items}
    for r in runs:
        if r.ended <= period.end:
            by_item.setdefault(r.item, []).append(r)
    protected = []
    counted: list[BackupRunItem] = []
    total = ok_runs = warn_runs = 0
    for name in sorted(by_item):
        rs = sorted(by_item[name], key=lambda r: r.ended)
        ran = [r for r in rs if in_period(r.ended, period)]
        counted += [BackupRunItem(r.item, r.ended, r.status, r.recovery_point) for r in ran]
        n_ok = sum(1 for r in ran if r.status == "success")
        n_warn = sum(1 for r in ran if r.status == "warning")
        n_fail = sum(1 for r in ran if r.status == "failed")
        total += len(ran)
        ok_runs += n_ok
        warn_runs += n_warn
        last_run = rs[-1].ended if rs else None
        points = [r.recovery_point for r in rs if r.status in ("success", "warning") and r.recovery_point is not None]
        last = max((p for p in points if p <= period.end), default=None)
        rpo = None if last is None else (_utc(period.end) - _utc(last)).total_seconds() / 3600.0
        status: BackupStatus
        if last is None:
            status = "never"
        elif rs and rs[-1].status == "failed":
            status = "failed"
        elif rpo is not None and rpo > stale_hours:
            status = "stale"
        else:
            status = "ok"
        protected.append(
            ProtectedItem(
                name=name,
                last_success=last,
                rpo_hours=rpo,
                status=status,
                runs_ok=n_ok,
                runs_warning=n_warn,
                runs_failed=n_fail,
                last_run=last_run,
            )
        )
    return Backups(
        success_rate_pct=None if total == 0 else 100.0 * (ok_runs + warn_runs) / total,
        protected=tuple(protected),
        runs_total=total,
        runs_warning=warn_runs,
        runs=tuple(sorted(counted, key=lambda r: (_utc(r.ended), r.item))),
    )


# ---- security -----------------------------------------------------------------------------

_SEVERITIES = ("high", "medium", "low", "informational")


def _score_pct(scores: Sequence[ScoreSnapshot], at: datetime) -> float | None:
    best = max((s for s in scores if s.at <= at), key=lambda s: s.at, default=None)
    if best is None or best.max <= 0:
        return None
    return 100.0 * best.current / best.max


def security_section(incidents: Iterable[IncidentRecord], scores: Sequence[ScoreSnapshot], period: Period) -> Security:
    """Incidents and Secure Score.

    incidents_new = created in period (by_severity counts these); incidents_open = created before
    end and not resolved before end. secure_score_pct = 100 × current / max of the newest snapshot
    at or before period end; secure_score_change = that minus the same at period start (points).
    incidents (the technical report's list) = every incident new in the period or open at its end,
    oldest first.
    """
    new: Counter[str] = Counter({s: 0 for s in _SEVERITIES})
    n_new = 0
    open_items = []
    listed: list[IncidentItem] = []
    for i in incidents:
        sev = i.severity.lower()
        is_new = in_period(i.created, period)
        is_open = i.created < period.end and (i.resolved is None or i.resolved >= period.end)
        if is_new:
            n_new += 1
            new[sev if sev in _SEVERITIES else "informational"] += 1
        if is_open:
            open_items.append(OpenIncident(id=i.id, title=i.title, severity=sev, created=i.created))
        if is_new or is_open:
            resolved = None if is_open else i.resolved
            listed.append(IncidentItem(i.id, i.title, sev, i.created, resolved, i.status))
    order = {s: n for n, s in enumerate(_SEVERITIES)}
    open_items.sort(key=lambda o: (order.get(o.severity, 9), o.created, o.id))
    end_pct = _score_pct(scores, period.end)
    start_pct = _score_pct(scores, period.start)
    return Security(
        incidents_new=n_new,
        incidents_open=len(open_items),
        by_severity={s: new[s] for s in _SEVERITIES},
        secure_score_pct=end_pct,
        secure_score_change=None if end_pct is None or start_pct is None else end_pct - start_pct,
        open_items=tuple(open_items),
        incidents=tuple(sorted(listed, key=lambda i: (_utc(i.created), i.id))),
    )


# ---- public sites ---------------------------------------------------------------------------


def sites_section(checks: Iterable[SiteCheckRecord], period: Period, target_pct: float) -> Sites:
    """availability_pct = 100 × (period − unhealthy time) / period, per check."""
    out = []
    events: list[OutageEvent] = []
    tz = period.start.tzinfo
    for c in checks:
        spells = merge(_clip(c.unhealthy, period.start, period.end))
        down = seconds(spells)
        out.append(
            SiteCheck(
                name=c.name,
                availability_pct=100.0 * (period.seconds - down) / period.seconds,
                downtime_minutes=down / 60.0,
            )
        )
        open_ = any(b is None or b > period.end for a, b in c.unhealthy if a < period.end)
        events += [
            OutageEvent(c.name, a.astimezone(tz), b.astimezone(tz), ongoing=open_ and b >= _utc(period.end))
            for a, b in spells
        ]
    return Sites(
        checks=tuple(sorted(out, key=lambda c: c.name)),
        target_pct=target_pct,
        outages=tuple(sorted(events, key=lambda o: (o.start, o.site))),
    )


#: Each figure's definition in plain words, for the report's "How to read this report" page. They
#: restate the formulas above (keep them in step): (section, figure, definition).
DEFINITIONS: tuple[tuple[str, str, str], ...] = (
    (
        "",
        "The week",
        "Monday 00:00 to the next Monday 00:00 in your time zone. A week with a daylight-saving change "
        "is 167 or 169 hours long. Only what happened inside the week counts.",
    ),
    (
        "uptime",
        "Uptime",
        "For each monitored device: the time it was monitored minus the time it was down, as a share of the time "
        "it was monitored; a site's or class's figure adds these up over its devices, so a site with more devices "
        "weighs more. Planned maintenance counts neither as monitored time nor as downtime.",
    ),
    (
        "uptime",
        "Overall uptime",
        "The service-level (SLA) figure your monitoring system calculates, where it defines one; otherwise the "
        "uptime of all monitored devices together, as above.",
    ),
    (
        "uptime",
        "Outages",
        "Each spell in which at least one device of a site was down, outside planned maintenance: the down times "
        "of a site's devices that overlap are one outage, from the first device down to the last one back, with "
        "the devices it affected. Times are in your time zone.",
    ),
    (
        "uptime",
        "Device-minutes",
        "Minutes each device was down, added up over the devices: two devices down for the same ten minutes "
        "count twenty device-minutes, in a ten-minute outage.",
    ),
    (
        "tickets",
        "Opened, closed",
        "Service tickets created, and closed, during the week. Change requests are counted under Changes, never here.",
    ),
    ("tickets", "Open at week end", "Service tickets created before the week ended and not closed by then."),
    (
        "tickets",
        "SLA attainment",
        "Of the tickets closed during the week, the share resolved within their agreed resolution time, as your "
        "service desk system judges it (paused clocks respected). Tickets it keeps out of SLA measurement are left "
        "out.",
    ),
    (
        "tickets",
        "SLA breaches",
        "Tickets closed during the week that missed their resolution time, plus open tickets already past it when "
        "the week ended.",
    ),
    ("changes", "Changes executed", "Change requests completed during the week."),
    (
        "backups",
        "Backup success rate",
        "Successful backup runs divided by all runs that finished during the week; a run that finished with a "
        "warning counts as successful (and is shown as a warning).",
    ),
    (
        "backups",
        "No backup ran after",
        "Said of a protected system whose backups stopped: no run at all, not a failed one, since that time.",
    ),
    (
        "backups",
        "Last success and recovery point (RPO)",
        "Last success is the moment the newest good backup can restore to. The recovery point, in hours, is how "
        "old that backup was when the week ended: the most work you could lose if you had to restore then.",
    ),
    (
        "backups",
        "Backup status",
        "OK; stale when the newest good backup is older than the agreed limit; failed when the latest run "
        "failed; never when no good backup exists at all.",
    ),
    (
        "security",
        "New and open incidents",
        "Security incidents created during the week, and those not resolved when the week ended.",
    ),
    (
        "security",
        "Secure score",
        "Microsoft Secure Score: the points achieved as a share of the points possible, from the newest reading "
        "before the week ended. The change is that share minus the same share at the week's start, in percentage "
        "points.",
    ),
    ("sites", "Availability", "The share of the week the external check found the public site healthy."),
)


_PERIOD_DEFINITION: dict[str, tuple[str, str]] = {
    "fortnight": (
        "The fortnight",
        "14 days, from Monday 00:00 to Monday 00:00 two weeks later, in your time zone; one fortnight follows "
        "another with no gap or overlap. A fortnight with a daylight-saving change is 335 or 337 hours long. Only "
        "what happened inside the fortnight counts.",
    ),
    "30d": (
        "The period",
        "30 days, ending Monday 00:00 in your time zone. A report comes every four weeks, so each one also covers "
        "the last weekend of the one before. A period with a daylight-saving change is 719 or 721 hours long. "
        "Only what happened inside the period counts.",
    ),
    "month": (
        "The month",
        "The calendar month, from 00:00 on the 1st to 00:00 on the 1st of the next month, in your time zone; a "
        "month with a daylight-saving change is an hour shorter or longer. Only what happened inside the month "
        "counts.",
    ),
}
_PERIOD_NOUN = {"fortnight": "fortnight", "30d": "period", "month": "month"}


#: The technical report's own columns, for its "How to read" page (same shape as DEFINITIONS,
#: shown after that section's entries).
TECHNICAL_DEFINITIONS: tuple[tuple[str, str, str], ...] = (
    (
        "uptime",
        "Monitored (per device)",
        "The week less the device's planned maintenance. A device's uptime is its monitored time minus its "
        "downtime, as a share of its monitored time; the site and class figures add these up.",
    ),
    (
        "tickets",
        "Age",
        "From the ticket's creation to its closing, or to the end of the week for a ticket still open then, in "
        "elapsed hours.",
    ),
    (
        "tickets",
        "SLA (per ticket)",
        "Closed this week: met or missed its resolution time, as the service desk system judges it; no target "
        "when it had none (counted as met); not measured when the system keeps it out of SLA figures. Open at "
        "week end: breached when already past its resolution time then (counted as an SLA breach), otherwise "
        "within target.",
    ),
    (
        "backups",
        "Backup runs",
        "Every backup run that finished during the week, with its result and the moment a restore from it "
        "returns to. These are the runs the success rate counts.",
    ),
    (
        "security",
        "Incident list",
        "Every incident created during the week or still open when it ended. Resolved is when the security "
        "system marked it resolved; status now is its own word for the incident when the report was made.",
    ),
    (
        "sites",
        "Interruptions",
        "Each spell in which a public check found the site unhealthy during the week; availability is the week "
        "less these spells.",
    ),
)


def definitions(kind: str = "week", technical: bool = False) -> tuple[tuple[str, str, str], ...]:
    """The "How to read" entries: :data:`DEFINITIONS`, with the technical report's own after each
    section's when ``technical``; in the words of a period of ``kind`` ("during the month", "Open
    at month end"): the same formulas over the customer's period."""
    entries: list[tuple[str, str, str]] = []
    for i, entry in enumerate(DEFINITIONS):
        entries.append(entry)
        last_of_section = i + 1 == len(DEFINITIONS) or DEFINITIONS[i + 1][0] != entry[0]
        if technical and last_of_section:
            entries += [t for t in TECHNICAL_DEFINITIONS if t[0] == entry[0]]
    if kind not in _PERIOD_DEFINITION:
        return tuple(entries)
    noun = _PERIOD_NOUN[kind]

    def reword(text: str) -> str:
        for week, other in (("this week", f"this {noun}"), ("week end", f"{noun} end"), ("the week", f"the {noun}")):
            text = text.replace(week, other).replace(week.capitalize(), other.capitalize())
        return text

    first = ("", *_PERIOD_DEFINITION[kind])
    return (first, *((section, reword(figure), reword(text)) for section, figure, text in entries[1:]))


#: The MSP's internal service-desk summary (``reporting.servicedesk``): each figure's definition for
#: the owner and manager reports' "How to read" section, (audience, figure, definition); audience
#: "owner" figures appear in both reports, "manager" ones in the manager report only. Kept apart
#: from :data:`DEFINITIONS` because no customer ever receives these reports.
SERVICE_DESK_DEFINITIONS: tuple[tuple[str, str, str], ...] = (
    (
        "owner",
        "Period",
        "Monday 00:00 to the next Monday 00:00 in the MSP's time zone; every customer's tickets are counted in "
        "that one period. Service tickets only: change tickets are not counted.",
    ),
    ("owner", "Opened, closed", "Service tickets created, and closed, during the period, across all customers."),
    ("owner", "Backlog", "Service tickets created before the period ended and not closed by then."),
    (
        "owner",
        "Resolution rate",
        "Of the tickets opened during the period, the share closed before the period ended.",
    ),
    (
        "owner",
        "Mean first response",
        "For tickets opened during the period whose first response the PSA records before the period ended: the "
        "mean time from creation to that response, in elapsed hours (ConnectWise dateResponded, Halo responsedate).",
    ),
    (
        "owner",
        "Mean resolution time",
        "For tickets closed during the period: the mean time from creation to closing, in elapsed (not business) "
        "hours.",
    ),
    (
        "owner",
        "SLA attainment",
        "Of the tickets closed during the period that the PSA measures, the share that met their resolution target "
        "by the PSA's own verdict (ConnectWise isInSla, Halo slastate) — the customer reports' rule.",
    ),
    (
        "owner",
        "Customer sentiment",
        "Survey or feedback answers of the period: the share that were positive, and the customers who gave at "
        "least one negative answer. HaloPSA: feedback received during the period (by answer date), score 1 or 2 "
        "positive, 3 or 4 negative. ConnectWise: customer survey answers about tickets closed during the period "
        "(dated by the ticket's close), positive when their points reach half the survey's maximum (configurable). "
        "A PSA whose answers are not read is shown as not available, never as zero answers.",
    ),
    (
        "owner",
        "Automation impact",
        "Of the tickets closed during the period, the share closed by automation: in ConnectWise, closedBy is one "
        'of the configured automation API members. Where the PSA gives no such marker the report says "not '
        'available from this PSA".',
    ),
    (
        "owner",
        "Top categories",
        "The categories with the most tickets opened during the period (ConnectWise type / subType, Halo "
        "category_1), with the previous period's count beside them.",
    ),
    (
        "owner",
        "Devices with repeated alerts",
        "Not available: the PSA tickets read here do not name the device (configuration item) they concern.",
    ),
    (
        "owner",
        "Recommendations",
        "Rules applied to the figures, each naming its threshold: SLA below target, backlog up 10 % or more, mean "
        "first response over 1 h, escalation rate up 5 points or more, one technician over 35 % of the resolved "
        "tickets, a category with 10 % or more of the tickets opened, negative feedback, automation under 5 %.",
    ),
    (
        "manager",
        "Technician",
        "The ticket's owner (ConnectWise owner) or assigned agent (Halo agent_id) as the PSA has it when read; a "
        "ticket with none is Unassigned.",
    ),
    ("manager", "Resolved", "Service tickets closed during the period, per technician."),
    (
        "manager",
        "Average resolution time",
        "Per technician, the mean time from creation to closing of the tickets they resolved, in elapsed hours.",
    ),
    (
        "manager",
        "Escalation",
        "ConnectWise: the ticket's escalationLevel is above 0 (the PSA's own escalation level). HaloPSA: the ticket "
        'sits with a team other than first line (the configured first_line_teams, default "Service Desk"). '
        "Both are read as they are now, not as they were at period end.",
    ),
    (
        "manager",
        "Escalation rate",
        "Of the tickets closed during the period (per technician, or in all), the share escalated; the trend compares "
        "it with the previous period of the same length, in percentage points.",
    ),
    (
        "manager",
        "Technician × customer",
        "How many of each customer's tickets closed during the period each technician resolved.",
    ),
    ("manager", "Per customer", "The owner figures above for each customer on its own."),
)

"""The domain model of a weekly report: frozen dataclasses, no I/O.

Everything downstream (deltas, Markdown, PDF, cards, the JSON snapshot) reads these types;
connectors produce the section payloads. Field names follow the JSON contract in
``shared/design.md`` ("Output files").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Literal

SectionName = Literal["uptime", "tickets", "changes", "backups", "security", "sites"]
SECTION_NAMES: tuple[SectionName, ...] = ("uptime", "tickets", "changes", "backups", "security", "sites")
SECTION_TITLES: dict[str, str] = {
    "uptime": "Uptime and SLA",
    "tickets": "Service desk tickets",
    "changes": "Changes executed",
    "backups": "Backup posture",
    "security": "Security",
    "sites": "Public-site availability",
}

Severity = Literal["high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}

BackupStatus = Literal["ok", "stale", "failed", "never"]

PeriodKind = Literal["week", "fortnight", "30d", "month"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("week", "fortnight", "30d", "month")
# the word in file names: <CODE>-<word>-<period_end>.pdf (design.md, "Output files")
PERIOD_FILE_WORDS: dict[str, str] = {"week": "weekly", "fortnight": "fortnightly", "30d": "30day", "month": "monthly"}


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in the customer's local time. ``end`` is 00:00 on a Monday for a week,
    a fortnight and 30 days, and 00:00 on the 1st for a calendar month (``reporting.period``)."""

    start: datetime  # timezone-aware
    end: datetime  # timezone-aware
    timezone: str
    kind: PeriodKind = "week"

    @property
    def end_date(self) -> date:
        """The ``period_end`` date used in file names (the day after the period's last day)."""
        return self.end.date()

    @property
    def file_word(self) -> str:
        """``weekly``, ``fortnightly``, ``30day`` or ``monthly``: the file names' word."""
        return PERIOD_FILE_WORDS[self.kind]

    @property
    def days(self) -> int:
        """Local calendar days in the period (7, 14, 30, or 28-31 for a month)."""
        return (self.end.date() - self.start.date()).days

    @property
    def seconds(self) -> float:
        """Elapsed seconds. Computed in UTC: Python subtracts two datetimes that share a tzinfo
        as wall-clock times, which would make every DST week 168 h."""
        return (self.end.astimezone(UTC) - self.start.astimezone(UTC)).total_seconds()

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0


# ---- section payloads -------------------------------------------------------------------


@dataclass(frozen=True)
class UptimeGroup:
    """One row of the per-site or per-device-class breakdown. ``name`` is the site or class."""

    name: str
    uptime_pct: float
    downtime_minutes: float
    devices: int


@dataclass(frozen=True)
class OutageEvent:
    """One entry of the outage timeline: ``site`` (a site, or a public-site check) unavailable
    from ``start`` to ``end``, both clipped to the week. The down times of a site's devices that
    overlap are one outage; ``devices`` names the devices that were down in it (empty for a
    site check). ``ongoing``: still down when the week ended."""

    site: str
    start: datetime
    end: datetime
    devices: tuple[str, ...] = ()
    site_devices: int = 0  # devices monitored at the site (0: unknown, or a site check)
    ongoing: bool = False

    @property
    def minutes(self) -> float:
        return (self.end.astimezone(UTC) - self.start.astimezone(UTC)).total_seconds() / 60.0


@dataclass(frozen=True)
class DownSpell:
    """One spell a single device was down, outside planned maintenance, clipped to the period.
    ``ongoing``: still down when the period ended."""

    start: datetime
    end: datetime
    ongoing: bool = False

    @property
    def minutes(self) -> float:
        return (self.end.astimezone(UTC) - self.start.astimezone(UTC)).total_seconds() / 60.0


@dataclass(frozen=True)
class DeviceUptime:
    """One monitored device's own figures, the terms the site and class rows add up
    (``reporting.metrics.uptime_section``): ``monitored_minutes`` = period − planned maintenance,
    ``downtime_minutes`` = its unplanned down time outside maintenance, ``uptime_pct`` =
    100 × (monitored − down) / monitored. ``outages``: its down spells, oldest first."""

    id: str
    name: str
    site: str
    device_class: str
    uptime_pct: float
    downtime_minutes: float
    monitored_minutes: float
    outages: tuple[DownSpell, ...] = ()


@dataclass(frozen=True)
class Uptime:
    overall_pct: float
    target_pct: float
    by_site: tuple[UptimeGroup, ...]
    by_class: tuple[UptimeGroup, ...]
    overall_source: str = "device-weighted"  # or e.g. "zabbix SLA 'ACME weekly'"
    # the timeline, oldest first (older snapshots: none). Not part of equality: two readings of a
    # week are the same figures whether or not one of them carries the timeline
    outages: tuple[OutageEvent, ...] = field(default=(), compare=False)
    # the technical report's detail: every monitored device (older snapshots: none). Not part of
    # equality, like the timeline: the figures above are the same with or without it
    devices: tuple[DeviceUptime, ...] = field(default=(), compare=False)


#: A ticket's SLA verdict in the technical report. Closed in the period: "met" / "missed" (the
#: PSA's verdict, else closed <= resolve_by), "no_target" (no target and no verdict: counted as
#: met), "excluded" (the PSA keeps it out of SLA measurement). Open at period end: "breached" (past
#: its target then, the PSA's own verdict where it gives one), "within" (not yet), "excluded".
TicketVerdict = Literal["met", "missed", "no_target", "excluded", "breached", "within"]


@dataclass(frozen=True)
class TicketItem:
    """One service ticket of the technical report: opened in the period, closed in it, or open at
    its end. ``closed`` is None when the ticket was still open at period end (a later close is
    not this period's); ``age_hours`` = (closed, else period end) − created, elapsed hours."""

    id: str
    title: str
    priority: str
    created: datetime
    closed: datetime | None
    age_hours: float
    sla: TicketVerdict
    resolve_by: datetime | None = None


@dataclass(frozen=True)
class Tickets:
    opened: int
    closed: int
    backlog: int
    sla_breaches: int
    sla_attainment_pct: float | None  # None when no ticket closed in the period
    by_priority: dict[str, int]  # priority name -> tickets opened in the period
    target_pct: float = 90.0
    # open tickets whose PSA status says the next move is the customer's, oldest first ("Next week");
    # None: the source does not say which tickets wait (e.g. Halo without waiting_status_ids)
    waiting: tuple[WaitingTicket, ...] | None = ()
    # the technical report's detail: every ticket behind the figures above, oldest first (older
    # snapshots: none); not part of equality
    items: tuple[TicketItem, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class WaitingTicket:
    """An open ticket the PSA says waits on the customer (its status as read, not as at period end)."""

    id: str
    title: str
    created: datetime
    # the PSA's own word for it ("Waiting on Client" in ConnectWise, "status 4" from Halo's id): kept
    # in the snapshot, never on the customer's page and never compared (one ticket read two ways is one)
    status: str = field(default="", compare=False)


@dataclass(frozen=True)
class Change:
    id: str
    title: str
    closed_at: datetime


@dataclass(frozen=True)
class PlannedChange:
    """A change ticket not yet done at period end, scheduled to start in the period after it."""

    id: str
    title: str
    start: datetime


@dataclass(frozen=True)
class Changes:
    count: int
    items: tuple[Change, ...]
    planned: tuple[PlannedChange, ...] = ()  # scheduled for the next period, soonest first ("Next week")


@dataclass(frozen=True)
class ProtectedItem:
    name: str
    last_success: datetime | None
    rpo_hours: float | None
    status: BackupStatus
    runs_ok: int = 0
    runs_warning: int = 0
    runs_failed: int = 0
    last_offsite: datetime | None = None  # newest copy offsite at or before period end, where the source has one
    verified: bool | None = (
        None  # restore test (e.g. Datto screenshot) of the newest verified point passed; None: no signal
    )
    verified_at: datetime | None = None  # when that restore test ran
    # when its newest run (of any outcome) ended, at or before the period end (not part of equality)
    last_run: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BackupRunItem:
    """One backup run (job session, snapshot) that finished in the period: the runs the success
    rate counts. ``recovery_point``: what a restore from it returns to (None for a failed run)."""

    item: str
    ended: datetime
    status: str  # "success" | "warning" | "failed"
    recovery_point: datetime | None = None


@dataclass(frozen=True)
class Backups:
    success_rate_pct: float | None  # None when no run finished in the period (or no run history)
    protected: tuple[ProtectedItem, ...]
    runs_total: int = 0
    runs_warning: int = 0
    run_history: bool = True  # False: the source keeps no per-run history (e.g. Veeam VSPC): no success rate
    # the technical report's detail: every run counted in runs_total, oldest first (older
    # snapshots, and sources without run history: none); not part of equality
    runs: tuple[BackupRunItem, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class OpenIncident:
    id: str
    title: str
    severity: str  # high | medium | low | informational
    created: datetime


@dataclass(frozen=True)
class IncidentItem:
    """One security incident of the technical report: created in the period or open at its end.
    ``resolved``: when the source says it was resolved, if before period end (else None: open
    then); ``status``: the source's own status word as read (now, not as at period end)."""

    id: str
    title: str
    severity: str  # high | medium | low | informational
    created: datetime
    resolved: datetime | None
    status: str = ""


@dataclass(frozen=True)
class Security:
    incidents_new: int
    incidents_open: int
    by_severity: dict[str, int]  # high, medium, low, informational -> new incidents
    secure_score_pct: float | None
    secure_score_change: float | None
    open_items: tuple[OpenIncident, ...] = ()
    score_note: str | None = None  # why there is no Secure Score figure, when the source says (e.g. a 206 answer)
    # the technical report's detail: every incident behind incidents_new and incidents_open,
    # oldest first (older snapshots: none); not part of equality
    incidents: tuple[IncidentItem, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class SiteCheck:
    name: str
    availability_pct: float | None  # None only when basis is "current_status"
    downtime_minutes: float | None
    status_now: str | None = None  # the check's current state, when that is all the source could give


SiteBasis = Literal["period", "current_status"]


@dataclass(frozen=True)
class Sites:
    checks: tuple[SiteCheck, ...]
    target_pct: float = 99.5
    basis: SiteBasis = "period"  # "current_status": the week's history could not be read (see note)
    note: str | None = None  # why the fallback was used
    outages: tuple[OutageEvent, ...] = field(default=(), compare=False)  # each check's unhealthy spells


SectionData = Uptime | Tickets | Changes | Backups | Security | Sites


@dataclass(frozen=True)
class Section:
    """A section of the report: its data when ``status == "ok"``, the reason otherwise."""

    name: SectionName
    status: Literal["ok", "unavailable"]
    source: str
    as_of: datetime
    data: SectionData | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Flag:
    """One finding. ``code`` is the main flag code (shared/design.md); when related flags on one
    fact were merged into this item, ``codes`` holds every code it stands for (``code`` first)."""

    code: str
    severity: Severity
    section: str
    message: str
    codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.codes:
            object.__setattr__(self, "codes", (self.code,))


#: The report's variants: "executive" for the CTO / owner, "technical" for the customer's IT
#: manager (the executive report plus every device, ticket, backup run, incident and check).
Variant = Literal["executive", "technical"]
VARIANTS: tuple[Variant, ...] = ("executive", "technical")


def technical(report: Report) -> Report:
    """The technical variant of ``report``: the same figures, rendered with their detail."""
    return replace(report, audience="technical")


#: flags about our data or our history, not the customer's services: never "items needing attention"
INTERNAL_FLAG_CODES = frozenset({"no_baseline", "data_unavailable"})


def customer_flags(flags: tuple[Flag, ...]) -> tuple[Flag, ...]:
    """The findings the customer should care about (what their report lists and counts)."""
    return tuple(f for f in flags if f.code not in INTERNAL_FLAG_CODES)


@dataclass(frozen=True)
class CustomerRef:
    code: str
    name: str
    timezone: str
    contact_name: str = ""  # the customer's named contact at the MSP (``account_engineer``), if configured
    contact_email: str = ""


@dataclass(frozen=True)
class Commentary:
    text: str
    author: str
    at: datetime


@dataclass(frozen=True)
class Report:
    customer: CustomerRef
    period: Period
    sections: dict[str, Section]
    flags: tuple[Flag, ...]
    generated_at: datetime
    summary: tuple[str, ...] = ()  # executive-summary sentences, plain language
    recommendations: tuple[str, ...] = ()  # advice to the customer, each tied to the fact behind it
    history: tuple[WeekPoint, ...] = ()  # previous stored weeks, oldest first, for charts
    commentary: Commentary | None = None
    audience: str = "executive"  # or "technical": the executive report plus the detail behind it (VARIANTS)
    engineer_actions: tuple[str, ...] = ()  # internal to-dos with their technical reason: review card and roll-up only
    partial_as_of: datetime | None = None  # set: the week had not ended when the figures were read (--allow-partial)


@dataclass(frozen=True)
class WeekPoint:
    """A few figures of one stored week, for trend charts."""

    period_end: date
    uptime_pct: float | None
    tickets_opened: int | None
    tickets_closed: int | None
    backlog: int | None
    # later additions (older snapshots' history lacks them: None)
    secure_score_pct: float | None = None
    sla_attainment_pct: float | None = None
    sla_breaches: int | None = None
    backup_success_pct: float | None = None
    incidents_new: int | None = None
    uptime_target_pct: float | None = None


__all__ = [
    "SECTION_NAMES",
    "SECTION_TITLES",
    "SEVERITY_ORDER",
    "Backups",
    "BackupRunItem",
    "Change",
    "Changes",
    "PlannedChange",
    "Commentary",
    "CustomerRef",
    "DeviceUptime",
    "DownSpell",
    "INTERNAL_FLAG_CODES",
    "Flag",
    "IncidentItem",
    "OpenIncident",
    "OutageEvent",
    "Period",
    "ProtectedItem",
    "Report",
    "Section",
    "SectionData",
    "Security",
    "SiteCheck",
    "Sites",
    "TicketItem",
    "TicketVerdict",
    "Tickets",
    "VARIANTS",
    "Variant",
    "WaitingTicket",
    "Uptime",
    "UptimeGroup",
    "WeekPoint",
    "customer_flags",
    "technical",
]


@dataclass(frozen=True)
class Branding:
    """The MSP's look on the cover and in headers (``[msp]`` in the config)."""

    msp_name: str
    brand_color: str = "#1F4E79"  # hex
    logo_path: str | None = None
    test: bool = False  # a test send (bot.test_send): "TEST" on the cover and on every page


@dataclass(frozen=True)
class Targets:
    """The customer's targets, resolved from config (customer entry, else ``[thresholds]``).

    Connectors use them where a section carries its target (a source's own SLA target, such as
    a Zabbix SLO, takes precedence for uptime)."""

    uptime_pct: float = 99.5
    ticket_sla_pct: float = 90.0
    site_pct: float = 99.5
    backup_stale_hours: float = 48.0

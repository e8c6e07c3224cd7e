"""The sandbox MSP: twelve customers, six weeks of source records, the planted scenarios.

Deterministic: the records of a customer-week are a pure function of the customer, the week
and the anchor (the Monday that ends the "this week" in which the scenarios are planted). The
records are vendor-neutral (``reporting.metrics``); the in-process sandbox connector maps them
to sections, and the vendors' loopback simulators serve the same records in their wire formats.

Planted in the anchor week (see shared/design.md, "Sandbox"):
ACME uptime −4 points · GLOBEX backup last good 60 h before end · INITECH open high incident ·
UMBRELLA tickets +40 % with growing backlog · HOOLI's Zabbix fails · STARK site down 2 h ·
WAYNE quiet · WONKA backup failed · CYBERDYNE secure score −8 points · TYRELL onboarded this
week · SOYLENT 40 changes · MASSIVE ticket SLA attainment below target (for weeks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from connectors.registry import SYSTEMS
from reporting.metrics import (
    BackupRun,
    Device,
    IncidentRecord,
    Outage,
    ScoreSnapshot,
    SiteCheckRecord,
    TicketRecord,
)
from reporting.period import zone

MSP_NAME = "Northwind Managed Services"
MSP_TIMEZONE = "Europe/London"
HISTORY_WEEKS = 5  # weeks of history before the anchor week

SYSTEM_SECTIONS: dict[str, tuple[str, ...]] = {name: tuple(sorted(s.sections)) for name, s in SYSTEMS.items()}
"""system -> the sections it feeds (from the one registry)."""

PRIORITIES = (("Critical", 4, 0.05), ("High", 8, 0.15), ("Medium", 24, 0.45), ("Low", 72, 0.35))
CLASSES = ("firewall", "switch", "server", "wireless")

CHANGE_TITLES = (
    "Firmware update on {dev}",
    "Patch Tuesday rollout, server ring {n}",
    "Rotate service-account password for backup agent",
    "Add VLAN {n} for guest Wi-Fi",
    "Renew TLS certificate for portal",
    "Decommission legacy print server",
    "Update firewall rule set (change {n})",
    "Migrate shared mailbox to Exchange Online",
    "Increase datastore size on {dev}",
    "Enable MFA registration campaign",
)
INCIDENT_TITLES = (
    ("informational", "Unusual volume of file downloads"),
    ("low", "Atypical travel sign-in (resolved as VPN)"),
    ("low", "Suspicious PowerShell command line"),
    ("medium", "Mailbox rule created: forward to <external> & delete"),
    ("medium", "Malware detected and quarantined on endpoint"),
)
NEXT_WEEK_CHANGES = (
    "Monthly security patching, {dev}",
    "Firmware upgrade, {dev}",
    "Certificate renewal on {dev}",
)
WAITING_STATUS = "Waiting on Client"  # ConnectWise's status name; the Halo simulator serves its status id
WAITING_SUBJECT = "New starter laptop: please approve the quote"

#: The MSP's service desk (the sandbox's PSA users): (id, identifier, name, tier). Tier 2 is where
#: escalated tickets go. One roster serves both PSAs, as the same people would work in either.
TECHNICIANS = (
    (11, "asmith", "Alice Smith", 1),
    (12, "bjones", "Ben Jones", 1),
    (13, "cpatel", "Chitra Patel", 1),
    (14, "dnguyen", "Duc Nguyen", 1),
    (15, "ekowalski", "Ewa Kowalski", 2),
    (16, "fobrien", "Finn O'Brien", 2),
)
AUTOMATION_MEMBER = "RewstAPI"  # the ConnectWise API member an automation platform closes tickets as
#: The customer survey the sandbox MSP's ConnectWise sends on closed tickets: (question, type,
#: options as (caption, points)); the free-text question scores nothing. Its maximum is 5 + 5 = 10.
_SATISFACTION = (("Very satisfied", 5), ("Satisfied", 4), ("Neutral", 3), ("Dissatisfied", 1), ("Very dissatisfied", 0))
SURVEY_QUESTIONS: tuple[tuple[str, str, tuple[tuple[str, int], ...]], ...] = (
    ("How satisfied are you with how your request was resolved?", "Selection", _SATISFACTION),
    ("How satisfied are you with how quickly it was resolved?", "Selection", _SATISFACTION),
    ("Anything you would like to tell us?", "TextBox", ()),
)
#: a feedback score (1 best .. 4 worst) → the option indices its answer may pick per scored question
_SURVEY_PICKS = {1: ((0, 0), (0, 1)), 2: ((1, 1), (1, 0), (0, 2)), 3: ((2, 3), (3, 2), (3, 3)), 4: ((4, 4), (3, 4))}


def survey_answer(code: str, ticket_id: str, score: int) -> tuple[int, ...]:
    """The option index a customer picked on each scored question of ``SURVEY_QUESTIONS`` for
    a ticket they rated ``score`` (1, 2: 7 or more of 10 points, positive; 3, 4: 4 or fewer,
    negative), drawn from a stream of its own (``<code>:survey:<ticket id>``)."""
    rng = random.Random(f"{code}:survey:{ticket_id}")  # noqa: S311 - seeded demo data, not security
    picks = _SURVEY_PICKS[score]
    return picks[rng.randrange(len(picks))]


#: The subject's category (ConnectWise type/subtype, Halo category_1), for "recurring patterns".
TICKET_CATEGORIES = {
    "Password reset": "Accounts / Password reset",
    "Printer offline": "Hardware / Printer",
    "New starter laptop": "Requests / New starter",
    "VPN not connecting": "Network / VPN",
    "Shared drive permissions": "Accounts / Permissions",
    "Outlook keeps asking for password": "Email / Outlook",
    "Teams audio issue": "Collaboration / Teams",
    "Request software install": "Requests / Software",
    WAITING_SUBJECT: "Requests / New starter",
}

TICKET_SUBJECTS = (
    "Password reset",
    "Printer offline",
    "New starter laptop",
    "VPN not connecting",
    "Shared drive permissions",
    "Outlook keeps asking for password",
    "Teams audio issue",
    "Request software install",
)


@dataclass(frozen=True)
class SandboxCustomer:
    code: str
    name: str
    domain: str
    timezone: str
    stack: dict[str, str]  # section -> system
    sites: tuple[str, ...]
    devices_per_site: int
    tickets_per_week: int
    changes_per_week: int
    protected: tuple[str, ...]
    checks: tuple[str, ...]
    score_base: float = 62.0  # Secure Score percentage
    onboarded_weeks_ago: int = HISTORY_WEEKS + 3
    ids: dict[str, str] = field(default_factory=dict)  # system -> id in that system


def _stack(uptime: str, psa: str, backup: str, security: str, sites: str) -> dict[str, str]:
    return {"uptime": uptime, "tickets": psa, "changes": psa, "backups": backup, "security": security, "sites": sites}


def _customer(
    code: str, name: str, domain: str, tz: str, stack: dict[str, str], n: int, **kw: object
) -> SandboxCustomer:
    short = code.lower()
    sites = kw.pop("sites", ("Head office", "Data centre", "Branch"))
    protected = kw.pop("protected", tuple(f"{code}-{s}" for s in ("DC01", "FS01", "SQL01", "APP01")))
    checks = kw.pop("checks", (f"www.{domain}", f"portal.{domain}"))
    ids = {
        "zabbix": f"Customers/{name}",
        "librenms": f"{100 + n}",
        "connectwise": f"{250 + n}",
        "halo": f"{40 + n}",
        "datto": f"{70400 + n}",  # Datto organizationId of the customer
        "veeam": f"{code}-",  # VBR job-name prefix of the customer
        "defender": f"{n:08d}-0000-4000-8000-{n:012d}",
        "sentinel": f"/subscriptions/{n:08d}-1111-4111-8111-{n:012d}/resourceGroups/rg-{short}-soc"
        f"/providers/Microsoft.OperationalInsights/workspaces/law-{short}",
        "cloudflare": f"{n:032x}",
        "statuscheck": domain,
    }
    return SandboxCustomer(
        code=code,
        name=name,
        domain=domain,
        timezone=tz,
        stack=stack,
        sites=sites,  # type: ignore[arg-type]  # from **kw (object): tuples of str
        protected=protected,  # type: ignore[arg-type]  # from **kw (object): tuples of str
        checks=checks,  # type: ignore[arg-type]  # from **kw (object): tuples of str
        ids={s: ids[s] for s in set(stack.values())},
        **kw,  # type: ignore[arg-type]  # the table's other fields, by name
    )


ZCCDC = _stack("zabbix", "connectwise", "datto", "defender", "cloudflare")

CUSTOMERS: tuple[SandboxCustomer, ...] = (
    _customer(
        "ACME",
        "Acme Manufacturing",
        "acme.example",
        "Europe/London",
        ZCCDC,
        1,
        sites=("Head office", "Leeds plant", "Data centre"),
        devices_per_site=4,
        tickets_per_week=28,
        changes_per_week=4,
    ),
    _customer(
        "GLOBEX",
        "Globex Corporation",
        "globex.example",
        "Europe/London",
        ZCCDC,
        2,
        devices_per_site=5,
        tickets_per_week=35,
        changes_per_week=5,
    ),
    _customer(
        "INITECH",
        "Initech",
        "initech.example",
        "America/New_York",
        _stack("zabbix", "connectwise", "veeam", "defender", "cloudflare"),
        3,
        devices_per_site=4,
        tickets_per_week=24,
        changes_per_week=3,
    ),
    _customer(
        "UMBRELLA",
        "Umbrella Health",
        "umbrella.example",
        "Europe/London",
        _stack("librenms", "connectwise", "datto", "defender", "statuscheck"),
        4,
        devices_per_site=6,
        tickets_per_week=40,
        changes_per_week=4,
    ),
    _customer(
        "HOOLI",
        "Hooli",
        "hooli.example",
        "Europe/London",
        ZCCDC,
        5,
        devices_per_site=5,
        tickets_per_week=30,
        changes_per_week=4,
    ),
    _customer(
        "STARK",
        "Stark Industries",
        "stark.example",
        "Europe/London",
        ZCCDC,
        6,
        devices_per_site=4,
        tickets_per_week=26,
        changes_per_week=3,
    ),
    _customer(
        "WAYNE",
        "Wayne Enterprises",
        "wayne.example",
        "Europe/London",
        ZCCDC,
        7,
        devices_per_site=4,
        tickets_per_week=22,
        changes_per_week=3,
    ),
    _customer(
        "WONKA",
        "Wonka Confectionery",
        "wonka.example",
        "Europe/Berlin",
        _stack("librenms", "halo", "veeam", "sentinel", "statuscheck"),
        8,
        devices_per_site=3,
        tickets_per_week=20,
        changes_per_week=2,
    ),
    _customer(
        "CYBERDYNE",
        "Cyberdyne Systems",
        "cyberdyne.example",
        "Europe/London",
        _stack("zabbix", "halo", "datto", "defender", "cloudflare"),
        9,
        devices_per_site=5,
        tickets_per_week=30,
        changes_per_week=4,
        score_base=71.0,
    ),
    _customer(
        "TYRELL",
        "Tyrell Corporation",
        "tyrell.example",
        "Australia/Sydney",
        _stack("zabbix", "halo", "veeam", "defender", "cloudflare"),
        10,
        devices_per_site=3,
        tickets_per_week=18,
        changes_per_week=6,
        onboarded_weeks_ago=0,
    ),
    _customer(
        "SOYLENT",
        "Soylent Foods",
        "soylent.example",
        "Europe/London",
        _stack("librenms", "halo", "datto", "sentinel", "statuscheck"),
        11,
        devices_per_site=4,
        tickets_per_week=30,
        changes_per_week=5,
    ),
    _customer(
        "MASSIVE",
        "Massive Dynamic",
        "massive.example",
        "America/Los_Angeles",
        _stack("librenms", "halo", "veeam", "sentinel", "statuscheck"),
        12,
        devices_per_site=5,
        tickets_per_week=45,
        changes_per_week=3,
    ),
)

# A customer the sources know but the configuration does not map: must be reported, not dropped.
UNMAPPED = _customer(
    "INITRODE",
    "Initrode Ltd",
    "initrode.example",
    "Europe/London",
    ZCCDC,
    13,
    devices_per_site=2,
    tickets_per_week=5,
    changes_per_week=1,
)


def synthetic_customers(n: int) -> tuple[SandboxCustomer, ...]:
    """``n`` extra quiet customers with mixed stacks, for benchmarks."""
    out = []
    for i in range(n):
        rng = random.Random(f"synthetic:{i}")  # noqa: S311 - seeded synthetic demo data, not security
        stack = _stack(
            rng.choice(("zabbix", "librenms")),
            rng.choice(("connectwise", "halo")),
            rng.choice(("datto", "veeam")),
            rng.choice(("defender", "sentinel")),
            rng.choice(("cloudflare", "statuscheck")),
        )
        code = f"SYN{i + 1:04d}"
        out.append(
            _customer(
                code,
                f"Synthetic Customer {i + 1}",
                f"syn{i + 1}.example",
                MSP_TIMEZONE,
                stack,
                100 + i,
                devices_per_site=rng.randint(2, 8),
                tickets_per_week=rng.randint(10, 60),
                changes_per_week=rng.randint(1, 8),
            )
        )
    return tuple(out)


def _trunc(v: object) -> object:
    if isinstance(v, datetime):
        return v.replace(microsecond=0)
    if isinstance(v, tuple):
        return tuple(_trunc(x) for x in v)
    return v


def _whole_seconds(records: list[Any]) -> tuple[Any, ...]:
    """Records with every time cut to whole seconds, as vendors' APIs give them (epoch
    seconds, ISO without fractions), so a simulator's wire format loses nothing."""
    return tuple(replace(r, **{f.name: _trunc(getattr(r, f.name)) for f in fields(r)}) for r in records)


@dataclass(frozen=True)
class DeskFacts:
    """What the MSP's own service-desk summary needs of a service ticket beyond the customer
    report's ``TicketRecord``: drawn from a random stream of its own (``<code>:desk:<ticket id>``),
    so the customer report's records and numbers are exactly what they were before."""

    technician: int | None  # TECHNICIANS id of the owner / assigned agent; None = unassigned
    first_response: datetime | None  # when the desk first responded; None = not yet
    category: str
    escalated: bool  # handed to tier 2 (ConnectWise escalationLevel 1, Halo team "2nd Line")
    closed_by_automation: bool  # closed by the automation API member (ConnectWise closedBy)
    feedback_score: int | None  # Halo feedback, 1 (best) .. 4 (worst); None = no feedback given
    feedback_at: datetime | None


def _desk_facts(code: str, n: int, t: TicketRecord) -> DeskFacts:
    rng = random.Random(f"{code}:desk:{t.id}")  # noqa: S311 - seeded demo data, not security
    tier1 = [x for x in TECHNICIANS if x[3] == 1]
    primary, secondary = tier1[n % len(tier1)], tier1[(n + 1) % len(tier1)]
    weights = [6 if x is primary else 3 if x is secondary else 1 for x in tier1]
    tech: int | None = rng.choices(tier1, weights)[0][0]
    # a first-line technician keeps owning what they escalate (its escalation level / team says
    # it went to second line); second line also takes some critical tickets directly
    # each first-line technician escalates at their own rate (4, 8, 12, 16 % of routine tickets)
    routine = 0.04 * (1 + tier1.index(next(x for x in tier1 if x[0] == tech)))
    escalated = rng.random() < (0.30 if t.priority in ("Critical", "High") else routine)
    if t.priority == "Critical" and not escalated and rng.random() < 0.5:
        tech = TECHNICIANS[4 + (n + int(t.id)) % 2][0]
    if t.closed is None and not escalated and rng.random() < 0.15:
        tech = None  # still in the queue, nobody's yet
    hours = next((h for name, h, _ in PRIORITIES if name == t.priority), 24)
    response: datetime | None = t.created + timedelta(hours=rng.uniform(0.05, min(hours / 4, 4.0) * 1.2))
    if t.closed is not None and response is not None and response > t.closed:
        response = t.closed
    if t.closed is None and tech is None:
        response = None
    category = TICKET_CATEGORIES.get(t.title, "Other")
    automated = t.closed is not None and not escalated and category.endswith("Password reset") and rng.random() < 0.6
    score = at = None
    if t.closed is not None and rng.random() < 0.35:
        score = rng.choices((1, 2, 3, 4), (45, 35, 12, 8))[0]
        at = t.closed + timedelta(hours=rng.uniform(1, 30))
    return DeskFacts(
        technician=tech,
        first_response=None if response is None else response.replace(microsecond=0),
        category=category,
        escalated=escalated,
        closed_by_automation=automated,
        feedback_score=score,
        feedback_at=None if at is None else at.replace(microsecond=0),
    )


class _Gen:
    """Records of one customer over the whole sandbox horizon (cached on first use)."""

    def __init__(self, c: SandboxCustomer, anchor_end: date):
        self.c = c
        self.z = zone(c.timezone)
        self.anchor_end = anchor_end
        self.first_week = -(min(c.onboarded_weeks_ago, HISTORY_WEEKS + 3))

    # week k: 0 = anchor week, -1 = the week before...
    def week_start(self, k: int) -> datetime:
        return datetime.combine(self.anchor_end + timedelta(weeks=k - 1), time(0), tzinfo=self.z)

    def at(self, k: int, day: int, hour: float) -> datetime:
        """Local wall time ``hour`` on weekday ``day`` (0 = Monday) of week ``k``."""
        d = self.anchor_end + timedelta(weeks=k - 1, days=day)
        return datetime.combine(d, time(0), tzinfo=self.z) + timedelta(hours=hour)

    def rng(self, k: int, kind: str) -> random.Random:
        return random.Random(f"{self.c.code}:{self.week_start(k).date().isoformat()}:{kind}")  # noqa: S311 - demo data

    @property
    def weeks(self) -> range:
        return range(self.first_week, 1)

    @property
    def onboarded(self) -> datetime:
        return self.week_start(self.first_week)

    # -- monitoring
    @cached_property
    def devices(self) -> tuple[Device, ...]:
        out = []
        for s_i, site in enumerate(self.c.sites):
            for d_i in range(self.c.devices_per_site):
                cls = CLASSES[(s_i + d_i) % len(CLASSES)]
                name = f"{self.c.code.lower()}-{site.split()[0].lower()}-{cls[:2]}{d_i + 1:02d}"
                out.append(Device(id=f"{self.c.code}-{s_i}-{d_i}", name=name, site=site, device_class=cls))
        return tuple(out)

    @cached_property
    def outages(self) -> tuple[Outage, ...]:
        out: list[Outage] = []
        for k in self.weeks:
            rng = self.rng(k, "outages")
            # one maintenance window a week on one device, during which it also reboots
            dev = self.devices[rng.randrange(len(self.devices))]
            m0 = self.at(k, 6, 2)
            out.append(Outage(dev.id, m0, m0 + timedelta(hours=2), planned=True))
            out.append(Outage(dev.id, m0 + timedelta(minutes=20), m0 + timedelta(minutes=35)))
            for d in self.devices:
                if rng.random() < 0.15:
                    t0 = self.at(k, rng.randrange(7), rng.uniform(0, 23))
                    out.append(Outage(d.id, t0, t0 + timedelta(minutes=rng.uniform(3, 25))))
            if k == 0 and self.c.code == "ACME":
                # Leeds plant loses its WAN circuit: every device there unreachable for 20 h 12 min
                t0 = self.at(0, 2, 6)
                for d in self.devices:
                    if d.site == "Leeds plant":
                        out.append(Outage(d.id, t0, t0 + timedelta(hours=20, minutes=12)))
        return _whole_seconds(out)

    # -- PSA
    @cached_property
    def tickets(self) -> tuple[TicketRecord, ...]:
        out: list[TicketRecord] = []
        seq = 0
        for k in self.weeks:
            rng = self.rng(k, "tickets")
            n = round(self.c.tickets_per_week * rng.uniform(0.93, 1.07))
            extra = round(self.c.tickets_per_week * 0.4) if (k == 0 and self.c.code == "UMBRELLA") else 0
            misses = round(n * 0.19) if self.c.code == "MASSIVE" else 1
            for i in range(n + extra):
                seq += 1
                r = rng.random()
                acc = 0.0
                prio, hours = PRIORITIES[-1][:2]
                for p_name, p_hours, share in PRIORITIES:
                    acc += share
                    if r <= acc:
                        prio, hours = p_name, p_hours
                        break
                if i >= n:  # UMBRELLA's surge: low-priority requests still open at week end
                    prio, hours = "Low", 72
                    created = self.at(k, rng.choice((4, 5, 6)), rng.uniform(0, 22))
                else:
                    created = self.at(k, rng.randrange(7), rng.uniform(7, 19))
                due = created + timedelta(hours=hours)
                if i >= n:
                    closed = None
                elif i < misses:
                    # a miss: created Monday/Tuesday, resolved well past target, inside the week
                    prio, hours = "Medium", 24
                    created = self.at(k, rng.randrange(2), rng.uniform(8, 12))
                    due = created + timedelta(hours=hours)
                    closed = due + timedelta(hours=rng.uniform(2, 10))
                else:
                    closed = created + timedelta(hours=hours * rng.uniform(0.15, 0.85))
                subject = TICKET_SUBJECTS[rng.randrange(len(TICKET_SUBJECTS))]
                out.append(TicketRecord(f"{seq}", subject, prio, created, closed, due))
            n_changes = 40 if (k == 0 and self.c.code == "SOYLENT") else self.c.changes_per_week
            crng = self.rng(k, "changes")
            for j in range(n_changes):
                seq += 1
                dev = self.devices[crng.randrange(len(self.devices))].name
                title = CHANGE_TITLES[crng.randrange(len(CHANGE_TITLES))].format(dev=dev, n=j + 1)
                created = self.at(k, crng.randrange(5), crng.uniform(8, 12))
                closed = created + timedelta(hours=crng.uniform(1, 6))
                out.append(TicketRecord(f"{seq}", title, "Change", created, closed, None, is_change=True))
            if k == 0:
                seq = self._next_week(out, seq)
        return _whole_seconds(out)

    @cached_property
    def desk(self) -> dict[str, DeskFacts]:
        """Service tickets' desk facts by ticket id (see :class:`DeskFacts`)."""
        n = int(self.c.ids.get("connectwise", self.c.ids.get("halo", "0"))) % 100
        return {t.id: _desk_facts(self.c.code, n, t) for t in self.tickets if not t.is_change}

    def _next_week(self, out: list[TicketRecord], seq: int) -> int:
        """The reported week's "Next week": changes scheduled for the week after it (open change
        tickets raised on the Thursday) and, for some customers, tickets waiting on them."""
        rng = self.rng(0, "next-week")
        for day, hour in ((1, 22.0), (3, 21.0))[: 1 + rng.randrange(2)]:
            seq += 1
            dev = self.devices[rng.randrange(len(self.devices))].name
            title = NEXT_WEEK_CHANGES[rng.randrange(len(NEXT_WEEK_CHANGES))].format(dev=dev)
            out.append(
                TicketRecord(
                    f"{seq}",
                    title,
                    "Change",
                    self.at(0, 3, 10),
                    None,
                    None,
                    is_change=True,
                    scheduled=self.at(1, day, hour),
                    status="Scheduled",
                )
            )
        if self.c.code == "UMBRELLA":  # its surge leaves open requests: two of them need the customer's answer
            start = self.at(0, 0, 0)
            surge = [i for i, t in enumerate(out) if t.closed is None and not t.is_change and t.created >= start]
            for i in surge[:2]:
                out[i] = replace(out[i], waiting_on_customer=True, status=WAITING_STATUS)
        if self.c.code in ("ACME", "TYRELL"):  # a request raised on Friday that waits on the customer's approval
            seq += 1
            created = self.at(0, 4, 15)
            out.append(
                TicketRecord(
                    f"{seq}",
                    WAITING_SUBJECT,
                    "Low",
                    created,
                    None,
                    created + timedelta(hours=72),
                    waiting_on_customer=True,
                    status=WAITING_STATUS,
                )
            )
        return seq

    # -- backups
    @cached_property
    def backup_runs(self) -> tuple[BackupRun, ...]:
        out: list[BackupRun] = []
        for k in self.weeks:
            rng = self.rng(k, "backups")
            for item in self.c.protected:
                for day in range(7):
                    point = self.at(k, day, 22)
                    ended = point + timedelta(minutes=rng.uniform(15, 55))
                    status = "warning" if rng.random() < 0.04 else "success"
                    if k == 0 and item == "GLOBEX-FS01" and day >= 4:
                        if day == 4:  # an ad-hoc run Friday noon, then the agent went offline
                            noon = self.at(0, 4, 12)
                            out.append(BackupRun(item, noon + timedelta(minutes=25), "success", noon))
                        continue
                    if k == 0 and item == "WONKA-SQL01" and day == 6:
                        out.append(BackupRun(item, ended, "failed", None))
                        continue
                    out.append(BackupRun(item, ended, status, point))
        return _whole_seconds(out)

    # -- security
    @cached_property
    def incidents(self) -> tuple[IncidentRecord, ...]:
        out: list[IncidentRecord] = []
        seq = 0
        for k in self.weeks:
            rng = self.rng(k, "incidents")
            for _ in range(rng.randint(0, 3)):
                seq += 1
                sev, title = INCIDENT_TITLES[rng.randrange(len(INCIDENT_TITLES))]
                created = self.at(k, rng.randrange(5), rng.uniform(6, 20))
                out.append(IncidentRecord(f"{seq}", title, sev, created, created + timedelta(hours=rng.uniform(1, 20))))
            if k == 0 and self.c.code == "INITECH":
                seq += 1
                created = self.at(0, 4, 14.5)
                out.append(
                    IncidentRecord(
                        f"{seq}",
                        "Suspicious sign-in to finance mailbox followed by inbox rule creation",
                        "high",
                        created,
                        None,
                    )
                )
        return _whole_seconds(out)

    @cached_property
    def scores(self) -> tuple[ScoreSnapshot, ...]:
        out = []
        max_score = 250.0
        pct = self.c.score_base
        for k in self.weeks:
            for day in range(7):
                pct += 0.05
                if k == 0 and self.c.code == "CYBERDYNE" and day == 2:
                    pct -= 8.35  # legacy authentication re-enabled tenant-wide: with the week's +0.35, −8.0 net
                out.append(ScoreSnapshot(self.at(k, day, 1), round(max_score * pct / 100.0, 2), max_score))
        return _whole_seconds(out)

    # -- public sites
    @cached_property
    def checks(self) -> tuple[SiteCheckRecord, ...]:
        out = []
        for name in self.c.checks:
            intervals: list[tuple[datetime, datetime | None]] = []
            for k in self.weeks:
                rng = self.rng(k, f"site:{name}")
                for _ in range(rng.randint(0, 2)):
                    t0 = self.at(k, rng.randrange(7), rng.uniform(0, 23))
                    intervals.append((t0, t0 + timedelta(minutes=rng.uniform(1, 6))))
                if k == 0 and self.c.code == "STARK" and name.startswith("www."):
                    t0 = self.at(0, 1, 13 + 1 / 6)
                    intervals.append((t0, t0 + timedelta(hours=2)))
            out.append(SiteCheckRecord(name, tuple(sorted(intervals, key=lambda iv: iv[0]))))
        return _whole_seconds(out)


class SandboxDataset:
    """The sandbox MSP anchored on ``anchor_end`` (the Monday ending the planted week)."""

    def __init__(self, anchor_end: date, synthetic: int = 0, include_unmapped: bool = True):
        if anchor_end.weekday() != 0:
            raise ValueError(f"anchor_end must be a Monday, not {anchor_end.isoformat()}")
        self.anchor_end = anchor_end
        self.customers: tuple[SandboxCustomer, ...] = CUSTOMERS + synthetic_customers(synthetic)
        self._all = self.customers + ((UNMAPPED,) if include_unmapped else ())
        self._gens: dict[str, _Gen] = {}
        self._by_id: dict[tuple[str, str], SandboxCustomer] = {}
        for c in self._all:
            for system, cid in c.ids.items():
                self._by_id[(system, cid)] = c

    def gen(self, code: str) -> _Gen:
        g = self._gens.get(code)
        if g is None:
            c = next(c for c in self._all if c.code == code)
            g = self._gens[code] = _Gen(c, self.anchor_end)
        return g

    def customer_by_id(self, system: str, cid: str) -> SandboxCustomer | None:
        return self._by_id.get((system, cid))

    def customers_in(self, system: str) -> list[SandboxCustomer]:
        return [c for c in self._all if system in c.ids]

    def fails(self, code: str, system: str, start: datetime) -> bool:
        """The planted outage of a source: HOOLI's Zabbix errors for the anchor week."""
        return code == "HOOLI" and system == "zabbix" and start.date() >= self.anchor_end - timedelta(days=7)

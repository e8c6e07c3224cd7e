"""The MSP's own service-desk summary: records read from the PSAs across all customers, and the
formulas of the internal *owner* and *manager* reports.

These reports are MSP-internal (never sent to a customer). Each PSA connector that can
(``connectwise``, ``halo``) maps its tickets to :class:`DeskTicket` and its survey / feedback
answers to :class:`FeedbackRecord`; what a PSA cannot give is ``None`` with the reason in
:class:`DeskRead`, and is said so in the report, never counted as zero.

All intervals are half-open ``[start, end)``; elapsed times are computed in UTC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from reporting.metrics import TicketRecord, in_period, ticket_met_sla
from reporting.models import Period
from reporting.period import previous_period

UNASSIGNED = "Unassigned"

# ---- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeskTicket:
    """A service ticket as the service-desk summary reads it.

    ``record`` is the customer report's own record of it (dates, SLA verdict); the rest is what the
    PSA says about who worked it. ``None`` means the PSA does not say (not "no")."""

    customer: str  # customer code
    customer_name: str
    system: str  # the PSA ("connectwise" | "halo")
    record: TicketRecord
    technician: str | None  # the owner / assigned agent's name; None = unassigned
    responded: datetime | None  # first response; None = none recorded
    category: str | None  # the PSA's classification (ConnectWise type / subType, Halo category_1)
    escalated: bool | None  # per the PSA's own fields (see the connector); None = not readable
    automated: bool | None  # closed by automation / an API member; None = not measurable here


@dataclass(frozen=True)
class FeedbackRecord:
    """One customer answer to a survey / feedback request about a ticket."""

    customer: str
    customer_name: str
    ticket_id: str
    at: datetime  # what dates it into a period: the answer's date (Halo) or its ticket's close (ConnectWise)
    positive: bool


@dataclass(frozen=True)
class DeskRead:
    """One customer's service-desk data from its PSA for one period."""

    customer: str
    customer_name: str
    system: str
    system_label: str  # the PSA's product name, for the report ("ConnectWise PSA", "HaloPSA")
    tickets: tuple[DeskTicket, ...]
    feedback: tuple[FeedbackRecord, ...] | None  # None: the PSA gives no survey / feedback data
    feedback_note: str = ""  # why there is none, when ``feedback`` is None; else what was left out
    automation_note: str = ""  # why automation is not measurable, when tickets say None
    escalation_rule: str = ""  # how this PSA's escalation is read


# ---- figures -----------------------------------------------------------------------------------


def _hours(a: datetime, b: datetime) -> float:
    return (b.astimezone(UTC) - a.astimezone(UTC)).total_seconds() / 3600.0


def _mean(values: Sequence[float]) -> float | None:
    return None if not values else sum(values) / len(values)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def service(tickets: Iterable[DeskTicket]) -> list[DeskTicket]:
    """Service tickets only: change tickets belong to the changes section, as in the customer report."""
    return [t for t in tickets if not t.record.is_change]


def closed_in(tickets: Iterable[DeskTicket], period: Period) -> list[DeskTicket]:
    return [t for t in service(tickets) if in_period(t.record.closed, period)]


def opened_in(tickets: Iterable[DeskTicket], period: Period) -> list[DeskTicket]:
    return [t for t in service(tickets) if in_period(t.record.created, period)]


@dataclass(frozen=True)
class DeskSummary:
    """The service desk across the customers summed (see :func:`desk_summary` for each formula)."""

    opened: int
    closed: int
    backlog: int
    resolution_rate_pct: float | None
    mean_first_response_hours: float | None
    first_response_measured: int
    mean_resolution_hours: float | None
    sla_attainment_pct: float | None
    sla_measured: int


def desk_summary(tickets: Sequence[DeskTicket], period: Period) -> DeskSummary:
    """Ticket volume, resolution and response times, SLA — service tickets only.

    opened = created in the period; closed = closed in the period; backlog = created before the
    end and not closed before it. resolution_rate_pct = 100 × (opened in the period and closed
    before its end) / opened (None if none opened). mean_first_response_hours = mean of
    (first response − created) over tickets opened in the period whose first response is
    recorded before the period end (None if none). mean_resolution_hours = mean of (closed −
    created) over tickets closed in the period (elapsed hours, not business hours).
    sla_attainment_pct = 100 × met / measured over tickets closed in the period that the PSA
    measures (not excluded from SLA), met by the PSA's own verdict — the customer report's rule.
    """
    svc = service(tickets)
    opened = opened_in(svc, period)
    closed = closed_in(svc, period)
    backlog = sum(
        1 for t in svc if t.record.created < period.end and (t.record.closed is None or t.record.closed >= period.end)
    )
    resolved_of_opened = sum(1 for t in opened if t.record.closed is not None and t.record.closed < period.end)
    responses = [
        _hours(t.record.created, t.responded)
        for t in opened
        if t.responded is not None and t.responded < period.end and t.responded >= t.record.created
    ]
    measured = [t for t in closed if not t.record.sla_excluded]
    met = sum(1 for t in measured if ticket_met_sla(t.record))
    return DeskSummary(
        opened=len(opened),
        closed=len(closed),
        backlog=backlog,
        resolution_rate_pct=_pct(resolved_of_opened, len(opened)),
        mean_first_response_hours=_mean(responses),
        first_response_measured=len(responses),
        mean_resolution_hours=_mean([_hours(t.record.created, t.record.closed) for t in closed if t.record.closed]),
        sla_attainment_pct=_pct(met, len(measured)),
        sla_measured=len(measured),
    )


@dataclass(frozen=True)
class Sentiment:
    """Survey / feedback answers received in the period, from the PSAs that have them."""

    responses: int
    positive_pct: float | None
    negative_customers: tuple[str, ...]  # customer names with at least one negative answer
    covered: tuple[str, ...]  # customer names whose PSA gives feedback
    not_available: tuple[tuple[str, str], ...]  # (customer name, why) for the others
    notes: tuple[tuple[str, str], ...] = ()  # (customer name, note) for covered customers, e.g. answers skipped


def sentiment(reads: Sequence[DeskRead], period: Period) -> Sentiment:
    """% positive = 100 × positive answers / answers of the period (by ``FeedbackRecord.at``: Halo's
    answer date, ConnectWise's ticket close — its answers are about tickets closed in the period);
    negative customers = customers with at least one negative answer in the period. Customers
    whose PSA gives no survey data are listed as not available, never as 0 answers."""
    answers = [f for r in reads if r.feedback is not None for f in r.feedback if in_period(f.at, period)]
    positive = sum(1 for f in answers if f.positive)
    negative = sorted({f.customer_name for f in answers if not f.positive})
    return Sentiment(
        responses=len(answers),
        positive_pct=_pct(positive, len(answers)),
        negative_customers=tuple(negative),
        covered=tuple(r.customer_name for r in reads if r.feedback is not None),
        not_available=tuple((r.customer_name, r.feedback_note) for r in reads if r.feedback is None),
        notes=tuple((r.customer_name, r.feedback_note) for r in reads if r.feedback is not None and r.feedback_note),
    )


@dataclass(frozen=True)
class Automation:
    """Tickets closed by automation, over the customers whose PSA lets it be measured."""

    closed_measured: int  # service tickets closed in the period at customers where it is measurable
    automated: int
    automated_pct: float | None
    measured_customers: tuple[str, ...]
    not_available: tuple[tuple[str, str], ...]  # (customer name, why)


def automation(reads: Sequence[DeskRead], period: Period) -> Automation:
    """automated_pct = 100 × (service tickets closed in the period by automation or an API member) /
    (service tickets closed in the period), over the customers whose PSA marks it; the others are
    "not available from this PSA"."""
    measured = [r for r in reads if all(t.automated is not None for t in service(r.tickets)) and r.tickets]
    closed = [t for r in measured for t in closed_in(r.tickets, period)]
    auto = sum(1 for t in closed if t.automated)
    return Automation(
        closed_measured=len(closed),
        automated=auto,
        automated_pct=_pct(auto, len(closed)),
        measured_customers=tuple(r.customer_name for r in measured),
        not_available=tuple(
            (r.customer_name, r.automation_note or "not available from this PSA") for r in reads if r not in measured
        ),
    )


def top_categories(
    tickets: Sequence[DeskTicket], period: Period, previous: Sequence[DeskTicket], n: int = 5
) -> tuple[tuple[str, int, int], ...]:
    """The ``n`` categories with the most service tickets opened in the period: (category, opened
    this period, opened in the previous period), most first, then by name. Tickets the PSA does
    not classify are left out."""
    prev_period = previous_period(period)
    now = Counter(t.category for t in opened_in(tickets, period) if t.category)
    before = Counter(t.category for t in opened_in(previous, prev_period) if t.category)
    ranked = sorted(now.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return tuple((name, count, before.get(name, 0)) for name, count in ranked)


@dataclass(frozen=True)
class TechnicianRow:
    """One technician's period (see :func:`technicians`)."""

    technician: str
    systems: tuple[str, ...]  # the PSAs their tickets came from
    resolved: int
    mean_resolution_hours: float | None
    escalated: int
    escalation_measured: int
    escalation_rate_pct: float | None


def technician_of(t: DeskTicket) -> str:
    return t.technician or UNASSIGNED


def technicians(tickets: Sequence[DeskTicket], period: Period) -> tuple[TechnicianRow, ...]:
    """Per technician — the ticket's owner / assigned agent as the PSA has it now, by name (one MSP's
    staff: the same name in two PSAs is one person) — over the service tickets closed in the
    period: resolved = their count; mean_resolution_hours = mean of (closed − created) in elapsed
    hours; escalation_rate_pct = 100 × escalated / those whose escalation the PSA says (None when
    it says it for none). Most resolved first, then by name."""
    groups: dict[str, list[DeskTicket]] = {}
    for t in closed_in(tickets, period):
        groups.setdefault(technician_of(t), []).append(t)
    rows = []
    for name, ts in groups.items():
        known = [t for t in ts if t.escalated is not None]
        esc = sum(1 for t in known if t.escalated)
        rows.append(
            TechnicianRow(
                technician=name,
                systems=tuple(sorted({t.system for t in ts})),
                resolved=len(ts),
                mean_resolution_hours=_mean([_hours(t.record.created, t.record.closed) for t in ts if t.record.closed]),
                escalated=esc,
                escalation_measured=len(known),
                escalation_rate_pct=_pct(esc, len(known)),
            )
        )
    return tuple(sorted(rows, key=lambda r: (-r.resolved, r.technician)))


@dataclass(frozen=True)
class Affinity:
    """Technician × customer: service tickets each technician resolved for each customer."""

    technicians: tuple[str, ...]
    customers: tuple[str, ...]  # customer codes
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (technician, customer code) -> n


def affinity(tickets: Sequence[DeskTicket], period: Period) -> Affinity:
    """counts[(technician, customer code)] = service tickets closed in the period owned by that
    technician for that customer; technicians most resolved first, customers by code."""
    counts: Counter[tuple[str, str]] = Counter()
    for t in closed_in(tickets, period):
        counts[(technician_of(t), t.customer)] += 1
    per_tech: Counter[str] = Counter()
    for (tech, _), n in counts.items():
        per_tech[tech] += n
    techs = tuple(sorted(per_tech, key=lambda k: (-per_tech[k], k)))
    customers = tuple(sorted({c for _, c in counts}))
    return Affinity(techs, customers, dict(counts))


@dataclass(frozen=True)
class EscalationTrend:
    """Escalations among service tickets closed: this period and the previous one."""

    this_escalated: int
    this_measured: int
    this_pct: float | None
    previous_escalated: int
    previous_measured: int
    previous_pct: float | None

    @property
    def change_points(self) -> float | None:
        if self.this_pct is None or self.previous_pct is None:
            return None
        return self.this_pct - self.previous_pct


def escalation_trend(tickets: Sequence[DeskTicket], period: Period, previous: Sequence[DeskTicket]) -> EscalationTrend:
    """rate = 100 × escalated / (service tickets closed in the period whose escalation the PSA says),
    for this period and the previous period of the same length; change in percentage points."""

    def rate(ts: Sequence[DeskTicket], p: Period) -> tuple[int, int]:
        known = [t for t in closed_in(ts, p) if t.escalated is not None]
        return sum(1 for t in known if t.escalated), len(known)

    e1, m1 = rate(tickets, period)
    e0, m0 = rate(previous, previous_period(period))
    return EscalationTrend(e1, m1, _pct(e1, m1), e0, m0, _pct(e0, m0))


@dataclass(frozen=True)
class CustomerRow:
    code: str
    customer: str
    system_label: str
    summary: DeskSummary
    escalated: int
    escalation_measured: int
    feedback_positive_pct: float | None
    feedback_responses: int | None  # None: the PSA gives no feedback


def customers(reads: Sequence[DeskRead], period: Period) -> tuple[CustomerRow, ...]:
    """Per customer: the :func:`desk_summary` figures, escalations among tickets closed in the
    period, and its feedback (% positive of answers received in the period; None when its PSA has none)."""
    out = []
    for r in reads:
        closed = [t for t in closed_in(r.tickets, period) if t.escalated is not None]
        answers = None if r.feedback is None else [f for f in r.feedback if in_period(f.at, period)]
        out.append(
            CustomerRow(
                code=r.customer,
                customer=r.customer_name,
                system_label=r.system_label,
                summary=desk_summary(r.tickets, period),
                escalated=sum(1 for t in closed if t.escalated),
                escalation_measured=len(closed),
                feedback_positive_pct=None if not answers else _pct(sum(f.positive for f in answers), len(answers)),
                feedback_responses=None if answers is None else len(answers),
            )
        )
    return tuple(sorted(out, key=lambda c: c.code))


# ---- the two reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceDeskReport:
    """Everything the owner and manager reports show (the owner report uses the first part)."""

    msp_name: str
    period: Period
    generated: datetime
    sources: tuple[tuple[str, int], ...]  # (PSA label, how many customers)
    unavailable: tuple[tuple[str, str], ...]  # (customer name, why its PSA could not be read)
    summary: DeskSummary
    previous_summary: DeskSummary
    sla_target_pct: float
    sentiment: Sentiment
    automation: Automation
    categories: tuple[tuple[str, int, int], ...]
    recommendations: tuple[str, ...]
    # manager
    technicians: tuple[TechnicianRow, ...]
    affinity: Affinity
    escalation: EscalationTrend
    escalation_rules: tuple[tuple[str, str], ...]  # (PSA label, how escalation is read there)
    customers: tuple[CustomerRow, ...]


def recommendations(
    summary: DeskSummary,
    previous: DeskSummary,
    target_pct: float,
    senti: Sentiment,
    auto: Automation,
    cats: Sequence[tuple[str, int, int]],
    techs: Sequence[TechnicianRow],
    esc: EscalationTrend,
) -> tuple[str, ...]:
    """Rule-based, from the figures (each rule states its threshold in its sentence):

    - SLA attainment below target;
    - backlog grew by 10 % or more over the previous period's end;
    - mean first response over 1 hour;
    - escalation rate up 5 points or more;
    - one technician resolved over 35 % of all tickets closed (load concentration);
    - a category with 10 % or more of tickets opened (a candidate for automation or a knowledge-base
      article), the largest one;
    - customers with negative feedback (follow up);
    - automation closed under 5 % where measurable.
    """
    out = []
    if summary.sla_attainment_pct is not None and summary.sla_attainment_pct < target_pct:
        out.append(
            f"SLA attainment is {summary.sla_attainment_pct:.1f} %, below the {target_pct:g} % target: review the "
            "tickets that missed their resolution time and the queues they waited in."
        )
    if previous.backlog and summary.backlog >= previous.backlog * 1.10:
        out.append(
            f"The backlog grew from {previous.backlog} to {summary.backlog} open tickets (10 % or more): "
            "schedule time to work it down before it ages into SLA breaches."
        )
    if summary.mean_first_response_hours is not None and summary.mean_first_response_hours > 1.0:
        out.append(
            f"Mean first response is {summary.mean_first_response_hours:.1f} h (over 1 h): check triage cover at "
            "the busiest hours."
        )
    if esc.change_points is not None and esc.change_points >= 5.0:
        out.append(
            f"The escalation rate rose {esc.change_points:.1f} points to {esc.this_pct or 0:.1f} %: look for a "
            "skills or documentation gap in first line."
        )
    total = sum(t.resolved for t in techs)
    busiest = max((t for t in techs if t.technician != UNASSIGNED), key=lambda t: t.resolved, default=None)
    if busiest is not None and total and busiest.resolved / total > 0.35:
        out.append(
            f"{busiest.technician} resolved {100.0 * busiest.resolved / total:.0f} % of all tickets (over 35 %): "
            "spread the load, or make sure someone else can cover their customers."
        )
    if cats and summary.opened and cats[0][1] / summary.opened >= 0.10:
        name, count, _ = cats[0]
        out.append(
            f"{name} is the most frequent category ({count} of {summary.opened} tickets opened): a candidate for "
            "automation, self-service or a knowledge-base article."
        )
    if senti.negative_customers:
        out.append(
            "Negative feedback from " + ", ".join(senti.negative_customers) + ": the account owner should follow up."
        )
    if auto.automated_pct is not None and auto.automated_pct < 5.0:
        out.append(
            f"Automation closed {auto.automated_pct:.1f} % of tickets where it is measured: review the top "
            "categories for scripted fixes."
        )
    if not out:
        out.append("No figure crossed a threshold this period: no action suggested.")
    return tuple(out)


def build_report(
    msp_name: str,
    period: Period,
    reads: Sequence[DeskRead],
    previous: Sequence[DeskRead],
    sla_target_pct: float,
    generated: datetime,
    unavailable: Sequence[tuple[str, str]] = (),
) -> ServiceDeskReport:
    """The owner's and manager's figures from every customer's PSA read, this period and the previous one."""
    prev_period = previous_period(period)
    tickets = [t for r in reads for t in r.tickets]
    prev_tickets = [t for r in previous for t in r.tickets]
    summary = desk_summary(tickets, period)
    prev_summary = desk_summary(prev_tickets, prev_period)
    senti = sentiment(reads, period)
    auto = automation(reads, period)
    cats = top_categories(tickets, period, prev_tickets)
    label_of = {r.system: r.system_label for r in reads}
    techs = tuple(
        replace(t, systems=tuple(sorted({label_of.get(s, s) for s in t.systems}))) for t in technicians(tickets, period)
    )
    esc = escalation_trend(tickets, period, prev_tickets)
    labels = Counter(r.system_label for r in reads)
    rules = {r.system_label: r.escalation_rule for r in reads if r.escalation_rule}
    return ServiceDeskReport(
        msp_name=msp_name,
        period=period,
        generated=generated,
        sources=tuple(sorted(labels.items())),
        unavailable=tuple(unavailable),
        summary=summary,
        previous_summary=prev_summary,
        sla_target_pct=sla_target_pct,
        sentiment=senti,
        automation=auto,
        categories=cats,
        recommendations=recommendations(summary, prev_summary, sla_target_pct, senti, auto, cats, techs, esc),
        technicians=techs,
        affinity=affinity(tickets, period),
        escalation=esc,
        escalation_rules=tuple(sorted(rules.items())),
        customers=customers(reads, period),
    )

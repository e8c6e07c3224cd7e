"""The MSP-internal owner and manager reports: read every customer's PSA, render Markdown (and PDF).

MSP-internal documents: they go to ``OUT/internal/``, to the MSP's own ``[internal_reports]``
addresses and its #weekly-reports channel (``bot.internal_delivery``) — never into a customer's
delivery, channel or archive. Engineer voice is allowed here, but vendor text (technician,
customer and category names) is still neutralised and escaped (``reporting.markdown.md``/``cell``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from reporting.collect import source_timeout
from reporting.config import Config, CustomerConfig
from reporting.markdown import cell, md
from reporting.metrics import SERVICE_DESK_DEFINITIONS
from reporting.models import Period
from reporting.output import write_atomic
from reporting.period import previous_period
from reporting.servicedesk import DeskRead, ServiceDeskReport, build_report
from reporting.sources import ConnectorError

AUDIENCES = ("owner", "manager")
NOT_AVAILABLE = "not available from this PSA"


class DeskSource(Protocol):
    """A PSA connector that can read the service-desk summary's records."""

    async def service_desk(self, customer: CustomerConfig, period: Period) -> DeskRead: ...


async def read_all(
    config: Config, connectors: Mapping[str, object], period: Period
) -> tuple[list[DeskRead], list[DeskRead], list[tuple[str, str]]]:
    """Every configured customer's PSA (its ``tickets`` source), this period and the previous one,
    concurrently, each read under its source's timeout. A customer whose PSA cannot give the
    service-desk records, or fails, is listed with the reason — never counted as zero."""
    prev = previous_period(period)
    unavailable: list[tuple[str, str]] = []
    jobs: list[tuple[CustomerConfig, DeskSource, float]] = []
    for c in config.customers:
        name = c.sources.get("tickets")
        con = connectors.get(name) if name else None
        if name is None or con is None:
            unavailable.append((c.name, "no ticket source configured"))
            continue
        if not hasattr(con, "service_desk"):
            unavailable.append((c.name, f"{NOT_AVAILABLE}: its ticket source does not give technician data"))
            continue
        src: DeskSource = con
        jobs.append((c, src, source_timeout(config, name)))

    async def one(c: CustomerConfig, src: DeskSource, limit: float) -> tuple[DeskRead, DeskRead] | str:
        try:
            async with asyncio.timeout(limit * 2):
                now, before = await asyncio.gather(src.service_desk(c, period), src.service_desk(c, prev))
        except TimeoutError:
            return f"its PSA did not answer within {limit * 2:g} s"
        except ConnectorError as err:
            return f"its PSA could not be read: {err}"
        return now, before

    results = await asyncio.gather(*(one(c, s, t) for c, s, t in jobs))
    reads, previous = [], []
    for (c, _, _), r in zip(jobs, results, strict=True):
        if isinstance(r, str):
            unavailable.append((c.name, r))
        else:
            reads.append(r[0])
            previous.append(r[1])
    return reads, previous, unavailable


def report_for(
    config: Config,
    period: Period,
    reads: Sequence[DeskRead],
    previous: Sequence[DeskRead],
    unavailable: Sequence[tuple[str, str]],
    generated: datetime,
) -> ServiceDeskReport:
    return build_report(
        config.msp.name, period, reads, previous, config.thresholds.ticket_sla_target_pct, generated, unavailable
    )


# ---- Markdown ------------------------------------------------------------------------------------


def _h(value: float | None, unit: str = " h", digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


def _period_line(p: Period) -> str:
    end = p.end.date() - timedelta(days=1)
    return f"Week of {p.start:%a %-d %b} – {end:%a %-d %b %Y} ({p.timezone})"


@dataclass(frozen=True)
class Block:
    """One element of an internal report, before any sink's escaping: ``kind`` is "h1", "h2", "p",
    "ul" (``items``) or "table" (``header``, ``rows``, ``numeric`` column indexes). Markdown and
    PDF render the same blocks, so both say the same thing."""

    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    numeric: tuple[int, ...] = ()


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> Block:
    return Block(
        "table",
        header=tuple(header),
        rows=tuple(tuple(str(v) for v in r) for r in rows),
        numeric=tuple(numeric),
    )


def _grouped(pairs: Sequence[tuple[str, str]]) -> Block:
    """(customer, why) pairs as one bullet per reason: "why — customer, customer"."""
    by_reason: dict[str, list[str]] = {}
    for name, why in pairs:
        by_reason.setdefault(why, []).append(name)
    return Block("ul", items=tuple(f"{', '.join(sorted(names))}: {why}" for why, names in by_reason.items()))


def title(r: ServiceDeskReport, audience: str) -> str:
    return f"{r.msp_name}: service desk — {'Owner' if audience == 'owner' else 'Manager'} report"


def blocks(r: ServiceDeskReport, audience: str) -> list[Block]:
    """The owner report (``audience`` "owner") or the manager report (the owner's plus team
    performance, technician × customer, escalation trend and the per-customer breakdown)."""
    s, prev = r.summary, r.previous_summary
    sources = ", ".join(f"{label} ({n} customer{'s' if n != 1 else ''})" for label, n in r.sources)
    out = [
        Block("h1", title(r, audience)),
        Block("p", f"{_period_line(r.period)}. MSP-internal: not for customers."),
        Block("p", f"Sources: {sources or 'none'}. Generated {r.generated:%Y-%m-%d %H:%M %Z}."),
    ]
    if r.unavailable:
        out += [
            Block("p", "Not included (said, not counted as zero):"),
            Block("ul", items=tuple(f"{name}: {why}" for name, why in r.unavailable)),
        ]
    out += [
        Block("h2", "Service desk summary"),
        _table(
            ("Figure", "This week", "Previous week"),
            [
                ("Tickets opened", s.opened, prev.opened),
                ("Tickets closed", s.closed, prev.closed),
                ("Backlog at week end", s.backlog, prev.backlog),
                ("Resolution rate", _p(s.resolution_rate_pct), _p(prev.resolution_rate_pct)),
                ("Mean first response", _h(s.mean_first_response_hours), _h(prev.mean_first_response_hours)),
                ("Mean resolution time", _h(s.mean_resolution_hours), _h(prev.mean_resolution_hours)),
                (
                    f"SLA attainment (target {r.sla_target_pct:g} %)",
                    _p(s.sla_attainment_pct),
                    _p(prev.sla_attainment_pct),
                ),
            ],
            (1, 2),
        ),
        Block("h2", "Customer sentiment"),
    ]
    senti = r.sentiment
    if senti.covered:
        out.append(
            Block(
                "p",
                f"From {len(senti.covered)} customer(s) whose PSA gives feedback: {senti.responses} answer(s) this "
                f"week, {_p(senti.positive_pct)} positive.",
            )
        )
        negative = ", ".join(senti.negative_customers)
        out.append(
            Block(
                "p", f"Customers with negative answers: {negative}." if negative else "No negative answers this week."
            )
        )
    else:
        out.append(Block("p", f"Customer sentiment: {NOT_AVAILABLE} (no PSA here gives survey or feedback data)."))
    if senti.notes:
        out += [Block("p", "Not counted:"), _grouped(senti.notes)]
    if senti.not_available:
        out += [Block("p", "Not available for:"), _grouped(senti.not_available)]
    auto = r.automation
    out.append(Block("h2", "Automation impact"))
    if auto.measured_customers:
        out.append(
            Block(
                "p",
                f"Closed by automation or an API member: {auto.automated} of {auto.closed_measured} tickets closed "
                f"({_p(auto.automated_pct)}), over {len(auto.measured_customers)} customer(s) where the PSA marks it.",
            )
        )
    else:
        out.append(Block("p", f"Automation impact: {NOT_AVAILABLE}."))
    if auto.not_available:
        out += [Block("p", "Not available for:"), _grouped(auto.not_available)]
    out += [
        Block("h2", "Recurring patterns"),
        _table(
            ("Category", "Opened this week", "Previous week"),
            [(name, n, before) for name, n, before in r.categories] or [("(none)", 0, 0)],
            (1, 2),
        ),
        Block(
            "p",
            "Devices with repeated alerts: not available — the PSA tickets read here do not name the device they "
            "concern, and no monitoring alerts are read for this report.",
        ),
        Block("h2", "Recommendations"),
        Block("ul", items=r.recommendations),
    ]
    if audience == "manager":
        out += _manager_blocks(r)
    out.append(Block("h2", "How to read this report"))
    out.append(
        Block(
            "ul",
            items=tuple(
                f"{figure}: {definition}"
                for aud, figure, definition in SERVICE_DESK_DEFINITIONS
                if aud == "owner" or audience == "manager"
            ),
        )
    )
    return out


def _manager_blocks(r: ServiceDeskReport) -> list[Block]:
    rows = [
        (
            t.technician,
            ", ".join(t.systems),
            t.resolved,
            _h(t.mean_resolution_hours),
            t.escalated if t.escalation_measured else "n/a",
            _p(t.escalation_rate_pct) if t.escalation_measured else NOT_AVAILABLE,
        )
        for t in r.technicians
    ]
    out = [
        Block("h2", "Team performance"),
        _table(
            ("Technician", "PSA", "Resolved", "Average resolution time", "Escalated", "Escalation rate"),
            rows or [("(no tickets closed)", "", 0, "n/a", "n/a", "n/a")],
            (2, 3, 4, 5),
        ),
        Block("p", "Escalation, as each PSA's own fields define it:"),
        Block("ul", items=tuple(f"{label}: {rule}" for label, rule in r.escalation_rules)),
        Block("h2", "Technician × customer"),
    ]
    a = r.affinity
    if a.customers:
        out.append(
            Block(
                "p",
                "Tickets resolved this week by each technician (rows) for each customer (columns, by code: "
                + ", ".join(f"{c.code} {c.customer}" for c in r.customers)
                + ").",
            )
        )
        out.append(
            _table(
                ("Technician", *a.customers),
                [(tech, *(a.counts.get((tech, c), 0) or "" for c in a.customers)) for tech in a.technicians],
                tuple(range(1, len(a.customers) + 1)),
            )
        )
    else:
        out.append(Block("p", "No tickets closed this week."))
    e = r.escalation
    change = "n/a" if e.change_points is None else f"{e.change_points:+.1f} points"
    out += [
        Block("h2", "Escalation trend"),
        _table(
            ("", "This week", "Previous week"),
            [
                (
                    "Escalated / closed",
                    f"{e.this_escalated} / {e.this_measured}",
                    f"{e.previous_escalated} / {e.previous_measured}",
                ),
                ("Escalation rate", _p(e.this_pct), _p(e.previous_pct)),
            ],
            (1, 2),
        ),
        Block("p", f"Change: {change}."),
        Block("h2", "Per customer"),
    ]
    rows2 = []
    for c in r.customers:
        s = c.summary
        fb = (
            NOT_AVAILABLE
            if c.feedback_responses is None
            else f"{_p(c.feedback_positive_pct)} of {c.feedback_responses}"
        )
        rows2.append(
            (
                c.customer,
                c.system_label,
                s.opened,
                s.closed,
                s.backlog,
                _p(s.sla_attainment_pct),
                _h(s.mean_resolution_hours),
                f"{c.escalated} / {c.escalation_measured}",
                fb,
            )
        )
    out.append(
        _table(
            (
                "Customer",
                "PSA",
                "Opened",
                "Closed",
                "Backlog",
                "SLA",
                "Mean resolution",
                "Escalated",
                "Feedback positive",
            ),
            rows2,
            (2, 3, 4, 5, 6, 7),
        )
    )
    return out


def to_markdown(items: Sequence[Block]) -> str:
    """Blocks as Markdown; every value escaped (``md`` / ``cell``)."""
    out: list[str] = []
    for b in items:
        if b.kind == "h1":
            out += [f"# {md(b.text)}", ""]
        elif b.kind == "h2":
            out += [f"## {md(b.text)}", ""]
        elif b.kind == "p":
            out += [md(b.text), ""]
        elif b.kind == "ul":
            out += [f"- {md(item)}" for item in b.items] + [""]
        elif b.kind == "table":
            out.append("| " + " | ".join(cell(h, 60) for h in b.header) + " |")
            out.append("|" + "".join("---:|" if i in b.numeric else "---|" for i in range(len(b.header))))
            out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in b.rows]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def owner_markdown(r: ServiceDeskReport) -> str:
    return to_markdown(blocks(r, "owner"))


def manager_markdown(r: ServiceDeskReport) -> str:
    return to_markdown(blocks(r, "manager"))


@dataclass(frozen=True)
class Headline:
    """The few figures the summaries' email and their #weekly-reports post show (the rest is in
    the PDFs), kept as JSON beside the stored PDFs so a resumed delivery says the same."""

    msp_name: str
    period_end: date
    period_label: str  # "Week of Mon 9 Nov – Sun 15 Nov 2026 (Europe/London)"
    customers: int  # customers whose PSA was read
    unavailable: int  # customers whose PSA could not be read (said in the reports)
    opened: int
    closed: int
    backlog: int
    resolution_rate_pct: float | None
    sla_attainment_pct: float | None
    sla_target_pct: float
    mean_first_response_hours: float | None
    mean_resolution_hours: float | None
    recommendations: tuple[str, ...]

    def figures(self) -> list[tuple[str, str]]:
        """(label, value) rows, as the owner report's summary table words them."""
        return [
            ("Tickets opened / closed", f"{self.opened} / {self.closed}"),
            ("Backlog at week end", str(self.backlog)),
            ("Resolution rate", _p(self.resolution_rate_pct)),
            (f"SLA attainment (target {self.sla_target_pct:g} %)", _p(self.sla_attainment_pct)),
            ("Mean first response", _h(self.mean_first_response_hours)),
            ("Mean resolution time", _h(self.mean_resolution_hours)),
        ]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["period_end"] = self.period_end.isoformat()
        data["recommendations"] = list(self.recommendations)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Headline:
        return cls(
            **{
                **data,
                "period_end": date.fromisoformat(data["period_end"]),
                "recommendations": tuple(data["recommendations"]),
            }
        )


def headline(r: ServiceDeskReport) -> Headline:
    s = r.summary
    return Headline(
        msp_name=r.msp_name,
        period_end=r.period.end_date,
        period_label=_period_line(r.period),
        customers=len(r.customers),
        unavailable=len(r.unavailable),
        opened=s.opened,
        closed=s.closed,
        backlog=s.backlog,
        resolution_rate_pct=s.resolution_rate_pct,
        sla_attainment_pct=s.sla_attainment_pct,
        sla_target_pct=r.sla_target_pct,
        mean_first_response_hours=s.mean_first_response_hours,
        mean_resolution_hours=s.mean_resolution_hours,
        recommendations=tuple(r.recommendations),
    )


def file_name(audience: str, period_end: date) -> str:
    """``owner-<period_end>.pdf`` / ``manager-<period_end>.pdf``: the names :func:`write_reports` writes."""
    return f"{audience}-{period_end.isoformat()}.pdf"


def write_reports(r: ServiceDeskReport, out: Path, pdf: bool = True) -> dict[str, Path]:
    """``OUT/internal/owner-<period_end>.md`` and ``manager-<period_end>.md`` (and ``.pdf``)."""
    folder = out / "internal"
    paths: dict[str, Path] = {}
    end = r.period.end_date.isoformat()
    for audience, text in (("owner", owner_markdown(r)), ("manager", manager_markdown(r))):
        path = folder / f"{audience}-{end}.md"
        write_atomic(path, text)
        paths[f"{audience}.md"] = path
        if pdf:
            from reporting.pdf.internal import render_internal_pdf  # ReportLab kept off the import path

            pdf_path = folder / f"{audience}-{end}.pdf"
            write_atomic(pdf_path, render_internal_pdf(r, audience))
            paths[f"{audience}.pdf"] = pdf_path
    return paths

"""The roll-up: one line per customer — status colour, top risk, action required —
customers with high-severity flags first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from reporting import fmt
from reporting.markdown import cell, md
from reporting.models import SEVERITY_ORDER, Report

STATUS = {"red": "🔴 red", "amber": "🟠 amber", "green": "🟢 green"}


@dataclass(frozen=True)
class RollupRow:
    code: str
    name: str
    status: str  # red | amber | green
    top_risk: str
    action: str
    flags: tuple[str, ...]


def rollup_rows(reports: Iterable[Report]) -> list[RollupRow]:
    rows = []
    for r in reports:
        risky = [f for f in r.flags if f.code != "no_baseline"]
        worst = min((SEVERITY_ORDER[f.severity] for f in risky), default=3)
        status = "red" if worst == 0 else "amber" if worst == 1 else "green"
        top = risky[0].message if risky else "No risks this week."
        action = r.recommendations[0] if risky and r.recommendations else "None."
        rows.append(RollupRow(r.customer.code, r.customer.name, status, top, action, tuple(f.code for f in r.flags)))
    order = {"red": 0, "amber": 1, "green": 2}
    return sorted(rows, key=lambda row: (order[row.status], row.code))


def rollup_markdown(rows: list[RollupRow], msp_name: str, period_end: date, unmapped: Iterable[str] = ()) -> str:
    red = sum(1 for r in rows if r.status == "red")
    amber = sum(1 for r in rows if r.status == "amber")
    lines = [
        f"# Weekly roll-up — {fmt.week_ending(period_end)}",
        "",
        f"{md(msp_name)} · {len(rows)} customers · {red} red · {amber} amber · {len(rows) - red - amber} green",
        "",
        "| Status | Customer | Top risk | Action required | Flags |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {STATUS[r.status]} | **{cell(r.code)}** {cell(r.name)} | {cell(r.top_risk, 300)} | {cell(r.action, 300)} | "
            f"{cell(', '.join(r.flags) or '—')} |"
        )
    unmapped = list(unmapped)
    if unmapped:
        lines += ["", "## Source records that map to no customer", ""]
        lines += [f"- {md(u)}" for u in unmapped]
    return "\n".join(lines) + "\n"

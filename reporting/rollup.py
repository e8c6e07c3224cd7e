"""The roll-up: one line per customer — status colour, the draft's review state, the owner, top
risk, the engineer's action and the flags by name — customers with high-severity flags first.

It is internal (the roll-up channel and ``rollup-<week>.md``): the action is the engineer's to-do
with its reason (``Report.engineer_actions``), never the customer-worded advice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote

from reporting import fmt
from reporting.deltas import flag_name
from reporting.drafts import DraftState
from reporting.markdown import cell, md
from reporting.models import SEVERITY_ORDER, Report
from reporting.text import neutral

STATUS = {"red": "🔴 red", "amber": "🟠 amber", "green": "🟢 green"}


@dataclass(frozen=True)
class DraftStatus:
    """Where one customer's draft of the week stands (from the review store), for the roll-up."""

    state: str  # a DraftState value
    by: str = ""  # who approved or skipped it
    at: datetime | None = None  # when
    reason: str = ""  # why it was skipped, or why delivery failed
    card_url: str = ""  # the review card in Teams
    pdf_url: str = ""  # the draft's PDF


def status_text(review: DraftStatus | None, tz: str) -> str:
    """'Approved by Priya Shah, Mon 7 Dec 2026, 09:12 GMT', 'Awaiting review', 'Skipped by …: …'."""
    if review is None:
        return "No draft"
    by = f" by {review.by}" if review.by else ""
    at = f", {fmt.stamp(review.at, tz)}" if review.at is not None else ""
    reason = f": {review.reason}" if review.reason else ""
    match review.state:
        case DraftState.DRAFTED:
            return "Awaiting review"
        case DraftState.SAVED:
            return "Edited, awaiting approval"
        case DraftState.APPROVED:
            return f"Approved{by}{at}; delivery starting"
        case DraftState.DELIVERING:
            return f"Approved{by}{at}; delivering"
        case DraftState.DELIVERED:
            return f"Delivered (approved{by}{at})"
        case DraftState.FAILED:
            return f"Delivery failed{reason} (approved{by}{at})"
        case DraftState.SKIPPED:
            return f"Skipped{by}{at}{reason}"
    return review.state.capitalize()


@dataclass(frozen=True)
class RollupRow:
    code: str
    name: str
    status: str  # red | amber | green
    top_risk: str
    action: str
    flags: tuple[str, ...]  # flag codes (stable identifiers, for tools)
    flag_names: tuple[str, ...] = ()  # what people read
    owner: str = ""  # the customer's account engineer at the MSP, else the account owner's address
    review: str = ""  # status_text() of the week's draft; "" when the review state is not known
    card_url: str = ""
    pdf_url: str = ""


def rollup_rows(
    reports: Iterable[Report],
    reviews: Mapping[str, DraftStatus | None] | None = None,
    owners: Mapping[str, str] | None = None,
    tz: str = "UTC",
) -> list[RollupRow]:
    """One row per report. ``reviews`` (by customer code) adds each draft's state and links — a
    code mapped to ``None`` has no draft; ``owners`` overrides the owner read from the report."""
    rows = []
    for r in reports:
        risky = [f for f in r.flags if f.code != "no_baseline"]
        worst = min((SEVERITY_ORDER[f.severity] for f in risky), default=3)
        status = "red" if worst == 0 else "amber" if worst == 1 else "green"
        top = risky[0].message if risky else "No risks this week."
        todo = r.engineer_actions or r.recommendations  # snapshots older than engineer_actions
        action = todo[0] if risky and todo else "None."
        owner = (owners or {}).get(r.customer.code) or r.customer.contact_name
        review = ""
        links: tuple[str, str] = ("", "")
        if reviews is not None:
            rv = reviews.get(r.customer.code)
            review = status_text(rv, tz)
            if rv is not None:
                links = (rv.card_url, rv.pdf_url)
        rows.append(
            RollupRow(
                r.customer.code,
                r.customer.name,
                status,
                top,
                action,
                tuple(f.code for f in r.flags),
                tuple(flag_name(f) for f in r.flags),
                owner,
                review,
                *links,
            )
        )
    order = {"red": 0, "amber": 1, "green": 2}
    return sorted(rows, key=lambda row: (order[row.status], row.code))


def _url(url: str) -> str:
    """Our own link, safe as a Markdown link destination: http(s), or a relative path (the demo's
    PDFs beside the roll-up file); parentheses and spaces percent-encoded so the URL cannot end
    the link early."""
    scheme = url.split(":", 1)[0] if ":" in url.split("/", 1)[0] else ""
    if scheme not in ("", "http", "https") or url.startswith(("/", "\\")):
        return ""
    return quote(neutral(url), safe=":/?&=#%@+,;~")


def _links(r: RollupRow) -> str:
    out = [f"[{label}]({u})" for label, url in (("review card", r.card_url), ("PDF", r.pdf_url)) if (u := _url(url))]
    return " · ".join(out)


def rollup_markdown(rows: list[RollupRow], msp_name: str, period_end: date, unmapped: Iterable[str] = ()) -> str:
    red = sum(1 for r in rows if r.status == "red")
    amber = sum(1 for r in rows if r.status == "amber")
    with_review = any(r.review for r in rows)
    review_col = " Review |" if with_review else ""
    head = f"| Status | Customer | Owner |{review_col} Top risk | Action required | Flags |"
    lines = [
        f"# Weekly roll-up — {fmt.week_ending(period_end)}",
        "",
        f"{md(msp_name)} · {len(rows)} customers · {red} red · {amber} amber · {len(rows) - red - amber} green",
        "",
        head,
        "|" + "---|" * head.count(" |"),
    ]
    for r in rows:
        review = f" {cell(r.review, 200)} |" if with_review else ""
        links = f" ({_links(r)})" if _links(r) else ""
        lines.append(
            f"| {STATUS[r.status]} | **{cell(r.code)}** {cell(r.name)}{links} | {cell(r.owner or '—')} |{review} "
            f"{cell(r.top_risk, 300)} | {cell(r.action, 300)} | {cell(', '.join(r.flag_names) or '—')} |"
        )
    unmapped = list(unmapped)
    if unmapped:
        lines += ["", "## Source records that map to no customer", ""]
        lines += [f"- {md(u)}" for u in unmapped]
    return "\n".join(lines) + "\n"

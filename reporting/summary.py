"""The executive summary (3–5 plain sentences, leading with what moved) and recommendations.

Both are derived from the flags and the section figures only — no free text from sources is
invented here, and every number quoted is one already in a section.
"""

from __future__ import annotations

from collections.abc import Mapping

from reporting import fmt
from reporting.models import SECTION_TITLES, Backups, Changes, Flag, Section, Security, Sites, Tickets, Uptime

_MAX_FLAG_SENTENCES = 2


def _uptime_sentence(s: Section, prev: Uptime | None) -> str:
    if not s.ok or not isinstance(s.data, Uptime):
        return f"Uptime figures are missing this week because {s.source} could not be read; they are not shown as zero."
    u = s.data
    was = f", compared with {fmt.uptime(prev.overall_pct)} the week before" if prev else ""
    verdict = "meeting" if u.overall_pct >= u.target_pct else "short of"
    return f"Network and server uptime was {fmt.uptime(u.overall_pct)}{was}, {verdict} the {fmt.target(u.target_pct)} target."


def _tickets_sentence(t: Section, c: Section) -> str:
    parts = []
    if t.ok and isinstance(t.data, Tickets):
        d = t.data
        sla = f"; {fmt.rate(d.sla_attainment_pct)} were resolved within their target" if d.sla_attainment_pct is not None else ""
        parts.append(f"The service desk opened {d.opened} tickets and closed {d.closed}{sla}, with {d.backlog} still open")
    else:
        parts.append("Ticket figures are missing this week")
    if c.ok and isinstance(c.data, Changes):
        parts.append(f"{c.data.count} planned change{'s were' if c.data.count != 1 else ' was'} carried out")
    return "; ".join(parts) + "."


def _posture_sentence(b: Section, sec: Section, sites: Section) -> str:
    parts = []
    if b.ok and isinstance(b.data, Backups):
        rate = b.data.success_rate_pct
        if not b.data.run_history:
            bad = sum(1 for p in b.data.protected if p.status != "ok")
            parts.append(f"{len(b.data.protected) - bad} of {len(b.data.protected)} protected systems had a recent good backup")
        else:
            parts.append(f"backups succeeded on {fmt.rate(rate)} of runs" if rate is not None else "no backup runs finished")
    if sec.ok and isinstance(sec.data, Security):
        n = sec.data.incidents_new
        open_ = sec.data.incidents_open
        parts.append(f"{n} security incident{'s were' if n != 1 else ' was'} raised ({open_} open at the end of the week)")
    if sites.ok and isinstance(sites.data, Sites) and sites.data.checks:
        measured = [c.availability_pct for c in sites.data.checks if c.availability_pct is not None]
        if sites.data.basis == "period" and measured:
            parts.append(f"your public sites were available at least {fmt.uptime(min(measured))} of the time")
        else:
            up = sum(1 for c in sites.data.checks if (c.status_now or "").lower() == "healthy")
            parts.append(f"{up} of {len(sites.data.checks)} public-site checks are healthy now (the week's history could not be read)")
    if not parts:
        return "Backup, security and public-site figures are missing this week."
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text[0].upper() + text[1:] + "."


def executive_summary(
    sections: Mapping[str, Section], flags: tuple[Flag, ...], previous: Mapping[str, Section] | None
) -> tuple[str, ...]:
    attention = [f for f in flags if f.code != "no_baseline"]
    out: list[str] = []
    covered: set[str] = set()  # sections a flag sentence already speaks about
    if not attention:
        out.append("A quiet week: every figure we track stayed within its target.")
    else:
        n = len(attention)
        out.append(f"{n} item{'s need' if n != 1 else ' needs'} attention this week.")
        for f in attention:
            if f.section in covered:
                continue
            out.append(f.message)
            covered.add(f.section)
            if len(covered) == _MAX_FLAG_SENTENCES:
                break
    prev_up = previous.get("uptime") if previous else None
    if "uptime" not in covered:
        prev = prev_up.data if prev_up and prev_up.ok and isinstance(prev_up.data, Uptime) else None
        out.append(_uptime_sentence(sections["uptime"], prev))
    if "tickets" not in covered and len(out) < 5:
        out.append(_tickets_sentence(sections["tickets"], sections["changes"]))
    if len(out) < 5:
        out.append(_posture_sentence(sections["backups"], sections["security"], sections["sites"]))
    if previous is None and len(out) < 5:
        out.append("This is the first report we hold for you, so week-over-week comparisons start next week.")
    return tuple(out[:5])


_SLA_CODES = ("sla_drop", "sla_below_target")
_ADVICE: dict[tuple[str, str], str] = {
    ("sla", "uptime"): "Review the root cause of this week's downtime with the site owner and decide whether a "
    "redundant circuit or failover is worth the cost.",
    ("sla", "tickets"): "Go through the tickets that missed their resolution target and agree on priorities or "
    "staffing for the coming week.",
    ("ticket_trend_worse", "*"): "Look at what drove the rise in tickets; a problem record or short user training may "
    "prevent repeats.",
    ("backup_stale", "*"): "Bring the backup agent that stopped reporting back online, run a manual backup and confirm "
    "a restore point.",
    ("backup_failed", "*"): "Fix the failing backup job and run a test restore once it succeeds.",
    ("open_incident", "*"): "Close out the open security incident with the customer's contact and confirm no data left "
    "the tenant.",
    ("secure_score_drop", "*"): "Review the tenant changes that lowered Secure Score and revert them or record the "
    "accepted risk.",
    ("site_down", "*"): "Review the public-site outage with the hosting provider and route availability alerts to "
    "on-call.",
    ("no_baseline", "*"): "No action needed for the comparison: next week's report will show week-over-week changes.",
}


def recommendations(sections: Mapping[str, Section], flags: tuple[Flag, ...]) -> tuple[str, ...]:
    """One recommendation per kind of finding, in flag order (most severe first)."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for f in flags:
        if f.code == "data_unavailable":
            key = (f.code, f.section)
            text = (f"Restore reportbot's access to {sections[f.section].source} so next week's "
                    f"{SECTION_TITLES[f.section].lower()} figures are complete.")
        else:
            key = ("sla", f.section) if f.code in _SLA_CODES else (f.code, "*")
            text = _ADVICE.get(key, "")
        if key in seen or not text:
            continue
        seen.add(key)
        out.append(text)
    if not out:
        out.append("No action required this week; keep the current maintenance schedule.")
    return tuple(out)

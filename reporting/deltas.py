"""This week against the stored previous week: flags from the flag vocabulary.

Flag codes are stable (shared/design.md); thresholds come from ``[thresholds]``. Delta flags
(``sla_drop``, ``ticket_trend_worse``) need the previous week; without it the report gets
``no_baseline`` and none of them. Related flags on one fact are one item: a drop that also takes
a figure below its target is one ``sla_drop`` flag whose ``codes`` are ``("sla_drop",
"sla_below_target")`` and whose sentence says both. State flags (below target, backups, incidents, sites,
secure score change within the week, data unavailable) need only this week.
"""

from __future__ import annotations

from collections.abc import Mapping

from reporting.config import Thresholds
from reporting.fmt import WORDS, Words, backup_stopped, duration, hours, pct, target, when
from reporting.models import SEVERITY_ORDER, Backups, Flag, Section, Security, Severity, Sites, Tickets, Uptime
from reporting.voice import missing_short

FLAG_CODES = (
    "sla_drop",
    "sla_below_target",
    "backup_stale",
    "backup_failed",
    "open_incident",
    "ticket_trend_worse",
    "site_down",
    "secure_score_drop",
    "data_unavailable",
    "no_baseline",
)

#: what people read where a flag code would be (the internal roll-up, the review card's lists)
FLAG_NAMES: dict[str, str] = {
    "sla_drop": "SLA drop",
    "sla_below_target": "below SLA target",
    "backup_stale": "no recent backup",
    "backup_failed": "failed backups",
    "open_incident": "open security incident",
    "ticket_trend_worse": "more tickets and a growing backlog",
    "site_down": "public site down",
    "secure_score_drop": "Secure Score drop",
    "data_unavailable": "data missing",
    "no_baseline": "no earlier week to compare",
}


def flag_name(flag: Flag) -> str:
    """A flag's name for people: 'SLA drop, below SLA target (uptime)' for a merged uptime flag,
    'data missing (backups)'; codes without a name read as themselves."""
    names = [FLAG_NAMES.get(c, c) for c in flag.codes]
    text = ", ".join(dict.fromkeys(names))
    text = text[:1].upper() + text[1:]
    if flag.code in ("sla_drop", "sla_below_target", "data_unavailable"):
        text += f" ({flag.section})"
    return text


def _data(sections: Mapping[str, Section] | None, name: str) -> object | None:
    if sections is None:
        return None
    s = sections.get(name)
    return s.data if s is not None and s.ok else None


def _uptime_flags(cur: Uptime, prev: Uptime | None, th: Thresholds) -> list[Flag]:
    out = []
    worst = min(cur.by_site, key=lambda g: g.uptime_pct, default=None)
    where = (
        f"; lowest site: {worst.name} at {pct(worst.uptime_pct)}" if worst and worst.uptime_pct < cur.target_pct else ""
    )
    dropped = prev is not None and prev.overall_pct - cur.overall_pct >= th.sla_drop_points
    below = cur.overall_pct < cur.target_pct
    if dropped and prev is not None:
        # one fact, one item: a drop that also takes uptime below target is said once, with both
        also = f", below the {target(cur.target_pct)} target" if below else ""
        out.append(
            Flag(
                "sla_drop",
                "high",
                "uptime",
                f"Uptime fell {prev.overall_pct - cur.overall_pct:.1f} points, from {pct(prev.overall_pct)} "
                f"to {pct(cur.overall_pct)}{also}{where}.",
                codes=("sla_drop", "sla_below_target") if below else (),
            )
        )
    elif below:
        out.append(
            Flag(
                "sla_below_target",
                "medium",
                "uptime",
                f"Uptime of {pct(cur.overall_pct)} is below the {target(cur.target_pct)} target{where}.",
            )
        )
    return out


def _ticket_flags(cur: Tickets, prev: Tickets | None, th: Thresholds, w: Words) -> list[Flag]:
    out = []
    att, prev_att = cur.sla_attainment_pct, prev.sla_attainment_pct if prev else None
    below = att is not None and att < cur.target_pct
    if att is not None and prev_att is not None and prev_att - att >= th.sla_drop_points:
        also = f", below the {target(cur.target_pct)} target ({cur.sla_breaches} breaches)" if below else ""
        out.append(
            Flag(
                "sla_drop",
                "medium",
                "tickets",
                f"Service desk tickets resolved within SLA fell {prev_att - att:.1f} points, "
                f"from {pct(prev_att, 1)} to {pct(att, 1)}{also}.",
                codes=("sla_drop", "sla_below_target") if below else (),
            )
        )
    elif att is not None and below:
        out.append(
            Flag(
                "sla_below_target",
                "medium",
                "tickets",
                f"Only {pct(att, 1)} of service desk tickets closed {w.this} met their resolution target "
                f"(target {target(cur.target_pct)}; {cur.sla_breaches} breaches).",
            )
        )
    if prev is not None and prev.opened > 0:
        rise = 100.0 * (cur.opened - prev.opened) / prev.opened
        if rise >= th.tickets_opened_increase_pct and cur.backlog > prev.backlog:
            out.append(
                Flag(
                    "ticket_trend_worse",
                    "medium",
                    "tickets",
                    f"Service desk tickets opened rose {rise:.0f} % ({prev.opened} to {cur.opened}) "
                    f"and the open backlog grew from {prev.backlog} to {cur.backlog}.",
                )
            )
    return out


def _backup_flags(cur: Backups, th: Thresholds, tz: str, w: Words) -> list[Flag]:
    out = []
    stale = [p for p in cur.protected if p.status == "stale" or (p.status == "never" and p.runs_failed == 0)]
    failed = [p for p in cur.protected if p.status == "failed" or (p.status == "never" and p.runs_failed > 0)]
    if stale:
        items = "; ".join(
            f"{p.name} has never completed a backup"
            if p.last_success is None
            else f"{backup_stopped(p, tz)} ({hours(p.rpo_hours)} before the {w.noun} ended)"
            for p in stale
        )
        out.append(
            Flag("backup_stale", "high", "backups", f"No successful backup in {th.backup_stale_hours:g} h: {items}.")
        )
    if failed:
        items = "; ".join(
            f"{p.name} ({p.runs_failed} failed run{'s' if p.runs_failed != 1 else ''}, last good "
            f"{when(p.last_success, tz)})"
            for p in failed
        )
        out.append(Flag("backup_failed", "high", "backups", f"Backup job failed and has not succeeded since: {items}."))
    return out


def _security_flags(cur: Security, th: Thresholds, tz: str, w: Words) -> list[Flag]:
    out = []
    watched = [i for i in cur.open_items if i.severity in th.open_incident_severities]
    if watched:
        sev: Severity = "high" if any(i.severity == "high" for i in watched) else "medium"
        first = watched[0]
        more = f" and {len(watched) - 1} more" if len(watched) > 1 else ""
        out.append(
            Flag(
                "open_incident",
                sev,
                "security",
                f"{len(watched)} {first.severity}-severity security incident{'s' if len(watched) > 1 else ''} "
                "still open: "
                f"\u201c{first.title}\u201d (opened {when(first.created, tz)}){more}.",
            )
        )
    if cur.secure_score_change is not None and cur.secure_score_change <= -th.secure_score_drop_points:
        out.append(
            Flag(
                "secure_score_drop",
                "medium",
                "security",
                f"Microsoft Secure Score fell {abs(cur.secure_score_change):.1f} points {w.this}, to "
                f"{pct(cur.secure_score_pct, 1)}.",
            )
        )
    return out


def _site_flags(cur: Sites) -> list[Flag]:
    return [
        Flag(
            "site_down",
            "high",
            "sites",
            f"{c.name} was unavailable for {duration(c.downtime_minutes)} (availability {pct(c.availability_pct)}, "
            f"target {target(cur.target_pct)}).",
        )
        for c in cur.checks
        if c.availability_pct is not None and c.downtime_minutes is not None and c.availability_pct < cur.target_pct
    ]


def compute_flags(
    current: Mapping[str, Section],
    previous: Mapping[str, Section] | None,
    thresholds: Thresholds,
    tz: str,
    w: Words = WORDS["week"],
) -> tuple[Flag, ...]:
    """Flags for this period, most severe first (stable order within a severity); ``w``: how the
    messages name the period."""
    flags: list[Flag] = []
    for name, s in current.items():
        if not s.ok:
            # the customer's words; the technical reason stays in the section's ``error`` (review card, snapshot)
            flags.append(Flag("data_unavailable", "medium", name, missing_short(name, w)))
    if previous is None:
        flags.append(
            Flag(
                "no_baseline",
                "low",
                "report",
                f"No earlier {w.noun if w.noun != '30 days' else '30-day period'} is stored, so there is nothing "
                "to compare with yet.",
            )
        )

    up = _data(current, "uptime")
    if isinstance(up, Uptime):
        prev_up = _data(previous, "uptime")
        flags += _uptime_flags(up, prev_up if isinstance(prev_up, Uptime) else None, thresholds)
    tk = _data(current, "tickets")
    if isinstance(tk, Tickets):
        prev_tk = _data(previous, "tickets")
        flags += _ticket_flags(tk, prev_tk if isinstance(prev_tk, Tickets) else None, thresholds, w)
    bk = _data(current, "backups")
    if isinstance(bk, Backups):
        flags += _backup_flags(bk, thresholds, tz, w)
    sec = _data(current, "security")
    if isinstance(sec, Security):
        flags += _security_flags(sec, thresholds, tz, w)
    st = _data(current, "sites")
    if isinstance(st, Sites):
        flags += _site_flags(st)
    return tuple(sorted(flags, key=lambda f: SEVERITY_ORDER[f.severity]))

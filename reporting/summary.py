"""The executive summary (3–5 plain sentences, leading with what moved) and recommendations.

Both are derived from the flags and the section figures only — no free text from sources is
invented here, and every number quoted is one already in a section.
"""

from __future__ import annotations

from collections.abc import Mapping

from reporting import fmt
from reporting.models import (
    SECTION_TITLES,
    Backups,
    Changes,
    Flag,
    Section,
    Security,
    Sites,
    Tickets,
    Uptime,
    customer_flags,
)
from reporting.voice import missing_short, possessive

_MAX_FLAG_SENTENCES = 2


def _uptime_sentence(s: Section, prev: Uptime | None, w: fmt.Words) -> str:
    if not s.ok or not isinstance(s.data, Uptime):
        return missing_short("uptime", w).replace("are missing;", "are missing (they are not zero);")
    u = s.data
    was = f", compared with {fmt.uptime(prev.overall_pct)} {w.before}" if prev else ""
    verdict = "meeting" if u.overall_pct >= u.target_pct else "short of"
    return (
        f"Network and server uptime was {fmt.uptime(u.overall_pct)}{was}, "
        f"{verdict} the {fmt.target(u.target_pct)} target."
    )


def _tickets_sentence(t: Section, c: Section, w: fmt.Words) -> str:
    parts = []
    if t.ok and isinstance(t.data, Tickets):
        d = t.data
        sla = (
            f"; {fmt.rate(d.sla_attainment_pct)} were resolved within their target"
            if d.sla_attainment_pct is not None
            else ""
        )
        parts.append(
            f"The service desk opened {d.opened} tickets and closed {d.closed}{sla}, with {d.backlog} still open"
        )
    else:
        parts.append(f"{possessive(w)} service desk ticket figures are missing and will follow in {w.next_report}")
    if c.ok and isinstance(c.data, Changes):
        parts.append(f"{c.data.count} planned change{'s were' if c.data.count != 1 else ' was'} carried out")
    return "; ".join(parts) + "."


def _posture_sentence(b: Section, sec: Section, sites: Section, w: fmt.Words) -> str:
    parts = []
    if b.ok and isinstance(b.data, Backups):
        rate = b.data.success_rate_pct
        if not b.data.run_history:
            bad = sum(1 for p in b.data.protected if p.status != "ok")
            parts.append(
                f"{len(b.data.protected) - bad} of {len(b.data.protected)} protected systems had a recent good backup"
            )
        else:
            # a success rate of the runs that ran says nothing of the ones that did not: said beside it
            tz = b.as_of.tzinfo or "UTC"
            stopped = " and ".join(fmt.backup_stopped(p, tz) for p in fmt.stopped(b.data.protected))
            text = (
                f"backups succeeded on {fmt.rate(rate)} of the runs that ran"
                if rate is not None
                else "no backup runs finished"
            )
            parts.append(f"{text} (but {stopped})" if stopped else text)
    if sec.ok and isinstance(sec.data, Security):
        n = sec.data.incidents_new
        open_ = sec.data.incidents_open
        parts.append(f"{n} security incident{'s were' if n != 1 else ' was'} raised ({open_} open at {w.end})")
    if sites.ok and isinstance(sites.data, Sites) and sites.data.checks:
        measured = [c.availability_pct for c in sites.data.checks if c.availability_pct is not None]
        if sites.data.basis == "period" and measured:
            parts.append(f"your public sites were available at least {fmt.uptime(min(measured))} of the time")
        else:
            up = sum(1 for c in sites.data.checks if (c.status_now or "").lower() == "healthy")
            parts.append(
                f"{up} of {len(sites.data.checks)} public-site checks are healthy now (the history of "
                f"{w.this} will follow in {w.next_report})"
            )
    if not parts:
        return (
            f"{possessive(w)} backup, security and public-site figures are missing; they will follow in "
            f"{w.next_report}."
        )
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text[0].upper() + text[1:] + "."


def executive_summary(
    sections: Mapping[str, Section],
    flags: tuple[Flag, ...],
    previous: Mapping[str, Section] | None,
    w: fmt.Words = fmt.WORDS["week"],
) -> tuple[str, ...]:
    """``w``: how the text names the period ("this week", "this month")."""
    attention = list(customer_flags(flags))
    gaps = [f.section for f in flags if f.code == "data_unavailable"]
    out: list[str] = []
    covered: set[str] = set()  # sections a flag sentence already speaks about
    if not attention and not gaps:
        out.append(f"A quiet {w.noun}: every figure we track stayed within its target.")
    elif not attention:
        out.append(f"Nothing needs your attention {w.this} in the figures we could collect.")
    else:
        n = len(attention)
        out.append(f"{n} item{'s need' if n != 1 else ' needs'} attention {w.this}.")
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
        out.append(_uptime_sentence(sections["uptime"], prev, w))
    if "tickets" not in covered and len(out) < 5:
        out.append(_tickets_sentence(sections["tickets"], sections["changes"], w))
    if len(out) < 5:
        out.append(_posture_sentence(sections["backups"], sections["security"], sections["sites"], w))
    if previous is None and len(out) < 5:
        out.append(f"This is the first report we hold for you, so comparisons with {w.last} start in {w.next_report}.")
    return tuple(out[:5])


_SLA_CODES = ("sla_drop", "sla_below_target")


def _lead(f: Flag) -> str:
    """The fact behind a piece of advice: the flag's own sentence, without its full stop."""
    return f.message.rstrip().rstrip(".")


_CUSTOMER_ADVICE: dict[tuple[str, str], str] = {  # (flag kind, section or "*") -> after the fact
    ("sla", "uptime"): "If the affected site cannot work without its connection, consider a second internet line "
    "or automatic failover there; weigh its monthly cost against the hours your staff could not work "
    "this week. We can price the options for you.",
    ("sla", "tickets"): "Tell us which requests matter most to your business so we handle them first; if the "
    "volume stays at this level, it may be worth agreeing more service desk hours.",
    ("ticket_trend_worse", "*"): "If the rise comes from one application or team, a short training session or a "
    "fix at the root can prevent repeats and the time your staff lose waiting on tickets.",
    ("backup_stale", "*"): "Until a new backup completes, work saved on that system since then could not be "
    "recovered if it failed. If the machine was switched off or retired on purpose, let us know so we can stop "
    "protecting it.",
    ("backup_failed", "*"): "Until the backup succeeds again, recent changes on that system are not protected; avoid "
    "major changes there until we confirm a good backup and a test restore.",
    ("open_incident", "*"): "Please confirm with us whether the activity was expected; until the incident is closed, "
    "treat the affected account or device as at risk.",
    ("secure_score_drop", "*"): "Check with us whether the recent changes to your Microsoft 365 settings were "
    "intended; a lower score means more ways in for an attacker, and each setting can be restored or the risk "
    "accepted on record.",
    ("site_down", "*"): "If this site takes orders, bookings or support requests, consider a hosting plan with a "
    "higher availability commitment or a standby copy, weighed against the business lost while it is down.",
}


def _customer_advice(f: Flag, w: fmt.Words) -> str:
    """Advice to the customer for one finding: the fact, what to consider, what it costs not to."""
    key = ("sla", f.section) if set(f.codes) & set(_SLA_CODES) else (f.code, "*")
    advice = _CUSTOMER_ADVICE.get(key, "").replace("this week", w.this)
    return f"{_lead(f)}. {advice}" if advice else ""


def recommendations(
    sections: Mapping[str, Section], flags: tuple[Flag, ...], w: fmt.Words = fmt.WORDS["week"]
) -> tuple[str, ...]:
    """Advice to the customer, one per finding they should care about, in flag order (most severe
    first), each starting with the fact that triggered it. Our own data problems are not here:
    they are :func:`engineer_actions`."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for f in customer_flags(flags):
        key = ("sla", f.section) if set(f.codes) & set(_SLA_CODES) else (f.code, f.section)
        text = _customer_advice(f, w)
        if key in seen or not text:
            continue
        seen.add(key)
        out.append(text)
    if not out:
        out.append(f"No action is needed on your side {w.this}.")
    return tuple(out)


def engineer_actions(
    sections: Mapping[str, Section], flags: tuple[Flag, ...], w: fmt.Words = fmt.WORDS["week"]
) -> tuple[str, ...]:
    """The MSP's own to-dos with their technical reason: shown on the review card and the internal
    roll-up only, never to the customer."""
    out: list[str] = []
    for name, s in sections.items():
        if not s.ok:
            out.append(
                f"Restore access to {s.source} so the next report's {SECTION_TITLES.get(name, name).lower()} "
                f"figures are complete: {s.error or 'no reason was given'}."
            )
    sec = sections.get("security")
    if sec is not None and sec.ok and isinstance(sec.data, Security) and sec.data.score_note:
        out.append(f"Secure Score left out ({sec.source}): {sec.data.score_note}")
    st = sections.get("sites")
    if st is not None and st.ok and isinstance(st.data, Sites) and st.data.basis != "period":
        out.append(f"Public-site history not read ({st.source}): {st.data.note or 'no reason was given'}")
    todo = {
        "uptime": "Find the root cause of the downtime with the site owner and the carrier; propose failover if it "
        "repeats.",
        "tickets": "Go through the tickets that missed their target; agree priorities or staffing for the next "
        f"{w.noun}.",
    }
    for f in flags:
        if set(f.codes) & set(_SLA_CODES):
            text = todo.get(f.section, "")
        else:
            text = {
                "ticket_trend_worse": "Find what drove the rise in tickets; open a problem record if one cause "
                "dominates.",
                "backup_stale": "Bring the backup agent that stopped reporting back online, run a manual backup and "
                "confirm a restore point.",
                "backup_failed": "Fix the failing backup job and run a test restore once it succeeds.",
                "open_incident": "Drive the open security incident to closure with the customer's contact and "
                "confirm no data left the tenant.",
                "secure_score_drop": "Review the tenant changes that lowered Secure Score; revert them or record the "
                "accepted risk.",
                "site_down": "Review the public-site outage with the hosting provider; route availability alerts to "
                "on-call.",
            }.get(f.code, "")
        if text and text not in out:
            out.append(text)
    return tuple(out)

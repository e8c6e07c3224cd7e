"""Markdown rendering (jinja2). Every string from a source, a config or an engineer goes
through ``md`` (or ``cell`` inside tables), which escapes Markdown and inline HTML so that text
is shown as text: ``**x**`` stays two asterisks, ``<script>`` stays visible, a link stays inert;
control characters and bidi overrides are removed first (:func:`reporting.text.neutral`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from functools import lru_cache

import jinja2

from reporting import fmt, voice
from reporting.fmt import TREND_WEEKS
from reporting.models import SECTION_TITLES, Branding, Report, WeekPoint, customer_flags
from reporting.period import previous_period
from reporting.text import neutral

_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_LINE_START = re.compile(r"^(\s*)(\d*)([#+\-=>]|(?<=\d)[.)])")


def md(value: object) -> str:
    """Escape text for Markdown: HTML entities for & < >, a backslash before Markdown syntax,
    line breaks folded so a value cannot start a heading, list or table row."""
    text = neutral(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_INLINE.sub(r"\\\1", text)
    text = re.sub(r"\s*[\r\n]+\s*", " ", text).strip()
    return _MD_LINE_START.sub(lambda m: m.group(1) + m.group(2) + "\\" + m.group(3), text)


def cell(value: object, limit: int = 200) -> str:
    """``md`` for a table cell, cut to ``limit`` characters with an ellipsis."""
    text = neutral(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return md(text)


def block(value: object) -> str:
    """Multi-line commentary: each line escaped, kept as its own line in a blockquote."""
    lines = [md(line) for line in neutral(value, multiline=True).split("\n")] or [""]
    return "\n".join(f"> {line}" if line else ">" for line in lines)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reporting", "templates"),
        autoescape=False,  # noqa: S701 - Markdown, escaped by the md/cell filters
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        md=md,
        cell=cell,
        block=block,
        pct=fmt.pct,
        rate=fmt.rate,
        target=fmt.target,
        points=fmt.points,
        capitalize_first=fmt.capital,
        duration=fmt.duration,
        hours=fmt.hours,
        age=fmt.age,
        verdict=fmt.verdict,
        run_result=fmt.run_result,
        status_word=fmt.status_word,
    )
    return env


def _no_chart(name: str) -> str:
    return ""


def render_markdown(report: Report, branding: Branding, chart: Callable[[str], str] = _no_chart) -> str:
    """The Markdown report. ``chart(name)``: a line to put where the chart ``name`` belongs
    (``reporting.html`` marks its places; the Markdown report has none)."""
    tz = report.period.timezone
    kind = report.period.kind
    words = fmt.words(report.period)
    before = previous_period(report.period).end_date
    prev = next((w for w in report.history if w.period_end == before), None)

    def first(period_end: date) -> str:
        """A stored period by its first day: 'week of 16 Nov', 'fortnight of 2 Nov', 'Nov'."""
        label = fmt.week_monday(period_end, kind)
        return {"month": label, "30d": f"30 days from {label}"}.get(kind, f"{words.noun} of {label}")

    def trend(value: Callable[[WeekPoint], float | None], now: float | None) -> list[tuple[str, float | None]]:
        """A figure over the last six periods, each named by its first day, this one last."""
        earlier = [w for w in report.history if w.period_end < report.period.end_date][-(TREND_WEEKS - 1) :]
        return [(first(w.period_end), value(w)) for w in earlier] + [(words.point.lower(), now)]

    return (
        _env()
        .get_template("report.md.j2")
        .render(
            r=report,
            b=branding,
            s=report.sections,
            titles=SECTION_TITLES,
            findings=customer_flags(report.flags),
            source_label=voice.source_label,
            missing=lambda name: voice.missing(name, words),
            w=words,
            possessive=voice.possessive(words),
            overall_basis=voice.overall_basis,
            score_missing=voice.score_missing(words),
            sites_current_only=voice.sites_current_only(words),
            tz=tz,
            when=lambda ts, never="never": fmt.when(ts, tz, never),
            outage_end=lambda o: fmt.outage_end(o, tz, words),
            outage_devices=fmt.outage_devices,
            timeline=fmt.timeline,
            stopped=fmt.stopped,
            backup_stopped=lambda p: fmt.backup_stopped(p, tz),
            stamp=lambda ts: fmt.stamp(ts, tz),
            week=fmt.report_week(report),
            partial=fmt.partial(report.partial_as_of, tz) if report.partial_as_of is not None else None,
            partial_at=fmt.moment(report.partial_as_of, tz) if report.partial_as_of is not None else None,
            monday=first,
            prev=prev,
            trend=trend,
            lambda_uptime=lambda w: w.uptime_pct,
            lambda_score=lambda w: w.secure_score_pct,
            next_week=fmt.next_week(report),
            next_week_title=fmt.NEXT_WEEK_TITLE,
            planned_lead=fmt.PLANNED_LEAD,
            waiting_lead=fmt.WAITING_LEAD,
            planned_none=fmt.PLANNED_NONE,
            waiting_none=fmt.WAITING_NONE,
            chart=chart,
            compact=lambda ts, never="never": fmt.when_compact(ts, tz, never),
            kind=fmt.report_kind(report),
            technical=fmt.is_technical(report),
            technical_title=fmt.TECHNICAL_TITLE,
            technical_lead=fmt.technical_lead(words),
            missing_short=lambda name: voice.missing_short(name, words),
            device_spells=fmt.device_spells,
            spell_end=lambda o: fmt.spell_end(o, tz, words),
            ticket_tally=lambda t: fmt.ticket_tally(t, report.period),
            run_tally=lambda runs: fmt.run_tally(runs, words),
            restores_to=fmt.RESTORES_TO,
            incident_tally=lambda items: fmt.incident_tally(items, report.period),
            incident_resolved=lambda i: fmt.incident_resolved(i, tz, words),
        )
    )

"""Assembly of the weekly report PDF with platypus: one builder function per section.

Data -> style -> assembly: the report's frozen dataclasses come in, :mod:`.stylesheet` holds
every font, colour and size, and this module only arranges flowables. Every string that comes
from data goes through :func:`esc` (paragraph markup) or :func:`shorten` (canvas/table text).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reportlab import rl_config
from reportlab.lib.utils import ImageReader, TimeStamp
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    LongTable,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
)

from reporting import fmt, voice
from reporting.metrics import definitions
from reporting.models import (
    SECTION_NAMES,
    SECTION_TITLES,
    SEVERITY_ORDER,
    Backups,
    Branding,
    Changes,
    OutageEvent,
    Report,
    Section,
    Security,
    Sites,
    Tickets,
    Uptime,
    UptimeGroup,
    WeekPoint,
    customer_flags,
)
from reporting.pdf import fonts
from reporting.pdf import stylesheet as ss
from reporting.pdf.charts import (
    MAX_TREND_WEEKS,
    TREND_WEEKS,
    TrendPoint,
    kpi_trend_chart,
    score_axis_range,
    shorten,
    ticket_trend_chart,
    uptime_by_site_chart,
)
from reporting.pdf.stylesheet import Theme, theme_for
from reporting.period import previous_period
from reporting.text import neutral

# Binary (Flate-only) streams: no ASCII85 pass over every page and font subset, ~20 % smaller files.
rl_config.useA85 = 0

# Length limits for data strings (characters) — long vendor strings are cut with an ellipsis.
CELL_LIMIT = 240
NAME_LIMIT = 120
SENTENCE_LIMIT = 1000
ERROR_LIMIT = 600

MINUS = "\u2212"
DASH = "\u2014"
DOT = "\u00b7"


# ---- text helpers ------------------------------------------------------------------------


def esc(text: object, limit: int | None = CELL_LIMIT, *, multiline: bool = False) -> str:
    """Untrusted text -> safe ReportLab paragraph markup in any script.

    The text is neutralised (:func:`reporting.text.neutral`: control characters and bidi
    overrides removed), cut to ``limit`` characters (ellipsis; ``None``: never cut), laid out
    right-to-left where it is Hebrew or Arabic, and ``& < >`` (and quotes) are escaped so tags
    and entities in data are shown literally; characters the embedded family lacks are set in a
    fallback font (:mod:`reporting.pdf.fonts`). With ``multiline`` the line breaks are kept as
    ``<br/>`` and every character of every line is kept (a line ending in "-" keeps its dash).
    """
    if not multiline:
        return fonts.markup(shorten(text, limit if limit is not None else 10**9))
    raw = neutral(text, multiline=True)
    if limit is not None and len(raw) > limit:
        raw = raw[: max(1, limit - 1)].rstrip() + "\u2026"
    lines = raw.strip("\n").split("\n")
    return "<br/>".join(fonts.markup(line.rstrip()) for line in lines)


def _tz(report: Report) -> tzinfo:
    try:
        return ZoneInfo(report.period.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return report.period.start.tzinfo or UTC


def _local(dt: datetime, tz: tzinfo) -> datetime:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(tz)


# the PDF's names for the shared formatting (reporting/fmt.py), a dash where there is no value
def fmt_date(d: date) -> str:
    return fmt.day(d, year=True)


def fmt_dt(dt: datetime, tz: tzinfo) -> str:
    """``Mon 16 Nov 2026, 06:02 CET`` in the report's timezone."""
    return fmt.stamp(dt, tz)


def fmt_dt_short(dt: datetime | None, tz: tzinfo) -> str:
    """``Tue 10 Nov 14:05`` for table cells."""
    return fmt.when(dt, tz, never=DASH)


def fmt_pct(value: float | None, digits: int = fmt.UPTIME_DIGITS) -> str:
    """A percentage that never rounds a shortfall up to 100 (:func:`reporting.fmt.pct`)."""
    return DASH if value is None else fmt.pct(value, digits)


def fmt_num(value: float | int | None, digits: int = 1) -> str:
    return DASH if value is None else fmt.number(value, digits)


def fmt_signed(value: float | int | None, unit: str = "", digits: int = 1) -> str:
    """``+1.2 pts`` / ``−8.0 pts`` / ``±0 pts`` with a real minus sign."""
    return DASH if value is None else fmt.signed(value, unit, digits)


def period_line(report: Report, tz: tzinfo) -> str:
    """The period's one label (:func:`reporting.fmt.week`), with "partial, as of" when it had not ended."""
    p = report.period
    label = fmt.week(p)
    if report.partial_as_of is not None:
        label += f" ({fmt.partial(report.partial_as_of, p.timezone)})"
    return label


# ---- context -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    report: Report
    branding: Branding
    theme: Theme
    tz: tzinfo

    def p(self, markup: str, style: str = "body", **kw: Any) -> Paragraph:
        return Paragraph(markup, self.theme.style(style), **kw)

    def versus(self, last: str | None, target: str | None = None, *, delta: str | None = None) -> str:
        return versus(last, target, delta=delta, w=self.w)

    @property
    def w(self) -> fmt.Words:
        """How the text names the report's period ("this week", "last month")."""
        return fmt.words(self.report.period)

    def cell(self, text: object, limit: int = CELL_LIMIT) -> Paragraph:
        """A wrapping table cell for a data string."""
        return Paragraph(esc(text, limit), self.theme.style("cell"))

    @property
    def previous_week(self) -> WeekPoint | None:
        """The stored period right before this one (None when it is not stored)."""
        before = previous_period(self.report.period).end_date
        return next((w for w in self.report.history if w.period_end == before), None)

    def trend(
        self, value: Callable[[WeekPoint], float | None], now: float | None
    ) -> tuple[list[str], list[float | None]]:
        return trend_series(self.report, value, now)


def trend_series(
    report: Report, value: Callable[[WeekPoint], float | None], now: float | None
) -> tuple[list[str], list[float | None]]:
    """Labels (each period by its first day) and values of a figure over the last six periods,
    this one last (the PDF's and the web page's trend charts)."""
    p = report.period
    end = p.end_date
    earlier = [w for w in report.history if w.period_end < end][-(TREND_WEEKS - 1) :]
    labels = [_week_label(w.period_end, compact=False, kind=p.kind) for w in earlier] + [fmt.words(p).point]
    return labels, [value(w) for w in earlier] + [now]


def earlier_ticket_points(report: Report) -> list[TrendPoint]:
    """The ticket trend's stored weeks before this one (up to ``MAX_TREND_WEEKS - 1``)."""
    p = report.period
    end = p.end_date
    earlier = [w for w in report.history if w.period_end < end][-(MAX_TREND_WEEKS - 1) :]
    compact = len(earlier) > 7
    return [
        TrendPoint(_week_label(w.period_end, compact, kind=p.kind), w.tickets_opened, w.tickets_closed, w.backlog)
        for w in earlier
    ]


def versus(
    last: str | None, target: str | None = None, *, delta: str | None = None, w: fmt.Words = fmt.WORDS["week"]
) -> str:
    """A tile's note: 'last week 99.97 % (−4.01 pts) · target 99.5 %'; a period not stored says so."""
    before = w.last_span
    parts = [f"{before} {last}" + (f" ({delta})" if delta else "") if last is not None else f"{before} not stored"]
    if target is not None:
        parts.append(f"target {target}")
    return " \u00b7 ".join(parts)


# ---- reusable blocks ---------------------------------------------------------------------


def data_table(
    ctx: Ctx,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float],
    *,
    numeric: tuple[int, ...] = (),
    extra: Sequence[Any] = (),
    long: bool = False,
) -> Table:
    """A branded table: header row repeated on every page it spans, zebra rows, numbers right."""
    cls = LongTable if long else Table
    data = [list(header), *[list(r) for r in rows]]
    t = cls(data, colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    t.setStyle(ctx.theme.table_commands(rows=len(data), numeric_cols=numeric) + list(extra))
    return t


def kpi_row(ctx: Ctx, tiles: Sequence[tuple[str, str, str]]) -> Table:
    """A row of figure tiles: (value, label, note). Values and labels are ours, notes escaped."""
    cells = []
    for value, label, note in tiles:
        content: list[Flowable] = [ctx.p(value, "kpi_value"), ctx.p(label, "kpi_label")]
        if note:
            content.append(ctx.p(note, "kpi_label"))
        cells.append(content)
    width = ss.FRAME_WIDTH / max(1, len(cells))
    t = Table([cells], colWidths=[width] * len(cells), hAlign="LEFT")
    t.setStyle(
        [
            ("FONT", (0, 0), (-1, -1), ss.FONT, ss.TABLE_SIZE),
            ("BACKGROUND", (0, 0), (-1, -1), ctx.theme.brand_tint),
            ("LINEAFTER", (0, 0), (-2, -1), 2, ss.WHITE),
            ("LINEABOVE", (0, 0), (-1, 0), 2, ctx.theme.brand),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 8),
            ("TOPPADDING", (0, 0), (-1, -1), 6),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
        ]
    )
    return t


def unavailable_box(ctx: Ctx, name: str) -> list[Flowable]:
    """What the customer reads where a section's figures are missing: what is missing and that it
    follows next week. The technical reason is on the review card, never here."""
    what = esc(voice.missing(name, ctx.w), ERROR_LIMIT)
    box = Table(
        [[ctx.p(f"<b>Not available {ctx.w.this}</b> {DASH} {what}", "unavailable")]],
        colWidths=[ss.FRAME_WIDTH],
        hAlign="LEFT",
    )
    box.setStyle(
        [
            ("FONT", (0, 0), (-1, -1), ss.FONT, ss.TABLE_SIZE),
            ("BACKGROUND", (0, 0), (-1, -1), ss.UNAVAILABLE_BG),
            ("LINEBEFORE", (0, 0), (0, -1), 4, ss.UNAVAILABLE_BORDER),
            ("LEFTPADDING", (0, 0), (-1, -1), 10),
            ("TOPPADDING", (0, 0), (-1, -1), 8),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 8),
        ]
    )
    note = ctx.p("The rest of the report is complete.", "note")
    return [box, Spacer(1, 2), note]


class OutlineHeading(Paragraph):
    """A heading that is also an entry in the PDF outline (the reader's bookmarks panel)."""

    def __init__(self, markup: str, style: Any, title: str, key: str, level: int = 0) -> None:
        super().__init__(markup, style)
        self.outline_title = title
        self.outline_key = key
        self.outline_level = level

    def draw(self) -> None:
        self.canv.bookmarkHorizontal(self.outline_key, 0, self.height)  # jump to the heading itself
        self.canv.addOutlineEntry(self.outline_title, self.outline_key, level=self.outline_level)
        super().draw()


def outline_heading(ctx: Ctx, title: str, style: str = "h1", level: int = 0) -> OutlineHeading:
    key = "s" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())
    # outline entries are Unicode strings that the viewer lays out itself: logical order, not visual
    return OutlineHeading(esc(title, NAME_LIMIT), ctx.theme.style(style), neutral(title), key, level)


def heading(ctx: Ctx, title: str) -> list[Flowable]:
    return [CondPageBreak(70 * ss.MM), outline_heading(ctx, title)]


def source_line(ctx: Ctx, section: Section) -> Paragraph:
    return ctx.p(
        f"Source: {esc(voice.source_label(section), NAME_LIMIT)} {DOT} data as of {esc(fmt_dt(section.as_of, ctx.tz))}",
        "source",
    )


def section_findings(ctx: Ctx, name: str) -> list[Flowable]:
    """This section's flags, repeated where the reader meets the figures behind them."""
    return [
        ctx.p(
            f"<b>{esc(f.severity.capitalize(), 12)}:</b> {esc(f.message, SENTENCE_LIMIT)}",
            "bullet",
            bulletText="\u25b2",
        )
        for f in sorted(ctx.report.flags, key=lambda f: SEVERITY_ORDER.get(f.severity, 9))
        if f.section == name and f.code != "data_unavailable"  # the unavailable box says that one
    ]


def status_word(ok: bool) -> str:
    return "met" if ok else "below target"


# ---- cover and executive summary ---------------------------------------------------------


#: overall status in words, by the most severe thing the customer should care about
STATUS_WORDS: dict[str, tuple[str, str]] = {
    "high": ("Needs attention", "Something in this report needs a decision or action on your side."),
    "medium": ("Mostly on track", "A few things are worth watching; nothing is urgent."),
    "low": ("On track", "Services ran as agreed; the details follow."),
}
_NOT_FOR_THE_COVER = {"no_baseline", "data_unavailable"}  # about our data, not the customer's services


def overall_status(report: Report) -> str:
    """``high`` | ``medium`` | ``low``: the most severe flag the customer should care about."""
    sevs = [f.severity for f in report.flags if f.code not in _NOT_FOR_THE_COVER]
    return min(sevs, key=lambda s: SEVERITY_ORDER.get(s, 9), default="low") if sevs else "low"


def top_items(report: Report, n: int = 3) -> list[str]:
    """The ``n`` things that matter most: one flag per area, most severe first, then the
    summary's sentences (its first sentence is the headline, shown as the status instead)."""
    out: list[str] = []
    seen: set[str] = set()
    for f in sorted(report.flags, key=lambda f: SEVERITY_ORDER.get(f.severity, 9)):
        if f.code in _NOT_FOR_THE_COVER or f.section in seen:
            continue
        seen.add(f.section)
        out.append(f.message)
    for sentence in report.summary[1:]:
        if sentence not in out:
            out.append(sentence)
    return out[:n]


def contents(report: Report) -> list[tuple[str, bool]]:
    """(title, available) in the order the report shows them."""
    out = [("Executive summary", True), ("Recommendations", True)]
    planned, waiting = fmt.next_week(report)
    if planned is not None or waiting is not None:
        out.append((fmt.NEXT_WEEK_TITLE, True))
    for name in SECTION_NAMES:
        sec = report.sections.get(name)
        out.append((SECTION_TITLES[name], sec is not None and sec.ok and sec.data is not None))
    if fmt.is_technical(report):
        out.append((fmt.TECHNICAL_TITLE, True))
    return out + [("How to read this report", True)]


def contact_line(ctx: Ctx) -> list[Flowable]:
    """ "Your contact: <name> · <email>" (the customer's ``account_engineer``), when configured."""
    c = ctx.report.customer
    if not c.contact_email:
        return []
    email = esc(c.contact_email, NAME_LIMIT)
    return [
        ctx.p(
            f"Your contact: <b>{esc(c.contact_name, NAME_LIMIT)}</b> {DOT} "
            f'<a href="mailto:{email}" color="#{ctx.theme.brand.hexval()[2:]}">{email}</a>',
            "cover_meta",
        )
    ]


def build_cover(ctx: Ctx) -> list[Flowable]:
    r = ctx.report
    status = overall_status(r)
    word, gloss = STATUS_WORDS[status]
    colour = {"high": ss.SEV_HIGH, "medium": ss.SEV_MEDIUM, "low": ss.OK_GREEN}[status]
    status_box = Table(
        [
            [
                ctx.p(f'<font color="#{colour.hexval()[2:]}"><b>{esc(word, 40)}</b></font>', "cover_status"),
                ctx.p(esc(gloss, SENTENCE_LIMIT), "body"),
            ]
        ],
        colWidths=[70 * ss.MM, ss.FRAME_WIDTH - 70 * ss.MM],
        hAlign="LEFT",
    )
    status_box.setStyle(
        [
            ("FONT", (0, 0), (-1, -1), ss.FONT, ss.TABLE_SIZE),
            ("BACKGROUND", (0, 0), (-1, -1), ctx.theme.brand_tint),
            ("LINEBEFORE", (0, 0), (0, -1), 4, colour),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("LEFTPADDING", (0, 0), (-1, -1), 10),
            ("TOPPADDING", (0, 0), (-1, -1), 8),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 9),
        ]
    )
    items = top_items(r)
    matters: list[Flowable] = [ctx.p(f"What matters most {ctx.w.this}", "h2")]
    if items:
        matters += [ctx.p(esc(t, SENTENCE_LIMIT), "cover_item", bulletText=f"{i}.") for i, t in enumerate(items, 1)]
    else:
        matters.append(ctx.p(f"Nothing stood out {ctx.w.this}.", "note"))
    listing = [
        ctx.p(
            esc(title, NAME_LIMIT)
            + ("" if ok else f' <font color="#{ss.MUTED.hexval()[2:]}">{DASH} not available {ctx.w.this}</font>'),
            "cover_meta",
        )
        for title, ok in contents(r)
    ]
    return [
        ctx.p(("TEST — " if ctx.branding.test else "") + kicker(r), "cover_kicker"),
        *(
            [ctx.p(f"TEST: sent only to the person who asked for it; not the {ctx.w.noun}'s report.", "cover_meta")]
            if ctx.branding.test
            else []
        ),
        ctx.p(esc(r.customer.name, NAME_LIMIT), "cover_customer"),
        ctx.p(f"<b>{esc(period_line(r, ctx.tz))}</b>", "cover_sub"),
        ctx.p(
            f"Prepared by {esc(ctx.branding.msp_name or 'your MSP', NAME_LIMIT)} on "
            f"{esc(fmt_date(_local(r.generated_at, ctx.tz).date()))} {DOT} all times in {esc(r.period.timezone, 60)}",
            "cover_meta",
        ),
        *contact_line(ctx),
        Spacer(1, 12),
        KeepTogether([ctx.p("Overall status", "h2"), status_box]),
        Spacer(1, 6),
        KeepTogether(matters),
        Spacer(1, 10),
        KeepTogether([ctx.p("In this report", "h2"), *listing]),
    ]


def kicker(report: Report) -> str:
    """'MONTHLY SERVICE REPORT', 'WEEKLY TECHNICAL REPORT': the cover's line above the name."""
    adjective = fmt.words(report.period).adjective.upper()
    return f"{adjective} TECHNICAL REPORT" if fmt.is_technical(report) else f"{adjective} SERVICE REPORT"


def build_executive_summary(ctx: Ctx) -> list[Flowable]:
    r = ctx.report
    out: list[Flowable] = [outline_heading(ctx, "Executive summary"), ctx.p(esc(period_line(r, ctx.tz)), "source")]
    if r.summary:
        for sentence in r.summary:
            out.append(ctx.p(esc(sentence, SENTENCE_LIMIT), "bullet", bulletText="\u2022"))
    else:
        out.append(ctx.p(f"No summary was produced for {ctx.w.this_span}.", "note"))

    out.append(ctx.p("Flags", "h2"))
    flags = sorted(customer_flags(r.flags), key=lambda f: SEVERITY_ORDER.get(f.severity, 9))
    if not flags:
        out.append(ctx.p(f"Nothing needs your attention {ctx.w.this}.", "body"))
    else:
        rows = []
        extra: list[Any] = []
        for i, f in enumerate(flags, start=1):
            colour = ss.SEVERITY_COLORS.get(f.severity, ss.SEV_LOW)
            rows.append(
                [
                    shorten(f.severity, 12).upper(),
                    ctx.cell(SECTION_TITLES.get(f.section, f.section), 60),
                    ctx.cell(f.message, SENTENCE_LIMIT),
                ]
            )
            extra += [
                ("BACKGROUND", (0, i), (0, i), colour),
                ("TEXTCOLOR", (0, i), (0, i), ss.WHITE),
                ("FONT", (0, i), (0, i), ss.FONT_BOLD, ss.TABLE_SIZE - 0.5),
                ("ALIGN", (0, i), (0, i), "CENTER"),
            ]
        w = ss.FRAME_WIDTH
        out.append(
            data_table(
                ctx, ["Severity", "Area", "What happened"], rows, [20 * ss.MM, 40 * ss.MM, w - 60 * ss.MM], extra=extra
            )
        )

    c = r.commentary
    if c is not None and c.text.strip():
        out.append(ctx.p("Engineer's commentary", "h2"))
        out.append(ctx.p(esc(c.text, None, multiline=True), "commentary"))
        out.append(ctx.p(f"{DASH} {esc(c.author, NAME_LIMIT)}, {esc(fmt_dt(c.at, ctx.tz))}", "commentary_meta"))
    return out


# ---- sections ----------------------------------------------------------------------------


def _group_rows(groups: Sequence[UptimeGroup], target: float) -> tuple[list[list[Any]], list[Any]]:
    rows: list[list[Any]] = []
    extra: list[Any] = []
    for i, g in enumerate(groups, start=1):
        rows.append([g.name, fmt_pct(g.uptime_pct), fmt_num(g.downtime_minutes), fmt_num(g.devices)])
        if g.uptime_pct < target:
            extra.append(("TEXTCOLOR", (1, i), (1, i), ss.SEV_HIGH))
    return rows, extra


DEVICE_MINUTES = "Device-minutes\n(summed over devices)"


def _longest(events: Sequence[OutageEvent], w: fmt.Words = fmt.WORDS["week"]) -> str:
    if not events:
        return f"none {w.this}"
    o = max(events, key=lambda e: e.minutes)
    return f"longest {fmt.duration(o.minutes)}, {shorten(o.site, 30)}"


def outage_table(
    ctx: Ctx, events: Sequence[OutageEvent], title: str, *, with_devices: bool, limit: int = fmt.MAX_TIMELINE
) -> list[Flowable]:
    """The outage timeline: one row per outage (a site's overlapping device outages merged),
    start, end and length in the customer's timezone, and the devices affected; the ``limit``
    longest when there are more (the technical detail lists them all)."""
    head = ctx.p(title, "h2")
    if not events:
        return [KeepTogether([head, ctx.p(f"No outages {ctx.w.this}.", "note")])]
    shown = fmt.timeline(events, limit)
    w = ss.FRAME_WIDTH
    rows: list[list[Any]] = []
    for o in shown:
        row = [
            ctx.cell(o.site, NAME_LIMIT),
            fmt_dt_short(o.start, ctx.tz),
            fmt.outage_end(o, ctx.tz) if not o.ongoing else ctx.cell(fmt.outage_end(o, ctx.tz, ctx.w), 40),
            fmt.duration(o.minutes),
        ]
        if with_devices:
            row.append(ctx.cell(fmt.outage_devices(o), 200))
        rows.append(row)
    if with_devices:
        header = ["Site", "Started", "Ended", "Length", "Affected"]
        widths = [30 * ss.MM, 29 * ss.MM, 29 * ss.MM, 22 * ss.MM]
        widths.append(w - sum(widths))
    else:
        header = ["Site", "Unavailable from", "Until", "Length"]
        widths = [w - 84 * ss.MM, 31 * ss.MM, 31 * ss.MM, 22 * ss.MM]
    note = f"All times {esc(ctx.report.period.timezone, 60)}. "
    if len(shown) < len(events):
        note += f"The {len(shown)} longest of {len(events)} outages are listed. "
    if with_devices:
        note += (
            "Overlapping down times of one site's devices count as one outage; the tables below add up each "
            "device's own down time (device-minutes, summed over devices)."
        )
    table = data_table(ctx, header, rows, widths, numeric=(3,), long=len(rows) > fmt.MAX_TIMELINE)
    if len(rows) > fmt.MAX_TIMELINE:  # a long list paginates, its header repeated; only its heading stays with it
        return [KeepTogether([head, Spacer(1, 1)]), table, ctx.p(note, "small")]
    return [KeepTogether([head, table]), ctx.p(note, "small")]


def build_uptime(ctx: Ctx, u: Uptime) -> list[Flowable]:
    met = u.overall_pct >= u.target_pct
    prev = ctx.previous_week
    last = prev.uptime_pct if prev is not None else None
    note = ctx.versus(
        None if last is None else fmt_pct(last),
        f"{fmt.target(u.target_pct)} {status_word(met)}",
        delta=None if last is None else fmt_signed(u.overall_pct - last, "pts", 2),
    )
    colour = "" if met else f' color="#{ss.SEV_HIGH.hexval()[2:]}"'
    out: list[Flowable] = [
        kpi_row(
            ctx,
            [
                (f"<font{colour}>{fmt_pct(u.overall_pct)}</font>", "Overall uptime", note),
                (fmt_num(len(u.outages)), "Outages", _longest(u.outages, ctx.w)),
                (fmt_num(sum(g.devices for g in u.by_site)), "Devices monitored", ""),
            ],
        ),
        ctx.p(f"Overall figure: {esc(voice.overall_basis(u), NAME_LIMIT)}.", "small"),
        *outage_table(ctx, u.outages, "Outages", with_devices=True),
    ]
    labels, values = ctx.trend(lambda w: w.uptime_pct, u.overall_pct)
    out.append(
        KeepTogether(
            [
                ctx.p(f"Uptime, last {len(labels)} {ctx.w.plural if len(labels) != 1 else ctx.w.noun}", "h2"),
                kpi_trend_chart(ctx.theme, labels, values, u.target_pct, digits=fmt.UPTIME_DIGITS),
            ]
        )
    )
    w = ss.FRAME_WIDTH
    widths = [w - 102 * ss.MM, 27 * ss.MM, 53 * ss.MM, 22 * ss.MM]
    if u.by_site:
        out.append(ctx.p("Uptime per site", "h2"))
        out.append(
            uptime_by_site_chart(
                ctx.theme, [g.name for g in u.by_site], [g.uptime_pct for g in u.by_site], u.target_pct
            )
        )
        rows, extra = _group_rows(u.by_site, u.target_pct)
        rows = [[ctx.cell(r[0], NAME_LIMIT), *r[1:]] for r in rows]
        out.append(
            data_table(ctx, ["Site", "Uptime", DEVICE_MINUTES, "Devices"], rows, widths, numeric=(1, 2, 3), extra=extra)
        )
    if u.by_class:
        out.append(ctx.p("Uptime per device class", "h2"))
        rows, extra = _group_rows(u.by_class, u.target_pct)
        rows = [[ctx.cell(r[0], NAME_LIMIT), *r[1:]] for r in rows]
        out.append(
            data_table(
                ctx,
                ["Device class", "Uptime", DEVICE_MINUTES, "Devices"],
                rows,
                widths,
                numeric=(1, 2, 3),
                extra=extra,
            )
        )
    return out


def _week_label(period_end: date, compact: bool, kind: str = "week") -> str:
    """A trend point: the period's first day ('w/c 16 Nov'; compact '16 Nov'), a month by name."""
    first = fmt.week_monday(period_end, kind)
    return first if compact or kind == "month" else f"w/c {first}" if kind == "week" else f"from {first}"


def build_tickets(ctx: Ctx, t: Tickets) -> list[Flowable]:
    prev = ctx.previous_week

    def vs(now: int, before: int | None) -> str:
        if before is None:
            return ctx.versus(None)
        return ctx.versus(fmt_num(before), delta=fmt_signed(now - before))

    last_sla = prev.sla_attainment_pct if prev is not None else None
    if t.sla_attainment_pct is None:
        sla_value = DASH
        sla_note = "no tickets closed \u00b7 " + ctx.versus(
            None if last_sla is None else fmt.rate(last_sla), fmt.target(t.target_pct)
        )
    else:
        met = t.sla_attainment_pct >= t.target_pct
        colour = "" if met else f' color="#{ss.SEV_HIGH.hexval()[2:]}"'
        sla_value = f"<font{colour}>{fmt.rate(t.sla_attainment_pct)}</font>"
        sla_note = ctx.versus(
            None if last_sla is None else fmt.rate(last_sla), f"{fmt.target(t.target_pct)} {status_word(met)}"
        )
    out: list[Flowable] = [
        kpi_row(
            ctx,
            [
                (fmt_num(t.opened), "Opened", vs(t.opened, prev.tickets_opened if prev else None)),
                (fmt_num(t.closed), "Closed", vs(t.closed, prev.tickets_closed if prev else None)),
                (fmt_num(t.backlog), f"Open at {ctx.w.at_end}", vs(t.backlog, prev.backlog if prev else None)),
                (fmt_num(t.sla_breaches), "SLA breaches", vs(t.sla_breaches, prev.sla_breaches if prev else None)),
                (sla_value, "SLA attainment", sla_note),
            ],
        )
    ]

    out.append(ctx.p("Ticket trend", "h2"))
    points = earlier_ticket_points(ctx.report)
    if not points:
        out.append(ctx.p(f"No earlier {ctx.w.plural} stored yet \u2014 the trend starts with {ctx.w.this}.", "note"))
    points.append(TrendPoint(ctx.w.point, t.opened, t.closed, t.backlog))
    out.append(ticket_trend_chart(ctx.theme, points, ctx.w.at_end))

    if t.by_priority:
        out.append(ctx.p(f"Opened {ctx.w.this} by priority", "h2"))
        total = sum(t.by_priority.values()) or 1
        rows = [
            [ctx.cell(name, NAME_LIMIT), fmt_num(n), fmt_pct(100.0 * n / total, 0)] for name, n in t.by_priority.items()
        ]
        out.append(
            data_table(ctx, ["Priority", "Opened", "Share"], rows, [70 * ss.MM, 30 * ss.MM, 30 * ss.MM], numeric=(1, 2))
        )
    return out


def build_changes(ctx: Ctx, c: Changes) -> list[Flowable]:
    shown = len(c.items)
    line = f"<b>{fmt_num(c.count)}</b> change{'s' if c.count != 1 else ''} executed {ctx.w.this}."
    if shown < c.count:
        line += f" The {shown} listed below are those the source returned."
    out: list[Flowable] = [ctx.p(line)]
    if not c.items:
        if c.count == 0:
            out.append(ctx.p(f"No changes were executed {ctx.w.this}.", "note"))
        return out
    w = ss.FRAME_WIDTH
    rows = [[ctx.cell(ch.id, 40), ctx.cell(ch.title), fmt_dt_short(ch.closed_at, ctx.tz)] for ch in c.items]
    out.append(Spacer(1, 4))
    out.append(
        data_table(
            ctx,
            ["ID", "Change", "Closed"],
            rows,
            [28 * ss.MM, w - 63 * ss.MM, 35 * ss.MM],
            numeric=(2,),
            long=True,
        )
    )
    return out


def build_backups(ctx: Ctx, b: Backups) -> list[Flowable]:
    if not b.run_history:
        rate, rate_note = DASH, "source keeps no run history"
    elif b.success_rate_pct is None:
        rate, rate_note = DASH, "no runs finished"
    else:
        rate, rate_note = fmt_pct(b.success_rate_pct, fmt.RATE_DIGITS), "of the runs that ran succeeded"
    prev = ctx.previous_week
    last_rate = prev.backup_success_pct if prev is not None else None
    counts = {s: 0 for s in ("ok", "stale", "failed", "never")}
    for p in b.protected:
        counts[p.status] = counts.get(p.status, 0) + 1
    problems = counts["stale"] + counts["failed"] + counts["never"]
    out: list[Flowable] = [
        kpi_row(
            ctx,
            [
                (
                    rate,
                    "Backup success rate",
                    rate_note + " \u00b7 " + ctx.versus(None if last_rate is None else fmt.rate(last_rate)),
                ),
                (
                    fmt_num(b.runs_total) if b.run_history else DASH,
                    f"Runs {ctx.w.this}",
                    f"{b.runs_warning} with warnings" if b.runs_warning else "",
                ),
                (fmt_num(len(b.protected)), "Protected items", ""),
                (
                    f'<font color="#{(ss.SEV_HIGH if problems else ss.OK_GREEN).hexval()[2:]}">{problems}</font>',
                    "Items needing attention",
                    "stale, failed or never backed up",
                ),
            ],
        )
    ]
    for p in fmt.stopped(b.protected):  # runs stopped: said in words, beside the rate of those that ran
        text = esc(fmt.capital(fmt.backup_stopped(p, ctx.tz)), SENTENCE_LIMIT)
        out.append(
            ctx.p(
                f'<font color="#{ss.SEV_HIGH.hexval()[2:]}"><b>{text}</b></font> '
                f"({esc(fmt.hours(p.rpo_hours))} before the {ctx.w.noun} ended).",
                "body",
            )
        )
    if not b.protected:
        out.append(ctx.p("No protected items reported by the source.", "note"))
        return out
    out.append(ctx.p("Protected items", "h2"))
    offsite = any(p.last_offsite is not None for p in b.protected)
    verify = any(p.verified is not None for p in b.protected)
    w = ss.FRAME_WIDTH
    # column: (header, width, numeric, cell)
    cols: list[tuple[str, float, bool, Any]] = [
        ("Item", 0.0, False, lambda p: ctx.cell(p.name, NAME_LIMIT)),
        (
            "Last success",
            28 * ss.MM,
            True,
            lambda p: fmt_dt_short(p.last_success, ctx.tz) if p.last_success else "never",
        ),
        ("RPO (h)", 17 * ss.MM, True, lambda p: fmt_num(p.rpo_hours)),
    ]
    if b.run_history:
        cols.append(
            ("Runs ok/warn/fail", 28 * ss.MM, True, lambda p: f"{p.runs_ok} / {p.runs_warning} / {p.runs_failed}")
        )
    if offsite:
        cols.append(
            (
                "Last offsite",
                28 * ss.MM,
                True,
                lambda p: fmt_dt_short(p.last_offsite, ctx.tz) if p.last_offsite else DASH,
            )
        )
    if verify:
        cols.append(
            (
                "Restore test",
                20 * ss.MM,
                False,
                lambda p: DASH if p.verified is None else ("passed" if p.verified else "FAILED"),
            )
        )
    cols.append(("Status", 16 * ss.MM, False, lambda p: shorten(p.status, 12).upper()))
    cols[0] = (cols[0][0], w - sum(c[1] for c in cols[1:]), False, cols[0][3])
    status_col = len(cols) - 1
    rows = []
    extra: list[Any] = []
    for i, p in enumerate(b.protected, start=1):
        rows.append([c[3](p) for c in cols])
        extra += [
            ("TEXTCOLOR", (status_col, i), (status_col, i), ss.BACKUP_STATUS_COLORS.get(p.status, ss.MUTED)),
            ("FONT", (status_col, i), (status_col, i), ss.FONT_BOLD, ss.TABLE_SIZE),
        ]
        if verify and p.verified is False:
            col = [c[0] for c in cols].index("Restore test")
            extra += [("TEXTCOLOR", (col, i), (col, i), ss.SEV_HIGH)]
    out.append(
        data_table(
            ctx,
            [c[0] for c in cols],
            rows,
            [c[1] for c in cols],
            numeric=tuple(n for n, c in enumerate(cols) if c[2]),
            extra=extra,
        )
    )
    return out


def build_security(ctx: Ctx, s: Security) -> list[Flowable]:
    if s.secure_score_pct is None:
        score, score_note = (
            DASH,
            esc(voice.score_missing(ctx.w), NAME_LIMIT) if s.score_note else "not part of this report",
        )
    else:
        score = fmt_pct(s.secure_score_pct, fmt.RATE_DIGITS)
        change = "" if s.secure_score_change is None else f"{fmt_signed(s.secure_score_change, 'pts')} {ctx.w.this}"
        if s.secure_score_change is not None and s.secure_score_change < 0:
            change = f'<font color="#{ss.SEV_HIGH.hexval()[2:]}">{change}</font>'
        last_score = ctx.previous_week.secure_score_pct if ctx.previous_week is not None else None
        score_note = (
            ctx.versus(None if last_score is None else fmt.rate(last_score))
            + " \u00b7 no target set"
            + (f" \u00b7 {change}" if change else "")
        )
    prev = ctx.previous_week
    open_colour = ss.SEV_HIGH if s.incidents_open else ss.OK_GREEN
    out: list[Flowable] = [
        kpi_row(
            ctx,
            [
                (
                    fmt_num(s.incidents_new),
                    "New incidents",
                    ctx.versus(None if prev is None or prev.incidents_new is None else fmt_num(prev.incidents_new)),
                ),
                (
                    f'<font color="#{open_colour.hexval()[2:]}">{fmt_num(s.incidents_open)}</font>',
                    f"Open at {ctx.w.at_end}",
                    "",
                ),
                (score, "Secure score", score_note),
            ],
        )
    ]
    if s.secure_score_pct is not None or any(w.secure_score_pct is not None for w in ctx.report.history):
        labels, values = ctx.trend(lambda w: w.secure_score_pct, s.secure_score_pct)
        known = [v for v in values if v is not None]
        out.append(
            KeepTogether(
                [
                    ctx.p(f"Secure Score, last {len(labels)} {ctx.w.plural if len(labels) != 1 else ctx.w.noun}", "h2"),
                    kpi_trend_chart(
                        ctx.theme, labels, values, None, digits=fmt.RATE_DIGITS, axis=score_axis_range(known)
                    ),
                ]
            )
        )
    out.append(ctx.p("New incidents by severity", "h2"))
    sevs = ["high", "medium", "low", "informational"]
    sevs += [k for k in s.by_severity if k not in sevs]
    header = [shorten(k, 20).capitalize() for k in sevs]
    w = min(ss.FRAME_WIDTH / len(sevs), 30 * ss.MM)
    sev_table = data_table(
        ctx,
        header,
        [[fmt_num(s.by_severity.get(k, 0)) for k in sevs]],
        [w] * len(sevs),
        numeric=tuple(range(len(sevs))),
    )
    out.append(sev_table)
    out.append(ctx.p("Open incidents", "h2"))
    if not s.open_items:
        out.append(ctx.p("No incidents are open.", "note"))
        return out
    rows = []
    extra: list[Any] = []
    for i, item in enumerate(s.open_items, start=1):
        rows.append(
            [
                ctx.cell(item.id, 40),
                ctx.cell(item.title),
                shorten(item.severity, 14).capitalize(),
                fmt_dt_short(item.created, ctx.tz),
            ]
        )
        extra += [
            ("TEXTCOLOR", (2, i), (2, i), ss.SEVERITY_COLORS.get(item.severity, ss.MUTED)),
            ("FONT", (2, i), (2, i), ss.FONT_BOLD, ss.TABLE_SIZE),
        ]
    full = ss.FRAME_WIDTH
    out.append(
        data_table(
            ctx,
            ["ID", "Incident", "Severity", "Created"],
            rows,
            [28 * ss.MM, full - 85 * ss.MM, 25 * ss.MM, 32 * ss.MM],
            numeric=(3,),
            extra=extra,
        )
    )
    return out


def build_sites(ctx: Ctx, s: Sites) -> list[Flowable]:
    w = ss.FRAME_WIDTH
    if s.basis != "period":
        out: list[Flowable] = [
            ctx.p(
                f"<b>Current status only — not a {ctx.w.adjective} figure.</b> "
                + esc(voice.sites_current_only(ctx.w), ERROR_LIMIT)
            ),
            Spacer(1, 4),
        ]
        if s.checks:
            rows: list[list[Any]] = [
                [ctx.cell(c.name, NAME_LIMIT), ctx.cell(c.status_now or "unknown", 30)] for c in s.checks
            ]
            out.append(data_table(ctx, ["Site", "Status now"], rows, [w - 50 * ss.MM, 50 * ss.MM]))
        return out
    measured = [c for c in s.checks if c.availability_pct is not None]
    below = [c for c in measured if c.availability_pct is not None and c.availability_pct < s.target_pct]
    out = [
        ctx.p(
            f"{len(s.checks)} public check{'s' if len(s.checks) != 1 else ''}; "
            f"target {fmt.target(s.target_pct)} availability. "
            + (f"<b>{len(below)} below target.</b>" if below else "All met the target.")
        ),
        Spacer(1, 4),
    ]
    if not measured:
        return out
    rows = []
    extra: list[Any] = []
    for i, c in enumerate(measured, start=1):
        ok = c.availability_pct is not None and c.availability_pct >= s.target_pct
        rows.append(
            [ctx.cell(c.name, NAME_LIMIT), fmt_pct(c.availability_pct), fmt_num(c.downtime_minutes), status_word(ok)]
        )
        colour = ss.OK_GREEN if ok else ss.SEV_HIGH
        extra += [("TEXTCOLOR", (3, i), (3, i), colour), ("FONT", (3, i), (3, i), ss.FONT_BOLD, ss.TABLE_SIZE)]
    out.append(
        data_table(
            ctx,
            ["Site", "Availability", "Downtime (min)", "vs target"],
            rows,
            [w - 100 * ss.MM, 30 * ss.MM, 35 * ss.MM, 35 * ss.MM],
            numeric=(1, 2),
            extra=extra,
        )
    )
    if s.outages:
        out += outage_table(ctx, s.outages, "Interruptions", with_devices=False)
    return out


def build_recommendations(ctx: Ctx) -> list[Flowable]:
    """Part of the executive summary page (a short list alone on a last page helped nobody)."""
    out: list[Flowable] = [outline_heading(ctx, "Recommendations", "h2")]
    if not ctx.report.recommendations:
        out.append(ctx.p(f"No recommendations {ctx.w.this}.", "note"))
    for i, rec in enumerate(ctx.report.recommendations, start=1):
        out.append(ctx.p(esc(rec, SENTENCE_LIMIT), "bullet", bulletText=f"{i}."))
    return [KeepTogether(out)]


def build_next_week(ctx: Ctx) -> list[Flowable]:
    """The changes scheduled for the coming week and the requests waiting on the customer
    (:func:`reporting.fmt.next_week`); a part whose source is unavailable is left out."""
    planned, waiting = fmt.next_week(ctx.report)
    if planned is None and waiting is None:
        return []
    w = ss.FRAME_WIDTH
    out: list[Flowable] = [Spacer(1, 10), outline_heading(ctx, fmt.NEXT_WEEK_TITLE, "h2")]
    if planned is not None:
        if not planned:
            out.append(ctx.p(fmt.PLANNED_NONE, "note"))
        else:
            rows = [[fmt_dt_short(c.start, ctx.tz), ctx.cell(c.title), ctx.cell(c.id, 40)] for c in planned]
            out += [
                ctx.p(fmt.PLANNED_LEAD),
                Spacer(1, 3),
                data_table(ctx, ["When", "Change", "Ref"], rows, [35 * ss.MM, w - 63 * ss.MM, 28 * ss.MM]),
            ]
    if waiting is not None:
        out.append(Spacer(1, 6))
        if not waiting:
            out.append(ctx.p(fmt.WAITING_NONE, "note"))
        else:
            rows = [[ctx.cell(t.id, 40), ctx.cell(t.title), fmt_dt_short(t.created, ctx.tz)] for t in waiting]
            out += [
                ctx.p(fmt.WAITING_LEAD),
                Spacer(1, 3),
                data_table(ctx, ["Ticket", "Subject", "Opened"], rows, [28 * ss.MM, w - 63 * ss.MM, 35 * ss.MM]),
            ]
    return [KeepTogether(out)]


def build_how_to_read(ctx: Ctx) -> list[Flowable]:
    """Each figure's definition in plain words (:func:`reporting.metrics.definitions`), one page."""
    rows: list[list[Any]] = []
    extra: list[Any] = []
    last = None
    for section, figure, definition in definitions(ctx.report.period.kind, fmt.is_technical(ctx.report)):
        if section and section != last:
            extra += [
                ("SPAN", (0, len(rows)), (1, len(rows))),
                ("BACKGROUND", (0, len(rows)), (1, len(rows)), ctx.theme.brand_tint),
            ]
            rows.append([ctx.p(f"<b>{esc(SECTION_TITLES.get(section, section), NAME_LIMIT)}</b>", "glossary_head"), ""])
        last = section
        rows.append(
            [
                ctx.p(f"<b>{esc(figure, NAME_LIMIT)}</b>", "glossary_text"),
                ctx.p(esc(definition, SENTENCE_LIMIT), "glossary_text"),
            ]
        )
    table = Table(rows, colWidths=[42 * ss.MM, ss.FRAME_WIDTH - 42 * ss.MM], hAlign="LEFT", repeatRows=0)
    table.setStyle(
        [
            ("FONT", (0, 0), (-1, -1), ss.FONT, ss.SMALL_SIZE),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LINEBELOW", (0, 0), (-1, -1), 0.4, ss.GRID),
            ("LEFTPADDING", (0, 0), (-1, -1), 4),
            ("TOPPADDING", (0, 0), (-1, -1), 3),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            *extra,
        ]
    )
    return [
        outline_heading(ctx, "How to read this report"),
        ctx.p("What each figure in this report means, and how it is counted.", "source"),
        table,
        Spacer(1, 6),
        ctx.p(
            "Severity: <b>high</b> needs a decision or action soon; <b>medium</b> is worth watching; "
            "<b>low</b> is for your information.",
            "glossary_text",
        ),
    ]


SECTION_BUILDERS: dict[str, tuple[type, Callable[[Ctx, Any], list[Flowable]]]] = {
    "uptime": (Uptime, build_uptime),
    "tickets": (Tickets, build_tickets),
    "changes": (Changes, build_changes),
    "backups": (Backups, build_backups),
    "security": (Security, build_security),
    "sites": (Sites, build_sites),
}


def build_section(ctx: Ctx, name: str) -> list[Flowable]:
    """Heading, provenance line, then either the section's figures or the unavailable box."""
    out = heading(ctx, SECTION_TITLES.get(name, name))
    section = ctx.report.sections.get(name)
    if section is None:
        return out + unavailable_box(ctx, name)
    out.append(source_line(ctx, section))
    out += section_findings(ctx, name)
    kind, builder = SECTION_BUILDERS[name]
    if not section.ok or not isinstance(section.data, kind):
        return out + unavailable_box(ctx, name)
    return out + builder(ctx, section.data)


# ---- the technical detail (the technical variant only) ------------------------------------


def _compact(dt: datetime | None, tz: tzinfo) -> str:
    """'25 Nov 19:52': the detail tables' times (no weekday, so dense columns stay one line)."""
    return fmt.when_compact(dt, tz, never=DASH)


def _detail_heading(ctx: Ctx, name: str, what: str) -> Flowable:
    return outline_heading(ctx, f"{SECTION_TITLES.get(name, name)}: {what}", "h2_list", level=1)


def _detail_missing(ctx: Ctx, name: str) -> list[Flowable]:
    """An unavailable section's detail, in the customer's words (the reason stays on the review card)."""
    return [
        ctx.p(f"<b>Not available {ctx.w.this}</b> {DASH} {esc(voice.missing_short(name, ctx.w), ERROR_LIMIT)}", "note")
    ]


def _not_kept(ctx: Ctx, what: str) -> list[Flowable]:
    return [ctx.p(f"The {what} was not kept for {ctx.w.this_span}; the figures above are complete.", "note")]


def _verdict_style(row: int, col: int, bad: bool) -> list[Any]:
    if not bad:
        return []
    return [
        ("TEXTCOLOR", (col, row), (col, row), ss.SEV_HIGH),
        ("FONT", (col, row), (col, row), ss.FONT_BOLD, ss.TABLE_SIZE),
    ]


def detail_uptime(ctx: Ctx, u: Uptime) -> list[Flowable]:
    """Every monitored device with its own uptime, then every device's down spells."""
    if not u.devices:
        return _not_kept(ctx, "per-device list") if u.by_site else [ctx.p("No devices were monitored.", "note")]
    w = ss.FRAME_WIDTH
    widths = [0.0, 30 * ss.MM, 20 * ss.MM, 19 * ss.MM, 21 * ss.MM, 21 * ss.MM, 16 * ss.MM]
    widths[0] = w - sum(widths)
    rows: list[list[Any]] = []
    extra: list[Any] = []
    for i, d in enumerate(u.devices, start=1):
        rows.append(
            [
                ctx.cell(d.name, NAME_LIMIT),
                ctx.cell(d.site, NAME_LIMIT),
                ctx.cell(d.device_class, 40),
                fmt_pct(d.uptime_pct),
                fmt.duration(d.downtime_minutes),
                f"{fmt_num(d.monitored_minutes / 60.0)} h",
                fmt_num(len(d.outages)),
            ]
        )
        extra += _verdict_style(i, 3, d.uptime_pct < u.target_pct)
    out: list[Flowable] = [
        data_table(
            ctx,
            ["Device", "Site", "Class", "Uptime", "Downtime", "Monitored", "Outages"],
            rows,
            widths,
            numeric=(3, 4, 5, 6),
            extra=extra,
            long=True,
        ),
        ctx.p(
            f"{len(u.devices)} device{'s' if len(u.devices) != 1 else ''}. Monitored is the {ctx.w.noun} less planned "
            "maintenance; each device's downtime adds up to the site and device-class tables above. Uptime below "
            f"the {esc(fmt.target(u.target_pct))} target is in red.",
            "small",
        ),
    ]
    spells = fmt.device_spells(u.devices)
    out += [CondPageBreak(30 * ss.MM), ctx.p("Down spells, device by device", "h2_list")]
    if not spells:
        out.append(ctx.p(f"No device was down {ctx.w.this}.", "note"))
    else:
        widths = [0.0, 32 * ss.MM, 25 * ss.MM, 25 * ss.MM, 22 * ss.MM]
        widths[0] = w - sum(widths)
        rows = [
            [
                ctx.cell(d.name, NAME_LIMIT),
                ctx.cell(d.site, NAME_LIMIT),
                _compact(o.start, ctx.tz),
                ctx.cell(fmt.spell_end(o, ctx.tz, ctx.w), 40),
                fmt.duration(o.minutes),
            ]
            for d, o in spells
        ]
        out.append(
            data_table(ctx, ["Device", "Site", "Down from", "Until", "Length"], rows, widths, numeric=(4,), long=True)
        )
        out.append(ctx.p(f"All times {esc(ctx.report.period.timezone, 60)}.", "small"))
    if len(u.outages) > fmt.MAX_TIMELINE:
        out += outage_table(
            ctx, u.outages, f"All {len(u.outages)} outages by site", with_devices=True, limit=len(u.outages)
        )
    return out


def detail_tickets(ctx: Ctx, t: Tickets) -> list[Flowable]:
    """Every ticket counted: opened, closed or open at week end, with the verdict it was counted by."""
    if not t.items:
        if t.opened or t.closed or t.backlog:
            return _not_kept(ctx, "ticket list")
        return [ctx.p(f"No service tickets {ctx.w.this}.", "note")]
    w = ss.FRAME_WIDTH
    widths = [14 * ss.MM, 0.0, 17 * ss.MM, 25 * ss.MM, 25 * ss.MM, 21 * ss.MM, 23 * ss.MM]
    widths[1] = w - sum(widths)
    rows: list[list[Any]] = []
    extra: list[Any] = []
    for i, item in enumerate(t.items, start=1):
        rows.append(
            [
                ctx.cell(item.id, 40),
                ctx.cell(item.title),
                ctx.cell(item.priority, 40),
                _compact(item.created, ctx.tz),
                _compact(item.closed, ctx.tz) if item.closed else "open",
                fmt.age(item.age_hours),
                ctx.cell(fmt.verdict(item.sla), 40),
            ]
        )
        if item.sla in ("missed", "breached"):
            extra.append(("BACKGROUND", (6, i), (6, i), ss.UNAVAILABLE_BG))
    return [
        data_table(
            ctx,
            ["Ticket", "Subject", "Priority", "Opened", "Closed", "Age", "SLA"],
            rows,
            widths,
            numeric=(5,),
            extra=extra,
            long=True,
        ),
        ctx.p(
            esc(fmt.ticket_tally(t, ctx.report.period), SENTENCE_LIMIT)
            + f" Age runs to the close, or to {ctx.w.end} for a ticket still open.",
            "small",
        ),
    ]


def detail_backups(ctx: Ctx, b: Backups) -> list[Flowable]:
    """Every backup run that finished in the week (the runs the success rate counts)."""
    if not b.run_history:
        return [
            ctx.p(
                "The backup system keeps no per-run history, so no run list can be given; each protected item's "
                "last good backup is in the table above.",
                "note",
            )
        ]
    if not b.runs:
        return _not_kept(ctx, "run list") if b.runs_total else [ctx.p(f"No backup run finished {ctx.w.this}.", "note")]
    w = ss.FRAME_WIDTH
    widths = [0.0, 25 * ss.MM, 22 * ss.MM, 25 * ss.MM]
    widths[0] = w - sum(widths)
    rows: list[list[Any]] = []
    extra: list[Any] = []
    for i, r in enumerate(b.runs, start=1):
        rows.append(
            [
                ctx.cell(r.item, NAME_LIMIT),
                _compact(r.ended, ctx.tz),
                fmt.run_result(r.status),
                _compact(r.recovery_point, ctx.tz),
            ]
        )
        colour = {"failed": ss.SEV_HIGH, "warning": ss.SEV_MEDIUM}.get(r.status)
        if colour is not None:
            extra += [("TEXTCOLOR", (2, i), (2, i), colour), ("FONT", (2, i), (2, i), ss.FONT_BOLD, ss.TABLE_SIZE)]
    return [
        data_table(ctx, ["Protected item", "Finished", "Result", "Restores to"], rows, widths, extra=extra, long=True),
        ctx.p(esc(fmt.run_tally(b.runs, ctx.w) + " " + fmt.RESTORES_TO, SENTENCE_LIMIT), "small"),
    ]


def detail_security(ctx: Ctx, s: Security) -> list[Flowable]:
    """Every incident new in the week or open at its end."""
    if not s.incidents:
        if s.incidents_new or s.incidents_open:
            return _not_kept(ctx, "incident list")
        return [ctx.p(f"No security incidents {ctx.w.this}.", "note")]
    w = ss.FRAME_WIDTH
    widths = [14 * ss.MM, 0.0, 27 * ss.MM, 25 * ss.MM, 27 * ss.MM, 22 * ss.MM]
    widths[1] = w - sum(widths)
    rows: list[list[Any]] = []
    extra: list[Any] = []
    for i, item in enumerate(s.incidents, start=1):
        rows.append(
            [
                ctx.cell(item.id, 40),
                ctx.cell(item.title),
                shorten(item.severity, 14).capitalize(),
                _compact(item.created, ctx.tz),
                ctx.cell(fmt.incident_resolved(item, ctx.tz, ctx.w), 40),
                ctx.cell(fmt.status_word(item.status), 30),
            ]
        )
        extra += [
            ("TEXTCOLOR", (2, i), (2, i), ss.SEVERITY_COLORS.get(item.severity, ss.MUTED)),
            ("FONT", (2, i), (2, i), ss.FONT_BOLD, ss.TABLE_SIZE),
        ]
    return [
        data_table(
            ctx,
            ["ID", "Incident", "Severity", "Opened", "Resolved", "Status now"],
            rows,
            widths,
            extra=extra,
            long=True,
        ),
        ctx.p(
            esc(fmt.incident_tally(s.incidents, ctx.report.period), SENTENCE_LIMIT)
            + " Status now is the security system's own word when this report was made.",
            "small",
        ),
    ]


def detail_sites(ctx: Ctx, s: Sites) -> list[Flowable]:
    """Every public-site check with its interruptions; all of them listed when the section shows only the longest."""
    if not s.checks:
        return [ctx.p("No public-site checks are set up.", "note")]
    if s.basis != "period":
        return [ctx.p(f"Only each check's current status could be read {ctx.w.this} (see above).", "note")]
    w = ss.FRAME_WIDTH
    widths = [0.0, 24 * ss.MM, 22 * ss.MM, 27 * ss.MM, 22 * ss.MM]
    widths[0] = w - sum(widths)
    rows: list[list[Any]] = []
    for c in s.checks:
        spells = [o for o in s.outages if o.site == c.name]
        rows.append(
            [
                ctx.cell(c.name, NAME_LIMIT),
                fmt_pct(c.availability_pct),
                fmt.duration(c.downtime_minutes) if c.downtime_minutes is not None else DASH,
                fmt_num(len(spells)),
                fmt.duration(max(o.minutes for o in spells)) if spells else DASH,
            ]
        )
    out: list[Flowable] = [
        data_table(
            ctx,
            ["Check", "Availability", "Downtime", "Interruptions", "Longest"],
            rows,
            widths,
            numeric=(1, 2, 3, 4),
            long=True,
        )
    ]
    if len(s.outages) > fmt.MAX_TIMELINE:
        out += outage_table(
            ctx, s.outages, f"All {len(s.outages)} interruptions", with_devices=False, limit=len(s.outages)
        )
    return out


TECHNICAL_BUILDERS: tuple[tuple[str, str, type, Callable[[Ctx, Any], list[Flowable]]], ...] = (
    ("uptime", "every device", Uptime, detail_uptime),
    ("tickets", "every ticket", Tickets, detail_tickets),
    ("backups", "every backup run", Backups, detail_backups),
    ("security", "every incident", Security, detail_security),
    ("sites", "every check", Sites, detail_sites),
)


def build_technical(ctx: Ctx) -> list[Flowable]:
    """The technical variant's chapter: the detail behind each section's figures (the changes
    section already lists every change)."""
    out: list[Flowable] = [
        outline_heading(ctx, fmt.TECHNICAL_TITLE),
        ctx.p(esc(fmt.technical_lead(ctx.w), SENTENCE_LIMIT), "source"),
    ]
    for name, what, kind, builder in TECHNICAL_BUILDERS:
        out += [Spacer(1, 8), CondPageBreak(30 * ss.MM), _detail_heading(ctx, name, what)]
        section = ctx.report.sections.get(name)
        if section is None or not section.ok or not isinstance(section.data, kind):
            out += _detail_missing(ctx, name)
        else:
            out += builder(ctx, section.data)
    return out


# ---- page furniture and assembly ---------------------------------------------------------


@dataclass(frozen=True)
class Furniture:
    """What is drawn straight on the canvas: cover band, running header, footer."""

    theme: Theme
    msp_name: str
    customer: str
    footer_left: str
    logo: ImageReader | None
    created: datetime  # the PDF's creation date: when the report was generated
    header_right: str = ""  # the running header's right side (default: the MSP's name)
    band: str = "Managed services \u00b7 weekly report"  # the cover band's second line


def _fit(text: str, font: str, size: float, width: float) -> str:
    """Cut plain text so it fits ``width`` points."""
    if fonts.width(text, font, size) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fonts.width(text[:mid] + "\u2026", font, size) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "\u2026"


def _draw_cover(f: Furniture, canv: Canvas, _doc: Any) -> None:
    pw, ph = ss.PAGE_SIZE
    canv.saveState()
    canv.setFillColor(f.theme.brand)
    canv.rect(0, ph - ss.COVER_BAND_HEIGHT, pw, ss.COVER_BAND_HEIGHT, stroke=0, fill=1)
    canv.setFillColor(f.theme.brand_dark)
    canv.rect(0, ph - ss.COVER_BAND_HEIGHT - 3, pw, 3, stroke=0, fill=1)
    text_right = pw - ss.MARGIN_RIGHT
    if f.logo is not None:
        iw, ih = f.logo.getSize()
        mw, mh = ss.COVER_LOGO_MAX
        scale = min(mw / iw, mh / ih)
        w, h = iw * scale, ih * scale
        x = pw - ss.MARGIN_RIGHT - w
        y = ph - ss.COVER_BAND_HEIGHT / 2 - h / 2
        canv.setFillColor(ss.WHITE)
        canv.roundRect(x - 6, y - 6, w + 12, h + 12, 4, stroke=0, fill=1)
        canv.drawImage(f.logo, x, y, w, h, mask="auto")
        text_right = x - 18
    canv.setFillColor(ss.WHITE)
    width = text_right - ss.MARGIN_LEFT
    fonts.draw(
        canv,
        ss.MARGIN_LEFT,
        ph - ss.COVER_BAND_HEIGHT / 2,
        _fit(f.msp_name, ss.FONT_BOLD, ss.COVER_MSP_SIZE, width),
        ss.FONT_BOLD,
        ss.COVER_MSP_SIZE,
    )
    canv.setFont(ss.FONT, ss.BODY_SIZE + 1)
    canv.drawString(ss.MARGIN_LEFT, ph - ss.COVER_BAND_HEIGHT / 2 - 20, f.band)
    canv.restoreState()


def _draw_body(f: Furniture, canv: Canvas, _doc: Any) -> None:
    pw, ph = ss.PAGE_SIZE
    canv.saveState()
    y = ph - ss.MARGIN_TOP + 8
    canv.setStrokeColor(f.theme.brand)
    canv.setLineWidth(1.2)
    canv.line(ss.MARGIN_LEFT, y - 4, pw - ss.MARGIN_RIGHT, y - 4)
    canv.setFillColor(f.theme.brand)
    fonts.draw(
        canv,
        ss.MARGIN_LEFT,
        y,
        _fit(f.customer, ss.FONT_BOLD, ss.FOOTER_SIZE, ss.FRAME_WIDTH * 0.6),
        ss.FONT_BOLD,
        ss.FOOTER_SIZE,
    )
    canv.setFillColor(ss.MUTED)
    right = f.header_right or f.msp_name
    fonts.draw(
        canv,
        pw - ss.MARGIN_RIGHT,
        y,
        _fit(right, ss.FONT, ss.FOOTER_SIZE, ss.FRAME_WIDTH * 0.35),
        ss.FONT,
        ss.FOOTER_SIZE,
        align="right",
    )
    canv.restoreState()


def _timestamp(at: datetime) -> TimeStamp:
    """ReportLab's document time stamp (CreationDate/ModDate) for ``at``, in UTC."""
    ts = TimeStamp(invariant=1)
    utc = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    ts.t = utc.timestamp()
    ts.lt = utc.timetuple()
    ts.YMDhms = tuple(ts.lt)[:6]
    ts.dhh = ts.dmm = 0
    ts.tzname = "UTC"
    return ts


class FooterCanvas(Canvas):
    """Defers every page until the end so the footer can say "Page N of M" (cover excluded)."""

    def __init__(self, *args: Any, furniture: Furniture, **kwargs: Any) -> None:
        kwargs["initialFontName"] = kwargs.get("initialFontName") or ss.FONT  # no unembedded Helvetica
        super().__init__(*args, **kwargs)
        self._furniture = furniture
        self._pages: list[dict[str, Any]] = []
        # not ReportLab's invariant 2000-01-01 (_doc and _startPage: Canvas internals, not in the stubs)
        self._doc._timeStamp = _timestamp(furniture.created)  # type: ignore[attr-defined]  # Canvas internal
        self.showOutline()  # open with the bookmarks panel

    def showPage(self) -> None:  # noqa: N802 - ReportLab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()  # type: ignore[attr-defined]  # Canvas internal

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            if self.getPageNumber() > 1:
                self._draw_footer(total)
            super().showPage()
        super().save()

    def _draw_footer(self, total: int) -> None:
        f = self._furniture
        pw, _ = ss.PAGE_SIZE
        y = ss.MARGIN_BOTTOM - 12
        self.saveState()
        self.setStrokeColor(ss.GRID)
        self.setLineWidth(0.5)
        self.line(ss.MARGIN_LEFT, y + 10, pw - ss.MARGIN_RIGHT, y + 10)
        self.setFont(ss.FONT, ss.FOOTER_SIZE)
        self.setFillColor(ss.MUTED)
        fonts.draw(
            self,
            ss.MARGIN_LEFT,
            y,
            _fit(f.footer_left, ss.FONT, ss.FOOTER_SIZE, ss.FRAME_WIDTH - 80),
            ss.FONT,
            ss.FOOTER_SIZE,
        )
        self.setFont(ss.FONT, ss.FOOTER_SIZE)
        self.drawRightString(pw - ss.MARGIN_RIGHT, y, f"Page {self.getPageNumber()} of {total}")
        self.restoreState()


def _load_logo(path: str | None) -> ImageReader | None:
    if not path:
        return None
    try:
        logo = ImageReader(path)
        w, h = logo.getSize()
    except Exception:  # noqa: BLE001 - a broken logo must not stop the report
        return None
    return logo if w > 0 and h > 0 else None


def build_story(ctx: Ctx) -> list[Flowable]:
    story: list[Flowable] = build_cover(ctx)
    story += [NextPageTemplate("body"), PageBreak()]
    story += build_executive_summary(ctx)
    story += build_recommendations(ctx)
    story += build_next_week(ctx)
    for name in SECTION_NAMES:
        story.append(Spacer(1, 14))
        story += build_section(ctx, name)
    if fmt.is_technical(ctx.report):
        story += [PageBreak(), *build_technical(ctx)]
    story += [PageBreak(), *build_how_to_read(ctx)]
    return story


def render(report: Report, branding: Branding) -> bytes:
    """The weekly report as PDF bytes (deterministic for the same input)."""
    theme = theme_for(branding.brand_color)
    ctx = Ctx(report=report, branding=branding, theme=theme, tz=_tz(report))
    msp = shorten(branding.msp_name, NAME_LIMIT) or "Your MSP"
    name = shorten(report.customer.name, NAME_LIMIT)
    week = period_line(report, ctx.tz)
    adjective = fmt.words(report.period).adjective
    kind = f"{adjective} technical report" if fmt.is_technical(report) else f"{adjective} service report"
    furniture = Furniture(
        theme=theme,
        msp_name=msp,
        customer=f"{name} \u2014 {fmt.week(report.period) if report.partial_as_of is not None else week}",
        # a partial report says so on every page (the MSP's name is in the footer too)
        header_right=" · ".join(
            ([fmt.partial(report.partial_as_of, report.period.timezone)] if report.partial_as_of else [])
            + (["TEST"] if branding.test else [])
        ),
        footer_left=f"{msp} {DOT} {kind} for {name}",
        logo=_load_logo(branding.logo_path),
        created=report.generated_at,
        band=f"Managed services \u00b7 {fmt.report_kind(report)}",
    )
    buf = io.BytesIO()
    pw, ph = ss.PAGE_SIZE
    doc = BaseDocTemplate(
        buf,
        pagesize=ss.PAGE_SIZE,
        leftMargin=ss.MARGIN_LEFT,
        rightMargin=ss.MARGIN_RIGHT,
        topMargin=ss.MARGIN_TOP,
        bottomMargin=ss.MARGIN_BOTTOM,
        title=f"{name}: {kind}, {week}",
        author=msp,
        subject=f"Uptime, service desk, changes, backups, security and public sites for {name}, {week}",
        creator=f"{msp} service reporting",
        invariant=1,  # same input, same bytes; the creation date is set from generated_at instead
    )
    cover_top = ph - ss.COVER_BAND_HEIGHT - 16 * ss.MM
    cover_frame = Frame(
        ss.MARGIN_LEFT, ss.MARGIN_BOTTOM, ss.FRAME_WIDTH, cover_top - ss.MARGIN_BOTTOM, id="cover", showBoundary=0
    )
    body_frame = Frame(
        ss.MARGIN_LEFT,
        ss.MARGIN_BOTTOM,
        ss.FRAME_WIDTH,
        ph - ss.MARGIN_TOP - ss.MARGIN_BOTTOM,
        id="body",
        showBoundary=0,
    )
    doc.addPageTemplates(
        [
            PageTemplate("cover", frames=[cover_frame], onPage=partial(_draw_cover, furniture)),
            PageTemplate("body", frames=[body_frame], onPage=partial(_draw_body, furniture)),
        ]
    )
    doc.build(build_story(ctx), canvasmaker=partial(FooterCanvas, furniture=furniture))
    return buf.getvalue()


__all__ = ["esc", "fmt_dt", "period_line", "render", "shorten"]

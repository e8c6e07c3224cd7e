"""reportlab.graphics charts for the PDF: uptime per site and the ticket trend.

Labels come from data (site names) but are drawn as graphics strings, not paragraph markup, so
they only need shortening, not escaping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, Line, String
from reportlab.graphics.widgets.markers import makeMarker

from reporting import fmt
from reporting.pdf import fonts
from reporting.pdf import stylesheet as ss
from reporting.pdf.stylesheet import Theme
from reporting.text import neutral

MAX_UPTIME_BARS = 24
MAX_TREND_WEEKS = 12


@dataclass(frozen=True)
class TrendPoint:
    label: str
    opened: int | None
    closed: int | None
    backlog: int | None


def shorten(text: object, limit: int) -> str:
    """Plain text cut to ``limit`` characters with an ellipsis; control characters become spaces.

    Used for every data string before it reaches the page (chart labels, footer, table cells);
    markup escaping is the builder's ``esc``, which calls this first.
    """
    s = neutral(text).strip()
    if len(s) > limit:
        s = s[: max(1, limit - 1)].rstrip() + "\u2026"
    return s


def _pct_label(value: float) -> str:
    """A bar's label: :func:`reporting.fmt.uptime` (two decimals, a shortfall never shown as 100)."""
    return fmt.uptime(value)


def _nice_step(span: float) -> float:
    """A round axis step giving roughly 4–6 gridlines over ``span``."""
    raw = span / 5.0
    mag: float = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _style_category_axis(axis: Any) -> None:
    axis.labels.fontName = ss.FONT
    axis.labels.fontSize = ss.CHART_LABEL_SIZE
    axis.labels.fillColor = ss.INK
    axis.strokeColor = ss.GRID


def _style_value_axis(axis: Any, lo: float, hi: float, step: float, label_format: str) -> None:
    """The value axis every chart here shares: muted labels, a light grid, ``lo``..``hi``."""
    axis.valueMin, axis.valueMax, axis.valueStep = lo, hi, step
    axis.labels.fontName = ss.FONT
    axis.labels.fontSize = ss.CHART_LABEL_SIZE
    axis.labels.fillColor = ss.MUTED
    axis.labelTextFormat = label_format
    axis.strokeColor = ss.GRID
    axis.visibleGrid = 1
    axis.gridStrokeColor = ss.GRID
    axis.gridStrokeWidth = 0.3


def uptime_axis_range(values: Sequence[float], target: float | None) -> tuple[float, float]:
    """Zoomed y range: one point below the lowest value (or target), floored, up to 100."""
    considered = [v for v in values if v is not None]
    if target is not None:
        considered.append(target)
    lo = math.floor(min(considered) - 1) if considered else 0.0
    lo = max(0.0, min(lo, 99.0))
    return float(lo), 100.0


def uptime_by_site_chart(theme: Theme, names: Sequence[str], values: Sequence[float], target: float | None) -> Drawing:
    """Bars of uptime % per site, y axis zoomed, target as a red line."""
    names = list(names)[:MAX_UPTIME_BARS]
    values = [max(0.0, min(100.0, float(v))) for v in list(values)[:MAX_UPTIME_BARS]]
    many = len(names) > 8
    bottom = 34 if many else 18
    d = Drawing(ss.CHART_WIDTH, ss.CHART_HEIGHT + (16 if many else 0))
    bc = VerticalBarChart()
    bc.x, bc.y = 34, bottom
    bc.width = d.width - bc.x - 56  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    bc.height = d.height - bottom - 10  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    bc.data = [values]
    labels = [fonts.visual(shorten(n, 14 if many else 22)) for n in names]
    bc.categoryAxis.categoryNames = labels
    bc.categoryAxis.labels.fontName = ss.FONT
    for i, label in enumerate(labels):  # a label the family cannot set takes a fallback that covers it
        font = fonts.single_font(label, ss.FONT)
        if font != ss.FONT:
            bc.categoryAxis.labels[i].fontName = font
        labels[i] = fonts.drawable(label, font)  # no empty boxes under a bar
    bc.categoryAxis.labels.fontSize = ss.CHART_LABEL_SIZE
    bc.categoryAxis.labels.fillColor = ss.INK
    if many:
        bc.categoryAxis.labels.angle = 30
        bc.categoryAxis.labels.boxAnchor = "ne"
        bc.categoryAxis.labels.dx = 4
    bc.categoryAxis.strokeColor = ss.GRID
    lo, hi = uptime_axis_range(values, target)
    _style_value_axis(bc.valueAxis, lo, hi, _nice_step(hi - lo), "%g%%")
    bc.bars.strokeColor = None
    bc.bars[0].fillColor = theme.brand
    slot = bc.width / max(1, len(values))
    bar = min(36.0, slot * 0.6)
    # relative units: bar vs gap, so bars stay slim when there are few sites
    bc.barWidth = bar  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    bc.groupSpacing = slot - bar  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    for i, v in enumerate(values):
        if target is not None and v < target:
            bc.bars[(0, i)].fillColor = ss.SEV_MEDIUM
    if len(values) <= 12:
        bc.barLabelFormat = _pct_label
        bc.barLabels.fontName = ss.FONT
        bc.barLabels.fontSize = ss.CHART_LABEL_SIZE - 0.5
        bc.barLabels.fillColor = ss.INK
        bc.barLabels.nudge = 5
    d.add(bc)
    if target is not None and lo <= target <= hi:
        y = bc.y + (target - lo) / (hi - lo) * bc.height
        d.add(Line(bc.x, y, bc.x + bc.width, y, strokeColor=ss.TARGET_LINE, strokeWidth=1, strokeDashArray=[3, 2]))
        d.add(
            String(
                bc.x + bc.width + 3,
                y - 2.5,
                f"target {fmt.target(target)}",
                fontName=ss.FONT,
                fontSize=ss.CHART_LABEL_SIZE,
                fillColor=ss.TARGET_LINE,
            )
        )
    return d


TREND_WEEKS = fmt.TREND_WEEKS


def kpi_trend_chart(
    theme: Theme,
    labels: Sequence[str],
    values: Sequence[float | None],
    target: float | None,
    *,
    digits: int,
    axis: tuple[float, float] | None = None,
) -> Drawing:
    """A line of one weekly figure (uptime, Secure Score) over the last weeks, oldest left, each
    point labelled as the report prints it (:mod:`reporting.fmt`), the target as a dashed line.
    A week without a figure is a gap, not a zero."""
    labels, values = list(labels)[-TREND_WEEKS:], list(values)[-TREND_WEEKS:]
    d = Drawing(ss.CHART_WIDTH, 44 * ss.MM)
    lc = HorizontalLineChart()
    lc.x, lc.y = 34, 16
    lc.width = d.width - lc.x - 56  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    lc.height = d.height - lc.y - 20  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    lc.data = [[None if v is None else max(0.0, min(100.0, float(v))) for v in values]]
    lc.categoryAxis.categoryNames = labels
    _style_category_axis(lc.categoryAxis)
    known = [v for v in lc.data[0] if v is not None]
    lo, hi = axis or uptime_axis_range(known, target)
    _style_value_axis(lc.valueAxis, lo, hi, _nice_step(hi - lo), "%g%%")
    lc.lines[0].strokeColor = theme.brand
    lc.lines[0].strokeWidth = 1.6
    marker = makeMarker(  # type: ignore[no-untyped-call]  # types-reportlab leaves it untyped
        "FilledCircle", size=4, fillColor=theme.brand, strokeColor=theme.brand
    )
    lc.lines[0].symbol = marker
    lc.lineLabelFormat = lambda v: fmt.pct(v, digits).replace(" %", "")
    lc.lineLabels.fontName = ss.FONT
    lc.lineLabels.fontSize = ss.CHART_LABEL_SIZE - 0.5
    lc.lineLabels.fillColor = ss.INK
    lc.lineLabels.dy = 6
    d.add(lc)
    if target is not None and lo <= target <= hi:
        y = lc.y + (target - lo) / (hi - lo) * lc.height
        d.add(Line(lc.x, y, lc.x + lc.width, y, strokeColor=ss.TARGET_LINE, strokeWidth=1, strokeDashArray=[3, 2]))
        d.add(
            String(
                lc.x + lc.width + 3,
                y - 2.5,
                f"target {fmt.target(target)}",
                fontName=ss.FONT,
                fontSize=ss.CHART_LABEL_SIZE,
                fillColor=ss.TARGET_LINE,
            )
        )
    return d


def score_axis_range(values: Sequence[float]) -> tuple[float, float]:
    """A Secure Score axis: 10 points either side of the figures, within 0–100."""
    if not values:
        return 0.0, 100.0
    lo = max(0.0, math.floor((min(values) - 10) / 10) * 10)
    hi = min(100.0, math.ceil((max(values) + 10) / 10) * 10)
    return float(lo), float(hi)


def ticket_trend_chart(theme: Theme, points: Sequence[TrendPoint], at_end: str = "week end") -> Drawing:
    """Grouped bars per period: opened, closed, backlog; oldest left, this one right. ``at_end``:
    the backlog's legend ("Backlog at week end", "... at month end")."""
    points = list(points)[-MAX_TREND_WEEKS:]
    d = Drawing(ss.CHART_WIDTH, ss.CHART_HEIGHT)
    bc = VerticalBarChart()
    bc.x, bc.y = 30, 40
    bc.width = d.width - bc.x - 10  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    bc.height = d.height - bc.y - 10  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    series = [
        [p.opened for p in points],
        [p.closed for p in points],
        [p.backlog for p in points],
    ]
    bc.data = series
    bc.categoryAxis.categoryNames = [p.label for p in points]
    _style_category_axis(bc.categoryAxis)
    top = max([v for s in series for v in s if v is not None] or [0])
    step = _nice_step(max(top, 5) * 1.1) if top else 1
    step = max(1.0, float(math.ceil(step)))
    _style_value_axis(bc.valueAxis, 0, step * math.ceil(max(top, 1) * 1.12 / step), step, "%d")
    bc.bars.strokeColor = None
    for i, c in enumerate(theme.series):
        bc.bars[i].fillColor = c
    slot = bc.width / max(1, len(points))
    bar = min(26.0, slot * 0.75 / 3)
    # relative units: keeps bars slim when only a few weeks are stored
    bc.barWidth = bar  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    bc.barSpacing = 1
    bc.groupSpacing = slot - 3 * bar - 2  # type: ignore[assignment]  # types-reportlab: int; ReportLab takes any number
    if len(points) <= 6:
        bc.barLabelFormat = "%d"
        bc.barLabels.fontName = ss.FONT
        bc.barLabels.fontSize = ss.CHART_LABEL_SIZE - 0.5
        bc.barLabels.fillColor = ss.INK
        bc.barLabels.nudge = 5
    d.add(bc)

    legend = Legend()
    legend.x, legend.y = bc.x, 2
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontName = ss.FONT
    legend.fontSize = ss.CHART_LABEL_SIZE
    legend.fillColor = ss.INK
    legend.boxAnchor = "sw"
    legend.dx = legend.dy = 7
    legend.deltax = 70
    legend.strokeColor = None
    legend.colorNamePairs = list(zip(theme.series, ("Opened", "Closed", f"Backlog at {at_end}"), strict=True))
    d.add(legend)
    return d


__all__ = [
    "TREND_WEEKS",
    "TrendPoint",
    "kpi_trend_chart",
    "score_axis_range",
    "shorten",
    "ticket_trend_chart",
    "uptime_axis_range",
    "uptime_by_site_chart",
]

"""reportlab.graphics charts for the PDF: uptime per site and the ticket trend.

Labels come from data (site names) but are drawn as graphics strings, not paragraph markup, so
they only need shortening, not escaping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, Line, String

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
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


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
    bc.width = d.width - bc.x - 56
    bc.height = d.height - bottom - 10
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
    bc.valueAxis.valueMin, bc.valueAxis.valueMax = lo, hi
    bc.valueAxis.valueStep = _nice_step(hi - lo)
    bc.valueAxis.labels.fontName = ss.FONT
    bc.valueAxis.labels.fontSize = ss.CHART_LABEL_SIZE
    bc.valueAxis.labels.fillColor = ss.MUTED
    bc.valueAxis.labelTextFormat = "%g%%"
    bc.valueAxis.strokeColor = ss.GRID
    bc.valueAxis.visibleGrid = 1
    bc.valueAxis.gridStrokeColor = ss.GRID
    bc.valueAxis.gridStrokeWidth = 0.3
    bc.bars.strokeColor = None
    bc.bars[0].fillColor = theme.brand
    slot = bc.width / max(1, len(values))
    bar = min(36.0, slot * 0.6)
    bc.barWidth = bar  # relative units: bar vs gap, so bars stay slim when there are few sites
    bc.groupSpacing = slot - bar
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


def ticket_trend_chart(theme: Theme, points: Sequence[TrendPoint]) -> Drawing:
    """Grouped bars per week: opened, closed, backlog; oldest left, this week right."""
    points = list(points)[-MAX_TREND_WEEKS:]
    d = Drawing(ss.CHART_WIDTH, ss.CHART_HEIGHT)
    bc = VerticalBarChart()
    bc.x, bc.y = 30, 40
    bc.width = d.width - bc.x - 10
    bc.height = d.height - bc.y - 10
    series = [
        [p.opened for p in points],
        [p.closed for p in points],
        [p.backlog for p in points],
    ]
    bc.data = series
    bc.categoryAxis.categoryNames = [p.label for p in points]
    bc.categoryAxis.labels.fontName = ss.FONT
    bc.categoryAxis.labels.fontSize = ss.CHART_LABEL_SIZE
    bc.categoryAxis.labels.fillColor = ss.INK
    bc.categoryAxis.strokeColor = ss.GRID
    top = max([v for s in series for v in s if v is not None] or [0])
    step = _nice_step(max(top, 5) * 1.1) if top else 1
    step = max(1.0, float(math.ceil(step)))
    bc.valueAxis.valueMin = 0
    bc.valueAxis.valueMax = step * math.ceil(max(top, 1) * 1.12 / step)
    bc.valueAxis.valueStep = step
    bc.valueAxis.labels.fontName = ss.FONT
    bc.valueAxis.labels.fontSize = ss.CHART_LABEL_SIZE
    bc.valueAxis.labels.fillColor = ss.MUTED
    bc.valueAxis.labelTextFormat = "%d"
    bc.valueAxis.strokeColor = ss.GRID
    bc.valueAxis.visibleGrid = 1
    bc.valueAxis.gridStrokeColor = ss.GRID
    bc.valueAxis.gridStrokeWidth = 0.3
    bc.bars.strokeColor = None
    for i, c in enumerate(theme.series):
        bc.bars[i].fillColor = c
    slot = bc.width / max(1, len(points))
    bar = min(26.0, slot * 0.75 / 3)
    bc.barWidth = bar  # relative units: keeps bars slim when only a few weeks are stored
    bc.barSpacing = 1
    bc.groupSpacing = slot - 3 * bar - 2
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
    legend.colorNamePairs = list(zip(theme.series, ("Opened", "Closed", "Backlog at week end"), strict=True))
    d.add(legend)
    return d


__all__ = ["TrendPoint", "shorten", "ticket_trend_chart", "uptime_axis_range", "uptime_by_site_chart"]

"""The report as one self-contained HTML page, for a browser: the same content as the Markdown
report (the same template, so the same words and figures) and the PDF's charts, with nothing
fetched from anywhere — styles inline, the logo and charts embedded (reportlab's own SVG renderer
draws the PDF's chart drawings), no script.

Safety: every string from a source, a config or an engineer was already escaped by the Markdown
filters (``reporting.markdown.md``); markdown-it then renders with raw HTML off, so vendor text is
shown as text. The page also carries a Content-Security-Policy that allows no fetch at all
(``default-src 'none'``, inline styles and ``data:`` images only), so even a mistake here could
not load a tracker. Charts go in at markers the template writes only when asked for them: a
marker carries a nonce drawn for this render, so no text of the report can place one.
"""

from __future__ import annotations

import base64
import html
import re
import secrets
from functools import lru_cache
from pathlib import Path

import jinja2
import markupsafe
from markdown_it import MarkdownIt
from reportlab.graphics import renderSVG
from reportlab.graphics.shapes import Drawing

from reporting import fmt
from reporting.markdown import render_markdown
from reporting.models import Branding, Report
from reporting.pdf.builder import earlier_ticket_points, trend_series
from reporting.pdf.charts import (
    TrendPoint,
    kpi_trend_chart,
    score_axis_range,
    ticket_trend_chart,
    uptime_by_site_chart,
)
from reporting.pdf.stylesheet import parse_brand_color, theme_for
from reporting.text import neutral

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
"""The page's Content-Security-Policy (in a meta tag, and as a header where the bot serves it)."""

FONT_STACK = "'DejaVu Sans', 'Segoe UI', system-ui, sans-serif"


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _svg(drawing: Drawing, title: str) -> str:
    """A reportlab drawing as an inline ``<svg>`` that scales with the page (viewBox kept)."""
    svg = renderSVG.drawToString(drawing)
    svg = svg[svg.index("<svg") :]  # no XML prolog or doctype inside HTML (its viewBox lets CSS scale it)
    # the PDF's registered font names (ReportSans...) mean nothing to a browser: the page's own stack
    svg = re.sub(r"font-family: ?Report[A-Za-z-]*", f"font-family: {FONT_STACK}", svg)
    label = html.escape(title, quote=True)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    return f'<figure class="chart"><figcaption>{label}</figcaption>{svg}</figure>'


def _charts(report: Report, branding: Branding) -> dict[str, str]:
    """The charts the PDF draws, from the same figures and series (``reporting.pdf.builder``)."""
    theme = theme_for(branding.brand_color)
    s = report.sections
    w = fmt.words(report.period)
    out: dict[str, str] = {}
    if s["uptime"].ok:
        u = s["uptime"].data
        labels, values = trend_series(report, lambda w: w.uptime_pct, u.overall_pct)  # type: ignore[union-attr]
        chart = kpi_trend_chart(theme, labels, values, u.target_pct, digits=fmt.UPTIME_DIGITS)  # type: ignore[union-attr]
        out["uptime_trend"] = _svg(chart, f"Uptime, last {len(labels)} {w.plural if len(labels) != 1 else w.noun}")
        if u.by_site:  # type: ignore[union-attr]
            groups = u.by_site  # type: ignore[union-attr]
            site_chart = uptime_by_site_chart(
                theme,
                [g.name for g in groups],
                [g.uptime_pct for g in groups],
                u.target_pct,  # type: ignore[union-attr]
            )
            out["uptime_by_site"] = _svg(site_chart, "Uptime per site")
    if s["tickets"].ok:
        t = s["tickets"].data
        points = [*earlier_ticket_points(report), TrendPoint(w.point, t.opened, t.closed, t.backlog)]  # type: ignore[union-attr]
        out["ticket_trend"] = _svg(ticket_trend_chart(theme, points, w.at_end), "Ticket trend")
    if s["security"].ok:
        labels, scores = trend_series(report, lambda w: w.secure_score_pct, s["security"].data.secure_score_pct)  # type: ignore[union-attr]
        known = [v for v in scores if v is not None]
        if known:
            chart = kpi_trend_chart(theme, labels, scores, None, digits=fmt.RATE_DIGITS, axis=score_axis_range(known))
            many = w.plural if len(labels) != 1 else w.noun
            out["score_trend"] = _svg(chart, f"Secure Score, last {len(labels)} {many}")
    return out


def _logo(branding: Branding) -> str | None:
    """The MSP's logo as a ``data:`` URI (PNG or JPEG), None without one or when it is unreadable."""
    if not branding.logo_path:
        return None
    try:
        raw = Path(branding.logo_path).read_bytes()
    except OSError:
        return None
    kind = "image/png" if raw.startswith(b"\x89PNG") else "image/jpeg" if raw.startswith(b"\xff\xd8") else None
    return f"data:{kind};base64,{base64.b64encode(raw).decode()}" if kind else None


def render_html(report: Report, branding: Branding) -> str:
    """The whole page (UTF-8 text)."""
    nonce = secrets.token_hex(8)
    charts = _charts(report, branding)

    def marker(name: str) -> str:
        return f"@@chart-{nonce}-{name}@@" if name in charts else ""

    body = _markdown().render(render_markdown(report, branding, chart=marker))
    for name, svg in charts.items():
        body = body.replace(f"<p>@@chart-{nonce}-{name}@@</p>", svg)
    title_match = re.search(r"<h1>(.*?)</h1>", body, flags=re.S)
    title = html.unescape(title_match.group(1)) if title_match else "Report"
    body = body.replace(title_match.group(0), "", 1) if title_match else body
    brand = parse_brand_color(branding.brand_color).hexval()[2:]
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            title=neutral(title),
            body=markupsafe.Markup(body),  # noqa: S704 - markdown-it output with raw HTML off: its text is escaped
            brand=f"#{brand}",
            msp=branding.msp_name,
            logo=_logo(branding),
            csp=CSP,
        )
    )

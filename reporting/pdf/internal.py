"""PDF of the MSP-internal owner and manager reports, from the same blocks as their Markdown
(``reporting.internal.blocks``), with the customer report's stylesheet, escaping and table style."""

from __future__ import annotations

import io
from typing import Any

from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, LongTable, Paragraph, SimpleDocTemplate, Spacer

from reporting.internal import Block, blocks, title
from reporting.pdf import stylesheet as ss
from reporting.pdf.builder import esc
from reporting.servicedesk import ServiceDeskReport

_WIDE = 9  # columns beyond which a table is set in the small size


def _widths(b: Block) -> list[float]:
    """Column widths in proportion to each column's longest word or value (clamped), filling the frame."""
    need = []
    for i, h in enumerate(b.header):
        longest_word = max((len(w) for w in h.split()), default=1)
        longest_value = max((len(row[i]) for row in b.rows), default=1)
        floor = 8 if i in b.numeric else 3  # a number with its unit on one line
        need.append(min(max(longest_word + 2, longest_value, floor), 22) + 2)  # bold header, cell padding
    total = sum(need)
    return [ss.FRAME_WIDTH * n / total for n in need]


def _table(b: Block, theme: ss.Theme) -> LongTable:
    wide = len(b.header) > _WIDE
    style = theme.style("small" if wide else "cell")
    right = theme.style("cell_right")
    head = theme.style("cell_head")
    data: list[list[Any]] = [[Paragraph(esc(h, 40), head) for h in b.header]]
    data += [[Paragraph(esc(v), right if i in b.numeric else style) for i, v in enumerate(row)] for row in b.rows]
    t = LongTable(data, colWidths=_widths(b), repeatRows=1, hAlign="LEFT")
    t.setStyle(theme.table_commands(rows=len(data), numeric_cols=b.numeric))
    return t


def story(r: ServiceDeskReport, audience: str, theme: ss.Theme) -> list[Flowable]:
    out: list[Flowable] = []
    for b in blocks(r, audience):
        if b.kind in ("h1", "h2"):
            out.append(Paragraph(esc(b.text, None), theme.style(b.kind)))
        elif b.kind == "p":
            out.append(Paragraph(esc(b.text, None), theme.style("body")))
        elif b.kind == "ul":
            out += [Paragraph(esc(item, None), theme.style("bullet"), bulletText="\u2022") for item in b.items]
        elif b.kind == "table":
            out.append(_table(b, theme))
        out.append(Spacer(1, 4))
    return out


def render_internal_pdf(r: ServiceDeskReport, audience: str) -> bytes:
    """The owner (or manager) report as PDF bytes (A4; same input, same text)."""
    theme = ss.theme_for(None)
    buf = io.BytesIO()
    name = title(r, audience)

    def footer(canv: Canvas, doc: Any) -> None:
        canv.saveState()
        canv.setFont(ss.FONT, ss.FOOTER_SIZE)
        canv.setFillColor(ss.MUTED)
        canv.drawString(ss.MARGIN_LEFT, ss.MARGIN_BOTTOM / 2, "MSP-internal: not for customers")
        canv.drawRightString(ss.PAGE_SIZE[0] - ss.MARGIN_RIGHT, ss.MARGIN_BOTTOM / 2, f"Page {doc.page}")
        canv.restoreState()

    doc = SimpleDocTemplate(
        buf,
        pagesize=ss.PAGE_SIZE,
        leftMargin=ss.MARGIN_LEFT,
        rightMargin=ss.MARGIN_RIGHT,
        topMargin=ss.MARGIN_TOP,
        bottomMargin=ss.MARGIN_BOTTOM,
        title=name,
        author=r.msp_name,
        invariant=1,
    )
    doc.build(story(r, audience, theme), onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()

"""The PDF look: the only module that names fonts, colours and sizes.

Everything is derived from the MSP's brand colour and built once per colour
(:func:`theme_for` is cached), so a batch of reports pays the set-up cost once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm

from reporting.pdf import fonts

DEFAULT_BRAND = "#1F4E79"
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")

# The embedded Unicode family (DejaVu Sans, subset per document) with per-character fallback:
# see :mod:`reporting.pdf.fonts`.
FONT = fonts.FONT
FONT_BOLD = fonts.FONT_BOLD
FONT_ITALIC = fonts.FONT_ITALIC

PAGE_SIZE = A4
MARGIN_LEFT = 18 * mm
MARGIN_RIGHT = 18 * mm
MARGIN_TOP = 20 * mm
MARGIN_BOTTOM = 22 * mm
MM = mm  # one millimetre in points, for layout widths
FRAME_WIDTH = PAGE_SIZE[0] - MARGIN_LEFT - MARGIN_RIGHT

# Text colours
INK = colors.HexColor("#1E2329")
MUTED = colors.HexColor("#5F6B7A")
WHITE = colors.white

# Table furniture
GRID = colors.HexColor("#D5DAE1")
ZEBRA = colors.HexColor("#F3F5F8")

# Severity (flags, incidents) and backup status
SEV_HIGH = colors.HexColor("#C62828")
SEV_MEDIUM = colors.HexColor("#E08A00")
SEV_LOW = colors.HexColor("#7A8591")
SEV_INFO = colors.HexColor("#A7B0BA")
OK_GREEN = colors.HexColor("#2E7D32")

SEVERITY_COLORS: dict[str, colors.Color] = {
    "high": SEV_HIGH,
    "medium": SEV_MEDIUM,
    "low": SEV_LOW,
    "informational": SEV_INFO,
}
BACKUP_STATUS_COLORS: dict[str, colors.Color] = {
    "ok": OK_GREEN,
    "stale": SEV_MEDIUM,
    "failed": SEV_HIGH,
    "never": SEV_HIGH,
}

# Unavailable-data box
UNAVAILABLE_BG = colors.HexColor("#FDECEA")
UNAVAILABLE_BORDER = SEV_HIGH

# Sizes (points)
BODY_SIZE = 9.5
SMALL_SIZE = 8
TABLE_SIZE = 8.5
H1_SIZE = 16
H2_SIZE = 11
KPI_VALUE_SIZE = 15
FLAG_COUNT_SIZE = 22
KPI_LABEL_SIZE = 7.5
FOOTER_SIZE = 7.5
COVER_MSP_SIZE = 22
COVER_TITLE_SIZE = 26
COVER_SUB_SIZE = 13
COVER_BAND_HEIGHT = 62 * mm
COVER_LOGO_MAX = (40 * mm, 24 * mm)  # width, height
CELL_PAD = 3.5

# Charts
CHART_WIDTH = FRAME_WIDTH
CHART_HEIGHT = 62 * mm
CHART_LABEL_SIZE = 7
CHART_SERIES = (
    "brand",  # first series uses the brand colour
    colors.HexColor("#8AA4BE"),
    colors.HexColor("#E08A00"),
)
TARGET_LINE = SEV_HIGH


def parse_brand_color(value: str | None) -> colors.Color:
    """``#RRGGBB`` (``#`` optional) to a colour; anything else falls back to the default."""
    m = _HEX.match((value or "").strip())
    return colors.HexColor("#" + (m.group(1) if m else DEFAULT_BRAND[1:]))


def _mix(c: colors.Color, other: colors.Color, t: float) -> colors.Color:
    """``c`` moved towards ``other`` by ``t`` (0..1)."""
    return colors.Color(
        c.red + (other.red - c.red) * t,
        c.green + (other.green - c.green) * t,
        c.blue + (other.blue - c.blue) * t,
    )


@dataclass(frozen=True)
class Theme:
    """Colours, paragraph styles and table style commands for one brand colour."""

    brand: colors.Color
    brand_dark: colors.Color
    brand_light: colors.Color
    brand_tint: colors.Color
    styles: dict[str, ParagraphStyle]
    series: tuple[colors.Color, ...]

    def style(self, name: str) -> ParagraphStyle:
        return self.styles[name]

    def table_commands(self, *, rows: int, header: bool = True, numeric_cols: tuple[int, ...] = ()) -> list[Any]:
        """Style commands for a data table: brand header row, zebra rows, right-aligned numbers."""
        cmds: list[Any] = [
            ("FONT", (0, 0), (-1, -1), FONT, TABLE_SIZE),
            ("TEXTCOLOR", (0, 0), (-1, -1), INK),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD + 1),
            ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD + 1),
            ("TOPPADDING", (0, 0), (-1, -1), CELL_PAD),
            ("BOTTOMPADDING", (0, 0), (-1, -1), CELL_PAD),
            ("LINEBELOW", (0, -1), (-1, -1), 0.5, GRID),
        ]
        first = 0
        if header:
            first = 1
            cmds += [
                ("BACKGROUND", (0, 0), (-1, 0), self.brand),
                ("TEXTCOLOR", (0, 0), (-1, 0), WHITE),
                ("FONT", (0, 0), (-1, 0), FONT_BOLD, TABLE_SIZE),
            ]
        for r in range(first + 1, rows, 2):
            cmds.append(("BACKGROUND", (0, r), (-1, r), ZEBRA))
        for c in numeric_cols:
            cmds.append(("ALIGN", (c, 0), (c, -1), "RIGHT"))
        return cmds


@lru_cache(maxsize=32)
def theme_for(brand_color: str | None) -> Theme:
    fonts.register()
    brand = parse_brand_color(brand_color)
    brand_dark = _mix(brand, colors.black, 0.25)
    brand_light = _mix(brand, colors.white, 0.55)
    brand_tint = _mix(brand, colors.white, 0.90)

    base = ParagraphStyle(
        "body",
        fontName=FONT,
        bulletFontName=FONT,
        fontSize=BODY_SIZE,
        leading=BODY_SIZE * 1.35,
        textColor=INK,
        allowWidows=0,
        allowOrphans=0,  # never one line of a paragraph alone at a page's top or bottom
    )
    styles: dict[str, ParagraphStyle] = {
        "body": base,
        "bullet": ParagraphStyle("bullet", parent=base, leftIndent=12, bulletIndent=2, spaceAfter=3),
        "small": ParagraphStyle("small", parent=base, fontSize=SMALL_SIZE, leading=SMALL_SIZE * 1.3, textColor=MUTED),
        "source": ParagraphStyle(
            "source",
            parent=base,
            fontName=FONT_ITALIC,
            fontSize=SMALL_SIZE,
            leading=SMALL_SIZE * 1.3,
            textColor=MUTED,
            spaceAfter=8,
        ),
        "h1": ParagraphStyle(
            "h1",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=H1_SIZE,
            leading=H1_SIZE * 1.25,
            textColor=brand,
            spaceBefore=4,
            spaceAfter=2,
            keepWithNext=1,
        ),
        "h2": ParagraphStyle(
            "h2",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=H2_SIZE,
            leading=H2_SIZE * 1.3,
            textColor=brand_dark,
            spaceBefore=10,
            spaceAfter=4,
            keepWithNext=1,
        ),
        "cell": ParagraphStyle("cell", parent=base, fontSize=TABLE_SIZE, leading=TABLE_SIZE * 1.25),
        "cell_right": ParagraphStyle(
            "cell_right", parent=base, fontSize=TABLE_SIZE, leading=TABLE_SIZE * 1.25, alignment=TA_RIGHT
        ),
        "cell_head": ParagraphStyle(
            "cell_head",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=TABLE_SIZE,
            leading=TABLE_SIZE * 1.25,
            textColor=WHITE,
        ),
        "kpi_value": ParagraphStyle(
            "kpi_value",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=KPI_VALUE_SIZE,
            leading=KPI_VALUE_SIZE * 1.2,
            textColor=brand_dark,
            alignment=TA_LEFT,
        ),
        "kpi_label": ParagraphStyle(
            "kpi_label", parent=base, fontSize=KPI_LABEL_SIZE, leading=KPI_LABEL_SIZE * 1.3, textColor=MUTED
        ),
        "unavailable": ParagraphStyle(
            "unavailable", parent=base, fontName=FONT_BOLD, fontSize=BODY_SIZE + 0.5, textColor=SEV_HIGH
        ),
        "commentary": ParagraphStyle(
            "commentary",
            parent=base,
            leftIndent=10,
            borderPadding=(4, 6, 4, 8),  # type: ignore[arg-type]  # ReportLab takes a TRBL tuple too
            backColor=brand_tint,
            spaceBefore=2,
            spaceAfter=6,
        ),
        "commentary_meta": ParagraphStyle(
            "commentary_meta", parent=base, fontName=FONT_ITALIC, fontSize=SMALL_SIZE, textColor=MUTED, spaceBefore=6
        ),
        "note": ParagraphStyle("note", parent=base, fontName=FONT_ITALIC, textColor=MUTED, spaceBefore=2, spaceAfter=4),
        "cover_customer": ParagraphStyle(
            "cover_customer",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=COVER_TITLE_SIZE,
            leading=COVER_TITLE_SIZE * 1.2,
            textColor=INK,
            spaceAfter=4,
        ),
        "cover_sub": ParagraphStyle(
            "cover_sub",
            parent=base,
            fontSize=COVER_SUB_SIZE,
            leading=COVER_SUB_SIZE * 1.35,
            textColor=brand_dark,
        ),
        "cover_meta": ParagraphStyle(
            "cover_meta", parent=base, fontSize=BODY_SIZE, leading=BODY_SIZE * 1.5, textColor=MUTED
        ),
        "cover_status": ParagraphStyle(
            "cover_status", parent=base, fontName=FONT_BOLD, fontSize=H1_SIZE, leading=H1_SIZE * 1.25
        ),
        "cover_item": ParagraphStyle(
            "cover_item",
            parent=base,
            fontSize=BODY_SIZE + 1.5,
            leading=(BODY_SIZE + 1.5) * 1.35,
            leftIndent=16,
            bulletIndent=0,
            bulletFontName=FONT_BOLD,
            spaceAfter=5,
        ),
        "glossary_head": ParagraphStyle(
            "glossary_head",
            parent=base,
            fontSize=SMALL_SIZE + 0.5,
            leading=(SMALL_SIZE + 0.5) * 1.3,
            textColor=brand_dark,
        ),
        "glossary_text": ParagraphStyle(
            "glossary_text", parent=base, fontSize=SMALL_SIZE + 0.5, leading=(SMALL_SIZE + 0.5) * 1.3
        ),
        "cover_kicker": ParagraphStyle(
            "cover_kicker",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=SMALL_SIZE + 1,
            leading=(SMALL_SIZE + 1) * 1.3,
            textColor=brand,
            spaceAfter=6,
        ),
        "flag_count_value": ParagraphStyle(
            "flag_count_value",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=FLAG_COUNT_SIZE,
            leading=FLAG_COUNT_SIZE * 1.2,
            alignment=TA_CENTER,
        ),
        "flag_count": ParagraphStyle(
            "flag_count", parent=base, fontName=FONT_BOLD, fontSize=H2_SIZE, leading=H2_SIZE * 1.3, alignment=TA_CENTER
        ),
    }
    series = tuple(brand if isinstance(c, str) else c for c in CHART_SERIES)  # "brand" is the only name
    # a heading over a long list (the technical detail): "h2" not kept with what follows, so a list
    # longer than the rest of the page starts under it instead of moving both to the next page
    styles["h2_list"] = ParagraphStyle("h2_list", parent=styles["h2"], keepWithNext=0)
    return Theme(
        brand=brand,
        brand_dark=brand_dark,
        brand_light=brand_light,
        brand_tint=brand_tint,
        styles=styles,
        series=series,
    )


__all__ = ["Theme", "theme_for", "parse_brand_color"]

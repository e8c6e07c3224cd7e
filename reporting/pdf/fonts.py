"""Fonts for the PDF: an embedded Unicode family plus per-character fallback, and bidi layout.

The family is DejaVu Sans 2.37 (regular, bold, oblique, bold oblique), vendored under
``reporting/assets/fonts`` with its licence: static TrueType faces covering Latin, Greek,
Cyrillic, Hebrew, Arabic, Armenian and Georgian. ReportLab embeds a subset of each face (only
the glyphs used), so every reader shows the same letters.

Characters DejaVu lacks are set in a fallback font, found in this order and loaded only when a
report needs one:

1. ``REPORTBOT_PDF_FONTS`` — TrueType files (``.ttf``) separated by ``os.pathsep``;
2. the ``manimgx-fonts`` package (a dependency): Noto Sans Symbols, Noto Emoji (monochrome) and
   Noto Sans for Devanagari, Thai, Ethiopic and the other scripts DejaVu lacks;
3. the ``justmytype-intl-cjk`` package (``pip install 'reportbot[cjk]'``, also in the test
   extra): Noto Sans JP, KR, SC and TC. These are variable fonts and ReportLab reads no
   variation axes, so CJK text is set in their default instance (the Thin weight);
4. Debian's ``fonts-droid-fallback`` or ``fonts-ipaexfont-gothic`` when installed.

PyPI's ``manimgx-fonts-cjk`` and ``mplfonts`` ship CJK as CFF (``.otf``), which ReportLab cannot
embed. A character no font covers is still written to the text layer (search, copy and
``pdftotext`` give it back) but shows as the font's empty-box glyph; :func:`missing` names them
and the renderer logs them once.

Right-to-left text (Hebrew, Arabic) is reordered for display with the Unicode bidi algorithm
(``python-bidi``) line by line, after :func:`reporting.text.neutral` has removed overrides.
ReportLab wraps the reordered text, so a right-to-left paragraph longer than one line wraps
left to right; Arabic letters are set in their isolated forms (no shaping).
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from xml.sax.saxutils import escape as _xml_escape

from bidi import get_display
from reportlab.graphics import shapes
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from reporting.text import BIDI_CONTROLS

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "fonts"

FONT = "ReportSans"
FONT_BOLD = "ReportSans-Bold"
FONT_ITALIC = "ReportSans-Italic"
FONT_BOLD_ITALIC = "ReportSans-BoldItalic"
_FACES = {
    FONT: "DejaVuSans.ttf",
    FONT_BOLD: "DejaVuSans-Bold.ttf",
    FONT_ITALIC: "DejaVuSans-Oblique.ttf",
    FONT_BOLD_ITALIC: "DejaVuSans-BoldOblique.ttf",
}

ENV_FONTS = "REPORTBOT_PDF_FONTS"
_SYSTEM_FALLBACKS = (
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
)
# Fallbacks from manimgx-fonts in the order tried: symbols and emoji first (the most common
# gaps in business text), then the scripts, then Noto Sans itself for rare Latin/Greek/Cyrillic.
_MANIMGX_FIRST = ("NotoSansSymbols[wght].ttf", "NotoEmoji[wght].ttf")
_MANIMGX_LAST = ("NotoSans[wght].ttf",)
_CJK = (
    "notosansjp/NotoSansJP[wght].ttf",
    "notosanskr/NotoSansKR[wght].ttf",
    "notosanssc/NotoSansSC[wght].ttf",
    "notosanstc/NotoSansTC[wght].ttf",
)

# Characters that belong to the run they follow (they have no look of their own).
_GLUE_CATEGORIES = {"Mn", "Me", "Cf"}
_RTL = {"R", "AL"}


def _to_unicode_cmap(fontname: str, subset: list[int]) -> str:
    """ReportLab's ToUnicode CMap, with code points above U+FFFF written as UTF-16 surrogate
    pairs as the PDF spec requires (ReportLab writes ``<1F680>``, which readers take as U+1F68)."""

    def utf16(cp: int) -> str:
        return "".join(f"{(u[0] << 8) | u[1]:04X}" for u in _pairs(chr(cp).encode("utf-16-be", "surrogatepass")))

    return "\n".join(
        [
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo",
            f"<< /Registry ({fontname})",
            f"/Ordering ({fontname})",
            "/Supplement 0",
            ">> def",
            f"/CMapName /{fontname} def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            f"<00> <{len(subset) - 1:02X}>",
            "endcodespacerange",
            f"{len(subset)} beginbfchar",
            *[f"<{i:02X}> <{utf16(v)}>" for i, v in enumerate(subset)],
            "endbfchar",
            "endcmap",
            "CMapName currentdict /CMap defineresource pop",
            "end",
            "end",
        ]
    )


def _pairs(b: bytes) -> Iterator[bytes]:
    for i in range(0, len(b), 2):
        yield b[i : i + 2]


ttfonts.makeToUnicodeCMap = _to_unicode_cmap  # fix for astral code points


@dataclass
class _Fallback:
    path: Path
    name: str
    chars: frozenset[int] | None = None  # None: not loaded yet
    broken: bool = False

    def covers(self, cp: int) -> bool:
        if self.broken:
            return False
        if self.chars is None:
            try:
                font = TTFont(self.name, str(self.path))
            except (TTFError, OSError) as exc:
                log.warning("PDF fallback font %s cannot be used: %s", self.path, exc)
                self.broken = True
                return False
            pdfmetrics.registerFont(font)
            pdfmetrics.registerFontFamily(
                self.name, normal=self.name, bold=self.name, italic=self.name, boldItalic=self.name
            )
            self.chars = frozenset(font.face.charToGlyph)
        return cp in self.chars


def _package_dir(module: str) -> Path | None:
    spec = find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _fallback_paths() -> list[Path]:
    paths: list[Path] = [Path(p) for p in os.environ.get(ENV_FONTS, "").split(os.pathsep) if p.strip()]
    manim = _package_dir("manimgx_fonts")
    if manim is not None:
        first = [manim / n for n in _MANIMGX_FIRST]
        last = [manim / n for n in _MANIMGX_LAST]
        scripts = sorted(
            p for p in manim.glob("NotoSans?*[[]wght[]].ttf") if p not in first + last and "Italic" not in p.name
        )
        paths += first + scripts + last
    cjk = _package_dir("justmytype_intl_cjk")
    if cjk is not None:
        paths += [cjk / "fonts" / "ofl" / n for n in _CJK]
    paths += [Path(p) for p in _SYSTEM_FALLBACKS]
    return [p for p in paths if p.is_file()]


@lru_cache(maxsize=1)
def _registry() -> tuple[frozenset[int], tuple[_Fallback, ...]]:
    for name, file in _FACES.items():
        pdfmetrics.registerFont(TTFont(name, str(ASSETS / file)))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT_ITALIC, boldItalic=FONT_BOLD_ITALIC)
    # charts start from the graphics defaults; make them name the embedded face, not Helvetica
    shapes.STATE_DEFAULTS["fontName"] = FONT
    primary = frozenset(pdfmetrics.getFont(FONT).face.charToGlyph)  # type: ignore[attr-defined]  # a TTFont's face
    fallbacks = tuple(_Fallback(p, f"ReportFallback{i}") for i, p in enumerate(_fallback_paths()))
    return primary, fallbacks


def register() -> None:
    """Register the family with ReportLab (once per process; cheap afterwards)."""
    _registry()


@lru_cache(maxsize=4096)
def _font_for(cp: int) -> str | None:
    """The fallback font name for a code point DejaVu lacks; None when DejaVu has it or no font does."""
    primary, fallbacks = _registry()
    if cp in primary:
        return None
    for fb in fallbacks:
        if fb.covers(cp):
            return fb.name
    return None


_warned: set[str] = set()


def missing(text: str) -> str:
    """The characters of ``text`` that no available font can show (glue characters excepted)."""
    primary, _ = _registry()
    return "".join(
        dict.fromkeys(
            ch
            for ch in text
            if ord(ch) not in primary
            and unicodedata.category(ch) not in _GLUE_CATEGORIES
            and _font_for(ord(ch)) is None
        )
    )


def runs(text: str) -> list[tuple[str | None, str]]:
    """``text`` split into ``(font, segment)`` runs: ``None`` for the family, else a fallback's
    name. Combining marks, joiners and variation selectors stay with the character before them."""
    primary, _ = _registry()
    out: list[tuple[str | None, str]] = []
    current: str | None = None
    buf: list[str] = []
    bad: list[str] = []
    for ch in text:
        cp = ord(ch)
        if cp in primary and current is None:
            buf.append(ch)  # the common case
            continue
        if ch == " " or (buf and unicodedata.category(ch) in _GLUE_CATEGORIES):
            buf.append(ch)
            continue
        font = _font_for(cp)
        if font is None and cp not in primary and unicodedata.category(ch) not in _GLUE_CATEGORIES:
            bad.append(ch)
        if font != current and buf:
            out.append((current, "".join(buf)))
            buf = []
        current = font
        buf.append(ch)
    if buf:
        out.append((current, "".join(buf)))
    if bad:
        _warn_missing("".join(dict.fromkeys(bad)))
    return out


def _warn_missing(chars: str) -> None:
    if chars not in _warned:
        _warned.add(chars)
        log.warning(
            "PDF: no font available for %s (shown as boxes; the text stays searchable)",
            ", ".join(f"U+{ord(c):04X}" for c in chars[:10]),
        )


def visual(line: str) -> str:
    """One line in display order: right-to-left runs reversed per the Unicode bidi algorithm;
    bidi control characters (which no font draws) removed."""
    if any(unicodedata.bidirectional(ch) in _RTL for ch in line):
        line = get_display(line)
    if any(c in BIDI_CONTROLS for c in line):
        line = "".join(c for c in line if c not in BIDI_CONTROLS)
    return line


def markup(line: str) -> str:
    """Plain text (one line, already neutralised) as paragraph markup: bidi-reordered, escaped,
    fallback runs wrapped in ``<font name=...>``."""
    register()
    parts = []
    for font, seg in runs(visual(line)):
        safe = _xml_escape(seg, {'"': "&quot;"})
        parts.append(safe if font is None else f'<font name="{font}">{safe}</font>')
    return "".join(parts)


def width(text: str, font: str, size: float) -> float:
    """Width of plain text as :func:`draw` sets it."""
    register()
    return sum(pdfmetrics.stringWidth(seg, f or font, size) for f, seg in runs(visual(text)))


def draw(canv: Canvas, x: float, y: float, text: str, font: str, size: float, *, align: str = "left") -> None:
    """Draw plain text on the canvas in ``font``, switching to fallbacks per run."""
    register()
    segments = runs(visual(text))
    if align != "left":
        total = sum(pdfmetrics.stringWidth(seg, f or font, size) for f, seg in segments)
        x -= total if align == "right" else total / 2
    for f, seg in segments:
        canv.setFont(f or font, size)
        canv.drawString(x, y, seg)
        x += pdfmetrics.stringWidth(seg, f or font, size)


def single_font(text: str, font: str) -> str:
    """For a graphics string that takes one font: ``font`` when it covers ``text``, else the
    first fallback that covers all of it (CJK fonts include Latin), else ``font``."""
    register()
    names = {f for f, _ in runs(text)} - {None}
    if not names:
        return font
    _, fallbacks = _registry()
    for fb in fallbacks:
        if all(fb.covers(ord(c)) for c in text if unicodedata.category(c) not in _GLUE_CATEGORIES):
            return fb.name
    return font


def drawable(text: str, font: str) -> str:
    """``text`` without the characters ``font`` has no glyph for (for a graphics label that
    takes one font; the full text is in the table beside it)."""
    register()
    face = pdfmetrics.getFont(font).face  # type: ignore[attr-defined]  # a TTFont's face
    chars = face.charToGlyph
    if all(ord(c) in chars for c in text):
        return text
    return " ".join("".join(c for c in text if ord(c) in chars).split())


__all__ = [
    "FONT",
    "FONT_BOLD",
    "FONT_BOLD_ITALIC",
    "FONT_ITALIC",
    "draw",
    "drawable",
    "markup",
    "missing",
    "register",
    "runs",
    "single_font",
    "visual",
    "width",
]

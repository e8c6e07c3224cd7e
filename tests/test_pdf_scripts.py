"""Any script in the PDF: customer, site names and commentary in Polish, Greek, Cyrillic, Hebrew,
Arabic, Japanese and emoji come back from ``pdftotext`` as they went in, drawn with embedded
fonts (no base-14 font, no missing glyphs); control characters and bidi overrides are removed.

``pdftotext -layout`` is used because poppler's default mode de-hyphenates: it joins any line
ending in "-" with the next and drops the dash, which would hide the very thing tested here.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import replace

import pytest
from pypdf import PdfReader

from reporting.models import Branding, Commentary, CustomerRef, UptimeGroup
from reporting.pdf import fonts, render_pdf
from reporting.pdf.builder import esc
from tests.test_pdf import BRANDING, END, make_report

CUSTOMER = "Przedsiębiorstwo Łódź Sp. z o.o. 🚀"
SITES = ("Zakład Żółć", "Αθήνα κέντρο", "Москва офис", "תל אביב", "القاهرة", "東京本社", "Büro ✅")
COMMENTARY = (
    "Zażółć gęślą jaźń.",
    "Καλημέρα σας, όλα λειτουργούν.",
    "Добрый день, всё работает.",
    "שלום עולם",
    "مرحبا بالعالم",
    "東京の回線が復旧しました。",
    "All good 👍🏽 🎉",
    "this line ends with a dash -",
    "and this one follows it",
)
RTL_MARKS = str.maketrans("", "", "\u202a\u202b\u202c\u202d\u202e")  # pdftotext brackets RTL runs with these


def _report() -> object:
    base = make_report()
    up = base.sections["uptime"].data
    up = replace(up, by_site=tuple(UptimeGroup(n, 99.0 + i / 10, 10.0, 1) for i, n in enumerate(SITES)))
    return replace(
        base,
        customer=CustomerRef("PL", CUSTOMER, "Europe/Warsaw"),
        sections={**base.sections, "uptime": replace(base.sections["uptime"], data=up)},
        commentary=Commentary("\n".join(COMMENTARY), "Zoë 山田", END),
    )


def _pdftotext(pdf: bytes, *args: str) -> str:
    exe = shutil.which("pdftotext")
    assert exe, "pdftotext (poppler-utils) is needed; .ci/run installs it"
    out = subprocess.run(  # noqa: S603 - fixed arguments, our own PDF on stdin
        [exe, *args, "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode("utf-8")
    return out.translate(RTL_MARKS)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return render_pdf(_report(), Branding(msp_name="Serwis IT Kraków", brand_color="#1F4E79"))  # type: ignore[arg-type]


def test_every_script_round_trips_through_pdftotext(pdf: bytes) -> None:
    text = _pdftotext(pdf, "-layout")
    lines = [line.strip() for line in text.splitlines()]
    for line in COMMENTARY:  # each commentary line is a line of its own, dash included
        assert line in lines, line
    i = lines.index("this line ends with a dash -")
    assert lines[i + 1] == "and this one follows it"
    for s in (*SITES, CUSTOMER, "Zoë 山田", "Serwis IT Kraków"):
        assert s in text, s
    assert "\u25a0" not in text and "\ufffd" not in text
    assert not fonts.missing("".join(text.split()))  # every character drawn with a glyph of some embedded font


def test_fonts_are_embedded_subsets_and_no_base14_font(pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    names: set[str] = set()
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object()
            names.add(str(font["/BaseFont"]))
            desc = font.get("/FontDescriptor")
            assert desc is not None and "/FontFile2" in desc.get_object(), font["/BaseFont"]
    assert all("+" in n for n in names), names  # subset tags: AAAAAA+DejaVuSans
    assert any("DejaVuSans" in n for n in names) and any("NotoEmoji" in n for n in names)
    assert any("NotoSansJP" in n for n in names)


def test_astral_characters_have_a_correct_tounicode_entry(pdf: bytes) -> None:
    # ReportLab alone writes <1F680> (read back as U+1F68 "Ὠ"); fonts.py writes the surrogate pair
    assert "🚀" in _pdftotext(pdf) and "\u1f68" not in _pdftotext(pdf)


def test_controls_and_bidi_overrides_are_removed_visible_text_kept() -> None:
    rlo_site = "\u202eLeeds plant"  # an unterminated RIGHT-TO-LEFT OVERRIDE from a vendor
    base = make_report()
    up = base.sections["uptime"].data
    up = replace(up, by_site=(UptimeGroup(rlo_site, 98.0, 10.0, 1),))
    report = replace(
        base,
        sections={**base.sections, "uptime": replace(base.sections["uptime"], data=up)},
        commentary=Commentary("nul\x00here \x1b[31mred\x1b[0m bell\x07", "eng", END),
    )
    text = _pdftotext(render_pdf(report, BRANDING), "-layout")
    assert "Leeds plant" in text and "tnalp sdeeL" not in text
    assert "nulhere [31mred[0m bell" in text
    assert esc("a\u202eb\u2066c\u2069") == "abc"


def test_commentary_is_not_cut_below_the_one_limit() -> None:
    long = ("0123456789" * 100 + "\n") * 9 + "THE-END"  # ~9,000 characters: the PDF used to cut at 8,000
    text = _pdftotext(render_pdf(replace(make_report(), commentary=Commentary(long, "eng", END)), BRANDING))
    assert "THE-END" in text

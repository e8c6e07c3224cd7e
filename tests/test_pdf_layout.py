"""PDF structure: the cover says something (customer, week, status in words, what matters most,
no internal codes), metadata with the real creation date, an outline entry per section, the
"How to read this report" page, and no page left holding a line or two."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC
from pathlib import Path

from pypdf import PdfReader

from reporting.metrics import DEFINITIONS
from reporting.models import Commentary, Flag
from reporting.pdf import render_pdf
from tests.test_pdf import BRANDING, END, make_report, pages_text

OUTLINE = [
    "Executive summary",
    "Recommendations",
    "Next week",
    "Uptime and SLA",
    "Service desk tickets",
    "Changes executed",
    "Backup posture",
    "Security",
    "Public-site availability",
    "How to read this report",
]


def test_metadata_title_author_subject_and_real_creation_date() -> None:
    report = make_report()
    info = PdfReader(io.BytesIO(render_pdf(report, BRANDING))).metadata
    assert info is not None
    assert info.title == "Acme Corporation: weekly service report, Week of Mon 9 Nov \u2013 Sun 15 Nov 2026"
    assert info.author == "Northwind Managed IT"
    assert info.subject is not None and "Acme Corporation" in info.subject
    assert info.creation_date is not None
    assert info.creation_date.replace(tzinfo=UTC) == report.generated_at.astimezone(UTC)  # not 2000-01-01
    assert "reportbot" not in (info.creator or "").lower()


def test_outline_has_one_entry_per_section_pointing_at_its_page() -> None:
    reader = PdfReader(io.BytesIO(render_pdf(make_report(), BRANDING)))
    entries = [e for e in reader.outline if not isinstance(e, list)]
    assert [e.title for e in entries] == OUTLINE
    for e in entries:
        page = reader.get_destination_page_number(e)
        assert e.title in reader.pages[page].extract_text(), e.title
    assert reader.trailer["/Root"]["/PageMode"] == "/UseOutlines"


def test_how_to_read_page_defines_every_figure_in_plain_words() -> None:
    pages = pages_text(render_pdf(make_report(), BRANDING))
    last = pages[-1]
    assert "How to read this report" in last
    flat = " ".join(last.split())
    for _, figure, definition in DEFINITIONS:
        assert figure in flat, figure
        assert " ".join(definition.split()[:6]) in flat, figure


def test_cover_without_flags_is_on_track_and_lists_the_summary() -> None:
    report = replace(make_report(), flags=(Flag("no_baseline", "low", "uptime", "First report we hold."),))
    cover = pages_text(render_pdf(report, BRANDING))[0]
    assert "On track" in cover and "First report we hold." not in cover
    assert "We closed 27 tickets and opened 31" in cover  # the summary fills "what matters most"


def test_no_page_is_left_with_a_line_or_two() -> None:
    for changes in range(0, 61, 6):
        for lines in (0, 12):
            text = "\n".join(f"line {i} of the commentary" for i in range(lines))
            report = replace(make_report(changes=changes), commentary=Commentary(text, "eng", END) if lines else None)
            pages = pages_text(render_pdf(report, BRANDING))
            for n, page in enumerate(pages[1:], start=2):
                body = [line for line in page.splitlines() if line.strip()][2:-2]  # running header and footer
                assert len(body) >= 6, (changes, lines, n, body)


def test_every_sandbox_report_is_small_embeds_subset_fonts_and_has_no_orphan_page(demo_out: Path) -> None:
    pdfs = sorted(demo_out.glob("*/*-weekly-*.pdf"))
    assert len(pdfs) == 24  # each customer's executive and technical report
    for path in pdfs:
        technical = path.stem.endswith("-technical")
        data = path.read_bytes()
        assert len(data) <= 700 * 1024, (path.name, len(data))
        reader = PdfReader(io.BytesIO(data))
        fonts: set[str] = set()
        for page in reader.pages:
            for ref in page["/Resources"]["/Font"].values():
                font = ref.get_object()
                fonts.add(str(font["/BaseFont"]))
                assert "/FontFile2" in font["/FontDescriptor"].get_object(), (path.name, font["/BaseFont"])
        assert fonts and all("+" in f for f in fonts), (path.name, fonts)  # subsets only, no base-14 font
        outline = [*OUTLINE[:-1], "Technical detail", OUTLINE[-1]] if technical else OUTLINE
        assert [e.title for e in reader.outline if not isinstance(e, list)] == outline
        if technical:  # the detail's lists are bookmarks under it
            nested = [e for e in reader.outline if isinstance(e, list)]
            assert [x.title for x in nested[-1]] == [
                "Uptime and SLA: every device",
                "Service desk tickets: every ticket",
                "Backup posture: every backup run",
                "Security: every incident",
                "Public-site availability: every check",
            ], path.name
        for n, page in enumerate(reader.pages[1:], start=2):
            body = [line for line in page.extract_text().splitlines() if line.strip()][2:-2]
            assert len(body) >= 6, (path.name, n, body)

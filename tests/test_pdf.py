"""PDF renderer: structure, unavailable sections, page splitting, hostile strings, footers.

Assertions are on text extracted with pypdf, never on PDF bytes.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from reporting.models import (
    Backups,
    Branding,
    Change,
    Changes,
    Commentary,
    CustomerRef,
    Flag,
    OpenIncident,
    Period,
    ProtectedItem,
    Report,
    Section,
    Security,
    SiteCheck,
    Sites,
    Tickets,
    Uptime,
    UptimeGroup,
    WeekPoint,
)
from reporting.pdf import render_pdf
from reporting.pdf.builder import esc, fmt_signed, period_line
from reporting.pdf.charts import uptime_axis_range
from reporting.pdf.stylesheet import parse_brand_color, theme_for

TZ = ZoneInfo("Europe/Amsterdam")
START = datetime(2026, 11, 9, tzinfo=TZ)
END = datetime(2026, 11, 16, tzinfo=TZ)
AS_OF = datetime(2026, 11, 16, 5, 2, tzinfo=ZoneInfo("UTC"))
BRANDING = Branding(msp_name="Northwind Managed IT", brand_color="#1F4E79")


def _section(name: str, data: object) -> Section:
    return Section(name=name, status="ok", source=f"{name}-src", as_of=AS_OF, data=data)  # type: ignore[arg-type]


def make_report(*, changes: int = 10, history: int = 4, **overrides: object) -> Report:
    """A full report: six ok sections, flags, commentary, ``history`` earlier weeks."""
    uptime = Uptime(
        overall_pct=99.412,
        target_pct=99.9,
        by_site=(
            UptimeGroup("Amsterdam HQ", 99.95, 30.0, 24),
            UptimeGroup("Rotterdam DC", 98.7, 250.5, 12),
            UptimeGroup("Utrecht branch", 100.0, 0.0, 6),
        ),
        by_class=(
            UptimeGroup("server", 99.8, 120.0, 14),
            UptimeGroup("network", 99.1, 160.5, 28),
        ),
        overall_source="zabbix SLA 'weekly'",
    )
    tickets = Tickets(
        opened=31,
        closed=27,
        backlog=14,
        sla_breaches=2,
        sla_attainment_pct=92.6,
        by_priority={"P1": 1, "P2": 6, "P3": 17, "P4": 7},
    )
    items = tuple(
        Change(
            f"CHG-{1000 + i}",
            f"Patch window {i}: update firmware on switch stack {i % 5}",
            START + timedelta(hours=7 * i + 3),
        )
        for i in range(changes)
    )
    backups = Backups(
        success_rate_pct=96.4,
        runs_total=56,
        runs_warning=3,
        protected=(
            ProtectedItem("FS01 file server", END - timedelta(hours=5), 5.0, "ok", 7, 0, 0),
            ProtectedItem("SQL01 databases", END - timedelta(hours=60), 60.0, "stale", 4, 1, 2),
            ProtectedItem("Exchange Online", END - timedelta(hours=90), 90.0, "failed", 0, 0, 7),
            ProtectedItem("New laptop image", None, None, "never"),
        ),
    )
    security = Security(
        incidents_new=3,
        incidents_open=1,
        by_severity={"high": 1, "medium": 1, "low": 1, "informational": 0},
        secure_score_pct=64.5,
        secure_score_change=-8.0,
        open_items=(
            OpenIncident("INC-77", "Suspicious inbox rule on finance mailbox", "high", START + timedelta(days=3)),
        ),
    )
    sites = Sites(
        checks=(
            SiteCheck("www.example.com", 99.99, 1.0),
            SiteCheck("shop.example.com", 98.81, 120.0),
        )
    )
    hist = tuple(
        WeekPoint(END.date() - timedelta(days=7 * (history - i)), min(99.99, 99.6 + 0.05 * i), 25 + i, 24 + i, 10 + i)
        for i in range(history)
    )
    report = Report(
        customer=CustomerRef(code="ACME", name="Acme Corporation", timezone="Europe/Amsterdam"),
        period=Period(start=START, end=END, timezone="Europe/Amsterdam"),
        sections={
            "uptime": _section("uptime", uptime),
            "tickets": _section("tickets", tickets),
            "changes": _section("changes", Changes(count=changes, items=items)),
            "backups": _section("backups", backups),
            "security": _section("security", security),
            "sites": _section("sites", sites),
        },
        flags=(
            Flag("sla_drop", "high", "uptime", "Uptime fell 4.0 points to 99.41%."),
            Flag("backup_stale", "medium", "backups", "SQL01 databases last backed up 60 hours ago."),
            Flag("site_down", "low", "sites", "shop.example.com was down for 2 hours."),
        ),
        generated_at=datetime(2026, 11, 16, 6, 0, tzinfo=TZ),
        summary=(
            "Uptime was 99.41%, below the 99.9% target, because of a power cut at the Rotterdam data centre.",
            "We closed 27 tickets and opened 31; the backlog grew by 1.",
        ),
        recommendations=("Replace the UPS batteries in Rotterdam.", "Review the finance mailbox rules."),
        history=hist,
        commentary=Commentary(
            "The Rotterdam outage was a utility failure.\nPower is back.", "Jan de Vries", END + timedelta(hours=8)
        ),
    )
    return replace(report, **overrides) if overrides else report  # type: ignore[arg-type]


def pages_text(pdf: bytes) -> list[str]:
    return [p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture(scope="module")
def full_pdf() -> list[str]:
    return pages_text(render_pdf(make_report(), BRANDING))


# ---- structure ---------------------------------------------------------------------------


def test_is_a_pdf_and_deterministic() -> None:
    report = make_report()
    a = render_pdf(report, BRANDING)
    b = render_pdf(report, BRANDING)
    assert a.startswith(b"%PDF-")
    assert pages_text(a) == pages_text(b)


def test_cover_is_page_one(full_pdf: list[str]) -> None:
    cover = full_pdf[0]
    assert "Northwind Managed IT" in cover
    assert "Acme Corporation" in cover
    assert "Week of Mon 9 Nov \u2013 Sun 15 Nov 2026" in cover
    assert "Europe/Amsterdam" in cover
    assert "Prepared by Northwind Managed IT on Mon 16 Nov 2026" in cover
    # overall status in words and the three things that matter most, most severe first
    assert "Overall status" in cover and "Needs attention" in cover
    matters = cover[cover.index("What matters most this week") :]
    assert matters.index("Uptime fell 4.0 points") < matters.index("SQL01 databases") < matters.index("shop.example")
    assert "Executive summary" in cover and "How to read this report" in cover  # the contents list
    # no internal codes or markers
    for internal in ("ACME", "Customer code", "first", "included", "Flags this week"):
        assert internal not in cover, internal
    assert "Page 1 of" not in cover  # no footer on the cover


def test_cover_names_the_account_engineer_with_a_mail_link() -> None:
    customer = CustomerRef("ACME", "Acme Corporation", "Europe/Amsterdam", "Zoë Ångström", "zoe@northwind.example")
    pdf = render_pdf(make_report(customer=customer), BRANDING)
    cover = pages_text(pdf)[0]
    assert "Your contact: Zoë Ångström" in cover and "zoe@northwind.example" in cover
    links = [a.get_object()["/A"]["/URI"] for a in PdfReader(io.BytesIO(pdf)).pages[0].get("/Annots", [])]
    assert "mailto:zoe@northwind.example" in links
    assert "Your contact" not in pages_text(render_pdf(make_report(), BRANDING))[0]  # none configured: no line


def test_executive_summary_first_then_sections_in_order(full_pdf: list[str]) -> None:
    page2 = full_pdf[1]
    assert page2.index("Executive summary") >= 0
    assert "Uptime was 99.41%" in page2
    assert "Jan de Vries" in page2 and "Power is back." in page2
    body = "\n".join(full_pdf[1:])
    order = [
        "Executive summary",
        "Recommendations",  # on the summary page, not alone on the last one
        "Uptime and SLA",
        "Service desk tickets",
        "Changes executed",
        "Backup posture",
        "Security",
        "Public-site availability",
        "How to read this report",
    ]
    pos = 0
    for title in order:  # each heading after the previous one (titles also appear in the flags table)
        pos = body.index(title, pos) + len(title)
    labels = (
        "Network and server monitoring",
        "Service desk",
        "Service desk",
        "Backup system",
        "Security monitoring",
        "Public-site monitoring",
    )
    sources = [body.index(f"Source: {label}") for label in labels]
    assert sources == sorted(sources)
    assert body.index("Executive summary") < body.index("Replace the UPS batteries in Rotterdam.") < sources[0]
    assert "Replace the UPS batteries in Rotterdam." in page2


def test_every_section_names_source_and_freshness(full_pdf: list[str]) -> None:
    body = "\n".join(full_pdf[1:])
    # the customer reads what kind of system the figures come from, never a connector's name
    for label in (
        "Network and server monitoring",
        "Service desk",
        "Backup system",
        "Security monitoring",
        "Public-site monitoring",
    ):
        assert f"Source: {label} \u00b7 data as of Mon 16 Nov 2026, 06:02 CET" in body
    assert "-src" not in body


def test_flags_and_figures(full_pdf: list[str]) -> None:
    body = "\n".join(full_pdf[1:])
    assert "HIGH" in body and "MEDIUM" in body and "LOW" in body
    assert "99.41 %" in body and "99.9 %" in body  # one format (reporting/fmt.py): value, and the target as configured
    assert "Rotterdam DC" in body and "network" in body
    assert "CHG-1009" in body
    assert "STALE" in body and "FAILED" in body and "NEVER" in body
    assert "\u22128.0 pts" in body
    assert "Suspicious inbox rule on finance mailbox" in body
    assert "shop.example.com" in body and "below target" in body


def test_footers_on_every_page_but_the_cover(full_pdf: list[str]) -> None:
    n = len(full_pdf)
    assert n >= 3
    for i, text in enumerate(full_pdf[1:], start=2):
        assert f"Page {i} of {n}" in text
        assert "Northwind Managed IT \u00b7 weekly service report for Acme Corporation" in text


# ---- unavailable data --------------------------------------------------------------------


def test_unavailable_section_shows_reason_and_no_numbers() -> None:
    report = make_report()
    down = Section("uptime", "unavailable", "zabbix", AS_OF, error="Zabbix API answered 502 Bad Gateway")
    flags = tuple(f for f in report.flags if f.section != "uptime")  # an unavailable section has no figure flags
    report = replace(report, sections={**report.sections, "uptime": down}, history=(), flags=flags)
    pages = pages_text(render_pdf(report, BRANDING))
    body = "\n".join(pages[1:])
    src = body.index("Source: Network and server monitoring")
    start, end = body.rindex("Uptime and SLA", 0, src), body.index("Source: Service desk")
    uptime_part = " ".join(body[start:end].split())
    # what is missing and that it follows, in the customer's words; the reason stays on the review card
    assert (
        "Not available this week \u2014 This week's uptime figures for your network and servers could not be collected"
    ) in uptime_part
    assert "next week's report will include them" in uptime_part
    assert "502" not in body and "Zabbix" not in body and "zabbix" not in body
    assert "%" not in uptime_part
    assert not re.search(r"\d+\.\d+", uptime_part)
    assert "Rotterdam DC" not in body
    assert "Uptime and SLA \u2014 not available this week" in pages[0]  # the cover's contents list says so
    # the rest of the report is intact
    assert "Service desk tickets" in body and "CHG-1000" in body
    assert "No earlier weeks stored yet" in body


def test_ok_section_without_data_is_treated_as_unavailable() -> None:
    report = make_report()
    broken = Section("sites", "ok", "cloudflare", AS_OF, data=None)
    body = "\n".join(pages_text(render_pdf(replace(report, sections={**report.sections, "sites": broken}), BRANDING)))
    assert "Not available this week" in body and "public-site availability figures" in body


# ---- long tables -------------------------------------------------------------------------


def test_long_change_list_splits_with_repeated_header() -> None:
    short = pages_text(render_pdf(make_report(changes=10), BRANDING))
    long = pages_text(render_pdf(make_report(changes=45), BRANDING))
    assert len(long) > len(short)
    spanning = [t for t in long if re.search(r"CHG-10\d\d", t)]
    assert len(spanning) >= 2
    for text in spanning:
        assert re.search(r"ID\s*Change\s*Closed", text), text[:300]
    body = "\n".join(long)
    for i in range(45):
        assert f"CHG-{1000 + i}" in body


# ---- hostile strings ---------------------------------------------------------------------

HOSTILE = [
    "<b>bold</b>",
    "<para>x</para>",
    "<font color=red>red</font>",
    "&amp; &lt; & <",
    "Zoë Müller – Café",
    "<img src='/etc/passwd'/>",
    "]]> \x00\x07 control",
]


def test_hostile_strings_render_literally() -> None:
    base = make_report()
    hostile_name = " ".join(HOSTILE)
    up = base.sections["uptime"].data
    assert isinstance(up, Uptime)
    up = replace(up, by_site=(*up.by_site, UptimeGroup("<b>bold</b>", 99.0, 10.0, 1)))
    ch = Changes(
        count=3,
        items=(
            Change("<b>bold</b>", "<b>bold</b> & <para>x</para>", START),
            Change("CHG-X", "A" * 10_000, START),
            Change("CHG-Y", "Москва 北京 \U0001f600 " * 30, START),
        ),
    )
    sec = base.sections["security"].data
    assert isinstance(sec, Security)
    sec = replace(sec, open_items=(OpenIncident("<i>", "<font color=red>red</font> &amp;", "weird<sev>", START),))
    sections = {
        **base.sections,
        "uptime": replace(base.sections["uptime"], data=up),
        "changes": replace(base.sections["changes"], data=ch, source="<b>bold</b>"),
        "security": replace(base.sections["security"], data=sec),
        "sites": Section("sites", "unavailable", "statuscheck", AS_OF, error="<b>bold</b> " + "x" * 10_000),
    }
    report = replace(
        base,
        customer=CustomerRef("<b>bold</b>", hostile_name, "Europe/Amsterdam"),
        sections=sections,
        summary=("<b>bold</b> is not bold", "B" * 10_000, "Zoë Müller – Café"),
        flags=(Flag("x", "high", "<sec>", "&amp; <b>bold</b>"),),
        recommendations=("<para>x</para>",),
        commentary=Commentary("<b>bold</b>\n" + "word " * 2000, "Zoë Müller – Café", END),
    )
    pdf = render_pdf(
        report, Branding(msp_name="<b>bold</b> & Co", brand_color="not-a-colour", logo_path="/nonexistent.png")
    )
    pages = pages_text(pdf)
    text = "\n".join(pages)
    assert "<b>bold</b>" in text
    assert "<b>bold</b> is not bold" in text
    assert "<para>x</para>" in text
    assert "<font color=red>red</font> &amp;" in text
    assert "&amp; <b>bold</b>" in text
    assert "Zoë Müller – Café" in text
    assert "<b>bold</b> & Co" in pages[1]  # MSP name in the footer
    assert "\u2026" in text  # long strings were cut, not overflowing
    assert "Not available this week" in text


def test_non_latin_text_does_not_crash() -> None:
    report = make_report()
    report = replace(
        report,
        customer=CustomerRef("RU", "ООО Ромашка 株式会社 \U0001f680", "Europe/Moscow"),
        period=Period(START, END, "Europe/Moscow"),
        summary=("Всё работает. 一切正常。",),
    )
    pages = pages_text(render_pdf(report, Branding(msp_name="Ünïcødé ИТ")))
    assert "Page 2 of" in pages[1]


def test_logo_is_drawn_when_the_file_exists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("RGB", (120, 40), (200, 30, 30)).save(logo)
    with_logo = render_pdf(make_report(), replace(BRANDING, logo_path=str(logo)))
    without = render_pdf(make_report(), BRANDING)
    assert b"/Subtype /Image" in with_logo
    assert b"/Subtype /Image" not in without


def test_edge_cases_render() -> None:
    report = make_report(changes=0, history=0)
    t = report.sections["tickets"].data
    b = report.sections["backups"].data
    s = report.sections["security"].data
    assert isinstance(t, Tickets) and isinstance(b, Backups) and isinstance(s, Security)
    sections = {
        **report.sections,
        "tickets": replace(report.sections["tickets"], data=replace(t, sla_attainment_pct=None, by_priority={})),
        "backups": replace(report.sections["backups"], data=replace(b, success_rate_pct=None, protected=())),
        "security": replace(
            report.sections["security"], data=replace(s, secure_score_pct=None, secure_score_change=None, open_items=())
        ),
    }
    del sections["sites"]
    report = replace(report, sections=sections, flags=(), summary=(), recommendations=(), commentary=None)
    body = "\n".join(pages_text(render_pdf(report, BRANDING)))
    assert "no runs finished" in body
    assert "no tickets closed" in body
    assert "No changes were executed this week." in body
    assert "Nothing needs your attention this week." in body
    assert "No earlier weeks stored yet" in body
    assert "Not available this week \u2014 This week's public-site availability figures" in " ".join(body.split())


# ---- helpers -----------------------------------------------------------------------------


def test_esc_escapes_markup_and_truncates() -> None:
    assert esc("<b>a & b</b>") == "&lt;b&gt;a &amp; b&lt;/b&gt;"
    assert esc("&amp;") == "&amp;amp;"
    cut = esc("x" * 500, 50)
    assert len(cut) == 50 and cut.endswith("\u2026")
    assert esc("a\x00b") == "ab"  # controls are removed, the visible text is kept
    assert esc("one\ntwo <x>", 100, multiline=True) == "one<br/>two &lt;x&gt;"


def test_signed_and_period_helpers() -> None:
    assert fmt_signed(-8.0, "pts") == "\u22128.0 pts"
    assert fmt_signed(1.25, "pts", 2) == "+1.25 pts"
    assert fmt_signed(0, "") == "\u00b10"
    assert period_line(make_report(), TZ) == "Week of Mon 9 Nov \u2013 Sun 15 Nov 2026"


def test_uptime_axis_is_zoomed() -> None:
    assert uptime_axis_range([99.95, 98.7, 100.0], 99.9) == (97.0, 100.0)
    assert uptime_axis_range([100.0], None) == (99.0, 100.0)
    assert uptime_axis_range([20.0], 99.0) == (19.0, 100.0)


def test_theme_is_cached_and_tolerates_bad_colours() -> None:
    assert theme_for("#1F4E79") is theme_for("#1F4E79")
    assert parse_brand_color("nonsense") == parse_brand_color("#1F4E79")
    assert parse_brand_color("ff0000").hexval() == "0xff0000"


def test_history_weekpoints_only_before_this_week_are_charted() -> None:
    report = make_report(history=3)
    future = WeekPoint(date(2030, 1, 7), 99.0, 1, 1, 1)
    pdf = render_pdf(replace(report, history=(*report.history, future)), BRANDING)
    assert "Page 2 of" in pages_text(pdf)[1]


def test_backup_extras_and_site_fallback_are_labelled() -> None:
    """Offsite copy and restore test columns appear when the source has them; a source without
    run history says so instead of a rate; a current-status fallback never looks like a week."""
    when = datetime(2026, 11, 15, 22, tzinfo=ZoneInfo("Europe/London"))
    backups = Backups(
        success_rate_pct=None,
        run_history=False,
        protected=(
            ProtectedItem(
                "DC01", when, 2.0, "ok", last_offsite=when - timedelta(hours=3), verified=True, verified_at=when
            ),
            ProtectedItem("SQL01", when, 2.0, "ok", verified=False, verified_at=when),
        ),
    )
    sites = Sites(
        checks=(SiteCheck("www.example.com", None, None, "unhealthy"),),
        basis="current_status",
        note="cloudflare: analytics <b>refused</b> & unavailable",
    )
    report = make_report()
    report = replace(
        report, sections={**report.sections, "backups": _section("backups", backups), "sites": _section("sites", sites)}
    )
    text = "\n".join(pages_text(render_pdf(report, BRANDING)))
    assert "source keeps no run history" in text
    assert "Runs ok/warn/fail" not in text
    assert "Last offsite" in text and "Restore test" in text and "FAILED" in text and "passed" in text
    assert "Current status only — not a weekly figure. The week's availability history could not be read" in text
    assert "cloudflare" not in text and "refused" not in text
    assert "Status now" in text and "unhealthy" in text

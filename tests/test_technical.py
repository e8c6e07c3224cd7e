"""The technical variant (issue 16, item 1): the executive report plus every device, ticket, backup
run, incident and check behind it — read back from the PDF with pypdf and checked against the
sandbox's own records (not against our snapshot), equal to the executive report where the two
overlap, paginated with repeated headers, hostile text kept as text, and older snapshots (without
the detail) still loading and rendering."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from connectors.sandbox.dataset import SandboxDataset
from reporting import snapshot
from reporting.html import render_html
from reporting.markdown import render_markdown
from reporting.models import (
    BackupRunItem,
    Backups,
    DeviceUptime,
    DownSpell,
    IncidentItem,
    Report,
    Security,
    TicketItem,
    Tickets,
    Uptime,
    technical,
)
from reporting.output import report_paths
from reporting.pdf import render_pdf
from reporting.period import week_containing
from tests.conftest import ANCHOR, PERIOD_END, WEEK_DAY, load_json
from tests.test_pdf import BRANDING, START, make_report, pages_text

CODES = ("ACME", "GLOBEX", "HOOLI", "INITECH", "SOYLENT", "UMBRELLA", "WONKA", "MASSIVE")
RLO = "\u202e"


def _pages(path: Path) -> list[str]:
    return [p.extract_text() for p in PdfReader(path).pages]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _chapter(pages: list[str], start: str, end: str) -> str:
    """The text from the heading ``start`` to the heading ``end`` (one line each in pypdf's text)."""
    text = "\n".join(pages)
    a = text.index(f"\n{start}\n")
    b = text.index(f"\n{end}\n", a)
    return text[a:b]


def _sandbox_week(code: str) -> tuple[Any, Any]:
    ds = SandboxDataset(ANCHOR)
    c = next(c for c in ds.customers if c.code == code)
    return ds.gen(code), week_containing(date.fromisoformat(WEEK_DAY), c.timezone)


# ---- files ---------------------------------------------------------------------------------------


def test_report_paths_add_technical_before_the_dot(tmp_path: Path) -> None:
    ex = report_paths(tmp_path, "ACME", "2026-11-30")
    te = report_paths(tmp_path, "ACME", "2026-11-30", variant="technical")
    assert ex["pdf"] == tmp_path / "ACME" / "ACME-weekly-2026-11-30.pdf"
    assert te["pdf"] == tmp_path / "ACME" / "ACME-weekly-2026-11-30-technical.pdf"
    assert {k: p.name for k, p in te.items()} == {
        "md": "ACME-weekly-2026-11-30-technical.md",
        "pdf": "ACME-weekly-2026-11-30-technical.pdf",
        "json": "ACME-weekly-2026-11-30-technical.json",
    }


def test_every_draft_has_its_technical_variant_beside_it(demo_out: Path) -> None:
    for code in CODES:
        for ext in ("md", "pdf", "json"):
            path = demo_out / code / f"{code}-weekly-{PERIOD_END}-technical.{ext}"
            assert path.is_file() and path.stat().st_size > 0, path
        exec_pdf = demo_out / code / f"{code}-weekly-{PERIOD_END}.pdf"
        assert "WEEKLY SERVICE REPORT" in _pages(exec_pdf)[0] and "Technical detail" not in _flat(
            "\n".join(_pages(exec_pdf))
        )
        assert "WEEKLY TECHNICAL REPORT" in _pages(demo_out / code / f"{code}-weekly-{PERIOD_END}-technical.pdf")[0]


# ---- every device and ticket, against the sandbox's own records -----------------------------------


def test_acme_technical_pdf_lists_every_ticket_and_every_device_of_the_sandbox(demo_out: Path) -> None:
    pages = _pages(demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}-technical.pdf")
    gen, period = _sandbox_week("ACME")

    devices = _flat(_chapter(pages, "Uptime and SLA: every device", "Service desk tickets: every ticket"))
    names = sorted(d.name for d in gen.devices)
    assert len(names) >= 10
    for name in names:  # each device once in its table (and again only in its down spells)
        assert re.search(rf"\b{re.escape(name)} ", devices), name
    assert f"{len(names)} devices." in devices

    tickets = _flat(_chapter(pages, "Service desk tickets: every ticket", "Backup posture: every backup run"))
    expected = [
        t
        for t in gen.tickets
        if not t.is_change
        and (
            period.start <= t.created < period.end
            or (t.closed is not None and period.start <= t.closed < period.end)
            or (t.created < period.end and (t.closed is None or t.closed >= period.end))
        )
    ]
    assert len(expected) > 20
    for t in expected:  # the row: id, subject (wrapped lines joined), priority
        assert f"{t.id} {t.title} {t.priority} " in tickets, (t.id, t.title)
    rows = re.findall(r"(?:^| )(\d{3}) (?=[A-Z])", tickets.split("tickets listed:")[0])
    assert sorted(rows) == sorted(t.id for t in expected)  # every ticket, and no other


def test_numbers_equal_the_executive_report_where_they_overlap(demo_out: Path) -> None:
    for code in CODES:
        ex = _pages(demo_out / code / f"{code}-weekly-{PERIOD_END}.pdf")
        te = _pages(demo_out / code / f"{code}-weekly-{PERIOD_END}-technical.pdf")
        how = next(i for i, t in enumerate(ex) if "\nHow to read this report\n" in t)

        def norm(text: str) -> str:
            text = re.sub(r"Page \d+ of \d+", "Page", text)
            return text.replace("weekly technical report for", "weekly service report for")

        # the same executive summary, sections, figures and charts' labels, page for page
        assert [norm(t) for t in te[1:how]] == [norm(t) for t in ex[1:how]], code
        assert "\nTechnical detail\n" in te[how]

        # and the lists add up to those figures (the executive report prints them from the same values)
        snap = load_json(demo_out, code)
        detail = _flat("\n".join(te[how:]))
        t = snap["sections"]["tickets"]
        if t["status"] == "ok":
            listed = f"{t['opened']} opened this week, {t['closed']} closed this week, {t['backlog']} open at week end"
            assert listed in detail, code
            assert re.search(rf"= {t['sla_breaches']}\.", detail), code
        b = snap["sections"]["backups"]
        if b["status"] == "ok" and b["run_history"]:
            assert f"{b['runs_total']} runs finished this week" in detail, code
        s = snap["sections"]["security"]
        if s["status"] == "ok" and (s["incidents_new"] or s["incidents_open"]):
            assert f"{s['incidents_new']} new this week, {s['incidents_open']} open at week end" in detail, code
        u = snap["sections"]["uptime"]
        if u["status"] == "ok":
            assert f"{sum(g['devices'] for g in u['by_site'])} devices." in detail, code


def test_device_rows_add_up_to_the_site_rows_exactly(demo_out: Path) -> None:
    for code in ("ACME", "UMBRELLA", "WONKA"):
        u = snapshot.from_dict(load_json(demo_out, code)).sections["uptime"].data
        assert isinstance(u, Uptime) and u.devices
        for g in u.by_site:
            rows = [d for d in u.devices if d.site == g.name]
            assert len(rows) == g.devices
            assert abs(sum(d.downtime_minutes for d in rows) - g.downtime_minutes) < 1e-3
            mon = sum(d.monitored_minutes for d in rows)
            assert abs(100 * (mon - sum(d.downtime_minutes for d in rows)) / mon - g.uptime_pct) < 1e-4
            for d in rows:
                assert abs(sum(o.minutes for o in d.outages) - d.downtime_minutes) < 1e-3


def test_ticket_verdicts_are_the_counts_of_the_section(demo_out: Path) -> None:
    for code in CODES:
        r = snapshot.from_dict(load_json(demo_out, code))
        t = r.sections["tickets"].data
        if not isinstance(t, Tickets):
            continue
        items, p = t.items, r.period
        assert sum(1 for i in items if p.start <= i.created < p.end) == t.opened
        assert sum(1 for i in items if i.closed is not None) == t.closed
        assert sum(1 for i in items if i.closed is None) == t.backlog
        assert sum(1 for i in items if i.sla in ("missed", "breached")) == t.sla_breaches
        measured = [i for i in items if i.closed is not None and i.sla != "excluded"]
        if measured:
            met = sum(1 for i in measured if i.sla in ("met", "no_target"))
            assert t.sla_attainment_pct is not None and abs(100 * met / len(measured) - t.sla_attainment_pct) < 1e-5


def test_an_unavailable_section_says_so_in_the_detail_too(demo_out: Path) -> None:
    pages = _pages(demo_out / "HOOLI" / f"HOOLI-weekly-{PERIOD_END}-technical.pdf")
    detail = _flat(_chapter(pages, "Uptime and SLA: every device", "Service desk tickets: every ticket"))
    assert "Not available this week" in detail and "they will follow in next week's report" in detail
    assert "zabbix" not in detail.lower() and "502" not in detail


# ---- pagination and hostile text -------------------------------------------------------------------


def _with_detail(report: Report, n_tickets: int = 0, n_devices: int = 0, text: str = "") -> Report:
    s = dict(report.sections)
    t = s["tickets"].data
    u = s["uptime"].data
    assert isinstance(t, Tickets) and isinstance(u, Uptime)
    items = tuple(
        TicketItem(
            f"T{1000 + i}", f"{text}Subject {i}", "High", START + timedelta(minutes=i), None, 2.0, "within", None
        )
        for i in range(n_tickets)
    )
    devices = tuple(
        DeviceUptime(
            str(i),
            f"{text}dev-{i:03d}",
            f"{text}Site",
            "server",
            99.0,
            10.0,
            10_080.0,
            (DownSpell(START, START + timedelta(minutes=10)),),
        )
        for i in range(n_devices)
    )
    s["tickets"] = replace(s["tickets"], data=replace(t, items=items))
    s["uptime"] = replace(s["uptime"], data=replace(u, devices=devices))
    return technical(replace(report, sections=s))


def test_long_lists_paginate_with_their_header_repeated_on_every_page() -> None:
    report = _with_detail(make_report(), n_tickets=150, n_devices=90)
    pages = pages_text(render_pdf(report, BRANDING))
    with_tickets = [t for t in pages if re.search(r"\bT1\d{3}\b", t)]
    with_devices = [t for t in pages if re.search(r"\bdev-\d{3}\b", t)]
    assert len(with_tickets) >= 3 and len(with_devices) >= 2
    for t in with_tickets:
        assert re.search(r"Ticket\s+Subject\s+Priority\s+Opened\s+Closed\s+Age\s+SLA", t), t[:300]
    for t in with_devices:
        assert re.search(r"Device\s+Site", t), t[:300]
    body = "\n".join(pages)
    assert all(f"T{1000 + i}\n" in body for i in range(150))
    assert all(f"dev-{i:03d}" in body for i in range(90))


HOSTILE = f"<b>bold</b> &amp; <font color=red>x</font> {RLO}\x00\x1b"


def test_hostile_text_in_the_detail_stays_text_in_every_rendering() -> None:
    report = _with_detail(make_report(), n_tickets=2, n_devices=2, text=HOSTILE)
    s = dict(report.sections)
    sec, bk = s["security"].data, s["backups"].data
    assert isinstance(sec, Security) and isinstance(bk, Backups)
    s["security"] = replace(
        s["security"], data=replace(sec, incidents=(IncidentItem("<i>", HOSTILE, "high", START, None, HOSTILE),))
    )
    s["backups"] = replace(s["backups"], data=replace(bk, runs=(BackupRunItem(HOSTILE, START, "failed"),)))
    report = replace(report, sections=s)

    text = "\n".join(pages_text(render_pdf(report, BRANDING)))
    assert "<b>bold</b> &amp; <font color=red>x</font>" in text
    assert RLO not in text and "\x00" not in text and "\x1b" not in text

    md = render_markdown(report, BRANDING)
    detail = md[md.index("## Technical detail") :]
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;amp; &lt;font color=red&gt;x&lt;/font&gt;" in detail
    assert "<b>" not in detail and RLO not in detail and "\x00" not in detail

    page = render_html(report, BRANDING)
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page and RLO not in page


# ---- the snapshot: additive, and older snapshots still load -------------------------------------------

NEW_KEYS = {"uptime": "devices", "tickets": "items", "backups": "runs", "security": "incidents"}


def test_detail_round_trips_through_the_snapshot(demo_out: Path) -> None:
    for code in ("ACME", "WONKA", "INITECH"):
        payload = load_json(demo_out, code)
        r = snapshot.from_dict(payload)
        again = snapshot.from_dict(snapshot.to_dict(r))
        for name, key in NEW_KEYS.items():
            a, b = r.sections[name].data, again.sections[name].data
            if a is not None:
                assert getattr(a, key) == getattr(b, key), (code, name)
        assert snapshot.to_dict(again) == payload


def test_a_snapshot_written_before_the_detail_still_loads_and_renders(demo_out: Path) -> None:
    payload = load_json(demo_out, "ACME")
    old = copy.deepcopy(payload)
    for name, key in NEW_KEYS.items():
        del old["sections"][name][key]
    for key in payload["sections"]["uptime"]:  # the contract's keys are unchanged: only new ones were added
        assert key in old["sections"]["uptime"] or key == "devices"
    r_old, r_new = snapshot.from_dict(old), snapshot.from_dict(payload)
    assert r_old == r_new  # the figures are the same week
    assert render_markdown(r_old, BRANDING) == render_markdown(r_new, BRANDING)  # the executive report too
    md = render_markdown(technical(r_old), BRANDING)
    assert "The per-device figures were not kept for this week" in md
    assert "The ticket list was not kept for this week" in md
    text = _flat("\n".join(pages_text(render_pdf(technical(r_old), BRANDING))))
    assert "The per-device list was not kept for this week; the figures above are complete." in text


def test_the_technical_markdown_and_web_page_carry_the_same_lists(demo_out: Path) -> None:
    r = snapshot.from_dict(load_json(demo_out, "ACME"))
    md = (demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}-technical.md").read_text(encoding="utf-8")
    assert md.startswith("# Acme Manufacturing — weekly technical report")
    page = render_html(technical(r), BRANDING)
    t = r.sections["tickets"].data
    assert isinstance(t, Tickets) and t.items
    for item in t.items:
        assert f"| {item.id} | {item.title} |" in md
        assert f"<td>{item.id}</td>" in page

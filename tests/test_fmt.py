"""Issue 14, item 6: one formatting module (reporting/fmt.py) for Markdown, PDF, cards and email:
a value below 100 never shows as 100, a figure has one precision wherever it appears (summary
sentence, tile, table, card), and priorities keep the PSA's order."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pypdf import PdfReader

from cards.customer import channel_card
from cards.review import review_card
from reporting import fmt, snapshot
from reporting.markdown import render_markdown
from reporting.metrics import TicketRecord, priority_key, tickets_section
from reporting.models import Branding, Report, Section, Tickets, Uptime
from reporting.pdf import render_pdf
from reporting.period import week_containing
from reporting.summary import executive_summary
from tests.conftest import load_json
from tests.test_pdf import make_report


def test_a_shortfall_never_rounds_to_100_and_a_sliver_never_to_0() -> None:
    assert fmt.pct(99.996) == fmt.uptime(99.996) == "99.99 %"
    assert fmt.pct(99.9951, 3) == "99.995 %"
    assert fmt.pct(100.0) == "100.00 %" and fmt.rate(99.96) == "99.9 %"
    assert fmt.pct(0.004) == "0.01 %" and fmt.pct(0.0) == "0.00 %"
    assert fmt.target(99.5) == "99.5 %" and fmt.target(90.0) == "90 %" and fmt.target(99.95) == "99.95 %"
    assert fmt.points(-8.04) == "\u22128.0 pts" and fmt.points(0.04) == "\u00b10.0 pts"


def _text(report: Report) -> tuple[str, str, str]:
    pdf = render_pdf(report, Branding("Northwind"))
    pdf_text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    md = render_markdown(report, Branding("Northwind"))
    cards = json.dumps(
        [
            review_card(report, draft_id="d", version=1, state="drafted", commentary="", pdf_url=None),
            channel_card(report, file_url=None, key="k", msp_name="N"),
        ],
        ensure_ascii=False,
    )
    return pdf_text, md, cards


def _with(report: Report, name: str, data: object) -> Report:
    s = report.sections[name]
    sections = dict(report.sections) | {name: replace(s, data=data)}
    return replace(report, sections=sections, summary=executive_summary(sections, report.flags, None))


def test_every_sink_prints_99_996_as_99_99() -> None:
    base = make_report()
    up = base.sections["uptime"].data
    assert isinstance(up, Uptime)
    groups = tuple(replace(g, uptime_pct=99.996) for g in up.by_site)
    report = _with(base, "uptime", replace(up, overall_pct=99.996, target_pct=99.5, by_site=groups))
    pdf, md, cards = _text(report)
    for where, text in (("pdf", pdf), ("markdown", md), ("cards", cards)):
        assert "99.99 %" in text, where
        assert "100.00 %" not in text and "100.0 %" not in text, where
    assert "99.99%" not in pdf  # one style: a space before the sign, as in Markdown and cards


def test_summary_sentence_and_tile_show_the_same_figure() -> None:
    base = make_report()
    t = base.sections["tickets"].data
    assert isinstance(t, Tickets)
    report = _with(base, "tickets", replace(t, sla_attainment_pct=96.63, target_pct=90.0))
    sentence = next(s for s in report.summary if "resolved within their target" in s)
    assert "96.6 %" in sentence and "97 %" not in sentence
    pdf, md, cards = _text(report)
    assert pdf.count("96.6 %") >= 2  # the summary sentence and the tile
    assert "| 96.6 % (target 90 %) |" in md and "SLA 96.6 % (target 90 %)" in cards


def _ticket(i: int, priority: str, rank: float | None = None) -> TicketRecord:
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC) + timedelta(hours=i)
    return TicketRecord(str(i), "t", priority, at, None, None, priority_rank=rank)


def test_priorities_keep_the_psa_order_not_the_alphabet() -> None:
    period = week_containing(datetime(2026, 11, 10).date(), "Europe/London")
    names = ["Low", "Medium", "Critical", "Low", "High", "Medium"]
    t = tickets_section([_ticket(i, n) for i, n in enumerate(names)], period, 90.0)
    assert list(t.by_priority) == ["Critical", "High", "Medium", "Low"]
    # the PSA's own sort field wins over the words (an MSP that ranks "Low" above "Medium")
    ranked = [_ticket(0, "Medium", 3), _ticket(1, "Low", 2), _ticket(2, "High", 1), _ticket(3, "Change")]
    assert list(tickets_section(ranked, period, 90.0).by_priority) == ["High", "Low", "Medium", "Change"]
    assert sorted(["P3", "P1", "Priority 2 - Normal"], key=priority_key) == ["Priority 2 - Normal", "P1", "P3"]
    assert sorted(["P3", "P10", "P1"], key=priority_key) == ["P1", "P3", "P10"]


def test_the_sandbox_reports_list_priorities_as_the_psa_orders_them(demo_out: Path) -> None:
    """Real connectors against the ConnectWise and Halo simulators (vendor-shaped payloads)."""
    order = ["Critical", "High", "Medium", "Low"]
    for code in ("ACME", "GLOBEX", "HOOLI"):
        payload = load_json(demo_out, code)
        tickets = payload["sections"]["tickets"]
        if tickets["status"] != "ok":
            continue
        shown = [p for p in tickets["by_priority"] if p in order]
        assert shown == [p for p in order if p in shown], (code, list(tickets["by_priority"]))
        report = snapshot.from_dict(payload)
        md = (demo_out / code / f"{code}-weekly-{report.period.end_date}.md").read_text()
        rows = [
            line.split("|")[1].strip()
            for line in md.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in order
        ]
        assert rows == [p for p in order if p in rows], code


def test_an_old_snapshot_still_loads(demo_out: Path) -> None:
    payload = load_json(demo_out, "ACME")
    for key in ("partial_as_of",):
        payload.pop(key, None)
    assert snapshot.from_dict(payload).partial_as_of is None
    assert isinstance(snapshot.from_dict(payload).sections["uptime"], Section)

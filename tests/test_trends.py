"""Issue 14, item 7: six-week uptime and Secure Score trends beside the ticket trend, and KPI
tiles that show this week, last week and the target."""

from __future__ import annotations

import io
from pathlib import Path

from pypdf import PdfReader

from reporting import fmt, snapshot
from reporting.markdown import render_markdown
from reporting.models import Branding, Security, Tickets, Uptime
from reporting.pdf import render_pdf
from tests.conftest import PERIOD_END, load_json


def _pages(pdf: bytes) -> list[str]:
    return [" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages]


def test_six_week_uptime_and_secure_score_trends(demo_out: Path) -> None:
    payload = load_json(demo_out, "ACME")
    report = snapshot.from_dict(payload)
    up, sec = report.sections["uptime"].data, report.sections["security"].data
    assert isinstance(up, Uptime) and isinstance(sec, Security)
    earlier = [w for w in report.history if w.period_end < report.period.end_date][-5:]
    assert len(earlier) == 5 and all(w.secure_score_pct is not None for w in earlier)  # the store keeps the score
    md = (demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.md").read_text()
    uptime = "; ".join(
        [f"week of {fmt.week_monday(w.period_end)}: {fmt.uptime(w.uptime_pct)}" for w in earlier]
        + [f"this week: {fmt.uptime(up.overall_pct)}"]
    )
    assert f"Uptime, last 6 weeks: {uptime} (target {fmt.target(up.target_pct)})." in md
    score = "; ".join(
        [f"week of {fmt.week_monday(w.period_end)}: {fmt.rate(w.secure_score_pct)}" for w in earlier]
        + [f"this week: {fmt.rate(sec.secure_score_pct)}"]
    )
    assert f"Secure Score, last 6 weeks: {score}." in md
    pdf = " ".join(_pages((demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.pdf").read_bytes()))
    assert "Uptime, last 6 weeks" in pdf and "Secure Score, last 6 weeks" in pdf and "Ticket trend" in pdf
    # each point labelled as the report prints the figure; weeks by their Monday
    for w in earlier:
        assert fmt.uptime(w.uptime_pct).removesuffix(" %") in pdf
        assert fmt.rate(w.secure_score_pct).removesuffix(" %") in pdf
        assert f"w/c {fmt.week_monday(w.period_end)}" in pdf


def test_kpi_tiles_show_this_week_last_week_and_the_target(demo_out: Path) -> None:
    report = snapshot.from_dict(load_json(demo_out, "ACME"))
    up, t = report.sections["uptime"].data, report.sections["tickets"].data
    assert isinstance(up, Uptime) and isinstance(t, Tickets)
    prev = report.history[-1]
    pdf = " ".join(_pages((demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.pdf").read_bytes()))
    delta = fmt.signed(up.overall_pct - prev.uptime_pct, "pts", 2)  # type: ignore[operator]
    assert (
        f"{fmt.uptime(up.overall_pct)} Overall uptime last week {fmt.uptime(prev.uptime_pct)} ({delta}) "
        f"\u00b7 target {fmt.target(up.target_pct)} below target"
    ) in pdf
    assert (
        f"{fmt.rate(t.sla_attainment_pct)} SLA attainment last week {fmt.rate(prev.sla_attainment_pct)} "
        f"\u00b7 target {fmt.target(t.target_pct)} met"
    ) in pdf
    assert f"{t.opened} Opened last week {prev.tickets_opened} (" in pdf


def test_a_history_stored_before_the_new_figures_still_renders(demo_out: Path) -> None:
    payload = load_json(demo_out, "ACME")
    for w in payload["history"]:  # as written before this change
        for key in (
            "secure_score_pct",
            "sla_attainment_pct",
            "sla_breaches",
            "backup_success_pct",
            "incidents_new",
            "uptime_target_pct",
        ):
            w.pop(key)
    report = snapshot.from_dict(payload)
    assert all(w.secure_score_pct is None for w in report.history)
    md = render_markdown(report, Branding("N"))
    assert "Secure Score, last 6 weeks: week of 5 Oct: –;" in md
    pages = _pages(render_pdf(report, Branding("N")))
    assert any("SLA attainment last week not stored" in p for p in pages)

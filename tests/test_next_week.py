"""The report's "Next week": changes scheduled for the coming week and requests waiting on the
customer, read from the sandbox's PSA over HTTP (demo output), in the Markdown, the PDF and the
snapshot; a part whose source cannot say is left out, never shown empty."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from pypdf import PdfReader

from reporting import fmt, snapshot
from reporting.markdown import render_markdown
from reporting.models import Branding, Changes, Report, Tickets
from reporting.pdf import render_pdf
from tests.conftest import load_json


def acme(demo_out: Path) -> Report:
    return snapshot.from_dict(load_json(demo_out, "ACME"))


def pdf_text(report: Report) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(report, Branding("MSP")))).pages)


def test_acme_lists_its_scheduled_changes_and_the_ticket_waiting_on_it(demo_out: Path) -> None:
    report = acme(demo_out)
    planned, waiting = fmt.next_week(report)
    assert planned is not None and waiting is not None
    # the sandbox schedules open change tickets in the week after the reported one (ConnectWise estimatedStartDate)
    assert planned and all(
        report.period.end <= c.start < report.period.end + (report.period.end - report.period.start) for c in planned
    )
    assert [(w.title, w.status) for w in waiting] == [
        ("New starter laptop: please approve the quote", "Waiting on Client")
    ]
    md = render_markdown(report, Branding("MSP"))
    part = md.split("## Next week", 1)[1].split("\n---", 1)[0]
    assert fmt.PLANNED_LEAD in part and fmt.WAITING_LEAD in part
    for c in planned:
        assert f"| {fmt.when(c.start, report.period.timezone)} | {c.title} | {c.id} |" in part
    assert (
        f"| {waiting[0].id} | New starter laptop: please approve the quote | "
        f"{fmt.when(waiting[0].created, report.period.timezone)} |" in part
    )
    assert fmt.when(waiting[0].created, report.period.timezone).startswith("Fri ")  # raised on the Friday
    assert "Waiting on Client" not in md  # the PSA's status word is the engineer's, not the customer's
    text = pdf_text(report)
    assert "Next week" in text and "New starter laptop: please approve the quote" in text
    assert all(c.title in text for c in planned)
    # the snapshot keeps both parts
    again = snapshot.from_dict(snapshot.to_dict(report))
    assert fmt.next_week(again) == (planned, waiting)


def test_a_part_whose_source_cannot_say_is_left_out(demo_out: Path) -> None:
    report = acme(demo_out)
    tk, ch = report.sections["tickets"], report.sections["changes"]
    assert isinstance(tk.data, Tickets) and isinstance(ch.data, Changes)
    # Halo without waiting_status_ids: waiting None -> no "waiting on you" part; nothing planned -> said so
    no_waiting = replace(
        report,
        sections={
            **report.sections,
            "tickets": replace(tk, data=replace(tk.data, waiting=None)),
            "changes": replace(ch, data=replace(ch.data, planned=())),
        },
    )
    md = render_markdown(no_waiting, Branding("MSP"))
    assert "## Next week" in md and "No changes are scheduled for the coming week." in md
    assert fmt.WAITING_LEAD not in md and "Nothing is waiting on you." not in md
    assert fmt.next_week(snapshot.from_dict(snapshot.to_dict(no_waiting)))[1] is None
    # both sources unavailable: no section at all, in either rendering
    gone = replace(
        report,
        sections={
            **report.sections,
            "tickets": replace(tk, status="unavailable", data=None, error="x"),
            "changes": replace(ch, status="unavailable", data=None, error="x"),
        },
    )
    assert fmt.next_week(gone) == (None, None)
    assert "## Next week" not in render_markdown(gone, Branding("MSP"))
    assert "Next week" not in pdf_text(gone)

"""Hostile or odd text from sources and engineers is shown as text in the Markdown."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from reporting import snapshot
from reporting.markdown import cell, md, render_markdown
from reporting.models import Branding, Commentary, OpenIncident, Security
from tests.conftest import load_json

HOSTILE = [
    "<b>bold</b>",
    "**strong**",
    "[x](javascript:alert(1))",
    "<script>alert(1)</script>",
    "# not a heading",
    "a | b",
]


def test_md_escape() -> None:
    assert md("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert md("**x**") == r"\*\*x\*\*"
    assert md("[x](javascript:alert(1))") == r"\[x\](javascript:alert(1))"
    assert md("# h") == r"\# h"
    assert md("1. item") == r"1\. item"
    assert md("line one\n## two") == "line one ## two"
    assert cell("x" * 500, 10) == "x" * 9 + "\u2026"
    assert md("Zoë Müller – Café & Co") == "Zoë Müller – Café &amp; Co"


def test_hostile_commentary_and_incident_titles_render_inert(demo_out: Path) -> None:
    report = snapshot.from_dict(load_json(demo_out, "INITECH"))
    sec = report.sections["security"]
    assert isinstance(sec.data, Security)
    items = tuple(OpenIncident(str(i), t, "high", datetime(2026, 11, 13, tzinfo=UTC)) for i, t in enumerate(HOSTILE))
    sections = {**report.sections, "security": replace(sec, data=replace(sec.data, open_items=items))}
    text = "\n".join(HOSTILE) + "\n" + "x" * 10_000
    report = replace(report, sections=sections, commentary=Commentary(text, "eng <admin>", datetime.now(UTC)))
    out = render_markdown(report, Branding("MSP"))
    for raw in ("<script>", "<b>", "\n# not a heading"):
        assert raw not in out, raw
    assert not re.search(r"(?<!\\)\]\(javascript:", out)  # only the escaped, inert form
    for shown in ("&lt;script&gt;", r"\*\*strong\*\*", "> \\# not a heading", r"\[x\](javascript:alert(1))"):
        assert shown in out, shown
    assert "x" * 10_000 in out  # commentary is kept whole
    assert "eng &lt;admin&gt;" in out


def test_backup_extras_and_site_fallback_in_markdown(demo_out: Path) -> None:
    from reporting.models import Backups, SiteCheck, Sites

    report = snapshot.from_dict(load_json(demo_out, "WAYNE"))
    bk, st = report.sections["backups"], report.sections["sites"]
    assert isinstance(bk.data, Backups) and isinstance(st.data, Sites)
    when = datetime(2026, 11, 15, 22, tzinfo=UTC)
    items = tuple(
        replace(p, last_offsite=when, verified=i == 0, verified_at=when) for i, p in enumerate(bk.data.protected)
    )
    sections = {
        **report.sections,
        "backups": replace(bk, data=replace(bk.data, protected=items, run_history=False, success_rate_pct=None)),
        "sites": replace(
            st,
            data=Sites(
                checks=(SiteCheck("www.wayne.example", None, None, "healthy"),),
                basis="current_status",
                note="cloudflare: GraphQL <i>denied</i>",
            ),
        ),
    }
    out = render_markdown(replace(report, sections=sections), Branding("MSP"))
    assert "Success rate: not available (the backup system keeps no per-run history)" in out
    assert "| Protected machine | Last good backup | RPO | Status | Last offsite | Restore test |" in out
    assert "| passed Sun 15 Nov 22:00 |" in out and "| FAILED Sun 15 Nov 22:00 |" in out
    assert "**Current status only — not a weekly figure.** The week's availability history could not be read" in out
    assert "cloudflare" not in out and "GraphQL" not in out  # the reason is the engineer's, not the customer's
    assert "| www.wayne.example | healthy |" in out
    again = snapshot.from_dict(snapshot.to_dict(replace(report, sections=sections)))
    assert again.sections["sites"].data == sections["sites"].data
    assert again.sections["backups"].data == sections["backups"].data


def test_missing_secure_score_says_so_in_customer_words(demo_out: Path) -> None:
    report = snapshot.from_dict(load_json(demo_out, "CYBERDYNE"))
    sec = report.sections["security"]
    assert isinstance(sec.data, Security)
    noted = replace(
        sec,
        data=replace(
            sec.data, secure_score_pct=None, secure_score_change=None, score_note="Graph answered 206 <partial>"
        ),
    )
    report = replace(report, sections={**report.sections, "security": noted})
    out = render_markdown(report, Branding("MSP"))
    assert "Secure Score: not available — Microsoft did not provide a complete Secure Score this week" in out
    assert "206" not in out and "Graph" not in out
    assert snapshot.from_dict(snapshot.to_dict(report)).sections["security"].data == noted.data

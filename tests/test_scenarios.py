"""The planted sandbox scenarios (shared/design.md) surface in JSON, Markdown and PDF."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from bot.cli import main
from reporting.models import SECTION_NAMES
from reporting.store import HistoryStore
from tests.conftest import PERIOD_END, WEEK_DAY, load_json

CODES = [
    "ACME",
    "GLOBEX",
    "INITECH",
    "UMBRELLA",
    "HOOLI",
    "STARK",
    "WAYNE",
    "WONKA",
    "CYBERDYNE",
    "TYRELL",
    "SOYLENT",
    "MASSIVE",
]

PLANTED = {
    "ACME": ("sla_drop", "uptime", "Uptime fell 4.0 points"),
    "GLOBEX": ("backup_stale", "backups", "no backup of GLOBEX-FS01 ran after"),
    "INITECH": ("open_incident", "security", "Suspicious sign-in to finance mailbox"),
    "UMBRELLA": ("ticket_trend_worse", "tickets", "Service desk tickets opened rose"),
    "HOOLI": ("data_unavailable", "uptime", "uptime figures for your network and servers"),
    "STARK": ("site_down", "sites", "www.stark.example was unavailable for 2 h"),
    "WONKA": ("backup_failed", "backups", "WONKA-SQL01"),
    "CYBERDYNE": ("secure_score_drop", "security", "Secure Score fell 8.0 points"),
    "MASSIVE": ("sla_below_target", "tickets", "met their resolution target"),
}


def pdf_text(path: Path) -> list[str]:
    return [p.extract_text() for p in PdfReader(path).pages]


def test_twelve_reports_and_rollup(demo_out: Path) -> None:
    for code in CODES:
        for ext in ("md", "pdf", "json"):
            assert (demo_out / code / f"{code}-weekly-{PERIOD_END}.{ext}").stat().st_size > 0
    assert (demo_out / f"rollup-{PERIOD_END}.md").exists()
    leftovers = list(demo_out.rglob("*.tmp"))
    assert leftovers == []


@pytest.mark.parametrize("code", sorted(PLANTED))
def test_planted_flag_surfaces_everywhere(demo_out: Path, code: str) -> None:
    flag_code, section, phrase = PLANTED[code]
    snap = load_json(demo_out, code)
    flags = [f for f in snap["flags"] if f["code"] == flag_code]
    assert flags, f"{code}: {flag_code} missing from {[f['code'] for f in snap['flags']]}"
    assert flags[0]["section"] == section
    assert phrase in flags[0]["message"]
    md = (demo_out / code / f"{code}-weekly-{PERIOD_END}.md").read_text()
    summary = md.split("## Executive summary", 1)[1].split("\n## ", 1)[0]
    assert phrase in summary.replace("\\", "")
    from reporting.models import SECTION_TITLES

    own = md.split(f"## {SECTION_TITLES[section]}", 1)[1].split("\n## ", 1)[0]
    assert phrase in own.replace("\\", "")
    pages = pdf_text(demo_out / code / f"{code}-weekly-{PERIOD_END}.pdf")
    exec_page = " ".join(pages[1].split())  # page 1 is the cover; the summary opens page 2
    assert "Executive summary" in exec_page
    assert phrase[:20] in exec_page
    from reporting.models import SECTION_TITLES

    whole = " ".join(" ".join(p.split()) for p in pages[1:])
    # the section itself, after the summary's flag table (which leaves out our own data problems)
    own = whole.split(SECTION_TITLES[section], 1 if flag_code == "data_unavailable" else 2)[-1]
    assert phrase[:20] in own


def test_quiet_week_and_first_week(demo_out: Path) -> None:
    assert load_json(demo_out, "WAYNE")["flags"] == []
    assert [f["code"] for f in load_json(demo_out, "TYRELL")["flags"]] == ["no_baseline"]


def test_no_unplanned_flags(demo_out: Path) -> None:
    extra_allowed = {"ACME": {"sla_below_target"}}  # a 4-point drop also takes ACME below its 99.5 % target
    for code in CODES:
        got = {c for f in load_json(demo_out, code)["flags"] for c in f.get("codes", [f["code"]])}
        expected = ({PLANTED[code][0]} if code in PLANTED else set()) | extra_allowed.get(code, set())
        if code == "TYRELL":
            expected = {"no_baseline"}
        assert got == expected, code


def test_acme_leeds_outage_is_one_item_saying_both(demo_out: Path) -> None:
    snap = load_json(demo_out, "ACME")
    uptime = [f for f in snap["flags"] if f["section"] == "uptime"]
    assert len(uptime) == 1, uptime
    flag = uptime[0]
    assert flag["code"] == "sla_drop" and flag["severity"] == "high"
    assert flag["codes"] == ["sla_drop", "sla_below_target"]
    assert "Uptime fell 4.0 points" in flag["message"] and "below the 99.5 % target" in flag["message"]
    md = (demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.md").read_text()
    assert "1 item needs attention this week." in md
    assert md.count("below the 99.5 % target") == md.count("Uptime fell 4.0 points")


def test_hooli_uptime_unavailable_rest_intact(demo_out: Path) -> None:
    snap = load_json(demo_out, "HOOLI")
    up = snap["sections"]["uptime"]
    assert up["status"] == "unavailable"
    assert "zabbix" in up["error"] and "502" in up["error"]
    assert "overall_pct" not in up  # never a zero standing in for missing data
    for name in SECTION_NAMES:
        if name != "uptime":
            assert snap["sections"][name]["status"] == "ok", name
    text = " ".join(pdf_text(demo_out / "HOOLI" / f"HOOLI-weekly-{PERIOD_END}.pdf"))
    assert "Not available this week" in text and "502" not in text


def test_json_contract_keys(demo_out: Path) -> None:
    snap = load_json(demo_out, "ACME")
    assert snap["customer"] == {
        "code": "ACME",
        "name": "Acme Manufacturing",
        "timezone": "Europe/London",
        "contact_name": "Priya Shah",
        "contact_email": "priya.shah@northwind.example",
    }
    assert snap["period"]["start"] == "2026-11-09T00:00:00+00:00"
    assert snap["period"]["end"] == "2026-11-16T00:00:00+00:00"
    s = snap["sections"]
    for name in SECTION_NAMES:
        assert {"status", "source", "as_of"} <= set(s[name])
    assert {"overall_pct", "target_pct", "by_site", "by_class"} <= set(s["uptime"])
    assert {"site", "uptime_pct", "downtime_minutes", "devices"} == set(s["uptime"]["by_site"][0])
    assert {"class", "uptime_pct", "downtime_minutes", "devices"} == set(s["uptime"]["by_class"][0])
    assert {"opened", "closed", "backlog", "sla_breaches", "sla_attainment_pct", "by_priority"} <= set(s["tickets"])
    assert {"count", "items"} <= set(s["changes"])
    assert {"success_rate_pct", "protected"} <= set(s["backups"])
    assert {"name", "last_success", "rpo_hours", "status"} <= set(s["backups"]["protected"][0])
    assert {"incidents_new", "incidents_open", "by_severity", "secure_score_pct", "secure_score_change"} <= set(
        s["security"]
    )
    assert {"name", "availability_pct", "downtime_minutes"} <= set(s["sites"]["checks"][0])
    for f in snap["flags"]:
        # "codes" only on an item that stands for several related flags (code first)
        assert set(f) - {"codes"} == {"code", "severity", "section", "message"}
        assert f.get("codes", [f["code"]])[0] == f["code"]


def test_customer_timezone_period(demo_out: Path) -> None:
    snap = load_json(demo_out, "MASSIVE")  # America/Los_Angeles
    assert snap["period"]["start"] == "2026-11-09T00:00:00-08:00"
    assert snap["period"]["end"] == "2026-11-16T00:00:00-08:00"


def test_executive_summary_comes_first(demo_out: Path) -> None:
    md = (demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Executive summary"
    pages = pdf_text(demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.pdf")
    assert "Executive summary" in pages[1]
    assert pages[1].index("Executive summary") < pages[1].index("Uptime") if "Uptime" in pages[1] else True


def test_soylent_change_list_spans_pages(demo_out: Path) -> None:
    snap = load_json(demo_out, "SOYLENT")
    assert snap["sections"]["changes"]["count"] == 40
    pages = pdf_text(demo_out / "SOYLENT" / f"SOYLENT-weekly-{PERIOD_END}.pdf")
    change_pages = [p for p in pages if "Closed" in p and "Change" in p]
    assert len(change_pages) >= 2


def test_rollup_orders_high_first(demo_out: Path) -> None:
    text = (demo_out / f"rollup-{PERIOD_END}.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) == 12
    statuses = [("red" in r, "amber" in r, "green" in r) for r in rows]
    order = [0 if s[0] else 1 if s[1] else 2 for s in statuses]
    assert order == sorted(order)
    assert "Initrode" in text  # a source record that maps to no customer is reported


def test_same_week_twice_same_numbers_one_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["run", "ACME", "GLOBEX", "--out", str(out), "--week", WEEK_DAY]) == 0
    first = {c: load_json(out, c) for c in ("ACME", "GLOBEX")}
    assert main(["run", "ACME", "GLOBEX", "--out", str(out), "--week", WEEK_DAY]) == 0
    second = {c: load_json(out, c) for c in ("ACME", "GLOBEX")}

    def numbers(snap: dict) -> str:
        strip = {k: {kk: vv for kk, vv in v.items() if kk != "as_of"} for k, v in snap["sections"].items()}
        return json.dumps([strip, snap["flags"], snap["summary"]], sort_keys=True)

    for c in first:
        assert numbers(first[c]) == numbers(second[c])

    async def count() -> tuple[int, int]:
        store = await HistoryStore.open(f"sqlite+aiosqlite:///{out / 'reportbot-sandbox.db'}")
        try:
            from datetime import date

            return await store.count("ACME", date(2026, 11, 16)), await store.count("ACME")
        finally:
            await store.close()

    this_week, all_weeks = asyncio.run(count())
    assert this_week == 1
    assert all_weeks == 6  # 5 backfilled history weeks + this week's draft, once each


def test_demo_delivers_every_approved_report_to_the_outbox(demo_out: Path) -> None:
    import email
    from email import policy

    outbox = demo_out / "outbox"
    mails = sorted((outbox / "mail").glob("*-weekly-????-??-??.eml"))  # the executive reports
    assert len(mails) == 12
    # and the one technical report of the sandbox (INITECH's IT manager; tests/bot/test_technical_delivery.py)
    assert [p.name for p in (outbox / "mail").glob("*-technical.eml")] == [f"INITECH-weekly-{PERIOD_END}-technical.eml"]
    for path in mails:
        code = path.name.split("-weekly-")[0]
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg["To"] == f"cto@{code.lower()}.example"
        assert msg["Cc"] == f"am-{code.lower()}@northwind.example"
        assert msg["Reply-To"].endswith("@northwind.example>")  # the customer's named account engineer
        [pdf] = list(msg.iter_attachments())
        assert pdf.get_filename() == f"{code}-weekly-{PERIOD_END}.pdf" and pdf.get_content().startswith(b"%PDF")
    assert len(list((outbox / "channels").glob("*-shared/*-weekly-*.json"))) == 12
    archived = sorted(p.relative_to(outbox / "sharepoint") for p in (outbox / "sharepoint").rglob("*.pdf"))
    assert len(archived) == 13 and str(archived[0]) == f"Documents/Customers/ACME/2026/ACME-weekly-{PERIOD_END}.pdf"
    assert f"Documents/Customers/INITECH/2026/INITECH-weekly-{PERIOD_END}-technical.pdf" in map(str, archived)
    assert [p.name for p in outbox.glob("rollup-*.json")] == [f"rollup-{PERIOD_END}.json"]

"""The MSP's own service-desk summary (owner and manager reports).

The must-show: per-technician figures equal a hand computation from the sandbox PSA records —
recomputed here from the simulators' raw wire rows (ConnectWise ``/service/tickets`` JSON, Halo
``/api/Tickets``, ``/api/Agent`` and ``/api/Feedback`` JSON), not through the product's functions
— for ConnectWise and for HaloPSA, and so does sentiment (ConnectWise survey results, Halo
feedback); a PSA without survey data says so. Plus: a PSA without the
desk fields yields "not available", never a crash; vendor text is escaped; the CLI writes the files.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from bot.cli import main
from connectors.base import ConnectorContext
from connectors.connectwise.connector import ConnectWiseConnector
from connectors.connectwise.simulator import ConnectWiseSimulator
from connectors.halo.connector import HaloConnector
from connectors.halo.simulator import CHANGE_TYPE_ID, UNSET, HaloSimulator
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import MSP_TIMEZONE, SandboxDataset
from reporting.config import Config, SourceConfig
from reporting.internal import manager_markdown, owner_markdown, read_all
from reporting.metrics import TicketRecord
from reporting.models import Period
from reporting.period import week_containing
from reporting.servicedesk import DeskRead, DeskTicket, FeedbackRecord, ServiceDeskReport, build_report
from tests.conftest import ANCHOR, PERIOD_END, WEEK_DAY

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return SandboxDataset(ANCHOR)


def _period() -> Period:
    return week_containing(date.fromisoformat(WEEK_DAY), MSP_TIMEZONE)


def _config(dataset: SandboxDataset, sources: dict[str, dict[str, Any]]) -> Config:
    systems = sorted({s for c in dataset.customers for s in c.stack.values()})
    placeholders: dict[str, dict[str, Any]] = {s: {"type": "sandbox", "system": s} for s in systems}
    return sandbox_config(dataset, "sqlite+aiosqlite:///:memory:", placeholders | sources)


async def _report(config: Config, connectors: dict[str, Any], system: str) -> tuple[ServiceDeskReport, list[DeskRead]]:
    period = _period()
    reads, previous, unavailable = await read_all(config, connectors, period)
    reads = [r for r in reads if r.system == system]
    previous = [r for r in previous if r.system == system]
    return build_report(config.msp.name, period, reads, previous, 90.0, NOW, unavailable), reads


def _cw_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _halo_time(text: str) -> datetime:
    return datetime.fromisoformat(text.rstrip("Z")[:19]).replace(tzinfo=UTC)


def _by_hand(rows: list[tuple[str, datetime, datetime, bool]]) -> dict[str, tuple[int, float, float]]:
    """(technician, created, closed, escalated) of tickets closed in the period -> technician ->
    (resolved, mean resolution hours, escalation rate %)."""
    groups: dict[str, list[tuple[datetime, datetime, bool]]] = defaultdict(list)
    for tech, created, closed, escalated in rows:
        groups[tech].append((created, closed, escalated))
    out = {}
    for tech, ts in groups.items():
        hours = [(b - a).total_seconds() / 3600 for a, b, _ in ts]
        out[tech] = (len(ts), sum(hours) / len(hours), 100.0 * sum(1 for *_, e in ts if e) / len(ts))
    return out


def _product(report: ServiceDeskReport) -> dict[str, tuple[int, float, float]]:
    out = {}
    for t in report.technicians:
        assert t.mean_resolution_hours is not None and t.escalation_rate_pct is not None
        out[t.technician] = (t.resolved, t.mean_resolution_hours, t.escalation_rate_pct)
    return out


def _assert_same(product: dict[str, tuple[int, float, float]], hand: dict[str, tuple[int, float, float]]) -> None:
    assert set(product) == set(hand)
    for tech, (n, hours, rate) in hand.items():
        got = product[tech]
        assert got[0] == n, tech
        assert got[1] == pytest.approx(hours, abs=1e-9), tech
        assert got[2] == pytest.approx(rate, abs=1e-9), tech


async def test_connectwise_technicians_and_survey_sentiment_equal_a_hand_computation(dataset):
    period = _period()
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    async with ConnectWiseSimulator(dataset) as sim:
        config = _config(dataset, {"connectwise": sim.source_config()})
        con = ConnectWiseConnector("connectwise", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            report, reads = await _report(config, {"connectwise": con}, "connectwise")
        finally:
            await con.aclose()
        mapped = {int(c.ids["connectwise"]) for c in config.customers if c.sources.get("tickets") == "connectwise"}
        hand_rows = []
        for row in sim.tickets():  # the raw wire rows the simulator serves
            if row["company"]["id"] not in mapped or row["board"]["name"] != "Service Desk" or not row["closedFlag"]:
                continue
            closed = _cw_time(row["closedDate"])
            if not start <= closed < end:
                continue
            owner = row.get("owner", {}).get("name", "Unassigned")
            hand_rows.append((owner, _cw_time(row["_info"]["dateEntered"]), closed, row["escalationLevel"] > 0))
        automated = sum(
            1
            for row in sim.tickets()
            if row["company"]["id"] in mapped
            and row["board"]["name"] == "Service Desk"
            and row["closedFlag"]
            and start <= _cw_time(row["closedDate"]) < end
            and row.get("closedBy") == "RewstAPI"
        )
        # survey answers about tickets closed in the period, from the raw /service/surveys/1/results
        # rows: positive when totalPoints ≥ half the survey's maximum (Σ of each question's top option)
        maximum = sum(max((o["points"] for o in q["options"]), default=0) for q in sim.survey_questions())
        closed_in = {
            (row["company"]["id"], row["id"])
            for row in sim.tickets()
            if row["closedFlag"] and start <= _cw_time(row["closedDate"]) < end
        }
        answers = [
            r
            for r in sim.survey_results()
            if r["company"]["id"] in mapped and (r["company"]["id"], r["ticketId"]) in closed_in
        ]
        names = {int(c.ids["connectwise"]): c.name for c in config.customers if "connectwise" in c.ids}
    assert len(reads) == 7  # ACME, GLOBEX, INITECH, UMBRELLA, HOOLI, STARK, WAYNE
    hand = _by_hand(hand_rows)
    assert len(hand) >= 5 and sum(n for n, _, _ in hand.values()) == report.summary.closed
    _assert_same(_product(report), hand)
    assert report.automation.automated == automated > 0
    # sentiment: % positive of the survey answers about tickets closed in the period
    assert maximum == 10 and len(answers) >= 5
    positive = [r for r in answers if r["totalPoints"] >= maximum / 2]
    assert 0 < len(positive) < len(answers)
    assert report.sentiment.responses == len(answers)
    assert report.sentiment.positive_pct == pytest.approx(100.0 * len(positive) / len(answers))
    negative = sorted({names[r["company"]["id"]] for r in answers if r["totalPoints"] < maximum / 2})
    assert list(report.sentiment.negative_customers) == negative
    assert len(report.sentiment.covered) == 7 and report.sentiment.not_available == ()
    text = owner_markdown(report)
    assert f"{len(answers)} answer(s) this week" in text
    assert "Customers with negative answers: " + ", ".join(negative) in text
    manager = manager_markdown(report)
    assert "## Team performance" in manager and "## Per customer" in manager
    for tech, (n, hours, rate) in hand.items():
        assert f"| {tech} | ConnectWise PSA | {n} | {hours:.1f} h |".replace(".", "\\.") in manager, tech
        assert f"{rate:.1f} %".replace(".", "\\.") in manager


async def test_halo_technicians_and_feedback_equal_a_hand_computation(dataset):
    period = _period()
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    async with HaloSimulator(dataset) as sim:
        config = _config(dataset, {"halo": sim.source_config()})
        con = HaloConnector("halo", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            report, reads = await _report(config, {"halo": con}, "halo")
        finally:
            await con.aclose()
        names = {a["id"]: a["name"] for a in sim.agents()}
        mapped = {int(c.ids["halo"]) for c in config.customers if c.sources.get("tickets") == "halo"}
        hand_rows = []
        for client_id, rows in sim.tickets().items():
            if client_id not in mapped:
                continue
            for row in rows:
                if row["tickettype_id"] == CHANGE_TYPE_ID or row["dateclosed"] == UNSET:
                    continue
                closed = _halo_time(row["dateclosed"])
                if not start <= closed < end:
                    continue
                tech = names.get(row["agent_id"], "Unassigned")
                hand_rows.append((tech, _halo_time(row["dateoccurred"]), closed, row["team"] != "Service Desk"))
        answers = [f for f in sim.feedback() if f["client_id"] in mapped and start <= _halo_time(f["date"]) < end]
    assert len(reads) == 5  # WONKA, CYBERDYNE, TYRELL, SOYLENT, MASSIVE
    hand = _by_hand(hand_rows)
    assert len(hand) >= 5
    _assert_same(_product(report), hand)
    # feedback: % positive (score 1 or 2) of the answers dated in the period
    assert answers and report.sentiment.responses == len(answers)
    positive = 100.0 * sum(1 for f in answers if f["score"] in (1, 2)) / len(answers)
    assert report.sentiment.positive_pct == pytest.approx(positive)
    names_by_client = {int(c.ids["halo"]): c.name for c in config.customers if "halo" in c.ids}
    negative = sorted({names_by_client[f["client_id"]] for f in answers if f["score"] in (3, 4)})
    assert list(report.sentiment.negative_customers) == negative
    # Halo gives no automation marker: said, not shown as 0
    assert report.automation.automated_pct is None and len(report.automation.not_available) == 5
    assert "Automation impact: not available from this PSA." in owner_markdown(report)


class _BareConnectWise(ConnectWiseSimulator):
    """A ConnectWise whose tickets carry none of the desk fields (an older or trimmed PSA)."""

    desk_fields = False


class _ConnectWiseWithoutSurveys(ConnectWiseSimulator):
    surveys_status = 404


async def test_a_connectwise_without_surveys_says_sentiment_is_not_available_with_the_reason(dataset):
    async with _ConnectWiseWithoutSurveys(dataset) as sim:
        config = _config(dataset, {"connectwise": sim.source_config()})
        con = ConnectWiseConnector("connectwise", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            report, reads = await _report(config, {"connectwise": con}, "connectwise")
        finally:
            await con.aclose()
    assert len(reads) == 7 and all(r.feedback is None for r in reads)
    assert report.sentiment.covered == () and report.sentiment.positive_pct is None
    assert report.sentiment.responses == 0 and len(report.sentiment.not_available) == 7
    assert report.technicians  # the rest of the report is intact
    text = owner_markdown(report)
    assert "Customer sentiment: not available from this PSA" in text
    assert "GET /service/surveys answered HTTP 404" in text and "0 answer" not in text


async def test_a_psa_without_the_desk_fields_says_not_available_and_does_not_crash(dataset):
    async with _BareConnectWise(dataset) as sim:
        config = _config(dataset, {"connectwise": sim.source_config()})
        con = ConnectWiseConnector("connectwise", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            report, reads = await _report(config, {"connectwise": con}, "connectwise")
        finally:
            await con.aclose()
    assert len(reads) == 7 and report.summary.closed > 0
    assert [t.technician for t in report.technicians] == ["Unassigned"]
    row = report.technicians[0]
    assert row.escalation_rate_pct is None and row.escalation_measured == 0
    assert report.escalation.this_pct is None
    assert report.summary.mean_first_response_hours is None
    text = manager_markdown(report)
    assert "| Unassigned | ConnectWise PSA |" in text and "not available from this PSA |" in text
    assert "Mean first response | n/a" in text


class _HaloWithoutFeedback(HaloSimulator):
    serves_feedback = False


async def test_a_halo_without_feedback_says_sentiment_is_not_available(dataset):
    async with _HaloWithoutFeedback(dataset) as sim:
        config = _config(dataset, {"halo": sim.source_config()})
        con = HaloConnector("halo", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            report, reads = await _report(config, {"halo": con}, "halo")
        finally:
            await con.aclose()
    assert len(reads) == 5 and all(r.feedback is None for r in reads)
    assert report.sentiment.positive_pct is None and report.sentiment.responses == 0
    assert report.technicians  # the rest of the report is intact
    text = owner_markdown(report)
    assert "Customer sentiment: not available from this PSA" in text
    assert "it has no feedback resource" in text and "% positive" not in text
    assert all(c.feedback_responses is None for c in report.customers)


def test_vendor_text_is_neutralised_and_escaped():
    period = _period()
    created = period.start.replace(hour=9)
    record = TicketRecord("1", "x", "High", created, created.replace(hour=11), None, met_sla=True)
    evil = "<script>alert(1)</script> **Bob**\u202e|x"
    ticket = DeskTicket("ACME", "Acme | <b>Corp</b>", "halo", record, evil, None, "# Heading", True, None)
    read = DeskRead("ACME", "Acme | <b>Corp</b>", "halo", "HaloPSA", (ticket,), None, "none")
    report = build_report("Northwind", period, [read], [replace(read, tickets=())], 90.0, NOW)
    text = manager_markdown(report)
    assert "<script>" not in text and "<b>" not in text and "\u202e" not in text
    assert "&lt;script&gt;" in text and "\\*\\*Bob\\*\\*" in text and "Acme \\| &lt;b&gt;Corp" in text
    assert "\n# Heading" not in text


def test_cli_writes_the_owner_and_manager_reports(tmp_path: Path):
    assert main(["run", "--internal", "--week", WEEK_DAY, "--out", str(tmp_path)]) == 0
    folder = tmp_path / "internal"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{a}-{PERIOD_END}.{e}" for a in ("manager", "owner") for e in ("md", "pdf")]
    owner = (folder / f"owner-{PERIOD_END}.md").read_text()
    manager = (folder / f"manager-{PERIOD_END}.md").read_text()
    assert "## Team performance" not in owner and "## Team performance" in manager
    for heading in ("Service desk summary", "Customer sentiment", "Automation impact", "Recurring patterns"):
        assert f"## {heading}" in owner and f"## {heading}" in manager
    assert "## How to read this report" in owner
    # the PDFs say what the Markdown says (text extracted; never compared on bytes)
    reader = PdfReader(folder / f"manager-{PERIOD_END}.pdf")
    pdf = " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)
    assert len(reader.pages) >= 2 and "MSP-internal: not for customers" in pdf
    for heading in ("Team performance", "Technician × customer", "Escalation trend", "Per customer"):
        assert heading in pdf
    assert "Alice Smith" in pdf and "not available from this PSA" in pdf
    # nothing customer-facing was written
    assert not any(p.is_dir() and p.name != "internal" for p in tmp_path.iterdir() if p.name not in ("outbox",))


def test_a_week_without_tickets_shows_no_figure_as_zero_percent():
    period = _period()
    read = DeskRead("ACME", "Acme", "connectwise", "ConnectWise PSA", (), None, "no surveys")
    report = build_report("Northwind", period, [read], [read], 90.0, NOW)
    s = report.summary
    assert (s.opened, s.closed, s.backlog) == (0, 0, 0)
    assert s.resolution_rate_pct is None and s.sla_attainment_pct is None and s.mean_resolution_hours is None
    assert report.escalation.this_pct is None and report.automation.automated_pct is None
    text = manager_markdown(report)
    assert "| Resolution rate | n/a | n/a |" in text and "0\\.0 %" not in text
    assert report.recommendations == ("No figure crossed a threshold this period: no action suggested.",)


def test_skipped_survey_answers_are_said_beside_the_sentiment():
    period = _period()
    at = period.start.replace(hour=10)
    answer = FeedbackRecord("ACME", "Acme", "1", at, False)
    note = "2 answer(s) to survey 'Comments only' skipped: its questions give no points to know its maximum by"
    read = DeskRead("ACME", "Acme", "connectwise", "ConnectWise PSA", (), (answer,), note)
    report = build_report("Northwind", period, [read], [read], 90.0, NOW)
    assert report.sentiment.responses == 1 and report.sentiment.notes == (("Acme", note),)
    text = owner_markdown(report)
    assert "Not counted:" in text and "Comments only" in text and "Customers with negative answers: Acme" in text

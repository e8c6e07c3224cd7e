"""help, unknown-customer, status and roll-up cards."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from cards import help_card, rollup_card, status_card, unknown_customer_card
from cards.rollup import STATUS_COLOR
from reporting.models import Report
from reporting.rollup import RollupRow, rollup_rows
from tests.cards.golden import assert_golden
from tests.cards.test_review import of_type, texts

UPDATED = datetime(2026, 11, 16, 6, 5, tzinfo=ZoneInfo("UTC"))


def test_help_card() -> None:
    c = help_card()
    assert_golden("help", c)
    titles = [f["title"] for fs in of_type(c, "FactSet") for f in fs["facts"]]
    assert titles == [r"run \<CODE\>", "run all", "status", "help"]


def test_help_card_note() -> None:
    assert "In this channel only ACME" in texts(help_card(note="In this channel only ACME can be run."))


def test_unknown_customer_lists_close_matches() -> None:
    c = unknown_customer_card("ACMEE", ["ACME", "ACME", "CYBERDYNE"])
    assert_golden("unknown", c)
    shown = texts(c)
    assert "No customer has the code “ACMEE”." in shown
    assert "Did you mean: ACME, CYBERDYNE" in shown


def test_unknown_customer_without_matches_names_nobody() -> None:
    shown = texts(unknown_customer_card("GLOBEX", []))
    assert "Did you mean" not in shown


def test_unknown_customer_escapes_what_was_typed() -> None:
    shown = texts(unknown_customer_card("**[x](javascript:alert(1))**", []))
    assert r"\*\*\[x\](javascript:alert(1))\*\*" in shown


def test_status_card() -> None:
    rows = [("ACME", "saved", 2, UPDATED), ("WAYNE", "delivered", 0, UPDATED), ("TYRELL", "drafted", 1, None)]
    c = status_card(rows, period_end=date(2026, 11, 16))
    assert_golden("status", c)
    facts = {f["title"]: f["value"] for fs in of_type(c, "FactSet") for f in fs["facts"]}
    assert facts["ACME"] == "📝 saved · 2 flags · updated Mon 16 Nov 2026, 06:05 UTC"
    assert facts["TYRELL"] == "📝 drafted · 1 flag · updated never"
    assert list(facts) == ["ACME", "WAYNE", "TYRELL"]


def test_status_card_empty() -> None:
    assert "No drafts yet" in texts(status_card([]))


def test_rollup_card_lists_every_sandbox_customer(sandbox_reports: dict[str, Report]) -> None:
    rows = rollup_rows(sandbox_reports.values())
    c = rollup_card(rows, date(2026, 11, 16), "Northwind Managed Services")
    shown = texts(c)
    assert "12 customers · 5 red · 4 amber · 3 green" in shown
    for r in rows:
        assert f"**{r.code}** · {r.name}" in shown
    labels = [n for n in of_type(c, "TextBlock") if n["text"].startswith("\u25cf ")]
    assert [(n["text"].split()[1].lower(), n["color"]) for n in labels] == [
        (r.status, STATUS_COLOR[r.status]) for r in rows
    ]


def test_rollup_card_golden() -> None:
    rows = [
        RollupRow("ACME", "Acme Corp", "red", "Uptime fell 4.0 points.", "Review the uptime drop.", ("sla_drop",)),
        RollupRow(
            "HOOLI", "Hooli", "amber", "Uptime figures missing.", "Restore access to zabbix.", ("data_unavailable",)
        ),
        RollupRow("WAYNE", "Wayne Enterprises", "green", "No risks this week.", "None.", ()),
    ]
    assert_golden("rollup", rollup_card(rows, date(2026, 11, 16), "Northwind Managed Services"))


def test_rollup_card_escapes_customer_strings() -> None:
    rows = [RollupRow("X", "<b>Evil</b> **Co**", "red", "[x](javascript:alert(1))", "_do_ it", ())]
    shown = texts(rollup_card(rows, date(2026, 11, 16), "MSP *bold*"))
    assert r"\<b\>Evil\</b\> \*\*Co\*\*" in shown
    assert r"\[x\](javascript:alert(1))" in shown
    assert r"\_do\_ it" in shown
    assert r"MSP \*bold\*" in shown

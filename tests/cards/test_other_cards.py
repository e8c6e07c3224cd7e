"""help, unknown-customer, status and roll-up cards."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from cards import help_card, rollup_card, status_card, unknown_customer_card
from cards.rollup import STATUS_COLOR
from reporting.models import Report
from reporting.rollup import DraftStatus, RollupRow, rollup_markdown, rollup_rows
from tests.cards.golden import assert_golden
from tests.cards.test_review import of_type, texts

UPDATED = datetime(2026, 11, 16, 6, 5, tzinfo=ZoneInfo("UTC"))


def test_help_card() -> None:
    c = help_card()
    assert_golden("help", c)
    titles = [f["title"] for fs in of_type(c, "FactSet") for f in fs["facts"]]
    assert titles == [r"run \<CODE\>", "run all", "status", r"settings \[CODE\]", r"test \<CODE\>", "help"]


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
        RollupRow(
            "ACME",
            "Acme Corp",
            "red",
            "Uptime fell 4.0 points.",
            "Review the uptime drop.",
            ("sla_drop",),
            ("SLA drop (uptime)",),
            "Priya Shah",
            "Approved by Dana Lee, Mon 16 Nov 2026, 09:12 GMT; delivering",
            "https://teams.microsoft.com/l/message/19%3Areview%40thread.tacv2/1?parentMessageId=1",
            "https://bot.example/drafts/d1/v1.pdf",
        ),
        RollupRow(
            "HOOLI",
            "Hooli",
            "amber",
            "Uptime figures missing.",
            "Restore access to zabbix.",
            ("data_unavailable",),
            ("Data missing (uptime)",),
            "owner@msp.example",
            "Awaiting review",
        ),
        RollupRow("WAYNE", "Wayne Enterprises", "green", "No risks this week.", "None.", (), (), "", "No draft"),
    ]
    assert_golden("rollup", rollup_card(rows, date(2026, 11, 16), "Northwind Managed Services"))


def _statuses(reports: dict[str, Report]) -> dict[str, DraftStatus | None]:
    at = datetime(2026, 11, 30, 9, 12, tzinfo=ZoneInfo("UTC"))
    out: dict[str, DraftStatus | None] = {code: DraftStatus("drafted") for code in reports}
    out["ACME"] = DraftStatus(
        "delivered",
        "Dana Lee",
        at,
        "",
        "https://teams.microsoft.com/l/message/19%3Ar/1",
        "https://bot.example/drafts/a/1.pdf",
    )
    out["GLOBEX"] = DraftStatus("failed", "Dana Lee", at, "the customer's mailbox refused the message")
    out["HOOLI"] = DraftStatus("skipped", "Sam Ortiz", at, "customer offboarding")
    out["WAYNE"] = None
    return out


def test_rollup_rows_say_state_owner_and_flag_names(sandbox_reports: dict[str, Report]) -> None:
    owners = {"HOOLI": "owner@hooli-msp.example"}
    rows = {
        r.code: r for r in rollup_rows(sandbox_reports.values(), _statuses(sandbox_reports), owners, "Europe/London")
    }
    acme = rows["ACME"]
    assert acme.review == "Delivered (approved by Dana Lee, Mon 30 Nov 2026, 09:12 GMT)"
    assert rows["GLOBEX"].review.startswith("Delivery failed: the customer's mailbox refused the message (approved by")
    assert rows["HOOLI"].review == "Skipped by Sam Ortiz, Mon 30 Nov 2026, 09:12 GMT: customer offboarding"
    assert rows["WAYNE"].review == "No draft"
    assert rows["INITECH"].review == "Awaiting review"
    # the owner: the account engineer named in the report, unless the caller knows better
    assert acme.owner == sandbox_reports["ACME"].customer.contact_name != ""
    assert rows["HOOLI"].owner == "owner@hooli-msp.example"
    # people read flag names; one merged flag is one name that says all of it
    assert acme.flags[0] == "sla_drop" and acme.flag_names[0] == "SLA drop, below SLA target (uptime)"
    for r in rows.values():
        assert not any("_" in name for name in r.flag_names), r.flag_names
    # the internal action is the engineer's to-do, not the customer-worded advice
    hooli = sandbox_reports["HOOLI"]
    assert rows["HOOLI"].action == hooli.engineer_actions[0] != hooli.recommendations[0]


def test_rollup_markdown_and_card_carry_state_and_links(sandbox_reports: dict[str, Report]) -> None:
    rows = rollup_rows(sandbox_reports.values(), _statuses(sandbox_reports), {}, "Europe/London")
    text = rollup_markdown(rows, "Northwind", date(2026, 11, 30))
    acme = next(line for line in text.splitlines() if "**ACME**" in line)
    assert "[review card](https://teams.microsoft.com/l/message/19%3Ar/1)" in acme
    assert "[PDF](https://bot.example/drafts/a/1.pdf)" in acme
    assert "Delivered (approved by Dana Lee" in acme
    assert "| Status | Customer | Owner | Review | Top risk | Action required | Flags |" in text
    for code in ("sla_drop", "sla_below_target", "backup_stale", "data_unavailable", "open_incident"):
        assert code not in text
    card = rollup_card(rows, date(2026, 11, 30), "Northwind")
    shown = texts(card)
    assert "**Review:** Delivered (approved by Dana Lee, Mon 30 Nov 2026, 09:12 GMT) · " in shown
    assert "[Review card](https://teams.microsoft.com/l/message/19%3Ar/1)" in shown
    assert "[PDF](https://bot.example/drafts/a/1.pdf)" in shown
    assert "sla_drop" not in shown


def test_rollup_refuses_links_that_are_not_ours() -> None:
    rows = [
        RollupRow("X", "X", "red", "r", "a", (), (), "", "Awaiting review", "javascript:alert(1)", "file:///etc/passwd")
    ]
    assert "javascript" not in rollup_markdown(rows, "M", date(2026, 11, 30))
    assert "file:" not in rollup_markdown(rows, "M", date(2026, 11, 30))
    shown = texts(rollup_card(rows, date(2026, 11, 30), "M"))
    assert "javascript" not in shown and "file:" not in shown


def test_rollup_card_escapes_customer_strings() -> None:
    rows = [RollupRow("X", "<b>Evil</b> **Co**", "red", "[x](javascript:alert(1))", "_do_ it", ())]
    shown = texts(rollup_card(rows, date(2026, 11, 16), "MSP *bold*"))
    assert r"\<b\>Evil\</b\> \*\*Co\*\*" in shown
    assert r"\[x\](javascript:alert(1))" in shown
    assert r"\_do\_ it" in shown
    assert r"MSP \*bold\*" in shown


def test_settings_card() -> None:
    from cards.elements import MAX_CARD_BYTES, card_bytes
    from cards.settings import CustomerView, SettingsView, settings_card, settings_refused_card
    from tests.cards.conftest import SANDBOX_CODES

    acme = CustomerView(
        "ACME",
        "Acme <b>Corp</b> **x**",
        enabled=True,
        executive=["ceo@acme.example"],
        technical=[],
        period="fortnight",
        file_recipients=["cto@acme.example", "am-acme@northwind.example"],
    )
    view = SettingsView(
        version=2,
        msp_name="Contoso \u202eManaged",
        msp_name_file="Northwind Managed IT",
        customers=[acme],
        owners=["owner@northwind.example"],
        saved_by="Robin Admin on Mon 16 Nov 2026 09:00",
        problems=["customers.ACME.recipients.executive: 'bad@@x' is not a plain email address"],
    )
    card = settings_card(view)
    assert_golden("settings", card)
    shown = texts(card)
    assert r"Acme \<b\>Corp\</b\> \*\*x\*\*" in shown  # escaped where Markdown renders
    [period] = [i for i in of_type(card, "Input.ChoiceSet") if i["id"].endswith(".period")]
    assert period["value"] == "fortnight"
    assert [c["value"] for c in period["choices"]] == ["file", "week", "fortnight", "30d", "month"]
    assert period["choices"][0]["title"] == "As in the configuration file: week (7 days)"
    assert "Version 2, saved by Robin Admin" in shown
    name = next(i for i in of_type(card, "Input.Text") if i["id"] == "msp_name")
    assert name["value"] == "Contoso Managed" and name["placeholder"] == "Empty: Northwind Managed IT"
    [save] = [a for a in card["actions"] if a["verb"] == "settingsSave"]
    assert save["data"] == {"settings_version": 2}
    # the twelve sandbox customers fit on one card, well under the budget
    twelve = SettingsView(
        1,
        "",
        "Northwind",
        [
            CustomerView(c, c.title(), True, [f"a{i}@{c.lower()}.example" for i in range(5)], [], "week", [])
            for c in SANDBOX_CODES
        ],
    )
    assert card_bytes(settings_card(twelve)) < MAX_CARD_BYTES / 2
    assert "Only the configured admins" in texts(settings_refused_card("Only the configured admins may."))

"""The review card: what engineers see and what the bot receives back, per draft state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cards import Decision, DeliveryStepView, review_card, verbs
from cards.review import EDITABLE_STATES, STATES
from reporting.models import Report, Section, SiteCheck, Sites
from tests.cards.factories import AS_OF, make_report
from tests.cards.golden import assert_golden

PDF = "https://reportbot.example/drafts/d-42.pdf?exp=1763280000&sig=abc"
APPROVED = Decision("Ann Engineer", datetime(2026, 11, 16, 9, 12, tzinfo=ZoneInfo("UTC")))
STEPS = (
    DeliveryStepView("Email", "done", "sent to 2 recipients", None),
    DeliveryStepView("Customer channel", "done", "posted, tab updated", "https://teams.example/l/message/1"),
    DeliveryStepView("SharePoint archive", "failed", "HTTP 503 after 3 attempts", None),
)


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def of_type(card: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [n for n in walk(card) if n.get("type") == kind]


def texts(card: dict[str, Any]) -> str:
    return "\n".join(n["text"] for n in of_type(card, "TextBlock"))


def card(state: str = "drafted", report: Report | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "draft_id": "d-42",
        "version": 3,
        "state": state,
        "commentary": "Core switch replaced on Tuesday.",
        "pdf_url": PDF,
        "decision": APPROVED if state not in EDITABLE_STATES else None,
    }
    args.update(kw)
    return review_card(report or make_report(), **args)


def test_golden_drafted() -> None:
    assert_golden("review_drafted", card("drafted", approvers_note="Approvers: Ann Engineer, Bob Lead"))


def test_golden_delivered_with_steps() -> None:
    assert_golden("review_delivered", card("delivered", steps=STEPS))


def test_card_is_version_1_5_without_refresh() -> None:
    c = card()
    assert c["type"] == "AdaptiveCard" and c["version"] == "1.5"
    assert "refresh" not in c  # see the module docstring: message edits update everyone


def test_open_draft_has_commentary_input_and_the_four_verbs() -> None:
    c = card("drafted")
    (commentary,) = [n for n in of_type(c, "Input.Text") if n["id"] == verbs.INPUT_COMMENTARY]
    assert commentary["isMultiline"] is True
    assert commentary["maxLength"] == 10_000
    assert commentary["value"] == "Core switch replaced on Tuesday."

    executes = of_type(c, "Action.Execute")
    assert [a["verb"] for a in executes] == [
        verbs.VERB_SAVE,
        verbs.VERB_APPROVE,
        verbs.VERB_REGENERATE,
        verbs.VERB_SKIP,
    ]
    for a in executes:
        assert a["data"] == {"draft_id": "d-42", "version": 3, "customer": "ACME"}
        assert a["fallback"]["type"] == "Action.Submit"
        assert a["fallback"]["data"] == {**a["data"], "verb": a["verb"]}

    (opener,) = of_type(c, "Action.OpenUrl")
    assert opener["url"] == PDF


def test_skip_asks_for_a_reason_in_its_own_show_card() -> None:
    (show,) = of_type(card("drafted"), "Action.ShowCard")
    (reason,) = of_type(show["card"], "Input.Text")
    assert reason["id"] == verbs.INPUT_SKIP_REASON and reason["isRequired"] is True
    assert [a["verb"] for a in of_type(show["card"], "Action.Execute")] == [verbs.VERB_SKIP]


@pytest.mark.parametrize("state", sorted(set(STATES) - EDITABLE_STATES))
def test_decided_card_is_frozen(state: str) -> None:
    decision = (
        Decision("Ann Engineer", APPROVED.at, "Customer asked to pause reports") if state == "skipped" else APPROVED
    )
    c = card(state, decision=decision)
    assert not [n for n in walk(c) if str(n.get("type", "")).startswith("Input.")]
    if state == "failed":  # the one action left: deliver the steps not done, once the cause is fixed
        [retry] = of_type(c, "Action.Execute")
        assert retry["verb"] == verbs.VERB_RETRY and retry["title"] == "Retry delivery"
        assert retry["data"] == {"draft_id": "d-42", "version": 3, "customer": "ACME"}
        assert retry["fallback"]["data"]["verb"] == verbs.VERB_RETRY
    else:
        assert not of_type(c, "Action.Execute") and not of_type(c, "Action.Submit")
    assert not of_type(c, "Action.ShowCard")
    shown = texts(c)
    assert "Ann Engineer" in shown and "Mon 16 Nov 2026, 09:12 GMT" in shown  # who and when, customer's tz
    assert "Core switch replaced on Tuesday." in shown  # commentary now shown as text
    if state == "skipped":
        assert "Customer asked to pause reports" in shown
    assert [a["title"] for a in of_type(c, "Action.OpenUrl")] == ["Open PDF"]


def test_approved_without_a_recorded_decision_says_so() -> None:
    assert "not recorded" in texts(card("approved", decision=None))


def test_flags_carry_severity_colours() -> None:
    colours = {
        n["text"].split(" ")[0]: n.get("color") for n in of_type(card(), "TextBlock") if n["text"].startswith("**")
    }
    assert colours["**HIGH**"] == "attention"
    assert colours["**MEDIUM**"] == "warning"
    assert colours["**LOW**"] == "accent"


def test_flags_sorted_high_first() -> None:
    shown = texts(card())
    assert shown.index("**HIGH**") < shown.index("**MEDIUM**") < shown.index("**LOW**")


def test_no_flags_says_so() -> None:
    assert "No flags this week." in texts(card(report=make_report(flags=())))


def facts(c: dict[str, Any]) -> dict[str, str]:
    return {f["title"]: f["value"] for fs in of_type(c, "FactSet") for f in fs["facts"]}


def test_key_figures() -> None:
    f = facts(card())
    assert f["Uptime and SLA"] == "99.41 % overall (target 99.9 %)"
    assert f["Service desk tickets"] == "28 opened · 25 closed · backlog 6 · SLA 92.0 % (target 90 %) · 2 breaches"
    assert f["Changes executed"] == "2 executed"
    assert f["Backup posture"] == "85.7 % of runs succeeded; not ok: ACME-FS01 (stale, last good 60 h ago)"
    assert f["Security"] == "2 new · 1 open incidents · secure score 65.2 % (−8.0 pts)"
    assert f["Public-site availability"].startswith("lowest availability 98.81 % (portal.acme.example) of 2 sites")


def test_sites_current_status_only_counts_healthy_checks() -> None:
    # Cloudflare without the week's history: checks carry a state, no availability (was a TypeError)
    report = make_report()
    checks = (SiteCheck("www.acme.example", None, None, "healthy"), SiteCheck("portal.acme.example", None, None, "x"))
    sites = Section("sites", "ok", "cloudflare", AS_OF, Sites(checks, basis="current_status", note="no history"))
    f = facts(card(report=replace(report, sections={**report.sections, "sites": sites})))
    assert f["Public-site availability"] == (
        "1 of 2 checks healthy now (current status only; the week's history could not be read)"
    )


def test_unavailable_section_is_shown_as_unavailable_with_reason() -> None:
    f = facts(card(report=make_report(uptime_unavailable=True)))
    assert f["Uptime and SLA"] == "unavailable — zabbix: API answered HTTP 502 on 3 attempts"


def test_unavailable_sandbox_section(sandbox_reports: dict[str, Report]) -> None:
    f = facts(card(report=sandbox_reports["HOOLI"]))
    assert f["Uptime and SLA"].startswith("unavailable — zabbix:") and "502" in f["Uptime and SLA"]
    assert f["Service desk tickets"].startswith("28 opened")  # the rest of the report is intact


def test_delivery_steps_fact_set_with_links() -> None:
    f = facts(card("delivered", steps=STEPS))
    assert f["Email"] == "✅ done · sent to 2 recipients"
    assert f["Customer channel"] == "✅ done · posted, tab updated · [open](https://teams.example/l/message/1)"
    assert f["SharePoint archive"] == "❌ failed · HTTP 503 after 3 attempts"


def test_message_and_approvers_note_are_shown() -> None:
    shown = texts(
        card(
            message="This card was out of date; here is the current draft.",
            approvers_note="Anyone here may approve (sandbox).",
        )
    )
    assert "This card was out of date; here is the current draft." in shown
    assert "Anyone here may approve \\(sandbox\\)." not in shown and "Anyone here may approve (sandbox)." in shown


def test_many_changes_are_listed_up_to_ten(sandbox_reports: dict[str, Report]) -> None:
    c = card(report=sandbox_reports["SOYLENT"])
    (listing,) = [
        n for n in of_type(c, "TextBlock") if n["text"].startswith("- ") and "\r- " in n["text"] and "·" in n["text"]
    ]
    assert listing["text"].count("\r- ") == 9
    assert "… and 30 more in the PDF" in texts(c)


def test_hostile_report_strings_are_escaped() -> None:
    r = make_report(
        name="**Evil** <script>alert(1)</script>",
        code="EVIL",
        change_titles=("[free](javascript:alert(1))",),
        incident_titles=("<img src=x onerror=alert(1)>",),
        summary=("# Heading _it_",),
    )
    shown = texts(card(report=r))
    assert r"\*\*Evil\*\* \<script\>alert(1)\</script\>" in shown
    assert r"\[free\](javascript:alert(1))" in shown
    assert r"\<img src=x onerror=alert(1)\>" in shown
    assert r"\# Heading \_it\_" in shown
    assert "<script>" not in json.dumps(card(report=r)).replace(r"\\<script\\>", "")


def test_commentary_is_verbatim_in_the_input_and_escaped_as_text() -> None:
    hostile = "<b>x</b> **y** [z](javascript:alert(1))\n- item"
    (field,) = of_type(card(commentary=hostile), "Input.Text")[:1]
    assert field["value"] == hostile
    shown = texts(card("approved", commentary=hostile))
    assert r"\<b\>x\</b\> \*\*y\*\* \[z\](javascript:alert(1))" + "\n\n" + r"\- item" in shown


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"state": "pending"}, "unknown draft state"),
        ({"commentary": "x" * 10_001}, "limit is 10000"),
        ({"pdf_url": "javascript:alert(1)"}, "http"),
    ],
)
def test_refuses_bad_input(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        card(**kw)

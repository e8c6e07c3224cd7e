"""Every card we build, checked by Microsoft's `adaptivecards` parser (Adaptive Card 1.5) and
by the official 1.5 JSON schema, for all twelve sandbox customers in every draft state."""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cards import (
    MAX_CARD_BYTES,
    Decision,
    card_bytes,
    help_card,
    review_card,
    rollup_card,
    status_card,
    unknown_customer_card,
)
from cards.internal import internal_summary_card
from cards.review import EDITABLE_STATES, STATES
from cards.settings import CustomerView, SettingsView, settings_card, settings_refused_card
from reporting.internal import Headline
from reporting.models import Report
from reporting.rollup import RollupRow, rollup_rows
from tests.cards.conftest import AC_SCHEMA, SANDBOX_CODES
from tests.cards.nodetools import run_node, unavailable
from tests.cards.test_review import APPROVED, PDF, STEPS

VALIDATE = Path(__file__).with_name("validate_cards.js")
HOSTILE = "<b>bold</b> **x** [x](javascript:alert(1)) <script>alert(1)</script>\n- item\n# head\n"
HOSTILE_10K = (HOSTILE * 200)[:10_000]


def all_cards(reports: dict[str, Report]) -> dict[str, dict[str, Any]]:
    cards: dict[str, dict[str, Any]] = {}
    for code, report in reports.items():
        for state in STATES:
            decision = Decision("Ann Engineer", APPROVED.at, "paused") if state not in EDITABLE_STATES else None
            cards[f"review/{code}/{state}"] = review_card(
                report,
                draft_id=f"d-{code}",
                version=2,
                state=state,
                commentary=HOSTILE,
                pdf_url=PDF,
                approvers_note="Approvers: Ann Engineer",
                steps=STEPS if state in ("delivering", "delivered", "failed") else (),
                message="Commentary saved." if state == "saved" else None,
                decision=decision,
            )
    for state in ("drafted", "approved"):
        cards[f"hostile-10k/{state}"] = review_card(
            reports["ACME"],
            draft_id="d-ACME",
            version=2,
            state=state,
            commentary=HOSTILE_10K,
            pdf_url=PDF,
            decision=APPROVED if state == "approved" else None,
        )
    rows = rollup_rows(reports.values())
    cards["rollup/sandbox"] = rollup_card(rows, date(2026, 11, 16), "Northwind Managed Services")
    many = [
        RollupRow(f"C{i:03}", f"Customer {i}", ("red", "amber", "green")[i % 3], "x" * 200, "y" * 200, ())
        for i in range(600)
    ]
    cards["rollup/condensed"] = rollup_card(many, date(2026, 11, 16), "Northwind")
    cards["help"] = help_card(note="In this channel only ACME can be run.")
    cards["unknown"] = unknown_customer_card("ACMEE", ["ACME"])
    cards["status"] = status_card([(code, "drafted", 1, None) for code in SANDBOX_CODES], period_end=date(2026, 11, 16))
    cards["status/empty"] = status_card([])
    cards |= settings_cards()
    cards["internal-summary"] = internal_summary_card(
        Headline(
            "Northwind",
            date(2026, 11, 16),
            "Week of Mon 9 Nov – Sun 15 Nov 2026 (Europe/London)",
            12,
            1,
            361,
            346,
            53,
            85.3,
            None,
            90.0,
            2.1,
            18.8,
            (HOSTILE, "Mean first response is 2.1 h", "x" * 400, "four"),
        ),  # fmt: skip
        [("Owner report (PDF)", "https://bot.example/internal/t/owner.pdf"), ("Manager report (PDF)", None)],
        ["Owner report emailed: sent to owner@northwind.example", f"Manager report not emailed: {HOSTILE}"],
    )
    return cards


def settings_cards() -> dict[str, dict[str, Any]]:
    """The settings form for the twelve sandbox customers (hostile values where people type),
    a refused save with its problems, and the refusal a non-admin gets."""
    customers = [
        CustomerView(
            code,
            f"{code.title()} {HOSTILE[:30]}",
            enabled=i % 2 == 0,
            executive=[f"ceo@{code.lower()}.example", "it@example.com"],
            technical=[],
            period=("week", "fortnight", "30d", "month")[i % 4],
            file_recipients=[f"cto@{code.lower()}.example"],
        )
        for i, code in enumerate(SANDBOX_CODES)
    ]
    view = SettingsView(
        version=3,
        msp_name=HOSTILE[:60],
        msp_name_file="Northwind Managed Services",
        customers=customers,
        owners=["owner@northwind.example"],
        saved_by="Sam Admin on Mon 16 Nov 2026 09:00",
        message="Saved as version 3 by Sam Admin.",
    )
    refused = SettingsView(
        version=3,
        msp_name="",
        msp_name_file="Northwind",
        customers=customers[:1],
        problems=["customers.ACME.recipients.executive: 'x@@y' is not a plain email address"],
        admins_note="Sandbox mode: no admins are configured, so anyone here may change these settings.",
    )
    return {
        "settings/all": settings_card(view),
        "settings/refused-save": settings_card(refused),
        "settings/not-admin": settings_refused_card("Only the configured admins may change the report settings."),
    }


# Deliberately broken cards: the validators must object to each, or a clean pass means nothing.
BROKEN: dict[str, dict[str, Any]] = {
    "broken/element": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "Bogus"}]},
    "broken/colour": {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": "x", "color": "purple"}],
    },
    "broken/duplicate-id": {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "Input.Text", "id": "a"}, {"type": "Input.Text", "id": "a"}],
    },
}


@pytest.fixture(scope="module")
def checked(sandbox_reports: dict[str, Report], node_modules: Path) -> dict[str, Any]:
    cards = all_cards(sandbox_reports) | BROKEN
    schema = str(AC_SCHEMA) if AC_SCHEMA.exists() else None
    return {
        "cards": cards,
        "schema": schema,
        "results": run_node(str(VALIDATE), {"cards": cards, "schema": schema}, node_modules),
    }


def test_every_card_parses_cleanly_as_adaptive_card_1_5(checked: dict[str, Any]) -> None:
    results = {name: r for name, r in checked["results"].items() if not name.startswith("broken/")}
    assert len(results) == 12 * len(STATES) + 8 + 3 + 1  # + the three settings cards, the internal summary
    problems = {name: r["parser"] for name, r in results.items() if r["parser"]}
    assert problems == {}


def test_validators_object_to_broken_cards(checked: dict[str, Any]) -> None:
    for name in BROKEN:
        assert checked["results"][name]["parser"], name
        if checked["schema"] is not None and name != "broken/duplicate-id":  # ids are not a schema matter
            assert checked["results"][name]["schema"], name


def test_every_card_matches_the_official_1_5_schema(checked: dict[str, Any]) -> None:
    if checked["schema"] is None:
        unavailable(f"the official Adaptive Card 1.5 schema is not at {AC_SCHEMA} (set REPORTBOT_AC_SCHEMA)")
    problems = {
        name: r["schema"][:5]
        for name, r in checked["results"].items()
        if r["schema"] and not name.startswith("broken/")
    }
    assert problems == {}


def test_no_data_string_renders_as_markup(checked: dict[str, Any]) -> None:
    """Rendered through CommonMark, card text produces only paragraphs, line breaks, our own bold
    labels and bullet lists, and links only in the delivery steps — never a script, image,
    heading, quote, code span or a link elsewhere."""
    allowed = re.compile(r"</?(p|strong|ul|li)>|<br>|<a href=\"https://teams\.example/l/message/1\">|</a>")
    for name, result in checked["results"].items():
        if name.startswith("broken/"):
            continue
        for t in result["texts"]:
            leftover = allowed.sub("", t["html"])
            assert "<" not in leftover.replace("&lt;", ""), f"{name} {t['path']}: {t['html'][:300]!r}"


def test_hostile_commentary_is_shown_as_text(checked: dict[str, Any]) -> None:
    for state in ("approved", "skipped"):
        texts = checked["results"][f"review/ACME/{state}"]["texts"]
        (shown,) = [t for t in texts if "script" in t["text"]]
        assert shown["html"] == (
            "<p>&lt;b&gt;bold&lt;/b&gt; **x** [x](javascript:alert(1)) &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
            "<p>- item</p>\n<p># head</p>\n"
        )


def test_hostile_commentary_is_verbatim_in_the_input(checked: dict[str, Any]) -> None:
    card = checked["cards"]["review/ACME/drafted"]
    (field,) = [n for n in card["body"] if n.get("id") == "commentary"]
    assert field["value"] == HOSTILE


def _visible(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


def test_hostile_10k_commentary(checked: dict[str, Any]) -> None:
    """10 000 characters of hostile commentary: verbatim in the input while the draft is open,
    shown as literal text once approved (each line its own paragraph), card under 80 KB."""
    drafted, approved = checked["cards"]["hostile-10k/drafted"], checked["cards"]["hostile-10k/approved"]
    (field,) = [n for n in drafted["body"] if n.get("id") == "commentary"]
    assert field["value"] == HOSTILE_10K
    assert card_bytes(drafted) < MAX_CARD_BYTES and card_bytes(approved) < MAX_CARD_BYTES
    (shown,) = [t for t in checked["results"]["hostile-10k/approved"]["texts"] if "script" in t["text"]]
    assert not re.search(r"<(?!/?p>)", shown["html"]), "only paragraphs"
    paragraphs = [_visible(p) for p in re.findall(r"<p>(.*?)</p>", shown["html"], flags=re.S)]
    assert paragraphs == [line.strip() for line in HOSTILE_10K.splitlines() if line.strip()]

"""Every card stays under the Teams size budget (80 KB), whatever the data."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cards import MAX_CARD_BYTES, Decision, DeliveryStepView, card_bytes, review_card, rollup_card, status_card
from cards.review import EDITABLE_STATES, MAX_COMMENTARY, STATES
from reporting.models import Flag, ProtectedItem, Report
from reporting.rollup import RollupRow
from tests.cards.factories import END, make_report

AT = datetime(2026, 11, 16, 9, 0, tzinfo=ZoneInfo("UTC"))
LONG = "Ä*_[<&" * 200  # 1 200 characters, every one escaped, non-ASCII


def worst_report() -> Report:
    """Everything a source could make long: 40 changes and 50 incidents with 1 200-character
    titles, 100 flags, 500 failing backup items, a 1 200-character customer name."""
    return make_report(
        name=LONG,
        change_titles=tuple(f"{i} {LONG}" for i in range(40)),
        incident_titles=tuple(f"{i} {LONG}" for i in range(50)),
        flags=tuple(Flag("backup_failed", "high", "backups", LONG) for _ in range(100)),
        summary=tuple(LONG for _ in range(30)),
        protected=tuple(ProtectedItem(f"{i}{LONG}", END - timedelta(hours=90), 90.0, "failed") for i in range(500)),
    )


COMMENTARIES = {
    "markdown": "*<" * (MAX_COMMENTARY // 2),  # every character escaped: 3 bytes of JSON each
    "non-ascii": "Ä" * MAX_COMMENTARY,  # \u00c4 in JSON: 6 bytes each
    "emoji": "\U0001f600" * (MAX_COMMENTARY // 2),  # two UTF-16 units, 12 bytes of JSON each
    "lines": "-\n" * (MAX_COMMENTARY // 2),
}


@pytest.mark.parametrize("kind", COMMENTARIES)
@pytest.mark.parametrize("state", STATES)
def test_review_card_worst_case_under_budget(state: str, kind: str) -> None:
    commentary = COMMENTARIES[kind]
    card = review_card(
        worst_report(),
        draft_id="d" * 64,
        version=99,
        state=state,
        commentary=commentary,
        pdf_url="https://reportbot.example/" + "p" * 1500,
        approvers_note=LONG,
        steps=tuple(DeliveryStepView(LONG, "failed", LONG, "https://x.example/" + "u" * 1500) for _ in range(50)),
        message=LONG,
        decision=Decision(LONG, AT, LONG) if state not in EDITABLE_STATES else None,
    )
    assert card_bytes(card) < MAX_CARD_BYTES
    # Condensed, never truncated where it matters: the commentary and the verbs are all there.
    if state in EDITABLE_STATES:
        assert [n for n in card["body"] if n.get("id") == "commentary"][0]["value"] == commentary
        assert len([a for a in card["actions"] if a["type"] == "Action.Execute"]) == 3


def test_commentary_limit_counts_utf16_units_like_the_client() -> None:
    with pytest.raises(ValueError, match="limit"):
        review_card(
            make_report(),
            draft_id="d",
            version=1,
            state="drafted",
            commentary="\U0001f600" * (MAX_COMMENTARY // 2 + 1),
            pdf_url=None,
        )


def test_ordinary_review_card_is_not_condensed() -> None:
    card = review_card(make_report(), draft_id="d", version=1, state="drafted", commentary="ok", pdf_url=None)
    assert "Patch Tuesday rollout" in str(card) and "Advice to the customer" in str(card)


def test_review_cards_for_sandbox_under_budget(sandbox_reports: dict[str, Report]) -> None:
    sizes = {}
    for code, report in sandbox_reports.items():
        for state in ("drafted", "delivered"):
            card = review_card(
                report,
                draft_id=f"d-{code}",
                version=1,
                state=state,
                commentary="x" * MAX_COMMENTARY,
                pdf_url="https://reportbot.example/d.pdf",
                decision=Decision("Ann Engineer", AT) if state == "delivered" else None,
            )
            sizes[(code, state)] = card_bytes(card)
    assert max(sizes.values()) < MAX_CARD_BYTES
    # Well under Graph's 28 KB too, in case a card is ever re-posted through Graph.
    assert max(sizes.values()) < 28 * 1024


def test_rollup_card_with_many_customers_under_budget() -> None:
    for n in (12, 300, 3000):
        rows = [
            RollupRow(f"CUST{i:04}", LONG[:80], ("red", "amber", "green")[i % 3], LONG, LONG, ("a", "b"))
            for i in range(n)
        ]
        card = rollup_card(rows, date(2026, 11, 16), "MSP")
        assert card_bytes(card) < MAX_CARD_BYTES, n
        shown = str(card)
        assert f"{n} customers" in shown


def test_rollup_card_condenses_green_before_dropping_anyone() -> None:
    rows = [
        RollupRow(f"C{i:03}", "Name", "red" if i < 20 else "green", "risk " * 40, "act " * 40, ()) for i in range(400)
    ]
    card = rollup_card(rows, date(2026, 11, 16), "MSP")
    shown = str(card)
    assert all(f"C{i:03}" in shown for i in range(400))
    assert "nothing to do" in shown


def test_status_card_with_many_rows_under_budget() -> None:
    rows = [(f"CUSTOMER{i:05}", "delivered", 3, AT) for i in range(2000)]
    card = status_card(rows)
    assert card_bytes(card) < MAX_CARD_BYTES
    assert "and 1600 more customers" in str(card)

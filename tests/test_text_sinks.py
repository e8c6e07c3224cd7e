"""One sanitiser for every sink: C0/C1 controls and bidi overrides from vendor data, config or
commentary are removed (visible text kept) in the Markdown, the cards, the PDF, email headers and
bodies, and at the store boundary — so a NUL in commentary cannot fail a save on PostgreSQL and
an unterminated RIGHT-TO-LEFT OVERRIDE in a site name cannot reverse our sentence after it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text as sql

from bot.outbox import subject
from bot.state import ReviewState
from cards.customer import channel_card
from cards.review import review_card
from cards.text import plain
from reporting.markdown import render_markdown
from reporting.models import Commentary, CustomerRef, Flag, UptimeGroup
from reporting.store import HistoryStore
from reporting.text import COMMENTARY_LIMIT, CommentaryTooLong, clean_commentary, isolate, neutral, utf16_length
from tests.test_pdf import BRANDING, END, make_report
from tests.test_store import _pg_store

RLO = "\u202e"
OURS = "the rest of this sentence is ours."
BAD = "\x00\x1b\x07\x7f\x9b\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ud800"


def test_neutral_removes_controls_and_overrides_and_keeps_visible_text() -> None:
    assert neutral("a\x00b\x1b[31mc\x07") == "ab[31mc"
    assert neutral(f"{RLO}Leeds plant") == "Leeds plant"
    assert neutral("x" + BAD + "y") == "xy"
    assert neutral("one\r\ntwo\u2028three\tfour") == "one two three four"
    assert neutral("one\r\ntwo\rthree", multiline=True) == "one\ntwo\nthree"
    # right-to-left letters, marks, joiners, emoji and NBSP are text, not controls
    for keep in ("תל אביב", "القاهرة\u200f", "👍🏽 👨\u200d💻", "a\u00a0b", "東京"):
        assert neutral(keep) == keep
    assert isolate(f"{RLO}x") == "\u2068x\u2069"


def test_commentary_limit_is_one_number_with_a_clear_message() -> None:
    ok = "é" * COMMENTARY_LIMIT
    assert clean_commentary(ok) == ok
    with pytest.raises(CommentaryTooLong, match=r"10,001 characters; the limit is 10,000\. Shorten it by 1 "):
        clean_commentary(ok + "x")
    assert utf16_length("🚀") == 2  # counted as the card's maxLength counts it
    assert clean_commentary("line -\nnext\x00") == "line -\nnext"


def _hostile_report() -> object:
    base = make_report()
    up = base.sections["uptime"].data
    up = replace(up, by_site=(UptimeGroup(f"{RLO}Leeds plant", 87.9, 4848.0, 4),))
    return replace(
        base,
        customer=CustomerRef("ACME", "Acme\x00 Corp\x1b", "Europe/Amsterdam"),
        sections={**base.sections, "uptime": replace(base.sections["uptime"], data=up)},
        flags=(Flag("sla_drop", "high", "uptime", f"Uptime at {RLO}Leeds plant fell; {OURS}"),),
        summary=(f"The {RLO}Leeds plant site was down; this is our sentence.",),
        commentary=Commentary("nul\x00 here\nrlo " + RLO + "text", "eng\x00", END),
    )


def _no_bad(s: str) -> None:
    assert not any(c in s for c in BAD), [hex(ord(c)) for c in s if c in BAD]


def test_markdown_has_no_controls_or_overrides() -> None:
    md = render_markdown(_hostile_report(), BRANDING)  # type: ignore[arg-type]
    _no_bad(md)
    assert "Leeds plant fell; the rest of this sentence is ours." in md
    assert "Acme Corp" in md and "nul here" in md


def test_cards_have_no_controls_or_overrides() -> None:
    report = _hostile_report()
    review = review_card(
        report,
        draft_id="d",
        version=1,
        state="drafted",  # type: ignore[arg-type]
        commentary="nul\x00 here " + RLO + "x",
        pdf_url=None,
    )
    customer = channel_card(report, file_url=None, key="k", msp_name="MSP\x00" + RLO)  # type: ignore[arg-type]
    for card in (review, customer):
        text = json.dumps(card, ensure_ascii=False)
        # everything shown; an Input.Text value is the engineer's stored (already cleaned) text
        shown = json.dumps([v for k, v in _texts(card) if k != "value"], ensure_ascii=False)
        _no_bad(shown)
        assert "Leeds plant" in text
    assert "Leeds plant fell; the rest of this sentence is ours." in json.dumps(review, ensure_ascii=False)
    assert plain(f"{RLO}Leeds plant: ours") == "Leeds plant: ours"


def _texts(x: object, key: str = "") -> list[tuple[str, str]]:
    if isinstance(x, dict):
        return [kv for k, v in x.items() for kv in _texts(v, k)]
    if isinstance(x, list):
        return [kv for v in x for kv in _texts(v, key)]
    return [(key, x)] if isinstance(x, str) else []


def test_email_subject_cannot_carry_controls_or_header_breaks() -> None:
    parcel = SimpleNamespace(
        customer=SimpleNamespace(name="Acme\r\nBcc: evil@example.com\x00" + RLO),
        period_end=date(2026, 11, 30),
        report=_hostile_report(),
    )
    s = subject(parcel)  # type: ignore[arg-type]
    _no_bad(s)
    assert "\r" not in s and "\n" not in s and s.startswith("Acme Bcc: evil@example.com: weekly report")


@pytest.fixture(params=["sqlite", "postgres"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReviewState]:
    if request.param == "sqlite":
        store = await HistoryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
        yield await ReviewState.open(store.engine)
        await store.close()
        return
    store, schema = await _pg_store()
    try:
        yield await ReviewState.open(store.engine)
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(sql(f'DROP SCHEMA "{schema}" CASCADE'))
        await store.close()


async def test_a_nul_in_commentary_is_stored_without_error(state: ReviewState) -> None:
    draft = await state.upsert_drafted("ACME", date(2026, 11, 30))
    changed = await state.change(
        draft.id,
        draft.version,
        state="saved",
        commentary="before\x00after\n" + RLO + "x -",
        commentary_by="Eng\x00ineer",
    )
    assert changed is not None
    assert changed.commentary == "beforeafter\nx -" and changed.commentary_by == "Engineer"
    skipped = await state.change(changed.id, changed.version, state="skipped", reason="no\x00 report")
    assert skipped is not None and skipped.reason == "no report"

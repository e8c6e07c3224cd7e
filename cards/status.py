"""The ``status`` card: this week's drafts and their state, one line per customer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, NamedTuple

from cards.elements import adaptive_card, check_size, fact_set, text_block
from cards.text import join, md, plain
from reporting import fmt

_STATE_ICON = {
    "drafted": "\U0001f4dd",  # memo
    "saved": "\U0001f4dd",
    "approved": "\u2714\ufe0f",
    "delivering": "\u23f3",
    "delivered": "\u2705",
    "skipped": "\u23ed\ufe0f",
    "failed": "\u274c",
}
_MAX_ROWS = 400  # a FactSet row is ~150 bytes: 400 rows stay far below the size budget


class StatusRow(NamedTuple):
    code: str
    state: str
    flags: int
    updated: datetime | None


def status_card(
    rows: Iterable[tuple[str, str, int, datetime | None]],
    *,
    period_end: date | None = None,
    tz: str = "UTC",
) -> dict[str, Any]:
    """``rows``: (customer code, draft state, number of flags, last update) — plain tuples or
    :class:`StatusRow`. Rows are shown in the order given."""
    items = [StatusRow(*r) for r in rows]
    title = "This week's drafts" if period_end is None else f"Drafts: {fmt.week_ending(period_end)}"
    body = [text_block(plain(title), size="Medium", weight="Bolder")]
    if not items:
        body.append(text_block(md("No drafts yet. Send **run CODE** or **run all** to generate them.")))
    else:
        facts = []
        for r in items[:_MAX_ROWS]:
            updated = fmt.stamp(r.updated, tz) if r.updated is not None else "never"
            icon = _STATE_ICON.get(r.state, "\u2022")
            value = join(
                plain(f"{icon} {r.state}", limit=40),
                plain(f"{r.flags} flag{'s' if r.flags != 1 else ''}"),
                plain(f"updated {updated}"),
            )
            facts.append((plain(r.code, limit=40), value))
        body.append(fact_set(facts))
        if len(items) > _MAX_ROWS:
            body.append(text_block(plain(f"\u2026 and {len(items) - _MAX_ROWS} more customers"), isSubtle=True))
    return check_size(adaptive_card(body, fallback_text=plain(title)))

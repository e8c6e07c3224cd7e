"""The roll-up card for #weekly-reports: every customer with its status colour, top risk and
the action required, red first (the order of :func:`reporting.rollup.rollup_rows`).

It has to stay under the size budget with hundreds of customers, so it degrades in steps:
full rows; then shorter text and no flag codes; then green customers folded into one line;
then only as many rows as fit, with a pointer to the Markdown roll-up file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from cards.elements import (
    CardTooLarge,
    Element,
    adaptive_card,
    card_bytes,
    check_size,
    column,
    column_set,
    container,
    text_block,
)
from cards.text import join, link, md, plain
from reporting import fmt
from reporting.rollup import RollupRow

STATUS_COLOR = {"red": "attention", "amber": "warning", "green": "good"}
STATUS_LABEL = {"red": "\u25cf RED", "amber": "\u25cf AMBER", "green": "\u25cf GREEN"}
_BUDGET = 76 * 1024  # leave room below MAX_CARD_BYTES for the footer


def _row(r: RollupRow, *, text_limit: int, with_flags: bool) -> Element:
    code = join(md("**"), plain(r.code, limit=40), md("**"), sep="")
    title = [code, plain(r.name, limit=80)]
    if r.owner:
        title.append(plain(r.owner, limit=60))
    links = [
        link(label, url)
        for label, url in (("Review card", r.card_url), ("PDF", r.pdf_url))
        if url.startswith(("http://", "https://"))
    ]
    details: list[Element] = [text_block(join(*title), spacing="None")]
    if r.review:  # first: the longer risk and action text cannot push it past a cut-off
        details.append(
            text_block(join(md("**Review:**"), join(plain(r.review, limit=200), *links), sep=" "), spacing="None")
        )
    details += [
        text_block(join(md("Top risk:"), plain(r.top_risk, limit=text_limit), sep=" "), spacing="None"),
        text_block(join(md("Action:"), plain(r.action, limit=text_limit), sep=" "), spacing="None", isSubtle=True),
    ]
    if with_flags and r.flag_names:
        details.append(
            text_block(plain(", ".join(r.flag_names), limit=300), size="Small", isSubtle=True, spacing="None")
        )
    label = text_block(
        md(STATUS_LABEL.get(r.status, plain(r.status, limit=10))),
        color=STATUS_COLOR.get(r.status, "default"),
        weight="Bolder",
    )
    return container([column_set([column([label], width="80px"), column(details)])], separator=True)


def _header(rows: Sequence[RollupRow], period_end: date, msp_name: str) -> list[Element]:
    red = sum(1 for r in rows if r.status == "red")
    amber = sum(1 for r in rows if r.status == "amber")
    green = len(rows) - red - amber
    return [
        text_block(plain(f"Weekly roll-up \u2014 {fmt.week_ending(period_end)}"), size="Large", weight="Bolder"),
        text_block(
            join(
                plain(msp_name, limit=80),
                plain(f"{len(rows)} customers"),
                plain(f"{red} red"),
                plain(f"{amber} amber"),
                plain(f"{green} green"),
            ),
            isSubtle=True,
            spacing="None",
        ),
    ]


def _green_line(rows: Sequence[RollupRow]) -> Element:
    codes = ", ".join(r.code for r in rows)
    return text_block(
        join(md(f"**{STATUS_LABEL['green']}**, nothing to do:"), plain(codes, limit=20_000), sep=" "),
        color="good",
        separator=True,
    )


def rollup_card(rows: Sequence[RollupRow], period_end: date, msp_name: str) -> dict[str, Any]:
    """Build the roll-up card from :func:`reporting.rollup.rollup_rows` output."""
    rows = list(rows)
    header = _header(rows, period_end, msp_name)
    fallback = plain(f"Weekly roll-up, {fmt.week_ending(period_end)}: {len(rows)} customers.")

    def build(body_rows: list[Element], footer: list[Element]) -> dict[str, Any]:
        return adaptive_card(header + body_rows + footer, fallback_text=fallback)

    if not rows:
        return check_size(build([text_block(md("No customers were reported this week."))], []))

    # 1 and 2: every customer in full, then with shorter text and no flag codes.
    for text_limit, with_flags in ((300, True), (140, False)):
        card = build([_row(r, text_limit=text_limit, with_flags=with_flags) for r in rows], [])
        if card_bytes(card) <= _BUDGET:
            return card

    # 3: red and amber in full, green folded into one line.
    risky = [r for r in rows if r.status != "green"]
    green = [r for r in rows if r.status == "green"]
    footer = [_green_line(green)] if green else []
    card = build([_row(r, text_limit=140, with_flags=False) for r in risky], footer)
    if card_bytes(card) <= _BUDGET:
        return card

    # 4: as many risky rows as fit; the rest are only counted.
    shown: list[Element] = []
    size = card_bytes(build([], footer)) + 400  # the "and N more" line
    for r in risky:
        element = _row(r, text_limit=140, with_flags=False)
        extra = card_bytes(element) + 2
        if size + extra > _BUDGET:
            break
        shown.append(element)
        size += extra
    rest = len(risky) - len(shown)
    more: list[Element] = []
    if rest:
        more = [
            text_block(
                plain(
                    f"\u2026 and {rest} more red/amber customers: see rollup-{period_end.isoformat()}.md "
                    "for the full list."
                ),
                color="warning",
                separator=True,
            )
        ]
    card = build(shown + more, footer)
    if card_bytes(card) > _BUDGET:  # only if the green line alone is enormous
        raise CardTooLarge(f"roll-up card is {card_bytes(card)} bytes even condensed")
    return card

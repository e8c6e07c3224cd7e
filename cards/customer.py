"""The card the bot posts in a customer's shared channel when the week's report is delivered.

What the customer sees: their name, the week, the executive-summary sentences (the same ones
the cover email lists) and a button that opens the PDF in the channel's files. No internal
review state, flag codes or engineers' names.

The card carries the delivery's idempotency key as the header's element ``id``. Teams keeps a
bot card's JSON as sent, and Microsoft Graph returns it in the channel message's
``attachments[].content``; that is how a post whose outcome was lost in a crash is found again
(``bot.announce``). An element id is not shown to anyone.
"""

from __future__ import annotations

from typing import Any

from cards.elements import Element, adaptive_card, check_size, container, open_url, text_block
from cards.review import period_text
from cards.text import join, md, plain, safe_url
from reporting import fmt
from reporting.models import Report

SUMMARY_LINES = 4
OPEN_TITLE = "Open the report (PDF)"


def channel_card(report: Report, *, file_url: str | None, key: str, msp_name: str) -> dict[str, Any]:
    c = report.customer
    w = fmt.words(report.period)
    header = container(
        [
            text_block(plain(f"{w.adjective.capitalize()} report: {c.name}", limit=120), size="Large", weight="Bolder"),
            text_block(
                join(plain(period_text(report)), plain(f"from {msp_name}", limit=80)), isSubtle=True, spacing="None"
            ),
        ],
        id=key,
    )
    body: list[Element] = [header]
    lines = [s for s in report.summary if s.strip()][:SUMMARY_LINES]
    if lines:
        body.append(text_block(md(f"**{w.this[:1].upper()}{w.this[1:]}**"), spacing="Medium"))
        body.extend(text_block(join(md("\u2022"), plain(s, limit=300), sep=" "), spacing="Small") for s in lines)
    if report.commentary and report.commentary.text.strip():
        body.append(text_block(md("**Your engineer's note**"), spacing="Medium"))
        body.append(text_block(plain(report.commentary.text, limit=1500, multiline=True), spacing="Small"))
    url = safe_url(file_url)
    actions = [open_url(OPEN_TITLE, url)] if url else []
    if not url:
        body.append(
            text_block(
                md("The PDF is in this channel's files and on the **Weekly report** tab."),
                isSubtle=True,
                spacing="Medium",
            )
        )
    fallback = f"{w.adjective.capitalize()} report for {c.name}, {period_text(report)}"
    return check_size(adaptive_card(body, actions, fallback_text=plain(fallback)))

"""The #weekly-reports post of the MSP's own service-desk summaries: the week's headline figures,
the top recommendations, the two PDFs (owner and manager report) and who they were emailed to.

MSP-internal, like the roll-up it follows: it goes to the roll-up channel only, never a customer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cards.elements import adaptive_card, check_size, fact_set, open_url, text_block
from cards.text import join, md, plain, safe_url
from reporting.internal import Headline

MAX_RECOMMENDATIONS = 3


def internal_summary_card(
    h: Headline, documents: Sequence[tuple[str, str | None]], sent: Sequence[str]
) -> dict[str, Any]:
    """``documents``: (label, signed link or None) of each PDF; ``sent``: one line per email
    ("Owner report emailed to 2 addresses", "Manager report: nobody configured")."""
    body = [
        text_block(plain(f"Service desk summary \u2014 {h.period_label}", limit=200), size="Large", weight="Bolder"),
        text_block(
            join(
                plain(h.msp_name, limit=80),
                plain(f"{h.customers} customer{'s' if h.customers != 1 else ''} read"),
                *([plain(f"{h.unavailable} not readable (said in the reports)")] if h.unavailable else []),
                plain("MSP-internal"),
            ),
            isSubtle=True,
            spacing="None",
        ),
        fact_set([(plain(label), plain(value)) for label, value in h.figures()]),
    ]
    if h.recommendations:
        body.append(text_block(md("**Recommendations**")))
        body += [
            text_block(join(md("-"), plain(r, limit=300), sep=" "), spacing="None")
            for r in h.recommendations[:MAX_RECOMMENDATIONS]
        ]
        if len(h.recommendations) > MAX_RECOMMENDATIONS:
            more = len(h.recommendations) - MAX_RECOMMENDATIONS
            body.append(text_block(plain(f"and {more} more in the reports"), isSubtle=True, spacing="None"))
    body += [text_block(plain(line, limit=300), size="Small", isSubtle=True, spacing="None") for line in sent]
    actions = [open_url(label, target) for label, url in documents if (target := safe_url(url))]
    fallback = plain(f"Service desk summary, {h.period_label}")
    return check_size(adaptive_card(body, actions, fallback_text=fallback))

"""The card for a customer code nobody has."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cards.elements import adaptive_card, check_size, text_block
from cards.text import join, md, plain

_MAX_MATCHES = 5


def unknown_customer_card(code: str, close_matches: Sequence[str]) -> dict[str, Any]:
    """Say that ``code`` (as typed, escaped) matches no customer, and list ``close_matches``.

    In a customer-shared channel the bot must pass no matches: a suggestion there would reveal
    that another customer exists.
    """
    body = [
        text_block(md("Unknown customer"), size="Medium", weight="Bolder", color="warning"),
        text_block(join(md("No customer has the code \u201c"), plain(code.strip(), limit=40), md("\u201d."), sep="")),
    ]
    matches = list(dict.fromkeys(close_matches))[:_MAX_MATCHES]
    if matches:
        body.append(text_block(join(md("Did you mean:"), plain(", ".join(matches), limit=200), sep=" ")))
    body.append(text_block(md("Send **help** for the commands."), isSubtle=True))
    return check_size(adaptive_card(body, fallback_text=md("Unknown customer code.")))

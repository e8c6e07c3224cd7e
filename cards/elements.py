"""Small constructors for Adaptive Card 1.5 elements (plain dicts).

Every text-bearing helper takes :class:`cards.text.Markdown`, so data has to go through
:func:`cards.text.plain` (or :func:`cards.text.link`) on its way in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cards.text import Markdown

CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

# Teams accepts bot messages up to ~100 KB (UTF-16, the whole activity); keep every card
# under 80 KB as the research notes advise (shared/research/teams-graph-contract.md §9).
MAX_CARD_BYTES = 80 * 1024

Element = dict[str, Any]


class CardTooLarge(ValueError):
    """A card would exceed :data:`MAX_CARD_BYTES`; Teams would answer 413 MessageSizeTooBig."""


def card_bytes(card: Mapping[str, Any]) -> int:
    """The size we budget against: the card serialised as compact-ish JSON, UTF-8."""
    return len(json.dumps(card).encode())


def check_size(card: Element) -> Element:
    size = card_bytes(card)
    if size > MAX_CARD_BYTES:
        raise CardTooLarge(f"card is {size} bytes, limit {MAX_CARD_BYTES}")
    return card


def adaptive_card(
    body: Sequence[Element], actions: Sequence[Element] = (), *, fallback_text: Markdown | None = None
) -> Element:
    card: Element = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "body": list(body),
    }
    if actions:
        card["actions"] = list(actions)
    if fallback_text:
        card["fallbackText"] = fallback_text
    return card


def text_block(content: Markdown, **props: Any) -> Element:
    """A wrapping TextBlock. ``props``: size, weight, color, isSubtle, spacing, separator…"""
    return {"type": "TextBlock", "text": content, "wrap": True, **props}


def heading(content: Markdown, **props: Any) -> Element:
    return text_block(content, weight="Bolder", size="Medium", spacing="Medium", **props)


def fact_set(facts: Iterable[tuple[Markdown, Markdown]], **props: Any) -> Element:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in facts], **props}


def container(items: Sequence[Element], **props: Any) -> Element:
    return {"type": "Container", "items": list(items), **props}


def column(items: Sequence[Element], width: str = "stretch", **props: Any) -> Element:
    return {"type": "Column", "width": width, "items": list(items), **props}


def column_set(columns: Sequence[Element], **props: Any) -> Element:
    return {"type": "ColumnSet", "columns": list(columns), **props}


def open_url(title: str, url: str) -> Element:
    """Action titles are plain text (not Markdown), so ``title`` is used as is."""
    return {"type": "Action.OpenUrl", "title": title, "url": url}


def execute(title: str, verb: str, data: Mapping[str, Any], **props: Any) -> Element:
    """``Action.Execute`` (Universal Actions, AC 1.4+) with an ``Action.Submit`` fallback for
    clients that predate it: the fallback posts a message activity whose ``value`` is ``data``
    plus ``{"verb": verb}`` and the input values, so the bot routes both the same way."""
    return {
        "type": "Action.Execute",
        "title": title,
        "verb": verb,
        "data": dict(data),
        "fallback": {"type": "Action.Submit", "title": title, "data": {**data, "verb": verb}},
        **props,
    }

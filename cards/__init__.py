"""Adaptive Card builders: pure functions from reporting data to card dicts (version 1.5).

No botbuilder, no I/O. Every string that did not come from this package is escaped with
:func:`cards.text.plain` before it reaches a Markdown-rendering property.
"""

from cards.elements import MAX_CARD_BYTES, CardTooLarge, card_bytes
from cards.help import help_card
from cards.review import Decision, DeliveryStepView, review_card
from cards.rollup import rollup_card
from cards.status import StatusRow, status_card
from cards.unknown import unknown_customer_card

__all__ = [
    "MAX_CARD_BYTES",
    "CardTooLarge",
    "Decision",
    "DeliveryStepView",
    "StatusRow",
    "card_bytes",
    "help_card",
    "review_card",
    "rollup_card",
    "status_card",
    "unknown_customer_card",
]

"""The states a customer-week's draft goes through — one list for the store (``bot.state``), the
review workflow (``bot.review``, ``bot.delivery``) and the cards (``cards.review``, ``cards.status``).

    drafted -> saved -> approved -> delivering -> delivered
                      \\-> skipped              \\-> failed -> (Retry delivery) approved

Values are the strings kept in the store's ``drafts.state`` column; a :class:`DraftState`
compares equal to its string, so rows written before this enum existed read the same.
"""

from __future__ import annotations

from enum import StrEnum


class DraftState(StrEnum):
    DRAFTED = "drafted"  # made by the batch or `run`, nobody has touched it
    SAVED = "saved"  # commentary saved by an engineer, not yet approved
    APPROVED = "approved"  # approved; delivery is about to start
    DELIVERING = "delivering"  # delivery steps under way
    DELIVERED = "delivered"  # every step done
    SKIPPED = "skipped"  # nothing is sent this week (with a reason)
    FAILED = "failed"  # a delivery step failed for good; Retry delivery goes back to approved


#: an engineer may still edit, regenerate, approve or skip
EDITABLE: tuple[DraftState, ...] = (DraftState.DRAFTED, DraftState.SAVED)
#: approved at some point: the decision stands (a second approve does nothing)
DECIDED: tuple[DraftState, ...] = (DraftState.APPROVED, DraftState.DELIVERING, DraftState.DELIVERED, DraftState.FAILED)

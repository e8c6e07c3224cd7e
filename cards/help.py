"""The ``help`` card: what the bot understands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cards.elements import adaptive_card, check_size, fact_set, text_block
from cards.text import md, plain

DEFAULT_COMMANDS: tuple[tuple[str, str], ...] = (
    ("run <CODE>", "Generate this week's draft for one customer; its review card appears in the review channel."),
    ("run all", "Generate this week's drafts for every customer."),
    ("status", "This week's drafts and their state."),
    ("settings [CODE]", "Report settings (admins): recipients, period, enabled, the MSP name."),
    ("test <CODE>", "Send the last complete week's report to yourself only, marked TEST."),
    ("help", "This card."),
)


def help_card(
    commands: Sequence[tuple[str, str]] = DEFAULT_COMMANDS, *, note: str | None = None, example: str = "CODE"
) -> dict[str, Any]:
    """``commands``: (syntax, what it does) pairs. ``note``: an extra line, e.g. what this
    conversation is allowed to do ("In this channel only ACME's report can be run.").
    ``example``: the customer code in the example — in a customer's channel that customer's
    own, elsewhere a placeholder, so no customer's code is shown where it does not belong."""
    body = [
        text_block(md("reportbot \u2014 commands"), size="Large", weight="Bolder"),
        text_block(
            md(
                f"Mention me in a channel (**@reportbot run {plain(example, limit=40)}**) or write to me in a "
                "personal chat."
            ),
            isSubtle=True,
            spacing="None",
        ),
        fact_set([(plain(cmd, limit=60), plain(what, limit=300)) for cmd, what in commands]),
    ]
    if note:
        body.append(text_block(plain(note, limit=300), isSubtle=True))
    return check_size(adaptive_card(body, fallback_text=md("reportbot commands: run CODE, run all, status, help")))

"""The report settings card (``@reportbot settings``): a form for the configured admins.

One ``Input.*`` per setting, each with the id :mod:`reporting.overrides` parses
(``msp_name``, ``internal_reports.owners``, ``customers.<CODE>.enabled`` ...); the Save button
carries the settings version the form shows (a stale form is refused and answered with the
current values), and each customer has a "Send me a test report" button. Input values are the
saved values (an empty one means the configuration file's value, shown as the placeholder);
everything that did not come from this package is neutralised, and Markdown-rendering text
escaped with :func:`cards.text.plain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cards.elements import Element, adaptive_card, check_size, container, execute, text_block
from cards.text import join, md, plain
from cards.verbs import DATA_SETTINGS_VERSION, VERB_SETTINGS_SAVE, VERB_SETTINGS_TEST
from reporting.overrides import (
    FILE_PERIOD,
    INPUT_MANAGERS,
    INPUT_MSP_NAME,
    INPUT_OWNERS,
    MAX_MSP_NAME,
    MAX_RECIPIENTS,
    PERIOD_LABELS,
    PERIODS,
    customer_input,
)
from reporting.text import neutral

_ADDRESSES_MAX_LENGTH = MAX_RECIPIENTS * 255  # the card's own limit; the bot checks the count and each address


@dataclass(frozen=True)
class CustomerView:
    code: str
    name: str
    enabled: bool
    executive: Sequence[str]
    technical: Sequence[str]
    period: str  # "": the configuration file's
    file_recipients: Sequence[str]  # the configuration file's executive recipients (else cto / account owner)
    file_technical: Sequence[str] = ()  # the configuration file's recipients.technical
    file_period: str = "week"  # the configuration file's ``period``


@dataclass(frozen=True)
class SettingsView:
    version: int
    msp_name: str
    msp_name_file: str
    customers: Sequence[CustomerView]
    owners: Sequence[str] = ()
    managers: Sequence[str] = ()
    owners_file: Sequence[str] = ()  # the configuration file's [internal_reports] owners
    managers_file: Sequence[str] = ()
    saved_by: str | None = None  # "Sam Admin on Mon 16 Nov 2026 09:00" for the current version
    message: str | None = None  # what just happened ("Saved as version 3.")
    problems: Sequence[str] = field(default_factory=tuple)  # why the last submit was refused
    admins_note: str | None = None


def _text_input(
    input_id: str, label: str, value: str, placeholder: str, *, multiline: bool, max_length: int
) -> Element:
    return {
        "type": "Input.Text",
        "id": input_id,
        "label": neutral(label),
        "value": neutral(value, multiline=multiline),
        "placeholder": neutral(placeholder),
        "isMultiline": multiline,
        "maxLength": max_length,
    }


def _addresses(input_id: str, label: str, values: Sequence[str], placeholder: str) -> Element:
    return _text_input(
        input_id, label, "\n".join(values), placeholder, multiline=True, max_length=_ADDRESSES_MAX_LENGTH
    )


def _customer(c: CustomerView) -> Element:
    file_to = ", ".join(c.file_recipients) or "nobody"
    items: list[Element] = [
        text_block(join(plain(c.code, limit=40), plain(c.name, limit=80), sep=" \u2014 "), weight="Bolder"),
        {
            "type": "Input.Toggle",
            "id": customer_input(c.code, "enabled"),
            "title": "Reports enabled (a disabled customer is skipped by the Monday batch)",
            "value": "true" if c.enabled else "false",
            "valueOn": "true",
            "valueOff": "false",
        },
        {
            "type": "Input.ChoiceSet",
            "id": customer_input(c.code, "period"),
            "label": "Period",
            "style": "compact",
            "value": c.period if c.period in PERIODS else FILE_PERIOD,
            "choices": [
                {
                    "title": f"As in the configuration file: {PERIOD_LABELS[c.file_period].lower()}",
                    "value": FILE_PERIOD,  # a choice's value may not be empty (Adaptive Cards)
                }
            ]
            + [{"title": PERIOD_LABELS[p], "value": p} for p in PERIODS],
        },
    ]
    items += [
        _addresses(
            customer_input(c.code, "executive"),
            f"Executive report recipients (up to {MAX_RECIPIENTS}; one per line)",
            c.executive,
            f"Empty: the configuration file's {file_to}"[:200],
        ),
        _addresses(
            customer_input(c.code, "technical"),
            f"Technical report recipients (up to {MAX_RECIPIENTS}; one per line)",
            c.technical,
            (
                f"Empty: the configuration file's {', '.join(c.file_technical)}"
                if c.file_technical
                else "Empty: nobody (no technical report is sent)"
            )[:200],
        ),
        {
            "type": "ActionSet",
            "actions": [
                execute(
                    "Send me a test report",
                    VERB_SETTINGS_TEST,
                    {"customer": c.code},
                    associatedInputs="none",
                )
            ],
        },
    ]
    return container(items, separator=True, spacing="Large")


def settings_card(view: SettingsView) -> dict[str, Any]:
    """The form. Raises :class:`cards.elements.CardTooLarge` past the size budget (the bot then
    offers the one-customer card, ``settings CODE``)."""
    if view.version:
        saved = f"Version {view.version}" + (f", saved by {view.saved_by}" if view.saved_by else "") + "."
    else:
        saved = "Nothing saved yet: the configuration file's values are in force."
    body: list[Element] = [
        text_block(md("Report settings"), size="Large", weight="Bolder"),
        text_block(plain(saved, limit=300), isSubtle=True, spacing="None"),
    ]
    if view.admins_note:
        body.append(text_block(plain(view.admins_note, limit=300), isSubtle=True, spacing="None"))
    if view.message:
        body.append(text_block(plain(view.message, limit=500), color="good"))
    if view.problems:
        body.append(text_block(md("**Not saved:**"), color="attention"))
        body += [text_block(plain(p, limit=300), color="attention", spacing="None") for p in view.problems[:12]]
    body += [
        _text_input(
            INPUT_MSP_NAME,
            "MSP name on reports",
            view.msp_name,
            f"Empty: {view.msp_name_file}"[:200],
            multiline=False,
            max_length=MAX_MSP_NAME,
        ),
        _addresses(
            INPUT_OWNERS,
            f"Internal reports: owners (up to {MAX_RECIPIENTS}; the weekly service-desk owner summary)",
            view.owners,
            f"Empty: {', '.join(view.owners_file) or 'none'}"[:200],
        ),
        _addresses(
            INPUT_MANAGERS,
            f"Internal reports: managers (up to {MAX_RECIPIENTS}; the weekly service-desk manager summary)",
            view.managers,
            f"Empty: {', '.join(view.managers_file) or 'none'}"[:200],
        ),
    ]
    body += [_customer(c) for c in view.customers]
    actions = [execute("Save settings", VERB_SETTINGS_SAVE, {DATA_SETTINGS_VERSION: view.version})]
    return check_size(adaptive_card(body, actions, fallback_text=md("reportbot report settings")))


def settings_refused_card(reason: str) -> dict[str, Any]:
    """What a non-admin gets instead of the form (or after submitting one): nothing was stored."""
    body = [
        text_block(md("Report settings"), size="Large", weight="Bolder"),
        text_block(plain(reason, limit=300), color="attention"),
    ]
    return check_size(adaptive_card(body, fallback_text=md("Report settings: refused")))

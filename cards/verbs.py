"""The verbs of the review card's ``Action.Execute`` actions (and of their ``Action.Submit``
fallbacks, which carry the same string under ``data["verb"]``). The bot routes on these."""

from __future__ import annotations

VERB_SAVE = "save"
VERB_APPROVE = "approve"
VERB_REGENERATE = "regenerate"
VERB_SKIP = "skip"
VERB_RETRY = "retryDelivery"  # on a card whose delivery failed: run the unfinished steps again

ALL_VERBS: tuple[str, ...] = (VERB_SAVE, VERB_APPROVE, VERB_REGENERATE, VERB_SKIP, VERB_RETRY)

# Input ids on the review card: their values arrive merged into ``action.data``.
INPUT_COMMENTARY = "commentary"
INPUT_SKIP_REASON = "skip_reason"

# The report settings card (cards.settings): Save, and each customer's "Send me a test report".
VERB_SETTINGS_SAVE = "settingsSave"
VERB_SETTINGS_TEST = "settingsTest"
SETTINGS_VERBS: tuple[str, ...] = (VERB_SETTINGS_SAVE, VERB_SETTINGS_TEST)
DATA_SETTINGS_VERSION = "settings_version"  # the settings version the form showed

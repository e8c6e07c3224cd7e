from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from bot.cli import main
from tests.processes import no_process_outlives_its_test, no_process_outlives_the_run  # noqa: F401 - autouse fixtures

# The sandbox's planted week in every test: Mon 9 Nov – Sun 15 Nov 2026 (period_end 2026-11-16).
WEEK_DAY = "2026-11-10"
PERIOD_END = "2026-11-16"
ANCHOR = date(2026, 11, 16)


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full sandbox demo run, shared by the scenario tests."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--week", WEEK_DAY]) == 0
    return out


def load_json(out: Path, code: str) -> dict:
    return json.loads((out / code / f"{code}-weekly-{PERIOD_END}.json").read_text())

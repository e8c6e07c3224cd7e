"""Golden card JSON under tests/cards/golden/. Regenerate after an intended change with
``REPORTBOT_UPDATE_GOLDEN=1 pytest tests/cards`` and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_golden(name: str, card: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(card, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("REPORTBOT_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path.name}; create it with REPORTBOT_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"card differs from golden {path.name} (REPORTBOT_UPDATE_GOLDEN=1 to accept)"

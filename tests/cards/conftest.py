from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reporting.models import Report
from reporting.snapshot import from_dict
from tests.cards.nodetools import node_modules  # noqa: F401 - fixture
from tests.conftest import PERIOD_END

SANDBOX_CODES = (
    "ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "STARK",
    "WAYNE", "WONKA", "CYBERDYNE", "TYRELL", "SOYLENT", "MASSIVE",
)  # fmt: skip


# The official Adaptive Card 1.5 schema (MIT, microsoft/AdaptiveCards), kept beside the project
# in ../shared/schemas — not copied in. A CI clone may sit elsewhere on the same machine, so the
# workspace's shared folder is looked at too.
def _ac_schema() -> Path:
    if os.environ.get("REPORTBOT_AC_SCHEMA"):
        return Path(os.environ["REPORTBOT_AC_SCHEMA"])
    rel = Path("shared") / "schemas" / "adaptive-card-1.5.json"
    candidates = [Path(__file__).resolve().parents[3] / rel, Path("/work") / rel]
    return next((c for c in candidates if c.is_file()), candidates[0])


AC_SCHEMA = _ac_schema()


@pytest.fixture(scope="session")
def sandbox_reports(demo_out: Path) -> dict[str, Report]:
    """The twelve sandbox customers' reports for the planted week, read back from the demo's
    JSON snapshots."""
    reports = {}
    for code in SANDBOX_CODES:
        path = demo_out / code / f"{code}-weekly-{PERIOD_END}.json"
        reports[code] = from_dict(json.loads(path.read_text()))
    return reports

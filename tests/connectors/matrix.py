"""The fault matrix every vendor connector must pass, run against its loopback simulator.

For one (connector, customer, section) it checks, through the real httpx client and the
collector (``reporting.collect``), that each fault ends as either the correct numbers or an
``unavailable`` section whose reason names the system and the cause:

- clean run: the numbers equal ``expected`` (computed independently by the test), and the
  simulator saw more than one page request when ``min_pages`` says so;
- bad credentials → unavailable, reason says the credentials were refused;
- 429 with ``Retry-After: 1`` twice → correct numbers, and the client waited 1 s each time;
- a 5xx burst of 2 → correct numbers after backing off; a burst longer than the retry budget →
  unavailable naming the status;
- a request that hangs past the per-request timeout → unavailable ("no answer");
- an HTML page instead of JSON → unavailable ("HTML");
- a renamed field → unavailable naming the field, never numbers from partial data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import Connector, ConnectorContext
from connectors.sim.base import Faults, Simulator
from reporting.collect import collect
from reporting.config import Config, SourceConfig, parse_config
from reporting.models import Period, Section


class RecordingSleep:
    """An instant ``sleep`` that records what the client asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class Outcome:
    section: Section
    waits: list[float]
    requests: list[tuple[str, str]]


def make_config(system: str, kind: str, source: dict[str, Any], customer: dict[str, Any]) -> Config:
    return parse_config(
        {
            "msp": {"name": "Test MSP", "timezone": "Europe/London"},
            "collect": {"timeout_seconds": 30},
            "sources": {system: {"type": kind, **source}},
            "customers": [customer],
        },
        "<test>",
        env={},
    )


async def collect_one(
    sim: Simulator,
    factory: Callable[[str, SourceConfig, ConnectorContext], Connector],
    section: str,
    customer: dict[str, Any],
    period: Period,
    source_overrides: dict[str, Any] | None = None,
) -> Outcome:
    """Build the connector from the simulator's source config, collect one customer, return the section."""
    system = customer["sources"][section]
    source = {**sim.source_config(), **(source_overrides or {})}
    kind = source.pop("type")
    config = make_config(system, kind, source, customer)
    sleep = RecordingSleep()
    connector = factory(system, config.sources[system], ConnectorContext(sleep=sleep))
    before = len(sim.log)
    try:
        sections = await collect(config, config.customers[0], period, {system: connector}, lambda: datetime.now(UTC))
    finally:
        await connector.aclose()
    return Outcome(sections[section], sleep.waits, sim.log[before:])


async def run_fault_matrix(
    sim: Simulator,
    factory: Callable[[str, SourceConfig, ConnectorContext], Connector],
    section: str,
    customer: dict[str, Any],
    period: Period,
    expected: Any,
    bad_credentials: dict[str, Any],
    min_pages: int = 2,
    page_marker: str = "page",
    drift: str = "",
) -> None:
    """Run every case of the matrix; ``drift`` is a ``old>new`` key rename that must be detected."""
    system = customer["sources"][section]

    def unavailable(o: Outcome, *words: str) -> None:
        s = o.section
        assert s.status == "unavailable", f"expected unavailable, got numbers: {s.data}"
        assert s.data is None
        assert s.error and s.error.startswith(f"{system}:"), s.error
        low = s.error.lower()
        assert any(w.lower() in low for w in words), f"reason {s.error!r} names none of {words}"

    # clean: correct numbers, several pages
    sim.faults = Faults()
    o = await collect_one(sim, factory, section, customer, period)
    assert o.section.status == "ok", o.section.error
    assert o.section.data == expected
    pages = [p for _, p in o.requests if page_marker in p]
    assert len(pages) >= min_pages, f"expected paging ({page_marker!r}) in {o.requests}"

    # bad credentials
    sim.faults = Faults()
    o = await collect_one(sim, factory, section, customer, period, bad_credentials)
    unavailable(o, "refused", "credential", "unauthor", "not authori", "401", "403", "invalid_client", "token")
    assert "credentials" in o.section.error or "credential" in o.section.error.lower()

    # 429 with Retry-After, twice: correct numbers after waiting as told
    sim.faults = Faults(status=429, count=2, retry_after="1")
    o = await collect_one(sim, factory, section, customer, period)
    assert o.section.status == "ok", o.section.error
    assert o.section.data == expected
    assert o.waits[:2] == [1.0, 1.0], o.waits

    # a 5xx burst the retries absorb
    sim.faults = Faults(status=502, count=2)
    o = await collect_one(sim, factory, section, customer, period)
    assert o.section.status == "ok", o.section.error
    assert o.section.data == expected
    assert len(o.waits) >= 2

    # a 5xx burst longer than the retry budget
    sim.faults = Faults(status=503, count=50)
    o = await collect_one(sim, factory, section, customer, period)
    unavailable(o, "503")

    # a hang past the per-request timeout
    sim.faults = Faults(hang=2.0, count=50)
    o = await collect_one(sim, factory, section, customer, period, {"request_timeout_seconds": 0.2, "max_attempts": 2})
    unavailable(o, "no answer")

    # an HTML page instead of JSON
    sim.faults = Faults(html=True, count=50)
    o = await collect_one(sim, factory, section, customer, period)
    unavailable(o, "html")

    # schema drift: a renamed field
    if drift:
        old, _, new = drift.partition(">")
        sim.faults = Faults(drift={old: new})
        o = await collect_one(sim, factory, section, customer, period)
        unavailable(o, old)
    sim.faults = Faults()

"""Collection isolates failures: each section has its own timeout and its own reason."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from connectors.base import SourceAuthError, SourceRecord
from reporting.collect import SourceBreaker, collect, source_timeout, unmapped_records
from reporting.config import parse_config
from reporting.metrics import sites_section
from reporting.models import Period, Targets
from reporting.period import week_containing

P = week_containing(date(2026, 11, 10), "UTC")


class Fake:
    def __init__(self, name: str, behaviour: str):
        self.name, self.behaviour = name, behaviour
        self.sections = frozenset({"uptime", "tickets", "changes", "backups", "security", "sites"})

    async def fetch_section(self, section: str, customer: object, period: Period, targets: Targets) -> object:
        if self.behaviour == "slow":
            await asyncio.sleep(30)
        if self.behaviour == "auth":
            raise SourceAuthError(self.name, "HTTP 401: token expired")
        if self.behaviour == "bug":
            raise KeyError("result")
        return sites_section([], period, 99.5)

    async def customer_records(self) -> list[SourceRecord]:
        if self.behaviour == "slow":
            await asyncio.sleep(30)
        return [SourceRecord(self.name, "1", "Acme"), SourceRecord(self.name, "99", "Stray Co")]

    async def aclose(self) -> None:
        return None


def config() -> object:
    return parse_config(
        {
            "msp": {"name": "M"},
            "collect": {"timeout_seconds": 5},
            "sources": {"good": {}, "slow": {"timeout_seconds": 0.2}, "auth": {}, "bug": {}},
            "customers": [
                {
                    "code": "ACME",
                    "name": "Acme",
                    "ids": {"good": "1", "slow": "1", "auth": "1", "bug": "1"},
                    "sources": {
                        "sites": "good",
                        "uptime": "slow",
                        "tickets": "auth",
                        "changes": "bug",
                        "backups": "good",
                    },
                }
            ],
        },
        env={},
    )


async def test_failures_become_unavailable_sections_with_reasons() -> None:
    cfg = config()
    fakes = {n: Fake(n, n) for n in ("good", "slow", "auth", "bug")}
    t0 = asyncio.get_running_loop().time()
    sections = await collect(cfg, cfg.customers[0], P, fakes, lambda: datetime.now(UTC))
    assert asyncio.get_running_loop().time() - t0 < 3  # the slow source's own 0.2 s limit, not the 30 s sleep
    assert sections["sites"].status == "ok" and sections["backups"].status == "ok"
    assert sections["uptime"].status == "unavailable" and "no answer within 0.2 s" in sections["uptime"].error
    assert "auth: HTTP 401: token expired" in sections["tickets"].error
    assert "credentials" in sections["tickets"].error
    assert "unexpected error KeyError" in sections["changes"].error
    assert sections["security"].error == "no source is configured for security (customers.sources.security)"
    assert all(s.data is None for s in sections.values() if not s.ok)


async def test_unmapped_records_are_reported() -> None:
    cfg = config()
    sweep = await unmapped_records({"good": Fake("good", "good")}, cfg.customers)
    assert [(r.id, r.name) for r in sweep.records] == [("99", "Stray Co")] and sweep.skipped == []


async def test_a_hung_source_costs_one_timeout_per_batch_not_one_per_customer() -> None:
    """The breaker: the first section to run out its 0.2 s trips it; one in flight ends with it
    (not 0.2 s after its own start), one started later ends at once — all unavailable, saying why."""
    cfg = config()
    fakes = {n: Fake(n, n) for n in ("good", "slow", "auth", "bug")}
    breaker = SourceBreaker()
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def later(delay: float) -> tuple[float, dict]:
        await asyncio.sleep(delay)
        sections = await collect(cfg, cfg.customers[0], P, fakes, lambda: datetime.now(UTC), breaker)
        return loop.time() - t0, sections

    (t_first, first), (t_second, second) = await asyncio.gather(later(0), later(0.1))
    assert 0.2 <= t_first < 0.3 and t_second < 0.3  # the second did not wait its own 0.2 s
    assert "no answer within 0.2 s (" in first["uptime"].error
    assert second["uptime"].error == "slow: no answer within 0.2 s earlier in this run (try again later)"
    t1 = loop.time()
    third = await collect(cfg, cfg.customers[0], P, fakes, lambda: datetime.now(UTC), breaker)
    assert loop.time() - t1 < 0.1 and third["uptime"].error == second["uptime"].error
    assert third["sites"].ok  # the other sources are asked as usual
    fresh = await collect(cfg, cfg.customers[0], P, fakes, lambda: datetime.now(UTC))  # another batch asks again
    assert "no answer within 0.2 s (" in fresh["uptime"].error


async def test_the_sweep_runs_every_source_at_once_each_under_its_timeout() -> None:
    cfg = config()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sweep = await unmapped_records(
        {"good": Fake("good", "good"), "slow": Fake("slow", "slow")}, cfg.customers, lambda s: source_timeout(cfg, s)
    )
    assert loop.time() - t0 < 1.0  # slow's 0.2 s, not 30 s
    assert [(r.system, r.id) for r in sweep.records] == [("good", "99")]
    assert sweep.skipped == ["slow: no customer list within 0.2 s; its unmapped-customer warnings are left out"]

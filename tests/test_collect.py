"""Collection isolates failures: each section has its own timeout and its own reason."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from connectors.base import SourceAuthError, SourceRecord
from reporting.collect import collect, unmapped_records
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
                    "sources": {"sites": "good", "uptime": "slow", "tickets": "auth", "changes": "bug", "backups": "good"},
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
    stray = await unmapped_records({"good": Fake("good", "good")}, cfg.customers)
    assert [(r.id, r.name) for r in stray] == [("99", "Stray Co")]

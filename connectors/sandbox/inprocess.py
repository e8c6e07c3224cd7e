"""The oracle: the sandbox dataset's records mapped to sections by the shared formulas, in process.

No vendor format, no HTTP. The tests compare every real connector — running over HTTP against
its vendor simulator, which serves the same records in the vendor's wire format — with this,
customer by customer and week by week; a difference is a bug in a mapper, a client or a
simulator. It is not registered as a source type: ``reportbot demo`` and the sandbox run the
real connectors (``connectors/sim/farm.py``).
"""

from __future__ import annotations

from connectors.base import ConnectorContext
from connectors.sandbox.dataset import SYSTEM_SECTIONS, SandboxDataset
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.models import Period, SectionData, Targets
from reporting.sources import SourceDataError, SourceRecord, SourceUnavailable


class SandboxConnector:
    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        if not isinstance(ctx.sandbox, SandboxDataset):
            raise SourceDataError(name, "type 'sandbox' needs the sandbox dataset, which this run does not have")
        self.name = name
        self.system: str = source.option("system", name)
        if self.system not in SYSTEM_SECTIONS:
            raise SourceDataError(name, f"unknown sandbox system {self.system!r}")
        self.sections = frozenset(SYSTEM_SECTIONS[self.system])
        self.dataset: SandboxDataset = ctx.sandbox

    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        cid = customer.ids.get(self.name)
        sc = self.dataset.customer_by_id(self.system, cid) if cid else None
        if sc is None:
            raise SourceDataError(
                self.system, f"no customer with id {cid!r} (customers.ids.{self.name} of {customer.code})"
            )
        g = self.dataset.gen(sc.code)
        if self.dataset.fails(sc.code, self.system, period.start):
            raise SourceUnavailable(
                self.system, "API answered HTTP 502 Bad Gateway on 3 attempts (sandbox: planted outage)"
            )
        if period.start < g.onboarded:
            raise SourceDataError(
                self.system, f"no records for {sc.code} before {g.onboarded.date().isoformat()} (onboarding date)"
            )
        if section == "uptime":
            return metrics.uptime_section(g.devices, g.outages, period, targets.uptime_pct)
        if section == "tickets":
            return metrics.tickets_section(g.tickets, period, targets.ticket_sla_pct)
        if section == "changes":
            return metrics.changes_section(g.tickets, period)
        if section == "backups":
            return metrics.backups_section(sc.protected, g.backup_runs, period, targets.backup_stale_hours)
        if section == "security":
            scores = g.scores if self.system == "defender" else ()
            return metrics.security_section(g.incidents, scores, period)
        if section == "sites":
            return metrics.sites_section(g.checks, period, targets.site_pct)
        raise SourceDataError(self.system, f"does not provide section {section!r}")

    async def customer_records(self) -> list[SourceRecord]:
        return [SourceRecord(self.system, c.ids[self.system], c.name) for c in self.dataset.customers_in(self.system)]

    async def aclose(self) -> None:
        return None

"""Collection: every section of a customer fetched concurrently, each with its own timeout.

This is the orchestrator of the connectors and the one place that turns any failure into an
``unavailable`` section with a reason a reader can act on — never zeros, never a crash of the
batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from connectors.base import Connector, ConnectorError, SourceAuthError, SourceRecord
from reporting.config import Config, CustomerConfig
from reporting.models import SECTION_NAMES, Period, Section, Targets

log = logging.getLogger(__name__)

_ADVICE = {
    "unavailable": "try again later",
    "auth": "a human must renew or fix the credentials",
    "data": "the source's answer or the customer's id mapping needs checking",
}


def targets_for(config: Config, customer: CustomerConfig) -> Targets:
    t = config.thresholds
    return Targets(
        uptime_pct=customer.uptime_target_pct if customer.uptime_target_pct is not None else t.uptime_target_pct,
        ticket_sla_pct=customer.ticket_sla_target_pct if customer.ticket_sla_target_pct is not None else t.ticket_sla_target_pct,
        site_pct=t.site_target_pct,
        backup_stale_hours=t.backup_stale_hours,
    )


async def _one(
    section: str,
    customer: CustomerConfig,
    period: Period,
    connectors: Mapping[str, Connector],
    targets: Targets,
    timeout: Callable[[str], float],
    tz_now: Callable[[], datetime],
) -> Section:
    system = customer.sources.get(section)
    if system is None:
        return Section(section, "unavailable", "none", tz_now(), error=f"no source is configured for {section} (customers.sources.{section})")  # type: ignore[arg-type]
    connector = connectors.get(system)
    if connector is None:
        return Section(section, "unavailable", system, tz_now(), error=f"source {system} is not set up in this run")  # type: ignore[arg-type]
    limit = timeout(system)
    try:
        data = await asyncio.wait_for(connector.fetch_section(section, customer, period, targets), limit)
    except TimeoutError:
        error = f"{system}: no answer within {limit:g} s ({_ADVICE['unavailable']})"
    except ConnectorError as err:
        error = f"{err} ({_ADVICE.get(err.category, 'see the logs')})"
        level = logging.WARNING if not isinstance(err, SourceAuthError) else logging.ERROR
        log.log(level, "section unavailable", extra={"customer": customer.code, "section": section, "reason": str(err)})
    except Exception as err:  # the orchestrator: an unexpected bug in one connector must not stop the batch
        log.exception("connector %s crashed on %s/%s", system, customer.code, section)
        error = f"{system}: unexpected error {type(err).__name__} (a reportbot bug; see the logs)"
    else:
        return Section(section, "ok", system, tz_now(), data=data)  # type: ignore[arg-type]
    return Section(section, "unavailable", system, tz_now(), error=error)  # type: ignore[arg-type]


async def collect(
    config: Config,
    customer: CustomerConfig,
    period: Period,
    connectors: Mapping[str, Connector],
    now: Callable[[], datetime],
) -> dict[str, Section]:
    """All six sections of ``customer`` for ``period``, concurrently."""
    targets = targets_for(config, customer)

    def timeout(system: str) -> float:
        src = config.sources.get(system)
        return (src.timeout_seconds if src and src.timeout_seconds else None) or config.collect.timeout_seconds

    sections = await asyncio.gather(
        *(_one(name, customer, period, connectors, targets, timeout, now) for name in SECTION_NAMES)
    )
    return {s.name: s for s in sections}


async def unmapped_records(connectors: Mapping[str, Connector], customers: Iterable[CustomerConfig]) -> list[SourceRecord]:
    """Customer-level records in the sources that no configured customer maps to."""
    customers = list(customers)
    out: list[SourceRecord] = []
    for name, connector in sorted(connectors.items()):
        known = {c.ids[name] for c in customers if name in c.ids}
        try:
            records = await connector.customer_records()
        except ConnectorError as err:
            log.warning("cannot list customers of %s: %s", name, err)
            continue
        out.extend(r for r in records if r.id not in known)
    return out

"""Collection: every section of a customer fetched concurrently, each with its own timeout.

This is the orchestrator of the connectors and the one place that turns any failure into an
``unavailable`` section with a reason a reader can act on — never zeros, never a crash of the
batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from reporting.config import Config, CustomerConfig
from reporting.models import SECTION_NAMES, Period, Section, SectionName, Targets
from reporting.sources import Connector, ConnectorError, SourceAuthError, SourceRecord
from reporting.telemetry import SECTIONS, SECTIONS_UNAVAILABLE

log = logging.getLogger(__name__)
T = TypeVar("T")

_ADVICE = {
    "unavailable": "try again later",
    "auth": "a human must renew or fix the credentials",
    "data": "the source's answer or the customer's id mapping needs checking",
}


def targets_for(config: Config, customer: CustomerConfig) -> Targets:
    t = config.thresholds
    return Targets(
        uptime_pct=customer.uptime_target_pct if customer.uptime_target_pct is not None else t.uptime_target_pct,
        ticket_sla_pct=customer.ticket_sla_target_pct
        if customer.ticket_sla_target_pct is not None
        else t.ticket_sla_target_pct,
        site_pct=t.site_target_pct,
        backup_stale_hours=t.backup_stale_hours,
    )


class SourceBreaker:
    """One batch's memory of sources that hang.

    A section that runs out its whole ``timeout_seconds`` means its source is not answering.
    The breaker then ends every other section of that source at once — those in flight and those
    not started yet — as unavailable with the same reason, so a batch with one hung source ends
    about one timeout after it first asked that source, not one timeout per customer and week.
    One breaker per batch (``Engine.run_many``): a source that hung last week is asked again.
    """

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}
        self._events: dict[str, asyncio.Event] = {}

    def reason(self, system: str) -> str | None:
        return self._reasons.get(system)

    def trip(self, system: str, reason: str) -> None:
        if system not in self._reasons:
            self._reasons[system] = reason
            log.warning(
                "source %s is not answering; its other sections in this batch are unavailable",
                system,
                extra={"source": system, "reason": reason},
            )
        self.event(system).set()

    def event(self, system: str) -> asyncio.Event:
        return self._events.setdefault(system, asyncio.Event())


async def _bounded(system: str, work: Awaitable[T], limit: float, breaker: SourceBreaker | None) -> T:
    """``work`` under ``limit`` seconds; raises ``TimeoutError`` (and trips the breaker) when the
    source ran out of time, ``_Tripped`` when another section found it hanging meanwhile."""
    if breaker is None:
        return await asyncio.wait_for(work, limit)
    if breaker.reason(system) is not None:
        close = getattr(work, "close", None)
        if close is not None:
            close()  # a coroutine never awaited
        raise _Tripped(breaker.reason(system) or "")
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(breaker.event(system).wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        if waiter in done:
            raise _Tripped(breaker.reason(system) or "")
        raise TimeoutError
    finally:
        for t in (task, waiter):
            if not t.done():
                t.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)


class _Tripped(Exception):
    """The source was found hung by another section while this one waited (internal to :func:`_bounded`)."""


async def _one(
    section: SectionName,
    customer: CustomerConfig,
    period: Period,
    connectors: Mapping[str, Connector],
    targets: Targets,
    timeout_of: Callable[[str], float],
    tz_now: Callable[[], datetime],
    breaker: SourceBreaker | None = None,
) -> Section:
    where = {"customer": customer.code, "period": period.end_date.isoformat(), "section": section}
    system = customer.sources.get(section)
    if system is None:
        return _unavailable(
            section,
            "none",
            tz_now(),
            "not_configured",
            f"no source is configured for {section} (customers.sources.{section})",
            where,
        )
    connector = connectors.get(system)
    if connector is None:
        return _unavailable(
            section, system, tz_now(), "not_configured", f"source {system} is not set up in this run", where
        )
    limit = timeout_of(system)
    t0 = time.perf_counter()
    level = logging.WARNING
    try:
        data = await _bounded(system, connector.fetch_section(section, customer, period, targets), limit, breaker)
    except TimeoutError:
        reason, error = "timeout", f"{system}: no answer within {limit:g} s ({_ADVICE['unavailable']})"
        if breaker is not None:
            advice = _ADVICE["unavailable"]
            breaker.trip(system, f"{system}: no answer within {limit:g} s earlier in this run ({advice})")
    except _Tripped as tripped:
        reason, error = "timeout", str(tripped)
    except ConnectorError as err:
        reason, error = err.category, f"{err} ({_ADVICE.get(err.category, 'see the logs')})"
        if isinstance(err, SourceAuthError):
            level = logging.ERROR
    except Exception as err:  # the orchestrator: an unexpected bug in one connector must not stop the batch
        log.exception(
            "connector %s crashed on %s/%s", system, customer.code, section, extra={**where, "source": system}
        )
        reason, error = "bug", f"{system}: unexpected error {type(err).__name__} (a reportbot bug; see the logs)"
    else:
        SECTIONS.labels(system, section, "ok").inc()
        log.debug(
            "section %s of %s from %s",
            section,
            customer.code,
            system,
            extra={**where, "source": system, "duration_ms": round(1000 * (time.perf_counter() - t0))},
        )
        return Section(section, "ok", system, tz_now(), data=data)
    extra = {"duration_ms": round(1000 * (time.perf_counter() - t0))}
    return _unavailable(section, system, tz_now(), reason, error, {**where, **extra}, level)


def _unavailable(
    section: SectionName,
    system: str,
    at: datetime,
    reason: str,
    error: str,
    where: dict[str, Any],
    level: int = logging.WARNING,
) -> Section:
    """An unavailable section, counted (``reportbot_sections_unavailable_total``) and logged with
    its customer, period, source and reason."""
    SECTIONS.labels(system, section, "unavailable").inc()
    SECTIONS_UNAVAILABLE.labels(system, reason).inc()
    log.log(
        level,
        "section %s of %s unavailable: %s",
        section,
        where.get("customer"),
        error,
        extra={**where, "source": system, "reason": reason},
    )
    return Section(section, "unavailable", system, at, error=error)


def source_timeout(config: Config, system: str) -> float:
    """``[sources.<name>] timeout_seconds``, else ``[collect] timeout_seconds``."""
    src = config.sources.get(system)
    return (src.timeout_seconds if src and src.timeout_seconds else None) or config.collect.timeout_seconds


async def collect(
    config: Config,
    customer: CustomerConfig,
    period: Period,
    connectors: Mapping[str, Connector],
    now: Callable[[], datetime],
    breaker: SourceBreaker | None = None,
) -> dict[str, Section]:
    """All six sections of ``customer`` for ``period``, concurrently."""
    targets = targets_for(config, customer)
    sections = await asyncio.gather(
        *(
            _one(name, customer, period, connectors, targets, lambda s: source_timeout(config, s), now, breaker)
            for name in SECTION_NAMES
        )
    )
    return {s.name: s for s in sections}


@dataclass
class Sweep:
    """The unmapped-customer sweep: the records no customer maps to, and one line per source
    whose list could not be read in time (its warnings are left out, nothing else)."""

    records: list[SourceRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


async def unmapped_records(
    connectors: Mapping[str, Connector],
    customers: Iterable[CustomerConfig],
    limits: Callable[[str], float] | float = 60.0,
) -> Sweep:
    """Customer-level records in the sources that no configured customer maps to.

    Every source is listed concurrently, each under its timeout; a source that fails or does
    not answer in time only loses its warnings (``Sweep.skipped`` says so), never the run."""
    customers = list(customers)
    limit = limits if callable(limits) else (lambda _s, t=float(limits): t)

    async def one(name: str, connector: Connector) -> tuple[list[SourceRecord], str | None]:
        known = {str(c.ids[name]) for c in customers if name in c.ids}
        seconds = limit(name)
        try:
            records = await asyncio.wait_for(connector.customer_records(), seconds)
        except TimeoutError:
            return [], f"{name}: no customer list within {seconds:g} s; its unmapped-customer warnings are left out"
        except ConnectorError as err:
            log.warning("cannot list customers of %s: %s", name, err)
            return [], f"{name}: customer list unavailable ({err}); its unmapped-customer warnings are left out"
        except Exception as err:  # a sweep is advice: a bug in one connector's listing must not stop the run
            log.exception("listing the customers of %s crashed", name)
            return [], f"{name}: listing failed ({type(err).__name__}); its unmapped-customer warnings are left out"
        check = getattr(connector, "accepts_id", None)
        out = []
        for r in records:
            if r.id in known:
                continue
            if check is not None and any(check(r, k) for k in known):
                continue  # mapped by another form of id the connector accepts (a name, say)
            out.append(r)
        return out, None

    names = sorted(connectors)
    results = await asyncio.gather(*(one(n, connectors[n]) for n in names))
    sweep = Sweep()
    for records, skipped in results:
        sweep.records.extend(records)
        if skipped:
            sweep.skipped.append(skipped)
    return sweep

"""Cloudflare → the sites section (public-site availability from standalone Health Checks).

A customer is one Cloudflare zone (``customers.ids.<source>`` = the zone id). Its checks are the
zone's standalone health checks (``GET /zones/{id}/healthchecks``, all pages; suspended checks
are left out). Each is reported under its ``address`` (the hostname; ``check_label = "name"``
uses the check's name instead).

Availability over ``[period.start, period.end)`` comes from the Health Check Analytics datasets,
in one GraphQL request:

- ``healthCheckEventsAdaptive`` rows with ``healthChanged: 1`` — the moments a check's health
  changed in a region — ordered by ``datetime``. In each region the check is unhealthy from an
  "unhealthy" row to the next "healthy" row; before a region's first change it was in the other
  state (a change row is a transition), so an outage that began before the period is counted
  from ``period.start``.
- ``healthCheckEventsAdaptiveGroups`` probe counts by ``healthCheckId``, ``region`` and
  ``healthStatus``: for a region with no change in the period the health was constant, and the
  probes say which (the majority state). No probe and no change at all → no data → refused.

A check is unhealthy while any of its regions reports it unhealthy (the union of the regions'
unhealthy intervals). Formula (``reporting.metrics.sites_section``):
``availability_pct = 100 × (period − unhealthy) / period``; ``downtime_minutes = unhealthy / 60``.

When Cloudflare refuses the analytics (a plan without Health Check Analytics, a token without
Analytics Read: GraphQL "not authorized" / "does not have access"), the section falls back to
each check's current ``status`` from the REST API, labelled as such: ``Sites.basis =
"current_status"`` with the refusal as its note; the report shows "Current status only — not a
weekly figure" and no availability, and no site flag is raised from it. Any other analytics
failure (rate limit, retention, schema drift, 5xx) makes the section unavailable, its reason
still listing the current statuses.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.cloudflare.client import SYSTEM, CloudflareClient, UnknownObject, error_message
from connectors.fields import Fields, iso_z, require_in_schema
from connectors.http import require_secret, require_url, source_http
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.models import Period, SectionData, SiteCheck, Sites, Targets
from reporting.sources import ConnectorError, SourceAuthError, SourceDataError, SourceRecord

EVENTS_LIMIT = 10000

QUERY = """query HealthCheckWeek($zoneTag: string!, $start: Time!, $end: Time!, $limit: uint64!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      changes: healthCheckEventsAdaptive(
        limit: $limit
        filter: {datetime_geq: $start, datetime_lt: $end, healthChanged: 1}
        orderBy: [datetime_ASC]
      ) {
        datetime
        healthCheckId
        healthStatus
        region
      }
      probes: healthCheckEventsAdaptiveGroups(
        limit: $limit
        filter: {datetime_geq: $start, datetime_lt: $end}
      ) {
        count
        dimensions {
          healthCheckId
          healthStatus
          region
        }
      }
    }
  }
}"""


def _healthy(f: Fields, key: str) -> bool:
    value = f.text(key).lower()
    if value not in ("healthy", "unhealthy"):
        raise SourceDataError(SYSTEM, f"{f.where}: {key} is {value!r}, expected 'healthy' or 'unhealthy'")
    return value == "healthy"


def unhealthy_intervals(
    changes: list[tuple[datetime, bool]], probes: Counter[bool], start: datetime, end: datetime
) -> list[tuple[datetime, datetime | None]] | None:
    """One region's unhealthy intervals in ``[start, end)`` from its state changes (datetime,
    healthy after the change), or from its probe counts when it had no change. ``None`` when
    there is neither (no data for that region)."""
    if not changes:
        if not probes:
            return None
        return [] if probes[True] >= probes[False] else [(start, end)]
    out: list[tuple[datetime, datetime | None]] = []
    healthy = not changes[0][1]  # the state before the first change
    down_since: datetime | None = None if healthy else start
    for at, now_healthy in changes:
        if now_healthy and down_since is not None:
            out.append((down_since, at))
            down_since = None
        elif not now_healthy and down_since is None:
            down_since = at
    if down_since is not None:
        out.append((down_since, None))
    return out


@connector_shape
class CloudflareConnector(ConnectorDefaults):
    """The ``sites`` section from a Cloudflare zone's standalone health checks."""

    sections = frozenset({"sites"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        self._setup_error: ConnectorError | None = None
        self._httpx: Any = None
        try:
            base = require_url(SYSTEM, source)
            token = require_secret(SYSTEM, name, source, "token")
        except ConnectorError as err:
            self._setup_error = err
            return
        self.label = str(source.option("check_label", "address"))
        if self.label not in ("address", "name"):
            self._setup_error = SourceDataError(SYSTEM, f"sources.{name}.check_label must be 'address' or 'name'")
            return
        self.http, self._httpx = source_http(SYSTEM, source, ctx, secrets=(token,), error_message=error_message)
        self.client = CloudflareClient(self.http, base, token, per_page=int(source.option("per_page", 50)))

    def _ready(self) -> None:
        if self._setup_error is not None:
            raise self._setup_error

    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        self._ready()
        if section != "sites":
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        zone_id = customer.ids.get(self.name)
        if not zone_id:
            raise SourceDataError(SYSTEM, f"{customer.code} has no zone here (customers.ids.{self.name})")

        async def checks() -> list[Any]:
            try:
                return await self.client.healthchecks(zone_id)
            except UnknownObject as err:
                raise SourceDataError(
                    SYSTEM, f"no zone {zone_id!r} ({err}; customers.ids.{self.name} of {customer.code})"
                ) from None

        variables = {"zoneTag": zone_id, "start": iso_z(period.start), "end": iso_z(period.end), "limit": EVENTS_LIMIT}
        rows, analytics = await asyncio.gather(checks(), self.client.graphql(QUERY, variables), return_exceptions=True)
        if isinstance(rows, BaseException):
            raise rows
        # both are on every health check (created_on is never null): absent from all is drift
        require_in_schema(SYSTEM, rows, ["suspended", "created_on"], "GET /zones/{zone}/healthchecks")
        hcs = []
        for n, row in enumerate(rows):
            f = Fields(SYSTEM, row, f"GET /zones/{{zone}}/healthchecks item {n}")
            if f.has("suspended") and f.flag("suspended"):
                continue
            hcs.append(f)
        if not hcs:
            raise SourceDataError(SYSTEM, f"zone {zone_id} of {customer.code} has no active health check")
        if isinstance(analytics, SourceAuthError):
            return Sites(
                checks=tuple(
                    sorted(
                        (SiteCheck(h.text(self.label), None, None, h.text("status")) for h in hcs), key=lambda c: c.name
                    )
                ),
                target_pct=targets.site_pct,
                basis="current_status",
                note=f"{analytics}. Weekly availability needs Health Check Analytics (Pro plan or above) "
                "and a token with Analytics Read.",
            )
        if isinstance(analytics, ConnectorError):
            current = ", ".join(f"{h.text(self.label)} {h.text('status')}" for h in hcs)
            text = str(analytics).removeprefix(f"{SYSTEM}: ")
            raise type(analytics)(
                SYSTEM,
                f"health-check analytics unavailable: {text}; current status only (not a weekly figure): {current}",
            )
        if isinstance(analytics, BaseException):
            raise analytics
        return metrics.sites_section(self._records(hcs, analytics, zone_id, period), period, targets.site_pct)

    def _records(
        self, hcs: list[Fields], data: dict[str, Any], zone_id: str, period: Period
    ) -> list[metrics.SiteCheckRecord]:
        zones = Fields(SYSTEM, data, "POST /graphql data").obj("viewer").array("zones")
        if len(zones) != 1:
            raise SourceDataError(SYSTEM, f"POST /graphql: {len(zones)} zones answered for zone {zone_id}, expected 1")
        z = Fields(SYSTEM, zones[0], "POST /graphql viewer.zones[0]")
        changes_raw, probes_raw = z.array("changes"), z.array("probes")
        if len(changes_raw) >= EVENTS_LIMIT or len(probes_raw) >= EVENTS_LIMIT:
            raise SourceDataError(
                SYSTEM, f"POST /graphql: {EVENTS_LIMIT} rows, the query limit: the week's events are incomplete"
            )
        changes: dict[tuple[str, str], list[tuple[datetime, bool]]] = {}
        for n, row in enumerate(changes_raw):
            f = Fields(SYSTEM, row, f"POST /graphql healthCheckEventsAdaptive row {n}")
            changes.setdefault((f.text("healthCheckId"), f.text("region")), []).append(
                (f.time("datetime"), _healthy(f, "healthStatus"))
            )
        probes: dict[tuple[str, str], Counter[bool]] = {}
        for n, row in enumerate(probes_raw):
            f = Fields(SYSTEM, row, f"POST /graphql healthCheckEventsAdaptiveGroups row {n}")
            d = f.obj("dimensions")
            probes.setdefault((d.text("healthCheckId"), d.text("region")), Counter())[_healthy(d, "healthStatus")] += (
                f.integer("count")
            )

        out = []
        for h in hcs:
            hid, label = h.text("id"), h.text(self.label)
            created = h.opt_time("created_on")
            if created is not None and created > period.start:
                raise SourceDataError(
                    SYSTEM,
                    f"health check {label} was created {iso_z(created)}, inside the period: no full-period figure",
                )
            regions = sorted({r for (i, r) in changes if i == hid} | {r for (i, r) in probes if i == hid})
            intervals: list[tuple[datetime, datetime | None]] = []
            for region in regions:
                evs = sorted(changes.get((hid, region), []), key=lambda e: e[0])
                got = unhealthy_intervals(evs, probes.get((hid, region), Counter()), period.start, period.end)
                if got is not None:
                    intervals.extend(got)
            if not regions:
                raise SourceDataError(
                    SYSTEM,
                    f"no health-check analytics for {label} in the period (beyond the dataset's retention, or the "
                    "check did not run)",
                )
            out.append(metrics.SiteCheckRecord(label, tuple(intervals)))
        return out

    async def customer_records(self) -> list[SourceRecord]:
        self._ready()
        out = []
        for n, z in enumerate(await self.client.zones()):
            f = Fields(SYSTEM, z, f"GET /zones item {n}")
            out.append(SourceRecord(SYSTEM, f.text("id"), f.text("name")))
        return out

    async def probe(self) -> str:
        """``GET /user/tokens/verify``: e.g. "Cloudflare API token active"."""
        self._ready()
        result = await self.client.verify_token()
        return f"Cloudflare API token {Fields(SYSTEM, result, 'GET /user/tokens/verify result').text('status')}"

    async def aclose(self) -> None:
        if self._httpx is not None:
            await self._httpx.aclose()

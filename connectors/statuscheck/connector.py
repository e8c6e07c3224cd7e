"""Status checks (UptimeRobot API v2) → the sites section.

Only UptimeRobot's v2 ``getMonitors`` is implemented: it is the one well-documented path that
gives both the down periods and the service's own uptime figure for an arbitrary range.

A customer's monitors are chosen by ``customers.ids.<source>``:

- a domain (``acme.example``): ``search=acme.example`` (UptimeRobot matches it in the URL or the
  friendly name), then kept only if the URL's host is that domain or one of its subdomains
  (``www.acme.example`` yes, ``notacme.example`` no);
- or monitor ids, ``-`` or ``,`` separated (``777749809-777749810``): ``monitors=...``.

For ``[period.start, period.end)`` (epoch seconds ``s``, ``e``) one ``getMonitors`` request
(all pages) asks for ``custom_uptime_ranges=s_e``, ``logs=1``, ``logs_start_date =
s − logs_lookback_days``, ``logs_end_date = e``. Per monitor:

- unhealthy = the down logs (``type`` 1): ``[datetime, datetime + duration)``, clipped to the
  period; ``availability_pct = 100 × (period − unhealthy) / period``, ``downtime_minutes =
  unhealthy / 60`` (``reporting.metrics.sites_section``);
- cross-check: UptimeRobot's own ``custom_uptime_ranges`` for the same range (3 decimals) must
  agree within ``ratio_tolerance`` percentage points (default 0.001). If it does not — logs
  kept for less time than the period, a down log that began before the lookback, pauses — the
  section is unavailable with both figures in the reason, never a number from partial logs.
- a monitor created after the period start, or paused (log ``type`` 99) during it, has no
  full-period figure: refused.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.fields import Fields, epoch, iso_z, require_in_schema
from connectors.http import require_secret, require_url, source_http
from connectors.statuscheck.client import SYSTEM, UptimeRobotClient, error_message
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.models import Period, SectionData, Targets
from reporting.sources import ConnectorError, SourceDataError, SourceRecord

LOG_DOWN, LOG_PAUSED = 1, 99
_IDS = re.compile(r"^\d+([-,]\d+)*$")


def host_of(url: str) -> str:
    parts = urlsplit(url if "//" in url else f"//{url}")
    return (parts.hostname or "").lower().rstrip(".")


def belongs(host: str, domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return host == domain or host.endswith("." + domain)


@connector_shape
class StatusCheckConnector(ConnectorDefaults):
    """The ``sites`` section from UptimeRobot monitors. See the module docstring."""

    sections = frozenset({"sites"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        self._setup_error: ConnectorError | None = None
        self._httpx: Any = None
        try:
            base = require_url(SYSTEM, source)
            key = require_secret(SYSTEM, name, source, "api_key")
        except ConnectorError as err:
            self._setup_error = err
            return
        if str(source.option("provider", "uptimerobot")) != "uptimerobot":
            self._setup_error = SourceDataError(
                SYSTEM, f"sources.{name}.provider: only 'uptimerobot' (API v2) is implemented"
            )
            return
        self.label = str(source.option("check_label", "friendly_name"))
        if self.label not in ("friendly_name", "url"):
            self._setup_error = SourceDataError(SYSTEM, f"sources.{name}.check_label must be 'friendly_name' or 'url'")
            return
        self.lookback = timedelta(days=float(source.option("logs_lookback_days", 7)))
        self.tolerance = float(source.option("ratio_tolerance", 0.001))
        self.http, self._httpx = source_http(SYSTEM, source, ctx, secrets=(key,), error_message=error_message)
        self.client = UptimeRobotClient(self.http, base, key, limit=int(source.option("page_limit", 50)))

    def _ready(self) -> None:
        if self._setup_error is not None:
            raise self._setup_error

    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        self._ready()
        if section != "sites":
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        selector = (customer.ids.get(self.name) or "").strip()
        if not selector:
            raise SourceDataError(SYSTEM, f"{customer.code} has no monitors here (customers.ids.{self.name})")
        s, e = epoch(period.start), epoch(period.end)
        params: dict[str, Any] = {
            "custom_uptime_ranges": f"{s}_{e}",
            "logs": 1,
            "logs_start_date": epoch(period.start - self.lookback),
            "logs_end_date": e,
        }
        by_ids = bool(_IDS.match(selector))
        if by_ids:
            params["monitors"] = "-".join(re.split(r"[-,]", selector))
        else:
            params["search"] = selector
        monitors = await self.client.get_monitors(params)
        require_in_schema(SYSTEM, monitors, ["create_datetime"], "POST /getMonitors")  # null when unknown, never absent
        chosen = []
        for n, m in enumerate(monitors):
            f = Fields(SYSTEM, m, f"POST /getMonitors monitor {n}")
            if by_ids or belongs(host_of(f.text("url")), selector):
                chosen.append(f)
        if not chosen:
            how = "monitors " + selector if by_ids else f"monitors whose URL is on {selector}"
            raise SourceDataError(SYSTEM, f"no {how} (customers.ids.{self.name} of {customer.code})")
        return metrics.sites_section([self._record(f, period) for f in chosen], period, targets.site_pct)

    def _record(self, f: Fields, period: Period) -> metrics.SiteCheckRecord:
        label = f.text(self.label) if self.label == "friendly_name" else host_of(f.text("url"))
        created = f.opt_time("create_datetime")
        if created is not None and created > period.start:
            raise SourceDataError(
                SYSTEM, f"monitor {label} was created {iso_z(created)}, inside the period: no full-period figure"
            )
        down: list[tuple[datetime, datetime | None]] = []
        for n, log in enumerate(f.array("logs")):
            lf = Fields(SYSTEM, log, f"{f.where} log {n}")
            kind = lf.integer("type")
            if kind not in (LOG_DOWN, LOG_PAUSED):
                continue
            start = lf.time("datetime")
            end = start + timedelta(seconds=lf.integer("duration"))
            if kind == LOG_PAUSED:
                if start < period.end and end > period.start:
                    raise SourceDataError(
                        SYSTEM, f"monitor {label} was paused during the period ({iso_z(start)}): no full-period figure"
                    )
                continue
            down.append((start, end))
        record = metrics.SiteCheckRecord(label, tuple(down))
        ours = metrics.sites_section([record], period, 0.0).checks[0].availability_pct
        assert ours is not None  # sites_section gives every record a figure over the period
        raw = f.text("custom_uptime_ranges").split("-")[0]
        try:
            theirs = float(raw)
        except ValueError:
            raise SourceDataError(
                SYSTEM, f"{f.where}: custom_uptime_ranges is {raw!r}, expected a percentage"
            ) from None
        if abs(ours - theirs) > self.tolerance:
            raise SourceDataError(
                SYSTEM,
                f"monitor {label}: the down logs give {ours:.3f} % for the period but UptimeRobot's own ratio is "
                f"{theirs:.3f} %; the logs do not cover the period (log retention shorter than the period, or an "
                "outage that began more than "
                f"logs_lookback_days before it) — no figure reported",
            )
        return record

    async def customer_records(self) -> list[SourceRecord]:
        """One record per domain the monitors watch (the URL's host without its first label
        when it has three or more: ``www.acme.example`` → ``acme.example``) — an approximation
        of the registrable domain, good enough to spot a customer no config entry maps."""
        self._ready()
        domains: dict[str, list[str]] = {}
        by_id: dict[str, str] = {}
        for n, m in enumerate(await self.client.get_monitors({})):
            f = Fields(SYSTEM, m, f"POST /getMonitors monitor {n}")
            host = host_of(f.text("url"))
            labels = host.split(".")
            domain = ".".join(labels[1:]) if len(labels) >= 3 else host
            domains.setdefault(domain, []).append(f.text("friendly_name"))
            by_id[f.text("id")] = domain
        self._monitor_domains = by_id
        return [SourceRecord(SYSTEM, d, ", ".join(sorted(names))) for d, names in sorted(domains.items())]

    def accepts_id(self, record: SourceRecord, cid: str) -> bool:
        """A customer mapped by monitor ids (``"777749809-777749810"``) or by a domain its
        monitors' hosts belong to maps the domain record those monitors make."""
        if _IDS.match(cid):
            domains = getattr(self, "_monitor_domains", {})
            return any(domains.get(i) == record.id for i in re.split(r"[-,]", cid))
        return belongs(record.id, cid)

    async def check_id(self, cid: str) -> str | None:
        """The monitors ``cid`` selects — by ids or by domain — as ``fetch_section`` selects them."""
        self._ready()
        by_ids = bool(_IDS.match(cid))
        params = {"monitors": "-".join(re.split(r"[-,]", cid))} if by_ids else {"search": cid}
        names = []
        for n, m in enumerate(await self.client.get_monitors(params)):
            f = Fields(SYSTEM, m, f"POST /getMonitors monitor {n}")
            if by_ids or belongs(host_of(f.text("url")), cid):
                names.append(f.text("friendly_name"))
        return f"{len(names)} monitor{'s' if len(names) != 1 else ''} ({', '.join(sorted(names))})" if names else None

    async def probe(self) -> str:
        """``POST /getAccountDetails``: e.g. "UptimeRobot v2, 6 monitors (limit 50)"."""
        self._ready()
        acc = Fields(SYSTEM, await self.client.account_details(), "POST /getAccountDetails account")
        total = sum(acc.integer(k) for k in ("up_monitors", "down_monitors", "paused_monitors") if acc.has(k))
        return f"UptimeRobot v2, {total} monitors (limit {acc.opt_text('monitor_limit') or '?'})"

    async def aclose(self) -> None:
        if self._httpx is not None:
            await self._httpx.aclose()

"""LibreNMS → the uptime section.

A customer is one LibreNMS device group (``customers.ids.<source>`` = the group's id, or its
name). For ``[period.start, period.end)``:

- devices: the group's rows (``GET /devicegroups/{id}?full=1``); ``type`` is the device class,
  the site is the name of the row's ``location_id`` (``GET /resources/locations``) or another
  device field (``site_field``). Disabled devices (``disabled = 1``) are not polled, so they are
  left out; a device whose ``inserted`` is after the period start counts only from then on.
- downtime: each device's ``GET /devices/{id}/outages`` rows, ``[going_down, up_again)`` in
  epoch seconds (``up_again`` null = still down), clipped to the period;
- planned maintenance: LibreNMS' alert schedules (``GET /alerts/scheduled_maintenance``) that
  name the device, one of its groups or its location — one-off ``[start, end)`` or recurring
  (``start_recurring_dt``/``end_recurring_dt`` dates, ``start_recurring_hr``/``end_recurring_hr``
  times, ``recurring_day`` weekdays), in the LibreNMS server's timezone (``server_timezone`` option).

Formula (``reporting.metrics.uptime_section``, device-weighted): per device
``monitored = period − maintenance``, ``down = outages − maintenance``; a group's
``uptime_pct = 100 × Σ(monitored − down) / Σ monitored``, ``downtime_minutes = Σ down / 60``.
``overall_pct`` is the same over all the group's devices (LibreNMS defines no SLA figure).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.fields import Fields, parse_time, require_in_schema
from connectors.http import require_secret, require_url, source_http
from connectors.librenms.client import SYSTEM, LibreNMSClient, NotFound, error_message
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.models import Period, SectionData, Targets
from reporting.period import PeriodError, zone
from reporting.sources import ConnectorError, SourceDataError, SourceRecord

NO_LOCATION = "(no location)"
_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
# columns LibreNMS returns on every row (null when unset): one absent from all rows is a renamed field
DEVICE_SCHEMA = ("disabled", "location_id", "inserted")
SCHEDULE_SCHEMA = ("end_recurring_dt", "recurring_day", "devices", "device_groups", "locations")


@dataclass(frozen=True)
class Schedule:
    """One LibreNMS alert schedule, reduced to what decides when and whom it covers."""

    id: str
    recurring: bool
    start: datetime | None  # one-off: aware, UTC
    end: datetime | None
    first_day: date | None  # recurring: local dates and times in the server's timezone
    last_day: date | None
    from_time: time | None
    to_time: time | None
    days: frozenset[int]  # weekday numbers (Monday 0); empty = every day
    devices: frozenset[int]
    groups: frozenset[int]
    locations: frozenset[int]

    def windows(self, lo: datetime, hi: datetime, tz: Any) -> list[tuple[datetime, datetime]]:
        """The schedule's maintenance windows that overlap ``[lo, hi)`` (aware datetimes)."""
        if not self.recurring:
            assert self.start is not None and self.end is not None
            return [(self.start, self.end)] if self.start < hi and self.end > lo else []
        assert self.first_day is not None and self.from_time is not None and self.to_time is not None
        out = []
        day = max(self.first_day, lo.astimezone(tz).date() - timedelta(days=1))
        last = hi.astimezone(tz).date()
        if self.last_day is not None:
            last = min(last, self.last_day)
        while day <= last:
            if not self.days or day.weekday() in self.days:
                a = datetime.combine(day, self.from_time, tzinfo=tz)
                end_day = day if self.to_time > self.from_time else day + timedelta(days=1)  # spans midnight
                b = datetime.combine(end_day, self.to_time, tzinfo=tz)
                if a < hi and b > lo:
                    out.append((a.astimezone(UTC), b.astimezone(UTC)))
            day += timedelta(days=1)
        return out


def _local_time(f: Fields, key: str, tz: Any) -> datetime:
    """A LibreNMS ``Y-m-d H:i:s`` (server timezone) or ISO 8601 timestamp, as aware UTC."""
    raw = f.text(key)
    try:
        if "T" in raw or raw.endswith("Z") or "+" in raw[10:]:
            return parse_time(raw)
        return datetime.fromisoformat(raw).replace(tzinfo=tz).astimezone(UTC)
    except ValueError:
        raise SourceDataError(SYSTEM, f"{f.where}: field '{key}' is {raw[:40]!r}, expected a date and time") from None


def _ids(f: Fields, key: str) -> frozenset[int]:
    if not f.has(key):
        return frozenset()
    out = set()
    for i, v in enumerate(f.array(key)):
        out.add(Fields(SYSTEM, {"v": v}, f"{f.where} → {key}[{i}]").integer("v"))
    return frozenset(out)


def parse_schedule(row: Any, n: int, tz: Any) -> Schedule:
    f = Fields(SYSTEM, row, f"GET /api/v0/alerts/scheduled_maintenance schedule {n}")
    recurring = f.flag("recurring")
    start = end = None
    first = last = None
    t0 = t1 = None
    days: set[int] = set()
    if recurring:
        try:
            first = date.fromisoformat(f.text("start_recurring_dt")[:10])
            last_raw = f.opt_text("end_recurring_dt")
            last = date.fromisoformat(last_raw[:10]) if last_raw else None
            t0 = time.fromisoformat(f.text("start_recurring_hr"))
            t1 = time.fromisoformat(f.text("end_recurring_hr"))
        except ValueError as err:
            raise SourceDataError(SYSTEM, f"{f.where}: recurring dates or times are not Y-m-d / H:i ({err})") from None
        if f.has("recurring_day"):
            raw_days = f.raw("recurring_day")
            items = raw_days.split(",") if isinstance(raw_days, str) else raw_days
            for d in items:
                d = str(d).strip()
                if not d:
                    continue
                if d in _DAYS:
                    days.add(_DAYS.index(d))
                elif d.isdigit() and 1 <= int(d) <= 7:  # stored form: ISO weekday numbers
                    days.add(int(d) - 1)
                else:
                    raise SourceDataError(SYSTEM, f"{f.where}: unknown recurring_day {d!r}")
    else:
        start = _local_time(f, "start", tz)
        end = _local_time(f, "end", tz)
    return Schedule(
        id=f.text("schedule_id"),
        recurring=recurring,
        start=start,
        end=end,
        first_day=first,
        last_day=last,
        from_time=t0,
        to_time=t1,
        days=frozenset(days),
        devices=_ids(f, "devices"),
        groups=_ids(f, "device_groups"),
        locations=_ids(f, "locations"),
    )


@dataclass(frozen=True)
class _Row:
    device_id: int
    name: str
    site: str
    device_class: str
    location_id: int | None
    inserted: datetime | None


@connector_shape
class LibreNMSConnector(ConnectorDefaults):
    """The ``uptime`` section from a LibreNMS device group. See the module docstring."""

    sections = frozenset({"uptime"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        self.source = source
        self._setup_error: ConnectorError | None = None
        self._httpx: Any = None
        try:
            base = require_url(SYSTEM, source)
            token = require_secret(SYSTEM, name, source, "token")
        except ConnectorError as err:
            self._setup_error = err
            return
        try:
            self.tz = zone(str(source.option("server_timezone", "UTC")))
        except PeriodError as err:
            self._setup_error = SourceDataError(SYSTEM, f"sources.{name}.server_timezone: {err}")
            return
        self.site_field = str(source.option("site_field", "location"))
        self.class_field = str(source.option("class_field", "type"))
        labels = source.option("class_labels", {}) or {}
        if not isinstance(labels, dict):
            self._setup_error = SourceDataError(SYSTEM, f"sources.{name}.class_labels must be a table of type = label")
            return
        self.class_labels = {str(k): str(v) for k, v in labels.items()}
        self.use_maintenance = bool(source.option("use_maintenance", True))
        self.http, self._httpx = source_http(SYSTEM, source, ctx, secrets=(token,), error_message=error_message)
        self.client = LibreNMSClient(self.http, base, token)
        self._locations_lock = asyncio.Lock()
        self._maintenance_lock = asyncio.Lock()
        self._locations: dict[int, str] | None = None
        self._schedules: list[Schedule] | None = None
        self._group_members: dict[int, asyncio.Task[frozenset[int]]] = {}

    def _ready(self) -> None:
        if self._setup_error is not None:
            raise self._setup_error

    # -- customer-independent lookups, once per connector ----------------------------------
    async def _location_names(self) -> dict[int, str]:
        async with self._locations_lock:
            if self._locations is None:
                rows = await self.client.locations()
                out = {}
                for n, row in enumerate(rows):
                    f = Fields(SYSTEM, row, f"GET /api/v0/resources/locations item {n}")
                    out[f.integer("id")] = f.text("location")
                self._locations = out
            return self._locations

    async def _maintenance(self) -> list[Schedule]:
        if not self.use_maintenance:
            return []
        async with self._maintenance_lock:
            if self._schedules is None:
                try:
                    rows = await self.client.scheduled_maintenance()
                except NotFound as err:
                    if "route" in err.message.lower():
                        raise SourceDataError(
                            SYSTEM,
                            "this LibreNMS has no /api/v0/alerts/scheduled_maintenance route, so planned maintenance "
                            f"cannot be excluded; upgrade LibreNMS or set sources.{self.name}.use_maintenance = false",
                        ) from None
                    rows = []  # a 404 with another message: no schedules
                require_in_schema(SYSTEM, rows, SCHEDULE_SCHEMA, "GET /api/v0/alerts/scheduled_maintenance")
                self._schedules = [parse_schedule(r, n, self.tz) for n, r in enumerate(rows)]
            return self._schedules

    async def _members(self, group_id: int) -> frozenset[int]:
        """Device ids of another group named by a maintenance schedule (cached)."""
        task = self._group_members.get(group_id)
        if task is None:
            task = self._group_members[group_id] = asyncio.ensure_future(self._fetch_members(group_id))
        return await task

    async def _fetch_members(self, group_id: int) -> frozenset[int]:
        try:
            rows = await self.client.group_devices(str(group_id), full=False)
        except NotFound:
            return frozenset()
        return frozenset(
            Fields(SYSTEM, r, f"GET /api/v0/devicegroups/{group_id} item {n}").integer("device_id")
            for n, r in enumerate(rows)
        )

    # -- the section ---------------------------------------------------------------------------
    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        self._ready()
        if section != "uptime":
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        group = customer.ids.get(self.name)
        if not group:
            raise SourceDataError(SYSTEM, f"{customer.code} has no device group here (customers.ids.{self.name})")

        async def group_rows() -> list[Any]:
            try:
                return await self.client.group_devices(group)
            except NotFound as err:
                if "no devices" in err.message.lower():
                    raise SourceDataError(SYSTEM, f"device group {group!r} of {customer.code} has no devices") from None
                raise SourceDataError(
                    SYSTEM, f"no device group {group!r} ({err.message}; customers.ids.{self.name} of {customer.code})"
                ) from None

        async def no_locations() -> dict[int, str]:
            return {}

        rows_raw, locations, schedules = await asyncio.gather(
            group_rows(),
            self._location_names() if self.site_field == "location" else no_locations(),
            self._maintenance(),
        )
        require_in_schema(SYSTEM, rows_raw, DEVICE_SCHEMA, f"GET /api/v0/devicegroups/{group}?full=1")
        read = [self._row(r, n, locations) for n, r in enumerate(rows_raw)]
        rows = [r for r in read if r is not None and (r.inserted is None or r.inserted < period.end)]
        if not rows:
            raise SourceDataError(
                SYSTEM, f"device group {group!r} of {customer.code} had no monitored device in the period"
            )

        # maintenance that may name other groups: their members, alongside the outages
        window = [(s, s.windows(period.start, period.end, self.tz)) for s in schedules]
        window = [(s, w) for s, w in window if w]
        own = {r.device_id for r in rows}
        own_id = int(group) if group.isdigit() else None
        other_groups = sorted({g for s, _ in window for g in s.groups if g != own_id})
        outage_lists, memberships = await asyncio.gather(
            asyncio.gather(*(self.client.outages(r.device_id) for r in rows)),
            asyncio.gather(*(self._members(g) for g in other_groups)),
        )
        members = dict(zip(other_groups, memberships, strict=True))
        if own_id is not None:
            members[own_id] = frozenset(own)

        devices = []
        outages: list[metrics.Outage] = []
        for r, raw in zip(rows, outage_lists, strict=True):
            did = str(r.device_id)
            devices.append(metrics.Device(id=did, name=r.name, site=r.site, device_class=r.device_class))
            # an ongoing outage has no up_again, but an answer where no outage has one is drift (every
            # outage would look ongoing: weeks of downtime)
            require_in_schema(SYSTEM, raw, ["up_again"], f"GET /api/v0/devices/{r.device_id}/outages")
            for n, o in enumerate(raw):
                f = Fields(SYSTEM, o, f"GET /api/v0/devices/{r.device_id}/outages item {n}")
                outages.append(metrics.Outage(did, f.time("going_down"), f.opt_time("up_again")))
            if r.inserted is not None and r.inserted > period.start:  # not monitored before it was added
                outages.append(metrics.Outage(did, period.start, r.inserted, planned=True))
            for s, wins in window:
                applies = (
                    r.device_id in s.devices
                    or any(r.device_id in members[g] for g in s.groups)
                    or (r.location_id is not None and r.location_id in s.locations)
                )
                if applies:
                    outages.extend(metrics.Outage(did, a, b, planned=True) for a, b in wins)
        return metrics.uptime_section(devices, outages, period, targets.uptime_pct)

    def _row(self, row: Any, n: int, locations: dict[int, str]) -> _Row | None:
        f = Fields(SYSTEM, row, f"GET /api/v0/devicegroups/{{group}}?full=1 device {n}")
        if f.has("disabled") and f.flag("disabled"):
            return None
        device_id = f.integer("device_id")
        location_id = f.integer("location_id") if f.has("location_id") else None
        if self.site_field == "location":
            if location_id is None or location_id == 0:
                site = NO_LOCATION
            elif location_id in locations:
                site = locations[location_id]
            else:
                raise SourceDataError(
                    SYSTEM, f"{f.where}: location_id {location_id} is not in GET /api/v0/resources/locations"
                )
        else:
            site = f.opt_text(self.site_field) or NO_LOCATION
        kind = f.text(self.class_field)
        inserted = None
        if f.has("inserted"):
            inserted = _local_time(f, "inserted", self.tz)
        name = f.opt_text("display") or f.opt_text("sysName") or f.text("hostname")
        return _Row(device_id, name, site, self.class_labels.get(kind, kind), location_id, inserted)

    async def customer_records(self) -> list[SourceRecord]:
        self._ready()
        out = []
        for n, g in enumerate(await self.client.device_groups()):
            f = Fields(SYSTEM, g, f"GET /api/v0/devicegroups item {n}")
            out.append(SourceRecord(SYSTEM, f.text("id"), f.text("name")))
        return out

    def accepts_id(self, record: SourceRecord, cid: str) -> bool:
        """A customer mapped by the group's name (the API takes either) maps that group."""
        return record.name == cid

    async def check_id(self, cid: str) -> str | None:
        """The device group ``cid`` names, by id or by name (``GET /api/v0/devicegroups/{cid}``
        takes either)."""
        return next((r.name for r in await self.customer_records() if cid in (r.id, r.name)), None)

    async def probe(self) -> str:
        """``GET /api/v0/system``: proves the URL and the token; returns e.g. "LibreNMS 26.3.0"."""
        self._ready()
        info = await self.client.system()
        return f"LibreNMS {Fields(SYSTEM, info, 'GET /api/v0/system').opt_text('local_ver') or '(version not given)'}"

    async def aclose(self) -> None:
        for task in self._group_members.values() if self._setup_error is None else ():
            if not task.done():
                task.cancel()
        if self._httpx is not None:
            await self._httpx.aclose()

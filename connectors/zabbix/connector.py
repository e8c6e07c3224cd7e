"""The Zabbix mapper: host groups, hosts, problem events, maintenances and SLAs → the uptime section.

Formulas (the numbers mean what ``reporting.metrics.uptime_section`` says; this module only turns
Zabbix objects into its records):

- Devices = the monitored hosts (``status`` "0") of the customer's host group. Site = the value of
  the host tag ``site_tag``; class = the value of ``class_tag``; a host without the tag is in
  ``"unassigned"``.
- Down time of a device = its "device down" problems: trigger problem events (``event.get``
  source 0, object 0, value 1, filtered by ``down_tag``/``down_name``) from the event's ``clock``
  to its recovery event's ``clock`` (``r_eventid``, read by id), or to the period end while
  unresolved (``r_eventid`` "0").
- Planned time of a device = its maintenance windows (``maintenance.get`` for the groups of the
  customer's hosts: one-time time periods ``[start_date, start_date + period)`` cut to
  ``[active_since, active_till)``, of maintenances that name the host or one of its groups;
  daily/weekly/monthly periods evaluated in ``server_timezone``) and,
  when the SLA path is used, the SLA's excluded downtimes (they apply to every device).
- ``uptime_pct`` of a site/class/all = 100 × Σ(monitored − down) / Σ monitored over its devices,
  where monitored = period − planned and down = down time − planned (device-weighted).
- ``overall_pct``: when an enabled **daily** SLA has the service tag ``sla_tag`` = the customer's
  code or host-group name, the SLA's figure for the week: ``sla.getsli`` from the period start for
  as many daily slices as the period has local days, 100 × Σ uptime / Σ (uptime + downtime) over
  every slice and every service of the SLA; ``overall_source`` is ``SLA <name>`` and
  ``target_pct`` the SLA's ``slo``. Otherwise the device-weighted value over all devices and the
  configured target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.fields import Fields, epoch
from connectors.http import require_secret, require_url, source_http
from connectors.zabbix.client import SYSTEM, ZabbixClient, error_message
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.metrics import Device, Outage
from reporting.models import Period, SectionData, Targets
from reporting.period import PeriodError, zone
from reporting.sources import ConnectorError, SourceDataError, SourceRecord

UNASSIGNED = "unassigned"
T = TypeVar("T")


@dataclass(frozen=True)
class DownRule:
    """Which problems mean "device down" (``down_tag`` / ``down_name``)."""

    tag: str = ""
    value: str | None = None  # None: the tag with any value
    name: str = ""

    @classmethod
    def from_options(cls, tag: str, name: str) -> DownRule:
        tag = tag.strip()
        if "=" in tag:
            t, _, v = tag.partition("=")
            return cls(t.strip(), v.strip(), name.strip())
        return cls(tag, None, name.strip())

    def event_tags(self) -> list[dict[str, Any]]:
        """``event.get`` ``tags``: operator 1 = equals, 4 = exists."""
        if not self.tag:
            return []
        if self.value is None:
            return [{"tag": self.tag, "operator": 4}]
        return [{"tag": self.tag, "value": self.value, "operator": 1}]


async def _all(*aws: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run concurrently; on the first failure cancel the rest and raise that failure itself."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(a) for a in aws]
    except BaseExceptionGroup as group:
        raise _first(group) from None
    return [t.result() for t in tasks]


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    first: BaseException = group.exceptions[0]
    return first


@connector_shape
class ZabbixConnector(ConnectorDefaults):
    """``[sources.<name>] type = "zabbix"``: the uptime section from a Zabbix 6.0 – 7.x server."""

    sections = frozenset({"uptime"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        self._config_error: ConnectorError | None = None
        url = token = ""
        try:
            url = require_url(SYSTEM, source)
            token = require_secret(SYSTEM, name, source, "api_token")
        except ConnectorError as err:
            self._config_error = err
        self.site_tag = str(source.option("site_tag", "site"))
        self.class_tag = str(source.option("class_tag", "class"))
        self.down = DownRule.from_options(
            str(source.option("down_tag", "scope=availability")), str(source.option("down_name", ""))
        )
        self.sla_tag = str(source.option("sla_tag", "customer"))
        self.group_prefix = str(source.option("customer_group_prefix", "Customers/"))
        self.server_tz: ZoneInfo | None = None
        if source.option("server_timezone"):
            try:
                self.server_tz = zone(str(source.option("server_timezone")))
            except PeriodError as err:
                self._config_error = SourceDataError(SYSTEM, f"sources.{name}.server_timezone: {err}")
        try:
            page_size = int(source.option("page_size", 1000))
        except (TypeError, ValueError):
            page_size = 0
        http, self._httpx = source_http(
            SYSTEM, source, ctx, error_message=error_message, secrets=(token,) if token else ()
        )
        try:
            self.client = ZabbixClient(http, url or "http://unset.invalid", token, name=name, page_size=page_size)
        except ConnectorError as err:
            self._config_error = self._config_error or err
            self.client = ZabbixClient(http, url or "http://unset.invalid", token, name=name, page_size=1)

    # -- the Connector protocol --------------------------------------------------------------------
    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        if section not in self.sections:
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        if self._config_error is not None:
            raise self._config_error
        group_name = customer.ids.get(self.name)
        if not group_name:
            raise SourceDataError(SYSTEM, f"{customer.code} has no host group (set customers.ids.{self.name})")
        groups = await self.client.host_groups()
        group = next((g for g in groups if Fields(SYSTEM, g, "hostgroup.get item").text("name") == group_name), None)
        if group is None:
            raise SourceDataError(
                SYSTEM, f"no host group named {group_name!r} (customers.ids.{self.name} of {customer.code})"
            )
        groupid = Fields(SYSTEM, group, "hostgroup.get item").text("groupid")
        start, end = epoch(period.start), epoch(period.end)

        (hosts, maintenances), (problems, recoveries), sla = await _all(
            self._hosts_and_maintenances(groupid),
            self._events(groupid, start, end),
            self._sla(customer, group_name, period),
        )
        devices, host_groups = self._devices(hosts)
        if not devices:
            raise SourceDataError(SYSTEM, f"host group {group_name!r} has no monitored hosts")
        outages = self._outages(problems, recoveries, {d.id for d in devices})
        outages += self._maintenance_outages(maintenances, host_groups, start, end)
        sla_pct = sla_name = None
        target = targets.uptime_pct
        if sla is not None:
            sla_obj, sli = sla
            sla_name = sla_obj.text("name")
            excluded = _excluded_downtimes(sla_obj)
            sla_pct = _sla_pct(sla_name, sli, period, excluded, has_schedule=bool(sla_obj.array("schedule")))
            target = sla_obj.number("slo")  # the SLA's own objective takes precedence (reporting.models.Targets)
            for a, b in excluded:
                if a < end and b > start:
                    outages += [Outage(d.id, _ts(a), _ts(b), planned=True) for d in devices]
        return metrics.uptime_section(devices, outages, period, target, sla_pct=sla_pct, sla_name=sla_name)

    async def customer_records(self) -> list[SourceRecord]:
        """Host groups directly under ``customer_group_prefix`` (every group when it is empty)."""
        if self._config_error is not None:
            raise self._config_error
        out = []
        for g in await self.client.host_groups():
            f = Fields(SYSTEM, g, "hostgroup.get item")
            name = f.text("name")
            rest = name[len(self.group_prefix) :]
            if name.startswith(self.group_prefix) and rest and (not self.group_prefix or "/" not in rest):
                out.append(SourceRecord(SYSTEM, name, rest if self.group_prefix else name))
        return out

    async def probe(self) -> str:
        """``apiinfo.version`` plus one authenticated call: "Zabbix 7.0.5"."""
        if self._config_error is not None:
            raise self._config_error
        version = await self.client.version()
        await self.client.call("hostgroup.get", {"output": ["groupid"], "limit": 1})
        return "Zabbix " + ".".join(str(p) for p in version)

    async def aclose(self) -> None:
        await self._httpx.aclose()

    # -- reads ---------------------------------------------------------------------------------
    async def _hosts_and_maintenances(self, groupid: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        hosts = await self.client.hosts(groupid)
        groupids = {groupid}
        for h in hosts:
            groupids |= _groupids(Fields(SYSTEM, h, "host.get item"))
        return hosts, await self.client.maintenances(sorted(groupids, key=int))

    async def _events(self, groupid: str, start: int, end: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        problems = await self.client.problem_events(groupid, start, end - 1, self.down.event_tags(), self.down.name)
        rids = []
        for p in problems:
            r = Fields(SYSTEM, p, "event.get item").text("r_eventid")
            if r != "0":
                rids.append(r)
        recoveries = await self.client.events_by_id(rids) if rids else []
        return problems, recoveries

    async def _sla(
        self, customer: CustomerConfig, group_name: str, period: Period
    ) -> tuple[Fields, dict[str, Any]] | None:
        if not self.sla_tag:
            return None
        wanted = {customer.code, group_name}
        daily = []
        for s in await self.client.slas():
            f = Fields(SYSTEM, s, "sla.get item")
            tags = [Fields(SYSTEM, t, "sla.get item → service_tags") for t in f.array("service_tags")]
            names_customer = any(
                t.text("tag") == self.sla_tag and t.integer("operator") == 0 and t.text("value") in wanted for t in tags
            )
            if names_customer and f.integer("period") == 0 and f.integer("status") == 1:
                daily.append(f)
        if not daily:
            return None
        if len(daily) > 1:
            names = ", ".join(repr(f.text("name")) for f in daily)
            raise SourceDataError(SYSTEM, f"several daily SLAs name {customer.code} ({names}); keep one enabled")
        sla = daily[0]
        days = (period.end.date() - period.start.date()).days
        return sla, await self.client.sli(sla.text("slaid"), epoch(period.start), days)

    # -- mapping ---------------------------------------------------------------------------------
    def _tag(self, tags: list[Any], name: str, where: str) -> str:
        for t in tags:
            f = Fields(SYSTEM, t, where)
            if f.text("tag") == name:
                return f.text("value") or UNASSIGNED
        return UNASSIGNED

    def _devices(self, hosts: list[dict[str, Any]]) -> tuple[list[Device], dict[str, set[str]]]:
        devices = []
        host_groups: dict[str, set[str]] = {}
        for h in hosts:
            f = Fields(SYSTEM, h, "host.get item")
            hostid = f.text("hostid")
            if f.integer("status") != 0:
                continue  # not monitored: not a device of the report
            tags = f.array("tags")
            where = f"host.get item {hostid} → tags"
            devices.append(
                Device(
                    hostid,
                    f.text("name"),
                    self._tag(tags, self.site_tag, where),
                    self._tag(tags, self.class_tag, where),
                )
            )
            host_groups[hostid] = _groupids(f)
        return devices, host_groups

    def _outages(
        self, problems: list[dict[str, Any]], recoveries: list[dict[str, Any]], hostids: set[str]
    ) -> list[Outage]:
        back: dict[str, datetime] = {}
        for r in recoveries:
            f = Fields(SYSTEM, r, "event.get recovery item")
            back[f.text("eventid")] = f.time("clock")
        out: list[Outage] = []
        seen: set[str] = set()
        for p in problems:
            f = Fields(SYSTEM, p, "event.get item")
            eventid = f.text("eventid")
            if eventid in seen:
                continue
            seen.add(eventid)
            started = f.time("clock")
            rid = f.text("r_eventid")
            if rid == "0":
                ended = None
            elif rid in back:
                ended = back[rid]
            else:
                raise SourceDataError(SYSTEM, f"recovery event {rid} of problem {eventid} is missing from event.get")
            for h in f.array("hosts"):
                hostid = Fields(SYSTEM, h, f"event.get item {eventid} → hosts").text("hostid")
                if hostid in hostids:
                    out.append(Outage(hostid, started, ended))
        return out

    def _maintenance_outages(
        self, maintenances: list[dict[str, Any]], host_groups: dict[str, set[str]], start: int, end: int
    ) -> list[Outage]:
        out = []
        for m in maintenances:
            f = Fields(SYSTEM, m, "maintenance.get item")
            if not self._maintenance_covers_down(f):
                continue
            windows = _maintenance_windows(f, start, end, self.server_tz, self.name)
            if not windows:
                continue
            hosts = {Fields(SYSTEM, h, "maintenance.get item → hosts").text("hostid") for h in f.array("hosts")}
            groups = _groupids(f)
            for hostid, hgroups in host_groups.items():
                if hostid in hosts or hgroups & groups:
                    out += [Outage(hostid, _ts(a), _ts(b), planned=True) for a, b in windows]
        return out

    def _maintenance_covers_down(self, m: Fields) -> bool:
        """A maintenance limited to problem tags covers "device down" only when one of its tags
        is the ``down_tag`` (equal value, or a "contains" match)."""
        tags = m.array("tags")  # selectTags: [] when none, absent only if renamed
        if not tags:
            return True
        for t in tags:
            f = Fields(SYSTEM, t, "maintenance.get item → tags")
            if f.text("tag") != self.down.tag or not self.down.tag:
                continue
            value = f.opt_text("value") or ""
            op = f.integer("operator")
            if (
                self.down.value is None
                or (op == 0 and value == self.down.value)
                or (op == 2 and value in self.down.value)
            ):
                return True
        return False


def _groupids(f: Fields) -> set[str]:
    """The group ids of a host or maintenance: ``hostgroups`` (``selectHostGroups``) or
    ``groups`` (``selectGroups``), whichever the server answered with."""
    key = "hostgroups" if f.has("hostgroups") or not f.has("groups") else "groups"
    return {Fields(SYSTEM, g, f"{f.where} → {key}").text("groupid") for g in f.array(key)}


def _ts(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _maintenance_windows(
    m: Fields, start: int, end: int, server_tz: ZoneInfo | None, source_name: str = SYSTEM
) -> list[tuple[int, int]]:
    """The windows of a maintenance that touch ``[start, end)``, cut to its active range
    ``[active_since, active_till)`` (epoch seconds).

    One-time periods (``timeperiod_type`` 0): ``[start_date, start_date + period)``. Recurring
    ones (2 daily, 3 weekly, 4 monthly) are evaluated the way the Zabbix server does, in the
    server's local time, which the API does not report: ``server_timezone`` must be configured,
    otherwise a recurring period active during the report period is an error (never ignored)."""
    since, till = m.integer("active_since"), m.integer("active_till")
    out = []
    for tp in m.array("timeperiods"):
        t = Fields(SYSTEM, tp, f"maintenance.get item {m.text('maintenanceid')} → timeperiods")
        kind = t.integer("timeperiod_type")
        if kind == 0:
            candidates = [(t.integer("start_date"), t.integer("start_date") + t.integer("period"))]
        elif since >= end or till <= start:
            continue
        elif server_tz is None:
            raise SourceDataError(
                SYSTEM,
                f"maintenance {m.text('name')!r} ({m.text('maintenanceid')}) repeats (timeperiod_type {kind}) and "
                f"the Zabbix server's timezone is unknown: set sources.{source_name}.server_timezone to evaluate it",
            )
        else:
            candidates = _recurring(t, kind, since, start, end, server_tz)
        for a, b in candidates:
            a, b = max(a, since, start), min(b, till, end)
            if a < b:
                out.append((a, b))
    return out


def _recurring(t: Fields, kind: int, since: int, start: int, end: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """Occurrences of a daily/weekly/monthly time period whose start falls on a local day from
    (start − period) to end, in the server's timezone ``tz``:

    - daily (2): every ``every`` days, counted from the day of ``active_since``;
    - weekly (3): on the ``dayofweek`` bits (bit 0 = Monday) of every ``every``-th week, counted
      from the Monday of ``active_since``'s week;
    - monthly (4): in the ``month`` bits (bit 0 = January), on day ``day``, or (``day`` 0) on the
      ``dayofweek`` bits of week ``every`` of the month (1–4, 5 = the last such weekday).

    Each starts at ``start_time`` seconds after local midnight and lasts ``period`` seconds."""
    period, start_time = t.integer("period"), t.integer("start_time")
    every = t.integer("every") if t.has("every") else 1
    first_day = datetime.fromtimestamp(since, tz).date()
    day = datetime.fromtimestamp(start - period, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz).date()
    out = []
    while day <= last:
        if day >= first_day and _occurs(t, kind, every, day, first_day):
            a = int(datetime.combine(day, time(0), tzinfo=tz).timestamp()) + start_time
            out.append((a, a + period))
        day += timedelta(days=1)
    return out


def _occurs(t: Fields, kind: int, every: int, day: date, first_day: date) -> bool:
    if kind == 2:
        return (day - first_day).days % max(every, 1) == 0
    dow_bits = t.integer("dayofweek") if t.has("dayofweek") else 0
    if kind == 3:
        weeks = ((day - timedelta(days=day.weekday())) - (first_day - timedelta(days=first_day.weekday()))).days // 7
        return weeks % max(every, 1) == 0 and bool(dow_bits & (1 << day.weekday()))
    if kind == 4:
        if not t.integer("month") & (1 << (day.month - 1)):
            return False
        dom = t.integer("day") if t.has("day") else 0
        if dom:
            return day.day == dom
        if not dow_bits & (1 << day.weekday()):
            return False
        if every == 5:  # the last such weekday of the month
            return (day + timedelta(days=7)).month != day.month
        return (day.day - 1) // 7 + 1 == every
    raise SourceDataError(SYSTEM, f"maintenance time period of unknown timeperiod_type {kind}")


def _excluded_downtimes(sla: Fields) -> list[tuple[int, int]]:
    out = []
    for d in sla.array("excluded_downtimes"):
        f = Fields(SYSTEM, d, "sla.get item → excluded_downtimes")
        out.append((f.integer("period_from"), f.integer("period_to")))
    return [(int(a.timestamp()), int(b.timestamp())) for a, b in metrics.merge((_ts(a), _ts(b)) for a, b in out)]


def _overlap(a: int, b: int, windows: Iterable[tuple[int, int]]) -> int:
    return sum(max(0, min(b, y) - max(a, x)) for x, y in windows)


def _sla_pct(
    name: str, sli: dict[str, Any], period: Period, excluded: list[tuple[int, int]], has_schedule: bool
) -> float:
    """100 × Σ uptime / Σ (uptime + downtime) over the slices and services of ``sla.getsli``.

    The slices must tile the period exactly (a daily SLA in the customer's timezone). Without a
    schedule every cell must cover its whole slice minus the excluded downtimes; a shorter cell
    means the service did not exist yet (or the slice is not over): partial data, refused."""
    where = f"sla.getsli of SLA {name!r}"
    f = Fields(SYSTEM, sli, where)
    periods = [Fields(SYSTEM, p, f"{where} → periods") for p in f.array("periods")]
    serviceids = f.array("serviceids")
    rows = f.array("sli")
    bounds = [(p.integer("period_from"), p.integer("period_to")) for p in periods]
    start, end = epoch(period.start), epoch(period.end)
    tiles = (
        bool(bounds)
        and bounds[0][0] == start
        and bounds[-1][1] == end
        and all(b[1] == c[0] for b, c in zip(bounds, bounds[1:], strict=False))
    )
    if not tiles:
        raise SourceDataError(
            SYSTEM,
            f"{where}: its slices do not line up with the week {period.start.isoformat()} – {period.end.isoformat()} "
            f"(use a daily SLA in the customer's timezone {period.timezone})",
        )
    if not serviceids:
        raise SourceDataError(SYSTEM, f"{where}: the SLA covers no services")
    if len(rows) != len(bounds):
        raise SourceDataError(SYSTEM, f"{where}: {len(rows)} rows of 'sli' for {len(bounds)} periods")
    up = down = 0
    for (a, b), row in zip(bounds, rows, strict=True):
        if not isinstance(row, list) or len(row) != len(serviceids):
            raise SourceDataError(SYSTEM, f"{where}: a row of 'sli' does not have one cell per service")
        expected = (b - a) - _overlap(a, b, excluded)
        for sid, cell in zip(serviceids, row, strict=True):
            c = Fields(SYSTEM, cell, f"{where} → sli cell")
            u, d = c.integer("uptime"), c.integer("downtime")
            if not has_schedule and u + d != expected:
                day = datetime.fromtimestamp(a, period.start.tzinfo).date().isoformat()
                raise SourceDataError(
                    SYSTEM,
                    f"{where}: service {sid} has {u + d} s of data for {day}, not {expected} s "
                    "(the service did not exist for the whole week, or the day is not over)",
                )
            up += u
            down += d
    if up + down <= 0:
        raise SourceDataError(SYSTEM, f"{where}: no scheduled time in the week")
    return 100.0 * up / (up + down)

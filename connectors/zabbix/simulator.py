"""A loopback Zabbix JSON-RPC API over the sandbox dataset (``POST /api_jsonrpc.php``).

It speaks the wire format of a real Zabbix 6.0 / 6.4 / 7.0 / 7.2 server (``version``), as far as
the connector uses it:

- ``apiinfo.version`` must be called without credentials; every other method needs the API token:
  in the body's ``auth`` on 6.0 – 6.2 (the ``Authorization`` header is ignored there), as
  ``Authorization: Bearer`` on 6.4+ (the body field is still accepted on 6.4 – 7.0 and refused with
  ``-32600`` on 7.2+). A wrong token answers HTTP 200 with ``-32602 Invalid params. / Not
  authorised.`` (6.0's spelling; "Not authorized." from 6.4). ``token_expired`` makes every
  authenticated call answer ``-32500 Application error. / API token expired.``.
- Errors are HTTP 200 with ``{"jsonrpc": "2.0", "error": {"code", "message", "data"}, "id"}``;
  ids, clocks and enums are JSON strings as the real API returns them; ``sla.getsli`` computes
  its slices and cells like ``CSla::getSli`` (slices at local midnight of the SLA's timezone,
  ``period_to`` aligned down and its slice included, ``serviceids`` as integers).
- No pages: ``event.get`` honours ``limit``, ``sortfield``, ``eventid_from`` and the time filters.
  Like a PHP frontend with a small ``memory_limit``, a call that would return more than
  ``page_size`` events without a ``limit`` of at most ``page_size`` dies with HTTP 500 and PHP's
  "Allowed memory size exhausted" page, so a client must read in pages.
- HOOLI's planted outage (``dataset.fails``): time-windowed calls about HOOLI's group or hosts for
  the anchor week answer HTTP 502 with nginx's HTML page.
- Injected faults (``sim.faults``) answer with an nginx-style HTML page, as a reverse proxy does.

The sandbox MSP in Zabbix terms: one host group per customer (``Customers/<name>``) plus a nested
``Customers/<name>/Network`` group; one host per device with tags ``customer``/``site``/``class``;
per host an "Unavailable by ICMP ping" trigger (tags ``scope=availability``, ``host=<host>``) and
a "High CPU utilization" trigger (``scope=performance``) whose problems must NOT count; every
unplanned outage is a problem/recovery event pair (overlapping outages of one device merged, as a
single-problem trigger does); every planned outage is a one-time maintenance on that host.
Customers in ``sla_customers`` also have one service per host (created at onboarding) and an
enabled daily SLA in their timezone with service tag ``customer=<code>``; the services, like
Zabbix's, know nothing of host maintenance. Decoys: a disabled daily SLA and a weekly SLA (both
to be ignored), a recurring maintenance that ended long ago, and a maintenance limited to
``scope=performance`` problems (neither changes planned time).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from connectors.sandbox.dataset import SandboxCustomer, SandboxDataset
from connectors.sim.base import Simulator
from reporting.metrics import merge
from reporting.period import zone

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
PHP_MEMORY = (
    "<br />\n<b>Fatal error</b>:  Allowed memory size of 134217728 bytes exhausted (tried to allocate "
    "20480 bytes) in <b>/usr/share/zabbix/include/classes/api/CApiService.php</b> on line <b>1108</b><br />\n"
)
REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}
CONTENT_TYPES = ("application/json-rpc", "application/json", "application/jsonrequest")
DEFAULT_SLA_CUSTOMERS = ("ACME", "STARK", "TYRELL")

Version = tuple[int, int, int]


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str):
        super().__init__(data)
        self.code, self.message, self.data = code, message, data


class Answer(Exception):
    """A non-JSON-RPC answer (an HTML error page), raised from deep inside a method."""

    def __init__(self, response: web.Response):
        super().__init__(response.status)
        self.response = response


def _params_error(data: str) -> RpcError:
    return RpcError(-32602, "Invalid params.", data)


def _unexpected(name: str) -> RpcError:
    return _params_error(f'Invalid parameter "/": unexpected parameter "{name}".')


def _epoch(ts: datetime) -> int:
    return int(ts.timestamp())


def _list_of(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _ids(v: Any) -> set[str] | None:
    return None if v is None else {str(x) for x in _list_of(v)}


@dataclass
class _Event:
    eventid: int
    clock: int
    value: int  # 1 problem, 0 recovery
    objectid: str
    name: str
    severity: str
    hostid: str
    tags: list[dict[str, str]]
    r_eventid: int = 0
    r_clock: int | None = None  # for problems: when it recovered
    suppressed: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "eventid": str(self.eventid),
            "source": "0",
            "object": "0",
            "objectid": self.objectid,
            "clock": str(self.clock),
            "value": str(self.value),
            "acknowledged": "0",
            "ns": "0",
            "name": self.name,
            "severity": self.severity,
            "r_eventid": str(self.r_eventid),
            "c_eventid": "0",
            "correlationid": "0",
            "userid": "0",
            "suppressed": "1" if self.suppressed else "0",
            "opdata": "",
            "urls": [],
        }


@dataclass
class _Host:
    hostid: str
    host: str
    code: str
    site: str
    klass: str
    groupids: list[str]
    availability_trigger: str
    cpu_trigger: str
    problems: list[tuple[int, int]] = field(default_factory=list)  # merged unplanned outages (epoch)


@dataclass
class _Service:
    serviceid: int
    name: str
    hostid: str
    code: str
    created_at: int
    tags: list[dict[str, str]]


class ZabbixSimulator(Simulator):
    system = "zabbix"

    def __init__(
        self,
        dataset: SandboxDataset,
        page_size: int = 3,
        version: str = "7.0.5",
        sla_customers: Iterable[str] = DEFAULT_SLA_CUSTOMERS,
        now: float | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size
        self.version = version
        self.sla_customers = tuple(sla_customers)
        anchor_over = datetime.combine(dataset.anchor_end + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
        self.now = int(now if now is not None else max(time.time(), anchor_over.timestamp()))
        self.token = hashlib.sha256(self.secret.encode()).hexdigest()  # Zabbix API tokens: 64 hex digits
        self.token_expired = False
        self.calls: list[dict[str, Any]] = []  # every JSON-RPC call: method, params, auth ("body"/"bearer"/None)
        self._build()

    # -- the sandbox in Zabbix objects -------------------------------------------------------------
    @property
    def v(self) -> Version:
        m = re.match(r"(\d+)\.(\d+)\.(\d+)", self.version)
        assert m, self.version
        return int(m[1]), int(m[2]), int(m[3])

    def _build(self) -> None:
        ds = self.dataset
        self.customers: list[SandboxCustomer] = ds.customers_in("zabbix")
        self.groups: list[dict[str, str]] = [
            {"groupid": "2", "name": "Linux servers"},
            {"groupid": "4", "name": "Zabbix servers"},
            {"groupid": "5", "name": "Discovered hosts"},
        ]
        self.group_of: dict[str, str] = {}  # customer code -> groupid
        self.code_of_group: dict[str, str] = {}
        self.hosts: dict[str, _Host] = {}
        self.host_of_device: dict[str, str] = {}
        hostid = 10100
        raw: list[tuple[int, int, str, _Host, str]] = []  # (clock, kind, ...) for event ids in time order
        for i, c in enumerate(self.customers):
            gid, net = str(100 + 2 * i), str(101 + 2 * i)
            self.groups += [
                {"groupid": gid, "name": c.ids["zabbix"]},
                {"groupid": net, "name": f"{c.ids['zabbix']}/Network"},
            ]
            self.group_of[c.code] = gid
            self.code_of_group[gid] = self.code_of_group[net] = c.code
            g = ds.gen(c.code)
            for d in g.devices:
                hostid += 1
                hid = str(hostid)
                groups = [gid] + ([net] if d.device_class in ("firewall", "switch") else [])
                h = _Host(hid, d.name, c.code, d.site, d.device_class, groups, str(hostid + 10000), str(hostid + 20000))
                self.hosts[hid] = h
                self.host_of_device[d.id] = hid
            by_dev: dict[str, list[tuple[datetime, datetime]]] = {}
            for o in g.outages:
                if not o.planned:
                    by_dev.setdefault(o.device_id, []).append((o.start, o.end))  # type: ignore[arg-type]  # they all end
            for dev, ivs in by_dev.items():
                h = self.hosts[self.host_of_device[dev]]
                h.problems = [(_epoch(a), _epoch(b)) for a, b in merge(ivs)]
                for a, b in h.problems:
                    raw.append((a, b, "avail", h, ""))
            # noise: CPU problems that are not "device down"
            rng = random.Random(f"{c.code}:zabbix-noise")  # noqa: S311 - deterministic sandbox data
            hosts = [self.hosts[self.host_of_device[d.id]] for d in g.devices]
            for k in g.weeks:
                for _ in range(2):
                    h = hosts[rng.randrange(len(hosts))]
                    t0 = g.at(k, rng.randrange(7), rng.uniform(1, 22))
                    a = _epoch(t0)
                    raw.append((a, a + rng.randrange(300, 3600), "cpu", h, ""))
        # event ids grow with time, as the server assigns them
        self.events: list[_Event] = []
        self.by_id: dict[int, _Event] = {}
        seq = 1_000_000
        for a, b, kind, h, _ in sorted(raw, key=lambda r: (r[0], r[3].hostid, r[2])):
            seq += 1
            if kind == "avail":
                name, sev, trig = "Unavailable by ICMP ping", "4", h.availability_trigger
                tags = [{"tag": "scope", "value": "availability"}, {"tag": "host", "value": h.host}]
            else:
                name, sev, trig = f"High CPU utilization (over 90% for 5m) on {h.host}", "2", h.cpu_trigger
                tags = [{"tag": "scope", "value": "performance"}, {"tag": "host", "value": h.host}]
            ev = _Event(seq, a, 1, trig, name, sev, h.hostid, tags, r_clock=b)
            self.events.append(ev)
        # recoveries get their own (later) ids
        for ev in sorted(list(self.events), key=lambda e: (e.r_clock or 0, e.eventid)):
            seq += 1
            assert ev.r_clock is not None
            rec = _Event(seq, ev.r_clock, 0, ev.objectid, ev.name, "0", ev.hostid, ev.tags)
            ev.r_eventid = seq
            self.events.append(rec)
        self.events.sort(key=lambda e: e.eventid)
        self.by_id = {e.eventid: e for e in self.events}
        self._build_maintenances()
        self._build_slas()

    def _build_maintenances(self) -> None:
        self.maintenances: list[dict[str, Any]] = []
        mid = 500
        for c in self.customers:
            g = self.dataset.gen(c.code)
            for o in g.outages:
                if not o.planned:
                    continue
                h = self.hosts[self.host_of_device[o.device_id]]
                a, b = _epoch(o.start), _epoch(o.end)  # type: ignore[arg-type]  # sandbox outages all end
                mid += 1
                self.maintenances.append(
                    self._maintenance(
                        mid,
                        f"Firmware update {h.host} {o.start.date().isoformat()}",
                        a - 86400,
                        b + 86400,
                        [{"timeperiod_type": "0", "start_date": str(a), "period": str(b - a)}],
                        hosts=[h.hostid],
                    )
                )
            if c.code == "GLOBEX":  # recurring, but over long before the sandbox's history
                mid += 1
                since = _epoch(datetime(2025, 1, 6, tzinfo=zone(c.timezone)))
                self.maintenances.append(
                    self._maintenance(
                        mid,
                        "Weekly patch window (2025)",
                        since,
                        since + 180 * 86400,
                        [
                            {
                                "timeperiod_type": "3",
                                "every": "1",
                                "dayofweek": "64",
                                "start_time": "7200",
                                "period": "7200",
                            }
                        ],
                        groups=[self.group_of[c.code]],
                    )
                )
            if c.code == "WAYNE":  # limited to CPU problems: not planned device downtime
                mid += 1
                start = _epoch(g.at(0, 3, 1))
                self.maintenances.append(
                    self._maintenance(
                        mid,
                        "Database patching (CPU alerts muted)",
                        start - 3600,
                        start + 5 * 3600,
                        [{"timeperiod_type": "0", "start_date": str(start), "period": str(3 * 3600)}],
                        groups=[self.group_of[c.code]],
                        tags=[{"tag": "scope", "operator": "0", "value": "performance"}],
                    )
                )

    @staticmethod
    def _maintenance(
        mid: int,
        name: str,
        since: int,
        till: int,
        periods: list[dict[str, str]],
        hosts: Iterable[str] = (),
        groups: Iterable[str] = (),
        tags: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        full = []
        for i, p in enumerate(periods):
            tp = {
                "timeperiodid": str(mid * 10 + i),
                "timeperiod_type": "0",
                "every": "1",
                "month": "0",
                "dayofweek": "0",
                "day": "0",
                "start_time": "0",
                "period": "3600",
                "start_date": "0",
            }
            tp.update(p)
            full.append(tp)
        return {
            "maintenanceid": str(mid),
            "name": name,
            "maintenance_type": "0",
            "description": "",
            "active_since": str(since - since % 60),
            "active_till": str(till - till % 60),
            "tags_evaltype": "0",
            "_timeperiods": full,
            "_hosts": list(hosts),
            "_groups": list(groups),
            "_tags": tags or [],
        }

    def _build_slas(self) -> None:
        self.services: list[_Service] = []
        self.slas: list[dict[str, Any]] = []
        sid = 0
        slaid = 0
        for c in self.customers:
            if c.code not in self.sla_customers:
                continue
            g = self.dataset.gen(c.code)
            created = _epoch(g.onboarded)
            for d in g.devices:
                sid += 1
                h = self.hosts[self.host_of_device[d.id]]
                tags = [
                    {"tag": "customer", "value": c.code},
                    {"tag": "site", "value": h.site},
                    {"tag": "class", "value": h.klass},
                ]
                self.services.append(_Service(sid, f"{h.host} availability", h.hostid, c.code, created, tags))
            slaid += 1
            self.slas.append(self._sla(slaid, f"{c.name} daily", "0", "99.5", created, c.timezone, "1", c.code))
            if c.code == "ACME":  # an old, disabled SLA that also names ACME: status 0 must be ignored
                slaid += 1
                self.slas.append(self._sla(slaid, "Acme legacy (disabled)", "0", "99.5", created, "UTC", "0", c.code))
        wayne = next((c for c in self.customers if c.code == "WAYNE"), None)
        if wayne is not None:  # weekly SLAs start on Sunday: no Monday-Sunday week, ignored
            slaid += 1
            self.slas.append(
                self._sla(
                    slaid,
                    "Wayne weekly",
                    "1",
                    "99.9",
                    _epoch(self.dataset.gen("WAYNE").onboarded),
                    wayne.timezone,
                    "1",
                    "WAYNE",
                )
            )

    @staticmethod
    def _sla(
        slaid: int, name: str, period: str, slo: str, effective: int, tz: str, status: str, code: str
    ) -> dict[str, Any]:
        return {
            "slaid": str(slaid),
            "name": name,
            "period": period,
            "slo": slo,
            "effective_date": str(effective),
            "timezone": tz,
            "status": status,
            "description": "",
            "_service_tags": [{"tag": "customer", "operator": "0", "value": code}],
            "_schedule": [],
            "_excluded": [],
        }

    # -- server --------------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api_jsonrpc.php", self._rpc)

    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        reason = REASONS.get(status, "Error")
        page = (
            f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return page, "text/html"

    def source_config(self) -> dict[str, Any]:
        return {
            "type": "zabbix",
            "url": self.url,
            "api_token": self.token,
            "page_size": self.page_size,
            "concurrency": 8,
        }

    async def _rpc(self, request: web.Request) -> web.StreamResponse:
        if request.content_type not in CONTENT_TYPES:
            return web.Response(status=412, text="")
        rid: Any = None
        try:
            try:
                body = json.loads(await request.text())
            except ValueError:
                raise RpcError(
                    -32700, "Parse error.", "Invalid JSON. An error occurred on the server while parsing the JSON text."
                ) from None
            if not isinstance(body, dict):
                raise RpcError(-32600, "Invalid request.", 'Invalid parameter "/": an array is expected.')
            rid = body.get("id")
            if body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str) or "id" not in body:
                raise RpcError(-32600, "Invalid request.", 'Invalid parameter "/": the parameter "jsonrpc" is missing.')
            method, params = body["method"], body.get("params", {})
            style = self._authenticate(method, body, request.headers.get("Authorization"))
            self.calls.append({"method": method, "params": params, "auth": style, "id": rid})
            result = self._dispatch(method, params)
        except RpcError as err:
            return self.json(
                {"jsonrpc": "2.0", "error": {"code": err.code, "message": err.message, "data": err.data}, "id": rid}
            )
        except Answer as a:
            return a.response
        return self.json({"jsonrpc": "2.0", "result": result, "id": rid})

    def _authenticate(self, method: str, body: dict[str, Any], header: str | None) -> str | None:
        v = self.v
        if v >= (7, 2, 0) and "auth" in body:
            raise RpcError(-32600, "Invalid request.", 'Invalid parameter "/": unexpected parameter "auth".')
        if method == "apiinfo.version":
            if body.get("auth") is not None:
                raise _params_error('The "apiinfo.version" method must be called without the "auth" parameter.')
            return None
        token, style = None, None
        if v >= (6, 4, 0) and header and header.startswith("Bearer "):
            token, style = header[len("Bearer ") :], "bearer"
        elif body.get("auth") is not None:
            token, style = body["auth"], "body"
        if token != self.token:
            raise _params_error("Not authorised." if v < (6, 4, 0) else "Not authorized.")
        if self.token_expired:
            raise RpcError(-32500, "Application error.", "API token expired.")
        return style

    def _dispatch(self, method: str, params: Any) -> Any:
        handlers = {
            "apiinfo.version": lambda p: self.version,
            "hostgroup.get": self._hostgroup_get,
            "host.get": self._host_get,
            "maintenance.get": self._maintenance_get,
            "event.get": self._event_get,
            "sla.get": self._sla_get,
            "sla.getsli": self._sla_getsli,
        }
        handler = handlers.get(method)
        if handler is None:
            api = method.split(".")[0]
            raise RpcError(-32601, "Method not found.", f'Incorrect API "{api}".')
        if method != "apiinfo.version" and not isinstance(params, dict):
            raise _params_error('Invalid parameter "/": an array is expected.')
        return handler(params)

    # -- helpers ---------------------------------------------------------------------------------------
    def _check(self, params: dict[str, Any], allowed: set[str]) -> None:
        """Unknown parameters are refused. ``selectHostGroups`` exists from 6.2; ``selectGroups``
        (deprecated from 6.2) was removed from host.get and maintenance.get in 7.2."""
        for k in params:
            if k not in allowed:
                raise _unexpected(k)
            if k == "selectHostGroups" and self.v < (6, 2, 0):
                raise _unexpected(k)
            if k == "selectGroups" and self.v >= (7, 2, 0):
                raise _unexpected(k)

    @staticmethod
    def _select_groups(row: dict[str, Any], p: dict[str, Any], groupids: list[str]) -> None:
        if p.get("selectHostGroups") is not None:
            row["hostgroups"] = [{"groupid": g} for g in groupids]
        if p.get("selectGroups") is not None:
            row["groups"] = [{"groupid": g} for g in groupids]

    @staticmethod
    def _project(row: dict[str, Any], output: Any) -> dict[str, Any]:
        if output is None or output == "extend":
            return {k: v for k, v in row.items() if not k.startswith("_")}
        if isinstance(output, list):
            return {k: row[k] for k in output if k in row}
        return {}

    def _limit(self, rows: list[Any], params: dict[str, Any]) -> list[Any]:
        limit = params.get("limit")
        if limit is not None:
            rows = rows[: int(limit)]
        return rows

    def _hooli_fails(self, groupids: set[str] | None, hostids: set[str] | None, window_start: Any) -> None:
        """The planted outage: HOOLI's Zabbix answers 502 for anchor-week windows."""
        if window_start is None:
            return
        codes = {self.code_of_group[g] for g in (groupids or ()) if g in self.code_of_group}
        codes |= {self.hosts[h].code for h in (hostids or ()) if h in self.hosts}
        for code in codes:
            c = next(c for c in self.customers if c.code == code)
            start = datetime.fromtimestamp(int(window_start), zone(c.timezone))
            if self.dataset.fails(code, "zabbix", start):
                raise Answer(web.Response(status=502, text=NGINX_502, content_type="text/html"))

    # -- methods ----------------------------------------------------------------------------------------
    def _hostgroup_get(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        self._check(p, {"output", "groupids", "filter", "search", "limit", "sortfield", "sortorder", "preservekeys"})
        rows = list(self.groups)
        if (ids := _ids(p.get("groupids"))) is not None:
            rows = [g for g in rows if g["groupid"] in ids]
        names = (p.get("filter") or {}).get("name")
        if names is not None:
            rows = [g for g in rows if g["name"] in _list_of(names)]
        return self._limit([self._project(g, p.get("output", "extend")) for g in rows], p)

    def _host_row(self, h: _Host) -> dict[str, Any]:
        return {
            "hostid": h.hostid,
            "host": h.host,
            "name": h.host,
            "status": "0",
            "maintenance_status": "0",
            "description": "",
            "proxy_hostid": "0",
            "flags": "0",
            "inventory_mode": "-1",
        }

    def _host_get(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        self._check(
            p,
            {
                "output",
                "groupids",
                "hostids",
                "filter",
                "selectTags",
                "selectHostGroups",
                "selectGroups",
                "limit",
                "sortfield",
                "sortorder",
                "preservekeys",
            },
        )
        rows = list(self.hosts.values())
        if (gids := _ids(p.get("groupids"))) is not None:
            rows = [h for h in rows if set(h.groupids) & gids]
        if (hids := _ids(p.get("hostids"))) is not None:
            rows = [h for h in rows if h.hostid in hids]
        out = []
        for h in rows:
            row = self._project(self._host_row(h), p.get("output", "extend"))
            if p.get("selectTags") is not None:
                row["tags"] = [
                    {"tag": "customer", "value": h.code},
                    {"tag": "site", "value": h.site},
                    {"tag": "class", "value": h.klass},
                ]
            self._select_groups(row, p, h.groupids)
            out.append(row)
        return self._limit(out, p)

    def _maintenance_get(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        self._check(
            p,
            {
                "output",
                "groupids",
                "hostids",
                "maintenanceids",
                "selectTimeperiods",
                "selectHosts",
                "selectHostGroups",
                "selectGroups",
                "selectTags",
                "limit",
                "sortfield",
                "sortorder",
                "preservekeys",
            },
        )
        rows = list(self.maintenances)
        gids, hids = _ids(p.get("groupids")), _ids(p.get("hostids"))
        if gids is not None or hids is not None:

            def linked(m: dict[str, Any]) -> bool:
                ok = False
                if gids is not None:  # linked to the groups, or to hosts in them (CMaintenance::get)
                    ok = bool(set(m["_groups"]) & gids) or any(set(self.hosts[h].groupids) & gids for h in m["_hosts"])
                if hids is not None:
                    ok = ok or bool(set(m["_hosts"]) & hids)
                return ok

            rows = [m for m in rows if linked(m)]
        out = []
        for m in rows:
            row = self._project(m, p.get("output", "extend"))
            if p.get("selectTimeperiods") is not None:
                row["timeperiods"] = [dict(t) for t in m["_timeperiods"]]
            if p.get("selectHosts") is not None:
                row["hosts"] = [{"hostid": h} for h in m["_hosts"]]
            self._select_groups(row, p, m["_groups"])
            if p.get("selectTags") is not None:
                row["tags"] = [dict(t) for t in m["_tags"]]
            out.append(row)
        return self._limit(out, p)

    @staticmethod
    def _tags_match(tags: list[dict[str, str]], wanted: list[dict[str, Any]], evaltype: int) -> bool:
        """``tags`` filter of get methods: operators 0 like, 1 equal, 2 not like, 3 not equal,
        4 exists, 5 not exists; And/Or (0): conditions on the same tag name OR-ed, names AND-ed."""

        def one(w: dict[str, Any]) -> bool:
            op = int(w.get("operator", 0))
            name, value = str(w.get("tag", "")), str(w.get("value", ""))
            vals = [t["value"] for t in tags if t["tag"] == name]
            if op == 4:
                return bool(vals)
            if op == 5:
                return not vals
            if op == 1:
                return value in vals
            if op == 3:
                return value not in vals
            if op == 2:
                return not any(value.lower() in v.lower() for v in vals)
            return any(value.lower() in v.lower() for v in vals)

        if not wanted:
            return True
        if evaltype == 2:
            return any(one(w) for w in wanted)
        by_name: dict[str, list[dict[str, Any]]] = {}
        for w in wanted:
            by_name.setdefault(str(w.get("tag", "")), []).append(w)
        return all(any(one(w) for w in ws) for ws in by_name.values())

    def _event_get(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        self._check(
            p,
            {
                "eventids",
                "groupids",
                "hostids",
                "objectids",
                "source",
                "object",
                "value",
                "time_from",
                "time_till",
                "problem_time_from",
                "problem_time_till",
                "eventid_from",
                "eventid_till",
                "tags",
                "evaltype",
                "search",
                "searchWildcardsEnabled",
                "filter",
                "output",
                "selectHosts",
                "selectTags",
                "sortfield",
                "sortorder",
                "limit",
                "severities",
                "suppressed",
                "preservekeys",
            },
        )
        if str(p.get("source", 0)) != "0" or str(p.get("object", 0)) != "0":
            return []
        gids, hids = _ids(p.get("groupids")), _ids(p.get("hostids"))
        ptf, ptt = p.get("problem_time_from"), p.get("problem_time_till")
        if (ptf is None) != (ptt is None):
            raise _params_error('Invalid parameter "/": both "problem_time_from" and "problem_time_till" are required.')
        self._hooli_fails(gids, hids, ptf if ptf is not None else p.get("time_from"))
        values = {int(v) for v in _list_of(p.get("value"))} or ({1} if ptf is not None else {0, 1})
        rows = [e for e in self.events if e.value in values]
        if (eids := _ids(p.get("eventids"))) is not None:
            rows = [e for e in rows if str(e.eventid) in eids]
        if gids is not None:
            rows = [e for e in rows if set(self.hosts[e.hostid].groupids) & gids]
        if hids is not None:
            rows = [e for e in rows if e.hostid in hids]
        if (oids := _ids(p.get("objectids"))) is not None:
            rows = [e for e in rows if e.objectid in oids]
        if p.get("time_from") is not None:
            rows = [e for e in rows if e.clock >= int(p["time_from"])]
        if p.get("time_till") is not None:
            rows = [e for e in rows if e.clock <= int(p["time_till"])]
        if ptf is not None and ptt is not None:
            rows = [
                e
                for e in rows
                if e.value == 1
                and e.clock <= int(ptt)
                and (e.r_eventid == 0 or self.by_id[e.r_eventid].clock >= int(ptf))
            ]
        if p.get("eventid_from") is not None:
            rows = [e for e in rows if e.eventid >= int(p["eventid_from"])]
        if p.get("eventid_till") is not None:
            rows = [e for e in rows if e.eventid <= int(p["eventid_till"])]
        if p.get("tags"):
            rows = [e for e in rows if self._tags_match(e.tags, p["tags"], int(p.get("evaltype", 0)))]
        search = (p.get("search") or {}).get("name")
        if search:
            pattern = re.escape(str(search).lower())
            if p.get("searchWildcardsEnabled"):
                pattern = pattern.replace(r"\*", ".*")
            rows = [e for e in rows if re.search(pattern, e.name.lower())]
        fields = _list_of(p.get("sortfield"))
        for f in fields:
            if f not in ("eventid", "objectid", "clock"):
                raise _params_error(
                    'Invalid parameter "/sortfield/1": value must be one of "eventid", "objectid", "clock".'
                )
        desc = str(p.get("sortorder", "ASC")).upper() == "DESC"
        if fields:
            rows.sort(key=lambda e: tuple(int(getattr(e, f)) for f in fields), reverse=desc)
        limit = p.get("limit")
        if len(rows) > self.page_size and (limit is None or int(limit) > self.page_size):
            raise Answer(web.Response(status=500, text=PHP_MEMORY, content_type="text/html"))
        rows = self._limit(rows, p)
        out = []
        for e in rows:
            row = self._project(e.row(), p.get("output", "extend"))
            if p.get("selectHosts") is not None:
                h = self.hosts[e.hostid]
                row["hosts"] = [self._project({"hostid": h.hostid, "host": h.host, "name": h.host}, p["selectHosts"])]
            if p.get("selectTags") is not None:
                row["tags"] = [dict(t) for t in e.tags]
            out.append(row)
        return out

    def _sla_row(self, s: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        row = self._project(s, p.get("output", "extend"))
        if p.get("selectServiceTags") is not None:
            row["service_tags"] = [dict(t) for t in s["_service_tags"]]
        if p.get("selectSchedule") is not None:
            row["schedule"] = [dict(t) for t in s["_schedule"]]
        if p.get("selectExcludedDowntimes") is not None:
            row["excluded_downtimes"] = [dict(t) for t in s["_excluded"]]
        return row

    def _sla_get(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        self._check(
            p,
            {
                "output",
                "slaids",
                "serviceids",
                "filter",
                "search",
                "service_tags",
                "evaltype",
                "selectServiceTags",
                "selectSchedule",
                "selectExcludedDowntimes",
                "limit",
                "sortfield",
                "sortorder",
                "preservekeys",
            },
        )
        rows = list(self.slas)
        if (ids := _ids(p.get("slaids"))) is not None:
            rows = [s for s in rows if s["slaid"] in ids]
        for key, want in (p.get("filter") or {}).items():
            wanted = {str(x) for x in _list_of(want)}
            rows = [s for s in rows if str(s.get(key)) in wanted]
        return self._limit([self._sla_row(s, p) for s in rows], p)

    # sla.getsli, after CSla::getReportingPeriods / calculateSli
    @staticmethod
    def _align(d: date, period: int) -> date:
        if period == 1:  # weekly: Sunday
            return d - timedelta(days=(d.weekday() + 1) % 7)
        if period == 2:
            return d.replace(day=1)
        if period == 3:
            return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)
        if period == 4:
            return d.replace(month=1, day=1)
        return d

    @staticmethod
    def _step(d: date, period: int, n: int) -> date:
        if period == 0:
            return d + timedelta(days=n)
        if period == 1:
            return d + timedelta(weeks=n)
        months = {2: 1, 3: 3, 4: 12}[period] * n
        y, m = divmod(d.month - 1 + months, 12)
        return d.replace(year=d.year + y, month=m + 1)

    def _sla_getsli(self, p: dict[str, Any]) -> dict[str, Any]:
        self._check(p, {"slaid", "period_from", "period_to", "periods", "serviceids"})
        if "slaid" not in p:
            raise _params_error('Invalid parameter "/": the parameter "slaid" is missing.')
        sla = next((s for s in self.slas if s["slaid"] == str(p["slaid"])), None)
        if sla is None:
            raise RpcError(-32500, "Application error.", "No permissions to referred object or it does not exist!")
        periods_n = p.get("periods")
        if periods_n is not None and not 1 <= int(periods_n) <= 100:
            raise _params_error('Invalid parameter "/periods": value must be one of 1-100.')
        tz = zone(sla["timezone"])
        kind = int(sla["period"])

        def local(ts: int) -> date:
            return datetime.fromtimestamp(ts, tz).date()

        def start_of(d: date) -> int:
            return _epoch(datetime.combine(d, datetime.min.time(), tzinfo=tz))

        pf = p.get("period_from")
        pt = p.get("period_to")
        services = [s for s in self.services if s.code in {t["value"] for t in sla["_service_tags"]}]
        if pf is not None and pt is not None:
            groupids = {self.group_of[s.code] for s in services}
            self._hooli_fails(groupids, None, pf)
        elif pf is not None:
            self._hooli_fails({self.group_of[s.code] for s in services}, None, pf)
        effective_max = self._step(self._align(local(self.now), kind), kind, 1)
        d_from = self._align(local(int(pf)), kind) if pf is not None else None
        d_to = (
            self._step(self._align(local(int(pt)), kind), kind, 1)
            if pt is not None
            else (effective_max if pf is None else None)
        )
        bounds: list[tuple[int, int]] = []
        descending = d_to is not None
        cur = d_to if descending else d_from
        assert cur is not None
        while len(bounds) < 100:
            if periods_n is not None:
                if len(bounds) == int(periods_n):
                    break
            elif (d_from is None or d_to is None) and len(bounds) == 20:
                break
            elif not descending and cur >= effective_max:
                break
            if descending and d_from is not None and cur <= d_from:
                break
            if descending:
                prev = self._step(cur, kind, -1)
                bounds.insert(0, (start_of(prev), start_of(cur)))
                cur = prev
            else:
                nxt = self._step(cur, kind, 1)
                bounds.append((start_of(cur), start_of(nxt)))
                cur = nxt
        if (sids := _ids(p.get("serviceids"))) is not None:
            services = [s for s in services if str(s.serviceid) in sids]
        slo = float(sla["slo"])
        excluded = [(int(x["period_from"]), int(x["period_to"])) for x in sla["_excluded"]]
        rows = []
        for a, b in bounds:
            row = []
            for s in services:
                row.append(self._cell(s, a, b, excluded, slo))
            rows.append(row)
        return {
            "periods": [{"period_from": a, "period_to": b} for a, b in bounds],
            "serviceids": [s.serviceid for s in services],
            "sli": rows,
        }

    def _cell(self, s: _Service, a: int, b: int, excluded: list[tuple[int, int]], slo: float) -> dict[str, Any]:
        lo, hi = max(a, s.created_at), min(b, self.now + 1)

        def minus_excluded(x: int, y: int) -> int:
            return max(0, y - x) - sum(max(0, min(y, q) - max(x, p)) for p, q in excluded)

        max_uptime = minus_excluded(max(a, s.created_at), b) if b > s.created_at else 0
        total = minus_excluded(lo, hi) if hi > lo else 0
        down = 0
        for p0, p1 in self.hosts[s.hostid].problems:
            x, y = max(p0, lo), min(p1, hi)
            if x < y:
                down += minus_excluded(x, y)
        up = total - down
        cell: dict[str, Any] = {
            "uptime": up,
            "downtime": down,
            "sli": -1.0,
            "error_budget": 0,
            "excluded_downtimes": [],
        }
        if up + down:
            cell["sli"] = (
                (up // (up + down)) * 100 if up % (up + down) == 0 else up / (up + down) * 100
            )  # PHP int/float
            available = max_uptime - up - down
            cell["error_budget"] = min(available, int(up / slo * 100) - up - down) if slo > 0 else available
        for p0, p1 in excluded:
            x, y = max(p0, lo), min(p1, hi)
            if x < y:
                cell["excluded_downtimes"].append({"name": "excluded", "period_from": x, "period_to": y})
        return cell

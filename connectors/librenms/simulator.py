"""A loopback LibreNMS (API v0) serving the sandbox customers that use ``librenms``.

Wire format as LibreNMS answers (``includes/html/api_functions.inc.php``, ``routes/api.php``):
``{"status": "ok", <name>: [...], "count": n}``, errors ``{"status": "error", "message"}``,
a wrong ``X-Auth-Token`` → ``401 {"message": "Unauthenticated."}``, an unknown route → 404
"This API route doesn't exist.". No paging (LibreNMS has none): ``page_size`` is accepted for
the common simulator signature and not used.

Each customer is a device group whose id is its ``ids["librenms"]``; device ``type`` is the
LibreNMS class (the sandbox's "switch" is LibreNMS' ``network``, hence ``class_labels`` in
:meth:`source_config`); sites are LibreNMS locations; the sandbox's unplanned outages are the
devices' ``outages`` and its planned ones are one-off alert schedules (``scheduled_maintenance``)
whose ``start``/``end`` are wall times in ``app_timezone``, the LibreNMS server's zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from connectors.fields import epoch
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.base import Simulator
from reporting.period import zone

LIBRENMS_TYPE = {"firewall": "firewall", "switch": "network", "server": "server", "wireless": "wireless"}
OS_OF = {"firewall": "fortigate", "network": "ios", "server": "linux", "wireless": "arubaos"}
VERSION = "26.3.0"


class LibreNMSSimulator(Simulator):
    system = "librenms"

    def __init__(self, dataset: SandboxDataset, page_size: int = 0, app_timezone: str = "UTC"):
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size  # LibreNMS does not page
        self.tz = zone(app_timezone)
        self.app_timezone = app_timezone
        self.token = "lnms-" + self.secret
        self._build()

    # -- the data, in LibreNMS' shapes ------------------------------------------------------
    def _build(self) -> None:
        self.groups: dict[int, dict[str, Any]] = {}
        self.members: dict[int, list[int]] = {}
        self.devices: dict[int, dict[str, Any]] = {}
        self.outages: dict[int, list[dict[str, Any]]] = {}
        self.locations: dict[str, int] = {}
        self.schedules: list[dict[str, Any]] = []
        for c in self.dataset.customers_in("librenms"):
            gid = int(c.ids["librenms"])
            g = self.dataset.gen(c.code)
            self.groups[gid] = {
                "id": gid,
                "name": c.name,
                "desc": f"{c.code} managed devices",
                "type": "static",
                "pattern": None,
            }
            self.members[gid] = []
            by_sandbox_id: dict[str, int] = {}
            for n, d in enumerate(g.devices):
                did = gid * 100 + n + 1
                by_sandbox_id[d.id] = did
                loc = self.locations.setdefault(d.site, len(self.locations) + 1)
                kind = LIBRENMS_TYPE[d.device_class]
                self.devices[did] = {
                    "device_id": did,
                    "hostname": f"{d.name}.{c.domain}",
                    "sysName": d.name,
                    "display": None,
                    "ip": f"10.{gid % 256}.{n // 250}.{n % 250 + 1}",
                    "type": kind,
                    "os": OS_OF[kind],
                    "status": 1,
                    "status_reason": "",
                    "disabled": 0,
                    "ignore": 0,
                    "location_id": loc,
                    "inserted": self._wall(g.onboarded),
                    "last_polled": None,
                    "uptime": 86400,
                    "hardware": "",
                    "version": "",
                    "purpose": None,
                    "notes": None,
                    "poller_group": 0,
                }
                self.members[gid].append(did)
                self.outages[did] = []
            for o in g.outages:
                did = by_sandbox_id[o.device_id]
                if o.planned:
                    self.schedules.append(self._schedule(len(self.schedules) + 1, did, o.start, o.end))
                else:
                    self.outages[did].append(
                        {"going_down": epoch(o.start), "up_again": None if o.end is None else epoch(o.end)}
                    )
        for rows in self.outages.values():
            rows.sort(key=lambda r: r["going_down"], reverse=True)  # orderBy('going_down', 'DESC')

    def _wall(self, ts: datetime) -> str:
        """A timestamp as LibreNMS prints it: ``Y-m-d H:i:s`` in the server's timezone."""
        return ts.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def _schedule(self, sid: int, did: int, start: datetime, end: datetime | None) -> dict[str, Any]:
        assert end is not None
        a, b = start.astimezone(self.tz), end.astimezone(self.tz)
        return {
            "schedule_id": sid,
            "title": f"Planned maintenance {self.devices[did]['sysName']}",
            "notes": "Firmware window",
            "recurring": 0,
            "start": self._wall(start),
            "end": self._wall(end),
            "start_recurring_dt": a.date().isoformat(),
            "start_recurring_hr": a.strftime("%H:%M"),
            "end_recurring_dt": b.date().isoformat(),
            "end_recurring_hr": b.strftime("%H:%M"),
            "recurring_day": [],
            "status": 2,
            "devices": [did],
            "device_groups": [],
            "locations": [],
        }

    # -- HTTP ----------------------------------------------------------------------------------
    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        return {"status": "error", "message": message}, "application/json"

    def source_config(self) -> dict[str, Any]:
        return {
            "type": "librenms",
            "url": self.url,
            "token": self.token,
            "server_timezone": self.app_timezone,
            "class_labels": {"network": "switch"},
            "concurrency": 8,  # one outages call per device: on loopback, let every customer's calls run at once
        }

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v0/system", self._system)
        r.add_get("/api/v0/devicegroups", self._groups)
        r.add_get("/api/v0/devicegroups/{name}", self._group_devices)
        r.add_get("/api/v0/devices/{hostname}/outages", self._outages)
        r.add_get("/api/v0/resources/locations", self._locations)
        r.add_get("/api/v0/alerts/scheduled_maintenance", self._maintenance)
        r.add_route("*", "/api/v0/{path:.*}", self._not_found)

    def _authorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("X-Auth-Token") != self.token:
            return self.json({"message": "Unauthenticated."}, status=401)
        return None

    @staticmethod
    def ok(name: str, result: Any, message: str | None = None) -> web.Response:
        body: dict[str, Any] = {"status": "ok", name: result}
        if message:
            body["message"] = message
        body["count"] = len(result) if isinstance(result, list) else 1
        return Simulator.json(body)

    def error(self, status: int, message: str) -> web.Response:
        return self.json({"status": "error", "message": message}, status=status)

    async def _system(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        return self.ok(
            "system",
            [
                {
                    "local_ver": VERSION,
                    "local_sha": "0" * 40,
                    "local_branch": "master",
                    "db_schema": "2026_03_01_000000",
                    "php_ver": "8.3.6",
                    "database_ver": "MariaDB 10.11",
                }
            ],
        )

    async def _groups(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        groups = sorted(self.groups.values(), key=lambda g: g["name"])
        return self.ok("groups", groups, f"Found {len(groups)} device groups")

    async def _group_devices(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        name = request.match_info["name"]
        if name.isdigit():
            gid: int | None = int(name) if int(name) in self.groups else None
        else:
            gid = next((g["id"] for g in self.groups.values() if g["name"] == name), None)
        if gid is None:
            return self.error(404, "Device group not found")
        ids = self.members[gid]
        if not ids:
            return self.error(404, f"No devices found in group {name}")
        if request.query.get("full"):
            rows = [self.devices[i] for i in ids]
        else:
            rows = [{"device_id": i} for i in ids]
        return self.ok("devices", rows)

    async def _outages(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        host = request.match_info["hostname"]
        did = (
            int(host)
            if host.isdigit()
            else next((d for d, row in self.devices.items() if row["hostname"] == host), None)
        )
        if did is None or did not in self.devices:
            return self.error(403, "Insufficient permissions to access this device")  # device_permitted() fails first
        return self.ok("outages", self.outages[did])

    async def _locations(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        rows = [
            {
                "id": i,
                "location": name,
                "lat": None,
                "lng": None,
                "timestamp": "2026-01-05 09:00:00",
                "fixed_coordinates": 0,
            }
            for name, i in sorted(self.locations.items(), key=lambda kv: kv[1])
        ]
        return self.ok("locations", rows)

    async def _maintenance(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        return self.ok("schedule", self.schedules)

    async def _not_found(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        return self.error(404, "This API route doesn't exist.")

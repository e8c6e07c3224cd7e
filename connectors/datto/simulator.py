"""A loopback Datto BCDR API over the sandbox dataset (``/v1/bcdr/...``).

Every customer of the dataset that uses Datto gets two appliances (a SIRIS holding the first
three protected machines, an ALTO holding the rest); SOYLENT also has an archived agent whose
history stops long ago. ``/v1/bcdr/device`` pages with ``_page``/``_perPage`` (``perPage`` is
capped at ``page_size``, so the partner's device list needs several pages). ``/asset`` answers a
bare JSON array (``asset_envelope=True``: the paged envelope instead) and, like the real API,
returns only each asset's newest ``history`` backups. Credentials: HTTP Basic with
``public_key``/``secret_key`` from ``source_config()``.
"""

from __future__ import annotations

import base64
import hashlib
import math
from datetime import UTC, datetime, time, timedelta
from typing import Any

from aiohttp import web

from connectors.sandbox.dataset import SandboxCustomer, SandboxDataset
from connectors.sim.base import Simulator
from reporting.metrics import BackupRun


def _hex(*parts: str, n: int = 12) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:n].upper()


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _epoch(ts: datetime | None) -> int | None:
    return None if ts is None else int(ts.timestamp())


class DattoSimulator(Simulator):
    system = "datto"

    def __init__(self, dataset: SandboxDataset, page_size: int = 3, history: int = 24, asset_envelope: bool = False):
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size
        self.history = history
        self.asset_envelope = asset_envelope
        self.public_key = "pk" + _hex(self.secret, "public", n=16).lower()
        self.secret_key = self.secret
        self.now = datetime.combine(dataset.anchor_end, time(12), tzinfo=UTC)  # after every customer's week end
        self.devices: list[dict[str, Any]] = []
        self.assets: dict[str, list[dict[str, Any]]] = {}
        for c in dataset.customers_in("datto"):
            self._add_customer(c)

    # -- the partner's data
    def org_id(self, c: SandboxCustomer) -> int:
        cid = c.ids["datto"]
        return int(cid) if cid.isdigit() else int(_hex(cid, n=6), 16)

    def _add_customer(self, c: SandboxCustomer) -> None:
        g = self.dataset.gen(c.code)
        groups = (("siris", "S4P", c.protected[:3]), ("alto", "ALTO4", c.protected[3:]))
        for kind, model, items in groups:
            if not items:
                continue
            serial = _hex(c.code, kind)
            assets = [self._asset(c, item, [r for r in g.backup_runs if r.item == item]) for item in items]
            if c.code == "SOYLENT" and kind == "alto":
                assets.append(self._archived(c, g.week_start(g.first_week)))
            self.assets[serial] = assets
            self.devices.append(
                {
                    "serialNumber": serial,
                    "name": f"{c.code.lower()}-{kind}",
                    "model": model,
                    "region": {"location": "EU", "provider": None},
                    "lastSeenDate": _iso(self.now - timedelta(minutes=3)),
                    "organizationId": self.org_id(c),
                    "clientCompanyName": c.name,
                    "organizationName": c.name,
                    "hidden": False,
                    "servicePlan": "Infinite Cloud Retention",
                    "registrationDate": _iso(g.onboarded),
                    "servicePeriod": "2028-01-31T00:00:00+00:00",
                    "warrantyExpire": "2029-01-31T00:00:00+00:00",
                    "localStorageUsed": {"size": 1.4, "units": "TB"},
                    "localStorageAvailable": {"size": 2.6, "units": "TB"},
                    "offsiteStorageUsed": {"size": 980, "units": "GB"},
                    "totalManagedDisk": {"size": 4, "units": "TB"},
                    "internalIP": "10.20.0.5",
                    "activeTickets": 0,
                    "resellerCompanyName": "Northwind Managed Services",
                    "agentCount": len(assets),
                    "shareCount": 0,
                    "alertCount": 0,
                    "uptime": 1728000,
                    "remoteWebUrl": f"https://device.dattobackup.com/device/{serial}",
                }
            )

    def _entry(self, r: BackupRun) -> dict[str, Any]:
        ts = r.recovery_point or r.ended
        shot: dict[str, str | None] = {
            "status": "success",
            "image": f"https://device.dattobackup.com/sirisReporting/images/{_hex(r.item, _iso(ts))}.png",
        }
        local: dict[str, Any] = {"status": "success", "errors": []}
        backup: dict[str, str | None] = {"status": "success", "errorMessage": None}
        if r.status == "failed":
            backup = {
                "status": "failure",
                "errorMessage": "Unable to take a snapshot: VSS writer SqlServerWriter failed",
            }
            shot = {"status": None, "image": None}
            local = {"status": None, "errors": []}
        elif r.status == "warning":
            if int(_hex(r.item, _iso(ts), n=2), 16) % 2:
                shot = {"status": "failure", "image": shot["image"]}
            else:
                local = {
                    "status": "failure",
                    "errors": [{"errorType": "filesystem", "errorMessage": "Volume C: has file system errors"}],
                }
        return {
            "timestamp": _iso(ts),
            "backup": backup,
            "localVerification": local,
            "advancedVerification": {"screenshotVerification": shot},
        }

    def _asset(self, c: SandboxCustomer, item: str, runs: list[BackupRun]) -> dict[str, Any]:
        runs = sorted(
            (r for r in runs if (r.recovery_point or r.ended) <= self.now), key=lambda r: r.recovery_point or r.ended
        )
        good = [r.recovery_point for r in runs if r.recovery_point is not None]
        entries = [self._entry(r) for r in reversed(runs)][: self.history]  # newest first, recent only
        last = good[-1] if good else None
        shot_ok = next(
            (
                e["advancedVerification"]["screenshotVerification"]["status"] == "success"
                for e in entries
                if e["advancedVerification"]["screenshotVerification"]["status"]
            ),
            False,
        )
        return {
            "name": item,
            "volume": _hex(c.code, item, n=32).lower(),
            "localIp": f"10.20.1.{len(item) * 7 % 250}",
            "os": "Windows Server 2022 Standard",
            "protectedVolumesCount": 2,
            "unprotectedVolumesCount": 0,
            "protectedVolumeNames": ["C:\\", "D:\\"],
            "unprotectedVolumeNames": [],
            "agentVersion": "3.2.4.0",
            "isPaused": False,
            "isArchived": False,
            "latestOffsite": _epoch(good[-2] if len(good) > 1 else last),
            "localSnapshots": len(good),
            "lastSnapshot": _epoch(last),
            "lastScreenshotAttempt": _epoch(last),
            "lastScreenshotAttemptStatus": shot_ok,
            "lastScreenshotUrl": f"https://device.dattobackup.com/sirisReporting/images/latest/{_hex(item)}.png",
            "fqdn": f"{item.lower()}.{c.domain}",
            "type": "agent",
            "backups": entries,
        }

    def _archived(self, c: SandboxCustomer, before: datetime) -> dict[str, Any]:
        item = f"{c.code}-LEGACY01"
        runs = [
            BackupRun(item, before - timedelta(days=d, hours=2), "success", before - timedelta(days=d, hours=2))
            for d in range(3)
        ]
        asset = self._asset(c, item, runs)
        asset["isArchived"] = True
        return asset

    # -- wire format
    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        return {"code": str(status), "message": message}, "application/json"

    def source_config(self) -> dict[str, Any]:
        return {"type": "datto", "url": self.url, "public_key": self.public_key, "secret_key": self.secret_key}

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        want = base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        return header == f"Basic {want}"

    def _paged(self, request: web.Request, rows: list[Any]) -> web.Response:
        try:
            page = int(request.query.get("_page", "1"))
            per = min(int(request.query.get("_perPage", "100")), self.page_size)
        except ValueError:
            return self.json({"code": "400", "message": "_page and _perPage must be integers"}, 400)
        if page < 1 or per < 1:
            return self.json({"code": "400", "message": "_page and _perPage must be positive"}, 400)
        pages = max(1, math.ceil(len(rows) / per))
        chunk = rows[(page - 1) * per : page * per]
        return self.json(
            {"pagination": {"page": page, "perPage": per, "totalPages": pages, "count": len(rows)}, "items": chunk}
        )

    def routes(self, app: web.Application) -> None:
        async def devices(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return self.json({"code": "401", "message": "Unauthorized: invalid API key pair"}, 401)
            return self._paged(request, self.devices)

        async def assets(request: web.Request) -> web.Response:
            if not self._authorized(request):
                return self.json({"code": "401", "message": "Unauthorized: invalid API key pair"}, 401)
            serial = request.match_info["serial"]
            if serial not in self.assets:
                return self.json({"code": "404", "message": f"Device {serial} not found"}, 404)
            rows = self.assets[serial]
            return self._paged(request, rows) if self.asset_envelope else self.json(rows)

        app.router.add_get("/v1/bcdr/device", devices)
        app.router.add_get("/v1/bcdr/device/{serial}/asset", assets)

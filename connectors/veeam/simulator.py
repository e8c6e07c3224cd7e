"""A loopback Veeam server over the sandbox dataset: VBR REST v1 (``/api/oauth2/token``,
``/api/v1/...``) and VSPC REST v3 (``/api/v3/...``) side by side; ``api`` picks which one
``source_config()`` points the connector at.

Every veeam customer's protected machine has its own backup job named like the machine
(``WONKA-SQL01``), so a customer's jobs share the prefix ``WONKA-`` (the dataset's id); one more
job belongs to nobody. Each run of the dataset is a session (``creationTime`` = the snapshot time,
``endTime`` = when it finished); each successful or warning run left a restore point. VBR pages
with ``skip``/``limit`` and VSPC with ``limit``/``offset``, both capped at ``page_size``. VBR
tokens: ``expire_tokens()`` makes the next request answer 401 ``ExpiredToken``. The server is
read at 12:00 UTC on the Monday ending the planted week; VSPC shows the state at that time.
"""

from __future__ import annotations

import fnmatch
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from aiohttp import web

from connectors.fields import parse_time
from connectors.sandbox.dataset import SandboxCustomer, SandboxDataset
from connectors.sim.base import Simulator
from reporting.metrics import BackupRun

NS = uuid.UUID("6f0c2a7e-3d1b-4c55-9a8e-0b7d2f1e9c44")
RESULT = {"success": "Success", "warning": "Warning", "failed": "Failed"}


def uid(*parts: str) -> str:
    return str(uuid.uuid5(NS, ":".join(parts)))


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Token:
    refresh: str
    expired: bool = False


class VeeamSimulator(Simulator):
    system = "veeam"

    def __init__(self, dataset: SandboxDataset, page_size: int = 5, api: str = "vbr"):
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size
        self.api = api
        self.username = "NORTHWIND\\svc-reportbot"
        self.password = self.secret
        self.api_key = "vspc-" + secrets.token_urlsafe(24)
        self.now = datetime.combine(dataset.anchor_end, time(12), tzinfo=UTC)  # after every customer's week end
        self.tokens: dict[str, _Token] = {}
        self.refresh_tokens: set[str] = set()
        self.missing_version: list[str] = []  # paths requested without x-api-version
        self.vbr_id = uid("vbr")
        self.jobs: list[dict[str, Any]] = []
        self.backups: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.points: list[dict[str, Any]] = []
        self.companies: list[dict[str, Any]] = []
        self.vspc_jobs: list[dict[str, Any]] = []
        self.vspc_vms: list[dict[str, Any]] = []
        for c in dataset.customers_in("veeam"):
            self._add_customer(c)
        self._add_job("Northwind - Configuration backup", [], None)

    def org_uid(self, code: str) -> str:
        """The VSPC ``organizationUid`` of a sandbox customer (``customers.ids`` with ``api = "vspc"``)."""
        return uid("vspc-org", code)

    # -- data
    def _add_customer(self, c: SandboxCustomer) -> None:
        g = self.dataset.gen(c.code)
        self.companies.append(
            {
                "instanceUid": self.org_uid(c.code),
                "name": c.name,
                "status": "Active",
                "resellerUid": None,
                "subscriptionPlanUid": None,
            }
        )
        for item in c.protected:
            runs = sorted((r for r in g.backup_runs if r.item == item and r.ended <= self.now), key=lambda r: r.ended)
            self._add_job(item, runs, c)

    def _add_job(self, name: str, runs: list[BackupRun], c: SandboxCustomer | None) -> None:
        job_id, backup_id, platform = uid("job", name), uid("backup", name), uid("platform", "vcenter01")
        repo = f"Repo-{c.code if c else 'MSP'}"
        sessions: list[dict[str, Any]] = []
        for r in runs:
            start = r.recovery_point or (r.ended - timedelta(minutes=20))
            sid = uid("session", name, iso(r.ended))
            msg = {
                "success": "",
                "warning": "Processing finished with warnings: low free space on datastore",
                "failed": "Error: Failed to create VM snapshot: VSS writer SqlServerWriter timed out",
            }[r.status]
            sessions.append(
                {
                    "id": sid,
                    "name": name,
                    "jobId": job_id,
                    "sessionType": "BackupJob",
                    "creationTime": iso(start),
                    "endTime": iso(r.ended),
                    "state": "Stopped",
                    "progressPercent": 100,
                    "result": {"result": RESULT[r.status], "message": msg, "isCanceled": False},
                    "resourceId": job_id,
                    "resourceReference": f"/api/v1/jobs/{job_id}",
                    "parentSessionId": None,
                    "usn": len(self.sessions) + len(sessions) + 1000,
                    "platformName": "VMware",
                    "platformId": platform,
                    "initiatedBy": "Scheduler",
                }
            )
            if r.recovery_point is not None:
                self.points.append(
                    {
                        "id": uid("point", sid),
                        "name": name,
                        "platformName": "VMware",
                        "platformId": platform,
                        "creationTime": iso(r.recovery_point),
                        "backupId": backup_id,
                        "allowedOperations": ["VmRestore", "FileLevelRestore", "InstantRecovery"],
                        "type": "Increment",
                        "sessionId": sid,
                        "malwareStatus": "Clean",
                        "backupFileId": uid("file", sid),
                    }
                )
        self.sessions.extend(sessions)
        last = sessions[-1] if sessions else None
        self.jobs.append(
            {
                "id": job_id,
                "name": name,
                "type": "VSphereBackup",
                "description": "",
                "status": "Inactive",
                "lastResult": last["result"]["result"] if last else "None",
                "workload": "VM",
                "objectsCount": 1,
                "highPriority": False,
                "progressPercent": 0,
                "lastRun": last["creationTime"] if last else None,
                "nextRun": iso(self.now + timedelta(hours=16)),
                "repositoryId": uid("repo", repo),
                "repositoryName": repo,
                "sessionId": last["id"] if last else None,
            }
        )
        if runs:
            self.backups.append(
                {
                    "id": backup_id,
                    "name": name,
                    "platformName": "VMware",
                    "platformId": platform,
                    "creationTime": iso(min(r.recovery_point or r.ended for r in runs)),
                    "repositoryId": uid("repo", repo),
                    "repositoryName": repo,
                    "jobType": "Backup",
                    "jobId": job_id,
                    "policyUniqueId": uid("policy", name),
                }
            )
        if c is None:
            return
        org = self.org_uid(c.code)
        newest = max((r.recovery_point for r in runs if r.recovery_point is not None), default=None)
        self.vspc_jobs.append(
            {
                "instanceUid": job_id,
                "name": name,
                "backupServerUid": self.vbr_id,
                "organizationUid": org,
                "mappedOrganizationUid": org,
                "type": "Backup",
                "status": last["result"]["result"] if last else "None",
                "isEnabled": True,
                "lastRun": last["creationTime"] if last else None,
                "lastEndTime": last["endTime"] if last else None,
                "lastDuration": int((parse_time(last["endTime"]) - parse_time(last["creationTime"])).total_seconds())
                if last
                else 0,
                "failureMessage": last["result"]["message"] if last and last["result"]["result"] == "Failed" else "",
                "destination": repo,
                "retentionLimit": 14,
                "retentionLimitType": "RestorePoints",
            }
        )
        if newest is not None:
            self.vspc_vms.append(
                {
                    "instanceUid": uid("vm", name),
                    "backupServerUid": self.vbr_id,
                    "organizationUid": org,
                    "name": name,
                    "hierarchyRef": f"vm-{abs(hash(name)) % 10000}",
                    "objectUid": uid("object", name),
                    "restorePoints": sum(1 for r in runs if r.recovery_point),
                    "latestRestorePointDate": iso(newest),
                    "jobUid": job_id,
                    "malwareState": "Clean",
                    "immutable": False,
                }
            )

    # -- wire format
    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        if self.api == "vspc":
            return {
                "data": None,
                "meta": None,
                "errors": [{"message": message, "type": "transport", "code": status}],
            }, "application/json"
        code = {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(status, "UnknownError")
        return {"errorCode": code, "message": message, "resourceId": None}, "application/json"

    def source_config(self, api: str | None = None) -> dict[str, Any]:
        api = api or self.api
        if api == "vspc":
            return {"type": "veeam", "api": "vspc", "url": self.url, "api_key": self.api_key}
        return {"type": "veeam", "api": "vbr", "url": self.url, "username": self.username, "password": self.password}

    def expire_tokens(self) -> None:
        for t in self.tokens.values():
            t.expired = True

    @staticmethod
    def _vbr_error(status: int, code: str, message: str) -> web.Response:
        return Simulator.json({"errorCode": code, "message": message, "resourceId": None}, status)

    def _page(self, rows: list[Any], skip: int, limit: int) -> list[Any]:
        return rows[skip : skip + min(limit, self.page_size)]

    def _vbr_auth(self, request: web.Request) -> web.Response | None:
        if not request.headers.get("x-api-version"):
            self.missing_version.append(request.path)
            return self._vbr_error(400, "UnexpectedContent", "The x-api-version header is required")
        header = request.headers.get("Authorization", "")
        token = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if token is None:
            return self._vbr_error(401, "InvalidToken", "The access token is invalid")
        if token.expired:
            return self._vbr_error(401, "ExpiredToken", "The access token has expired")
        return None

    def routes(self, app: web.Application) -> None:
        def q_time(request: web.Request, key: str) -> datetime | None:
            v = request.query.get(key)
            return parse_time(v) if v else None

        def by_name(request: web.Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            pattern = request.query.get("nameFilter")
            return rows if not pattern else [r for r in rows if fnmatch.fnmatchcase(r["name"].lower(), pattern.lower())]

        def ordered(request: web.Request, rows: list[dict[str, Any]], default: str) -> list[dict[str, Any]]:
            column = {"CreationTime": "creationTime", "EndTime": "endTime", "Name": "name"}.get(
                request.query.get("orderColumn", default)
            )
            if column is None:
                raise web.HTTPBadRequest(
                    text='{"errorCode":"UnexpectedContent","message":"Unknown orderColumn"}',
                    content_type="application/json",
                )
            desc = request.query.get("orderAsc", "true").lower() == "false"
            return sorted(rows, key=lambda r: r[column] if column == "name" else parse_time(r[column]), reverse=desc)

        def vbr_list(request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
            try:
                skip, limit = int(request.query.get("skip", "0")), int(request.query.get("limit", "200"))
            except ValueError:
                return self._vbr_error(400, "UnexpectedContent", "skip and limit must be integers")
            page = self._page(rows, skip, limit)
            return self.json(
                {"data": page, "pagination": {"total": len(rows), "count": len(page), "skip": skip, "limit": limit}}
            )

        async def token(request: web.Request) -> web.Response:
            if not request.headers.get("x-api-version"):
                self.missing_version.append(request.path)
                return self._vbr_error(400, "UnexpectedContent", "The x-api-version header is required")
            form = await request.post()
            grant = form.get("grant_type")
            if grant == "password":
                if form.get("username") != self.username or form.get("password") != self.password:
                    return self._vbr_error(401, "AccessDenied", "Invalid user name or password")
            elif grant == "refresh_token":
                if form.get("refresh_token") not in self.refresh_tokens:
                    return self._vbr_error(401, "InvalidToken", "The refresh token is invalid or expired")
                self.refresh_tokens.discard(str(form.get("refresh_token")))
            else:
                return self._vbr_error(400, "UnexpectedContent", "grant_type must be password or refresh_token")
            access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            self.tokens[access] = _Token(refresh)
            self.refresh_tokens.add(refresh)
            now = datetime.now(UTC)
            return self.json(
                {
                    "access_token": access,
                    "token_type": "bearer",
                    "refresh_token": refresh,
                    "expires_in": 900,
                    ".issued": iso(now),
                    ".expires": iso(now + timedelta(seconds=900)),
                }
            )

        async def server_info(request: web.Request) -> web.Response:
            return self._vbr_auth(request) or self.json(
                {
                    "vbrId": self.vbr_id,
                    "name": "vbr01.northwind.example",
                    "buildVersion": "12.3.1.1139",
                    "patches": [],
                    "databaseVendor": "PostgreSql",
                }
            )

        async def job_states(request: web.Request) -> web.Response:
            return self._vbr_auth(request) or vbr_list(request, by_name(request, self.jobs))

        async def backups(request: web.Request) -> web.Response:
            return self._vbr_auth(request) or vbr_list(request, by_name(request, self.backups))

        async def sessions(request: web.Request) -> web.Response:
            if (denied := self._vbr_auth(request)) is not None:
                return denied
            rows = by_name(request, self.sessions)
            if job := request.query.get("jobIdFilter"):
                rows = [r for r in rows if r["jobId"] == job]
            for key, field, after in (
                ("endedAfterFilter", "endTime", True),
                ("endedBeforeFilter", "endTime", False),
                ("createdAfterFilter", "creationTime", True),
                ("createdBeforeFilter", "creationTime", False),
            ):
                t = q_time(request, key)
                if t is not None:
                    rows = [r for r in rows if (parse_time(r[field]) >= t) == after]
            return vbr_list(request, ordered(request, rows, "CreationTime"))

        async def restore_points(request: web.Request) -> web.Response:
            if (denied := self._vbr_auth(request)) is not None:
                return denied
            rows = by_name(request, self.points)
            if backup := request.query.get("backupIdFilter"):
                rows = [r for r in rows if r["backupId"] == backup]
            for key, after in (("createdAfterFilter", True), ("createdBeforeFilter", False)):
                t = q_time(request, key)
                if t is not None:
                    rows = [r for r in rows if (parse_time(r["creationTime"]) >= t) == after]
            return vbr_list(request, ordered(request, rows, "CreationTime"))

        def vspc_denied(request: web.Request) -> web.Response | None:
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return self.json(
                    {
                        "data": None,
                        "meta": None,
                        "errors": [
                            {
                                "message": "Authentication failed: the API key is not valid",
                                "type": "security",
                                "code": 1000,
                            }
                        ],
                    },
                    401,
                )
            return None

        def vspc_list(request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
            if (denied := vspc_denied(request)) is not None:
                return denied
            try:
                limit, offset = int(request.query.get("limit", "100")), int(request.query.get("offset", "0"))
            except ValueError:
                return self.json(
                    {
                        "data": None,
                        "meta": None,
                        "errors": [{"message": "limit and offset must be integers", "type": "validation", "code": 400}],
                    },
                    400,
                )
            page = self._page(rows, offset, limit)
            return self.json(
                {
                    "data": page,
                    "meta": {"pagingInfo": {"total": len(rows), "count": len(page), "offset": offset}},
                    "errors": None,
                }
            )

        async def companies(request: web.Request) -> web.Response:
            return vspc_list(request, self.companies)

        async def vspc_jobs(request: web.Request) -> web.Response:
            return vspc_list(request, self.vspc_jobs)

        async def vspc_vms(request: web.Request) -> web.Response:
            return vspc_list(request, self.vspc_vms)

        app.router.add_post("/api/oauth2/token", token)
        app.router.add_get("/api/v1/serverInfo", server_info)
        app.router.add_get("/api/v1/jobs/states", job_states)
        app.router.add_get("/api/v1/backups", backups)
        app.router.add_get("/api/v1/sessions", sessions)
        app.router.add_get("/api/v1/restorePoints", restore_points)
        app.router.add_get("/api/v3/organizations/companies", companies)
        app.router.add_get("/api/v3/infrastructure/backupServers/jobs", vspc_jobs)
        app.router.add_get("/api/v3/protectedWorkloads/virtualMachines", vspc_vms)

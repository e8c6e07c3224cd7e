"""Veeam → the report's backups section, from VBR REST v1 (``api = "vbr"``, default) or from the
Service Provider Console REST v3 (``api = "vspc"``).

A protected item is a backup job (its name), the unit with a schedule, a result and restore points.

VBR — customer mapping: ``[customers.ids] <source> = "<job-name prefix>"`` on a VBR server shared
by several customers (``"*"`` = every job: one VBR per customer, configured as its own
``[sources.<name>]`` table with its own ``url``). Formulas (``reporting.metrics.backups_section``):

- runs = sessions of the customer's jobs (``jobId``) with ``state == "Stopped"``, not
  ``result.isCanceled``, ``endTime`` in the period; status ``result.result``: ``Success`` →
  success, ``Warning`` → warning (counts as success, shown), ``Failed`` → failed.
- ``success_rate_pct`` = 100 × (Success + Warning) / those sessions.
- ``last_success`` = per job, the newest restore point (``creationTime``) created before period
  end in the job's backups (``/api/v1/backups``, ``jobId``); ``rpo_hours`` = period end − that.
- status ``failed`` when the job's newest session ended before period end failed (for a job
  without a session in the period: its newest session before the period); ``never`` with no
  restore point; ``stale`` above the customer's ``backup_stale_hours``.
- a backup chain created after period end did not exist then; when none of the customer's
  chains existed, the week precedes the customer's history (unavailable). When a chain existed
  but its restore points before period end were removed by retention, the week is unavailable.

VSPC — customer mapping: the company's ``organizationUid``. VSPC keeps no session history, only
each job's latest run (``status``, ``lastRun``, ``lastEndTime``) and each VM's
``latestRestorePointDate`` (with the ``jobUid`` that made it). So ``last_success``/``rpo_hours``/
``status`` are computed as above from those values when they are not later than period end, and a
week they have moved past is unavailable; ``success_rate_pct`` is not given (None), the run
counters are 0 and ``run_history`` is false — a snapshot of last results is not a week's success
rate, and the report says "not available from this source" instead of "no runs finished".
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.fields import Fields, iso_z, require_in_schema
from connectors.http import gather_all, require_credential, require_secret, require_url, source_http
from connectors.veeam.client import (
    DEFAULT_API_VERSION,
    SYSTEM,
    VbrClient,
    VspcClient,
    vbr_error_message,
    vspc_error_message,
)
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.metrics import BackupRun
from reporting.models import Backups, Period, Targets
from reporting.sources import SourceDataError, SourceRecord

RESULTS = {"Success": "success", "Warning": "warning", "Failed": "failed"}


@connector_shape
class VeeamConnector(ConnectorDefaults):
    """Veeam connector (``[sources.<name>] type = "veeam"``, ``api = "vbr" | "vspc"``)."""

    sections = frozenset({"backups"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        self.mode = str(source.option("api", "vbr")).lower()
        url = require_url(SYSTEM, source)
        if self.mode == "vbr":
            username = require_credential(SYSTEM, name, source, "username")
            password = require_secret(SYSTEM, name, source, "password")
            self.http, self._httpx = source_http(
                SYSTEM, source, ctx, error_message=vbr_error_message, secrets=(password,)
            )
            self.client: VbrClient | VspcClient = VbrClient(
                self.http,
                url,
                username,
                password,
                source_name=name,
                api_version=str(source.option("api_version", DEFAULT_API_VERSION)),
                page_size=int(source.option("page_size", 200)),
            )
        elif self.mode == "vspc":
            key = require_secret(SYSTEM, name, source, "api_key")
            self.http, self._httpx = source_http(SYSTEM, source, ctx, error_message=vspc_error_message, secrets=(key,))
            self.client = VspcClient(
                self.http, url, key, page_size=int(source.option("page_size", 500)), source_name=name
            )
        else:
            raise SourceDataError(SYSTEM, f'sources.{name}.api is {self.mode!r}; it must be "vbr" or "vspc"')
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    def _cid(self, customer: CustomerConfig) -> str:
        cid = customer.ids.get(self.name)
        if not cid:
            what = "job-name prefix" if self.mode == "vbr" else "VSPC organizationUid"
            raise SourceDataError(SYSTEM, f"{customer.code} has no {what} (customers.ids.{self.name})")
        return cid

    async def fetch_section(self, section: str, customer: CustomerConfig, period: Period, targets: Targets) -> Backups:
        if section != "backups":
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        if isinstance(self.client, VbrClient):
            return await self._vbr_section(self.client, customer, self._cid(customer), period, targets)
        return await self._vspc_section(self.client, customer, self._cid(customer), period, targets)

    # ---- VBR -------------------------------------------------------------------------------

    async def _vbr_section(
        self, c: VbrClient, customer: CustomerConfig, prefix: str, period: Period, targets: Targets
    ) -> Backups:
        raw_jobs, raw_backups, raw_sessions = await gather_all(
            c.job_states(prefix), c.backups(prefix), c.sessions(prefix, period.start, period.end)
        )

        def mine(name: str) -> bool:
            return prefix == "*" or name.startswith(prefix)

        jobs: dict[str, str] = {}
        for i, j in enumerate(raw_jobs):
            f = Fields(SYSTEM, j, f"GET /api/v1/jobs/states item {i}")
            if mine(f.text("name")):
                jobs[f.text("id")] = f.text("name")
        if not jobs:
            raise SourceDataError(
                SYSTEM, f"no job whose name starts with {prefix!r} (customers.ids.{self.name} of {customer.code})"
            )

        chains: list[tuple[str, str, datetime]] = []  # (backup id, job id, creationTime)
        for i, b in enumerate(raw_backups):
            f = Fields(SYSTEM, b, f"GET /api/v1/backups item {i}")
            f.raw("jobId")  # present (null for a job-less backup): a renamed key must not drop chains silently
            job_id = f.opt_text("jobId")
            if job_id in jobs:
                chains.append((f.text("id"), job_id, f.time("creationTime")))
        existing = [ch for ch in chains if ch[2] < period.end]
        if chains and not existing:
            first = min(ch[2] for ch in chains)
            raise SourceDataError(
                SYSTEM,
                f"no backup of {prefix!r} existed before {iso_z(period.end)} (the first was created "
                f"{iso_z(first)}): the week precedes the customer's history",
            )

        runs: list[BackupRun] = []
        by_session: dict[str, int] = {}

        def add_session(s: Any, where: str) -> None:
            f = Fields(SYSTEM, s, where)
            if f.text("jobId") not in jobs or f.text("state") != "Stopped":
                return
            result = f.obj("result")
            result.raw("isCanceled")  # present on every session result: a renamed key must not count cancelled runs
            if result.opt_flag("isCanceled"):
                return
            status = RESULTS.get(result.text("result"))
            if status is None:
                if result.text("result") == "None":
                    return
                raise SourceDataError(SYSTEM, f"{where}: unknown result.result {result.text('result')!r}")
            by_session[f.text("id")] = len(runs)
            runs.append(BackupRun(jobs[f.text("jobId")], f.time("endTime"), status, None))

        for i, s in enumerate(raw_sessions):
            f = Fields(SYSTEM, s, f"GET /api/v1/sessions item {i}")
            if period.start <= f.time("endTime") < period.end:
                add_session(s, f.where)
        ran = {r.item for r in runs}
        idle = [jid for jid, name in jobs.items() if name not in ran]
        before = await gather_all(*(c.last_session_before(jid, period.start) for jid in idle))
        for jid, last in zip(idle, before, strict=True):
            if last is not None:
                add_session(last, f"GET /api/v1/sessions (job {jid}, last before the period)")

        points = await gather_all(*(c.newest_restore_point(bid, period.end) for bid, _, _ in existing))
        missing = [ch for ch, p in zip(existing, points, strict=True) if p is None]
        oldest = await gather_all(*(c.newest_restore_point(bid, None, oldest=True) for bid, _, _ in missing))
        for (_, jid, _), p in zip(missing, oldest, strict=True):
            if p is not None:
                t = Fields(SYSTEM, p, "GET /api/v1/restorePoints").time("creationTime")
                raise SourceDataError(
                    SYSTEM,
                    f"job {jobs[jid]!r}: its restore points before {iso_z(t)} no longer exist "
                    f"(retention); the week ending {iso_z(period.end)} cannot be computed",
                )
        for (bid, jid, _), p in zip(existing, points, strict=True):
            if p is None:
                continue
            f = Fields(SYSTEM, p, f"GET /api/v1/restorePoints (backup {bid})")
            created = f.time("creationTime")
            f.raw("sessionId")  # present (null for an imported point): renamed, every point would look out-of-period
            sid = f.opt_text("sessionId")
            if sid in by_session:
                k = by_session[sid]
                runs[k] = replace(runs[k], recovery_point=created)
            else:  # made by a session outside the period: a point, not a run of this week
                runs.append(BackupRun(jobs[jid], min(created, period.start - timedelta(seconds=1)), "success", created))
        return metrics.backups_section(sorted(jobs.values()), runs, period, targets.backup_stale_hours)

    # ---- VSPC ------------------------------------------------------------------------------

    async def _cached(self, key: str, load: Any) -> list[dict[str, Any]]:
        async with self._lock:
            if key not in self._cache:
                self._cache[key] = await load()
            return self._cache[key]

    async def _vspc_section(
        self, c: VspcClient, customer: CustomerConfig, org: str, period: Period, targets: Targets
    ) -> Backups:
        all_jobs, all_vms = await gather_all(self._cached("jobs", c.jobs), self._cached("vms", c.protected_vms))
        jobs: dict[str, Fields] = {}
        where = "GET /api/v3/infrastructure/backupServers/jobs"
        require_in_schema(SYSTEM, all_jobs, ["organizationUid", "mappedOrganizationUid"], where)
        for i, j in enumerate(all_jobs):
            f = Fields(SYSTEM, j, f"GET /api/v3/infrastructure/backupServers/jobs item {i}")
            if org in (f.opt_text("organizationUid"), f.opt_text("mappedOrganizationUid")):
                jobs[f.text("instanceUid")] = f
        if not jobs:
            raise SourceDataError(
                SYSTEM, f"no job of organizationUid {org!r} (customers.ids.{self.name} of {customer.code})"
            )
        newest: dict[str, datetime] = {}
        for i, v in enumerate(all_vms):
            f = Fields(SYSTEM, v, f"GET /api/v3/protectedWorkloads/virtualMachines item {i}")
            f.raw("jobUid"), f.raw("latestRestorePointDate")  # present, even if null
            jid = f.opt_text("jobUid")
            t = f.opt_time("latestRestorePointDate")
            if jid in jobs and t is not None:
                newest[jid] = max(t, newest.get(jid, t))
        runs: list[BackupRun] = []
        names = []
        for jid, f in jobs.items():
            name = f.text("name")
            names.append(name)
            f.raw("lastRun"), f.raw("lastEndTime")  # present, even if null (a job that never ran)
            last_run = f.opt_time("lastRun")
            point = newest.get(jid)
            for what, t in (("last ran", last_run), ("has a restore point from", point)):
                if t is not None and t >= period.end:
                    raise SourceDataError(
                        SYSTEM,
                        f"VSPC keeps only each job's latest state, and job {name!r} {what} "
                        f"{iso_z(t)}, after the period end {iso_z(period.end)}: this week cannot be "
                        'computed from VSPC (api = "vbr" reads the session history)',
                    )
            if point is not None:
                runs.append(BackupRun(name, point, "success", point))
            status = RESULTS.get(f.text("status"))
            ended = f.opt_time("lastEndTime") or last_run
            if status is not None and ended is not None:
                runs.append(BackupRun(name, max(ended, point) if point else ended, status, None))
        result = metrics.backups_section(sorted(names), runs, period, targets.backup_stale_hours)
        return Backups(
            success_rate_pct=None,
            protected=tuple(replace(p, runs_ok=0, runs_warning=0, runs_failed=0) for p in result.protected),
            runs_total=0,
            runs_warning=0,
            run_history=False,
        )

    # ---- common -----------------------------------------------------------------------------

    async def customer_records(self) -> list[SourceRecord]:
        """VSPC: its companies. VBR has no customer entity (customers are job-name prefixes): none."""
        if not isinstance(self.client, VspcClient):
            return []
        out = []
        for i, comp in enumerate(await self.client.companies()):
            f = Fields(SYSTEM, comp, f"GET /api/v3/organizations/companies item {i}")
            out.append(SourceRecord(self.name, f.text("instanceUid"), f.text("name")))
        return out

    async def check_id(self, cid: str) -> str | None:
        """What ``customers.ids.<source> = cid`` names here, or None if nothing (``config check``).

        VBR: the jobs whose name starts with the prefix (one ``jobs/states`` query); VSPC: the company.
        """
        if isinstance(self.client, VbrClient):
            jobs = await self.client.job_states(cid)
            if not jobs:
                return None
            names = sorted(
                Fields(SYSTEM, j, f"GET /api/v1/jobs/states item {i}").text("name") for i, j in enumerate(jobs)
            )
            return (
                f"{len(names)} job{'s' if len(names) != 1 else ''} "
                f"({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"
            )
        return next((r.name for r in await self.customer_records() if r.id == cid), None)

    async def probe(self) -> str:
        if isinstance(self.client, VbrClient):
            f = Fields(SYSTEM, await self.client.server_info(), "GET /api/v1/serverInfo")
            build, name = f.text("buildVersion"), f.text("name")
            return f"Veeam Backup & Replication {build} ({name}), REST {self.client.api_version}"
        n = await self.client.company_count()
        return f"Veeam Service Provider Console REST v3: {n} compan{'ies' if n != 1 else 'y'}"

    async def aclose(self) -> None:
        await self._httpx.aclose()

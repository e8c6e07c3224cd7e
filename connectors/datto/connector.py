"""Datto BCDR → the report's backups section.

Customer mapping: ``[customers.ids] <source> = "<organizationId>"`` (all digits) or the
appliance's ``clientCompanyName`` (compared case-insensitively). Every appliance of that
organization counts; each non-archived asset (agent or share) on them is one protected item,
named by the asset's ``name``.

Formulas (the shared ones in ``reporting.metrics.backups_section``, fed from ``/asset``):

- a run = one ``backups[]`` entry of an asset. Its time is ``timestamp`` — the snapshot time,
  which is both the recovery point and (Datto gives no end time) the time the run is counted at.
- run status: ``backup.status == "success"`` → ``success``; but ``warning`` when the snapshot's
  ``localVerification.errors`` is non-empty or its ``advancedVerification.screenshotVerification``
  failed (the point exists, its restorability is in doubt — the screenshot is the
  restore-readiness signal); ``failure``/``failed``/``error`` → ``failed``; an empty status (a
  backup still running) is skipped; any other value → unavailable, naming it.
- ``success_rate_pct`` = 100 × (success + warning) / runs with ``timestamp`` in the period.
- ``last_success`` = the newest successful snapshot at or before period end; when ``backups[]``
  holds none, the asset's ``lastSnapshot`` (the newest local snapshot) if that is at or before
  period end. ``rpo_hours`` = period end − ``last_success``; status ``stale`` above the
  customer's ``backup_stale_hours``, ``failed`` when the newest run at or before period end
  failed, ``never`` without any snapshot.

Also per item (shown as their own columns): ``last_offsite`` = the asset's ``latestOffsite``
(epoch) when it is at or before period end — Datto gives only the newest offsite point, so for a
past week whose end it has moved beyond, the offsite state then is unknown (None); and the
restore-readiness signal: ``verified``/``verified_at`` = the screenshot verification of the newest
``backups[]`` entry at or before period end that has one (``advancedVerification.
screenshotVerification.status``), else the asset's ``lastScreenshotAttemptStatus`` /
``lastScreenshotAttempt`` when that attempt is at or before period end; None when there is none.

History limit: ``/asset`` returns only each asset's most recent ``backups[]`` entries. A week
whose start precedes an asset's oldest returned entry cannot be computed honestly (earlier runs
are missing), so the section is unavailable with that reason instead of a partial number.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.datto.client import SYSTEM, DattoClient, error_message
from connectors.fields import Fields, iso_z, require_in_schema
from connectors.http import gather_all, require_credential, require_secret, require_url, source_http
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.metrics import BackupRun
from reporting.models import Backups, Period, Targets
from reporting.sources import SourceDataError, SourceRecord

log = logging.getLogger(__name__)

BACKUP_OK = frozenset({"success"})
BACKUP_FAILED = frozenset({"failure", "failed", "error"})
SCREENSHOT_OK = frozenset({"success", "1", "true", "passed"})
SCREENSHOT_FAILED = frozenset({"failure", "failed", "error", "0", "false"})
# fields the API documents on every asset / backups[] entry (null when unset): one absent from all of
# an answer is a renamed field (a missing latestOffsite would silently empty "last offsite")
ASSET_SCHEMA = ("latestOffsite", "lastSnapshot", "lastScreenshotAttempt", "lastScreenshotAttemptStatus")
BACKUP_SCHEMA = ("localVerification.errors", "advancedVerification.screenshotVerification.status")


def _literal(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


def run_status(entry: Fields) -> str | None:
    """``success`` | ``warning`` | ``failed`` for one ``backups[]`` entry; None while running."""
    status = _literal(entry.obj("backup").raw("status"))
    if not status:
        return None
    if status in BACKUP_FAILED:
        return "failed"
    if status not in BACKUP_OK:
        raise SourceDataError(SYSTEM, f"{entry.where}: unknown backup.status {status!r} (expected success or failure)")
    lv = entry.opt_obj("localVerification")
    if lv is not None and lv.has("errors") and lv.array("errors"):
        return "warning"
    shot = entry.opt_obj("advancedVerification.screenshotVerification")
    if shot is not None:
        s = _literal(shot.raw("status")) if shot.has("status") else None
        if s in SCREENSHOT_FAILED:
            return "warning"
        if s and s not in SCREENSHOT_OK:
            raise SourceDataError(SYSTEM, f"{shot.where}: unknown screenshot status {s!r}")
    return "success"


def asset_checks(asset: Fields, period: Period) -> tuple[datetime | None, bool | None, datetime | None]:
    """(last_offsite, verified, verified_at) of one asset at period end (see the module docstring)."""
    offsite = asset.opt_time("latestOffsite") if asset.has("latestOffsite") else None
    if offsite is not None and offsite > period.end:
        offsite = None
    shots: list[tuple[datetime, bool]] = []
    for i, b in enumerate(asset.array("backups")):
        e = Fields(SYSTEM, b, f"{asset.where} backups[{i}]")
        shot = e.opt_obj("advancedVerification.screenshotVerification")
        s = _literal(shot.raw("status")) if shot is not None and shot.has("status") else None
        ts = e.time("timestamp")
        if s and ts <= period.end and (s in SCREENSHOT_OK or s in SCREENSHOT_FAILED):
            shots.append((ts, s in SCREENSHOT_OK))
    if shots:
        at, ok = max(shots)
        return offsite, ok, at
    attempt = asset.opt_time("lastScreenshotAttempt") if asset.has("lastScreenshotAttempt") else None
    if attempt is not None and attempt <= period.end and asset.has("lastScreenshotAttemptStatus"):
        return offsite, asset.flag("lastScreenshotAttemptStatus"), attempt
    return offsite, None, None


# /asset returns each asset's recent backups only (how many is UNVERIFIED): a period longer than a
# week may start before them. Its posture (last good point, RPO, status) is still right when the
# history covers at least the period's last week; its success rate would not be, so none is given.
POSTURE_ONLY_COVERAGE = timedelta(days=7)


def asset_runs(asset: Fields, period: Period, short_history: list[str] | None = None) -> list[BackupRun]:
    """The runs of one asset as vendor-neutral records, after the history-limit check. With
    ``short_history`` (a period longer than a week), an asset whose history starts inside the
    period but covers its last week is added to it instead of failing the section."""
    name = asset.text("name")
    entries = [Fields(SYSTEM, b, f"{asset.where} ({name}) backups[{i}]") for i, b in enumerate(asset.array("backups"))]
    asset.raw("lastSnapshot")  # present (null before the first snapshot): a renamed key must not pass silently
    last_snapshot = asset.opt_time("lastSnapshot")
    runs: list[BackupRun] = []
    for e in entries:
        ts = e.time("timestamp")
        status = run_status(e)
        if status is None:
            continue
        runs.append(BackupRun(name, ts, status, ts if status != "failed" else None))
    if entries:
        oldest = min(e.time("timestamp") for e in entries)
        if period.start < oldest and short_history is not None and oldest <= period.end - POSTURE_ONLY_COVERAGE:
            short_history.append(name)
        elif period.start < oldest:
            raise SourceDataError(
                SYSTEM,
                f"the API returns {name}'s backups only back to {iso_z(oldest)}; the week from "
                f"{iso_z(period.start)} starts before that and cannot be computed from partial history",
            )
    elif last_snapshot is not None:
        raise SourceDataError(
            SYSTEM,
            f"{name} has snapshots (lastSnapshot {iso_z(last_snapshot)}) but the API returned no backups[] history",
        )
    if (
        not any(r.recovery_point is not None and r.recovery_point <= period.end for r in runs)
        and last_snapshot is not None
    ):
        if last_snapshot > period.end:
            raise SourceDataError(
                SYSTEM,
                f"{name}: no successful backup in the returned history at or before {iso_z(period.end)}, "
                "and the newest snapshot is later; the last good point at period end is unknown",
            )
        runs.append(BackupRun(name, last_snapshot, "success", last_snapshot))
    return runs


@connector_shape
class DattoConnector(ConnectorDefaults):
    """Datto BCDR connector (``[sources.<name>] type = "datto"``)."""

    sections = frozenset({"backups"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        public = require_credential(SYSTEM, name, source, "public_key")
        secret = require_secret(SYSTEM, name, source, "secret_key")
        self.http, self._httpx = source_http(SYSTEM, source, ctx, error_message=error_message, secrets=(secret,))
        self.client = DattoClient(
            self.http,
            require_url(SYSTEM, source),
            public,
            secret,
            per_page=int(source.option("per_page", 100)),
            source_name=name,
        )
        self._devices: list[dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def devices(self) -> list[dict[str, Any]]:
        """All appliances, read once per connector (customer-independent)."""
        async with self._lock:
            if self._devices is None:
                self._devices = await self.client.devices()
            return self._devices

    @staticmethod
    def _matches(device: Fields, cid: str) -> bool:
        if cid.isdigit():
            return device.has("organizationId") and device.text("organizationId") == cid
        company = device.opt_text("clientCompanyName")
        return company is not None and company.strip().casefold() == cid.strip().casefold()

    async def fetch_section(self, section: str, customer: CustomerConfig, period: Period, targets: Targets) -> Backups:
        if section != "backups":
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        cid = customer.ids.get(self.name)
        if not cid:
            raise SourceDataError(SYSTEM, f"{customer.code} has no Datto organization (customers.ids.{self.name})")
        devices = [Fields(SYSTEM, d, f"GET /v1/bcdr/device item {i}") for i, d in enumerate(await self.devices())]
        mine = [d for d in devices if self._matches(d, cid)]
        if not mine:
            raise SourceDataError(
                SYSTEM,
                f"no appliance with organizationId or clientCompanyName {cid!r} "
                f"(customers.ids.{self.name} of {customer.code})",
            )
        serials = [d.text("serialNumber") for d in mine]
        lists = await gather_all(*(self.client.assets(s) for s in serials))
        items: list[str] = []
        runs: list[BackupRun] = []
        short: list[str] = []  # assets whose returned history starts inside a longer period
        checks: dict[str, tuple[datetime | None, bool | None, datetime | None]] = {}
        for serial, assets in zip(serials, lists, strict=True):
            where = f"GET /v1/bcdr/device/{serial}/asset"
            require_in_schema(SYSTEM, assets, ASSET_SCHEMA, where)
            entries = [
                b for a in assets if isinstance(a, dict) and isinstance(a.get("backups"), list) for b in a["backups"]
            ]
            require_in_schema(SYSTEM, entries, BACKUP_SCHEMA, where + " backups[]")
            for i, a in enumerate(assets):
                asset = Fields(SYSTEM, a, f"GET /v1/bcdr/device/{serial}/asset item {i}")
                if asset.flag("isArchived"):
                    continue  # no longer protected: kept in the portal for its old points only
                name = asset.text("name")
                if name not in items:
                    items.append(name)
                runs.extend(asset_runs(asset, period, short if period.days > 7 else None))
                checks[name] = asset_checks(asset, period)
        result = metrics.backups_section(items, runs, period, targets.backup_stale_hours)
        if short:  # posture from what was returned; no success rate of runs partly unseen
            log.info(
                "datto: %s's backup history starts inside the %d-day period; reporting posture without a success rate",
                ", ".join(short),
                period.days,
                extra={"customer": customer.code, "source": self.name, "section": "backups"},
            )
            result = replace(
                result,
                success_rate_pct=None,
                runs_total=0,
                runs_warning=0,
                run_history=False,
                protected=tuple(replace(p, runs_ok=0, runs_warning=0, runs_failed=0) for p in result.protected),
            )
        protected = []
        for p in result.protected:
            offsite, verified, verified_at = checks.get(p.name, (None, None, None))
            protected.append(replace(p, last_offsite=offsite, verified=verified, verified_at=verified_at))
        return replace(result, protected=tuple(protected))

    async def customer_records(self) -> list[SourceRecord]:
        out: dict[str, SourceRecord] = {}
        for i, d in enumerate(await self.devices()):
            f = Fields(SYSTEM, d, f"GET /v1/bcdr/device item {i}")
            name = f.opt_text("clientCompanyName") or f.opt_text("organizationName") or ""
            key = f.text("organizationId") if f.has("organizationId") else name
            if key and key not in out:
                out[key] = SourceRecord(self.name, key, name or key)
        return sorted(out.values(), key=lambda r: r.name)

    def accepts_id(self, record: SourceRecord, cid: str) -> bool:
        """A customer mapped by company name (``fetch_section`` accepts it) maps that organization."""
        return not cid.isdigit() and record.name.strip().casefold() == cid.strip().casefold()

    async def check_id(self, cid: str) -> str | None:
        """The appliances ``cid`` selects, by organizationId or by company name, as ``fetch_section`` does."""
        devices = [Fields(SYSTEM, d, f"GET /v1/bcdr/device item {i}") for i, d in enumerate(await self.devices())]
        mine = [d for d in devices if self._matches(d, cid)]
        if not mine:
            return None
        company = mine[0].opt_text("clientCompanyName") or mine[0].opt_text("organizationName") or cid
        return f"{company} ({len(mine)} appliance{'s' if len(mine) != 1 else ''})"

    async def probe(self) -> str:
        body = await self.client._get("/v1/bcdr/device", {"_page": 1, "_perPage": 1})
        count = Fields(SYSTEM, body, "GET /v1/bcdr/device").obj("pagination").integer("count")
        return f"Datto BCDR API v1: {count} appliance{'s' if count != 1 else ''}"

    async def aclose(self) -> None:
        await self._httpx.aclose()

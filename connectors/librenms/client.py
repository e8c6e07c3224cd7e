"""Typed async client of the LibreNMS API v0 (``/api/v0``), over the shared ``HttpSource``.

Auth is the ``X-Auth-Token`` header (doc/API/index.md). Every answer is an object with
``status`` ("ok" | "error"); errors carry ``message`` (``api_error()`` in
``includes/html/api_functions.inc.php``). A rejected token never reaches that code: Laravel's
auth guard answers ``401 {"message": "Unauthenticated."}`` — we send ``Accept:
application/json`` so it never redirects to the login page instead.

LibreNMS has no paging: every list comes back whole. This module builds URLs and checks
envelopes; it never builds report objects (that is ``connector.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from connectors.fields import Fields
from connectors.http import HttpSource
from reporting.sources import SourceDataError

SYSTEM = "librenms"
API = "/api/v0"


def error_message(resp: httpx.Response) -> str | None:
    """``{"status": "error", "message": ...}`` (api_error) or Laravel's ``{"message": ...}``."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return None


class NotFound(Exception):
    """A LibreNMS 404 with its message (e.g. "Device group not found")."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class LibreNMSClient:
    def __init__(self, http: HttpSource, base_url: str, token: str):
        self.http = http
        self.base = base_url.rstrip("/") + API
        self._headers = {"X-Auth-Token": token, "Accept": "application/json"}

    async def _get(self, path: str, params: dict[str, Any] | None = None, *, allow_404: bool = False) -> dict[str, Any]:
        resp = await self.http.request(
            "GET",
            self.base + path,
            params=params,
            headers=self._headers,
            ok_statuses=frozenset({404}) if allow_404 else frozenset(),
        )
        if resp.status_code == 404:
            raise NotFound(error_message(resp) or "not found")
        body = self.http.decode(resp)
        f = Fields(SYSTEM, body, f"GET {API}{path.split('?')[0]}")
        status = f.text("status")
        if status != "ok":
            raise SourceDataError(
                SYSTEM, f"GET {API}{path}: status {status!r}: {f.opt_text('message') or 'no message'}"
            )
        return body

    async def system(self) -> dict[str, Any]:
        """``GET /system`` — version information (``system[0].local_ver``)."""
        body = await self._get("/system")
        rows = Fields(SYSTEM, body, f"GET {API}/system").array("system")
        if not rows:
            raise SourceDataError(SYSTEM, f"GET {API}/system: empty 'system' list")
        return rows[0]

    async def device_groups(self) -> list[Any]:
        """``GET /devicegroups`` — every group (``id``, ``name``, ``desc``, ``type``...); [] if none."""
        try:
            body = await self._get("/devicegroups", allow_404=True)
        except NotFound:  # "No device groups found"
            return []
        return Fields(SYSTEM, body, f"GET {API}/devicegroups").array("groups")

    async def group_devices(self, group: str, *, full: bool = True) -> list[Any]:
        """``GET /devicegroups/{id or name}[?full=1]`` — the group's device rows.

        A digits-only value is taken as the group id, anything else as its name (LibreNMS:
        ``ctype_digit($name) ? DeviceGroup::find($name) : ...where('name', $name)``). Without
        ``full`` only ``device_id`` comes back. Raises ``NotFound`` with LibreNMS' message for an
        unknown group ("Device group not found") or an empty one ("No devices found in group").
        """
        path = "/devicegroups/" + quote(group, safe="")
        body = await self._get(path, {"full": 1} if full else None, allow_404=True)
        return Fields(SYSTEM, body, f"GET {API}/devicegroups/{{group}}").array("devices")

    async def outages(self, device_id: int) -> list[Any]:
        """``GET /devices/{id}/outages`` — every recorded outage (``going_down``, ``up_again``),
        newest first. No date filter exists: the whole history comes back."""
        body = await self._get(f"/devices/{device_id}/outages")
        return Fields(SYSTEM, body, f"GET {API}/devices/{{id}}/outages").array("outages")

    async def locations(self) -> list[Any]:
        """``GET /resources/locations`` — ``id``, ``location`` (the name), ``lat``, ``lng``."""
        try:
            body = await self._get("/resources/locations", allow_404=True)
        except NotFound:  # "Locations do not exist"
            return []
        return Fields(SYSTEM, body, f"GET {API}/resources/locations").array("locations")

    async def scheduled_maintenance(self) -> list[Any]:
        """``GET /alerts/scheduled_maintenance`` — every alert schedule (doc/API/Alerts.md,
        "Scheduled maintenance"). Raises ``NotFound`` on a LibreNMS without this route."""
        body = await self._get("/alerts/scheduled_maintenance", allow_404=True)
        return Fields(SYSTEM, body, f"GET {API}/alerts/scheduled_maintenance").array("schedule")

"""Typed async clients for Veeam Backup & Replication REST v1 and Veeam Service Provider Console REST v3.

VBR (``https://<vbr>:9419``):

- every request carries ``x-api-version`` (``api_version``, default ``1.2-rev1``), the token
  request included;
- ``POST /api/oauth2/token`` (form ``grant_type=password&username=..&password=..``) gives
  ``access_token``/``refresh_token``/``expires_in``; requests send ``Authorization: Bearer``.
  The token is renewed with ``grant_type=refresh_token`` a minute before it expires and when a
  request answers 401 ``{"errorCode": "ExpiredToken"}`` (once; then the password grant);
- paging ``skip``/``limit``; answers ``{"data": [...], "pagination": {"total", "count", "skip",
  "limit"}}``; pages after the first are fetched concurrently;
- errors ``{"errorCode", "message", "resourceId"}``.

VSPC (``https://<vspc>:1280``): ``Authorization: Bearer <API key>``, paths ``/api/v3/...``, paging
``limit``/``offset``, answers ``{"data": [...], "meta": {"pagingInfo": {"total", "count",
"offset"}}, "errors": [...]}`` — a 200 whose ``errors`` is non-empty is an error too.

Clients return vendor JSON (dicts) and never build domain objects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from connectors.fields import Fields, iso_z
from connectors.http import HttpSource, gather_all
from reporting.sources import SourceAuthError, SourceDataError

T = TypeVar("T")

SYSTEM = "veeam"
DEFAULT_API_VERSION = "1.2-rev1"


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def vbr_error_message(resp: httpx.Response) -> str | None:
    """VBR's ``{"errorCode", "message", "resourceId"}`` → ``"errorCode: message"``."""
    body = _body(resp)
    if not isinstance(body, dict):
        return None
    code, message = body.get("errorCode"), body.get("message")
    if isinstance(code, str) and isinstance(message, str):
        return f"{code}: {message}"
    if isinstance(message, str):
        return message
    if isinstance(body.get("error_description"), str):  # the token endpoint's OAuth2 form
        return f"{body.get('error')}: {body['error_description']}"
    return code if isinstance(code, str) else None


def vspc_error_message(resp: httpx.Response) -> str | None:
    """VSPC's ``{"errors": [{"message", "type", "code"}]}`` → the first message."""
    body = _body(resp)
    if not isinstance(body, dict):
        return None
    errs = body.get("errors")
    if isinstance(errs, list) and errs and isinstance(errs[0], dict) and isinstance(errs[0].get("message"), str):
        return errs[0]["message"]
    return body.get("message") if isinstance(body.get("message"), str) else None


async def _pages(fetch: Callable[[int, int | None], Awaitable[tuple[list[Any], int]]], path: str) -> list[Any]:
    """Page 1 at offset 0; its item count is the page size the server grants; the rest concurrently."""
    items, total = await fetch(0, None)
    step = len(items)
    if step == 0 or step >= total:
        return items
    rest = await gather_all(*(fetch(off, step) for off in range(step, total, step)))
    for more, t in rest:
        if t != total:
            raise SourceDataError(SYSTEM, f"GET {path}: the total changed while paging ({total} → {t}); try again")
        items.extend(more)
    if len(items) != total:
        raise SourceDataError(SYSTEM, f"GET {path}: {len(items)} items read, the server announced {total}")
    return items


class VbrClient:
    """Veeam Backup & Replication REST API v1."""

    def __init__(
        self,
        http: HttpSource,
        base_url: str,
        username: str,
        password: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        page_size: int = 200,
        source_name: str = SYSTEM,
    ):
        self.http = http
        self.base = base_url.rstrip("/")
        self.username, self._password = username, password
        self.api_version = api_version
        self.page_size = page_size
        self.source_name = source_name
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.token_requests = 0

    def _refused(self, err: SourceAuthError) -> SourceAuthError:
        return SourceAuthError(
            SYSTEM,
            f"the VBR server refused the credentials (sources.{self.source_name}.username / password): "
            f"{str(err).removeprefix(f'{SYSTEM}: ')}",
        )

    async def _grant(self, form: dict[str, str]) -> None:
        self.token_requests += 1
        resp = await self.http.request(
            "POST",
            f"{self.base}/api/oauth2/token",
            data=form,
            ok_statuses=frozenset({400, 401}),
            headers={"x-api-version": self.api_version, "Accept": "application/json"},
        )
        if resp.status_code in (400, 401):  # OAuth2 answers a refused grant with 400 or 401
            raise SourceAuthError(
                SYSTEM,
                f"POST /api/oauth2/token was refused: HTTP {resp.status_code} {vbr_error_message(resp) or ''}".rstrip(),
            )
        f = Fields(SYSTEM, self.http.decode(resp), "POST /api/oauth2/token")
        self._access = f.text("access_token")
        self._refresh = f.opt_text("refresh_token")
        self._expires = time.monotonic() + max(0, f.integer("expires_in") - 60)

    async def _token(self, stale: str | None = None) -> str:
        """A valid access token; ``stale`` is one the server just called expired."""
        async with self._lock:
            if self._access is not None and self._access != stale and time.monotonic() < self._expires:
                return self._access
            if self._refresh is not None:
                try:
                    await self._grant({"grant_type": "refresh_token", "refresh_token": self._refresh})
                    assert self._access is not None
                    return self._access
                except SourceAuthError:
                    self._refresh = None  # the refresh token expired too: log in again
            try:
                await self._grant({"grant_type": "password", "username": self.username, "password": self._password})
            except SourceAuthError as err:
                raise self._refused(err) from err
            assert self._access is not None
            return self._access

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        token = await self._token()
        for attempt in (1, 2):
            resp = await self.http.request(
                "GET",
                f"{self.base}{path}",
                params=params,
                ok_statuses=frozenset({401}),
                headers={
                    "Authorization": f"Bearer {token}",
                    "x-api-version": self.api_version,
                    "Accept": "application/json",
                },
            )
            if resp.status_code != 401:
                return self.http.decode(resp)
            body = _body(resp)
            code = body.get("errorCode") if isinstance(body, dict) else None
            if code == "ExpiredToken" and attempt == 1:
                token = await self._token(stale=token)
                continue
            raise SourceAuthError(SYSTEM, f"GET {path} was refused: HTTP 401 {vbr_error_message(resp) or ''}".rstrip())
        raise AssertionError("unreachable")

    async def paged(self, path: str, params: dict[str, Any]) -> list[Any]:
        async def fetch(skip: int, limit: int | None) -> tuple[list[Any], int]:
            body = await self.get(path, {**params, "skip": skip, "limit": limit or self.page_size})
            f = Fields(SYSTEM, body, f"GET {path} (skip {skip})")
            return f.array("data"), f.obj("pagination").integer("total")

        return await _pages(fetch, path)

    @staticmethod
    def _name_filter(prefix: str) -> dict[str, str]:
        return {} if prefix == "*" else {"nameFilter": f"{prefix}*"}

    async def server_info(self) -> dict[str, Any]:
        """``GET /api/v1/serverInfo`` — name and build of the backup server."""
        return await self.get("/api/v1/serverInfo")

    async def job_states(self, prefix: str) -> list[dict[str, Any]]:
        """``GET /api/v1/jobs/states?nameFilter=<prefix>*`` — the jobs and their last result."""
        return await self.paged("/api/v1/jobs/states", self._name_filter(prefix))

    async def backups(self, prefix: str) -> list[dict[str, Any]]:
        """``GET /api/v1/backups?nameFilter=<prefix>*`` — backup chains (``name`` is the job's name)."""
        return await self.paged("/api/v1/backups", self._name_filter(prefix))

    async def sessions(self, prefix: str, ended_after: datetime, ended_before: datetime) -> list[dict[str, Any]]:
        """``GET /api/v1/sessions`` with ``endedAfterFilter``/``endedBeforeFilter`` = the period (UTC)."""
        params = {
            **self._name_filter(prefix),
            "endedAfterFilter": iso_z(ended_after),
            "endedBeforeFilter": iso_z(ended_before),
        }
        return await self.paged("/api/v1/sessions", params)

    async def last_session_before(self, job_id: str, before: datetime) -> dict[str, Any] | None:
        """The newest session of a job that ended before ``before`` (one item, newest first)."""
        body = await self.get(
            "/api/v1/sessions",
            {
                "jobIdFilter": job_id,
                "endedBeforeFilter": iso_z(before),
                "orderColumn": "EndTime",
                "orderAsc": "false",
                "skip": 0,
                "limit": 1,
            },
        )
        data = Fields(SYSTEM, body, "GET /api/v1/sessions (last before)").array("data")
        return data[0] if data else None

    async def newest_restore_point(
        self, backup_id: str, created_before: datetime | None, oldest: bool = False
    ) -> dict[str, Any] | None:
        """``GET /api/v1/restorePoints?backupIdFilter=..`` ordered by ``CreationTime``, one item: the
        newest created before ``created_before`` (or, with ``oldest``, the oldest one left)."""
        params: dict[str, Any] = {
            "backupIdFilter": backup_id,
            "orderColumn": "CreationTime",
            "orderAsc": "true" if oldest else "false",
            "skip": 0,
            "limit": 1,
        }
        if created_before is not None:
            params["createdBeforeFilter"] = iso_z(created_before)
        body = await self.get("/api/v1/restorePoints", params)
        data = Fields(SYSTEM, body, "GET /api/v1/restorePoints").array("data")
        return data[0] if data else None


class VspcClient:
    """Veeam Service Provider Console REST API v3."""

    def __init__(
        self, http: HttpSource, base_url: str, api_key: str, *, page_size: int = 500, source_name: str = SYSTEM
    ):
        self.http = http
        self.base = base_url.rstrip("/")
        self.page_size = page_size
        self.source_name = source_name
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            body = await self.http.get_json(f"{self.base}/api/v3{path}", params=params, headers=self._headers)
        except SourceAuthError as err:
            raise SourceAuthError(
                SYSTEM,
                f"VSPC refused the API key credentials (sources.{self.source_name}.api_key): "
                f"{str(err).removeprefix(f'{SYSTEM}: ')}",
            ) from err
        if isinstance(body, dict) and body.get("errors"):
            errs = body["errors"]
            first = errs[0].get("message") if isinstance(errs, list) and errs and isinstance(errs[0], dict) else errs
            raise SourceDataError(SYSTEM, f"GET /api/v3{path} answered errors: {str(first)[:160]}")
        return body

    async def paged(self, path: str) -> list[Any]:
        async def fetch(offset: int, limit: int | None) -> tuple[list[Any], int]:
            body = await self.get(path, {"limit": limit or self.page_size, "offset": offset})
            f = Fields(SYSTEM, body, f"GET /api/v3{path} (offset {offset})")
            return f.array("data"), f.obj("meta").obj("pagingInfo").integer("total")

        return await _pages(fetch, f"/api/v3{path}")

    async def companies(self) -> list[dict[str, Any]]:
        return await self.paged("/organizations/companies")

    async def company_count(self) -> int:
        body = await self.get("/organizations/companies", {"limit": 1, "offset": 0})
        return (
            Fields(SYSTEM, body, "GET /api/v3/organizations/companies").obj("meta").obj("pagingInfo").integer("total")
        )

    async def jobs(self) -> list[dict[str, Any]]:
        """``GET /api/v3/infrastructure/backupServers/jobs`` — every VBR job of every managed server."""
        return await self.paged("/infrastructure/backupServers/jobs")

    async def protected_vms(self) -> list[dict[str, Any]]:
        """``GET /api/v3/protectedWorkloads/virtualMachines`` — per VM: ``latestRestorePointDate``, ``jobUid``."""
        return await self.paged("/protectedWorkloads/virtualMachines")

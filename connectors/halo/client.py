"""Typed async client for the HaloPSA REST API.

What it speaks (sources and what is verified: docs/connectors/halopsa.md):

- OAuth2 client credentials: ``POST {auth_url}/token`` (optional ``?tenant=`` for hosted
  instances) with a form body ``grant_type=client_credentials&client_id=..&client_secret=..&scope=..``;
  the answer ``{"access_token", "token_type": "Bearer", "expires_in"}`` is cached and renewed 60 s
  before it expires, and once more when the API answers 401 (a token revoked early). A wrong
  client id or secret is Halo's OAuth error ``401 {"error": "invalid_client"}``;
- resources under ``{url}/api``: ``GET /Tickets``, ``/Client``, ``/Client/{id}``, ``/Priority``;
- list paging with ``pageinate=true&page_size=N&page_no=K`` (1-based) in an envelope
  ``{"record_count": N, "tickets": [...]}``: page 1 gives the total, the remaining pages are then
  fetched concurrently; a result that does not add up to ``record_count`` is an error, never a
  partial list.

The client builds URLs, authenticates and pages; it returns the vendor's JSON, never domain objects.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from connectors.fields import Fields
from connectors.http import HttpSource, gather_all
from reporting.sources import SourceAuthError, SourceDataError

SYSTEM = "halo"
REFRESH_BEFORE_SECONDS = 60.0
_CREDENTIAL_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope"})
MAX_PAGES = 10_000

T = TypeVar("T")


def halo_date(ts: datetime) -> str:
    """``startdate``/``enddate`` as Halo takes them: ``2024-05-06T00:00:00`` in UTC."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def halo_error_message(resp: httpx.Response) -> str | None:
    """OAuth errors (``{"error": "invalid_client", "error_description": ...}``), Halo's API errors
    (``{"message"}`` / ``{"Message"}`` / a bare JSON string)."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, str):
        desc = body.get("error_description")
        return f"{err}: {desc}" if isinstance(desc, str) and desc else err
    for key in ("message", "Message", "detail", "title"):
        if isinstance(body.get(key), str):
            return body[key]
    return None


class HaloClient:
    """One Halo instance, as one API application (client credentials)."""

    def __init__(
        self,
        http: HttpSource,
        api_url: str,
        auth_url: str,
        *,
        client_id: str,
        client_secret: str,
        scope: str = "all",
        tenant: str | None = None,
        page_size: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.auth_url = auth_url.rstrip("/")
        self.page_size = max(1, int(page_size))
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }
        self._tenant = tenant
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_issued = 0  # for tests: how many times a token was requested

    # -- auth ------------------------------------------------------------------------------
    async def token(self, stale: str | None = None) -> str:
        """The cached bearer token; a new one when it is within 60 s of expiry, or when ``stale``
        (the token the API just refused) is still the cached one."""
        async with self._lock:
            cached = self._token
            fresh = cached is not None and self._clock() < self._expires_at - REFRESH_BEFORE_SECONDS
            if cached is not None and fresh and (stale is None or stale != cached):
                return cached
            params = {"tenant": self._tenant} if self._tenant else None
            resp = await self.http.request(
                "POST", f"{self.auth_url}/token", params=params, data=self._form, ok_statuses=frozenset({400})
            )
            self.tokens_issued += 1
            if resp.status_code == 400:  # RFC 6749 §5.2 allows 400 for invalid_client/grant too
                reason = self.http.redact(halo_error_message(resp) or "HTTP 400")
                if reason.split(":")[0] in _CREDENTIAL_ERRORS:
                    raise SourceAuthError(SYSTEM, f"POST /auth/token: the credentials were refused — {reason}")
                raise SourceDataError(SYSTEM, f"POST /auth/token answered HTTP 400 — {reason}")
            f = Fields(SYSTEM, self.http.decode(resp), "POST /auth/token")
            token_type = f.opt_text("token_type")
            if token_type is not None and token_type.lower() != "bearer":
                raise SourceAuthError(SYSTEM, f"POST /auth/token issued a {token_type!r} token, not a Bearer token")
            self._token = f.text("access_token")
            self._expires_at = self._clock() + f.number("expires_in")
            return self._token

    async def get(
        self, path: str, params: Mapping[str, Any] | None = None, ok_statuses: frozenset[int] = frozenset()
    ) -> httpx.Response:
        """GET ``{api}{path}`` with the bearer token; on 401 renew the token once and retry."""
        url = self.api_url + path
        token = await self.token()
        resp = await self.http.request(
            "GET", url, params=params, headers={"Authorization": f"Bearer {token}"}, ok_statuses=ok_statuses | {401}
        )
        if resp.status_code == 401:
            token = await self.token(stale=token)
            resp = await self.http.request(
                "GET", url, params=params, headers={"Authorization": f"Bearer {token}"}, ok_statuses=ok_statuses
            )
        return resp

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.http.decode(await self.get(path, params))

    async def get_paged(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every item of a paginated list. Page 1 gives ``record_count``; the other pages are
        read concurrently. A server that caps ``page_size`` below what we asked is handled (the
        page count follows the size it actually returned). Items are de-duplicated by ``id``; if
        fewer than ``record_count`` remain, the list changed or paging broke — an error."""
        base = {**(params or {}), "pageinate": "true", "page_size": self.page_size}

        async def page(no: int) -> list[Any]:
            body = self.http.decode(await self.get(path, {**base, "page_no": no}))
            return Fields(SYSTEM, body, f"GET {path} page {no}").array(key)

        body = self.http.decode(await self.get(path, {**base, "page_no": 1}))
        f = Fields(SYSTEM, body, f"GET {path} page 1")
        total = f.integer("record_count")
        items = list(f.array(key))
        if len(items) < total:
            if not items:
                raise SourceDataError(SYSTEM, f"GET {path}: record_count is {total} but page 1 is empty")
            pages = math.ceil(total / len(items))
            if pages > MAX_PAGES:
                raise SourceDataError(SYSTEM, f"GET {path}: {pages} pages, more than {MAX_PAGES}")
            for chunk in await gather_all(*(page(no) for no in range(2, pages + 1))):
                items.extend(chunk)
        unique = _unique_by_id(items, path)
        if len(unique) < total:
            raise SourceDataError(
                SYSTEM,
                f"GET {path}: record_count is {total} but the pages hold {len(unique)} (changed while paging? try "
                "again)",
            )
        return unique

    # -- endpoints -------------------------------------------------------------------------
    async def clients(self) -> list[Any]:
        """``GET /Client`` (paginated, ``clients``): ``id``, ``name``, ``inactive``."""
        return await self.get_paged("/Client", "clients")

    async def client(self, client_id: int) -> dict[str, Any] | None:
        """``GET /Client/{id}``: ``id``, ``name``, ``datecreated``; None when Halo has no such client."""
        resp = await self.get(f"/Client/{client_id}", ok_statuses=frozenset({404}))
        if resp.status_code == 404:
            return None
        body = self.http.decode(resp)
        if not isinstance(body, dict):
            raise SourceDataError(SYSTEM, f"GET /Client/{client_id}: expected a JSON object")
        return body

    async def priorities(self) -> list[Any]:
        """``GET /Priority``: ``slaid``, ``priorityid``, ``name``, ``fixtime``, ``fixunits``."""
        body = await self.get_json("/Priority")
        if not isinstance(body, list):
            raise SourceDataError(SYSTEM, f"GET /Priority: expected a JSON array, got {type(body).__name__}")
        return body

    async def open_tickets(self, client_id: int | None) -> list[Any]:
        """``GET /Tickets?client_id=..&open_only=true``: the client's tickets open now (every
        client's without ``client_id``)."""
        params: dict[str, Any] = {"open_only": "true"}
        if client_id is not None:
            params["client_id"] = client_id
        return await self.get_paged("/Tickets", "tickets", params)

    async def tickets_closed_since(self, client_id: int | None, since: datetime) -> list[Any]:
        """``GET /Tickets?client_id=..&closed_only=true&datesearch=datecleared&startdate=..``: the
        client's tickets closed at or after ``since`` (no ``enddate``: up to now; every
        client's without ``client_id``)."""
        params: dict[str, Any] = {"closed_only": "true", "datesearch": "datecleared", "startdate": halo_date(since)}
        if client_id is not None:
            params["client_id"] = client_id
        return await self.get_paged("/Tickets", "tickets", params)

    async def agents(self) -> list[Any]:
        """``GET /Agent``: the agents (``id``, ``name``, ``team``) — UNVERIFIED beyond ``id``/``name``."""
        body = await self.get_json("/Agent")
        if not isinstance(body, list):
            raise SourceDataError(SYSTEM, f"GET /Agent: expected a JSON array, got {type(body).__name__}")
        return body

    async def feedback(self, client_id: int) -> list[Any] | None:
        """``GET /Feedback?client_id=..`` (paginated, ``feedback``): ``ticket_id``, ``score``, ``date``
        (UNVERIFIED names); None when the instance has no such resource (404)."""
        params = {"client_id": client_id, "pageinate": "true", "page_size": 1, "page_no": 1}
        probe = await self.get("/Feedback", params, ok_statuses=frozenset({404}))
        if probe.status_code == 404:
            return None
        return await self.get_paged("/Feedback", "feedback", {"client_id": client_id})


def _unique_by_id(items: list[Any], path: str) -> list[Any]:
    """Items de-duplicated by ``id`` — by (``client_id``, ``id``) where items carry a client, so a
    tenant-wide list whose ids are only unique per client (the sandbox's) is not collapsed."""
    seen: dict[Any, Any] = {}
    out = []
    for i, item in enumerate(items):
        f = Fields(SYSTEM, item, f"GET {path} item {i}")
        ident = (f.data.get("client_id"), f.raw("id"))
        if ident not in seen:
            seen[ident] = item
            out.append(item)
    return out

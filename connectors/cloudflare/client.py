"""Typed async client of the Cloudflare API v4 (REST + GraphQL Analytics), over ``HttpSource``.

- Auth: ``Authorization: Bearer <API token>``.
- REST envelope: ``{"success", "errors": [{"code", "message"}], "messages", "result",
  "result_info": {"page", "per_page", "count", "total_count", "total_pages"}}``. Lists are read
  with ``page``/``per_page``: page 1 says how many pages there are, the rest are fetched
  concurrently, and the total must equal ``total_count`` (otherwise the list changed or a page
  was short: refused, never half a list).
- A rejected token: ``success: false`` with code 10000 "Authentication error" (HTTP 403), or
  6003 "Invalid request headers" (HTTP 400, with 6103/6111 in ``error_chain``) for a malformed
  one — both are auth errors here.
- GraphQL (``POST /graphql``): ``{"data", "errors"}``. Errors come as HTTP 4xx/5xx or as ``200``
  with a non-empty ``errors`` array; both are translated into the connector error tree by their
  message (Cloudflare's "Error responses" page): rate/capacity → unavailable, "Unauthorized" /
  "not authorized" / "does not have access" → auth, anything else → data.

This module builds URLs and checks envelopes; the mapper (``connector.py``) builds the section.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from connectors.fields import Fields
from connectors.http import HttpSource
from reporting.sources import SourceAuthError, SourceDataError, SourceUnavailable

SYSTEM = "cloudflare"
AUTH_CODES = frozenset({6003, 6103, 6111, 9106, 9109, 10000})
NOT_FOUND_CODES = frozenset({7000, 7003, 1001})


def _errors(body: Any) -> list[dict[str, Any]]:
    errs = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errs if isinstance(e, dict)] if isinstance(errs, list) else []


def _describe(errs: list[dict[str, Any]]) -> str:
    parts = []
    for e in errs[:3]:
        msg = str(e.get("message", "")).strip() or "no message"
        parts.append(f"{msg} ({e['code']})" if "code" in e else msg)
    return "; ".join(parts) or "no error detail"


def error_message(resp: httpx.Response) -> str | None:
    """REST ``errors[].message (code)`` or GraphQL ``errors[].message``."""
    try:
        body = resp.json()
    except ValueError:
        return None
    errs = _errors(body)
    return _describe(errs) if errs else None


class UnknownObject(Exception):
    """Cloudflare could not route to the object (an unknown zone id): 7003/7000/1001."""


class CloudflareClient:
    def __init__(self, http: HttpSource, base_url: str, token: str, per_page: int = 50):
        self.http = http
        self.base = base_url.rstrip("/")
        self.per_page = per_page
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def _rest(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        where = f"GET {path}"
        resp = await self.http.request(
            "GET", self.base + path, params=params, headers=self._headers, ok_statuses=frozenset({400, 404})
        )
        body = self.http.decode(resp)
        errs = _errors(body)
        codes = {e.get("code") for e in errs}
        chain = {c.get("code") for e in errs for c in (e.get("error_chain") or []) if isinstance(c, dict)}
        success = body.get("success") if isinstance(body, dict) else None
        if resp.status_code >= 400 or success is False:
            if (codes | chain) & AUTH_CODES:
                raise SourceAuthError(SYSTEM, f"{where} was refused: the API token (credentials) — {_describe(errs)}")
            if codes & NOT_FOUND_CODES or resp.status_code == 404:
                raise UnknownObject(_describe(errs))
            raise SourceDataError(SYSTEM, f"{where} answered HTTP {resp.status_code}: {_describe(errs)}")
        f = Fields(SYSTEM, body, where)
        if f.flag("success") is not True:
            raise SourceDataError(SYSTEM, f"{where}: success is not true")
        return body

    async def list_all(self, path: str) -> list[Any]:
        """Every item of a paged REST list (``page``/``per_page``, ``result_info``)."""
        where = f"GET {path}"

        async def page(n: int) -> tuple[list[Any], Fields]:
            body = await self._rest(path, {"page": n, "per_page": self.per_page})
            f = Fields(SYSTEM, body, f"{where} page {n}")
            return f.array("result"), f.obj("result_info")

        first, info = await page(1)
        pages = (
            info.integer("total_pages")
            if info.has("total_pages")
            else -(-info.integer("total_count") // max(1, info.integer("per_page")))
        )
        total = info.integer("total_count")
        rest = await asyncio.gather(*(page(n) for n in range(2, pages + 1)))
        items = first + [i for r, _ in rest for i in r]
        if len(items) != total:
            raise SourceDataError(
                SYSTEM,
                f"{where}: {len(items)} items over {pages} pages but total_count says {total} (the list changed "
                "while paging?)",
            )
        return items

    async def healthchecks(self, zone_id: str) -> list[Any]:
        """``GET /zones/{zone_id}/healthchecks`` — standalone health checks (all pages)."""
        return await self.list_all(f"/zones/{zone_id}/healthchecks")

    async def zones(self) -> list[Any]:
        """``GET /zones`` — the zones the token can read (all pages)."""
        return await self.list_all("/zones")

    async def verify_token(self) -> dict[str, Any]:
        """``GET /user/tokens/verify`` — ``result.status`` "active" for a usable token."""
        body = await self._rest("/user/tokens/verify")
        return Fields(SYSTEM, body, "GET /user/tokens/verify").obj("result").data

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """``POST /graphql``; the ``data`` object, or the translated ``errors``."""
        body = await self.http.post_json(
            self.base + "/graphql", json_body={"query": query, "variables": variables}, headers=self._headers
        )
        errs = _errors(body)
        if errs:
            text = _describe(errs)
            low = text.lower()
            if any(w in low for w in ("try again later", "rate limiter", "too many", "excessive resources")):
                raise SourceUnavailable(SYSTEM, f"POST /graphql: {text}")
            if any(w in low for w in ("unauthorized", "not authorized", "does not have access")):
                raise SourceAuthError(
                    SYSTEM,
                    f"POST /graphql was refused (token credentials or plan lack Analytics for this zone): {text}",
                )
            raise SourceDataError(SYSTEM, f"POST /graphql: {text}")
        return Fields(SYSTEM, body, "POST /graphql").obj("data").data

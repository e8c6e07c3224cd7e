"""Typed async client for the Datto BCDR part of the Datto Partner Portal REST API (v1).

- Base URL ``https://api.datto.com`` (``[sources.<name>] url``); paths ``/v1/bcdr/...``.
- Auth: HTTP Basic with the partner API public key (user) and secret key (password).
- Paging: ``_page`` (1-based) and ``_perPage``; answers are ``{"pagination": {"page",
  "perPage", "totalPages", "count"}, "items": [...]}``. Once page 1 tells ``totalPages`` the
  remaining pages are fetched concurrently (``HttpSource`` bounds the concurrency).
- ``/asset`` is documented with the same paging parameters, but real clients read its answer
  as a bare JSON array; both shapes are accepted (a bare array is complete by itself).
- Errors: ``{"code": "...", "message": "..."}``.

The client returns vendor JSON (dicts) and never builds domain objects.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from connectors.fields import Fields
from connectors.http import HttpSource, gather_all
from reporting.sources import SourceAuthError, SourceDataError

T = TypeVar("T")

SYSTEM = "datto"
DEFAULT_PER_PAGE = 100


def error_message(resp: httpx.Response) -> str | None:
    """Datto's error body ``{"code", "message"}`` → ``"code: message"``."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code, message = body.get("code"), body.get("message")
    if isinstance(message, str) and message:
        return f"{code}: {message}" if code not in (None, "") else message
    return None


class DattoClient:
    def __init__(
        self,
        http: HttpSource,
        base_url: str,
        public_key: str,
        secret_key: str,
        *,
        per_page: int = DEFAULT_PER_PAGE,
        source_name: str = SYSTEM,
    ):
        self.http = http
        self.base = base_url.rstrip("/")
        self.per_page = per_page
        self.source_name = source_name
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return await self.http.get_json(f"{self.base}{path}", params=params, headers=self._headers)
        except SourceAuthError as err:
            raise SourceAuthError(
                SYSTEM,
                f"the Datto API refused the credentials (sources.{self.source_name}.public_key / secret_key): "
                f"{str(err).removeprefix(f'{SYSTEM}: ')}",
            ) from err

    def _page(self, body: Any, where: str) -> tuple[list[Any], int]:
        f = Fields(SYSTEM, body, where)
        pages = f.obj("pagination").integer("totalPages")
        return f.array("items"), pages

    async def _all_pages(self, path: str, extra: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a paged endpoint: page 1, then pages 2..totalPages concurrently."""
        params = {**(extra or {}), "_page": 1, "_perPage": self.per_page}
        first = await self._get(path, params)
        return await self._rest(path, extra, first)

    async def _rest(self, path: str, extra: dict[str, Any] | None, first: Any) -> list[Any]:
        items, pages = self._page(first, f"GET {path} page 1")
        if pages > 1:
            bodies = await gather_all(
                *(
                    self._get(path, {**(extra or {}), "_page": p, "_perPage": self.per_page})
                    for p in range(2, pages + 1)
                )
            )
            for p, body in enumerate(bodies, start=2):
                more, total = self._page(body, f"GET {path} page {p}")
                if total != pages:
                    raise SourceDataError(
                        SYSTEM, f"GET {path}: the page count changed while paging ({pages} → {total}); try again"
                    )
                items.extend(more)
        return items

    async def devices(self) -> list[dict[str, Any]]:
        """``GET /v1/bcdr/device`` — every BCDR appliance of the partner (hidden ones included)."""
        return await self._all_pages("/v1/bcdr/device")

    async def assets(self, serial: str) -> list[dict[str, Any]]:
        """``GET /v1/bcdr/device/{serialNumber}/asset`` — the agents and shares of one appliance."""
        path = f"/v1/bcdr/device/{quote(serial, safe='')}/asset"
        first = await self._get(path, {"_page": 1, "_perPage": self.per_page})
        if isinstance(first, list):
            return first
        return await self._rest(path, None, first)

"""Typed async client for Azure Resource Manager: Microsoft Sentinel incidents of a workspace,
and the subscriptions / Log Analytics workspaces a tenant can see (for ``config check``).

Auth: an app-only bearer token (``TenantTokens``; scope ``<resource>/.default``, resource
``https://management.azure.com`` by default). Every call carries ``api-version``. Paging:
``nextLink`` (ARM's, with an opaque ``$skipToken``) followed as given, to the end, and only on
the configured ARM host. Errors: ARM's body ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any

import httpx

from connectors.aad.tokens import TenantTokens
from connectors.fields import items
from connectors.http import HttpSource
from reporting.sources import SourceDataError

SYSTEM = "sentinel"
INCIDENTS_API_VERSION = "2025-06-01"
SUBSCRIPTIONS_API_VERSION = "2022-12-01"
WORKSPACES_API_VERSION = "2023-09-01"


def arm_error_message(resp: httpx.Response) -> str | None:
    """``AuthorizationFailed: The client ... does not have authorization ...`` from an ARM error."""
    try:
        body = resp.json()
    except ValueError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None
    text = ": ".join(str(x) for x in (err.get("code"), err.get("message")) if x)
    rid = resp.headers.get("x-ms-request-id")
    return f"{text} (x-ms-request-id {rid})" if text and rid else (text or None)


class ArmClient:
    def __init__(
        self,
        http: HttpSource,
        base_url: str,
        tokens: TenantTokens,
        resource: str,
        incidents_api_version: str = INCIDENTS_API_VERSION,
        subscriptions_api_version: str = SUBSCRIPTIONS_API_VERSION,
        workspaces_api_version: str = WORKSPACES_API_VERSION,
    ):
        self.http = http
        self.base = base_url.rstrip("/")  # e.g. https://management.azure.com
        self.tokens = tokens
        self.scope = resource.rstrip("/") + "/.default"
        self.incidents_api_version = incidents_api_version
        self.subscriptions_api_version = subscriptions_api_version
        self.workspaces_api_version = workspaces_api_version
        self._origin = httpx.URL(self.base)

    async def _pages(self, tenant: str, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        url: str = f"{self.base}{path}"
        query: dict[str, str] | None = params
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            page += 1
            where = f"GET {path} page {page}"
            token = await self.tokens.token(tenant, self.scope)
            resp = await self.http.request(
                "GET", url, params=query, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
            )
            body = self.http.decode(resp)
            out.extend(items(SYSTEM, body, "value", where))
            link = body.get("nextLink") if isinstance(body, dict) else None
            if not link:
                return out
            u = httpx.URL(str(link))
            if (u.scheme, u.host, u.port) != (self._origin.scheme, self._origin.host, self._origin.port):
                raise SourceDataError(
                    SYSTEM, f"{where}: nextLink points to another host ({u.host}); not following it with the token"
                )
            url, query = str(link), None

    async def incidents(self, tenant: str, workspace: str, odata_filter: str) -> list[dict[str, Any]]:
        """``GET {workspace}/providers/Microsoft.SecurityInsights/incidents?$filter=...`` — all pages."""
        return await self._pages(
            tenant,
            f"{workspace}/providers/Microsoft.SecurityInsights/incidents",
            {"api-version": self.incidents_api_version, "$filter": odata_filter},
        )

    async def subscriptions(self, tenant: str) -> list[dict[str, Any]]:
        return await self._pages(tenant, "/subscriptions", {"api-version": self.subscriptions_api_version})

    async def workspaces(self, tenant: str, subscription_id: str) -> list[dict[str, Any]]:
        return await self._pages(
            tenant,
            f"/subscriptions/{subscription_id}/providers/Microsoft.OperationalInsights/workspaces",
            {"api-version": self.workspaces_api_version},
        )

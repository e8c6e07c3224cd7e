"""Typed async client for the Microsoft Graph security endpoints reportbot reads.

Auth: an app-only bearer token of the customer's tenant (``TenantTokens``: azure-identity
client credentials, scope ``<resource>/.default``, resource ``https://graph.microsoft.com`` by
default). Paging: ``@odata.nextLink`` followed as given, to the end — never a ``$skip`` built
here — and only on the configured Graph host (a link elsewhere would carry the token away).
Errors: Graph's body ``{"error": {"code", "message", "innerError": {"request-id", ...}}}`` is
parsed for the message; HTTP status categories are ``HttpSource``'s.

This module builds URLs and returns vendor JSON objects; it never builds report records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from connectors.aad.tokens import TenantTokens
from connectors.fields import Fields, items
from connectors.http import HttpSource
from reporting.sources import SourceDataError

SYSTEM = "defender"


def graph_error_message(resp: httpx.Response) -> str | None:
    """``Forbidden: Missing application roles ... (request-id 1234)`` from a Graph error body."""
    try:
        body = resp.json()
    except ValueError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None
    code, message = err.get("code"), err.get("message")
    inner = err.get("innerError") or err.get("innererror") or {}
    rid = inner.get("request-id") if isinstance(inner, dict) else None
    text = ": ".join(str(x) for x in (code, message) if x)
    return f"{text} (request-id {rid})" if rid and text else (text or None)


@dataclass(frozen=True)
class ScorePage:
    """Secure Score snapshots as read, and whether Graph flagged the answer as partial (206)."""

    snapshots: list[dict[str, Any]]
    partial: bool


class GraphSecurityClient:
    def __init__(self, http: HttpSource, base_url: str, tokens: TenantTokens, resource: str):
        self.http = http
        self.base = base_url.rstrip("/")  # e.g. https://graph.microsoft.com/v1.0
        self.tokens = tokens
        self.scope = resource.rstrip("/") + "/.default"
        self._origin = httpx.URL(self.base).copy_with(path="/", query=None, fragment=None)

    async def _get(self, tenant: str, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        token = await self.tokens.token(tenant, self.scope)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Prefer": "include-unknown-enum-members",
        }
        return await self.http.request("GET", url, params=params, headers=headers)

    def _check_link(self, link: str, where: str) -> str:
        u = httpx.URL(link)
        if (u.scheme, u.host, u.port) != (self._origin.scheme, self._origin.host, self._origin.port):
            raise SourceDataError(
                SYSTEM,
                f"{where}: @odata.nextLink points to another host ({u.host}); not following it with the tenant's token",
            )
        return link

    async def _pages(self, tenant: str, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every item of a collection, following ``@odata.nextLink`` until it is absent."""
        url: str = f"{self.base}{path}"
        query: dict[str, str] | None = params
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            page += 1
            where = f"GET {path} page {page}"
            resp = await self._get(tenant, url, query)
            body = self.http.decode(resp)
            out.extend(items(SYSTEM, body, "value", where))
            link = body.get("@odata.nextLink") if isinstance(body, dict) else None
            if not link:
                return out
            url, query = self._check_link(str(link), where), None

    async def incidents(self, tenant: str, odata_filter: str) -> list[dict[str, Any]]:
        """``GET /security/incidents?$filter=...`` — all pages."""
        return await self._pages(tenant, "/security/incidents", {"$filter": odata_filter})

    async def secure_scores(self, tenant: str, back_to: datetime, top: int = 90) -> ScorePage:
        """``GET /security/secureScores?$top=90`` (daily snapshots, newest first).

        Follows ``@odata.nextLink`` until a snapshot at or before ``back_to`` has been seen in a
        list that is still in descending ``createdDateTime`` order (older pages cannot change the
        newest snapshot at or before ``back_to`` or later), or to the end. A ``206 Partial
        Content`` answer marks the result partial.
        """
        url: str = f"{self.base}/security/secureScores"
        query: dict[str, str] | None = {"$top": str(top)}
        out: list[dict[str, Any]] = []
        partial = False
        ordered, last, page = True, None, 0
        while True:
            page += 1
            where = f"GET /security/secureScores page {page}"
            resp = await self._get(tenant, url, query)
            partial = partial or resp.status_code == 206
            body = self.http.decode(resp)
            batch = items(SYSTEM, body, "value", where)
            for n, obj in enumerate(batch):
                at = Fields(SYSTEM, obj, f"{where} item {n + 1}").time("createdDateTime")
                ordered = ordered and (last is None or at <= last)
                last = at
            out.extend(batch)
            link = body.get("@odata.nextLink") if isinstance(body, dict) else None
            if not link or (ordered and last is not None and last <= back_to):
                return ScorePage(out, partial)
            url, query = self._check_link(str(link), where), None

    async def delegated_customers(self, partner_tenant: str) -> list[dict[str, Any]]:
        """``GET /tenantRelationships/delegatedAdminCustomers`` in the partner (MSP) tenant (GDAP)."""
        return await self._pages(partner_tenant, "/tenantRelationships/delegatedAdminCustomers", {"$top": "300"})

    async def first_delegated_customer(self, partner_tenant: str) -> list[dict[str, Any]]:
        """One page of one GDAP customer: the cheap authenticated call of ``probe``."""
        resp = await self._get(
            partner_tenant, f"{self.base}/tenantRelationships/delegatedAdminCustomers", {"$top": "1"}
        )
        return items(SYSTEM, self.http.decode(resp), "value", "GET /tenantRelationships/delegatedAdminCustomers")

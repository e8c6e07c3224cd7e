"""Loopback Azure Resource Manager for Microsoft Sentinel incidents over the sandbox.

The MSP reaches its customers' workspaces through Azure Lighthouse: each customer's subscription
is delegated to the MSP's tenant, so ONE app registration in the MSP tenant, with a token of
that tenant (scope ``https://management.azure.com/.default``), reads every delegated
subscription. A token of the subscription's own (customer) tenant works too. Served over HTTPS
with the same throwaway CA as the token endpoint (an
:class:`~connectors.aad.simulator.EntraSimulator` started alongside):

- ``GET /subscriptions?api-version=2022-12-01`` — the subscriptions the caller can see
  (``managedByTenants`` names the MSP), ``nextLink`` paging;
- ``GET /subscriptions/{sub}/providers/Microsoft.OperationalInsights/workspaces?api-version=...``;
- ``GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}
  /providers/Microsoft.SecurityInsights/incidents?api-version=...`` with ``$filter``
  (``properties/<name>`` paths), ``$orderby``, ``$top`` (a total), paged by ``page_size`` with a
  ``nextLink`` carrying an opaque ``$skipToken``.

ARM's behaviour: paths are case-insensitive; a missing or unknown ``api-version`` is 400
(``MissingApiVersionParameter`` / ``NoRegisteredProviderFound``); a token of a tenant that
neither owns nor manages the subscription is 401 ``InvalidAuthenticationTokenTenant``; an
unknown subscription / workspace is 404; errors are ``{"error": {"code", "message"}}``.

Sandbox records as Sentinel incidents: ``properties.incidentNumber`` = the record id,
``title`` verbatim, ``severity`` High/Medium/Low/Informational, ``createdTimeUtc`` = created; a
resolved record is ``status: Closed`` with ``lastModifiedTimeUtc`` = its resolution time (the
REST API has no closed time; nothing touches a sandbox incident after closing, so the
connector's approximation is exact here); open ones are ``New`` or ``Active`` with
``lastModifiedTimeUtc`` = created.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from aiohttp import web

from connectors.aad.odata import FilterError, compile_filter
from connectors.aad.pki import ThrowawayPKI
from connectors.aad.simulator import ARM_RESOURCE, EntraSimulator, TlsSimulator, TokenInvalid
from connectors.defender.simulator import PARTNER_TENANT
from connectors.sandbox.dataset import MSP_NAME, SandboxCustomer, SandboxDataset
from reporting.metrics import IncidentRecord

ARM_AUDIENCES = (ARM_RESOURCE, ARM_RESOURCE + "/", "https://management.core.windows.net/")
INCIDENT_VERSIONS = ("2024-03-01", "2025-06-01")
SUBSCRIPTION_VERSIONS = ("2020-01-01", "2021-01-01", "2022-12-01")
WORKSPACE_VERSIONS = ("2022-10-01", "2023-09-01", "2025-02-01")
WORKSPACE = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-f-]{36})/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.operationalinsights"
    r"/workspaces/(?P<ws>[^/]+)$",
    re.IGNORECASE,
)


def arm_time(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}0Z"


def customer_tenant(c: SandboxCustomer) -> str:
    """The sandbox customer's own Entra tenant (the subscription's home tenant)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, c.domain))


class SentinelSimulator(TlsSimulator):
    system: ClassVar[str] = "sentinel"

    def __init__(self, dataset: SandboxDataset, page_size: int = 2, pki: ThrowawayPKI | None = None):
        super().__init__(pki)
        self.dataset = dataset
        self.page_size = page_size
        self.client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"reportbot-arm-app:{self.secret}"))
        self.workspaces: dict[str, SandboxCustomer] = {}  # canonical workspace path (lower case) -> customer
        for c in dataset.customers_in("sentinel"):
            self.workspaces[c.ids["sentinel"].lower()] = c
        tenants = {PARTNER_TENANT: MSP_NAME}
        tenants.update({customer_tenant(c): c.name for c in self.workspaces.values()})
        self.entra = EntraSimulator(
            self.pki,
            self.client_id,
            self.secret,
            tenants,
            roles={ARM_RESOURCE: ()},
            latency_ms=lambda: self.faults.latency_ms,
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        await self.entra.start(host)
        try:
            return await super().start(host, port)
        except BaseException:
            await self.entra.stop()
            raise

    async def stop(self) -> None:
        await self.entra.stop()
        await super().stop()

    def source_config(self) -> dict[str, Any]:
        return {
            "type": "sentinel",
            "url": self.url,
            "authority": self.entra.url,
            "ca_bundle": str(self.pki.ca_path),
            "tenant_id": PARTNER_TENANT,
            "client_id": self.client_id,
            "client_secret": self.secret,
            "concurrency": 8,
        }

    # -- ARM's envelope and errors
    def error_body(self, status: int, message: str, code: str = "") -> tuple[Any, str]:
        code = code or {
            429: "TooManyRequests",
            500: "InternalServerError",
            502: "BadGateway",
            503: "ServiceUnavailable",
            504: "GatewayTimeout",
        }.get(status, "UnknownError")
        return {"error": {"code": code, "message": message}}, "application/json"

    def _headers(self) -> dict[str, str]:
        rid = str(uuid.uuid4())
        return {
            "x-ms-request-id": rid,
            "x-ms-correlation-request-id": rid,
            "x-ms-ratelimit-remaining-subscription-reads": "11999",
        }

    def _arm_error(self, status: int, code: str, message: str) -> web.Response:
        return self.json(self.error_body(status, message, code)[0], status=status, headers=self._headers())

    def _subscriptions_of(self, tid: str) -> list[SandboxCustomer]:
        """Lighthouse: the MSP tenant sees every delegated subscription; a customer tenant its own."""
        return [c for c in self.workspaces.values() if tid in (PARTNER_TENANT, customer_tenant(c))]

    def _auth(self, request: web.Request) -> dict[str, Any] | web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return self._arm_error(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        try:
            return self.entra.verify(header[7:].strip(), ARM_AUDIENCES)
        except TokenInvalid as err:
            return self._arm_error(401, "InvalidAuthenticationToken", f"The access token is invalid. {err}")

    def _version(self, request: web.Request, allowed: tuple[str, ...], kind: str) -> web.Response | None:
        v = request.query.get("api-version")
        if not v:
            return self._arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if v not in allowed:
            return self._arm_error(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for API version '{v}' and type '{kind}'. "
                f"The supported api-versions are '{', '.join(allowed)}'.",
            )
        return None

    def _page(self, request: web.Request, items: list[dict[str, Any]], total_cap: int | None = None) -> web.Response:
        token = request.query.get("$skipToken") or request.query.get("$skiptoken")
        try:
            skip = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            return self._arm_error(400, "InvalidSkipToken", "The $skipToken is not valid.")
        total = len(items) if total_cap is None else min(total_cap, len(items))
        body: dict[str, Any] = {"value": items[skip : min(skip + self.page_size, total)]}
        if skip + self.page_size < total:
            params = {k: v for k, v in request.query.items() if k.lower() != "$skiptoken"}
            params["$skipToken"] = base64.urlsafe_b64encode(str(skip + self.page_size).encode()).decode()
            body["nextLink"] = f"{self.url}{request.path}?" + urlencode(params, quote_via=quote, safe="$'(),:/")
        return self.json(body, headers=self._headers())

    # -- routes: one catch-all, because ARM paths are case-insensitive
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{tail:.*}", self._route)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        claims = self._auth(request)
        if isinstance(claims, web.Response):
            return claims
        path = request.path.rstrip("/")
        low = path.lower()
        if low == "/subscriptions":
            return self._list_subscriptions(request, claims)
        m = re.fullmatch(r"/subscriptions/([^/]+)/providers/microsoft\.operationalinsights/workspaces", low)
        if m:
            return self._list_workspaces(request, claims, m.group(1))
        suffix = "/providers/microsoft.securityinsights/incidents"
        if low.endswith(suffix):
            return self._incidents(request, claims, path[: -len(suffix)])
        return self._arm_error(
            404, "InvalidResourceType", f"The resource type could not be found in the namespace for path '{path}'."
        )

    def _subscription_json(self, c: SandboxCustomer) -> dict[str, Any]:
        sub = WORKSPACE.match(c.ids["sentinel"]).group("sub")  # type: ignore[union-attr]  # dataset ids match
        return {
            "id": f"/subscriptions/{sub}",
            "subscriptionId": sub,
            "tenantId": customer_tenant(c),
            "displayName": f"{c.name} - Security",
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
            "managedByTenants": [{"tenantId": PARTNER_TENANT}],
            "tags": {},
        }

    def _list_subscriptions(self, request: web.Request, claims: dict[str, Any]) -> web.Response:
        bad = self._version(request, SUBSCRIPTION_VERSIONS, "subscriptions")
        if bad:
            return bad
        subs = sorted(self._subscriptions_of(claims["tid"]), key=lambda c: c.ids["sentinel"])
        return self._page(request, [self._subscription_json(c) for c in subs])

    def _list_workspaces(self, request: web.Request, claims: dict[str, Any], sub: str) -> web.Response:
        bad = self._version(request, WORKSPACE_VERSIONS, "workspaces")
        if bad:
            return bad
        visible = [
            c for c in self._subscriptions_of(claims["tid"]) if f"/subscriptions/{sub}/" in c.ids["sentinel"].lower()
        ]
        if not visible:
            return self._arm_error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        rows = []
        for c in visible:
            m = WORKSPACE.match(c.ids["sentinel"])
            assert m is not None
            rows.append(
                {
                    "id": c.ids["sentinel"],
                    "name": m.group("ws"),
                    "type": "Microsoft.OperationalInsights/workspaces",
                    "location": "westeurope",
                    "tags": {},
                    "properties": {
                        "customerId": str(uuid.uuid5(uuid.NAMESPACE_URL, c.ids["sentinel"])),
                        "provisioningState": "Succeeded",
                        "sku": {"name": "PerGB2018"},
                        "retentionInDays": 90,
                    },
                }
            )
        return self._page(request, rows)

    def incident_json(self, workspace: str, r: IncidentRecord) -> dict[str, Any]:
        n = int(r.id)
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{workspace}/incident/{n}"))
        closed = r.resolved is not None
        rid = f"{workspace}/providers/Microsoft.SecurityInsights/Incidents/{name}"
        props: dict[str, Any] = {
            "title": r.title,
            "description": "",
            "severity": r.severity[:1].upper() + r.severity[1:],
            "status": "Closed" if closed else ("New" if n % 2 else "Active"),
            "owner": {
                "objectId": None,
                "email": None,
                "assignedTo": None,
                "userPrincipalName": None,
                "ownerType": "Unknown",
            },
            "labels": [],
            "firstActivityTimeUtc": arm_time(r.created),
            "lastActivityTimeUtc": arm_time(r.created),
            "lastModifiedTimeUtc": arm_time(r.resolved or r.created),
            "createdTimeUtc": arm_time(r.created),
            "incidentNumber": n,
            "additionalData": {
                "alertsCount": 1,
                "bookmarksCount": 0,
                "commentsCount": 0,
                "alertProductNames": ["Azure Sentinel"],
                "tactics": [],
                "techniques": [],
            },
            "relatedAnalyticRuleIds": [],
            "incidentUrl": f"https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{rid}",
            "providerName": "Azure Sentinel",
            "providerIncidentId": str(n),
        }
        if closed:
            props.update(
                classification="TruePositive",
                classificationReason="SuspiciousActivity",
                classificationComment="Contained by the SOC.",
            )
        return {
            "id": rid,
            "name": name,
            "etag": f'"{uuid.uuid5(uuid.NAMESPACE_URL, rid).hex[:16]}"',
            "type": "Microsoft.SecurityInsights/Incidents",
            "properties": props,
        }

    def _incidents(self, request: web.Request, claims: dict[str, Any], workspace_path: str) -> web.Response:
        bad = self._version(request, INCIDENT_VERSIONS, "incidents")
        if bad:
            return bad
        m = WORKSPACE.match(workspace_path)
        c = self.workspaces.get(workspace_path.lower()) if m else None
        if m is None or c is None:
            ws = m.group("ws") if m else workspace_path.rsplit("/", 1)[-1]
            rg = m.group("rg") if m else "?"
            return self._arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.OperationalInsights/workspaces/{ws}' "
                f"under resource group '{rg}' was not found.",
            )
        if c not in self._subscriptions_of(claims["tid"]):
            return self._arm_error(
                401,
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer 'https://sts.windows.net/{claims['tid']}/'. It must "
                f"match the tenant 'https://sts.windows.net/{customer_tenant(c)}/' associated with this "
                "subscription, or a tenant that manages it.",
            )
        canonical = c.ids["sentinel"]
        items = [self.incident_json(canonical, r) for r in self.dataset.gen(c.code).incidents]
        text = request.query.get("$filter")
        if text:
            try:
                flt = compile_filter(text)
            except FilterError as err:
                return self._arm_error(400, "BadRequest", f"Invalid $filter: {err}")
            unknown = sorted(p for p in flt.props if not p.startswith("properties/") or p[11:] not in items_props())
            if unknown:
                return self._arm_error(400, "BadRequest", f"Invalid $filter: unknown property '{unknown[0]}'.")
            items = [i for i in items if flt(partial(_prop, i))]
        order = request.query.get("$orderby", "properties/createdTimeUtc desc").split()
        key = order[0][11:] if order and order[0].startswith("properties/") else "createdTimeUtc"
        items.sort(
            key=lambda i: (i["properties"].get(key) or "", i["properties"]["incidentNumber"]),
            reverse=len(order) >= 2 and order[1].lower() == "desc",
        )
        top = request.query.get("$top")
        return self._page(request, items, int(top) if top and top.isdigit() else None)


def _prop(incident: dict[str, Any], path: str) -> Any:
    """``properties/<name>`` of an incident, for the $filter evaluator."""
    return incident["properties"].get(path[len("properties/") :])


def items_props() -> frozenset[str]:
    return frozenset(
        {
            "title",
            "severity",
            "status",
            "createdTimeUtc",
            "lastModifiedTimeUtc",
            "firstActivityTimeUtc",
            "lastActivityTimeUtc",
            "incidentNumber",
            "classification",
            "providerName",
        }
    )

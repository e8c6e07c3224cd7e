"""Loopback Microsoft Graph (security incidents, Secure Score, GDAP customers) over the sandbox.

Multi-tenant like the real service: every customer is its own Entra ID tenant (its
``ids["defender"]`` is the tenant id); a request's tenant is the ``tid`` of its bearer token,
which an :class:`~connectors.aad.simulator.EntraSimulator` (started alongside, same throwaway CA)
issued to the MSP's multi-tenant app. Served over HTTPS:

- ``GET /v1.0/security/incidents`` — ``$filter`` (createdDateTime, lastUpdateDateTime, status,
  severity, assignedTo, classification, determination; ``and``/``or``/``not``/parentheses),
  ``$top``, ``$skip``, ``$count``; newest first; ``@odata.nextLink`` while more remain
  (``page_size`` per page). App role ``SecurityIncident.Read.All``.
- ``GET /v1.0/security/secureScores`` — daily snapshots newest first, ``$top`` (total),
  ``$skip``; ``score_page_size`` per page with ``@odata.nextLink``. Role
  ``SecurityEvents.Read.All``. ``partial_scores = True`` answers ``206 Partial Content``.
- ``GET /v1.0/tenantRelationships/delegatedAdminCustomers`` — the GDAP customers of the partner
  (MSP) tenant, ``$top``/``$skiptoken`` paging. Role ``DelegatedAdminRelationship.Read.All``.

Errors are Graph's: ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`` — 401 ``InvalidAuthenticationToken``, 403 ``Forbidden`` (missing app
role), 400 ``BadRequest`` (bad ``$filter``).

How the sandbox records become Graph incidents: ``id`` = the record id, ``displayName`` = its
title (verbatim), ``createdDateTime`` = created; a resolved record is ``status: resolved`` with
``lastUpdateDateTime`` = its resolution time (Graph has no ``resolvedDateTime`` on incidents;
in the sandbox nothing touches an incident after it is resolved, so the approximation the
connector makes is exact here); an open one is ``active`` or ``inProgress`` with
``lastUpdateDateTime`` = created. Every third incident spells its enums in PascalCase, as one
of the examples in Graph's docs does, so case-insensitive handling is exercised.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from aiohttp import web

from connectors.aad.odata import FilterError, compile_filter
from connectors.aad.pki import ThrowawayPKI
from connectors.aad.simulator import GRAPH_RESOURCE, EntraSimulator, TlsSimulator, TokenInvalid
from connectors.sandbox.dataset import MSP_NAME, SandboxDataset
from reporting.metrics import IncidentRecord, ScoreSnapshot

PARTNER_TENANT = str(uuid.uuid5(uuid.NAMESPACE_DNS, "northwind.example"))
GRAPH_AUDIENCES = (GRAPH_RESOURCE, "00000003-0000-0000-c000-000000000000")
INCIDENT_FILTERABLE = (
    "createdDateTime",
    "lastUpdateDateTime",
    "status",
    "severity",
    "assignedTo",
    "classification",
    "determination",
)
ROLES = ("SecurityIncident.Read.All", "SecurityEvents.Read.All", "DelegatedAdminRelationship.Read.All")


def graph_time(ts: datetime) -> str:
    """Graph's DateTimeOffset: UTC with seven fractional digits (``2021-08-13T08:43:35.5533333Z``)."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}0Z"


def _pascal(value: str) -> str:
    return value[:1].upper() + value[1:]


class DefenderSimulator(TlsSimulator):
    system: ClassVar[str] = "defender"

    def __init__(
        self, dataset: SandboxDataset, page_size: int = 2, score_page_size: int = 8, pki: ThrowawayPKI | None = None
    ):
        super().__init__(pki)
        self.dataset = dataset
        self.page_size = page_size
        self.score_page_size = score_page_size
        self.partial_scores = False
        self.client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"reportbot-app:{self.secret}"))
        tenants = {PARTNER_TENANT: MSP_NAME}
        tenants.update({c.ids["defender"]: c.name for c in dataset.customers_in("defender")})
        self.entra = EntraSimulator(
            self.pki,
            self.client_id,
            self.secret,
            tenants,
            roles={GRAPH_RESOURCE: ROLES},
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
            "type": "defender",
            "url": f"{self.url}/v1.0",
            "authority": self.entra.url,
            "ca_bundle": str(self.pki.ca_path),
            "client_id": self.client_id,
            "client_secret": self.secret,
            "partner_tenant_id": PARTNER_TENANT,
            "concurrency": 8,
        }

    # -- Graph's envelope and errors
    def _graph_error(self, status: int, code: str, message: str) -> web.Response:
        return self.json(self.error_body(status, message, code)[0], status=status, headers=self._ids())

    def error_body(self, status: int, message: str, code: str = "") -> tuple[Any, str]:
        code = code or {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(
            status, "UnknownError"
        )
        return {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        }, "application/json"

    @staticmethod
    def _ids() -> dict[str, str]:
        rid = str(uuid.uuid4())
        return {"request-id": rid, "client-request-id": rid}

    def _auth(self, request: web.Request, role: str) -> dict[str, Any] | web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return self._graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = self.entra.verify(header[7:].strip(), GRAPH_AUDIENCES)
        except TokenInvalid as err:
            return self._graph_error(401, "InvalidAuthenticationToken", str(err))
        if role not in claims.get("roles", []):
            return self._graph_error(
                403,
                "Forbidden",
                f"Missing application roles. API required roles: {role}. "
                f"Application roles in token: {', '.join(claims.get('roles', []))}.",
            )
        return claims

    def _link(self, path: str, params: dict[str, str]) -> str:
        return f"{self.url}{path}?" + urlencode(params, quote_via=quote, safe="$'(),:")

    def _page(
        self, request: web.Request, items: list[dict[str, Any]], page: int, context: str, skip_param: str = "$skip"
    ) -> web.Response:
        q = request.query
        try:
            top = int(q["$top"]) if "$top" in q else None
            skip = int(q.get(skip_param, "0"))
        except ValueError:
            return self._graph_error(400, "BadRequest", "Invalid value for $top or $skip.")
        total = len(items) if top is None else min(top, len(items))
        chunk = items[skip : min(skip + page, total)]
        body: dict[str, Any] = {"@odata.context": f"{self.url}/v1.0/$metadata#{context}"}
        if q.get("$count", "").lower() == "true":
            body["@odata.count"] = total
        body["value"] = chunk
        if skip + page < total:
            params = {k: v for k, v in q.items() if k != skip_param}
            params[skip_param] = str(skip + page)
            body["@odata.nextLink"] = self._link(request.path, params)
        return self.json(body, headers=self._ids())

    # -- routes
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1.0/security/incidents", self._incidents)
        app.router.add_get("/v1.0/security/secureScores", self._scores)
        app.router.add_get("/v1.0/tenantRelationships/delegatedAdminCustomers", self._customers)

    def _gen(self, tenant: str) -> Any:
        c = self.dataset.customer_by_id("defender", tenant)
        return self.dataset.gen(c.code) if c is not None else None

    def incident_json(self, tenant: str, r: IncidentRecord) -> dict[str, Any]:
        n = int(r.id) if r.id.isdigit() else len(r.id)
        status = "resolved" if r.resolved is not None else ("active" if n % 2 else "inProgress")
        severity = r.severity
        if n % 3 == 0:
            status, severity = _pascal(status), _pascal(severity)
        return {
            "@odata.type": "#microsoft.graph.security.incident",
            "id": r.id,
            "incidentWebUrl": f"https://security.microsoft.com/incidents/{r.id}?tid={tenant}",
            "redirectIncidentId": None,
            "tenantId": tenant,
            "displayName": r.title,
            "createdDateTime": graph_time(r.created),
            "lastUpdateDateTime": graph_time(r.resolved or r.created),
            "assignedTo": "soc@northwind.example" if r.resolved is not None else None,
            "classification": "truePositive" if r.resolved is not None else "unknown",
            "determination": "malware" if r.resolved is not None else "unknown",
            "status": status,
            "severity": severity,
            "customTags": [],
            "comments": [],
            "systemTags": [],
            "description": "",
            "lastModifiedBy": "soc@northwind.example" if r.resolved is not None else "Microsoft 365 Defender",
            "resolvingComment": "Contained and remediated." if r.resolved is not None else None,
            "summary": None,
        }

    async def _incidents(self, request: web.Request) -> web.StreamResponse:
        claims = self._auth(request, "SecurityIncident.Read.All")
        if isinstance(claims, web.Response):
            return claims
        tenant = claims["tid"]
        g = self._gen(tenant)
        items = [self.incident_json(tenant, r) for r in (g.incidents if g is not None else ())]
        text = request.query.get("$filter")
        if text:
            try:
                flt = compile_filter(text)
            except FilterError as err:
                return self._graph_error(400, "BadRequest", f"Invalid filter clause: {err}")
            unknown = sorted(p for p in flt.props if p not in INCIDENT_FILTERABLE)
            if unknown:
                return self._graph_error(
                    400,
                    "BadRequest",
                    f"Invalid filter clause: Could not find a property named "
                    f"'{unknown[0]}' on type 'microsoft.graph.security.incident'.",
                )
            items = [i for i in items if flt(i.__getitem__)]
        items.sort(key=lambda i: (i["createdDateTime"], i["id"]), reverse=True)
        return self._page(request, items, self.page_size, "security/incidents")

    def score_json(self, tenant: str, s: ScoreSnapshot) -> dict[str, Any]:
        identity = round(s.current * 0.45, 2)
        return {
            "id": f"{tenant}_{s.at.astimezone(UTC):%Y-%m-%d}",
            "azureTenantId": tenant,
            "activeUserCount": 0,
            "createdDateTime": s.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "currentScore": s.current,
            "enabledServices": ["HasExchange", "HasSharePoint", "HasOD4B", "HasMDEP"],
            "licensedUserCount": 120,
            "maxScore": s.max,
            "averageComparativeScores": [
                {"basis": "AllTenants", "averageScore": 41.8},
                {"basis": "TotalSeats", "averageScore": 45.2},
            ],
            "controlScores": [
                {
                    "controlCategory": "Identity",
                    "controlName": "AdminMFAV2",
                    "description": "Require MFA for administrative roles",
                    "score": identity,
                },
                {
                    "controlCategory": "Apps",
                    "controlName": "BlockLegacyAuthentication",
                    "description": "Block legacy authentication",
                    "score": round(s.current - identity, 2),
                },
            ],
            "vendorInformation": {
                "provider": "SecureScore",
                "providerVersion": None,
                "subProvider": None,
                "vendor": "Microsoft",
            },
        }

    async def _scores(self, request: web.Request) -> web.StreamResponse:
        claims = self._auth(request, "SecurityEvents.Read.All")
        if isinstance(claims, web.Response):
            return claims
        tenant = claims["tid"]
        g = self._gen(tenant)
        snaps = sorted(g.scores if g is not None else (), key=lambda s: s.at, reverse=True)
        resp = self._page(
            request, [self.score_json(tenant, s) for s in snaps], self.score_page_size, "security/secureScores"
        )
        if self.partial_scores and resp.status == 200:
            resp.set_status(206, "Partial Content")
        return resp

    async def _customers(self, request: web.Request) -> web.StreamResponse:
        claims = self._auth(request, "DelegatedAdminRelationship.Read.All")
        if isinstance(claims, web.Response):
            return claims
        rows = []
        if claims["tid"] == PARTNER_TENANT:
            for c in sorted(self.dataset.customers_in("defender"), key=lambda c: c.name):
                tid = c.ids["defender"]
                rows.append(
                    {
                        "@odata.type": "#microsoft.graph.delegatedAdminCustomer",
                        "@odata.etag": f'W/"{tid[:8]}"',
                        "id": tid,
                        "tenantId": tid,
                        "displayName": c.name,
                    }
                )
        return self._page(
            request, rows, self.page_size * 2, "tenantRelationships/delegatedAdminCustomers", "$skiptoken"
        )

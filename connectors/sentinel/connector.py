"""Microsoft Sentinel incidents (Azure Resource Manager) -> the ``security`` section.

A customer is its Log Analytics workspace: ``customers.ids.<name>`` is the workspace's ARM
resource id, ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights
/workspaces/{ws}``. The token's tenant is ``[sources.<name>] tenant_id`` (the MSP's tenant when
the workspaces are delegated with Azure Lighthouse) or else the customer's ``tenant_id``.

Per customer-section, after one token request (cached across the batch), two paged reads of
``.../providers/Microsoft.SecurityInsights/incidents?api-version=2025-06-01`` run concurrently:

1. new incidents: ``$filter=properties/createdTimeUtc ge {start} and properties/createdTimeUtc lt {end}``;
2. carried-over incidents that may be open at ``end``: ``$filter=properties/createdTimeUtc lt {start}
   and (properties/status ne 'Closed' or properties/lastModifiedTimeUtc ge {end})``.

Formulas (``reporting.metrics.security_section``, the same for every vendor):

- ``incidents_new`` = incidents with ``start <= properties.createdTimeUtc < end``; ``by_severity``
  counts them by ``properties.severity`` (High/Medium/Low/Informational, case-insensitive).
- ``incidents_open`` = incidents with ``createdTimeUtc < end`` not closed at ``end``. The REST
  incident has no closing time (verified against the 2025-06-01 schema): a ``Closed`` incident
  is taken as closed at its ``lastModifiedTimeUtc`` (a later edit of a closed incident makes it
  look closed later, so it may be counted open at the end of a past week in which it was
  already closed — never the reverse). ``New`` and ``Active`` are open.
- ``id`` of an open item is ``properties.incidentNumber`` (the number the portal shows), its
  title ``properties.title`` verbatim.
- the technical report's incident list shows ``properties.status`` as read (New, Active, Closed:
  its state now, not at ``end``).
- Sentinel has no Secure Score: ``secure_score_pct`` and ``secure_score_change`` are None.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.aad.tokens import TenantTokens
from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.fields import Fields, iso_z
from connectors.http import gather_all, new_client, source_http
from connectors.sentinel.client import (
    INCIDENTS_API_VERSION,
    SUBSCRIPTIONS_API_VERSION,
    SYSTEM,
    WORKSPACES_API_VERSION,
    ArmClient,
    arm_error_message,
)
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.metrics import IncidentRecord
from reporting.models import Period, SectionData, Targets
from reporting.sources import SourceDataError, SourceRecord

DEFAULT_URL = "https://management.azure.com"
DEFAULT_RESOURCE = "https://management.azure.com"
WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w._()]+)"
    r"/providers/Microsoft\.OperationalInsights/workspaces/(?P<ws>[-\w]+)/?$",
    re.IGNORECASE,
)


def workspace_path(system: str, name: str, value: str) -> str:
    """The canonical ARM id of a workspace (fixed segments in ARM's casing), or SourceDataError."""
    m = WORKSPACE_ID.match(value.strip())
    if not m:
        raise SourceDataError(
            system,
            f"{value!r} is not a Log Analytics workspace resource id; customers.ids.{name} must look like "
            "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>",
        )
    return (
        f"/subscriptions/{m.group('sub')}/resourceGroups/{m.group('rg')}"
        f"/providers/Microsoft.OperationalInsights/workspaces/{m.group('ws')}"
    )


class _Ctx:
    def __init__(self, ctx: ConnectorContext):
        self.client_factory = ctx.client_factory or new_client
        self.sleep = ctx.sleep


def incident_record(obj: Any, where: str) -> IncidentRecord:
    f = Fields(SYSTEM, obj, where)
    p = f.obj("properties")
    closed = p.text("status").lower() == "closed"
    return IncidentRecord(
        id=str(p.integer("incidentNumber")),
        title=p.text("title"),
        severity=p.text("severity").lower(),
        created=p.time("createdTimeUtc"),
        resolved=p.time("lastModifiedTimeUtc") if closed else None,
        status=p.text("status"),
    )


@connector_shape
class SentinelConnector(ConnectorDefaults):
    sections = frozenset({"security"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext, *, tokens: TenantTokens | None = None):
        """``tokens``: the token source (tests inject a fake); default azure-identity per tenant."""
        self.name = name
        self.tokens = tokens if tokens is not None else TenantTokens(SYSTEM, name, source)
        self.http, self._httpx = source_http(
            SYSTEM, source, _Ctx(ctx), error_message=arm_error_message, secrets=self.tokens.secrets
        )
        self.client = ArmClient(
            self.http,
            str(source.url or DEFAULT_URL),
            self.tokens,
            str(source.option("resource", DEFAULT_RESOURCE)),
            incidents_api_version=str(source.option("api_version", INCIDENTS_API_VERSION)),
            subscriptions_api_version=str(source.option("subscriptions_api_version", SUBSCRIPTIONS_API_VERSION)),
            workspaces_api_version=str(source.option("workspaces_api_version", WORKSPACES_API_VERSION)),
        )
        self.managing_tenant = str(source.option("tenant_id") or "")

    def tenant_of(self, customer: CustomerConfig) -> str:
        tenant = self.managing_tenant or customer.tenant_id
        if not tenant:
            raise SourceDataError(
                SYSTEM,
                f"no tenant to sign in to for {customer.code}: set sources.{self.name}.tenant_id "
                "(the managing tenant with Azure Lighthouse) or the customer's tenant_id",
            )
        return tenant

    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        if section != "security":
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        cid = customer.ids.get(self.name)
        if not cid:
            raise SourceDataError(SYSTEM, f"{customer.code} has no workspace: set customers.ids.{self.name}")
        workspace = workspace_path(SYSTEM, self.name, cid)
        tenant = self.tenant_of(customer)
        start, end = iso_z(period.start), iso_z(period.end)
        new, carried = await gather_all(
            self.client.incidents(
                tenant, workspace, f"properties/createdTimeUtc ge {start} and properties/createdTimeUtc lt {end}"
            ),
            self.client.incidents(
                tenant,
                workspace,
                f"properties/createdTimeUtc lt {start} and "
                f"(properties/status ne 'Closed' or properties/lastModifiedTimeUtc ge {end})",
            ),
        )
        records: dict[str, IncidentRecord] = {}
        for label, batch in (("new", new), ("carried over", carried)):
            for n, obj in enumerate(batch):
                rec = incident_record(obj, f"GET .../incidents ({label}) item {n + 1}")
                records[rec.id] = rec
        return metrics.security_section(records.values(), (), period)

    def _tenant(self) -> str:
        if not self.managing_tenant:
            raise SourceDataError(
                SYSTEM,
                f"sources.{self.name}.tenant_id is not set: the managing (MSP) tenant is needed to list workspaces",
            )
        return self.managing_tenant

    async def customer_records(self) -> list[SourceRecord]:
        """Every Log Analytics workspace in the subscriptions the managing tenant can see."""
        tenant = self._tenant()
        subs = await self.client.subscriptions(tenant)
        names: dict[str, str] = {}
        for n, obj in enumerate(subs):
            f = Fields(SYSTEM, obj, f"GET /subscriptions item {n + 1}")
            names[f.text("subscriptionId")] = f.opt_text("displayName") or f.text("subscriptionId")
        per_sub = await gather_all(*(self.client.workspaces(tenant, sub) for sub in names))
        out = []
        for sub, rows in zip(names, per_sub, strict=True):
            for n, obj in enumerate(rows):
                f = Fields(SYSTEM, obj, f"GET /subscriptions/{sub}/.../workspaces item {n + 1}")
                out.append(
                    SourceRecord(
                        SYSTEM, workspace_path(SYSTEM, self.name, f.text("id")), f"{f.text('name')} ({names[sub]})"
                    )
                )
        return out

    async def probe(self) -> str:
        """A token for the managing tenant and the list of subscriptions it can see."""
        subs = await self.client.subscriptions(self._tenant())
        plural = "s" if len(subs) != 1 else ""
        return (
            f"Azure Resource Manager ({len(subs)} subscription{plural} visible; "
            f"incidents api-version {self.client.incidents_api_version})"
        )

    async def aclose(self) -> None:
        try:
            await self._httpx.aclose()
        finally:
            await self.tokens.aclose()

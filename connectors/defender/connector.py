"""Microsoft Defender XDR incidents and Microsoft Secure Score (Microsoft Graph) -> the
``security`` section, for many customer tenants through one multi-tenant app registration.

A customer's tenant is ``customers.ids.<name>`` (falling back to the customer's ``tenant_id``).
Per customer-section, after one token request for that tenant (cached across the batch), three
paged reads run concurrently:

1. new incidents: ``$filter=createdDateTime ge {start} and createdDateTime lt {end}``;
2. carried-over incidents that may be open at ``end``:
   ``$filter=createdDateTime lt {start} and (status ne 'resolved' or lastUpdateDateTime ge {end})``;
3. Secure Score snapshots: ``/security/secureScores?$top=90``, newest first, until one at or
   before ``start`` has been read.

Formulas (``reporting.metrics.security_section``, the same for every vendor):

- ``incidents_new`` = incidents with ``start <= createdDateTime < end``; ``by_severity`` counts
  them by ``severity`` (case-insensitive; ``unknown`` counts as informational).
- ``incidents_open`` = incidents with ``createdDateTime < end`` that were not resolved at
  ``end``. Graph has no resolution time on an incident: an incident whose ``status`` is
  ``resolved`` is taken as resolved at its ``lastUpdateDateTime`` (an edit after resolution
  makes it look resolved later, so it can be counted open at the end of a past week in which
  it was already resolved — never the other way round). Any other status is open now, hence
  open at ``end``. ``redirected`` incidents were merged into another incident and are left out
  of every count (the incident they point to is counted).
- ``secure_score_pct`` = 100 × ``currentScore`` / ``maxScore`` of the newest snapshot with
  ``createdDateTime <= end``; ``secure_score_change`` = that minus the same at ``start``, in
  percentage points (None when no snapshot reaches back to ``start``: Graph keeps about 90 days).
  A ``206 Partial Content`` answer leaves both None (not computed from a partial answer).
- When the tenant's oldest Secure Score snapshot is later than ``end``, Graph's data does not
  reach back to this period at all (past the ~90-day retention, or a tenant connected later):
  the section is unavailable rather than a week of zeros.
- open items list each open incident's ``id``, ``displayName`` (verbatim), severity and
  ``createdDateTime``; the technical report's incident list adds each one's ``status`` as read
  (``active``, ``inProgress``, ``resolved``; its state now, not at ``end``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from connectors.aad.tokens import TenantTokens
from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.defender.client import SYSTEM, GraphSecurityClient, graph_error_message
from connectors.fields import Fields, iso_z
from connectors.http import gather_all, new_client, source_http
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.metrics import IncidentRecord, ScoreSnapshot
from reporting.models import Period, SectionData, Targets
from reporting.sources import SourceDataError, SourceRecord

log = logging.getLogger(__name__)

DEFAULT_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_RESOURCE = "https://graph.microsoft.com"


class _Ctx:
    """``source_http``'s view of the context, with a client that trusts ``ca_bundle``."""

    def __init__(self, ctx: ConnectorContext):
        self.client_factory = ctx.client_factory or new_client
        self.sleep = ctx.sleep


def incident_record(obj: Any, where: str) -> IncidentRecord | None:
    """A Graph incident as a vendor-neutral record; None for a ``redirected`` (merged) one."""
    f = Fields(SYSTEM, obj, where)
    status = f.text("status").lower()
    if status == "redirected":
        return None
    created = f.time("createdDateTime")
    resolved = f.time("lastUpdateDateTime") if status == "resolved" else None
    return IncidentRecord(
        id=f.text("id"),
        title=f.text("displayName"),
        severity=f.text("severity").lower(),
        created=created,
        resolved=resolved,
        status=f.text("status"),
    )


def score_snapshot(obj: Any, where: str) -> ScoreSnapshot:
    f = Fields(SYSTEM, obj, where)
    return ScoreSnapshot(at=f.time("createdDateTime"), current=f.number("currentScore"), max=f.number("maxScore"))


@connector_shape
class DefenderConnector(ConnectorDefaults):
    sections = frozenset({"security"})

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext, *, tokens: TenantTokens | None = None):
        """``tokens``: the token source (tests inject a fake); default azure-identity per tenant."""
        self.name = name
        self.tokens = tokens if tokens is not None else TenantTokens(SYSTEM, name, source)
        self.http, self._httpx = source_http(
            SYSTEM, source, _Ctx(ctx), error_message=graph_error_message, secrets=self.tokens.secrets
        )
        self.client = GraphSecurityClient(
            self.http, str(source.url or DEFAULT_URL), self.tokens, str(source.option("resource", DEFAULT_RESOURCE))
        )
        self.partner_tenant = str(source.option("partner_tenant_id") or "")

    def tenant_of(self, customer: CustomerConfig) -> str:
        tenant = customer.ids.get(self.name) or customer.tenant_id
        if not tenant:
            raise SourceDataError(
                SYSTEM, f"{customer.code} has no tenant id: set customers.ids.{self.name} (or the customer's tenant_id)"
            )
        return tenant

    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        if section != "security":
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        tenant = self.tenant_of(customer)
        start, end = iso_z(period.start), iso_z(period.end)
        new, carried, scores = await gather_all(
            self.client.incidents(tenant, f"createdDateTime ge {start} and createdDateTime lt {end}"),
            self.client.incidents(
                tenant, f"createdDateTime lt {start} and (status ne 'resolved' or lastUpdateDateTime ge {end})"
            ),
            self.client.secure_scores(tenant, period.start),
        )
        records: dict[str, IncidentRecord] = {}
        for label, batch in (("new", new), ("carried over", carried)):
            for n, obj in enumerate(batch):
                rec = incident_record(obj, f"GET /security/incidents ({label}) item {n + 1}")
                if rec is not None:
                    records[rec.id] = rec
        snapshots: list[ScoreSnapshot] = []
        note = None
        if scores.partial:
            note = "Graph answered 206 Partial Content (a security provider did not respond); score left out this week."
            log.warning("defender: Secure Score answered 206 Partial Content for %s; score left out", customer.code)
        else:
            snapshots = [
                score_snapshot(o, f"GET /security/secureScores item {n + 1}") for n, o in enumerate(scores.snapshots)
            ]
            oldest = min((s.at for s in snapshots), default=None)
            if oldest is not None and oldest > period.end:
                raise SourceDataError(
                    SYSTEM,
                    f"tenant {tenant} has no data for this period: its oldest Secure Score snapshot is "
                    f"{iso_z(oldest)}, after the period ends (Graph keeps about 90 days; a tenant connected "
                    "later has nothing before)",
                )
        security = metrics.security_section(records.values(), snapshots, period)
        return replace(security, score_note=note) if note else security

    async def customer_records(self) -> list[SourceRecord]:
        """The partner tenant's GDAP customers (``tenantId`` is what ``customers.ids`` holds)."""
        rows = await self.client.delegated_customers(self._partner())
        out = []
        for n, obj in enumerate(rows):
            f = Fields(SYSTEM, obj, f"GET /tenantRelationships/delegatedAdminCustomers item {n + 1}")
            out.append(SourceRecord(SYSTEM, f.text("tenantId"), f.opt_text("displayName") or f.text("tenantId")))
        return out

    def _partner(self) -> str:
        if not self.partner_tenant:
            raise SourceDataError(
                SYSTEM,
                f"sources.{self.name}.partner_tenant_id is not set: "
                "the MSP's own tenant is needed to list GDAP customers",
            )
        return self.partner_tenant

    async def probe(self) -> str:
        """A token for the partner tenant and one page of its GDAP customers."""
        await self.client.first_delegated_customer(self._partner())
        return f"Microsoft Graph {self.client.base.rsplit('/', 1)[-1]} (partner tenant {self.partner_tenant})"

    async def aclose(self) -> None:
        try:
            await self._httpx.aclose()
        finally:
            await self.tokens.aclose()

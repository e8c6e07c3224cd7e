"""Microsoft Defender XDR + Secure Score via Microsoft Graph: the client against
httpx.MockTransport and vendor-shaped fixtures, the mapper against a hand computation, the
azure-identity token path against the TLS Entra ID simulator, and the connector over HTTPS
against its loopback simulator — the fault matrix, equality with the in-process sandbox (the
oracle) for every Defender tenant over three weeks, DST weeks and the planted INITECH and
CYBERDYNE scenarios."""

from __future__ import annotations

import copy
import json
import ssl
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.aad.simulator import GRAPH_RESOURCE, EntraSimulator
from connectors.aad.tokens import TenantTokens
from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.defender.client import GraphSecurityClient, graph_error_message
from connectors.defender.connector import DefenderConnector
from connectors.defender.simulator import PARTNER_TENANT, DefenderSimulator
from connectors.fields import parse_time
from connectors.http import HttpSource, new_client
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from connectors.sim.base import Faults
from reporting.config import CustomerConfig, SourceConfig, Thresholds
from reporting.deltas import compute_flags
from reporting.models import OpenIncident, Period, Security, Targets
from reporting.period import previous_period, week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, collect_one, run_fault_matrix

FIX = Path(__file__).parent.parent / "fixtures" / "defender"
ANCHOR = date(2026, 11, 16)
WEEK = date(2026, 11, 10)
TENANT = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
GRAPH = "https://graph.microsoft.com/v1.0"
WRONG_SECRET = "wrong-s3cret-VALUE"  # noqa: S105 - a test value
FAKE_SECRET = "s3cret-value"  # noqa: S105 - a test value, not a credential
HOSTILE = "<script>alert(1)</script> & **bold** | pipe"
LONDON_WEEK = Period(datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC), "Europe/London")


def fx(scenario: str, name: str) -> Any:
    return json.loads((FIX / scenario / f"{name}.json").read_text())


class FakeTokens:
    """Stands in for TenantTokens in MockTransport tests: one fixed token per tenant."""

    secrets: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def token(self, tenant: str, scope: str) -> str:
        self.asked.append((tenant, scope))
        return f"tok-{tenant}"

    async def aclose(self) -> None:
        return None


class GraphApi:
    """A MockTransport handler for Graph: checks the bearer token and headers on every request,
    answers per (path, kind of $filter), records what was asked, fails on anything else."""

    def __init__(self, routes: dict[str, Any]):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["authorization"] == f"Bearer tok-{TENANT}"
        assert request.headers["prefer"] == "include-unknown-enum-members"
        assert request.url.host == "graph.microsoft.com" and request.url.path.startswith("/v1.0/")
        path = request.url.path[len("/v1.0") :]
        flt = request.url.params.get("$filter", "")
        key = path
        if path == "/security/incidents":
            key += " new" if flt.startswith("createdDateTime ge") else " carried"
            if "$skip" in request.url.params:
                key += " page2"
        if key not in self.routes:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.routes[key]
        return answer(request) if callable(answer) else httpx.Response(200, json=answer)

    def filters(self) -> list[str]:
        return [
            r.url.params["$filter"] for r in self.requests if "$filter" in r.url.params and "$skip" not in r.url.params
        ]


def hand_routes() -> dict[str, Any]:
    return {
        "/security/incidents new": fx("hand", "incidents_new_page1"),
        "/security/incidents new page2": fx("hand", "incidents_new_page2"),
        "/security/incidents carried": fx("hand", "incidents_carried"),
        "/security/secureScores": fx("hand", "secureScores"),
    }


def connector(
    api: GraphApi, sleep: RecordingSleep | None = None, **options: Any
) -> tuple[DefenderConnector, FakeTokens]:
    tokens = FakeTokens()
    source = SourceConfig(type="defender", url=GRAPH, client_id="app", client_secret=FAKE_SECRET, **options)
    ctx = ConnectorContext(
        client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(api)), sleep=sleep or RecordingSleep()
    )
    return DefenderConnector("defender", source, ctx, tokens=tokens), tokens  # type: ignore[arg-type]


def customer(**kw: Any) -> CustomerConfig:
    return CustomerConfig(code="CONTOSO", name="Contoso", **({"ids": {"defender": TENANT}} | kw))


# ---- the client and the mapper against fixtures ------------------------------------------------


def test_graph_error_parser():
    resp = httpx.Response(403, json=fx("errors", "graph_403_roles"))
    msg = graph_error_message(resp)
    assert msg is not None and msg.startswith(
        "Forbidden: Missing application roles. API required roles: SecurityIncident.Read.All"
    )
    assert msg.endswith("(request-id b2c7d7a4-7c8e-4b4b-9a51-0c6c2d1f9e10)")
    assert graph_error_message(httpx.Response(500, text="<html>")) is None


async def test_hand_computed_week():
    """Eight Graph incidents over two queries and eight Secure Score snapshots, worked by hand:

    new (created 9–16 Nov): 101 High Active, 102 Medium Resolved 11 Nov, 103 low resolved 16 Nov
    03:00 (after the end: open at the end), 104 informational inProgress, 106 Medium
    awaitingAction, 105 redirected (merged: left out) → 5 new: high 1, medium 2, low 1, info 1.
    carried over: 090 high active, 091 medium resolved 17 Nov (after the end) → both open.
    open at the end: 090, 101, 091, 106, 103, 104 = 6.
    Secure Score: newest ≤ end is 15 Nov 160/250 = 64 %; newest ≤ start is 8 Nov 175/250 = 70 %;
    change −6 points. The second Secure Score page is never read (8 Nov already covers the start).
    """
    api = GraphApi(hand_routes())
    con, tokens = connector(api)
    try:
        got = await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    assert got == Security(
        incidents_new=5,
        incidents_open=6,
        by_severity={"high": 1, "medium": 2, "low": 1, "informational": 1},
        secure_score_pct=64.0,
        secure_score_change=-6.0,
        open_items=(
            OpenIncident(
                "090", "Ransomware precursor activity on multiple endpoints", "high", parse_time("2026-11-02T08:30:00Z")
            ),
            OpenIncident("101", HOSTILE, "high", parse_time("2026-11-10T09:00:00Z")),
            OpenIncident(
                "091", "Malware detected and quarantined on endpoint", "medium", parse_time("2026-11-05T13:00:00Z")
            ),
            OpenIncident(
                "106", "Mailbox forwarding rule to an external domain", "medium", parse_time("2026-11-14T07:12:09.123Z")
            ),
            OpenIncident(
                "103",
                "Suspicious PowerShell download cradle on FIN-LT-07",
                "low",
                parse_time("2026-11-15T22:00:00.553333Z"),
            ),
            OpenIncident(
                "104", "Unusual volume of file downloads", "informational", parse_time("2026-11-13T08:00:00Z")
            ),
        ),
    )
    assert got.open_items[1].title == HOSTILE  # vendor text arrives verbatim; escaping is the renderers' job
    assert sorted(api.filters()) == [
        "createdDateTime ge 2026-11-09T00:00:00Z and createdDateTime lt 2026-11-16T00:00:00Z",
        "createdDateTime lt 2026-11-09T00:00:00Z and "
        "(status ne 'resolved' or lastUpdateDateTime ge 2026-11-16T00:00:00Z)",
    ]
    page2 = [r for r in api.requests if "$skip" in r.url.params]
    assert [str(r.url) for r in page2] == [fx("hand", "incidents_new_page1")["@odata.nextLink"]]  # followed verbatim
    scores = [r for r in api.requests if r.url.path.endswith("/secureScores")]
    assert len(scores) == 1 and scores[0].url.params["$top"] == "90"
    assert {t for t, _ in tokens.asked} == {TENANT} and {s for _, s in tokens.asked} == {
        "https://graph.microsoft.com/.default"
    }


async def test_secure_score_206_is_left_out_not_guessed():
    """206 Partial Content: incidents are reported, both Secure Score figures are None."""
    routes = hand_routes()
    routes["/security/secureScores"] = lambda r: httpx.Response(206, json=fx("hand", "secureScores"))
    api = GraphApi(routes)
    con, _ = connector(api)
    try:
        got = await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    assert isinstance(got, Security)
    assert (got.incidents_new, got.incidents_open) == (5, 6)
    assert got.secure_score_pct is None and got.secure_score_change is None
    assert got.score_note and "206 Partial Content" in got.score_note  # the report says why there is no score


async def test_secure_scores_out_of_order_are_read_to_the_end():
    page1 = fx("hand", "secureScores")
    page1["value"] = list(reversed(page1["value"]))  # oldest first: cannot stop early
    page2 = {"value": [dict(page1["value"][0], createdDateTime="2026-11-01T01:00:00Z", currentScore=100.0)]}
    routes = hand_routes()
    routes["/security/secureScores"] = lambda r: httpx.Response(200, json=page2 if "$skip" in r.url.params else page1)
    api = GraphApi(routes)
    con, _ = connector(api)
    try:
        got = await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    assert len([r for r in api.requests if r.url.path.endswith("/secureScores")]) == 2
    assert isinstance(got, Security) and got.secure_score_pct == 64.0 and got.secure_score_change == -6.0


async def test_a_next_link_to_another_host_is_not_followed():
    page = fx("hand", "incidents_new_page1")
    page["@odata.nextLink"] = "https://evil.example/v1.0/security/incidents?$skip=3"
    api = GraphApi({"/security/incidents new": page})
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        client = GraphSecurityClient(HttpSource("defender", http), GRAPH, FakeTokens(), GRAPH_RESOURCE)  # type: ignore[arg-type]
        with pytest.raises(SourceDataError, match="another host"):
            await client.incidents(TENANT, "createdDateTime ge 2026-11-09T00:00:00Z")
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("fixture", "index", "change", "field"),
    [
        ("incidents_new_page1", 0, "drop", "createdDateTime"),
        ("incidents_new_page2", 1, "rename", "displayName"),
        ("incidents_carried", 1, "drop", "status"),
        ("secureScores", 0, "rename", "currentScore"),
    ],
)
async def test_a_missing_field_names_itself_and_gives_no_numbers(fixture, index, change, field):
    routes = hand_routes()
    key = {
        "incidents_new_page1": "/security/incidents new",
        "incidents_new_page2": "/security/incidents new page2",
        "incidents_carried": "/security/incidents carried",
        "secureScores": "/security/secureScores",
    }[fixture]
    body = fx("hand", fixture)
    value = body["value"][index].pop(field)
    if change == "rename":
        body["value"][index][field + "V2"] = value
    routes[key] = body
    con, _ = connector(GraphApi(routes))
    try:
        with pytest.raises(SourceDataError, match=f"field '{field}' is missing"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()


async def test_429_retry_after_then_5xx_burst_then_success():
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, json=fx("errors", "graph_429"), headers={"Retry-After": "3"})
        if calls["n"] in (2, 3):
            return httpx.Response(503, json={"error": {"code": "ServiceUnavailable", "message": "try later"}})
        return httpx.Response(200, json=fx("hand", "incidents_carried"))

    routes = hand_routes()
    routes["/security/incidents carried"] = flaky
    sleep = RecordingSleep()
    con, _ = connector(GraphApi(routes), sleep)
    try:
        got = await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    assert isinstance(got, Security) and got.incidents_open == 6
    assert sleep.waits[0] == 3.0 and len(sleep.waits) == 3 and calls["n"] == 4


async def test_expired_token_is_an_auth_error_with_graphs_words():
    routes = hand_routes()
    routes["/security/secureScores"] = lambda r: httpx.Response(401, json=fx("errors", "graph_401_expired"))
    con, _ = connector(GraphApi(routes))
    try:
        with pytest.raises(SourceAuthError, match="HTTP 401 — InvalidAuthenticationToken: Lifetime validation failed"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()


async def test_timeout_and_html_become_unavailable_and_data_errors():
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    routes = hand_routes()
    routes["/security/incidents new"] = hang
    con, _ = connector(GraphApi(routes), max_attempts=2)
    try:
        with pytest.raises(SourceUnavailable, match="no answer within 15 s"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    routes = hand_routes()
    routes["/security/secureScores"] = lambda r: httpx.Response(
        200, text="<html><body>Sign in</body></html>", headers={"content-type": "text/html"}
    )
    con, _ = connector(GraphApi(routes))
    try:
        with pytest.raises(SourceDataError, match="an HTML page, not JSON"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()


async def test_tenant_comes_from_ids_then_tenant_id_else_names_the_key():
    api = GraphApi(hand_routes())
    con, tokens = connector(api)
    try:
        await con.fetch_section("security", customer(ids={}, tenant_id=TENANT), LONDON_WEEK, Targets())
        assert {t for t, _ in tokens.asked} == {TENANT}
        with pytest.raises(SourceDataError, match=r"set customers\.ids\.defender \(or the customer's tenant_id\)"):
            await con.fetch_section("security", customer(ids={}), LONDON_WEEK, Targets())
        with pytest.raises(SourceDataError, match="does not provide section 'uptime'"):
            await con.fetch_section("uptime", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()


async def test_gdap_customer_records_and_probe_from_fixture():
    def gdap(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer tok-{PARTNER_TENANT}"
        return httpx.Response(200, json=fx("gdap", "delegatedAdminCustomers"))

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1.0/tenantRelationships/delegatedAdminCustomers", f"unexpected {request.url}"
        return gdap(request)

    tokens = FakeTokens()
    source = SourceConfig(
        type="defender", url=GRAPH, client_id="app", client_secret=FAKE_SECRET, partner_tenant_id=PARTNER_TENANT
    )
    ctx = ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    con = DefenderConnector("defender", source, ctx, tokens=tokens)  # type: ignore[arg-type]
    try:
        records = await con.customer_records()
        assert [(r.id, r.name) for r in records] == [
            (TENANT, "Contoso Ltd"),
            ("7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d", "Fabrikam Inc"),
        ]
        assert await con.probe() == f"Microsoft Graph v1.0 (partner tenant {PARTNER_TENANT})"
    finally:
        await con.aclose()
    con = DefenderConnector(
        "defender", SourceConfig(type="defender", client_id="a", client_secret=FAKE_SECRET), ctx, tokens=tokens
    )  # type: ignore[arg-type]
    try:
        with pytest.raises(SourceDataError, match=r"sources\.defender\.partner_tenant_id is not set"):
            await con.customer_records()
    finally:
        await con.aclose()


# ---- tokens: azure-identity against the TLS Entra ID simulator -------------------------------


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return SandboxDataset(ANCHOR)


def tokens_for(entra: EntraSimulator, **kw: Any) -> TenantTokens:
    opts = {
        "client_id": entra.client_id,
        "client_secret": entra.client_secret,
        "authority": entra.url,
        "ca_bundle": str(entra.pki.ca_path),
    } | kw
    return TenantTokens("defender", "defender", SourceConfig(**{k: v for k, v in opts.items() if v is not None}))


async def test_one_credential_per_tenant_and_cached_tokens(dataset):
    async with DefenderSimulator(dataset) as sim:
        tokens = tokens_for(sim.entra)
        try:
            tenants = [c.ids["defender"] for c in dataset.customers_in("defender")][:3]
            for _ in range(3):
                for t in tenants:
                    tok = await tokens.token(t, GRAPH_RESOURCE + "/.default")
                    assert sim.entra.verify(tok, [GRAPH_RESOURCE])["tid"] == t
            assert {k: v for k, v in sim.entra.issued.items()} == {(t, GRAPH_RESOURCE): 1 for t in tenants}
            assert len(tokens._creds) == 3
        finally:
            await tokens.aclose()


async def test_wrong_secret_is_refused_naming_the_tenant_never_the_secret(dataset):
    async with DefenderSimulator(dataset) as sim:
        tenant = dataset.customers_in("defender")[0].ids["defender"]
        tokens = tokens_for(sim.entra, client_secret=WRONG_SECRET)
        try:
            with pytest.raises(SourceAuthError) as err:
                await tokens.token(tenant, GRAPH_RESOURCE + "/.default")
        finally:
            await tokens.aclose()
    text = str(err.value)
    assert text.startswith(
        f"defender: the credentials were refused by Microsoft Entra ID for tenant {tenant}: "
        "AADSTS7000215: Invalid client secret provided."
    )
    assert "wrong-s3cret" not in text and "Trace ID" not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__


async def test_entra_error_body_has_entras_shape(dataset):
    async with DefenderSimulator(dataset) as sim:
        async with httpx.AsyncClient(verify=verified_client_ctx(sim)) as http:
            r = await http.post(
                f"{sim.entra.url}/{PARTNER_TENANT}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": sim.client_id,
                    "client_secret": "nope",
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
    assert r.status_code == 401
    body, ref = r.json(), fx("errors", "entra_invalid_client")
    assert set(body) == set(ref) and body["error"] == ref["error"] and body["error_codes"] == ref["error_codes"]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")


def verified_client_ctx(sim: DefenderSimulator) -> Any:
    return ssl.create_default_context(cafile=str(sim.pki.ca_path))


async def test_token_failures_are_translated(dataset):
    async with DefenderSimulator(dataset) as sim:
        scope = GRAPH_RESOURCE + "/.default"
        tenant = dataset.customers_in("defender")[0].ids["defender"]
        cases: list[tuple[TenantTokens, str, type[Exception], str]] = [
            (tokens_for(sim.entra), "11111111-2222-4333-8444-555555555555", SourceDataError, "does not know tenant"),
            (tokens_for(sim.entra, ca_bundle=None), tenant, SourceUnavailable, "TLS verification failed"),
        ]
        sim.entra.consented.discard(tenant)
        cases.append((tokens_for(sim.entra), tenant, SourceAuthError, r"is not consented there \(AADSTS700016\)"))
        for tokens, t, kind, words in cases:
            try:
                with pytest.raises(kind, match=words):
                    await tokens.token(t, scope)
            finally:
                await tokens.aclose()
    with pytest.raises(SourceDataError, match="authority must be an https URL"):
        TenantTokens(
            "defender",
            "defender",
            SourceConfig(client_id="a", client_secret=FAKE_SECRET, authority="http://127.0.0.1:1"),
        )
    with pytest.raises(SourceAuthError, match="set exactly one of"):
        TenantTokens("defender", "defender", SourceConfig(client_id="a"))
    with pytest.raises(SourceAuthError, match="client_id is not set"):  # the one rule for a missing credential
        TenantTokens("defender", "defender", SourceConfig(client_secret=FAKE_SECRET))


async def test_an_html_page_from_the_token_endpoint_is_unavailable_not_refused_credentials(dataset):
    """A proxy's error page where Entra's JSON should be says nothing about the credentials."""
    async with DefenderSimulator(dataset) as sim:
        tenant = dataset.customers_in("defender")[0].ids["defender"]
        sim.entra.faults = Faults(html=True, count=100)
        tokens = tokens_for(sim.entra)
        try:
            with pytest.raises(SourceUnavailable, match="answered with an HTML page for tenant .*proxy or gateway"):
                await tokens.token(tenant, GRAPH_RESOURCE + "/.default")
        finally:
            await tokens.aclose()


def test_a_missing_client_id_is_one_rule_everywhere():
    """ConnectWise, Halo and the Entra-based sources say the same: a credential error naming the key."""
    from connectors.connectwise.connector import ConnectWiseConnector
    from connectors.halo.connector import HaloConnector

    ctx = ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(lambda r: None)))
    cw_source = SourceConfig(
        type="connectwise", url="https://cw.test", company_id="c", public_key="p", private_key=FAKE_SECRET
    )
    cw = ConnectWiseConnector("cw", cw_source, ctx)
    halo = HaloConnector("halo", SourceConfig(type="halo", url="https://h.test", client_secret=FAKE_SECRET), ctx)
    for con, key in ((cw, "sources.cw.client_id"), (halo, "sources.halo.client_id")):
        with pytest.raises(SourceAuthError, match=f"{key} is not set"):
            _ = con.client


async def test_certificate_credential(dataset):
    async with DefenderSimulator(dataset) as sim:
        cert = sim.pki.client_certificate("reportbot-app")
        sim.entra.certificates = {
            __import__("connectors.aad.simulator", fromlist=["b64url"]).b64url(
                cert.certificate.fingerprint(
                    __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()
                )
            ): cert.certificate
        }
        tokens = tokens_for(sim.entra, client_secret=None, certificate_path=str(cert.path))
        try:
            tok = await tokens.token(PARTNER_TENANT, GRAPH_RESOURCE + "/.default")
        finally:
            await tokens.aclose()
        assert sim.entra.verify(tok, [GRAPH_RESOURCE])["appidacr"] == "2"


# ---- the connector over HTTPS against the simulator ------------------------------------------


def customer_dict(c: Any) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "timezone": c.timezone,
        "ids": {"defender": c.ids["defender"]},
        "sources": {"security": "defender"},
    }


async def oracle(dataset: SandboxDataset, c: Any, period: Period) -> Any:
    o = SandboxConnector("defender", SourceConfig(type="sandbox", system="defender"), ConnectorContext(sandbox=dataset))
    return await o.fetch_section(
        "security", CustomerConfig(code=c.code, name=c.name, ids={"defender": c.ids["defender"]}), period, Targets()
    )


def sim_connector(sim: DefenderSimulator) -> DefenderConnector:
    source = dict(sim.source_config())
    source.pop("type")
    return DefenderConnector("defender", SourceConfig(**source), ConnectorContext())


async def test_equals_the_oracle_for_every_tenant_three_weeks(dataset):
    customers = dataset.customers_in("defender")
    assert len(customers) == 10  # nine in the report + the unmapped INITRODE
    async with DefenderSimulator(dataset) as sim:
        con = sim_connector(sim)
        try:
            for c in customers:
                cust = CustomerConfig(code=c.code, name=c.name, ids={"defender": c.ids["defender"]})
                period = week_containing(WEEK, c.timezone)
                for k in range(3):
                    try:
                        want: Any = await oracle(dataset, c, period)
                    except SourceDataError:
                        assert c.code == "TYRELL" and k > 0  # onboarded in the anchor week
                        with pytest.raises(SourceDataError, match="has no data for this period"):
                            await con.fetch_section("security", cust, period, Targets())
                    else:
                        assert await con.fetch_section("security", cust, period, Targets()) == want, (
                            c.code,
                            period.end,
                        )
                    period = previous_period(period)
            assert set(sim.entra.issued) == {(c.ids["defender"], GRAPH_RESOURCE) for c in customers}
            assert set(sim.entra.issued.values()) == {1}  # one token per tenant for the whole run
        finally:
            await con.aclose()


async def test_carried_over_and_mid_week_periods_equal_the_oracle(dataset):
    """Periods the planted weeks do not exercise: the week AFTER the anchor (INITECH's open
    incident carried over from before the start) and periods shifted to noon Wednesday
    (incidents created inside and resolved after the end)."""
    async with DefenderSimulator(dataset) as sim:
        con = sim_connector(sim)
        try:
            carried = 0
            for c in dataset.customers_in("defender"):
                cust = CustomerConfig(code=c.code, name=c.name, ids={"defender": c.ids["defender"]})
                week = week_containing(WEEK, c.timezone)
                after = Period(week.end, week.end + timedelta(days=7), c.timezone)
                got = await con.fetch_section("security", cust, after, Targets())
                assert got == await oracle(dataset, c, after)
                carried += got.incidents_open  # type: ignore[union-attr]
                for shift in (
                    timedelta(days=-4, hours=12),
                    timedelta(days=-11, hours=12),
                    timedelta(days=-1, hours=-4),
                ):
                    p = Period(week.start + shift, week.end + shift, c.timezone)
                    if p.start < dataset.gen(c.code).onboarded:
                        continue  # TYRELL's data begins in the anchor week (the oracle refuses earlier starts)
                    assert await con.fetch_section("security", cust, p, Targets()) == await oracle(dataset, c, p), (
                        c.code,
                        shift,
                    )
            assert carried == 1  # INITECH's high-severity incident, still open a week later
        finally:
            await con.aclose()


async def test_fault_matrix_globex(dataset):
    c = next(c for c in dataset.customers_in("defender") if c.code == "GLOBEX")
    period = week_containing(WEEK, c.timezone)
    async with DefenderSimulator(dataset, page_size=1) as sim:  # three new incidents: three pages
        await run_fault_matrix(
            sim,
            DefenderConnector,
            "security",
            customer_dict(c),
            period,
            await oracle(dataset, c, period),
            bad_credentials={"client_secret": "not-the-secret"},
            page_marker="skip",
            drift="createdDateTime>createdAt",
        )


async def test_planted_initech_open_incident_and_cyberdyne_score_drop(dataset):
    async with DefenderSimulator(dataset) as sim:
        out = {}
        for code in ("INITECH", "CYBERDYNE"):
            c = next(c for c in dataset.customers_in("defender") if c.code == code)
            this = week_containing(WEEK, c.timezone)
            cur = await collect_one(sim, DefenderConnector, "security", customer_dict(c), this)
            prev = await collect_one(sim, DefenderConnector, "security", customer_dict(c), previous_period(this))
            assert cur.section.ok and prev.section.ok, (cur.section.error, prev.section.error)
            flags = compute_flags({"security": cur.section}, {"security": prev.section}, Thresholds(), c.timezone)
            out[code] = (cur.section.data, [f.code for f in flags])
    initech, flags = out["INITECH"]
    assert flags == ["open_incident"]
    assert isinstance(initech, Security) and initech.incidents_open == 1
    assert initech.open_items[0].severity == "high"
    assert initech.open_items[0].title == "Suspicious sign-in to finance mailbox followed by inbox rule creation"
    cyberdyne, flags = out["CYBERDYNE"]
    assert flags == ["secure_score_drop"]
    assert isinstance(cyberdyne, Security) and cyberdyne.secure_score_change == pytest.approx(-8.0, abs=1e-9)


@pytest.mark.parametrize(
    ("code", "week_end", "tz", "start_utc", "end_utc"),
    [
        # Europe/London: BST ends Sunday 25 October 2026 → the week is 169 h
        ("ACME", date(2026, 10, 26), "Europe/London", "2026-10-18T23:00:00Z", "2026-10-26T00:00:00Z"),
        # America/New_York (the MSP is in London): EDT ends Sunday 1 November 2026 → 169 h
        ("INITECH", date(2026, 11, 2), "America/New_York", "2026-10-26T04:00:00Z", "2026-11-02T05:00:00Z"),
    ],
)
async def test_dst_weeks_send_the_exact_bounds_and_match_the_oracle(dataset, code, week_end, tz, start_utc, end_utc):
    c = next(c for c in dataset.customers_in("defender") if c.code == code)
    assert c.timezone == tz
    period = week_containing(week_end - timedelta(days=1), tz)
    assert period.hours == 169 and period.end.date() == week_end
    assert (period.start.astimezone(UTC), period.end.astimezone(UTC)) == (parse_time(start_utc), parse_time(end_utc))
    async with DefenderSimulator(dataset) as sim:
        out = await collect_one(sim, DefenderConnector, "security", customer_dict(c), period)
    assert out.section.ok, out.section.error
    assert out.section.data == await oracle(dataset, c, period)
    sent = sorted(
        parse_qs(urlsplit(p).query)["$filter"][0]
        for _, p in out.requests
        if p.startswith("/v1.0/security/incidents") and "skip" not in p
    )
    assert sent == [
        f"createdDateTime ge {start_utc} and createdDateTime lt {end_utc}",
        f"createdDateTime lt {start_utc} and (status ne 'resolved' or lastUpdateDateTime ge {end_utc})",
    ]


async def test_probe_and_customer_records_over_https(dataset):
    async with DefenderSimulator(dataset) as sim:
        con = sim_connector(sim)
        try:
            assert await con.probe() == f"Microsoft Graph v1.0 (partner tenant {PARTNER_TENANT})"
            records = await con.customer_records()
        finally:
            await con.aclose()
        assert sorted(r.id for r in records) == sorted(c.ids["defender"] for c in dataset.customers_in("defender"))
        assert any(r.name == "Initrode Ltd" for r in records)  # the unmapped customer is listed, not dropped
        assert sum("delegatedAdminCustomers" in p and "skiptoken" in p for _, p in sim.log) >= 2  # GDAP list pages


async def test_simulator_speaks_graph_errors(dataset):
    async with DefenderSimulator(dataset) as sim:
        tokens = tokens_for(sim.entra)
        c = dataset.customers_in("defender")[0]
        try:
            graph_token = await tokens.token(c.ids["defender"], GRAPH_RESOURCE + "/.default")
            with pytest.raises(
                SourceDataError,
                match=r"AADSTS500011: The resource principal named https://management\.azure\.com "
                r"was not found in the tenant named .*; check sources\.defender\.resource",
            ):
                await tokens.token(c.ids["defender"], "https://management.azure.com/.default")
        finally:
            await tokens.aclose()
        async with new_client(SourceConfig(ca_bundle=str(sim.pki.ca_path))) as http:
            base = f"{sim.url}/v1.0/security/incidents"
            r = await http.get(base)
            assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
            assert set(r.json()["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
            r = await http.get(
                base,
                params={"$filter": "createdAt ge 2026-11-09T00:00:00Z"},
                headers={"Authorization": f"Bearer {graph_token}"},
            )
            assert (
                r.status_code == 400 and "Could not find a property named 'createdAt'" in r.json()["error"]["message"]
            )
            r = await http.get(
                base, params={"$filter": "createdDateTime ge"}, headers={"Authorization": f"Bearer {graph_token}"}
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
            r = await http.get(base, headers={"Authorization": f"Bearer {graph_token[:-4]}AAAA"})
            assert r.status_code == 401


async def test_a_token_endpoint_that_hangs_is_unavailable_within_the_timeout(dataset):
    import time

    async with DefenderSimulator(dataset) as sim:
        sim.entra.faults = Faults(hang=30.0, count=10)
        tokens = tokens_for(sim.entra, token_timeout_seconds=0.3)
        t0 = time.perf_counter()
        try:
            with pytest.raises(
                SourceUnavailable, match=r"no answer from the token endpoint .* within 0.3 s for tenant"
            ):
                await tokens.token(PARTNER_TENANT, GRAPH_RESOURCE + "/.default")
        finally:
            await tokens.aclose()
        assert time.perf_counter() - t0 < 2  # bounded (twice the timeout at most): never the 30 s hang


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    async def run(patch: Any) -> Any:
        # the API version renames a field in every answer alike: the incident queries share one label
        labels = {"/security/secureScores": "secureScores"}
        routes = {k: patch(labels.get(k, "incidents"), copy.deepcopy(v)) for k, v in hand_routes().items()}
        con, _ = connector(GraphApi(routes))
        try:
            return await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
        finally:
            await con.aclose()

    await check_renamed_fields(
        run,
        {"incidents": lambda b: b["value"], "secureScores": lambda b: b["value"]},
        {
            "incidents": ["id", "displayName", "severity", "status", "createdDateTime", "lastUpdateDateTime"],
            "secureScores": ["createdDateTime", "currentScore", "maxScore"],
        },
    )

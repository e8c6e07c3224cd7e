"""Microsoft Sentinel via Azure Resource Manager: the client against httpx.MockTransport and
ARM-shaped fixtures, the mapper against a hand computation, and the connector over HTTPS against
its loopback simulator (Azure Lighthouse: one managing tenant for every delegated workspace) —
the fault matrix, equality with the in-process sandbox (the oracle) for every Sentinel customer
over three weeks, DST weeks, and ARM's error behaviour."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.aad.simulator import ARM_RESOURCE
from connectors.aad.tokens import TenantTokens
from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.defender.simulator import PARTNER_TENANT
from connectors.fields import parse_time
from connectors.http import new_client
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from connectors.sentinel.client import arm_error_message
from connectors.sentinel.connector import SentinelConnector, workspace_path
from connectors.sentinel.simulator import SentinelSimulator, customer_tenant
from reporting.config import CustomerConfig, SourceConfig
from reporting.models import OpenIncident, Period, Security, Targets
from reporting.period import previous_period, week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, collect_one, run_fault_matrix

FIX = Path(__file__).parent.parent / "fixtures" / "sentinel"
ANCHOR = date(2026, 11, 16)
WEEK = date(2026, 11, 10)
ARM = "https://management.azure.com"
WS = (
    "/subscriptions/6f2a9c1e-3b4d-4e5f-8a7b-9c0d1e2f3a4b/resourceGroups/rg-contoso-soc"
    "/providers/Microsoft.OperationalInsights/workspaces/law-contoso"
)
MSP_TENANT = "8cb7868a-71e7-5e04-918b-4d0d240f944a"
WRONG_SECRET = "wrong-s3cret"  # noqa: S105 - a test value, not a credential
HOSTILE = "<script>alert(1)</script> & **bold** | pipe"
LONDON_WEEK = Period(datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC), "Europe/London")


def fx(scenario: str, name: str) -> Any:
    return json.loads((FIX / scenario / f"{name}.json").read_text())


class FakeTokens:
    secrets: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def token(self, tenant: str, scope: str) -> str:
        self.asked.append((tenant, scope))
        return f"tok-{tenant}"

    async def aclose(self) -> None:
        return None


class ArmApi:
    """A MockTransport handler for ARM: checks bearer token and api-version on every request,
    answers per route, records what was asked, fails on anything else."""

    def __init__(self, routes: dict[str, Any]):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["authorization"] == f"Bearer tok-{MSP_TENANT}"
        assert request.url.host == "management.azure.com"
        path = request.url.path
        key = path
        if path.endswith("/providers/Microsoft.SecurityInsights/incidents"):
            assert path == f"{WS}/providers/Microsoft.SecurityInsights/incidents", f"unexpected {request.url}"
            assert request.url.params["api-version"] == "2025-06-01"
            flt = request.url.params["$filter"]
            key = "incidents " + ("new" if flt.startswith("properties/createdTimeUtc ge") else "carried")
            if "$skipToken" in request.url.params:
                key += " page2"
        if key not in self.routes:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.routes[key]
        return (
            answer(request)
            if callable(answer)
            else httpx.Response(200, json=answer, headers={"x-ms-request-id": "r-1"})
        )

    def filters(self) -> list[str]:
        return [
            r.url.params["$filter"]
            for r in self.requests
            if "$filter" in r.url.params and "$skipToken" not in r.url.params
        ]


def hand_routes() -> dict[str, Any]:
    return {
        "incidents new": fx("hand", "incidents_new_page1"),
        "incidents new page2": fx("hand", "incidents_new_page2"),
        "incidents carried": fx("hand", "incidents_carried"),
    }


def connector(api: ArmApi, sleep: RecordingSleep | None = None, **options: Any) -> tuple[SentinelConnector, FakeTokens]:
    tokens = FakeTokens()
    opts = {
        "type": "sentinel",
        "url": ARM,
        "client_id": "app",
        "client_secret": "s3cret-value",
        "tenant_id": MSP_TENANT,
    } | options
    ctx = ConnectorContext(
        client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(api)), sleep=sleep or RecordingSleep()
    )
    return SentinelConnector("sentinel", SourceConfig(**opts), ctx, tokens=tokens), tokens  # type: ignore[arg-type]


def customer(**kw: Any) -> CustomerConfig:
    return CustomerConfig(code="CONTOSO", name="Contoso", **({"ids": {"sentinel": WS}} | kw))


def test_arm_error_parser_and_workspace_ids():
    resp = httpx.Response(403, json=fx("errors", "arm_403_authorization_failed"), headers={"x-ms-request-id": "abc"})
    msg = arm_error_message(resp)
    assert msg is not None and msg.startswith("AuthorizationFailed: The client 'b3a1c2d4")
    assert msg.endswith("(x-ms-request-id abc)")
    assert workspace_path("sentinel", "sentinel", WS.lower().replace("/law-contoso", "/law-contoso")) == (
        "/subscriptions/6f2a9c1e-3b4d-4e5f-8a7b-9c0d1e2f3a4b/resourceGroups/rg-contoso-soc"
        "/providers/Microsoft.OperationalInsights/workspaces/law-contoso"
    )
    with pytest.raises(SourceDataError, match=r"customers\.ids\.sentinel must look like /subscriptions/"):
        workspace_path("sentinel", "sentinel", "/subscriptions/x/resourceGroups/rg/workspaces/law")


async def test_hand_computed_week():
    """Six Sentinel incidents over two queries, worked by hand:

    new (created 9–16 Nov): #11 High New, #12 Medium Closed 11 Nov 15:00, #13 Low Closed 16 Nov
    03:00 (after the end: open at the end), #14 Informational Active → 4 new, one per severity.
    carried over: #9 High Active, #10 Medium Closed 17 Nov (after the end) → both open.
    open at the end: #9, #11, #10, #13, #14 = 5. Sentinel has no Secure Score: None, None.
    """
    api = ArmApi(hand_routes())
    con, tokens = connector(api)
    try:
        got = await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    assert got == Security(
        incidents_new=4,
        incidents_open=5,
        by_severity={"high": 1, "medium": 1, "low": 1, "informational": 1},
        secure_score_pct=None,
        secure_score_change=None,
        open_items=(
            OpenIncident("9", "Brute force attack against Azure portal", "high", parse_time("2026-11-02T08:30:00Z")),
            OpenIncident("11", HOSTILE, "high", parse_time("2026-11-10T09:00:00Z")),
            OpenIncident(
                "10", "Malware detected and quarantined on endpoint", "medium", parse_time("2026-11-05T13:00:00Z")
            ),
            OpenIncident(
                "13", "Suspicious PowerShell download cradle", "low", parse_time("2026-11-15T22:00:00.553333Z")
            ),
            OpenIncident(
                "14", "Rare process on domain controller", "informational", parse_time("2026-11-13T08:00:00Z")
            ),
        ),
    )
    assert got.open_items[1].title == HOSTILE  # verbatim
    assert sorted(api.filters()) == [
        "properties/createdTimeUtc ge 2026-11-09T00:00:00Z and properties/createdTimeUtc lt 2026-11-16T00:00:00Z",
        "properties/createdTimeUtc lt 2026-11-09T00:00:00Z and (properties/status ne 'Closed' or "
        "properties/lastModifiedTimeUtc ge 2026-11-16T00:00:00Z)",
    ]
    page2 = [str(r.url) for r in api.requests if "$skipToken" in r.url.params]
    assert page2 == [fx("hand", "incidents_new_page1")["nextLink"]]  # followed verbatim
    assert set(tokens.asked) == {(MSP_TENANT, "https://management.azure.com/.default")}


@pytest.mark.parametrize(
    ("fixture", "index", "path"),
    [
        ("incidents_new_page1", 0, ("properties", "createdTimeUtc")),
        ("incidents_new_page2", 1, ("properties", "title")),
        ("incidents_carried", 0, ("properties", "status")),
        ("incidents_carried", 1, ("properties",)),
    ],
)
async def test_a_missing_field_names_itself_and_gives_no_numbers(fixture, index, path):
    routes = hand_routes()
    body = fx("hand", fixture)
    obj = body["value"][index]
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1] + "Renamed"] = obj.pop(path[-1])
    routes[
        {
            "incidents_new_page1": "incidents new",
            "incidents_new_page2": "incidents new page2",
            "incidents_carried": "incidents carried",
        }[fixture]
    ] = body
    con, _ = connector(ArmApi(routes))
    try:
        with pytest.raises(SourceDataError, match=f"field '{path[-1]}' is missing"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()


async def test_arm_refusals_and_unknown_workspace():
    for status, name, kind, words in [
        (403, "arm_403_authorization_failed", SourceAuthError, "HTTP 403 — AuthorizationFailed: The client"),
        (
            401,
            "arm_401_wrong_tenant",
            SourceAuthError,
            "InvalidAuthenticationTokenTenant: The access token is from the wrong issuer",
        ),
        (
            404,
            "arm_404_workspace",
            SourceDataError,
            "HTTP 404 — ResourceNotFound: The Resource 'Microsoft.OperationalInsights/workspaces/law-contoso'",
        ),
    ]:
        routes = hand_routes()
        routes["incidents carried"] = lambda r, s=status, n=name: httpx.Response(s, json=fx("errors", n))
        con, _ = connector(ArmApi(routes))
        try:
            with pytest.raises(kind, match=words):
                await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
        finally:
            await con.aclose()


async def test_429_retry_after_then_5xx_then_timeout_and_html():
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(
                429, json={"error": {"code": "TooManyRequests", "message": "slow down"}}, headers={"Retry-After": "7"}
            )
        if calls["n"] == 2:
            return httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
        return httpx.Response(200, json=fx("hand", "incidents_carried"))

    routes = hand_routes()
    routes["incidents carried"] = flaky
    sleep = RecordingSleep()
    con, _ = connector(ArmApi(routes), sleep)
    try:
        got = await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    assert isinstance(got, Security) and got.incidents_open == 5 and sleep.waits[0] == 7.0 and len(sleep.waits) == 2

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    routes = hand_routes()
    routes["incidents new"] = hang
    con, _ = connector(ArmApi(routes), max_attempts=2)
    try:
        with pytest.raises(SourceUnavailable, match="no answer within"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    routes = hand_routes()
    routes["incidents new page2"] = lambda r: httpx.Response(200, text="<!DOCTYPE html><html>login</html>")
    con, _ = connector(ArmApi(routes))
    try:
        with pytest.raises(SourceDataError, match="an HTML page, not JSON"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
    finally:
        await con.aclose()


async def test_tenant_and_workspace_mapping():
    api = ArmApi(hand_routes())
    con, tokens = connector(api, tenant_id=None)
    try:
        with pytest.raises(SourceDataError, match=r"set sources\.sentinel\.tenant_id .* or the customer's tenant_id"):
            await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
        with pytest.raises(SourceDataError, match=r"set customers\.ids\.sentinel"):
            await con.fetch_section("security", customer(ids={}), LONDON_WEEK, Targets())
        with pytest.raises(SourceDataError, match="is not a Log Analytics workspace resource id"):
            await con.fetch_section(
                "security", customer(ids={"sentinel": "law-contoso"}, tenant_id=MSP_TENANT), LONDON_WEEK, Targets()
            )
        with pytest.raises(SourceDataError, match=r"tenant_id is not set: the managing \(MSP\) tenant"):
            await con.probe()
    finally:
        await con.aclose()
    assert api.requests == []
    con, tokens = connector(ArmApi(hand_routes()), tenant_id=None)
    try:
        await con.fetch_section("security", customer(tenant_id=MSP_TENANT), LONDON_WEEK, Targets())
    finally:
        await con.aclose()
    assert {t for t, _ in tokens.asked} == {MSP_TENANT}  # no managing tenant: the customer's own


async def test_customer_records_from_fixtures_are_canonical_ids():
    routes = {
        "/subscriptions": fx("records", "subscriptions"),
        "/subscriptions/6f2a9c1e-3b4d-4e5f-8a7b-9c0d1e2f3a4b/providers/Microsoft.OperationalInsights/workspaces": fx(
            "records", "workspaces"
        ),
    }
    api = ArmApi(routes)
    con, _ = connector(api)
    try:
        records = await con.customer_records()
        assert [(r.id, r.name) for r in records] == [(WS, "law-contoso (Contoso - Security)")]
        assert await con.probe() == "Azure Resource Manager (1 subscription visible; incidents api-version 2025-06-01)"
    finally:
        await con.aclose()
    assert {r.url.params["api-version"] for r in api.requests} == {"2022-12-01", "2023-09-01"}


# ---- the connector over HTTPS against the simulator ------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return SandboxDataset(ANCHOR)


def customer_dict(c: Any) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "timezone": c.timezone,
        "ids": {"sentinel": c.ids["sentinel"]},
        "sources": {"security": "sentinel"},
    }


async def oracle(dataset: SandboxDataset, c: Any, period: Period) -> Any:
    o = SandboxConnector("sentinel", SourceConfig(type="sandbox", system="sentinel"), ConnectorContext(sandbox=dataset))
    return await o.fetch_section(
        "security", CustomerConfig(code=c.code, name=c.name, ids={"sentinel": c.ids["sentinel"]}), period, Targets()
    )


def sim_connector(sim: SentinelSimulator, **over: Any) -> SentinelConnector:
    source = dict(sim.source_config()) | over
    source.pop("type")
    return SentinelConnector("sentinel", SourceConfig(**source), ConnectorContext())


async def test_equals_the_oracle_for_every_workspace_three_weeks_and_shifted_periods(dataset):
    customers = dataset.customers_in("sentinel")
    assert [c.code for c in customers] == ["WONKA", "SOYLENT", "MASSIVE"]
    async with SentinelSimulator(dataset) as sim:
        con = sim_connector(sim)
        try:
            for c in customers:
                cust = CustomerConfig(code=c.code, name=c.name, ids={"sentinel": c.ids["sentinel"]})
                period = week_containing(WEEK, c.timezone)
                periods = [
                    period,
                    previous_period(period),
                    previous_period(previous_period(period)),
                    Period(period.end, period.end + timedelta(days=7), c.timezone),
                ]
                periods += [
                    Period(period.start + s, period.end + s, c.timezone)
                    for s in (timedelta(days=-4, hours=12), timedelta(days=-1, hours=-4))
                ]
                for p in periods:
                    assert await con.fetch_section("security", cust, p, Targets()) == await oracle(dataset, c, p), (
                        c.code,
                        p,
                    )
            assert dict(sim.entra.issued) == {(PARTNER_TENANT, ARM_RESOURCE): 1}  # Lighthouse: one token for all
        finally:
            await con.aclose()


async def test_fault_matrix_soylent(dataset):
    c = next(c for c in dataset.customers_in("sentinel") if c.code == "SOYLENT")
    period = previous_period(week_containing(WEEK, c.timezone))
    async with SentinelSimulator(dataset, page_size=1) as sim:  # three new incidents that week: three pages
        await run_fault_matrix(
            sim,
            SentinelConnector,
            "security",
            customer_dict(c),
            period,
            await oracle(dataset, c, period),
            bad_credentials={"client_secret": "not-the-secret"},
            page_marker="skipToken",
            drift="createdTimeUtc>createdTime",
        )


@pytest.mark.parametrize(
    ("code", "week_end", "tz", "start_utc", "end_utc"),
    [
        # Europe/London: BST ends Sunday 25 October 2026 → the week is 169 h
        ("SOYLENT", date(2026, 10, 26), "Europe/London", "2026-10-18T23:00:00Z", "2026-10-26T00:00:00Z"),
        # America/Los_Angeles (the MSP is in London): PDT ends Sunday 1 November 2026 → 169 h
        ("MASSIVE", date(2026, 11, 2), "America/Los_Angeles", "2026-10-26T07:00:00Z", "2026-11-02T08:00:00Z"),
    ],
)
async def test_dst_weeks_send_the_exact_bounds_and_match_the_oracle(dataset, code, week_end, tz, start_utc, end_utc):
    c = next(c for c in dataset.customers_in("sentinel") if c.code == code)
    assert c.timezone == tz
    period = week_containing(week_end - timedelta(days=1), tz)
    assert period.hours == 169 and (period.start.astimezone(UTC), period.end.astimezone(UTC)) == (
        parse_time(start_utc),
        parse_time(end_utc),
    )
    async with SentinelSimulator(dataset) as sim:
        out = await collect_one(sim, SentinelConnector, "security", customer_dict(c), period)
    assert out.section.ok, out.section.error
    assert out.section.data == await oracle(dataset, c, period)
    sent = sorted(parse_qs(urlsplit(p).query)["$filter"][0] for _, p in out.requests if "skipToken" not in p)
    assert sent == [
        f"properties/createdTimeUtc ge {start_utc} and properties/createdTimeUtc lt {end_utc}",
        f"properties/createdTimeUtc lt {start_utc} and (properties/status ne 'Closed' or "
        f"properties/lastModifiedTimeUtc ge {end_utc})",
    ]


async def test_probe_and_customer_records_over_https(dataset):
    async with SentinelSimulator(dataset) as sim:
        con = sim_connector(sim)
        try:
            assert (
                await con.probe()
                == "Azure Resource Manager (3 subscriptions visible; incidents api-version 2025-06-01)"
            )
            records = await con.customer_records()
        finally:
            await con.aclose()
    assert sorted(r.id for r in records) == sorted(c.ids["sentinel"] for c in dataset.customers_in("sentinel"))


async def test_bad_credentials_and_api_version_over_https(dataset):
    c = next(c for c in dataset.customers_in("sentinel") if c.code == "WONKA")
    other = next(c for c in dataset.customers_in("sentinel") if c.code == "MASSIVE")
    async with SentinelSimulator(dataset) as sim:
        cust = CustomerConfig(code=c.code, name=c.name, ids={"sentinel": c.ids["sentinel"]})
        cases = [
            (
                sim_connector(sim, client_secret=WRONG_SECRET),
                SourceAuthError,
                f"the credentials were refused by Microsoft Entra ID for tenant {PARTNER_TENANT}: AADSTS7000215",
            ),
            (
                sim_connector(sim, api_version="2019-01-01-preview"),
                SourceDataError,
                "HTTP 400 — NoRegisteredProviderFound: "
                "No registered resource provider found for API version '2019-01-01-preview'",
            ),
            # a token of another customer's tenant: ARM says the issuer is wrong for this subscription
            (
                sim_connector(sim, tenant_id=customer_tenant(other)),
                SourceAuthError,
                "HTTP 401 — InvalidAuthenticationTokenTenant: The access token is from the wrong issuer",
            ),
            (sim_connector(sim, url=sim.url.replace("https://", "http://")), SourceUnavailable, "cannot connect"),
        ]
        for con, kind, words in cases:
            try:
                with pytest.raises(kind, match=words) as err:
                    await con.fetch_section("security", cust, week_containing(WEEK, c.timezone), Targets())
                assert "wrong-s3cret" not in str(err.value)
            finally:
                await con.aclose()
        async with new_client(SourceConfig(ca_bundle=str(sim.pki.ca_path))) as http:
            tokens = TenantTokens(
                "sentinel", "sentinel", SourceConfig(**{k: v for k, v in sim.source_config().items() if k != "type"})
            )
            try:
                tok = await tokens.token(PARTNER_TENANT, ARM_RESOURCE + "/.default")
            finally:
                await tokens.aclose()
            shouting = c.ids["sentinel"].upper().replace("SUBSCRIPTIONS", "subscriptions")  # ARM paths ignore case
            url = f"{sim.url}{shouting}/providers/microsoft.securityinsights/INCIDENTS"
            r = await http.get(url, headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
            r = await http.get(
                url, params={"api-version": "2025-06-01", "$top": "1"}, headers={"Authorization": f"Bearer {tok}"}
            )
            assert (
                r.status_code == 200 and len(r.json()["value"]) == 1 and "nextLink" not in r.json()
            )  # $top is a total
            assert r.headers["x-ms-request-id"]


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    async def run(patch: Any) -> Any:
        # the API version renames a field in every answer alike: the incident queries share one label
        routes = {k: patch("incidents", copy.deepcopy(v)) for k, v in hand_routes().items()}
        con, _ = connector(ArmApi(routes))
        try:
            return await con.fetch_section("security", customer(), LONDON_WEEK, Targets())
        finally:
            await con.aclose()

    p = "properties"
    await check_renamed_fields(
        run,
        {"incidents": lambda b: b["value"]},
        {
            "incidents": [
                p,
                f"{p}.incidentNumber",
                f"{p}.title",
                f"{p}.severity",
                f"{p}.status",
                f"{p}.createdTimeUtc",
                f"{p}.lastModifiedTimeUtc",
            ]
        },
    )

"""Cloudflare connector: client against vendor-shaped fixtures, a hand-computed week, the fault
matrix and oracle equality against the loopback simulator."""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.cloudflare import CloudflareConnector
from connectors.cloudflare.connector import unhealthy_intervals
from connectors.cloudflare.simulator import CloudflareSimulator
from connectors.fields import iso_z, parse_time
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from reporting.models import Period, SiteCheck, Sites, Targets
from reporting.period import week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, make_config, run_fault_matrix

FIX = Path(__file__).parent.parent / "fixtures" / "cloudflare"
ANCHOR = date(2026, 11, 16)
BASE = "https://api.cloudflare.test/client/v4"
TOKEN = "cf-t0ken-xyz789"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
HC = f"GET /client/v4/zones/{ZONE}/healthchecks"
GQL = "POST /client/v4/graphql"
WEEK = week_containing(date(2026, 11, 10), "Europe/London")  # 9–16 Nov 2026, GMT = UTC


def load(scenario: str, name: str) -> Any:
    return json.loads((FIX / scenario / name).read_text())


class Router:
    """A MockTransport handler serving exactly the routes given; anything else fails the test."""

    def __init__(self, routes: dict[str, tuple[int, Any]]):
        self.routes = routes
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        key = f"{request.method} {request.url.path}" + (f"?{request.url.query.decode()}" if request.url.query else "")
        if key not in self.routes:
            raise AssertionError(f"unexpected request {key}")
        status, body = self.routes[key]
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"content-type": "text/html"})
        return httpx.Response(status, json=body)

    def graphql_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.seen if r.url.path.endswith("/graphql")]


def handcalc_routes() -> dict[str, tuple[int, Any]]:
    return {
        f"{HC}?page=1&per_page=2": (200, load("handcalc", "zones_healthchecks_page1.json")),
        f"{HC}?page=2&per_page=2": (200, load("handcalc", "zones_healthchecks_page2.json")),
        GQL: (200, load("handcalc", "graphql.json")),
    }


def customer(tz: str = "Europe/London", zone: str = ZONE) -> dict[str, Any]:
    return {
        "code": "ACME",
        "name": "Acme",
        "timezone": tz,
        "ids": {"cloudflare": zone},
        "sources": {"sites": "cloudflare"},
    }


def mock_connector(
    handler: Any, tz: str = "Europe/London", **options: Any
) -> tuple[CloudflareConnector, Any, RecordingSleep]:
    cfg = make_config("cloudflare", "cloudflare", {"url": BASE, "token": TOKEN, "per_page": 2, **options}, customer(tz))
    sleep = RecordingSleep()
    ctx = ConnectorContext(
        client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(handler)), sleep=sleep
    )
    return CloudflareConnector("cloudflare", cfg.sources["cloudflare"], ctx), cfg.customers[0], sleep


async def fetch(handler: Any, period: Period = WEEK, tz: str = "Europe/London", **options: Any) -> Any:
    conn, cust, _ = mock_connector(handler, tz, **options)
    try:
        return await conn.fetch_section("sites", cust, period, Targets(site_pct=99.9))
    finally:
        await conn.aclose()


async def test_hand_computed_week():
    """From the fixtures, by hand:

    - www: unhealthy WEU 13:00–13:45 and ENAM 13:05–13:50 on 10 Nov → the union, 50 min.
    - shop: WEU's first change in the week is to *healthy* at 02:30 on 9 Nov, so it was unhealthy
      from the period start: 150 min; unhealthy again from 23:30 on 15 Nov to the end: 30 min.
      ENAM had no change: its probes (10077 healthy, 3 unhealthy) say healthy throughout. 180 min.
    - api is suspended: left out, although analytics mention it.
    """
    router = Router(handcalc_routes())
    data = await fetch(router)
    week = 7 * 86400
    assert data == Sites(
        checks=(
            SiteCheck("shop.acme.example", 100 * (week - 180 * 60) / week, 180.0),
            SiteCheck("www.acme.example", 100 * (week - 50 * 60) / week, 50.0),
        ),
        target_pct=99.9,
    )
    (body,) = router.graphql_bodies()
    assert body["variables"] == {
        "zoneTag": ZONE,
        "start": "2026-11-09T00:00:00Z",
        "end": "2026-11-16T00:00:00Z",
        "limit": 10000,
    }
    assert "healthChanged: 1" in body["query"] and "orderBy: [datetime_ASC]" in body["query"]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in router.seen)


async def test_check_name_label():
    data = await fetch(Router(handcalc_routes()), check_label="name")
    assert [c.name for c in data.checks] == ["shop-acme", "www-acme"]


def test_state_machine_edges():
    s, e = WEEK.start, WEEK.end
    t = parse_time("2026-11-11T10:00:00Z")
    assert unhealthy_intervals([], Counter({True: 5}), s, e) == []
    assert unhealthy_intervals([], Counter({False: 5, True: 1}), s, e) == [(s, e)]
    assert unhealthy_intervals([], Counter(), s, e) is None
    assert unhealthy_intervals([(t, False)], Counter(), s, e) == [(t, None)]
    # a repeated "unhealthy" does not restart the outage
    t2 = t + timedelta(minutes=5)
    t3 = t + timedelta(minutes=9)
    assert unhealthy_intervals([(t, False), (t2, False), (t3, True)], Counter(), s, e) == [(t, t3)]


@pytest.mark.parametrize(
    ("tz", "day"), [("Europe/London", date(2026, 10, 21)), ("America/New_York", date(2026, 10, 28))]
)
async def test_dst_week_bounds_sent_and_169_hours(tz: str, day: date):
    """The GraphQL window is the period in UTC; a check unhealthy all week is down 169 h."""
    period = week_containing(day, tz)
    gql = {
        "data": {
            "viewer": {
                "zones": [
                    {
                        "changes": [],
                        "probes": [
                            {
                                "count": 20280,
                                "dimensions": {
                                    "healthCheckId": "6b2f1e7c4d3e5f901b2c3d4e5f6a7b8c",
                                    "healthStatus": "unhealthy",
                                    "region": "WEU",
                                },
                            }
                        ],
                    }
                ]
            }
        },
        "errors": None,
    }
    page = load("handcalc", "zones_healthchecks_page1.json")
    page["result"] = page["result"][1:]  # the api check, here not suspended
    page["result"][0]["suspended"] = False
    page["result_info"] = {"page": 1, "per_page": 2, "count": 1, "total_count": 1, "total_pages": 1}
    router = Router({f"{HC}?page=1&per_page=2": (200, page), GQL: (200, gql)})
    data = await fetch(router, period, tz)
    assert period.hours == 169
    assert data.checks[0].downtime_minutes == 169 * 60 and data.checks[0].availability_pct == 0.0
    (body,) = router.graphql_bodies()
    assert body["variables"]["start"] == iso_z(period.start) and body["variables"]["end"] == iso_z(period.end)
    expected = {
        "Europe/London": ("2026-10-18T23:00:00Z", "2026-10-26T00:00:00Z"),
        "America/New_York": ("2026-10-26T04:00:00Z", "2026-11-02T05:00:00Z"),
    }[tz]
    assert (body["variables"]["start"], body["variables"]["end"]) == expected


async def test_invalid_token_is_an_auth_error():
    for status, name in ((403, "authentication_error.json"), (400, "invalid_request_headers.json")):
        router = Router(
            {
                f"{HC}?page=1&per_page=2": (status, load("errors", name)),
                GQL: (401, {"data": None, "errors": [{"message": "Unauthorized"}]}),
            }
        )
        with pytest.raises(
            SourceAuthError, match=r"was refused.*(Authentication error|Invalid request headers)"
        ) as err:
            await fetch(router)
        assert TOKEN not in str(err.value)


async def test_unknown_zone_names_the_config_key():
    router = Router(
        {
            f"{HC}?page=1&per_page=2": (400, load("errors", "could_not_route.json")),
            GQL: (200, load("handcalc", "graphql.json")),
        }
    )
    with pytest.raises(SourceDataError, match=r"no zone '023e.*customers.ids.cloudflare of ACME"):
        await fetch(router)


async def test_analytics_errors_in_a_200_are_translated_and_current_status_is_labelled():
    routes = handcalc_routes()
    routes[GQL] = (200, load("errors", "graphql_no_access.json"))
    fallback = await fetch(Router(routes))  # analytics refused: current status, labelled, no availability
    assert isinstance(fallback, Sites) and fallback.basis == "current_status"
    assert [(c.name, c.availability_pct, c.downtime_minutes, c.status_now) for c in fallback.checks] == [
        ("shop.acme.example", None, None, "unhealthy"),
        ("www.acme.example", None, None, "healthy"),
    ]
    assert fallback.note and "does not have access to the path" in fallback.note and "Analytics Read" in fallback.note
    routes[GQL] = (200, load("errors", "graphql_rate_limited.json"))
    with pytest.raises(SourceUnavailable, match="rate limiter budget depleted"):
        await fetch(Router(routes))
    routes[GQL] = (200, load("errors", "graphql_too_old.json"))
    with pytest.raises(SourceDataError, match="cannot request data older than"):
        await fetch(Router(routes))


async def test_a_short_page_is_refused_not_half_a_list():
    routes = handcalc_routes()
    page2 = load("handcalc", "zones_healthchecks_page2.json")
    page2["result"] = []
    routes[f"{HC}?page=2&per_page=2"] = (200, page2)
    with pytest.raises(SourceDataError, match="total_count says 3"):
        await fetch(Router(routes))


async def test_429_5xx_timeout_html():
    state = {"n": 0}
    routes = handcalc_routes()

    def flaky(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] == 1:
            return httpx.Response(
                429,
                headers={"Retry-After": "2"},
                json=load("errors", "authentication_error.json")
                | {"errors": [{"code": 10013, "message": "Rate limited"}]},
            )
        if state["n"] in (2, 3):
            return httpx.Response(503, json={"success": False, "errors": [{"code": 10002, "message": "unavailable"}]})
        return Router(routes)(request)

    conn, cust, sleep = mock_connector(flaky)
    try:
        data = await conn.fetch_section("sites", cust, WEEK, Targets())
    finally:
        await conn.aclose()
    assert len(data.checks) == 2 and sleep.waits[0] == 2.0 and len(sleep.waits) == 3

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(SourceUnavailable, match="no answer within"):
        await fetch(hang, max_attempts=2)
    routes[f"{HC}?page=2&per_page=2"] = (200, "<html><title>Attention Required!</title></html>")
    with pytest.raises(SourceDataError, match="HTML page, not JSON"):
        await fetch(Router(routes))


async def test_renamed_fields_are_named():
    routes = handcalc_routes()
    gql = load("handcalc", "graphql.json")
    gql["data"]["viewer"]["zones"][0]["changes"][3] = {
        ("health_status" if k == "healthStatus" else k): v
        for k, v in gql["data"]["viewer"]["zones"][0]["changes"][3].items()
    }
    routes[GQL] = (200, gql)
    with pytest.raises(SourceDataError, match="field 'healthStatus' is missing"):
        await fetch(Router(routes))
    routes = handcalc_routes()
    gql = load("handcalc", "graphql.json")
    gql["data"]["viewer"]["zones"][0]["probes"][0]["dimensions"]["healthStatus"] = "degraded"
    routes[GQL] = (200, gql)
    with pytest.raises(SourceDataError, match="healthStatus is 'degraded'"):
        await fetch(Router(routes))


async def test_a_check_created_inside_the_period_is_refused():
    routes = handcalc_routes()
    page = load("handcalc", "zones_healthchecks_page1.json")
    page["result"][0]["created_on"] = "2026-11-12T09:00:00Z"
    routes[f"{HC}?page=1&per_page=2"] = (200, page)
    with pytest.raises(SourceDataError, match="created 2026-11-12T09:00:00Z, inside the period"):
        await fetch(Router(routes))


async def test_customer_records_and_probe():
    router = Router(
        {
            "GET /client/v4/zones?page=1&per_page=2": (200, load("errors", "zones_page1.json")),
            "GET /client/v4/user/tokens/verify": (200, load("errors", "tokens_verify.json")),
        }
    )
    conn, _, _ = mock_connector(router)
    try:
        assert [(r.id, r.name) for r in await conn.customer_records()] == [(ZONE, "acme.example")]
        assert await conn.probe() == "Cloudflare API token active"
    finally:
        await conn.aclose()


# ---- against the loopback simulator --------------------------------------------------------


def sandbox_customer(ds: SandboxDataset, code: str) -> dict[str, Any]:
    c = next(c for c in ds.customers_in("cloudflare") if c.code == code)
    return {
        "code": c.code,
        "name": c.name,
        "timezone": c.timezone,
        "ids": dict(c.ids),
        "sources": {"sites": "cloudflare"},
    }


async def oracle(ds: SandboxDataset, cust: dict[str, Any], period: Period) -> Any:
    cfg = make_config("cloudflare", "sandbox", {"system": "cloudflare"}, cust)
    conn = SandboxConnector("cloudflare", cfg.sources["cloudflare"], ConnectorContext(sandbox=ds))
    return await conn.fetch_section("sites", cfg.customers[0], period, Targets())


async def test_equals_the_oracle_for_every_customer_and_three_weeks():
    ds = SandboxDataset(ANCHOR)
    codes = [c.code for c in ds.customers if "cloudflare" in c.ids]
    assert len(codes) == 8
    async with CloudflareSimulator(ds) as sim:
        source = sim.source_config()
        kind = source.pop("type")
        for code in codes:
            cust = sandbox_customer(ds, code)
            cfg = make_config("cloudflare", kind, source, cust)
            conn = CloudflareConnector("cloudflare", cfg.sources["cloudflare"], ConnectorContext())
            try:
                for k in range(3):
                    period = week_containing(ANCHOR - timedelta(days=3 + 7 * k), cust["timezone"])
                    try:
                        want = await oracle(ds, cust, period)
                    except SourceDataError:  # TYRELL before onboarding: no data on either side
                        with pytest.raises(SourceDataError, match="inside the period"):
                            await conn.fetch_section("sites", cfg.customers[0], period, Targets())
                        continue
                    assert await conn.fetch_section("sites", cfg.customers[0], period, Targets()) == want, (code, k)
            finally:
                await conn.aclose()
    stark = [s for m, s in sim.log if "healthchecks" in s and ds.customers[5].ids["cloudflare"] in s]
    assert len(stark) >= 2 * 3  # two pages per week: several pages for every customer


async def test_stark_site_down_two_hours():
    ds = SandboxDataset(ANCHOR)
    cust = sandbox_customer(ds, "STARK")
    period = week_containing(ANCHOR - timedelta(days=3), cust["timezone"])
    async with CloudflareSimulator(ds) as sim:
        source = sim.source_config()
        kind = source.pop("type")
        cfg = make_config("cloudflare", kind, source, cust)
        conn = CloudflareConnector("cloudflare", cfg.sources["cloudflare"], ConnectorContext())
        try:
            data = await conn.fetch_section("sites", cfg.customers[0], period, Targets())
        finally:
            await conn.aclose()
    www = next(c for c in data.checks if c.name == "www.stark.example")
    assert www.downtime_minutes >= 120 and www.availability_pct < 99.0


async def test_fault_matrix():
    ds = SandboxDataset(ANCHOR)
    cust = sandbox_customer(ds, "INITECH")  # America/New_York customer, MSP in London
    period = week_containing(ANCHOR - timedelta(days=3), cust["timezone"])
    expected = await oracle(ds, cust, period)
    async with CloudflareSimulator(ds) as sim:
        await run_fault_matrix(
            sim,
            CloudflareConnector,
            "sites",
            cust,
            period,
            expected,
            bad_credentials={"token": "not-the-token"},
            min_pages=2,
            page_marker="page=",
            drift="healthStatus>health_status",
        )


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    async def run(patch: Any) -> Any:
        # the API version renames a field on every page alike: both pages share one label
        labels = {GQL: "graphql"}
        routes = {
            k: (status, patch(labels.get(k, "healthchecks"), copy.deepcopy(body)))
            for k, (status, body) in handcalc_routes().items()
        }
        return await fetch(Router(routes))

    zone = "data.viewer.zones"
    await check_renamed_fields(
        run,
        {"healthchecks": lambda b: b["result"], "graphql": lambda b: [b]},
        {
            "healthchecks": ["id", "address", "suspended", "created_on"],
            "graphql": [
                "data",
                f"{zone}.changes",
                f"{zone}.changes.datetime",
                f"{zone}.changes.healthCheckId",
                f"{zone}.changes.healthStatus",
                f"{zone}.changes.region",
                f"{zone}.probes",
                f"{zone}.probes.count",
                f"{zone}.probes.dimensions.healthStatus",
            ],
        },
    )

"""LibreNMS connector: client against vendor-shaped fixtures, a hand-computed week, the fault
matrix and oracle equality against the loopback simulator."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.librenms import LibreNMSConnector
from connectors.librenms.simulator import LibreNMSSimulator
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from connectors.sim.base import Faults
from reporting.models import Period, Targets, Uptime, UptimeGroup
from reporting.period import week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, make_config, run_fault_matrix

FIX = Path(__file__).parent.parent / "fixtures" / "librenms"
ANCHOR = date(2026, 11, 16)
BASE = "https://nms.test"
TOKEN = "t0ken-abc123"


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


def customer(code: str = "ACME", group: str = "104", tz: str = "Europe/London") -> dict[str, Any]:
    return {
        "code": code,
        "name": code.title(),
        "timezone": tz,
        "ids": {"librenms": group},
        "sources": {"uptime": "librenms"},
    }


def mock_connector(router: Router, **options: Any) -> tuple[LibreNMSConnector, Any, RecordingSleep]:
    cfg = make_config("librenms", "librenms", {"url": BASE, "token": TOKEN, **options}, customer())
    sleep = RecordingSleep()
    ctx = ConnectorContext(
        client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(router)), sleep=sleep
    )
    return LibreNMSConnector("librenms", cfg.sources["librenms"], ctx), cfg.customers[0], sleep


def handcalc_routes() -> dict[str, tuple[int, Any]]:
    h = "handcalc"
    return {
        "GET /api/v0/devicegroups/104?full=1": (200, load(h, "devicegroups_104_full.json")),
        "GET /api/v0/devicegroups/777": (200, load(h, "devicegroups_777.json")),
        "GET /api/v0/resources/locations": (200, load(h, "resources_locations.json")),
        "GET /api/v0/alerts/scheduled_maintenance": (200, load(h, "alerts_scheduled_maintenance.json")),
        "GET /api/v0/devices/501/outages": (200, load(h, "devices_501_outages.json")),
        "GET /api/v0/devices/502/outages": (200, load(h, "devices_502_outages.json")),
        "GET /api/v0/devices/503/outages": (200, load(h, "devices_503_outages.json")),
    }


WEEK = week_containing(date(2026, 11, 10), "Europe/London")  # Mon 9 – Mon 16 Nov 2026, GMT = UTC


async def test_hand_computed_week_with_outages_and_maintenance():
    """Recomputed by hand from the fixtures (LibreNMS server in Europe/Berlin, UTC+1 in November):

    - 501 server, Head office: outage 8 Nov 23:00 – 9 Nov 00:30 UTC → 30 min inside the week;
      schedule 3 names group 777 (501 is a member): 15 Nov 03:00–04:00 Berlin = 1 h maintenance.
    - 502 network ("switch"), Branch: down since 15 Nov 23:00 UTC, still down → 60 min; schedule 2
      names location 2: 14 Nov 10:00–12:00 Berlin = 2 h maintenance.
    - 503 network, Head office: schedule 1 recurs Tu/Th 22:00–01:00 Berlin = 2 × 3 h; its outage
      10 Nov 21:30–22:15 UTC falls inside (excluded), 13 Nov 10:00–10:20 UTC counts → 20 min.
    - 504 is disabled: not counted. Schedule 4 (October) does not touch the week.
    """
    router = Router(handcalc_routes())
    conn, cust, _ = mock_connector(router, server_timezone="Europe/Berlin", class_labels={"network": "switch"})
    try:
        data = await conn.fetch_section("uptime", cust, WEEK, Targets(uptime_pct=99.9))
    finally:
        await conn.aclose()
    week = 7 * 86400
    mon = {501: week - 3600, 502: week - 7200, 503: week - 6 * 3600}
    down = {501: 1800, 502: 3600, 503: 1200}

    def grp(name: str, ids: list[int]) -> UptimeGroup:
        m, d = sum(mon[i] for i in ids), sum(down[i] for i in ids)
        return UptimeGroup(name, 100 * (m - d) / m, d / 60, len(ids))

    assert data == Uptime(
        overall_pct=100 * (sum(mon.values()) - sum(down.values())) / sum(mon.values()),
        target_pct=99.9,
        by_site=(grp("Branch", [502]), grp("Head office", [501, 503])),
        by_class=(grp("server", [501]), grp("switch", [502, 503])),
    )
    assert [g.downtime_minutes for g in data.by_site] == [60, 50]
    # exactly the documented calls: no date filter exists, nothing else is sent
    assert sorted(f"{r.url.path}?{r.url.query.decode()}" for r in router.seen) == sorted(
        k.split(" ", 1)[1] if "?" in k else k.split(" ", 1)[1] + "?" for k in handcalc_routes()
    )
    assert all(r.headers["X-Auth-Token"] == TOKEN and r.headers["Accept"] == "application/json" for r in router.seen)


async def test_without_maintenance_the_planned_windows_count_as_monitored():
    routes = handcalc_routes()
    del routes["GET /api/v0/alerts/scheduled_maintenance"], routes["GET /api/v0/devicegroups/777"]
    conn, cust, _ = mock_connector(Router(routes), server_timezone="Europe/Berlin", use_maintenance=False)
    try:
        data = await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()
    week = 7 * 86400
    down = 1800 + 3600 + 1200 + 45 * 60  # the 45 min inside 503's window now counts
    assert data.overall_pct == pytest.approx(100 * (3 * week - down) / (3 * week))
    assert {g.name for g in data.by_class} == {"server", "network"}  # no class_labels: LibreNMS' own type


async def test_librenms_without_the_maintenance_route_is_refused_not_guessed():
    routes = handcalc_routes()
    routes["GET /api/v0/alerts/scheduled_maintenance"] = (404, load("errors", "route_not_found.json"))
    conn, cust, _ = mock_connector(Router(routes))
    try:
        with pytest.raises(SourceDataError, match="use_maintenance = false"):
            await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()


@pytest.mark.parametrize(
    ("tz", "day"),
    [("Europe/London", date(2026, 10, 21)), ("America/New_York", date(2026, 10, 28))],
)
async def test_dst_week_is_169_hours(tz: str, day: date):
    """A device down the whole DST-ending week: downtime is 169 h, counted in UTC."""
    period = week_containing(day, tz)
    routes = {
        "GET /api/v0/devicegroups/104?full=1": (
            200,
            {"status": "ok", "devices": [load("handcalc", "devicegroups_104_full.json")["devices"][0]], "count": 1},
        ),
        "GET /api/v0/resources/locations": (200, load("handcalc", "resources_locations.json")),
        "GET /api/v0/alerts/scheduled_maintenance": (200, {"status": "ok", "schedule": [], "count": 0}),
        "GET /api/v0/devices/501/outages": (
            200,
            {"status": "ok", "outages": [{"going_down": 1790000000, "up_again": None}], "count": 1},
        ),
    }
    router = Router(routes)
    conn, _, _ = mock_connector(router)
    cfg = make_config("librenms", "librenms", {"url": BASE, "token": TOKEN}, customer(tz=tz))
    try:
        data = await conn.fetch_section("uptime", cfg.customers[0], period, Targets())
    finally:
        await conn.aclose()
    assert period.hours == 169
    assert data.by_site[0].downtime_minutes == 169 * 60 and data.overall_pct == 0.0
    # LibreNMS takes no time bounds: the client sends none (clipping to the period is ours)
    assert all(not r.url.query or r.url.query == b"full=1" for r in router.seen)


async def test_invalid_token_is_an_auth_error_without_the_token_in_it():
    router = Router(
        {
            "GET /api/v0/devicegroups/104?full=1": (401, load("errors", "unauthenticated.json")),
            "GET /api/v0/resources/locations": (401, load("errors", "unauthenticated.json")),
            "GET /api/v0/alerts/scheduled_maintenance": (401, load("errors", "unauthenticated.json")),
        }
    )
    conn, cust, sleep = mock_connector(router)
    try:
        with pytest.raises(SourceAuthError, match="HTTP 401 — Unauthenticated") as err:
            await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()
    assert TOKEN not in str(err.value) and sleep.waits == []


async def test_unknown_group_names_the_config_key():
    routes = handcalc_routes()
    routes["GET /api/v0/devicegroups/104?full=1"] = (404, load("errors", "group_not_found.json"))
    conn, cust, _ = mock_connector(Router(routes))
    try:
        with pytest.raises(
            SourceDataError, match=r"no device group '104' \(Device group not found; customers.ids.librenms of ACME\)"
        ):
            await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()


async def test_429_then_answer_waits_as_told_and_html_is_refused():
    calls: list[str] = []
    routes = handcalc_routes()

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/outages") and calls.count(request.url.path) == 1 and "502" in request.url.path:
            return httpx.Response(429, headers={"Retry-After": "3"}, json={"status": "error", "message": "slow down"})
        return Router(routes)(request)

    conn, cust, sleep = mock_connector(handler, server_timezone="Europe/Berlin")  # type: ignore[arg-type]
    try:
        await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()
    assert sleep.waits == [3.0]

    routes["GET /api/v0/devices/503/outages"] = (200, "<html><body>Login</body></html>")
    conn, cust, _ = mock_connector(Router(routes), server_timezone="Europe/Berlin")
    try:
        with pytest.raises(SourceDataError, match="HTML page, not JSON"):
            await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()


async def test_5xx_burst_then_timeout():
    state = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] <= 2:
            return httpx.Response(502, json={"status": "error", "message": "bad gateway"})
        return Router(handcalc_routes())(request)

    conn, cust, sleep = mock_connector(flaky, server_timezone="Europe/Berlin")  # type: ignore[arg-type]
    try:
        assert (await conn.fetch_section("uptime", cust, WEEK, Targets())).by_site
    finally:
        await conn.aclose()
    assert len(sleep.waits) == 2

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    conn, cust, _ = mock_connector(hang, max_attempts=2)  # type: ignore[arg-type]
    try:
        with pytest.raises(SourceUnavailable, match="no answer within"):
            await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()


async def test_a_renamed_field_is_named_never_a_partial_number():
    routes = handcalc_routes()
    body = load("handcalc", "devices_503_outages.json")
    body["outages"][1] = {"went_down": body["outages"][1]["going_down"], "up_again": body["outages"][1]["up_again"]}
    routes["GET /api/v0/devices/503/outages"] = (200, body)
    conn, cust, _ = mock_connector(Router(routes), server_timezone="Europe/Berlin")
    try:
        with pytest.raises(SourceDataError, match="field 'going_down' is missing"):
            await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()
    routes = handcalc_routes()
    group = load("handcalc", "devicegroups_104_full.json")
    del group["devices"][1]["type"]
    routes["GET /api/v0/devicegroups/104?full=1"] = (200, group)
    conn, cust, _ = mock_connector(Router(routes))
    try:
        with pytest.raises(SourceDataError, match="field 'type' is missing"):
            await conn.fetch_section("uptime", cust, WEEK, Targets())
    finally:
        await conn.aclose()


async def test_customer_records_and_probe():
    router = Router(
        {
            "GET /api/v0/devicegroups": (200, load("handcalc", "devicegroups.json")),
            "GET /api/v0/system": (200, load("errors", "system.json")),
        }
    )
    conn, _, _ = mock_connector(router)
    try:
        records = await conn.customer_records()
        assert [(r.id, r.name) for r in records] == [("104", "Acme Manufacturing"), ("777", "Core servers")]
        assert await conn.probe() == "LibreNMS 26.3.0"
    finally:
        await conn.aclose()


# ---- against the loopback simulator --------------------------------------------------------


def sandbox_customer(ds: SandboxDataset, code: str) -> dict[str, Any]:
    c = next(c for c in ds.customers_in("librenms") if c.code == code)
    return {
        "code": c.code,
        "name": c.name,
        "timezone": c.timezone,
        "ids": dict(c.ids),
        "sources": {"uptime": "librenms"},
    }


async def oracle(ds: SandboxDataset, cust: dict[str, Any], period: Period) -> Any:
    cfg = make_config("librenms", "sandbox", {"system": "librenms"}, cust)
    return await SandboxConnector("librenms", cfg.sources["librenms"], ConnectorContext(sandbox=ds)).fetch_section(
        "uptime", cfg.customers[0], period, Targets()
    )


@pytest.mark.parametrize("app_tz", ["UTC", "Europe/Berlin"])
async def test_equals_the_oracle_for_every_customer_and_three_weeks(app_tz: str):
    ds = SandboxDataset(ANCHOR)
    codes = [c.code for c in ds.customers_in("librenms")]
    assert codes == ["UMBRELLA", "WONKA", "SOYLENT", "MASSIVE"]
    async with LibreNMSSimulator(ds, app_timezone=app_tz) as sim:
        assert sim.schedules, "the sandbox's planned maintenance is served as LibreNMS schedules"
        for code in codes:
            cust = sandbox_customer(ds, code)
            source = sim.source_config()
            kind = source.pop("type")
            cfg = make_config("librenms", kind, source, cust)
            conn = LibreNMSConnector("librenms", cfg.sources["librenms"], ConnectorContext())
            try:
                for k in range(3):
                    period = week_containing(ANCHOR - timedelta(days=3 + 7 * k), cust["timezone"])
                    got = await conn.fetch_section("uptime", cfg.customers[0], period, Targets())
                    assert got == await oracle(ds, cust, period), (code, k)
            finally:
                await conn.aclose()


async def test_the_server_timezone_setting_matters():
    """Schedules are wall times of the LibreNMS server: read in the wrong zone, they miss."""
    ds = SandboxDataset(ANCHOR)
    cust = sandbox_customer(ds, "UMBRELLA")
    period = week_containing(ANCHOR - timedelta(days=3), cust["timezone"])
    async with LibreNMSSimulator(ds, app_timezone="Asia/Tokyo") as sim:
        source = {**sim.source_config(), "server_timezone": "UTC"}
        kind = source.pop("type")
        cfg = make_config("librenms", kind, source, cust)
        conn = LibreNMSConnector("librenms", cfg.sources["librenms"], ConnectorContext())
        try:
            got = await conn.fetch_section("uptime", cfg.customers[0], period, Targets())
        finally:
            await conn.aclose()
    assert got != await oracle(ds, cust, period)


async def test_fault_matrix():
    ds = SandboxDataset(ANCHOR)
    cust = sandbox_customer(ds, "WONKA")  # Europe/Berlin customer, MSP in London
    period = week_containing(ANCHOR - timedelta(days=3), cust["timezone"])
    expected = await oracle(ds, cust, period)
    n_devices = len(ds.gen("WONKA").devices)
    async with LibreNMSSimulator(ds) as sim:
        await run_fault_matrix(
            sim,
            LibreNMSConnector,
            "uptime",
            cust,
            period,
            expected,
            bad_credentials={"token": "not-the-token"},
            min_pages=n_devices,
            page_marker="/outages",  # no paging in LibreNMS: one outages call per device
            drift="going_down>went_down",
        )


async def test_one_round_of_calls_after_the_group_and_lookups_cached():
    """Chain per customer: (group ∥ locations ∥ schedules) → (outages of every device, concurrently).
    Locations and schedules are fetched once per connector, not once per customer."""
    ds = SandboxDataset(ANCHOR)
    async with LibreNMSSimulator(ds) as sim:
        source = sim.source_config()
        kind = source.pop("type")
        custs = [sandbox_customer(ds, c.code) for c in ds.customers_in("librenms")]
        cfg = make_config("librenms", kind, source, custs[0])
        conn = LibreNMSConnector("librenms", cfg.sources["librenms"], ConnectorContext())
        sim.faults = Faults(latency_ms=100)
        try:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    conn.fetch_section(
                        "uptime",
                        make_config("librenms", kind, source, c).customers[0],
                        week_containing(ANCHOR - timedelta(days=3), c["timezone"]),
                        Targets(),
                    )
                    for c in custs
                )
            )
            elapsed = time.perf_counter() - t0
        finally:
            await conn.aclose()
            sim.faults = Faults()
    paths = [p for _, p in sim.log]
    assert sum(p.startswith("/api/v0/resources/locations") for p in paths) == 1
    assert sum(p.startswith("/api/v0/alerts/scheduled_maintenance") for p in paths) == 1
    assert elapsed < 5.0  # 4 customers, 72 outage calls at concurrency 4 behind 100 ms latency


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    async def run(patch: Any) -> Any:
        routes = {k: (status, patch(k, copy.deepcopy(body))) for k, (status, body) in handcalc_routes().items()}
        conn, cust, _ = mock_connector(Router(routes), server_timezone="Europe/Berlin")
        try:
            return await conn.fetch_section("uptime", cust, WEEK, Targets(uptime_pct=99.9))
        finally:
            await conn.aclose()

    outages = [f"GET /api/v0/devices/{d}/outages" for d in (501, 502, 503)]
    outcomes = await check_renamed_fields(
        run,
        {
            "GET /api/v0/devicegroups/104?full=1": lambda b: b["devices"],
            "GET /api/v0/devicegroups/777": lambda b: b["devices"],
            "GET /api/v0/resources/locations": lambda b: b["locations"],
            "GET /api/v0/alerts/scheduled_maintenance": lambda b: b["schedule"],
            **{o: (lambda b: b["outages"]) for o in outages},
        },
        {
            "GET /api/v0/devicegroups/104?full=1": ["device_id", "type", "disabled", "location_id", "inserted"],
            "GET /api/v0/devicegroups/777": ["device_id"],
            "GET /api/v0/resources/locations": ["id", "location"],
            "GET /api/v0/alerts/scheduled_maintenance": [
                "schedule_id",
                "recurring",
                "start",
                "end",
                "start_recurring_dt",
                "start_recurring_hr",
                "end_recurring_dt",
                "end_recurring_hr",
                "recurring_day",
                "devices",
                "device_groups",
                "locations",
            ],
            **{o: ["going_down", "up_again"] for o in outages},
        },
    )
    assert outcomes["GET /api/v0/devices/502/outages up_again"] == "unavailable"  # null there: still in the schema


async def test_a_customer_mapped_by_group_name_is_accepted_by_config_check_and_the_sweep():
    from reporting.collect import unmapped_records
    from reporting.config import CustomerConfig

    router = Router({"GET /api/v0/devicegroups": (200, load("handcalc", "devicegroups.json"))})
    conn, _, _ = mock_connector(router)
    try:
        assert await conn.check_id("Acme Manufacturing") == "Acme Manufacturing"
        assert await conn.check_id("104") == "Acme Manufacturing"
        assert await conn.check_id("Globex") is None
        by_name = CustomerConfig(code="ACME", name="Acme", ids={"librenms": "Acme Manufacturing"})
        sweep = await unmapped_records({"librenms": conn}, [by_name])
    finally:
        await conn.aclose()
    assert [(r.id, r.name) for r in sweep.records] == [("777", "Core servers")]

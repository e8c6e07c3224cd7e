"""The Zabbix connector: client unit tests on httpx.MockTransport with fixture payloads, and the
connector end to end against the loopback simulator (fault matrix, oracle equality, HOOLI's 502,
DST weeks, version-dependent auth).

Fixtures (``tests/fixtures/zabbix/<scenario>/<method>.json``) are JSON-RPC answers shaped as the
Zabbix 7.0 API returns them; the mock server copies the request's ``id`` into each answer, as the
real server echoes it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.fields import Fields
from connectors.http import HttpSource
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from connectors.zabbix import ZabbixConnector
from connectors.zabbix.client import ZabbixClient, endpoint_url, parse_version
from connectors.zabbix.connector import _maintenance_windows
from connectors.zabbix.simulator import ZabbixSimulator
from reporting import metrics
from reporting.collect import targets_for
from reporting.config import CustomerConfig, SourceConfig, parse_config
from reporting.metrics import merge
from reporting.models import Period, Targets, Uptime, UptimeGroup
from reporting.period import week_containing, zone
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, collect_one, make_config, run_fault_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zabbix"
ANCHOR = date(2026, 11, 16)  # the sandbox's planted week is Mon 9 – Sun 15 Nov 2026
URL = "https://zabbix.test/zabbix"
TOKEN = "f" * 64
P = 7 * 86400  # the fixture week (GMT all week): 604,800 s
TARGETS = Targets()


def fixture(scenario: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / scenario / f"{name}.json").read_text())


# ---------------------------------------------------------------------------------------------
# A mock Zabbix for the client tests


class MockZabbix:
    """Answers JSON-RPC calls from fixtures by method; any call it was not told about fails the
    test. Records each call's method, params, auth style and the raw request."""

    def __init__(self, answers: dict[str, Callable[[dict[str, Any]], Any]], version: str = "7.0.5"):
        self.answers = {"apiinfo.version": lambda p: {"jsonrpc": "2.0", "result": version, "id": 0}, **answers}
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/zabbix/api_jsonrpc.php", request.url
        assert request.headers["content-type"] == "application/json-rpc"
        body = json.loads(request.content)
        auth = "bearer" if "authorization" in request.headers else ("body" if "auth" in body else None)
        if auth == "bearer":
            assert request.headers["authorization"] == f"Bearer {TOKEN}"
        if auth == "body":
            assert body["auth"] == TOKEN
        self.calls.append({"method": body["method"], "params": body["params"], "auth": auth})
        answer = self.answers.get(body["method"])
        assert answer is not None, f"unexpected call {body['method']} {body['params']}"
        out = answer(body["params"])
        if isinstance(out, httpx.Response):
            return out
        out = copy.deepcopy(out)
        out["id"] = body["id"]
        return httpx.Response(200, json=out)

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls]


def week_answers(scenario: str = "customer_week") -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The customer_week fixtures; event.get answers by page (eventid_from) or by ids."""

    def events(p: dict[str, Any]) -> Any:
        if "eventids" in p:  # recoveries by id, at most page_size ids a call
            assert len(p["eventids"]) <= 2 and p["limit"] == len(p["eventids"])
            answer = fixture("customer_week", "event.get.recoveries")
            answer["result"] = [e for e in answer["result"] if e["eventid"] in p["eventids"]]
            return answer
        assert p["problem_time_from"] == 1794182400 and p["problem_time_till"] == 1794787200 - 1
        assert p["tags"] == [{"tag": "scope", "value": "availability", "operator": 1}]
        assert p["limit"] == 2 and p["sortfield"] == ["eventid"]
        page = {None: "event.get.page1", "5011": "event.get.page2", "5031": "event.get.page3"}[p.get("eventid_from")]
        return fixture("customer_week", page)

    sla_dir = "customer_week_sla" if scenario == "customer_week_sla" else "customer_week"
    return {
        "hostgroup.get": lambda p: fixture("customer_week", "hostgroup.get"),
        "host.get": lambda p: fixture("customer_week", "host.get"),
        "maintenance.get": lambda p: fixture("customer_week", "maintenance.get"),
        "event.get": events,
        "sla.get": lambda p: fixture(sla_dir, "sla.get"),
        "sla.getsli": lambda p: fixture("customer_week_sla", "sla.getsli"),
    }


def source_config(**options: Any) -> SourceConfig:
    cfg = parse_config(
        {
            "msp": {"name": "T", "timezone": "Europe/London"},
            "sources": {"zabbix": {"type": "zabbix", "url": URL, "api_token": TOKEN, "page_size": 2, **options}},
            "customers": [],
        },
        "<test>",
        env={},
    )
    return cfg.sources["zabbix"]


ACME = CustomerConfig(
    code="ACME",
    name="Acme Manufacturing",
    timezone="Europe/London",
    ids={"zabbix": "Customers/Acme Manufacturing"},
    sources={"uptime": "zabbix"},
)
WEEK = week_containing(date(2026, 11, 10), "Europe/London")


def connector(mock: MockZabbix, **options: Any) -> tuple[ZabbixConnector, RecordingSleep]:
    sleep = RecordingSleep()
    ctx = ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(mock)), sleep=sleep)
    return ZabbixConnector("zabbix", source_config(**options), ctx), sleep


async def fetch(mock: MockZabbix, customer: CustomerConfig = ACME, period: Period = WEEK, **options: Any) -> Any:
    conn, _ = connector(mock, **options)
    try:
        return await conn.fetch_section("uptime", customer, period, TARGETS)
    finally:
        await conn.aclose()


def group(name: str, down_s: int, monitored_s: int, devices: int) -> UptimeGroup:
    return UptimeGroup(name, 100.0 * (monitored_s - down_s) / monitored_s, down_s / 60.0, devices)


# ---------------------------------------------------------------------------------------------
# Client and mapper on fixtures


def test_endpoint_and_version_parsing():
    assert endpoint_url("https://z.example/zabbix/") == "https://z.example/zabbix/api_jsonrpc.php"
    assert endpoint_url("http://127.0.0.1:8089/api_jsonrpc.php") == "http://127.0.0.1:8089/api_jsonrpc.php"
    assert parse_version("6.0.14") == (6, 0, 14)
    assert parse_version("7.0.0alpha1") == (7, 0, 0)
    with pytest.raises(SourceDataError, match="not a version"):
        parse_version({"version": "7"})


MON = P - 7200  # every fixture host loses maintenance 501's 2 h
EVENT_PATH_WEEK = Uptime(
    overall_pct=100.0 * (3 * MON - 9900) / (3 * MON),
    target_pct=99.5,
    by_site=(group("Leeds", 5400, 2 * MON, 2), group("London", 4500, MON, 1)),
    by_class=(group("firewall", 4500, MON, 1), group("switch", 5400, MON, 1), group("unassigned", 0, MON, 1)),
    overall_source="device-weighted",
)


async def test_event_path_by_hand():
    """Three monitored hosts (a fourth is disabled), events over three pages, a group maintenance
    and a maintenance limited to CPU problems. Every number worked out from the fixtures:

    - acme-lon-fw01 (London, firewall): problem 5001 from Sun 8 Nov 23:30 to 00:15 → 900 s in the
      week; problem 5030 from Sun 15 Nov 23:00, unresolved → 3,600 s to the end. Down 4,500 s.
    - acme-lds-sw01 (Leeds, switch): Tue 10:00–11:30 = 5,400 s. Maintenance 502 covers it but only
      mutes ``scope=performance`` problems, so the outage stays unplanned.
    - acme-lds-srv01 (Leeds, no class tag → "unassigned"): Wed 02:30–03:00, inside maintenance 501
      (group 101, Wed 02:00–04:00) → 0 s down.
    - Maintenance 501 is on group 101, which holds all three hosts: each is monitored P − 7,200 s.
    """
    mock = MockZabbix(week_answers())
    up = await fetch(mock)
    assert up == EVENT_PATH_WEEK
    # paging: three event.get pages (2 + 2 + 0 with page_size 2), continuation from the last id + 1
    pages = [c["params"] for c in mock.calls if c["method"] == "event.get" and "eventids" not in c["params"]]
    assert [p.get("eventid_from") for p in pages] == [None, "5011", "5031"]
    # the recoveries of the three resolved problems, by id, two per call
    by_id = [c["params"]["eventids"] for c in mock.calls if c["method"] == "event.get" and "eventids" in c["params"]]
    assert sorted(by_id) == [["5002", "5011"], ["5021"]]
    # maintenance.get asks for every group of the customer's hosts (101, 102)
    (maint,) = [c["params"] for c in mock.calls if c["method"] == "maintenance.get"]
    assert maint["groupids"] == ["101", "102"] and maint["selectHostGroups"] == ["groupid"]  # 7.0
    # 7.0: the token as a Bearer header, never in the body; apiinfo.version without any
    assert [c["auth"] for c in mock.calls if c["method"] == "apiinfo.version"] == [None]
    assert {c["auth"] for c in mock.calls if c["method"] != "apiinfo.version"} == {"bearer"}


async def test_sla_path_by_hand():
    """An enabled daily SLA tagged customer=ACME (a weekly one is ignored; Globex's is another
    customer's). The overall figure is the SLA's: the seven daily slices of three services,
    Thursday's slice 79,200 s (the SLA excludes Thu 01:00–03:00), downtime as the SLA saw it —
    including srv01's 1,800 s on Wednesday, which the SLA cannot know was host maintenance.
    The breakdown is device-weighted from events with both the maintenance and the SLA's
    excluded downtime taken out of every device's monitored time."""
    mock = MockZabbix(week_answers("customer_week_sla"))
    up = await fetch(mock)
    scheduled = 7 * 86400 - 7200  # per service
    sla_down = 900 + 3600 + 5400 + 1800
    mon = P - 7200 - 7200
    assert up == Uptime(
        overall_pct=100.0 * (3 * scheduled - sla_down) / (3 * scheduled),
        target_pct=99.9,  # the SLA's slo takes precedence over the configured target
        by_site=(group("Leeds", 5400, 2 * mon, 2), group("London", 4500, mon, 1)),
        by_class=(group("firewall", 4500, mon, 1), group("switch", 5400, mon, 1), group("unassigned", 0, mon, 1)),
        overall_source="SLA Acme Manufacturing daily",
    )
    (sli,) = [c["params"] for c in mock.calls if c["method"] == "sla.getsli"]
    assert sli == {"slaid": "7", "period_from": 1794182400, "periods": 7}  # no period_to (inclusive in 6.0.14/7.0)


async def test_sla_with_a_short_cell_is_refused():
    """A service created mid-week has less data than its slice: partial, so no numbers."""
    sli = fixture("customer_week_sla", "sla.getsli")
    sli["result"]["sli"][0][1]["uptime"] -= 3600  # service 1 (fw01) on Monday: 85,500 + 900 - 3,600 = 82,800 s
    answers = week_answers("customer_week_sla") | {"sla.getsli": lambda p: sli}
    with pytest.raises(SourceDataError, match=r"service 1 has 82800 s of data for 2026-11-09, not 86400 s"):
        await fetch(MockZabbix(answers))


async def test_sla_slices_that_do_not_tile_the_week_are_refused():
    """An SLA in another timezone slices the days elsewhere: never mixed with the customer's week."""
    sli = fixture("customer_week_sla", "sla.getsli")
    for p in sli["result"]["periods"]:
        p["period_from"] -= 3600
        p["period_to"] -= 3600
    answers = week_answers("customer_week_sla") | {"sla.getsli": lambda p: sli}
    with pytest.raises(SourceDataError, match="do not line up with the week"):
        await fetch(MockZabbix(answers))


async def test_two_daily_slas_for_one_customer_are_ambiguous():
    slas = fixture("customer_week_sla", "sla.get")
    twin = copy.deepcopy(slas["result"][0]) | {"slaid": "70", "name": "Acme twin"}
    slas["result"].append(twin)
    answers = week_answers("customer_week_sla") | {"sla.get": lambda p: slas}
    with pytest.raises(SourceDataError, match="several daily SLAs name ACME"):
        await fetch(MockZabbix(answers))


def weekly_501() -> dict[str, Any]:
    """Maintenance 501 as a weekly period: Wednesdays (bit 2) 02:00 for 2 h, every week."""
    maint = fixture("customer_week", "maintenance.get")
    maint["result"][0]["timeperiods"][0] |= {
        "timeperiod_type": "3",
        "every": "1",
        "dayofweek": "4",
        "start_time": "7200",
        "start_date": "0",
    }
    return maint


async def test_recurring_maintenance_needs_the_server_timezone():
    answers = week_answers() | {"maintenance.get": lambda p: weekly_501()}
    with pytest.raises(
        SourceDataError, match=r"'Core switch firmware' \(501\) repeats.*sources.zabbix.server_timezone"
    ):
        await fetch(MockZabbix(answers))


async def test_weekly_maintenance_in_the_server_timezone():
    """Wednesday 02:00–04:00 London time every week is the same window as the one-time period."""
    answers = week_answers() | {"maintenance.get": lambda p: weekly_501()}
    assert await fetch(MockZabbix(answers), server_timezone="Europe/London") == EVENT_PATH_WEEK
    # the same maintenance on a New York server falls on Wed 07:00–09:00 UTC: srv01's
    # 02:30–03:00 outage is no longer planned, and the 2 h move but stay inside the week
    up = await fetch(MockZabbix(answers), server_timezone="America/New_York")
    assert up.by_class[2] == group("unassigned", 1800, MON, 1)


def test_recurring_calendar():
    """Daily/weekly/monthly periods over November 2026 in Europe/London (GMT), by hand."""
    nov1, dec1 = 1793491200, 1796083200  # 2026-11-01 and 2026-12-01 00:00 GMT
    day = 86400

    def windows(tp: dict[str, str], since: int = nov1 + 3 * day) -> list[tuple[int, int]]:  # active from Wed 4 Nov
        m = {
            "maintenanceid": "9",
            "name": "m",
            "active_since": str(since),
            "active_till": str(dec1 + 60 * day),
            "timeperiods": [
                {"period": "3600", "start_time": "3600", "every": "1", "dayofweek": "0", "day": "0", "month": "0", **tp}
            ],
        }
        return _maintenance_windows(Fields("zabbix", m, "m"), nov1, dec1, zone("Europe/London"))

    def at(d: int, hour: int = 1) -> tuple[int, int]:  # 1 h from hour:00 on November d
        a = nov1 + (d - 1) * day + hour * 3600
        return (a, a + 3600)

    # daily every 3 days from the day of active_since (4 Nov): 4, 7, ..., 28
    assert windows({"timeperiod_type": "2", "every": "3"}) == [at(d) for d in range(4, 31, 3)]
    # weekly on Mondays (bit 0) every 2nd week from the week of 4 Nov (starts Mon 2 Nov, before
    # active_since): Mon 16 and Mon 30
    assert windows({"timeperiod_type": "3", "every": "2", "dayofweek": "1"}) == [at(16), at(30)]
    # monthly in November (bit 10) on day 15; on the second Tuesday (bit 1); on the last Sunday (bit 6)
    assert windows({"timeperiod_type": "4", "month": str(1 << 10), "day": "15"}) == [at(15)]
    assert windows({"timeperiod_type": "4", "month": str(1 << 10), "every": "2", "dayofweek": "2"}) == [at(10)]
    assert windows({"timeperiod_type": "4", "month": str(1 << 10), "every": "5", "dayofweek": "64"}) == [at(29)]
    assert windows({"timeperiod_type": "4", "month": str(1 << 9), "day": "15"}) == []  # October only
    # a window that starts before the range is cut to it; active_since cuts an occurrence too
    assert windows({"timeperiod_type": "2", "start_time": str(23 * 3600), "period": "7200"}, since=nov1 - day) == (
        [(nov1, nov1 + 3600)]
        + [(nov1 + k * day - 3600, nov1 + k * day + 3600) for k in range(1, 30)]
        + [(dec1 - 3600, dec1)]
    )


async def test_6_0_sends_the_token_in_the_body():
    mock = MockZabbix({"hostgroup.get": lambda p: fixture("customer_week", "hostgroup.get")}, version="6.0.14")
    conn, _ = connector(mock)
    try:
        assert await conn.probe() == "Zabbix 6.0.14"
        assert [r.id for r in await conn.customer_records()] == [
            "Customers/Acme Manufacturing",
            "Customers/Globex Corporation",
        ]
    finally:
        await conn.aclose()
    assert [c["auth"] for c in mock.calls] == [None, "body", "body"]  # version once, then body auth


async def test_version_is_read_once_per_connector():
    mock = MockZabbix(week_answers())
    conn, _ = connector(mock)
    try:
        await conn.fetch_section("uptime", ACME, WEEK, TARGETS)
        await conn.fetch_section("uptime", ACME, WEEK, TARGETS)
    finally:
        await conn.aclose()
    assert mock.methods().count("apiinfo.version") == 1
    assert mock.methods().count("hostgroup.get") == 1 and mock.methods().count("sla.get") == 1


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("not_authorised_6_0", SourceAuthError, ("credentials", "Not authorised.")),
        ("not_authorized_7_0", SourceAuthError, ("credentials", "Not authorized.")),
        ("session_terminated", SourceAuthError, ("credentials", "re-login")),
        ("token_expired", SourceAuthError, ("credentials", "API token expired")),
        ("no_permissions", SourceAuthError, ("permission",)),
        ("body_auth_rejected_7_2", SourceDataError, ("7.2",)),
        ("invalid_params", SourceDataError, ("rejected", "selectHostGroups")),
        ("method_not_found", SourceDataError, ("Incorrect API",)),
        ("sql_failed", SourceUnavailable, ("failed on the server",)),
    ],
)
async def test_errors_in_a_200_body_are_translated(name, kind, words):
    mock = MockZabbix({"hostgroup.get": lambda p: fixture("errors", name)})
    with pytest.raises(kind) as err:
        await fetch(mock)
    text = str(err.value)
    assert text.startswith("zabbix: hostgroup.get")
    assert all(w in text for w in words), text
    assert TOKEN not in text


async def test_an_answer_with_another_id_is_refused():
    def wrong_id(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": "7.0.5", "id": 999})

    client = ZabbixClient(HttpSource("zabbix", httpx.AsyncClient(transport=httpx.MockTransport(wrong_id))), URL, TOKEN)
    try:
        with pytest.raises(SourceDataError, match="does not match"):
            await client.version()
    finally:
        await client.http.client.aclose()


async def test_html_instead_of_json_is_unavailable_data():
    html = (FIXTURES / "errors" / "nginx_502.html").read_text()
    mock = MockZabbix(
        {"hostgroup.get": lambda p: httpx.Response(200, text=html, headers={"content-type": "text/html"})}
    )
    with pytest.raises(SourceDataError, match="an HTML page, not JSON"):
        await fetch(mock)


async def test_429_with_retry_after_is_waited_out():
    seen = {"n": 0}

    def hostgroups(p: dict[str, Any]) -> Any:
        seen["n"] += 1
        if seen["n"] <= 2:
            return httpx.Response(429, text="", headers={"Retry-After": "3"})
        return fixture("customer_week", "hostgroup.get")

    mock = MockZabbix(week_answers() | {"hostgroup.get": hostgroups})
    conn, sleep = connector(mock)
    try:
        up = await conn.fetch_section("uptime", ACME, WEEK, TARGETS)
    finally:
        await conn.aclose()
    assert sleep.waits[:2] == [3.0, 3.0]
    assert up.overall_source == "device-weighted"


async def test_5xx_burst_is_retried_and_a_long_one_is_unavailable():
    html = (FIXTURES / "errors" / "nginx_502.html").read_text()
    state = {"left": 2}

    def flaky(p: dict[str, Any]) -> Any:
        if state["left"] > 0:
            state["left"] -= 1
            return httpx.Response(502, text=html, headers={"content-type": "text/html"})
        return fixture("customer_week", "host.get")

    up = await fetch(MockZabbix(week_answers() | {"host.get": flaky}))
    assert len(up.by_site) == 2
    state["left"] = 99
    with pytest.raises(SourceUnavailable, match=r"POST /zabbix/api_jsonrpc.php: HTTP 502 \(an HTML .*after 4 attempts"):
        await fetch(MockZabbix(week_answers() | {"host.get": flaky}))


async def test_timeout_is_unavailable():
    def hang(p: dict[str, Any]) -> Any:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(SourceUnavailable, match="no answer within"):
        await fetch(MockZabbix(week_answers() | {"event.get": hang}), max_attempts=2)


@pytest.mark.parametrize(
    ("key", "obj"), [("clock", "event"), ("r_eventid", "event"), ("hostid", "host"), ("period_from", "maint")]
)
async def test_a_renamed_field_is_never_partial_numbers(key, obj):
    answers = week_answers()
    if obj == "event":
        page = fixture("customer_week", "event.get.page2")
        page["result"][1][key + "_renamed"] = page["result"][1].pop(key)
        orig = answers["event.get"]
        answers["event.get"] = lambda p: page if p.get("eventid_from") == "5011" else orig(p)
        key_in_msg = key
    elif obj == "host":
        hosts = fixture("customer_week", "host.get")
        hosts["result"][2]["hostid_renamed"] = hosts["result"][2].pop("hostid")
        answers["host.get"] = lambda p: hosts
        key_in_msg = "hostid"
    else:
        maint = fixture("customer_week", "maintenance.get")
        maint["result"][0]["timeperiods"][0]["start"] = maint["result"][0]["timeperiods"][0].pop("start_date")
        answers["maintenance.get"] = lambda p: maint
        key_in_msg = "start_date"
    with pytest.raises(SourceDataError, match=f"field '{key_in_msg}' is missing"):
        await fetch(MockZabbix(answers))


async def test_unknown_customer_group_and_missing_token():
    other = CustomerConfig(code="NOPE", name="Nope", ids={"zabbix": "Customers/Nope Ltd"}, sources={"uptime": "zabbix"})
    with pytest.raises(
        SourceDataError, match=r"no host group named 'Customers/Nope Ltd' \(customers.ids.zabbix of NOPE\)"
    ):
        await fetch(MockZabbix(week_answers()), customer=other)
    conn = ZabbixConnector(
        "zabbix",
        source_config(api_token=None),
        ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(MockZabbix({})))),
    )
    try:
        with pytest.raises(SourceAuthError, match=r"sources.zabbix.api_token is not set"):
            await conn.fetch_section("uptime", ACME, WEEK, TARGETS)
    finally:
        await conn.aclose()


async def test_down_rule_options_reach_event_get():
    """``down_tag = "scope"`` (any value) and ``down_name`` become ``tags`` (exists) and ``search``."""
    mock = MockZabbix(week_answers() | {"event.get": lambda p: {"jsonrpc": "2.0", "result": [], "id": 0}})
    await fetch(mock, down_tag="scope", down_name="Unavailable by*")
    (ev,) = [c["params"] for c in mock.calls if c["method"] == "event.get"]
    assert ev["tags"] == [{"tag": "scope", "operator": 4}]
    assert ev["search"] == {"name": "Unavailable by*"} and ev["searchWildcardsEnabled"] is True


# ---------------------------------------------------------------------------------------------
# Against the simulator


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return SandboxDataset(ANCHOR)


def customer_dict(dataset: SandboxDataset, code: str, tz: str | None = None) -> dict[str, Any]:
    c = next(c for c in dataset.customers_in("zabbix") if c.code == code)
    return {
        "code": c.code,
        "name": c.name,
        "timezone": tz or c.timezone,
        "ids": {"zabbix": c.ids["zabbix"]},
        "sources": {"uptime": "zabbix"},
    }


def period_for(dataset: SandboxDataset, code: str, weeks_back: int = 0) -> Period:
    c = next(c for c in dataset.customers_in("zabbix") if c.code == code)
    return week_containing(date(2026, 11, 10) - timedelta(weeks=weeks_back), c.timezone)


async def oracle_async(dataset: SandboxDataset, code: str, period: Period) -> Uptime:
    sc = next(c for c in dataset.customers_in("zabbix") if c.code == code)
    cust = customer_dict(dataset, code) | {"ids": {"oracle": sc.ids["zabbix"]}, "sources": {"uptime": "oracle"}}
    cfg = make_config("oracle", "sandbox", {"system": "zabbix"}, cust)
    conn = SandboxConnector("oracle", cfg.sources["oracle"], ConnectorContext(sandbox=dataset))
    return await conn.fetch_section("uptime", cfg.customers[0], period, targets_for(cfg, cfg.customers[0]))  # type: ignore[return-value]


def zabbix_sla_pct(dataset: SandboxDataset, code: str, period: Period) -> float:
    """What Zabbix's SLA reports for the sandbox customer, by hand from the dataset's records:
    services (one per device, existing all week) know nothing of host maintenance, so every
    device is scheduled the whole period and every unplanned outage — the reboot inside the
    maintenance window included — is downtime: 100 × Σ(P − down) / (N × P)."""
    g = dataset.gen(code)
    start, end = period.start, period.end
    total = period.seconds * len(g.devices)
    down = 0.0
    for d in g.devices:
        ivs = [(max(o.start, start), min(o.end, end)) for o in g.outages if o.device_id == d.id and not o.planned]
        down += metrics.seconds(merge(iv for iv in ivs if iv[0] < iv[1]))
    return 100.0 * (total - down) / total


async def collect_uptime(
    sim: ZabbixSimulator, dataset: SandboxDataset, code: str, period: Period, tz: str | None = None, **overrides: Any
):
    return await collect_one(
        sim, ZabbixConnector, "uptime", customer_dict(dataset, code, tz), period, overrides or None
    )


CODES = ("ACME", "GLOBEX", "INITECH", "HOOLI", "STARK", "WAYNE", "CYBERDYNE", "TYRELL", "INITRODE")


@pytest.mark.parametrize("version", ["7.0.5", "6.4.2", "6.0.14"])
async def test_equal_to_the_oracle_for_every_customer_and_three_weeks(dataset, version):
    """Every Zabbix customer of the sandbox (INITRODE, unmapped in the demo, included), the anchor
    week and the two before it. The event path must equal the oracle exactly. The SLA path
    (ACME, STARK, TYRELL) must equal it in everything but the overall figure, which is the SLA's
    and is checked against the hand computation of Zabbix's semantics."""
    assert sorted(c.code for c in dataset.customers_in("zabbix")) == sorted(CODES)
    async with ZabbixSimulator(dataset, version=version) as sim:
        for code in CODES:
            for back in (0, 1, 2):
                period = period_for(dataset, code, back)
                o = await collect_uptime(sim, dataset, code, period)
                try:
                    want = await oracle_async(dataset, code, period)
                except (SourceDataError, SourceUnavailable):
                    # the oracle fails for HOOLI's outage week and TYRELL's weeks before onboarding
                    assert o.section.status == "unavailable", (code, back, o.section.data)
                    why = {"HOOLI": "HTTP 502", "TYRELL": "did not exist for the whole week"}[code]
                    assert o.section.error.startswith("zabbix:") and why in o.section.error, o.section.error
                    continue
                assert o.section.status == "ok", (code, back, o.section.error)
                got = o.section.data
                if code in ("ACME", "STARK", "TYRELL"):
                    assert (
                        got.overall_source
                        == f"SLA {next(c.name for c in dataset.customers_in('zabbix') if c.code == code)} daily"
                    )
                    assert got.overall_pct == zabbix_sla_pct(dataset, code, period)
                    assert abs(got.overall_pct - want.overall_pct) < 0.05  # differs only by maintenance handling
                    got = dataclasses.replace(got, overall_pct=want.overall_pct, overall_source=want.overall_source)
                assert got == want, (code, back)
        expected_auth = {"body"} if version.startswith("6.0") else {"bearer"}
        assert {c["auth"] for c in sim.calls if c["method"] != "apiinfo.version"} == expected_auth


async def test_acme_sla_drops_four_points_in_the_anchor_week(dataset):
    async with ZabbixSimulator(dataset) as sim:
        now = (await collect_uptime(sim, dataset, "ACME", period_for(dataset, "ACME", 0))).section.data
        before = (await collect_uptime(sim, dataset, "ACME", period_for(dataset, "ACME", 1))).section.data
    assert now.overall_source == before.overall_source == "SLA Acme Manufacturing daily"
    assert 3.5 < before.overall_pct - now.overall_pct < 4.5
    leeds = next(g for g in now.by_site if g.name == "Leeds plant")
    assert leeds.downtime_minutes >= 4 * (20 * 60 + 12)


async def test_hooli_fails_with_502_in_the_anchor_week_only(dataset):
    async with ZabbixSimulator(dataset) as sim:
        o = await collect_uptime(sim, dataset, "HOOLI", period_for(dataset, "HOOLI", 0))
        assert o.section.status == "unavailable"
        assert o.section.error.startswith("zabbix:") and "502" in o.section.error
        assert any(c["method"] == "event.get" for c in sim.calls)
        earlier = await collect_uptime(sim, dataset, "HOOLI", period_for(dataset, "HOOLI", 1))
        assert earlier.section.status == "ok"
        other = await collect_uptime(sim, dataset, "WAYNE", period_for(dataset, "WAYNE", 0))
        assert other.section.status == "ok"
        # the raw answer is nginx's HTML page, not JSON-RPC
        sim.calls.clear()
        async with httpx.AsyncClient() as raw:
            params = {
                "source": 0,
                "object": 0,
                "value": 1,
                "groupids": [sim.group_of["HOOLI"]],
                "limit": 3,
                "problem_time_from": int(period_for(dataset, "HOOLI").start.timestamp()),
                "problem_time_till": int(period_for(dataset, "HOOLI").end.timestamp()) - 1,
            }
            resp = await raw.post(
                f"{sim.url}/api_jsonrpc.php",
                headers={"Authorization": f"Bearer {sim.token}"},
                json={"jsonrpc": "2.0", "method": "event.get", "params": params, "id": 1},
            )
        assert resp.status_code == 502 and "<center>nginx</center>" in resp.text


async def test_fault_matrix_event_path(dataset):
    period = period_for(dataset, "GLOBEX", 0)
    async with ZabbixSimulator(dataset) as sim:
        expected = await oracle_async(dataset, "GLOBEX", period)
        await run_fault_matrix(
            sim,
            ZabbixConnector,
            "uptime",
            customer_dict(dataset, "GLOBEX"),
            period,
            expected,
            bad_credentials={"api_token": "0" * 64},
            min_pages=5,
            page_marker="api_jsonrpc",
            drift="clock>time",
        )


async def test_fault_matrix_sla_path(dataset):
    period = period_for(dataset, "ACME", 0)
    async with ZabbixSimulator(dataset, version="6.0.14") as sim:
        want = await oracle_async(dataset, "ACME", period)
        expected = dataclasses.replace(
            want, overall_pct=zabbix_sla_pct(dataset, "ACME", period), overall_source="SLA Acme Manufacturing daily"
        )
        # (100 × Σuptime / Σ(uptime + downtime) over whole seconds: the same float as the hand computation)
        await run_fault_matrix(
            sim,
            ZabbixConnector,
            "uptime",
            customer_dict(dataset, "ACME"),
            period,
            expected,
            bad_credentials={"api_token": "0" * 64},
            min_pages=6,
            page_marker="api_jsonrpc",
            drift="uptime>up",
        )


async def test_event_get_is_read_in_pages_and_the_simulator_refuses_a_huge_answer(dataset):
    period = period_for(dataset, "ACME", 0)
    async with ZabbixSimulator(dataset, page_size=3) as sim:
        o = await collect_uptime(sim, dataset, "ACME", period)
        assert o.section.status == "ok"
        pages = [c["params"] for c in sim.calls if c["method"] == "event.get" and "problem_time_from" in c["params"]]
        assert len(pages) >= 3 and pages[0].get("eventid_from") is None and all("eventid_from" in p for p in pages[1:])
        assert all(p["limit"] == 3 for p in pages)
        async with httpx.AsyncClient() as raw:
            params = {
                "source": 0,
                "object": 0,
                "value": 1,
                "groupids": [sim.group_of["ACME"]],
                "problem_time_from": int(period.start.timestamp()),
                "problem_time_till": int(period.end.timestamp()) - 1,
            }
            resp = await raw.post(
                f"{sim.url}/api_jsonrpc.php",
                headers={"Authorization": f"Bearer {sim.token}"},
                json={"jsonrpc": "2.0", "method": "event.get", "params": params, "id": 1},
            )
        assert resp.status_code == 500 and "Allowed memory size" in resp.text


@pytest.mark.parametrize(
    ("code", "tz", "end", "hours", "path"),
    [
        ("ACME", "Europe/London", date(2026, 10, 26), 169, "sla"),  # clocks go back Sun 25 Oct
        ("INITECH", "America/New_York", date(2026, 11, 2), 169, "events"),  # clocks go back Sun 1 Nov
        ("TYRELL", "Australia/Sydney", date(2026, 11, 16), 168, "sla"),  # 11 h ahead of the MSP
    ],
)
async def test_dst_and_foreign_timezone_boundaries_sent_as_epoch(dataset, code, tz, end, hours, path):
    period = week_containing(end - timedelta(days=1), tz)
    assert period.hours == hours and period.end.date() == end
    async with ZabbixSimulator(dataset) as sim:
        o = await collect_uptime(sim, dataset, code, period)
        assert o.section.status == "ok", o.section.error
        start, stop = int(period.start.timestamp()), int(period.end.timestamp())
        (ev,) = [c["params"] for c in sim.calls if c["method"] == "event.get" and "problem_time_from" in c["params"]][
            :1
        ]
        assert (ev["problem_time_from"], ev["problem_time_till"]) == (start, stop - 1)
        slis = [c["params"] for c in sim.calls if c["method"] == "sla.getsli"]
        if path == "sla":
            assert slis == [{"slaid": slis[0]["slaid"], "period_from": start, "periods": 7}]
        else:
            assert slis == []
        want = await oracle_async(dataset, code, period)
        got = o.section.data
        if path == "sla":
            assert got.overall_pct == zabbix_sla_pct(dataset, code, period)
            got = dataclasses.replace(got, overall_pct=want.overall_pct, overall_source=want.overall_source)
        assert got == want


async def test_sla_in_another_timezone_than_the_customer_is_refused(dataset):
    """ACME configured as a New York customer: its London SLA's days cannot make a New York week."""
    period = week_containing(date(2026, 11, 10), "America/New_York")
    async with ZabbixSimulator(dataset) as sim:
        o = await collect_uptime(sim, dataset, "ACME", period, tz="America/New_York")
    assert o.section.status == "unavailable" and "do not line up" in o.section.error


async def test_version_72_refuses_body_auth_and_the_client_uses_bearer(dataset):
    async with ZabbixSimulator(dataset, version="7.2.1") as sim:
        o = await collect_uptime(sim, dataset, "WAYNE", period_for(dataset, "WAYNE", 0))
        assert o.section.status == "ok"
        assert {c["auth"] for c in sim.calls if c["method"] != "apiinfo.version"} == {"bearer"}
        async with httpx.AsyncClient() as raw:
            resp = await raw.post(
                f"{sim.url}/api_jsonrpc.php",
                json={"jsonrpc": "2.0", "method": "hostgroup.get", "params": {}, "auth": sim.token, "id": 7},
            )
        assert resp.json()["error"]["code"] == -32600


async def test_expired_token_and_wrong_token_on_the_simulator(dataset):
    async with ZabbixSimulator(dataset, version="6.0.14") as sim:
        sim.token_expired = True
        o = await collect_uptime(sim, dataset, "WAYNE", period_for(dataset, "WAYNE", 0))
        assert (
            o.section.status == "unavailable"
            and "API token expired" in o.section.error
            and "credentials" in o.section.error
        )
        sim.token_expired = False
        o = await collect_uptime(sim, dataset, "WAYNE", period_for(dataset, "WAYNE", 0), api_token="0" * 64)
        assert "Not authorised." in o.section.error  # 6.0's spelling


async def test_which_problems_count_as_down_is_configurable(dataset):
    """Without the tag filter the CPU problems count as downtime (numbers change); the name
    filter alone selects the same problems as the tag."""
    period = period_for(dataset, "WAYNE", 0)
    want = await oracle_async(dataset, "WAYNE", period)
    async with ZabbixSimulator(dataset) as sim:
        everything = await collect_uptime(sim, dataset, "WAYNE", period, down_tag="")
        by_name = await collect_uptime(sim, dataset, "WAYNE", period, down_tag="", down_name="Unavailable by ICMP")
    assert everything.section.data.overall_pct < want.overall_pct
    assert by_name.section.data == want


async def test_decoys_are_ignored_and_records_listed(dataset):
    """WAYNE's weekly SLA and ACME's disabled SLA are not used; GLOBEX's recurring maintenance
    of 2025 and WAYNE's CPU-only maintenance change nothing (WAYNE equals the oracle above)."""
    async with ZabbixSimulator(dataset) as sim:
        o = await collect_uptime(sim, dataset, "WAYNE", period_for(dataset, "WAYNE", 0))
        assert o.section.data.overall_source == "device-weighted"
        cfg = make_config(
            "zabbix",
            "zabbix",
            {k: v for k, v in sim.source_config().items() if k != "type"},
            customer_dict(dataset, "WAYNE"),
        )
        conn = ZabbixConnector("zabbix", cfg.sources["zabbix"], ConnectorContext())
        try:
            records = await conn.customer_records()
            assert await conn.probe() == "Zabbix 7.0.5"
        finally:
            await conn.aclose()
    assert sorted(r.id for r in records) == sorted(c.ids["zabbix"] for c in dataset.customers_in("zabbix"))
    assert all("/Network" not in r.id for r in records)
    assert {r.name for r in records} >= {"Acme Manufacturing", "Initrode Ltd"}


def test_no_secret_in_the_source_config_repr(dataset):
    sim = ZabbixSimulator(dataset)
    cfg = make_config(
        "zabbix",
        "zabbix",
        {k: v for k, v in sim.source_config().items() if k != "type"},
        customer_dict(dataset, "ACME"),
    )
    assert sim.token not in repr(cfg.sources["zabbix"])


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    """Both paths (events; the customer's SLA) over the customer_week fixtures. The event pages
    and the recoveries by id are one label: an API version renames a field in every answer."""

    async def run(patch: Any) -> Any:
        out = []
        for scenario in ("customer_week", "customer_week_sla"):
            answers = week_answers(scenario)
            wrapped = {m: (lambda p, m=m, a=a, s=scenario: patch(f"{s} {m}", a(p))) for m, a in answers.items()}
            out.append(await fetch(MockZabbix(wrapped)))
        return tuple(out)

    def result(b: Any) -> list[Any]:
        r = b["result"]
        return r if isinstance(r, list) else [r]

    labels = [
        f"{s} {m}"
        for s in ("customer_week", "customer_week_sla")
        for m in ("hostgroup.get", "host.get", "maintenance.get", "event.get")
    ] + ["customer_week_sla sla.get"]
    outcomes = await check_renamed_fields(
        run,
        {**{label: result for label in labels}, "customer_week_sla sla.getsli": result},
        {
            "customer_week host.get": ["hostid", "status", "tags", "tags.tag", "tags.value", "hostgroups"],
            "customer_week event.get": ["eventid", "clock", "r_eventid", "hosts", "hosts.hostid"],
            "customer_week maintenance.get": [
                "active_since",
                "active_till",
                "timeperiods",
                "timeperiods.period",
                "timeperiods.start_date",
                "hostgroups",
                "tags",
            ],
            "customer_week_sla sla.get": ["slaid", "name", "period", "slo", "status", "service_tags"],
            "customer_week_sla sla.getsli": ["periods", "sli"],
        },
    )
    assert sum(v == "unavailable" for v in outcomes.values()) >= 30

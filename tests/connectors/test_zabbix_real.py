"""Contract test against a REAL Zabbix 6.0 API (Debian's zabbix-frontend-php on 127.0.0.1).

Enable it with ``eval "$(bash .ci/zabbix-real.sh)"`` (root on Debian 12, PostgreSQL on
127.0.0.1:5432 with trust auth): that installs Zabbix, recreates its database, serves the API with
``php -S`` and seeds ``tests/connectors/zabbix_real_seed.py``'s customers, hosts, services, SLAs
and outage history, then prints ``REPORTBOT_ZABBIX_REAL_URL`` / ``REPORTBOT_ZABBIX_REAL_TOKEN``.
Without those variables the tests skip, except under ``CI=true``, where they fail: CI runs the
script first (``.ci/run``), and a contract test CI skips protects nothing.

Every expected number below is worked out by hand from the seeded outage intervals
(``zabbix_real_seed.OUTAGES`` / ``EXCLUDED``), never copied from the server's answer.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from reporting.period import week_containing

pytestmark = pytest.mark.zabbix_real

URL = os.environ.get("REPORTBOT_ZABBIX_REAL_URL", "")
TOKEN = os.environ.get("REPORTBOT_ZABBIX_REAL_TOKEN", "")
TZ = "Europe/London"
MIN = 60
HOUR = 3600
DAY = 24 * HOUR

ACME_HOSTS = ("acme-lon-fw01", "acme-lon-sw01", "acme-lds-fw01", "acme-lds-sw01", "acme-lds-sw02")

# ---------------------------------------------------------------------------------------------
# Week A: Mon 2026-11-09 00:00 GMT .. Mon 2026-11-16 00:00 GMT. London is on GMT (= UTC) all
# week, so each daily slice is 24 h. The Acme SLA excludes Wed 11 Nov 02:00-04:00 (2 h) from
# every service's scheduled time, so Wednesday's slice schedules 22 h.
WEEK_A = week_containing(date(2026, 11, 10), TZ)
SCHEDULED_A = [DAY, DAY, DAY - 2 * HOUR, DAY, DAY, DAY, DAY]  # Mon..Sun, seconds per service
# Downtime per day slice (0 = Mon 9 Nov) and host, from the seeded intervals clipped to the slice:
DOWN_A: dict[int, dict[str, int]] = {
    # acme-lds-fw01 down Sun 8 Nov 22:30 -> Mon 9 Nov 00:45: inside the week only 00:00-00:45
    0: {"acme-lds-fw01": 45 * MIN},
    # acme-lon-fw01 down Tue 10 Nov 10:00 -> 11:30
    1: {"acme-lon-fw01": 90 * MIN},
    # acme-lds-fw01 down Wed 11 Nov 01:50 -> 03:00; 02:00-03:00 lies in the excluded 02:00-04:00
    2: {"acme-lds-fw01": 10 * MIN},
    # acme-lon-sw01 down Thu 12 Nov 14:00 -> 14:20, and 23:50 -> Fri 00:10 (10 min each side)
    3: {"acme-lon-sw01": 20 * MIN + 10 * MIN},
    4: {"acme-lon-sw01": 10 * MIN},
    # acme-lds-sw01 down Sun 15 Nov 23:00 -> Mon 16 Nov 01:00: inside the week only 23:00-24:00
    6: {"acme-lds-sw01": 60 * MIN},
    # acme-lds-sw02's outage (Tue 3 Nov) is the week before: nothing.
    # globex-lon-fw01's outage (Wed 11 Nov 08:00-12:00) belongs to another customer's SLA.
}
# Per host over the week: scheduled 7 * 24 h - 2 h = 166 h; downtime = sum of its slices.
SCHEDULED_HOST_A = 7 * DAY - 2 * HOUR  # 597,600 s
DOWNTIME_HOST_A = {
    "acme-lon-fw01": 90 * MIN,
    "acme-lon-sw01": 20 * MIN + 10 * MIN + 10 * MIN,  # 40 min
    "acme-lds-fw01": 45 * MIN + 10 * MIN,  # 55 min
    "acme-lds-sw01": 60 * MIN,
    "acme-lds-sw02": 0,
}
# Device-weighted (design.md: Σ over devices): 100 * (Σ scheduled - Σ down) / Σ scheduled.
# overall: 5 devices, down 90 + 40 + 55 + 60 + 0 = 245 min = 14,700 s of 5 * 597,600 = 2,988,000 s
OVERALL_A = 100 * (5 * SCHEDULED_HOST_A - 245 * MIN) / (5 * SCHEDULED_HOST_A)  # 99.50803...
# by site: London = lon-fw01 + lon-sw01 (90 + 40 = 130 min over 2 devices);
#          Leeds = lds-fw01 + lds-sw01 + lds-sw02 (55 + 60 + 0 = 115 min over 3 devices)
SITES_A = {
    "London": (100 * (2 * SCHEDULED_HOST_A - 130 * MIN) / (2 * SCHEDULED_HOST_A), 130, 2),
    "Leeds": (100 * (3 * SCHEDULED_HOST_A - 115 * MIN) / (3 * SCHEDULED_HOST_A), 115, 3),
}
# by class: firewall = lon-fw01 + lds-fw01 (90 + 55 = 145 min over 2);
#           switch = lon-sw01 + lds-sw01 + lds-sw02 (40 + 60 + 0 = 100 min over 3)
CLASSES_A = {
    "firewall": (100 * (2 * SCHEDULED_HOST_A - 145 * MIN) / (2 * SCHEDULED_HOST_A), 145, 2),
    "switch": (100 * (3 * SCHEDULED_HOST_A - 100 * MIN) / (3 * SCHEDULED_HOST_A), 100, 3),
}

# ---------------------------------------------------------------------------------------------
# Week B (DST): Mon 2026-10-19 00:00 BST (= Sun 18 Oct 23:00 UTC) .. Mon 2026-10-26 00:00 GMT.
# Clocks go back at 02:00 BST on Sun 25 Oct, so that day is 25 h and the week 169 h. No
# excluded downtime that week.
WEEK_B = week_containing(date(2026, 10, 20), TZ)
SCHEDULED_B = [DAY] * 6 + [25 * HOUR]
DOWN_B: dict[int, dict[str, int]] = {
    # acme-lon-fw01 down Sun 18 Oct 23:00 BST -> Mon 19 Oct 00:30 BST: inside only 00:00-00:30
    0: {"acme-lon-fw01": 30 * MIN},
    # acme-lds-sw02 down Sun 25 Oct 00:30 BST -> 01:30 GMT (the second 01:30):
    # 00:30 BST -> 02:00 BST is 1.5 h, then 01:00 GMT -> 01:30 GMT is 0.5 h: 2 h elapsed
    6: {"acme-lds-sw02": 90 * MIN + 30 * MIN},
}
SCHEDULED_HOST_B = 6 * DAY + 25 * HOUR  # 169 h = 608,400 s
# overall: down 30 + 120 = 150 min of 5 * 608,400 s
OVERALL_B = 100 * (5 * SCHEDULED_HOST_B - 150 * MIN) / (5 * SCHEDULED_HOST_B)  # 99.70414...
SITES_B = {
    "London": (100 * (2 * SCHEDULED_HOST_B - 30 * MIN) / (2 * SCHEDULED_HOST_B), 30, 2),
    "Leeds": (100 * (3 * SCHEDULED_HOST_B - 120 * MIN) / (3 * SCHEDULED_HOST_B), 120, 3),
}
CLASSES_B = {
    "firewall": (100 * (2 * SCHEDULED_HOST_B - 30 * MIN) / (2 * SCHEDULED_HOST_B), 30, 2),
    "switch": (100 * (3 * SCHEDULED_HOST_B - 120 * MIN) / (3 * SCHEDULED_HOST_B), 120, 3),
}

ACME_SLA = "Acme Manufacturing daily"
ACME_SLO = 99.5


def _require_server() -> None:
    if not URL:
        msg = (
            'needs a real Zabbix 6.0 API: run `eval "$(bash .ci/zabbix-real.sh)"` '
            "(root, Debian 12, PostgreSQL on 127.0.0.1:5432) so REPORTBOT_ZABBIX_REAL_URL is set"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but REPORTBOT_ZABBIX_REAL_URL is unset: .ci/run must start it; {msg}")
        pytest.skip(msg)
    host = urlsplit(URL).hostname
    assert host in ("127.0.0.1", "localhost"), f"REPORTBOT_ZABBIX_REAL_URL must be loopback, not {host}"
    assert TOKEN, "REPORTBOT_ZABBIX_REAL_TOKEN is unset (printed by .ci/zabbix-real.sh)"


class Rpc:
    """A bare JSON-RPC caller: Zabbix 6.0 takes the token in the body's ``auth``."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = client
        self.n = 0

    async def __call__(self, method: str, params: Any, auth: bool = True) -> Any:
        self.n += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": self.n}
        if auth:
            body["auth"] = TOKEN
        resp = await self.client.post(URL, json=body, headers={"Content-Type": "application/json-rpc"})
        assert resp.status_code == 200, resp.text[:300]
        answer = resp.json()
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer["result"]


@pytest.fixture
async def rpc():
    _require_server()
    async with httpx.AsyncClient(timeout=30) as client:
        yield Rpc(client)


def epoch(dt: datetime) -> int:
    return int(dt.timestamp())


async def acme_sla(rpc: Rpc) -> dict[str, Any]:
    slas = await rpc(
        "sla.get",
        {
            "output": "extend",
            "filter": {"name": ACME_SLA},
            "selectServiceTags": "extend",
            "selectExcludedDowntimes": "extend",
        },
    )
    assert len(slas) == 1, slas
    return slas[0]


async def service_hosts(rpc: Rpc) -> dict[str, str]:
    """serviceid (a string in service.get) -> host name (the seed names services '<host> availability')."""
    services = await rpc(
        "service.get", {"output": ["serviceid", "name"], "tags": [{"tag": "customer", "value": "ACME", "operator": 1}]}
    )
    return {s["serviceid"]: s["name"].removesuffix(" availability") for s in services}


# ---------------------------------------------------------------------------------------------
# 1. The raw contract: what the real server says, checked against the hand computation.


async def test_api_version_is_6_0(rpc: Rpc) -> None:
    version = await rpc("apiinfo.version", {}, auth=False)
    assert isinstance(version, str) and version.startswith("6.0"), version


async def test_sla_get_shape(rpc: Rpc) -> None:
    sla = await acme_sla(rpc)
    # ids, period, slo and status are strings; timezone is the SLA's own
    assert sla["period"] == "0"  # daily
    assert sla["slo"] == "99.5"
    assert sla["status"] == "1"
    assert sla["timezone"] == TZ
    assert sla["service_tags"] == [{"tag": "customer", "operator": "0", "value": "ACME"}]
    assert sla["excluded_downtimes"] == [
        {
            "name": "Firmware upgrade",
            "period_from": str(epoch(datetime.fromisoformat("2026-11-11T02:00+00:00"))),
            "period_to": str(epoch(datetime.fromisoformat("2026-11-11T04:00+00:00"))),
        }
    ]


@pytest.mark.parametrize(
    ("week", "slices", "scheduled", "down", "overall"),
    [
        (WEEK_A, [DAY] * 7, SCHEDULED_A, DOWN_A, OVERALL_A),
        (WEEK_B, [DAY] * 6 + [25 * HOUR], SCHEDULED_B, DOWN_B, OVERALL_B),
    ],
    ids=["week-2026-11-16", "dst-week-2026-10-26"],
)
async def test_getsli_daily_slices_match_hand_computation(rpc: Rpc, week, slices, scheduled, down, overall) -> None:
    sla = await acme_sla(rpc)
    names = await service_hosts(rpc)
    assert sorted(names.values()) == sorted(ACME_HOSTS)
    result = await rpc("sla.getsli", {"slaid": sla["slaid"], "period_from": epoch(week.start), "periods": 7})

    # 7 slices at local midnights (the SLA's timezone), contiguous, covering exactly [start, end)
    periods = result["periods"]
    assert len(periods) == 7
    assert periods[0]["period_from"] == epoch(week.start)
    assert periods[-1]["period_to"] == epoch(week.end)
    for p, q in zip(periods, periods[1:], strict=False):
        assert p["period_to"] == q["period_from"]
    assert [p["period_to"] - p["period_from"] for p in periods] == slices
    assert sum(p["period_to"] - p["period_from"] for p in periods) == week.seconds

    # getsli's serviceids are integers (service.get's are strings) and in no promised order
    assert all(isinstance(s, int) for s in result["serviceids"])
    hosts = [names[str(s)] for s in result["serviceids"]]
    assert sorted(hosts) == sorted(ACME_HOSTS)  # Globex's service is not in Acme's SLA

    total_up = total_down = 0
    for i, row in enumerate(result["sli"]):
        for host, cell in zip(hosts, row, strict=True):
            want_down = down.get(i, {}).get(host, 0)
            want_up = scheduled[i] - want_down
            assert (cell["uptime"], cell["downtime"]) == (want_up, want_down), f"slice {i} {host}: {cell}"
            assert isinstance(cell["uptime"], int) and isinstance(cell["downtime"], int)
            # sli is a JSON number: 100 arrives as an int, anything else as a float
            assert isinstance(cell["sli"], int | float)
            assert cell["sli"] == pytest.approx(100 * want_up / scheduled[i])
            total_up += cell["uptime"]
            total_down += cell["downtime"]
    assert 100 * total_up / (total_up + total_down) == pytest.approx(overall, abs=1e-9)


async def test_getsli_slices_follow_the_sla_timezone_not_utc(rpc: Rpc) -> None:
    """Daily slices start at 00:00 Europe/London: in BST that is 23:00 UTC the day before."""
    sla = await acme_sla(rpc)
    result = await rpc("sla.getsli", {"slaid": sla["slaid"], "period_from": epoch(WEEK_B.start), "periods": 7})
    starts = [datetime.fromtimestamp(p["period_from"], WEEK_B.start.tzinfo) for p in result["periods"]]
    assert all((s.hour, s.minute) == (0, 0) for s in starts)
    assert result["periods"][0]["period_from"] == epoch(datetime.fromisoformat("2026-10-18T23:00+00:00"))
    # the DST Sunday is 25 h long
    last = result["periods"][-1]
    assert last["period_to"] - last["period_from"] == 25 * HOUR


async def test_getsli_period_to_includes_the_slice_it_falls_in(rpc: Rpc) -> None:
    """6.0.14: ``period_to`` is aligned down to its slice and that slice is returned too, so
    passing the (exclusive) period end returns 8 daily slices, the 8th starting at the end.
    Use ``period_from`` + ``periods`` instead."""
    sla = await acme_sla(rpc)
    result = await rpc(
        "sla.getsli", {"slaid": sla["slaid"], "period_from": epoch(WEEK_A.start), "period_to": epoch(WEEK_A.end)}
    )
    assert len(result["periods"]) == 8
    assert result["periods"][-1]["period_from"] == epoch(WEEK_A.end)
    # period_to one second before the end gives exactly the week
    result = await rpc(
        "sla.getsli", {"slaid": sla["slaid"], "period_from": epoch(WEEK_A.start), "period_to": epoch(WEEK_A.end) - 1}
    )
    assert len(result["periods"]) == 7


async def test_problem_events_for_the_host_availability_fallback(rpc: Rpc) -> None:
    """Trigger problem events with their recoveries, as a fallback without services would read them."""
    groups = await rpc(
        "hostgroup.get", {"output": ["groupid", "name"], "filter": {"name": ["Customers/Acme Manufacturing"]}}
    )
    assert len(groups) == 1
    events = await rpc(
        "event.get",
        {
            "source": 0,
            "object": 0,
            "value": 1,
            "groupids": [groups[0]["groupid"]],
            # problems that started before the end; ones that started before the start may still overlap
            "time_from": epoch(WEEK_A.start) - 7 * DAY,
            "time_till": epoch(WEEK_A.end) - 1,
            "output": ["eventid", "clock", "r_eventid", "name", "severity"],
            "selectHosts": ["hostid", "host"],
            "selectTags": "extend",
            "sortfield": ["clock", "eventid"],
        },
    )
    recoveries = await rpc("event.get", {"eventids": [e["r_eventid"] for e in events], "output": ["eventid", "clock"]})
    back = {r["eventid"]: int(r["clock"]) for r in recoveries}
    down: dict[str, int] = {}
    start, end = epoch(WEEK_A.start), epoch(WEEK_A.end)
    for e in events:
        assert isinstance(e["clock"], str) and isinstance(e["severity"], str)  # strings, like every id
        (host,) = e["hosts"]
        t0, t1 = max(int(e["clock"]), start), min(back[e["r_eventid"]], end)
        if t1 > t0:
            down[host["host"]] = down.get(host["host"], 0) + t1 - t0
    # Events know nothing of the SLA's excluded downtime: acme-lds-fw01's Wednesday outage counts
    # in full here (01:50 -> 03:00 = 70 min), unlike in sla.getsli (10 min).
    assert down == {
        "acme-lds-fw01": 45 * MIN + 70 * MIN,
        "acme-lon-fw01": 90 * MIN,
        "acme-lon-sw01": 20 * MIN + 20 * MIN,
        "acme-lds-sw01": 60 * MIN,
    }


# ---------------------------------------------------------------------------------------------
# 2. The connector against the same server: its uptime section equals the hand computation.
#
# The connector reads the breakdown from "device down" problem events (down_tag
# scope=availability, the seed's trigger tag) less planned time (the Zabbix maintenance on
# Acme's host group, and the SLA's excluded downtime: the same 02:00-04:00 window in week A), and
# overall_pct from the daily SLA tagged customer=ACME. Both ways the figures are device-weighted
# over the same intervals, so SITES_*/CLASSES_* and OVERALL_* above are the expectation.


def _customer():
    from reporting.config import CustomerConfig

    return CustomerConfig(
        code="ACME",
        name="Acme Manufacturing",
        timezone=TZ,
        ids={"zabbix": "Customers/Acme Manufacturing"},
        sources={"uptime": "zabbix"},
    )


def _connector(**options: Any):
    from connectors.base import ConnectorContext
    from connectors.zabbix.connector import ZabbixConnector
    from reporting.config import SourceConfig

    source = SourceConfig.model_validate({"type": "zabbix", "url": URL, "api_token": TOKEN, **options})
    return ZabbixConnector("zabbix", source, ConnectorContext())


@pytest.mark.parametrize(
    ("week", "overall", "sites", "classes"),
    [(WEEK_A, OVERALL_A, SITES_A, CLASSES_A), (WEEK_B, OVERALL_B, SITES_B, CLASSES_B)],
    ids=["week-2026-11-16", "dst-week-2026-10-26"],
)
async def test_connector_uptime_matches_hand_computation(week, overall, sites, classes) -> None:
    from reporting.models import Targets, Uptime

    _require_server()
    connector = _connector()
    try:
        # the configured target differs from the SLA's slo, which takes precedence
        up = await connector.fetch_section("uptime", _customer(), week, Targets(uptime_pct=99.9))
    finally:
        await connector.aclose()
    assert isinstance(up, Uptime)
    assert up.overall_pct == pytest.approx(overall, abs=1e-9)
    assert up.overall_source == f"SLA {ACME_SLA}"
    assert up.target_pct == ACME_SLO
    got_sites = {g.name: (g.uptime_pct, g.downtime_minutes, g.devices) for g in up.by_site}
    got_classes = {g.name: (g.uptime_pct, g.downtime_minutes, g.devices) for g in up.by_class}
    assert got_sites.keys() == sites.keys() and got_classes.keys() == classes.keys()
    for got, want in ((got_sites, sites), (got_classes, classes)):
        for name, (pct, minutes, devices) in want.items():
            assert got[name][0] == pytest.approx(pct, abs=1e-9), name
            assert got[name][1] == pytest.approx(minutes, abs=1e-9), name
            assert got[name][2] == devices, name


async def test_connector_without_sla_is_device_weighted_over_the_same_intervals() -> None:
    """``sla_tag = ""``: no SLA, overall is the device-weighted value over all five hosts. In
    week A the maintenance alone (02:00-04:00 on Acme's group) makes the same planned time the SLA
    excluded, so the figure equals the SLA's."""
    from reporting.models import Targets

    _require_server()
    connector = _connector(sla_tag="")
    try:
        up = await connector.fetch_section("uptime", _customer(), WEEK_A, Targets(uptime_pct=99.9))
    finally:
        await connector.aclose()
    assert up.overall_source == "device-weighted"
    assert up.target_pct == 99.9  # no SLA: the configured target
    assert up.overall_pct == pytest.approx(OVERALL_A, abs=1e-9)


async def test_connector_lists_the_seeded_customers() -> None:
    _require_server()
    connector = _connector()
    try:
        records = await connector.customer_records()
    finally:
        await connector.aclose()
    assert sorted(r.name for r in records) == ["Acme Manufacturing", "Globex"]
    assert sorted(r.id for r in records) == ["Customers/Acme Manufacturing", "Customers/Globex"]


async def test_connector_a_refused_token_is_an_auth_error() -> None:
    """6.0 answers a bad token with HTTP 200 and ``-32602 Invalid params. / Not authorized.`` (American spelling)"""
    from connectors.base import SourceAuthError
    from reporting.models import Targets

    _require_server()
    connector = _connector(api_token="0" * 64)
    try:
        with pytest.raises(SourceAuthError, match="api_token"):
            await connector.fetch_section("uptime", _customer(), WEEK_A, Targets())
    finally:
        await connector.aclose()


async def test_raw_refused_token_answer(rpc: Rpc) -> None:
    resp = await rpc.client.post(
        URL,
        json={"jsonrpc": "2.0", "method": "hostgroup.get", "params": {"output": ["name"]}, "auth": "0" * 64, "id": 1},
        headers={"Content-Type": "application/json-rpc"},
    )
    assert resp.status_code == 200
    assert resp.json()["error"] == {"code": -32602, "message": "Invalid params.", "data": "Not authorized."}

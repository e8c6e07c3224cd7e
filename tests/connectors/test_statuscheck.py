"""Status-check connector (UptimeRobot v2): client against vendor-shaped fixtures, a
hand-computed week, the logs-versus-ratio cross-check, the fault matrix and oracle equality."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.fields import epoch, parse_time
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from connectors.statuscheck import StatusCheckConnector
from connectors.statuscheck.simulator import StatusCheckSimulator
from reporting.models import Period, SiteCheck, Sites, Targets
from reporting.period import week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, make_config, run_fault_matrix

FIX = Path(__file__).parent.parent / "fixtures" / "statuscheck"
ANCHOR = date(2026, 11, 16)
BASE = "https://api.uptimerobot.test/v2"
KEY = "ur1234567-0123456789abcdef01234567"
WEEK = week_containing(date(2026, 11, 10), "Europe/London")


def load(scenario: str, name: str) -> Any:
    return json.loads((FIX / scenario / name).read_text())


class Router:
    """Answers POST /v2/<method> by (method, offset); anything else fails the test."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]):
        self.answers = answers
        self.forms: list[dict[str, str]] = []
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.method != "POST" or request.url.query:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        key = (request.url.path.rsplit("/", 1)[-1], form.get("offset", ""))
        if key not in self.answers:
            raise AssertionError(f"unexpected request {key}")
        status, body = self.answers[key]
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"content-type": "text/html"})
        return httpx.Response(status, json=body)


def handcalc() -> dict[tuple[str, str], tuple[int, Any]]:
    return {
        ("getMonitors", "0"): (200, load("handcalc", "getMonitors_offset0.json")),
        ("getMonitors", "2"): (200, load("handcalc", "getMonitors_offset2.json")),
    }


def customer(selector: str = "acme.example", tz: str = "Europe/London") -> dict[str, Any]:
    return {
        "code": "ACME",
        "name": "Acme",
        "timezone": tz,
        "ids": {"statuscheck": selector},
        "sources": {"sites": "statuscheck"},
    }


async def fetch(
    handler: Any, period: Period = WEEK, selector: str = "acme.example", tz: str = "Europe/London", **options: Any
) -> Any:
    cfg = make_config("statuscheck", "statuscheck", {"url": BASE, "api_key": KEY, **options}, customer(selector, tz))
    sleep = RecordingSleep()
    ctx = ConnectorContext(
        client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(handler)), sleep=sleep
    )
    conn = StatusCheckConnector("statuscheck", cfg.sources["statuscheck"], ctx)
    try:
        return await conn.fetch_section("sites", cfg.customers[0], period, Targets(site_pct=99.9))
    finally:
        await conn.aclose()


async def test_hand_computed_week_and_the_request_sent():
    """www: down 8 Nov 23:00 for 5400 s (30 min fall inside the week) and 10 Nov 13:00 for 3000 s
    (50 min) → 80 min, i.e. 100 × (604800 − 4800) / 604800 = 99.206 % — UptimeRobot's own ratio
    for the range agrees. portal: no down log, 100.000 %. notacme.example matches the search
    text but is not on acme.example: left out."""
    router = Router(handcalc())
    data = await fetch(router)
    week = 7 * 86400
    assert data == Sites(
        checks=(SiteCheck("Acme portal", 100.0, 0.0), SiteCheck("Acme www", 100 * (week - 4800) / week, 80.0)),
        target_pct=99.9,
    )
    s, e = epoch(WEEK.start), epoch(WEEK.end)
    first = router.forms[0]
    assert first == {
        "api_key": KEY,
        "format": "json",
        "search": "acme.example",
        "custom_uptime_ranges": f"{s}_{e}",
        "logs": "1",
        "logs_start_date": str(s - 7 * 86400),
        "logs_end_date": str(e),
        "offset": "0",
        "limit": "50",
    }
    assert router.forms[1]["offset"] == "2" and router.forms[1]["limit"] == "2"  # the limit the server granted
    assert all(KEY not in str(r.url) for r in router.seen)  # the key travels in the body only


async def test_monitor_ids_select_with_the_monitors_parameter():
    body = load("handcalc", "getMonitors_offset0.json")
    body["pagination"] = {"offset": 0, "limit": 50, "total": 2}
    router = Router({("getMonitors", "0"): (200, body)})
    data = await fetch(router, selector="777749809,777749810")
    assert router.forms[0]["monitors"] == "777749809-777749810" and "search" not in router.forms[0]
    assert [c.name for c in data.checks] == ["Acme portal", "Acme www"]


@pytest.mark.parametrize(
    ("tz", "day"), [("Europe/London", date(2026, 10, 21)), ("America/New_York", date(2026, 10, 28))]
)
async def test_dst_week_range_sent_and_169_hours(tz: str, day: date):
    period = week_containing(day, tz)
    s, e = epoch(period.start), epoch(period.end)
    m = load("handcalc", "getMonitors_offset0.json")["monitors"][1]
    m["custom_uptime_ranges"] = "0.000"
    m["logs"] = [
        {"id": 1, "type": 1, "datetime": s - 3600, "duration": 30 * 86400, "reason": {"code": "0", "detail": "Timeout"}}
    ]
    router = Router(
        {
            ("getMonitors", "0"): (
                200,
                {"stat": "ok", "pagination": {"offset": 0, "limit": 50, "total": 1}, "monitors": [m]},
            )
        }
    )
    data = await fetch(router, period, tz=tz)
    assert period.hours == 169 and e - s == 169 * 3600
    assert router.forms[0]["custom_uptime_ranges"] == f"{s}_{e}"
    expected = {
        "Europe/London": ("2026-10-18T23:00:00Z", "2026-10-26T00:00:00Z"),
        "America/New_York": ("2026-10-26T04:00:00Z", "2026-11-02T05:00:00Z"),
    }[tz]
    assert (s, e) == tuple(epoch(parse_time(t)) for t in expected)
    assert data.checks[0].downtime_minutes == 169 * 60


async def test_logs_that_do_not_cover_the_period_are_refused():
    """UptimeRobot says 99.950 % for the week but returns no down log (retention): unavailable."""
    answers = handcalc()
    body = load("handcalc", "getMonitors_offset0.json")
    body["monitors"][1]["custom_uptime_ranges"] = "99.950"
    answers[("getMonitors", "0")] = (200, body)
    with pytest.raises(SourceDataError, match=r"Acme portal: the down logs give 100.000 % .* own ratio is 99.950 %"):
        await fetch(Router(answers))


async def test_paused_or_new_monitors_have_no_full_week_figure():
    answers = handcalc()
    body = load("handcalc", "getMonitors_offset0.json")
    body["monitors"][1]["logs"].insert(
        0,
        {
            "id": 9,
            "type": 99,
            "datetime": epoch(WEEK.start) + 3600,
            "duration": 600,
            "reason": {"code": "", "detail": "Paused"},
        },
    )
    answers[("getMonitors", "0")] = (200, body)
    with pytest.raises(SourceDataError, match="Acme portal was paused during the period"):
        await fetch(Router(answers))
    body = load("handcalc", "getMonitors_offset0.json")
    body["monitors"][0]["create_datetime"] = epoch(WEEK.start) + 86400
    answers[("getMonitors", "0")] = (200, body)
    with pytest.raises(SourceDataError, match="Acme www was created .* inside the period"):
        await fetch(Router(answers))


async def test_bad_or_missing_key_is_an_auth_error_and_rate_limit_is_unavailable():
    for name in ("invalid_api_key.json", "missing_api_key.json"):
        with pytest.raises(SourceAuthError, match="credentials") as err:
            await fetch(Router({("getMonitors", "0"): (200, load("errors", name))}))
        assert KEY not in str(err.value)
    with pytest.raises(SourceUnavailable, match="Rate limit exceeded"):
        await fetch(Router({("getMonitors", "0"): (200, load("errors", "rate_limited.json"))}))


async def test_429_retry_after_5xx_timeout_html():
    state = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "4"}, json=load("errors", "rate_limited.json"))
        if state["n"] == 2:
            return httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
        return Router(handcalc())(request)

    assert len((await fetch(flaky)).checks) == 2

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(SourceUnavailable, match="no answer within"):
        await fetch(hang, max_attempts=2)
    answers = handcalc()
    answers[("getMonitors", "2")] = (200, "<!DOCTYPE html><html><title>Cloudflare</title></html>")
    with pytest.raises(SourceDataError, match="HTML page, not JSON"):
        await fetch(Router(answers))


async def test_renamed_field_and_short_pages_are_refused():
    answers = handcalc()
    body = load("handcalc", "getMonitors_offset0.json")
    body["monitors"][0]["logs"][1]["date_time"] = body["monitors"][0]["logs"][1].pop("datetime")
    answers[("getMonitors", "0")] = (200, body)
    with pytest.raises(SourceDataError, match="field 'datetime' is missing"):
        await fetch(Router(answers))
    answers = handcalc()
    page = load("handcalc", "getMonitors_offset2.json")
    page["monitors"] = []
    answers[("getMonitors", "2")] = (200, page)
    with pytest.raises(SourceDataError, match="pagination.total says 3"):
        await fetch(Router(answers))


async def test_customer_records_and_probe():
    router = Router({**handcalc(), ("getAccountDetails", ""): (200, load("errors", "getAccountDetails.json"))})
    cfg = make_config("statuscheck", "statuscheck", {"url": BASE, "api_key": KEY}, customer())
    ctx = ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(router)))
    conn = StatusCheckConnector("statuscheck", cfg.sources["statuscheck"], ctx)
    try:
        records = await conn.customer_records()
        assert [(r.id, r.name) for r in records] == [
            ("acme.example", "Acme portal, Acme www"),
            ("notacme.example", "Not Acme"),
        ]
        assert await conn.probe() == "UptimeRobot v2, 6 monitors (limit 50)"
    finally:
        await conn.aclose()


# ---- against the loopback simulator --------------------------------------------------------


def sandbox_customer(ds: SandboxDataset, code: str) -> dict[str, Any]:
    c = next(c for c in ds.customers_in("statuscheck") if c.code == code)
    return {
        "code": c.code,
        "name": c.name,
        "timezone": c.timezone,
        "ids": dict(c.ids),
        "sources": {"sites": "statuscheck"},
    }


async def oracle(ds: SandboxDataset, cust: dict[str, Any], period: Period) -> Any:
    cfg = make_config("statuscheck", "sandbox", {"system": "statuscheck"}, cust)
    conn = SandboxConnector("statuscheck", cfg.sources["statuscheck"], ConnectorContext(sandbox=ds))
    return await conn.fetch_section("sites", cfg.customers[0], period, Targets())


async def test_equals_the_oracle_for_every_customer_and_three_weeks():
    ds = SandboxDataset(ANCHOR)
    codes = [c.code for c in ds.customers_in("statuscheck")]
    assert codes == ["UMBRELLA", "WONKA", "SOYLENT", "MASSIVE"]
    async with StatusCheckSimulator(ds) as sim:
        source = sim.source_config()
        kind = source.pop("type")
        for code in codes:
            cust = sandbox_customer(ds, code)
            cfg = make_config("statuscheck", kind, source, cust)
            conn = StatusCheckConnector("statuscheck", cfg.sources["statuscheck"], ConnectorContext())
            try:
                for k in range(3):
                    period = week_containing(ANCHOR - timedelta(days=3 + 7 * k), cust["timezone"])
                    assert await conn.fetch_section("sites", cfg.customers[0], period, Targets()) == await oracle(
                        ds, cust, period
                    ), (code, k)
            finally:
                await conn.aclose()
    assert all("api_key" not in path for _, path in sim.log)


async def test_short_log_retention_is_caught_by_the_cross_check():
    ds = SandboxDataset(ANCHOR)
    cust = sandbox_customer(ds, "UMBRELLA")
    period = week_containing(ANCHOR - timedelta(days=3 + 14), cust["timezone"])
    async with StatusCheckSimulator(ds, log_retention_days=10) as sim:
        source = sim.source_config()
        kind = source.pop("type")
        cfg = make_config("statuscheck", kind, source, cust)
        conn = StatusCheckConnector("statuscheck", cfg.sources["statuscheck"], ConnectorContext())
        try:
            with pytest.raises(SourceDataError, match="own ratio is"):
                await conn.fetch_section("sites", cfg.customers[0], period, Targets())
        finally:
            await conn.aclose()


async def test_fault_matrix():
    ds = SandboxDataset(ANCHOR)
    cust = sandbox_customer(ds, "MASSIVE")  # America/Los_Angeles customer, MSP in London
    period = week_containing(ANCHOR - timedelta(days=3), cust["timezone"])
    expected = await oracle(ds, cust, period)
    async with StatusCheckSimulator(ds) as sim:
        await run_fault_matrix(
            sim,
            StatusCheckConnector,
            "sites",
            cust,
            period,
            expected,
            bad_credentials={"api_key": "u0000000-wrong"},
            min_pages=2,
            page_marker="getMonitors",  # offset/limit travel in the POST body
            drift="datetime>date_time",
        )


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    async def run(patch: Any) -> Any:
        # the API version renames a field on every page alike: both pages share the label
        answers = {k: (status, patch("getMonitors", copy.deepcopy(body))) for k, (status, body) in handcalc().items()}
        return await fetch(Router(answers))

    await check_renamed_fields(
        run,
        {"getMonitors": lambda b: b["monitors"]},
        {
            "getMonitors": [
                "url",
                "friendly_name",
                "create_datetime",
                "custom_uptime_ranges",
                "logs",
                "logs.type",
                "logs.datetime",
                "logs.duration",
            ]
        },
    )

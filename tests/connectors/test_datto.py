"""Datto BCDR connector: client against httpx.MockTransport and vendor-shaped fixtures, the
mapper's formulas by hand, and the whole connector against its loopback simulator (oracle =
the in-process sandbox connector's records through reporting.metrics)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.datto import DattoConnector
from connectors.datto.connector import run_status
from connectors.datto.simulator import DattoSimulator
from connectors.fields import Fields
from connectors.sandbox.dataset import SandboxDataset
from reporting import metrics
from reporting.config import CustomerConfig, parse_config
from reporting.models import Backups, Targets
from reporting.period import period_containing, week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, collect_one, run_fault_matrix

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "datto"
ANCHOR = date(2026, 11, 16)
PUBLIC, SECRET = "pk-test", "s3cret-datto-key"


def fixture(path: str):
    return json.loads((FIX / path).read_text())


def customer_dict(code: str, cid: str, tz: str, name: str = "Customer") -> dict:
    return {"code": code, "name": name, "timezone": tz, "ids": {"datto": cid}, "sources": {"backups": "datto"}}


def connector(source: dict, transport: httpx.MockTransport | None = None, **ctx) -> tuple[DattoConnector, object]:
    cfg = parse_config({"msp": {"name": "T", "timezone": "Europe/London"}, "sources": {"datto": source}}, "<t>", env={})
    sleep = RecordingSleep()
    factory = (lambda s: httpx.AsyncClient(transport=transport)) if transport else None
    return DattoConnector("datto", cfg.sources["datto"], ConnectorContext(client_factory=factory, sleep=sleep)), sleep


def customer(code: str, cid: str, tz: str) -> CustomerConfig:
    return CustomerConfig(**customer_dict(code, cid, tz))


MOCK_SOURCE = {
    "type": "datto",
    "url": "https://api.datto.test",
    "public_key": PUBLIC,
    "secret_key": SECRET,
    "per_page": 1,
}


class Routes:
    """A MockTransport handler that answers only the listed (path, query) pairs and records every request."""

    def __init__(self, routes: dict[tuple[str, str], httpx.Response]):
        self.routes, self.seen = routes, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.path, request.url.query.decode())
        self.seen.append((key, request.headers.get("authorization")))
        if key not in self.routes:
            raise AssertionError(f"unexpected request {key}")
        return self.routes[key]


def paged_routes() -> Routes:
    return Routes(
        {
            ("/v1/bcdr/device", "_page=1&_perPage=1"): httpx.Response(200, json=fixture("paged/device_page1.json")),
            ("/v1/bcdr/device", "_page=2&_perPage=1"): httpx.Response(200, json=fixture("paged/device_page2.json")),
            ("/v1/bcdr/device/A1B2C3D4E5F6/asset", "_page=1&_perPage=1"): httpx.Response(
                200, json=fixture("paged/asset.json")
            ),
        }
    )


# ---- client and mapper against fixtures ------------------------------------------------------


async def test_pages_devices_maps_one_org_and_computes_the_week_by_hand():
    routes = paged_routes()
    conn, _ = connector(MOCK_SOURCE, httpx.MockTransport(routes))
    period = week_containing(date(2026, 11, 10), "Europe/London")
    try:
        b = await conn.fetch_section("backups", customer("ACME", "70401", "Europe/London"), period, Targets())
    finally:
        await conn.aclose()
    want = "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
    assert all(auth == want for _, auth in routes.seen)
    assert [k for k, _ in routes.seen][:2] == [
        ("/v1/bcdr/device", "_page=1&_perPage=1"),
        ("/v1/bcdr/device", "_page=2&_perPage=1"),
    ]
    # DC01: success 15th, failed 14th, warning (local verification errors) 13th; FS01: warning (screenshot failed) 12th
    assert b.runs_total == 4 and b.runs_warning == 2 and b.success_rate_pct == 75.0
    dc, fs = b.protected  # the archived ACME-OLD01 is not a protected item
    assert (dc.name, dc.status, dc.rpo_hours, dc.runs_ok, dc.runs_warning, dc.runs_failed) == (
        "ACME-DC01",
        "ok",
        2.0,
        1,
        1,
        1,
    )
    assert dc.last_success == datetime(2026, 11, 15, 22, tzinfo=UTC)
    assert (fs.name, fs.status, fs.rpo_hours) == ("ACME-FS01", "stale", 74.0)


async def test_client_name_mapping_and_unknown_id():
    conn, _ = connector(MOCK_SOURCE, httpx.MockTransport(paged_routes()))
    period = week_containing(date(2026, 11, 10), "Europe/London")
    try:
        b = await conn.fetch_section(
            "backups", customer("ACME", "acme manufacturing", "Europe/London"), period, Targets()
        )
        assert [p.name for p in b.protected] == ["ACME-DC01", "ACME-FS01"]
        with pytest.raises(SourceDataError, match=r"'70402' \(customers.ids.datto of ACME\)"):
            await conn.fetch_section("backups", customer("ACME", "70402", "Europe/London"), period, Targets())
        records = await conn.customer_records()
        assert [(r.id, r.name) for r in records] == [("70401", "Acme Manufacturing"), ("70499", "Other Customer Ltd")]
    finally:
        await conn.aclose()


async def test_an_asset_that_never_backed_up_is_never_not_failed():
    routes = Routes(
        {
            ("/v1/bcdr/device", "_page=1&_perPage=1"): httpx.Response(200, json=fixture("never/device.json")),
            ("/v1/bcdr/device/A1B2C3D4E5F6/asset", "_page=1&_perPage=1"): httpx.Response(
                200, json=fixture("never/asset.json")
            ),
        }
    )
    conn, _ = connector(MOCK_SOURCE, httpx.MockTransport(routes))
    try:
        b = await conn.fetch_section(
            "backups",
            customer("ACME", "70401", "Europe/London"),
            week_containing(date(2026, 11, 10), "Europe/London"),
            Targets(),
        )
    finally:
        await conn.aclose()
    assert [(p.name, p.status, p.last_success, p.rpo_hours) for p in b.protected] == [
        ("ACME-NEW01", "never", None, None)
    ]
    assert b.success_rate_pct is None


def test_run_status_literals():
    def entry(**kw):
        base = {
            "timestamp": "2026-11-15T22:00:00+00:00",
            "backup": {"status": "success", "errorMessage": None},
            "localVerification": {"status": "success", "errors": []},
            "advancedVerification": {"screenshotVerification": {"status": "success", "image": "x"}},
        }
        base.update(kw)
        return Fields("datto", base, "entry")

    assert run_status(entry()) == "success"
    assert run_status(entry(backup={"status": "failure", "errorMessage": "VSS"})) == "failed"
    assert run_status(entry(backup={"status": None, "errorMessage": None})) is None  # still running
    assert (
        run_status(entry(advancedVerification={"screenshotVerification": {"status": "failure", "image": "x"}}))
        == "warning"
    )
    assert (
        run_status(entry(localVerification={"status": "failure", "errors": [{"errorType": "fs", "errorMessage": "x"}]}))
        == "warning"
    )
    with pytest.raises(SourceDataError, match="unknown backup.status 'partial'"):
        run_status(entry(backup={"status": "partial", "errorMessage": None}))
    with pytest.raises(SourceDataError, match="field 'backup' is missing"):
        run_status(Fields("datto", {"timestamp": "2026-11-15T22:00:00+00:00"}, "entry"))


async def test_refused_key_names_the_config_keys_never_the_secret():
    conn, sleep = connector(
        MOCK_SOURCE, httpx.MockTransport(lambda r: httpx.Response(401, json=fixture("errors/unauthorized.json")))
    )
    try:
        with pytest.raises(SourceAuthError) as err:
            await conn.fetch_section(
                "backups",
                customer("ACME", "70401", "Europe/London"),
                week_containing(date(2026, 11, 10), "Europe/London"),
                Targets(),
            )
    finally:
        await conn.aclose()
    text = str(err.value)
    assert "refused the credentials (sources.datto.public_key / secret_key)" in text and "invalid API key pair" in text
    assert SECRET not in text and sleep.waits == []


async def test_429_retry_after_then_html_then_timeout():
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            return httpx.Response(
                429, headers={"Retry-After": "3"}, json={"code": "429", "message": "Too many requests"}
            )
        return httpx.Response(200, json=fixture("never/device.json"))

    conn, sleep = connector(MOCK_SOURCE, httpx.MockTransport(flaky))
    try:
        assert len(await conn.devices()) == 1 and sleep.waits == [3.0]
    finally:
        await conn.aclose()

    html = httpx.MockTransport(
        lambda r: httpx.Response(200, text="<html><body>Sign in</body></html>", headers={"content-type": "text/html"})
    )
    conn, _ = connector(MOCK_SOURCE, html)
    try:
        with pytest.raises(SourceDataError, match="an HTML page, not JSON"):
            await conn.devices()
    finally:
        await conn.aclose()

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    conn, _ = connector({**MOCK_SOURCE, "max_attempts": 2}, httpx.MockTransport(hang))
    try:
        with pytest.raises(SourceUnavailable, match="no answer within"):
            await conn.devices()
    finally:
        await conn.aclose()


# ---- against the simulator: oracle equality, history limit, scenarios ------------------------


def expected(ds: SandboxDataset, code: str, period):
    c = next(c for c in ds.customers_in("datto") if c.code == code)
    return metrics.backups_section(c.protected, ds.gen(code).backup_runs, period, Targets().backup_stale_hours)


def core(b: Backups) -> Backups:
    """The figures the oracle defines (the offsite copy and restore test are Datto's own extras)."""
    return replace(
        b, protected=tuple(replace(p, last_offsite=None, verified=None, verified_at=None) for p in b.protected)
    )


def check_extras(got: Backups, period, latest_week: bool) -> None:
    """The simulator serves ``latestOffsite`` = the second-newest good point (newer than any
    earlier week's end) and a screenshot on every successful snapshot."""
    for p in got.protected:
        if latest_week:
            assert p.last_offsite is not None and p.last_offsite <= period.end and p.last_offsite <= p.last_success
        else:
            assert p.last_offsite is None  # Datto's newest offsite point is past this week's end: unknown then
        assert p.verified is not None and p.verified_at is not None and p.verified_at <= period.end


@pytest.mark.parametrize("weeks_back", [0, 1, 2])
async def test_equals_the_oracle_for_every_datto_customer(weeks_back: int):
    ds = SandboxDataset(ANCHOR)
    async with DattoSimulator(ds) as sim:
        conn, _ = connector(sim.source_config())
        try:
            for c in ds.customers_in("datto"):
                period = week_containing(ANCHOR - timedelta(days=6 + 7 * weeks_back), c.timezone)
                got = await conn.fetch_section(
                    "backups", customer(c.code, c.ids["datto"], c.timezone), period, Targets()
                )
                assert core(got) == expected(ds, c.code, period), c.code
                check_extras(got, period, latest_week=weeks_back == 0)
        finally:
            await conn.aclose()
        device_pages = [p for _, p in sim.log if p.startswith("/v1/bcdr/device?")]
        assert len(device_pages) == len(set(device_pages)) >= 3  # several pages, read once for all customers


async def test_globex_stale_machine_60_hours():
    ds = SandboxDataset(ANCHOR)
    async with DattoSimulator(ds) as sim:
        conn, _ = connector(sim.source_config())
        try:
            period = week_containing(date(2026, 11, 10), "Europe/London")
            b = await conn.fetch_section(
                "backups", customer("GLOBEX", ds.gen("GLOBEX").c.ids["datto"], "Europe/London"), period, Targets()
            )
        finally:
            await conn.aclose()
    fs = next(p for p in b.protected if p.name == "GLOBEX-FS01")
    assert (fs.status, fs.rpo_hours) == ("stale", 60.0)
    assert fs.last_success == datetime(2026, 11, 13, 12, tzinfo=UTC)


async def test_a_week_older_than_the_returned_history_is_unavailable_not_partial():
    ds = SandboxDataset(ANCHOR)
    acme = ds.gen("ACME").c
    period = week_containing(ANCHOR - timedelta(days=6 + 21), "Europe/London")
    async with DattoSimulator(ds, history=24) as sim:
        conn, _ = connector(sim.source_config())
        try:
            with pytest.raises(
                SourceDataError,
                match=r"returns ACME-\w+'s backups only back to .* cannot be computed from partial history",
            ):
                await conn.fetch_section(
                    "backups", customer("ACME", acme.ids["datto"], "Europe/London"), period, Targets()
                )
        finally:
            await conn.aclose()
    async with DattoSimulator(ds, history=60) as sim:  # with a longer history the same week is exact
        conn, _ = connector(sim.source_config())
        try:
            got = await conn.fetch_section(
                "backups", customer("ACME", acme.ids["datto"], "Europe/London"), period, Targets()
            )
            assert core(got) == expected(ds, "ACME", period)
        finally:
            await conn.aclose()


async def test_a_month_that_starts_before_the_returned_history_reports_posture_without_a_rate():
    """A calendar month (31 days) over the simulator's /asset, which returns each asset's newest 24
    backups (about 3 weeks): the month starts before them, but they cover its last week, so each
    system's last good point, RPO and status are the oracle's and no success rate is given. A
    7-day period that starts before the history stays unavailable (the test above); a long period
    whose history does not reach its last week is unavailable too."""
    ds = SandboxDataset(ANCHOR)
    acme = ds.gen("ACME").c
    cust = customer("ACME", acme.ids["datto"], "Europe/London")
    month = period_containing(date(2026, 10, 20), "Europe/London", "month")  # October 2026
    assert month.days == 31 and month.kind == "month"
    async with DattoSimulator(ds, history=24) as sim:
        conn, _ = connector(sim.source_config())
        try:
            got = await conn.fetch_section("backups", cust, month, Targets())
            assert got.run_history is False and got.success_rate_pct is None and got.runs_total == 0
            want = expected(ds, "ACME", month)
            assert [(p.name, p.last_success, p.rpo_hours, p.status) for p in got.protected] == [
                (p.name, p.last_success, p.rpo_hours, p.status) for p in want.protected
            ]
            assert all(p.runs_ok == p.runs_warning == p.runs_failed == 0 for p in got.protected)
        finally:
            await conn.aclose()
    async with DattoSimulator(ds, history=3) as sim:  # three backups: not even the month's last week
        conn, _ = connector(sim.source_config())
        try:
            with pytest.raises(SourceDataError, match=r"backups only back to"):
                await conn.fetch_section("backups", cust, month, Targets())
        finally:
            await conn.aclose()


async def test_paged_asset_envelope_is_read_to_the_end():
    ds = SandboxDataset(ANCHOR)
    async with DattoSimulator(ds, page_size=2, asset_envelope=True) as sim:
        conn, _ = connector(sim.source_config())
        try:
            period = week_containing(date(2026, 11, 10), "Europe/London")
            got = await conn.fetch_section(
                "backups", customer("ACME", ds.gen("ACME").c.ids["datto"], "Europe/London"), period, Targets()
            )
            assert core(got) == expected(ds, "ACME", period)
        finally:
            await conn.aclose()
        asset_pages = [p for _, p in sim.log if "/asset?" in p and "_page=2" in p]
        assert asset_pages  # the SIRIS holds 3 assets: two pages of 2


@pytest.mark.parametrize(
    ("tz", "week_day", "hours"),
    [("Europe/London", date(2026, 10, 20), 169.0), ("America/New_York", date(2026, 10, 28), 169.0)],
)
async def test_dst_weeks_and_a_customer_outside_the_msp_timezone(tz: str, week_day: date, hours: float):
    ds = SandboxDataset(ANCHOR)
    period = week_containing(week_day, tz)
    assert period.hours == hours
    async with DattoSimulator(ds, history=40) as sim:
        conn, _ = connector(sim.source_config())
        try:
            got = await conn.fetch_section(
                "backups", customer("ACME", ds.gen("ACME").c.ids["datto"], tz), period, Targets()
            )
        finally:
            await conn.aclose()
        # Datto takes no time parameters: the period is applied to the snapshot timestamps we read
        assert all("time" not in p.lower() and "date" not in p.lower() for _, p in sim.log)
    assert core(got) == expected(ds, "ACME", period)
    assert max(p.rpo_hours for p in got.protected) < 48


async def test_fault_matrix():
    ds = SandboxDataset(ANCHOR)
    globex = ds.gen("GLOBEX").c
    period = week_containing(date(2026, 11, 10), "Europe/London")
    async with DattoSimulator(ds) as sim:
        clean = await collect_one(
            sim, DattoConnector, "backups", customer_dict("GLOBEX", globex.ids["datto"], "Europe/London"), period
        )
        assert isinstance(clean.section.data, Backups) and core(clean.section.data) == expected(ds, "GLOBEX", period)
        await run_fault_matrix(
            sim,
            DattoConnector,
            "backups",
            customer_dict("GLOBEX", globex.ids["datto"], "Europe/London"),
            period,
            clean.section.data,
            bad_credentials={"secret_key": "wrong"},
            page_marker="_page=",
            drift="timestamp>time",
        )
        o = await collect_one(sim, DattoConnector, "backups", customer_dict("GLOBEX", "99999", "Europe/London"), period)
        assert o.section.status == "unavailable" and "customers.ids.datto" in o.section.error


async def test_probe():
    ds = SandboxDataset(ANCHOR)
    async with DattoSimulator(ds) as sim:
        conn, _ = connector(sim.source_config())
        try:
            assert await conn.probe() == f"Datto BCDR API v1: {len(sim.devices)} appliances"
        finally:
            await conn.aclose()


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    files = {
        ("/v1/bcdr/device", "_page=1&_perPage=1"): "paged/device_page1.json",
        ("/v1/bcdr/device", "_page=2&_perPage=1"): "paged/device_page2.json",
        ("/v1/bcdr/device/A1B2C3D4E5F6/asset", "_page=1&_perPage=1"): "paged/asset.json",
    }
    period = week_containing(date(2026, 11, 10), "Europe/London")

    async def run(patch):
        routes = Routes({k: httpx.Response(200, json=patch(f, fixture(f))) for k, f in files.items()})
        conn, _ = connector(MOCK_SOURCE, httpx.MockTransport(routes))
        try:
            return await conn.fetch_section("backups", customer("ACME", "70401", "Europe/London"), period, Targets())
        finally:
            await conn.aclose()

    backup = [
        "timestamp",
        "backup.status",
        "localVerification.errors",
        "advancedVerification.screenshotVerification.status",
    ]
    await check_renamed_fields(
        run,
        {"paged/device_page1.json": lambda b: b["items"], "paged/asset.json": lambda b: b},
        {
            "paged/device_page1.json": ["serialNumber", "organizationId"],
            "paged/asset.json": [
                "name",
                "isArchived",
                "latestOffsite",
                "lastSnapshot",
                "lastScreenshotAttempt",
                "lastScreenshotAttemptStatus",
                "backups",
                *(f"backups.{f}" for f in backup),
            ],
        },
    )


async def test_a_customer_mapped_by_company_name_is_accepted_by_config_check_and_the_sweep():
    from reporting.collect import unmapped_records

    conn, _ = connector(MOCK_SOURCE, httpx.MockTransport(paged_routes()))
    try:
        assert await conn.check_id("acme manufacturing") == "Acme Manufacturing (1 appliance)"
        assert await conn.check_id("70401") == "Acme Manufacturing (1 appliance)"
        assert await conn.check_id("Initech") is None
        sweep = await unmapped_records({"datto": conn}, [customer("ACME", "acme manufacturing", "Europe/London")])
    finally:
        await conn.aclose()
    assert [(r.id, r.name) for r in sweep.records] == [("70499", "Other Customer Ltd")]  # not Acme: mapped by name

"""Veeam connector: VBR REST v1 and VSPC REST v3 clients against httpx.MockTransport and
vendor-shaped fixtures, and the connector against its loopback simulator (oracle = the sandbox
records through reporting.metrics; VSPC against a hand computation, since it has no history)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError
from connectors.fields import iso_z, parse_time
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.base import Faults
from connectors.veeam import VeeamConnector
from connectors.veeam.client import VbrClient
from connectors.veeam.simulator import VeeamSimulator
from reporting import metrics
from reporting.config import CustomerConfig, parse_config
from reporting.models import Backups, Targets
from reporting.period import week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, run_fault_matrix

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "veeam"
ANCHOR = date(2026, 11, 16)
VBR_SOURCE = {
    "type": "veeam",
    "api": "vbr",
    "url": "https://vbr.test:9419",
    "username": "NW\\svc",
    "password": "pw-s3cret",
    "api_version": "1.3-rev1",
}


def fixture(path: str):
    return json.loads((FIX / path).read_text())


def customer_dict(code: str, cid: str, tz: str) -> dict:
    return {"code": code, "name": code.title(), "timezone": tz, "ids": {"veeam": cid}, "sources": {"backups": "veeam"}}


def customer(code: str, cid: str, tz: str) -> CustomerConfig:
    return CustomerConfig(**customer_dict(code, cid, tz))


def connector(source: dict, transport: httpx.MockTransport | None = None) -> VeeamConnector:
    cfg = parse_config({"msp": {"name": "T", "timezone": "Europe/London"}, "sources": {"veeam": source}}, "<t>", env={})
    factory = (lambda s: httpx.AsyncClient(transport=transport)) if transport else None
    return VeeamConnector(
        "veeam", cfg.sources["veeam"], ConnectorContext(client_factory=factory, sleep=RecordingSleep())
    )


def oracle(ds: SandboxDataset, code: str, period) -> Backups:
    c = next(c for c in ds.customers_in("veeam") if c.code == code)
    return metrics.backups_section(c.protected, ds.gen(code).backup_runs, period, Targets().backup_stale_hours)


# ---- VBR client ------------------------------------------------------------------------------


async def test_vbr_token_version_header_paging_and_refresh_on_expired_token():
    seen: list[tuple[str, str, dict, dict]] = []
    state = {"expired_once": False}

    def handler(request: httpx.Request) -> httpx.Response:
        q = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()} if request.method == "POST" else {}
        seen.append((request.method, request.url.path, q, form))
        assert request.headers.get("x-api-version") == "1.3-rev1", (
            request.url.path
        )  # every request, token call included
        if request.url.path == "/api/oauth2/token":
            assert request.headers["content-type"] == "application/x-www-form-urlencoded"
            if form["grant_type"] == "password":
                assert (form["username"], form["password"]) == ("NW\\svc", "pw-s3cret")
                return httpx.Response(200, json=fixture("vbr_paged/token.json"))
            assert form == {"grant_type": "refresh_token", "refresh_token": "ref-1"}
            return httpx.Response(200, json=fixture("vbr_paged/token_refreshed.json"))
        if request.url.path == "/api/v1/jobs/states":
            if not state["expired_once"]:
                state["expired_once"] = True
                return httpx.Response(401, json=fixture("vbr_paged/expired_token.json"))
            assert request.headers["authorization"] == "Bearer tok-2"
            assert q["nameFilter"] == "WONKA-*"
            if q["skip"] == "0":
                return httpx.Response(200, json=fixture("vbr_paged/jobs_states_skip0.json"))
            assert (q["skip"], q["limit"]) == ("2", "2")
            return httpx.Response(200, json=fixture("vbr_paged/jobs_states_skip2.json"))
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    conn = connector(VBR_SOURCE, httpx.MockTransport(handler))
    try:
        assert isinstance(conn.client, VbrClient)
        jobs = await conn.client.job_states("WONKA-")
    finally:
        await conn.aclose()
    assert [j["name"] for j in jobs] == ["WONKA-DC01", "WONKA-FS01", "WONKA-SQL01"]
    assert [s[3].get("grant_type") for s in seen if s[1] == "/api/oauth2/token"] == ["password", "refresh_token"]


async def test_vbr_refused_credentials_and_invalid_token():
    conn = connector(
        VBR_SOURCE, httpx.MockTransport(lambda r: httpx.Response(401, json=fixture("vbr_paged/access_denied.json")))
    )
    try:
        with pytest.raises(SourceAuthError) as err:
            await conn.client.job_states("WONKA-")
    finally:
        await conn.aclose()
    assert "refused the credentials (sources.veeam.username / password)" in str(err.value)
    assert "AccessDenied: Invalid user name or password" in str(err.value) and "pw-s3cret" not in str(err.value)

    def invalid(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/oauth2/token":
            return httpx.Response(200, json=fixture("vbr_paged/token.json"))
        return httpx.Response(
            401, json={"errorCode": "InvalidToken", "message": "The access token is invalid", "resourceId": None}
        )

    conn = connector(VBR_SOURCE, httpx.MockTransport(invalid))
    try:
        with pytest.raises(SourceAuthError, match="HTTP 401 InvalidToken"):
            await conn.client.job_states("WONKA-")
    finally:
        await conn.aclose()


async def test_unknown_api_is_a_config_error():
    """At load the options model refuses it (tests/test_config.py); built anyway, the constructor
    does not raise: every call says why."""
    conn = connector({**VBR_SOURCE, "api": "vbrx"})
    with pytest.raises(SourceDataError, match='sources.veeam.api is .vbrx.; it must be "vbr" or "vspc"'):
        await conn.probe()
    await conn.aclose()


# ---- VSPC client -----------------------------------------------------------------------------


async def test_vspc_hand_computation_from_fixtures():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer key-1"
        q = request.url.query.decode()
        assert q == "limit=500&offset=0", q
        if request.url.path == "/api/v3/infrastructure/backupServers/jobs":
            return httpx.Response(200, json=fixture("vspc/jobs.json"))
        if request.url.path == "/api/v3/protectedWorkloads/virtualMachines":
            return httpx.Response(200, json=fixture("vspc/virtualMachines.json"))
        raise AssertionError(f"unexpected request {request.url}")

    conn = connector(
        {"type": "veeam", "api": "vspc", "url": "https://vspc.test:1280", "api_key": "key-1"},
        httpx.MockTransport(handler),
    )
    period = week_containing(date(2026, 11, 10), "Europe/Berlin")
    try:
        b = await conn.fetch_section(
            "backups", customer("WONKA", "7d1e0000-0000-4000-8000-000000000008", "Europe/Berlin"), period, Targets()
        )
    finally:
        await conn.aclose()
    # last restore point Sat 22:00 Berlin (21:00Z); period end Mon 00:00 Berlin (Sun 23:00Z): 26 h; last run failed
    (p,) = b.protected
    assert (p.name, p.status, p.rpo_hours, p.last_success) == (
        "WONKA-SQL01",
        "failed",
        26.0,
        datetime(2026, 11, 14, 21, tzinfo=UTC),
    )
    assert b.success_rate_pct is None and b.runs_total == 0 and (p.runs_ok, p.runs_warning, p.runs_failed) == (0, 0, 0)
    assert b.run_history is False  # rendered as "not available from this source", not "no runs finished"


async def test_vspc_refused_key():
    conn = connector(
        {"type": "veeam", "api": "vspc", "url": "https://vspc.test:1280", "api_key": "bad-key"},
        httpx.MockTransport(lambda r: httpx.Response(401, json=fixture("vspc/unauthorized.json"))),
    )
    try:
        with pytest.raises(
            SourceAuthError, match=r"VSPC refused the API key credentials \(sources.veeam.api_key\).*not valid"
        ) as err:
            await conn.client.jobs()
    finally:
        await conn.aclose()
    assert "bad-key" not in str(err.value)


# ---- against the simulator -------------------------------------------------------------------


@pytest.mark.parametrize("weeks_back", [0, 1, 2])
async def test_vbr_equals_the_oracle_for_every_veeam_customer(weeks_back: int):
    ds = SandboxDataset(ANCHOR)
    async with VeeamSimulator(ds) as sim:
        conn = connector(sim.source_config())
        try:
            for c in ds.customers_in("veeam"):
                period = week_containing(ANCHOR - timedelta(days=6 + 7 * weeks_back), c.timezone)
                cust = customer(c.code, c.ids["veeam"], c.timezone)
                if period.start < ds.gen(c.code).onboarded:  # TYRELL: onboarded in the anchor week
                    with pytest.raises(SourceDataError, match="the week precedes the customer's history"):
                        await conn.fetch_section("backups", cust, period, Targets())
                    continue
                assert await conn.fetch_section("backups", cust, period, Targets()) == oracle(ds, c.code, period), (
                    c.code
                )
        finally:
            await conn.aclose()
        assert sim.missing_version == []
        assert sum(1 for _, p in sim.log if p.startswith("/api/oauth2/token")) == 1


async def test_wonka_failed_job_and_never_run_job():
    ds = SandboxDataset(ANCHOR)
    period = week_containing(date(2026, 11, 10), "Europe/Berlin")
    async with VeeamSimulator(ds) as sim:
        conn = connector(sim.source_config())
        try:
            b = await conn.fetch_section("backups", customer("WONKA", "WONKA-", "Europe/Berlin"), period, Targets())
            never = await conn.fetch_section(
                "backups", customer("NW", "Northwind - ", "Europe/London"), period, Targets()
            )
        finally:
            await conn.aclose()
    sql = next(p for p in b.protected if p.name == "WONKA-SQL01")
    assert (sql.status, sql.runs_failed, sql.rpo_hours) == ("failed", 1, 26.0)
    assert [(p.name, p.status, p.runs_failed) for p in never.protected] == [
        ("Northwind - Configuration backup", "never", 0)
    ]
    assert never.success_rate_pct is None


async def test_refresh_after_expired_token_mid_batch():
    ds = SandboxDataset(ANCHOR)
    period = week_containing(date(2026, 11, 10), "Europe/Berlin")
    async with VeeamSimulator(ds) as sim:
        conn = connector(sim.source_config())
        try:
            first = await conn.fetch_section("backups", customer("WONKA", "WONKA-", "Europe/Berlin"), period, Targets())
            sim.expire_tokens()
            again = await conn.fetch_section("backups", customer("WONKA", "WONKA-", "Europe/Berlin"), period, Targets())
        finally:
            await conn.aclose()
        assert first == again == oracle(ds, "WONKA", period)
        assert sum(1 for _, p in sim.log if p.startswith("/api/oauth2/token")) == 2


async def test_restore_points_removed_by_retention_make_the_week_unavailable():
    ds = SandboxDataset(ANCHOR)
    async with VeeamSimulator(ds) as sim:
        cutoff = datetime(2026, 11, 5, tzinfo=UTC)
        sim.points = [
            p for p in sim.points if not (p["name"] == "WONKA-DC01" and parse_time(p["creationTime"]) < cutoff)
        ]
        conn = connector(sim.source_config())
        try:
            old = week_containing(date(2026, 10, 27), "Europe/Berlin")
            with pytest.raises(
                SourceDataError, match=r"'WONKA-DC01': its restore points before .* no longer exist \(retention\)"
            ):
                await conn.fetch_section("backups", customer("WONKA", "WONKA-", "Europe/Berlin"), old, Targets())
            recent = week_containing(date(2026, 11, 10), "Europe/Berlin")
            assert await conn.fetch_section(
                "backups", customer("WONKA", "WONKA-", "Europe/Berlin"), recent, Targets()
            ) == oracle(ds, "WONKA", recent)
        finally:
            await conn.aclose()


@pytest.mark.parametrize(
    ("code", "tz", "week_day"),
    [("WONKA", "Europe/London", date(2026, 10, 20)), ("INITECH", "America/New_York", date(2026, 10, 28))],
)
async def test_dst_weeks_send_the_period_bounds(code: str, tz: str, week_day: date):
    ds = SandboxDataset(ANCHOR)
    period = week_containing(week_day, tz)
    assert period.hours == 169.0
    async with VeeamSimulator(ds) as sim:
        conn = connector(sim.source_config())
        try:
            got = await conn.fetch_section("backups", customer(code, f"{code}-", tz), period, Targets())
        finally:
            await conn.aclose()
        sent = [
            parse_qs(p.split("?", 1)[1])
            for _, p in sim.log
            if p.startswith("/api/v1/sessions?") and "endedAfterFilter" in p
        ]
        assert sent and all(
            q["endedAfterFilter"] == [iso_z(period.start)] and q["endedBeforeFilter"] == [iso_z(period.end)]
            for q in sent
        )
        rp = [parse_qs(p.split("?", 1)[1]) for _, p in sim.log if p.startswith("/api/v1/restorePoints?")]
        assert rp and all(q["createdBeforeFilter"] == [iso_z(period.end)] for q in rp)
    assert got == oracle(ds, code, period)


async def test_vbr_fault_matrix():
    ds = SandboxDataset(ANCHOR)
    period = week_containing(date(2026, 11, 10), "Europe/Berlin")
    async with VeeamSimulator(ds) as sim:
        await run_fault_matrix(
            sim,
            VeeamConnector,
            "backups",
            customer_dict("WONKA", "WONKA-", "Europe/Berlin"),
            period,
            oracle(ds, "WONKA", period),
            bad_credentials={"password": "wrong"},
            page_marker="skip=",
            drift="endTime>finishedAt",
        )


def vspc_expected(ds: SandboxDataset, code: str, period) -> Backups:
    """VSPC by hand: the oracle's last success, RPO and status; no rate and no run counts."""
    o = oracle(ds, code, period)
    return Backups(
        success_rate_pct=None,
        runs_total=0,
        runs_warning=0,
        run_history=False,
        protected=tuple(replace(p, runs_ok=0, runs_warning=0, runs_failed=0) for p in o.protected),
    )


async def test_vspc_anchor_week_for_every_customer_and_earlier_weeks_unavailable():
    ds = SandboxDataset(ANCHOR)
    async with VeeamSimulator(ds, api="vspc") as sim:
        conn = connector(sim.source_config())
        try:
            for c in ds.customers_in("veeam"):
                cust = customer(c.code, sim.org_uid(c.code), c.timezone)
                period = week_containing(date(2026, 11, 10), c.timezone)
                assert await conn.fetch_section("backups", cust, period, Targets()) == vspc_expected(
                    ds, c.code, period
                ), c.code
                earlier = week_containing(date(2026, 11, 3), c.timezone)
                with pytest.raises(SourceDataError, match="VSPC keeps only each job's latest state"):
                    await conn.fetch_section("backups", cust, earlier, Targets())
            records = await conn.customer_records()
            assert {r.id for r in records} == {sim.org_uid(c.code) for c in ds.customers_in("veeam")}
        finally:
            await conn.aclose()
        pages = [p for _, p in sim.log if p.startswith("/api/v3/infrastructure/backupServers/jobs")]
        assert len(pages) >= 3 and len(pages) == len(set(pages))  # paged, and read once for all customers


async def test_vspc_fault_matrix():
    ds = SandboxDataset(ANCHOR)
    period = week_containing(date(2026, 11, 10), "Europe/Berlin")
    async with VeeamSimulator(ds, api="vspc") as sim:
        await run_fault_matrix(
            sim,
            VeeamConnector,
            "backups",
            customer_dict("WONKA", sim.org_uid("WONKA"), "Europe/Berlin"),
            period,
            vspc_expected(ds, "WONKA", period),
            bad_credentials={"api_key": "wrong"},
            page_marker="offset=",
            drift="latestRestorePointDate>latestRestorePoint",
        )


async def test_probe_both_apis():
    ds = SandboxDataset(ANCHOR)
    async with VeeamSimulator(ds) as sim:
        for api, want in (
            ("vbr", "Veeam Backup & Replication 12.3.1.1139 (vbr01.northwind.example), REST 1.2-rev1"),
            ("vspc", "Veeam Service Provider Console REST v3: 4 companies"),
        ):
            conn = connector(sim.source_config(api))
            try:
                assert await conn.probe() == want
            finally:
                await conn.aclose()


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_vspc_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    files = {
        "/api/v3/infrastructure/backupServers/jobs": "vspc/jobs.json",
        "/api/v3/protectedWorkloads/virtualMachines": "vspc/virtualMachines.json",
    }
    period = week_containing(date(2026, 11, 10), "Europe/Berlin")

    async def run(patch):
        def handler(request: httpx.Request) -> httpx.Response:
            f = files[request.url.path]
            return httpx.Response(200, json=patch(f, fixture(f)))

        conn = connector(
            {"type": "veeam", "api": "vspc", "url": "https://vspc.test:1280", "api_key": "key-1"},
            httpx.MockTransport(handler),
        )
        try:
            wonka = customer("WONKA", "7d1e0000-0000-4000-8000-000000000008", "Europe/Berlin")
            return await conn.fetch_section("backups", wonka, period, Targets())
        finally:
            await conn.aclose()

    await check_renamed_fields(
        run,
        {"vspc/jobs.json": lambda b: b["data"], "vspc/virtualMachines.json": lambda b: b["data"]},
        {
            "vspc/jobs.json": [
                "instanceUid",
                "name",
                "status",
                "lastRun",
                "lastEndTime",
                "organizationUid",
                "mappedOrganizationUid",
            ],
            "vspc/virtualMachines.json": ["jobUid", "latestRestorePointDate"],
        },
    )


@pytest.mark.parametrize(
    "field", ["name", "id", "jobId", "creationTime", "state", "result", "isCanceled", "endTime", "sessionId"]
)
async def test_vbr_a_renamed_field_in_every_answer_is_unavailable_naming_it(field: str):
    """VBR has no fixture week: the simulator renames the key in every JSON answer (its drift fault)."""
    ds = SandboxDataset(ANCHOR)
    c = next(c for c in ds.customers_in("veeam") if c.code == "WONKA")
    period = week_containing(ANCHOR - timedelta(days=6), c.timezone)
    async with VeeamSimulator(ds) as sim:
        conn = connector(sim.source_config())
        try:
            want = await conn.fetch_section("backups", customer(c.code, c.ids["veeam"], c.timezone), period, Targets())
            assert want == oracle(ds, c.code, period)
            sim.faults = Faults(drift={field: field + "_v2"})
            conn2 = connector(sim.source_config())
            try:
                with pytest.raises(SourceDataError, match=f"'(result\\.)?{field}'"):
                    await conn2.fetch_section(
                        "backups", customer(c.code, c.ids["veeam"], c.timezone), period, Targets()
                    )
            finally:
                await conn2.aclose()
        finally:
            await conn.aclose()

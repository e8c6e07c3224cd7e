"""HaloPSA: the client (OAuth2 token cache and renewal, record_count paging) against
httpx.MockTransport and vendor-shaped fixtures, the mapper against a hand computation, and the
connector over HTTP against its loopback simulator — the fault matrix, equality with the
in-process sandbox (the oracle) for every Halo customer over three weeks, DST weeks and the
planted MASSIVE / SOYLENT / TYRELL scenarios."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.halo.client import HaloClient, halo_date, halo_error_message
from connectors.halo.connector import HaloConnector
from connectors.halo.simulator import HaloSimulator
from connectors.http import HttpSource
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from reporting.config import CustomerConfig, SourceConfig, Thresholds
from reporting.deltas import compute_flags
from reporting.models import Changes, Targets, Tickets
from reporting.period import previous_period, week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, collect_one, run_fault_matrix

FIX = Path(__file__).parent.parent / "fixtures" / "halo"
ANCHOR = date(2026, 11, 16)
WEEK = date(2026, 11, 10)
SECRET = "s3cret-halo-secret"


def fx(scenario: str, name: str) -> Any:
    return json.loads((FIX / scenario / f"{name}.json").read_text())


class HaloApi:
    """A MockTransport handler for one Halo instance: issues numbered tokens, checks the bearer
    token on every API call, records the requests, fails the test on anything unexpected."""

    def __init__(self, routes: dict[str, Any] | None = None):
        self.routes = routes if routes is not None else hand_routes()
        self.requests: list[httpx.Request] = []
        self.issued: list[str] = []
        self.valid: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/auth/token":
            assert request.method == "POST"
            assert request.headers["content-type"] == "application/x-www-form-urlencoded"
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            if form != {
                "grant_type": "client_credentials",
                "client_id": "reportbot-app",
                "client_secret": SECRET,
                "scope": "all",
            }:
                return httpx.Response(401, json=fx("auth", "invalid_client"))
            token = f"tok-{len(self.issued) + 1}"
            self.issued.append(token)
            self.valid.add(token)
            return httpx.Response(200, json={**fx("auth", "token"), "access_token": token})
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        key = request.url.path
        if key == "/api/Tickets":
            key += "?open" if request.url.params.get("open_only") == "true" else "?closed"
        if key not in self.routes:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        body = self.routes[key]
        return body(request) if callable(body) else httpx.Response(200, json=body)

    def queries(self, path: str) -> list[dict[str, str]]:
        return [
            {k: v[0] for k, v in parse_qs(urlsplit(str(r.url)).query).items()}
            for r in self.requests
            if r.url.path == path
        ]


def hand_routes() -> dict[str, Any]:
    return {
        "/api/Client/48": fx("hand", "client"),
        "/api/Client": fx("hand", "clients"),
        "/api/Priority": fx("hand", "priority"),
        "/api/Tickets?open": fx("hand", "tickets_open"),
        "/api/Tickets?closed": fx("hand", "tickets_closed"),
    }


def source(**opts: Any) -> SourceConfig:
    return SourceConfig(
        type="halo",
        url="https://northwind.halopsa.test",
        client_id="reportbot-app",
        client_secret=SECRET,
        change_ticket_type_id=3,
        **opts,
    )


def connector(handler: Callable[[httpx.Request], httpx.Response], **opts: Any) -> HaloConnector:
    ctx = ConnectorContext(
        client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(handler)), sleep=RecordingSleep()
    )
    return HaloConnector("halo", source(**opts), ctx)


def wonka(cid: str = "48") -> CustomerConfig:
    return CustomerConfig(code="WONKA", name="Wonka Confectionery", ids={"halo": cid})


# ---- auth ---------------------------------------------------------------------------------


async def test_token_is_requested_once_with_the_documented_form_and_reused():
    api = HaloApi()
    con = connector(api, tenant="northwind")
    period = week_containing(WEEK, "Europe/London")
    try:
        await con.fetch_section("tickets", wonka(), period, Targets())
        await con.fetch_section("changes", wonka(), period, Targets())
        await con.fetch_section("tickets", wonka(), previous_period(period), Targets())
    finally:
        await con.aclose()
    tokens = [r for r in api.requests if r.url.path == "/auth/token"]
    assert len(tokens) == 1 and tokens[0].url.params["tenant"] == "northwind"
    assert str(tokens[0].url).startswith("https://northwind.halopsa.test/auth/token")
    assert {r.headers["authorization"] for r in api.requests if r.url.path.startswith("/api/")} == {"Bearer tok-1"}


async def test_token_renewed_60s_before_expiry():
    api = HaloApi()
    now = [1000.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        client = HaloClient(
            HttpSource("halo", http),
            "https://h.test/api",
            "https://h.test/auth",
            client_id="reportbot-app",
            client_secret=SECRET,
            clock=lambda: now[0],
        )
        assert await client.token() == "tok-1"
        now[0] += 3600 - 61
        assert await client.token() == "tok-1"
        now[0] += 2  # 59 s before expiry
        assert await client.token() == "tok-2"
    assert client.tokens_issued == 2


async def test_a_401_renews_the_token_once_then_gives_up():
    api = HaloApi()
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        client = HaloClient(
            HttpSource("halo", http),
            "https://h.test/api",
            "https://h.test/auth",
            client_id="reportbot-app",
            client_secret=SECRET,
        )
        assert len(await client.priorities()) == 5
        api.valid.clear()  # revoked early, e.g. the API application's secret was rotated
        assert len(await client.priorities()) == 5
        assert api.issued == ["tok-1", "tok-2"]
        api.valid.clear()
        api.routes["/api/Priority"] = lambda r: httpx.Response(401)  # still refused with a fresh token
        with pytest.raises(SourceAuthError, match="GET /api/Priority was refused: HTTP 401"):
            await client.priorities()
    assert api.issued == ["tok-1", "tok-2", "tok-3"]


async def test_wrong_secret_is_halos_oauth_error_and_never_shows_the_secret():
    con = HaloConnector(
        "halo",
        SourceConfig(
            type="halo",
            url="https://northwind.halopsa.test",
            client_id="reportbot-app",
            client_secret="wrong-secret-value",
        ),
        ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(HaloApi()))),
    )
    try:
        with pytest.raises(SourceAuthError) as err:
            await con.probe()
    finally:
        await con.aclose()
    assert str(err.value) == "halo: POST /auth/token was refused: HTTP 401 — invalid_client"
    assert "wrong-secret" not in str(err.value)


async def test_oauth_400_invalid_client_is_still_a_credential_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_client", "error_description": "unknown client"})

    con = connector(handler)
    try:
        with pytest.raises(SourceAuthError, match="credentials were refused — invalid_client: unknown client"):
            await con.probe()
    finally:
        await con.aclose()


def test_error_body_parser():
    assert halo_error_message(httpx.Response(401, json={"error": "invalid_client"})) == "invalid_client"
    assert halo_error_message(httpx.Response(500, json=fx("errors", "server_error"))) == "An error has occurred."
    assert halo_error_message(httpx.Response(500, json="Object reference not set")) == "Object reference not set"


# ---- paging and transport faults ---------------------------------------------------------


async def test_capped_page_size_pages_to_record_count():
    pages = {k: fx("paged", f"tickets.page{k}") for k in (1, 2, 3)}
    api = HaloApi({"/api/Tickets?closed": lambda r: httpx.Response(200, json=pages[int(r.url.params["page_no"])])})
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        client = HaloClient(
            HttpSource("halo", http),
            "https://h.test/api",
            "https://h.test/auth",
            client_id="reportbot-app",
            client_secret=SECRET,
            page_size=100,
        )
        rows = await client.tickets_closed_since(48, datetime(2026, 11, 9, tzinfo=UTC))
    assert [r["id"] for r in rows] == [3000, 3001, 3002, 3003, 3004]
    qs = api.queries("/api/Tickets")
    assert [q["page_no"] for q in qs] == ["1", "2", "3"]
    assert {
        (q["pageinate"], q["page_size"], q["client_id"], q["closed_only"], q["datesearch"], q["startdate"]) for q in qs
    } == {("true", "100", "48", "true", "datecleared", "2026-11-09T00:00:00")}


async def test_pages_that_do_not_add_up_are_an_error_not_a_partial_list():
    pages = {
        1: fx("paged", "tickets.page1"),
        2: fx("paged", "tickets.page2"),
        3: {**fx("paged", "tickets.page3"), "tickets": []},
    }
    api = HaloApi({"/api/Tickets?open": lambda r: httpx.Response(200, json=pages[int(r.url.params["page_no"])])})
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        client = HaloClient(
            HttpSource("halo", http),
            "https://h.test/api",
            "https://h.test/auth",
            client_id="reportbot-app",
            client_secret=SECRET,
        )
        with pytest.raises(SourceDataError, match="record_count is 5 but the pages hold 4"):
            await client.open_tickets(48)


async def test_429_with_retry_after_and_a_5xx_burst_are_absorbed():
    answers = [
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(500, json=fx("errors", "server_error")),
        httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"}),
    ]
    routes = hand_routes()
    routes["/api/Priority"] = lambda r: answers.pop(0) if answers else httpx.Response(200, json=fx("hand", "priority"))
    sleep = RecordingSleep()
    con = HaloConnector(
        "halo",
        source(),
        ConnectorContext(
            client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(HaloApi(routes))), sleep=sleep
        ),
    )
    try:
        tickets = await con.fetch_section("tickets", wonka(), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()
    assert tickets.opened == 5
    assert sleep.waits[0] == 3.0 and len(sleep.waits) == 3


async def test_timeout_and_html():
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    con = connector(hang, max_attempts=2, request_timeout_seconds=0.5)
    try:
        with pytest.raises(SourceUnavailable, match=r"POST /auth/token: no answer within 0.5 s \(after 2 attempts\)"):
            await con.probe()
    finally:
        await con.aclose()
    con = connector(
        lambda r: httpx.Response(
            200, text="<html><body>Sign in to Halo</body></html>", headers={"content-type": "text/html"}
        )
    )
    try:
        with pytest.raises(SourceDataError, match="POST /auth/token answered HTTP 200 with an HTML page, not JSON"):
            await con.probe()
    finally:
        await con.aclose()


# ---- the mapper against a hand computation -----------------------------------------------


async def read_week(con: HaloConnector) -> tuple[Tickets, Changes]:
    """The tickets and changes sections of the week of 9–16 Nov 2026 (London) for WONKA, then close."""
    period = week_containing(WEEK, "Europe/London")
    try:
        tickets = await con.fetch_section("tickets", wonka(), period, Targets())
        changes = await con.fetch_section("changes", wonka(), period, Targets())
    finally:
        await con.aclose()
    assert isinstance(tickets, Tickets) and isinstance(changes, Changes)
    return tickets, changes


async def test_hand_computed_week():
    """Eleven vendor tickets (fixtures/halo/hand), the week of 9–16 Nov 2026 (London = UTC):

    opened: 2001 Medium, 2002 Low, 2101 High, 2103 "P3 - Business" (SLA 2), 2107 Low = 5
    (2004 was opened after the week; 2105 is a change).
    closed in the week: 2101 (slastate I), 2102 (O), 2103 (no slastate: closed 09:00 > fixbydate
    08:00 → missed), 2107 (I — Halo moved nothing but says in; its verdict wins) = 4, met 2 → 50 %.
    open at the end: 2001, 2002, 2003, 2104 (closed after the end) = 4; past fixbydate: 2001,
    2104; 2003 is excluded from SLA → 2. breaches = 2 + 2 = 4. Changes: 2105. 2106 closed
    before the week (inside the 24 h margin of the query) counts nowhere.
    """
    api = HaloApi()
    tickets, changes = await read_week(connector(api))
    # waiting None: no waiting_status_ids configured, so the report cannot say what waits on the customer
    assert tickets == Tickets(
        opened=5,
        closed=4,
        backlog=4,
        sla_breaches=4,
        sla_attainment_pct=50.0,
        by_priority={"High": 1, "Low": 2, "Medium": 1, "P3 - Business": 1},
        waiting=None,
    )
    assert changes.planned == ()
    assert isinstance(changes, Changes) and [(c.id, c.title) for c in changes.items] == [
        ("2105", "Firmware update on wonka-head-fi01")
    ]
    assert changes.items[0].closed_at == datetime(2026, 11, 10, 11, tzinfo=UTC)
    # both sections from one read: each ticket query once
    assert len(api.queries("/api/Tickets")) == 2
    closed_q = next(q for q in api.queries("/api/Tickets") if q.get("closed_only"))
    assert closed_q["startdate"] == "2026-11-08T00:00:00"  # start − 24 h margin


async def test_on_hold_tickets_follow_halos_hold_time_not_arithmetic():
    """Must-show 2, Halo (fixtures/halo/onhold, week 9–16 Nov 2026): opened in the week 2201–2205,
    2301, 2302 = 7. Open at the end: 2201–2205 and 2302 (closed after the end) = 6. 2201 and 2202
    are on hold now (clock stopped, fixbydate not yet moved): not breaches although fixbydate is
    past; 2205 went on hold after breaching (slastate "O"): a breach; 2203 is past fixbydate and
    not on hold: a breach; 2204 is due after the end. 2302 was held 72 h, so Halo moved its
    fixbydate to 17 Nov: not a breach at the end although dateoccurred + 24 h was 14 Nov.
    Closed in the week: 2301 (slastate I) → 100 %. breaches = 2 (arithmetic alone: 5)."""
    routes = hand_routes()
    routes["/api/Tickets?open"] = fx("onhold", "tickets_open")
    routes["/api/Tickets?closed"] = fx("onhold", "tickets_closed")
    con = connector(HaloApi(routes))
    try:
        tickets = await con.fetch_section("tickets", wonka(), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()
    got = (tickets.opened, tickets.closed, tickets.backlog, tickets.sla_breaches, tickets.sla_attainment_pct)
    assert got == (7, 1, 6, 2, 100.0)


async def test_waiting_on_the_customer_and_planned_changes_follow_the_configured_status_and_start_date():
    """status_id 4 is configured as "waiting on the customer": 2205, 2201, 2202 (open, status 4)
    wait on them, oldest opened first; an open change (tickettype 3) whose startdate is in the next week
    is planned, one whose startdate is in the reported week is not."""
    routes = hand_routes()
    open_rows = fx("onhold", "tickets_open")
    rows = open_rows["tickets"] if isinstance(open_rows, dict) else open_rows
    base = copy.deepcopy(rows[0])
    for tid, start in ((2401, "2026-11-18T21:00:00"), (2402, "2026-11-12T21:00:00")):
        rows.append(
            base
            | {
                "id": tid,
                "summary": f"Change {tid}",
                "tickettype_id": 3,
                "status_id": 2,
                "onhold": False,
                "startdate": start,
            }
        )
    if isinstance(open_rows, dict):
        open_rows["record_count"] = len(rows)
    routes["/api/Tickets?open"] = open_rows
    routes["/api/Tickets?closed"] = fx("onhold", "tickets_closed")
    tickets, changes = await read_week(connector(HaloApi(routes), waiting_status_ids=[4]))
    assert tickets.waiting is not None
    assert [(w.id, w.status) for w in tickets.waiting] == [
        ("2205", "status 4"),
        ("2201", "status 4"),
        ("2202", "status 4"),
    ]
    assert [(c.id, c.start) for c in changes.planned] == [("2401", datetime(2026, 11, 18, 21, tzinfo=UTC))]


@pytest.mark.parametrize("field", ["dateoccurred", "tickettype_id", "summary"])
async def test_a_missing_field_names_itself_and_gives_no_numbers(field):
    routes = hand_routes()
    body = fx("hand", "tickets_closed")
    for t in body["tickets"]:
        t.pop(field)
    routes["/api/Tickets?closed"] = body
    con = connector(HaloApi(routes))
    try:
        with pytest.raises(SourceDataError, match=f"field '{field}' is missing"):
            await con.fetch_section("tickets", wonka(), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()


async def test_unknown_client_and_missing_change_type():
    routes = hand_routes()
    routes["/api/Client/77"] = lambda r: httpx.Response(404, json={"message": "Client not found"})
    con = connector(HaloApi(routes))
    try:
        with pytest.raises(SourceDataError, match=r"no client with id 77 \(customers.ids.halo\)"):
            await con.fetch_section("tickets", wonka("77"), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()
    con = HaloConnector(
        "halo",
        SourceConfig(
            type="halo", url="https://h.test", client_id="x", client_secret="y", change_ticket_type_id="Change Request"
        ),
        ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(HaloApi()))),
    )
    try:
        with pytest.raises(SourceDataError, match="take ticket type ids"):
            await con.fetch_section("tickets", wonka(), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()
    con = HaloConnector(
        "halo",
        SourceConfig(type="halo", url="https://h.test", client_id="x", client_secret="y"),
        ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(HaloApi()))),
    )
    try:
        with pytest.raises(SourceDataError, match="sources.halo.change_ticket_type_id is not set"):
            await con.fetch_section("changes", wonka(), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()


# ---- over HTTP against the simulator -----------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return SandboxDataset(ANCHOR)


def customer_dict(c: Any) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "timezone": c.timezone,
        "ids": {"halo": c.ids["halo"]},
        "sources": {"tickets": "halo", "changes": "halo"},
    }


async def oracle(dataset: SandboxDataset, c: Any, section: str, period: Any) -> Any:
    o = SandboxConnector("halo", SourceConfig(type="sandbox", system="halo"), ConnectorContext(sandbox=dataset))
    return await o.fetch_section(
        section, CustomerConfig(code=c.code, name=c.name, ids={"halo": c.ids["halo"]}), period, Targets()
    )


async def test_equals_the_oracle_for_every_customer_three_weeks(dataset):
    customers = dataset.customers_in("halo")
    assert {c.code for c in customers} == {"WONKA", "CYBERDYNE", "TYRELL", "SOYLENT", "MASSIVE"}
    async with HaloSimulator(dataset) as sim:
        con = HaloConnector("halo", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            for c in customers:
                cust = CustomerConfig(code=c.code, name=c.name, ids={"halo": c.ids["halo"]})
                period = week_containing(WEEK, c.timezone)
                for _ in range(3):
                    before = len(sim.log)
                    for section in ("tickets", "changes"):
                        try:
                            want = await oracle(dataset, c, section, period)
                        except SourceDataError:  # TYRELL before onboarding: no data, in both
                            with pytest.raises(SourceDataError, match="was created in HaloPSA on 2026-11-09"):
                                await con.fetch_section(section, cust, period, Targets())
                            continue
                        assert await con.fetch_section(section, cust, period, Targets()) == want, (
                            c.code,
                            period.end,
                            section,
                        )
                    if c.code != "TYRELL" or period.start >= dataset.gen("TYRELL").onboarded:
                        pages = [p for _, p in sim.log[before:] if p.startswith("/api/Tickets")]
                        assert len(pages) >= 3, f"{c.code} should need several pages"
                    period = previous_period(period)
        finally:
            await con.aclose()
    assert sim.token_requests == 1


async def test_a_batch_reads_the_whole_tenant_once_and_equals_the_oracle(dataset):
    """Five clients in the batch: clients, open tickets and tickets closed since the start are
    read once for the tenant and split by client_id — the same numbers, far fewer requests."""
    customers = dataset.customers_in("halo")
    async with HaloSimulator(dataset) as sim:
        con = HaloConnector("halo", SourceConfig(**sim.source_config()), ConnectorContext(customers={"halo": 5}))
        assert con.tenant_wide
        try:
            period_of = {c.code: week_containing(WEEK, c.timezone) for c in customers}
            for c in customers:
                cust = CustomerConfig(code=c.code, name=c.name, ids={"halo": c.ids["halo"]})
                for section in ("tickets", "changes"):
                    assert await con.fetch_section(section, cust, period_of[c.code], Targets()) == await oracle(
                        dataset, c, section, period_of[c.code]
                    ), (c.code, section)
        finally:
            await con.aclose()
    ticket_reads = [p for _, p in sim.log if p.startswith("/api/Tickets")]
    assert not any("client_id=" in p for p in ticket_reads)
    assert not any(p.startswith("/api/Client/") for _, p in sim.log)  # no per-client reads
    first_pages = [p for p in ticket_reads if "page_no=1&" in p or p.endswith("page_no=1")]
    days = {(p.start - timedelta(hours=24)).astimezone(UTC).date() for p in period_of.values()}
    assert len(first_pages) == 1 + len(days) < 1 + len(customers)  # open once; closed-since once per UTC day


async def test_fault_matrix_tickets_massive(dataset):
    c = next(c for c in dataset.customers_in("halo") if c.code == "MASSIVE")
    period = week_containing(WEEK, c.timezone)
    async with HaloSimulator(dataset) as sim:
        await run_fault_matrix(
            sim,
            HaloConnector,
            "tickets",
            customer_dict(c),
            period,
            await oracle(dataset, c, "tickets", period),
            bad_credentials={"client_secret": "not-the-secret"},
            page_marker="page_no=",
            drift="dateoccurred>date_occurred",
        )


async def test_fault_matrix_changes_soylent(dataset):
    c = next(c for c in dataset.customers_in("halo") if c.code == "SOYLENT")
    period = week_containing(WEEK, c.timezone)
    async with HaloSimulator(dataset) as sim:
        await run_fault_matrix(
            sim,
            HaloConnector,
            "changes",
            customer_dict(c),
            period,
            await oracle(dataset, c, "changes", period),
            bad_credentials={"client_id": "someone-else"},
            page_marker="page_no=",
            drift="dateclosed>date_closed",
        )


async def test_planted_massive_sla_soylent_changes(dataset):
    by_code = {c.code: c for c in dataset.customers_in("halo")}
    massive, soylent = by_code["MASSIVE"], by_code["SOYLENT"]
    async with HaloSimulator(dataset) as sim:
        m = await collect_one(
            sim, HaloConnector, "tickets", customer_dict(massive), week_containing(WEEK, massive.timezone)
        )
        s = await collect_one(
            sim, HaloConnector, "changes", customer_dict(soylent), week_containing(WEEK, soylent.timezone)
        )
    assert m.section.ok and s.section.ok
    assert isinstance(m.section.data, Tickets) and m.section.data.sla_attainment_pct < 90.0
    assert "sla_below_target" in [
        f.code for f in compute_flags({"tickets": m.section}, None, Thresholds(), massive.timezone)
    ]
    assert isinstance(s.section.data, Changes) and s.section.data.count == 40 and len(s.section.data.items) == 40
    closed_pages = [p for _, p in s.requests if "closed_only=true" in p]
    assert len(closed_pages) >= 8  # 40 changes and the week's tickets, five per page


async def test_tyrell_onboarded_this_week_has_no_earlier_week(dataset):
    c = next(c for c in dataset.customers_in("halo") if c.code == "TYRELL")
    this = week_containing(WEEK, c.timezone)
    async with HaloSimulator(dataset) as sim:
        now = await collect_one(sim, HaloConnector, "tickets", customer_dict(c), this)
        before = await collect_one(sim, HaloConnector, "tickets", customer_dict(c), previous_period(this))
    assert now.section.ok and now.section.data == await oracle(dataset, c, "tickets", this)
    assert before.section.status == "unavailable" and "was created in HaloPSA on 2026-11-09" in before.section.error


@pytest.mark.parametrize(
    ("code", "week_end", "start_utc"),
    [
        ("CYBERDYNE", date(2026, 10, 26), datetime(2026, 10, 18, 23, tzinfo=UTC)),  # London: BST ends 25 Oct → 169 h
        ("MASSIVE", date(2026, 11, 2), datetime(2026, 10, 26, 7, tzinfo=UTC)),  # Los Angeles: PDT ends 1 Nov → 169 h
    ],
)
@pytest.mark.parametrize("margin", [24, 0])
async def test_dst_weeks_send_the_exact_bound_and_match_the_oracle(dataset, code, week_end, start_utc, margin):
    c = next(c for c in dataset.customers_in("halo") if c.code == code)
    period = week_containing(week_end - timedelta(days=1), c.timezone)
    assert period.hours == 169 and period.start.astimezone(UTC) == start_utc
    async with HaloSimulator(dataset) as sim:
        out = await collect_one(
            sim, HaloConnector, "tickets", customer_dict(c), period, {"closed_since_margin_hours": margin}
        )
    assert out.section.ok, out.section.error
    assert out.section.data == await oracle(dataset, c, "tickets", period)
    sent = {parse_qs(urlsplit(p).query)["startdate"][0] for _, p in out.requests if "closed_only=true" in p}
    assert sent == {halo_date(start_utc - timedelta(hours=margin))}
    assert halo_date(start_utc) == start_utc.strftime("%Y-%m-%dT%H:%M:%S")


async def test_tokens_revoked_mid_batch_are_renewed(dataset):
    c = next(c for c in dataset.customers_in("halo") if c.code == "WONKA")
    cust = CustomerConfig(code=c.code, name=c.name, ids={"halo": c.ids["halo"]})
    period = week_containing(WEEK, c.timezone)
    async with HaloSimulator(dataset) as sim:
        con = HaloConnector("halo", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            first = await con.fetch_section("tickets", cust, period, Targets())
            sim.expire_tokens()
            again = await con.fetch_section("tickets", cust, previous_period(period), Targets())
        finally:
            await con.aclose()
    assert first == await oracle(dataset, c, "tickets", period)
    assert again == await oracle(dataset, c, "tickets", previous_period(period))
    assert sim.token_requests == 2


async def test_probe_and_customer_records_over_http(dataset):
    async with HaloSimulator(dataset) as sim:
        con = HaloConnector("halo", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            assert await con.probe() == "HaloPSA API, 5 clients"
            records = await con.customer_records()
        finally:
            await con.aclose()
    assert sorted(r.id for r in records) == sorted(c.ids["halo"] for c in dataset.customers_in("halo"))


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    period = week_containing(WEEK, "Europe/London")

    async def run(patch: Any) -> Any:
        routes = {k: patch(k, copy.deepcopy(v)) for k, v in hand_routes().items()}
        con = connector(HaloApi(routes))
        try:
            return (
                await con.fetch_section("tickets", wonka(), period, Targets()),
                await con.fetch_section("changes", wonka(), period, Targets()),
            )
        finally:
            await con.aclose()

    ticket_fields = [
        "id",
        "dateoccurred",
        "summary",
        "tickettype_id",
        "priority_id",
        "sla_id",
        "fixbydate",
        "dateclosed",
        "excludefromsla",
        "slastate",
        "onhold",
    ]
    outcomes = await check_renamed_fields(
        run,
        {
            "/api/Tickets?open": lambda b: b["tickets"],
            "/api/Tickets?closed": lambda b: b["tickets"],
            "/api/Client/48": lambda b: [b],
            "/api/Priority": lambda b: b,
        },
        {
            "/api/Tickets?open": [f for f in ticket_fields if f != "dateclosed"],
            "/api/Tickets?closed": [f for f in ticket_fields if f != "onhold"],
            "/api/Client/48": ["datecreated"],
            "/api/Priority": ["slaid", "priorityid", "name"],
        },
    )
    assert sum(v == "unavailable" for v in outcomes.values()) >= 24

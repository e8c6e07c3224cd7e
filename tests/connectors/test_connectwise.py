"""ConnectWise PSA: client against httpx.MockTransport and vendor-shaped fixtures, the mapper
against a hand computation, and the connector over HTTP against its loopback simulator — the
fault matrix, equality with the in-process sandbox (the oracle) for every ConnectWise customer
over three weeks, DST weeks and the planted UMBRELLA scenario."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors.base import ConnectorContext, SourceAuthError, SourceDataError, SourceUnavailable
from connectors.connectwise.client import ConnectWiseClient, cw_date, cw_error_message, cw_string, parse_link
from connectors.connectwise.connector import ConnectWiseConnector
from connectors.connectwise.simulator import ConditionError, ConnectWiseSimulator, parse_conditions, top_equalities
from connectors.http import HttpSource, RetryPolicy
from connectors.sandbox.dataset import SandboxDataset
from connectors.sandbox.inprocess import SandboxConnector
from reporting.config import CustomerConfig, SourceConfig, Thresholds
from reporting.deltas import compute_flags
from reporting.models import Changes, Targets, Tickets
from reporting.period import previous_period, week_containing
from tests.connectors.drift import check_renamed_fields
from tests.connectors.matrix import RecordingSleep, collect_one, run_fault_matrix

FIX = Path(__file__).parent.parent / "fixtures" / "connectwise"
ANCHOR = date(2026, 11, 16)
WEEK = date(2026, 11, 10)
BASE = "https://cw.test/v4_6_release/apis/3.0"
CREDS = {
    "company_id": "northwind",
    "public_key": "pubKEY1",
    "private_key": "s3cret-private",
    "client_id": "0f6a3b3c-client-guid",
}


def fx(scenario: str, name: str) -> Any:
    return json.loads((FIX / scenario / f"{name}.json").read_text())


class CwApi:
    """A MockTransport handler: serves list endpoints a page at a time with CW's Link header
    (pointing at an internal host name, as proxied sites do), checks the auth headers on every
    request, records what was asked, and fails the test on any request it was not told about."""

    def __init__(self, routes: dict[str, Any], link_host: str = "https://SERVERNAME"):
        self.routes = routes
        self.link_host = link_host
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        expected = base64.b64encode(b"northwind+pubKEY1:s3cret-private").decode()
        assert request.headers["authorization"] == f"Basic {expected}"
        assert request.headers["clientid"] == CREDS["client_id"]
        path = request.url.path
        assert path.startswith("/v4_6_release/apis/3.0/"), f"unexpected request {request.method} {request.url}"
        route = path[len("/v4_6_release/apis/3.0") :]
        if route not in self.routes:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        body = self.routes[route]
        if callable(body):
            return body(request)
        if not isinstance(body, list):
            return httpx.Response(200, json=body)
        size = int(request.url.params.get("pageSize", "25"))
        page = int(request.url.params.get("page", "1"))
        last = max(1, -(-len(body) // size))
        headers = {}
        if page < last:

            def link(p: int, rel: str) -> str:
                return f'<{self.link_host}/v4_6_release/apis/3.0{route}?pageSize={size}&page={p}>; rel="{rel}"'

            headers["Link"] = f"{link(page + 1, 'next')}, {link(last, 'last')}"
        return httpx.Response(200, json=body[(page - 1) * size : page * size], headers=headers)

    def queries(self, route: str) -> list[dict[str, str]]:
        return [
            {k: v[0] for k, v in parse_qs(urlsplit(str(r.url)).query).items()}
            for r in self.requests
            if r.url.path.endswith(route)
        ]


def hand_routes(tickets: str = "hand") -> dict[str, Any]:
    return {
        "/company/companies": fx("hand", "company_companies"),
        "/service/tickets": fx(tickets, "service_tickets"),
        "/service/SLAs": fx("hand", "service_SLAs"),
        "/service/SLAs/1/priorities": fx("hand", "service_SLAs_1_priorities"),
        "/service/SLAs/2/priorities": fx("hand", "service_SLAs_2_priorities"),
        "/system/info": fx("hand", "system_info"),
    }


def connector(handler: Callable[[httpx.Request], httpx.Response], **opts: Any) -> ConnectWiseConnector:
    source = SourceConfig(type="connectwise", url=BASE, **{**CREDS, "page_size": 3, **opts})
    ctx = ConnectorContext(
        client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(handler)), sleep=RecordingSleep()
    )
    return ConnectWiseConnector("connectwise", source, ctx)


def acme(**kw: Any) -> CustomerConfig:
    return CustomerConfig(code="ACME", name="Acme Manufacturing", ids={"connectwise": kw.pop("cid", "251")}, **kw)


# ---- the query language and the wire helpers ---------------------------------------------


def test_literals_and_link_header():
    assert cw_date(datetime(2026, 10, 18, 23, 0, tzinfo=UTC)) == "[2026-10-18T23:00:00Z]"
    assert cw_string("ACME") == '"ACME"'
    with pytest.raises(SourceDataError, match="no escape"):
        cw_string('AC"ME')
    links = parse_link('<https://x/a?page=2&pageSize=3>; rel="next", <https://x/a?page=9&pageSize=3>; rel="last"')
    assert links == {"next": "https://x/a?page=2&pageSize=3", "last": "https://x/a?page=9&pageSize=3"}
    assert parse_link(None) == {}


def test_error_body_parser():
    resp = httpx.Response(401, json=fx("errors", "unauthorized"))
    assert cw_error_message(resp) == "ConnectWiseApi: An exception has been thrown. (UserNotAuthenticated)"
    resp = httpx.Response(400, json=fx("errors", "invalid_condition"))
    assert cw_error_message(resp) == "InvalidObject: conditions is invalid (Unknown field companyy/id in conditions)"
    assert cw_error_message(httpx.Response(500, text="<html>")) is None


def test_simulator_conditions_grammar():
    row = {
        "id": 7,
        "company": {"identifier": "ACME"},
        "closedFlag": False,
        "summary": "VPN down",
        "_info": {"dateEntered": "2026-11-10T09:00:00Z"},
    }
    known = lambda f: True  # noqa: E731
    assert parse_conditions('company/identifier="acme" and closedFlag=false', known)(row)
    assert (
        parse_conditions(
            "dateEntered<[2026-11-16T00:00:00Z] and (closedFlag=true or closedDate>=[2026-11-09T00:00:00Z])", known
        )(row)
        is False
    )
    assert parse_conditions('summary like "%vpn%" and id in (1, 7)', known)(row)
    assert parse_conditions("not id=8", known)(row)
    with pytest.raises(ConditionError):
        parse_conditions("id = ", known)
    # what the simulator may use its company index for: conjuncts every match satisfies
    assert top_equalities("company/id=251 and (closedFlag=false or id=3)") == {"company/id": 251}
    assert top_equalities("company/id=251 and closedFlag=false or id=3") == {}
    assert top_equalities("not company/id=251 and id=3") == {"id": 3}
    with pytest.raises(ConditionError, match="Unknown field"):
        parse_conditions("idd=1", lambda f: f == "id")


# ---- the client against MockTransport ----------------------------------------------------


async def test_every_request_authenticates_and_pages_concurrently_on_our_host():
    pages = [fx("paged", f"company_companies.page{k}") for k in (1, 2, 3)]
    api = CwApi({"/company/companies": [c for p in pages for c in p]})
    con = connector(api, page_size=2)
    try:
        records = await con.customer_records()
    finally:
        await con.aclose()
    assert [r.id for r in records] == ["251", "252", "253", "254", "255"]
    assert [r.url.host for r in api.requests] == ["cw.test"] * 3  # never the Link's internal host
    assert [q["page"] for q in api.queries("/company/companies")] == ["1", "2", "3"]
    assert {q["pageSize"] for q in api.queries("/company/companies")} == {"2"}
    assert api.queries("/company/companies")[0]["conditions"] == "deletedFlag=false"


async def test_forward_only_paging_follows_next_to_the_end():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(dict(request.url.params))
        page_id = int(request.url.params.get("pageId", "0"))
        rows = [r for r in ({"id": i} for i in range(1, 6)) if r["id"] > page_id][:2]
        headers = {}
        if rows and rows[-1]["id"] < 5:
            headers["Link"] = (
                f'<https://SERVERNAME/v4_6_release/apis/3.0/x?pageSize=2&pageId={rows[-1]["id"]}>; rel="next"'
            )
        return httpx.Response(200, json=rows, headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = ConnectWiseClient(HttpSource("connectwise", http), BASE, page_size=2, **CREDS)
        assert [r["id"] for r in await client.get_all("/x")] == [1, 2, 3, 4, 5]
    assert [c.get("pageId") for c in calls] == [None, "2", "4"]


async def test_a_link_loop_is_an_error_not_a_hang():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"id": 1}], headers={"Link": '<https://x/y?page=1&pageSize=1>; rel="next"'})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = ConnectWiseClient(HttpSource("connectwise", http), BASE, page_size=1, **CREDS)
        with pytest.raises(SourceDataError, match="paging loop"):
            await client.get_all("/y")


async def test_refused_credentials_name_the_cause_and_never_the_key():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json=fx("errors", "unauthorized"))

    con = connector(handler)
    try:
        with pytest.raises(SourceAuthError) as err:
            await con.probe()
    finally:
        await con.aclose()
    assert str(err.value) == (
        "connectwise: GET /v4_6_release/apis/3.0/system/info was refused: HTTP 401 — ConnectWiseApi: An exception "
        "has been thrown. (UserNotAuthenticated)"
    )
    assert "s3cret" not in str(err.value)


async def test_429_retry_after_then_5xx_burst_then_success():
    answers = [
        httpx.Response(
            429, headers={"Retry-After": "2"}, json={"code": "TooManyRequests", "message": "slow down", "errors": []}
        ),
        httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"}),
        httpx.Response(503, json={"code": "ServiceUnavailable", "message": "try later", "errors": []}),
    ]
    api = CwApi(hand_routes())
    inner = api.routes["/system/info"]
    api.routes["/system/info"] = lambda r: answers.pop(0) if answers else httpx.Response(200, json=inner)
    sleep = RecordingSleep()
    source = SourceConfig(type="connectwise", url=BASE, **CREDS)
    con = ConnectWiseConnector(
        "connectwise",
        source,
        ConnectorContext(client_factory=lambda s: httpx.AsyncClient(transport=httpx.MockTransport(api)), sleep=sleep),
    )
    try:
        assert await con.probe() == "ConnectWise PSA v2025.1.100234 (cloud)"
    finally:
        await con.aclose()
    assert sleep.waits[0] == 2.0 and len(sleep.waits) == 3


async def test_timeout_and_html_become_unavailable_and_data_errors():
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    con = connector(hang, max_attempts=2, request_timeout_seconds=0.5)
    try:
        with pytest.raises(SourceUnavailable, match=r"no answer within 0.5 s \(after 2 attempts\)"):
            await con.probe()
    finally:
        await con.aclose()
    con = connector(
        lambda r: httpx.Response(200, text="<!DOCTYPE html><html>login</html>", headers={"content-type": "text/html"})
    )
    try:
        with pytest.raises(SourceDataError, match="HTML page, not JSON"):
            await con.probe()
    finally:
        await con.aclose()


# ---- the mapper against a hand computation -----------------------------------------------


async def test_hand_computed_week():
    """Ten vendor tickets (fixtures/connectwise/hand), numbers worked out by hand:

    opened (entered in the week, not changes): 1001 High, 1003 Medium, 1004 Low, 1006 Medium, 1009 Low = 5.
    closed in the week: 1001 (isInSla), 1002 (not), 1009 (isInSla; no SLA) = 3 → attainment 2/3.
    open at the end: 1003, 1004, 1005 (closed after the end), 1006, 1010 (re-opened) = 5; past
    entered + resolutionHours at the end: 1003 (Medium 24 h), 1005 (Medium), 1010 (Low 72 h) = 3;
    1004 (Low, due Wed) and 1006 (calendar SLA whose all-hours target is after the end) are not.
    breaches = 1 + 3 = 4. Changes (Change Management board) closed in the week: 1007 only.
    """
    api = CwApi(hand_routes())
    con = connector(api)
    period = week_containing(WEEK, "Europe/London")
    try:
        tickets = await con.fetch_section("tickets", acme(), period, Targets(ticket_sla_pct=95.0))
        changes = await con.fetch_section("changes", acme(), period, Targets())
    finally:
        await con.aclose()
    # the hand rows carry no status: what waits on the customer is unknown (None), not "nothing"
    assert tickets == Tickets(
        opened=5,
        closed=3,
        backlog=5,
        sla_breaches=4,
        sla_attainment_pct=pytest.approx(200 / 3),
        by_priority={"High": 1, "Low": 2, "Medium": 2},
        target_pct=95.0,
        waiting=None,
    )
    assert isinstance(changes, Changes) and changes.count == 1
    assert changes.items[0].id == "1007" and changes.items[0].closed_at == datetime(2026, 11, 10, 11, tzinfo=UTC)
    # one read serves both sections: the tickets query went out once (pages of 3: 4 requests)
    queries = api.queries("/service/tickets")
    assert [q["page"] for q in queries] == ["1", "2", "3", "4"]
    assert queries[0]["conditions"] == (
        "company/id=251 and dateEntered<[2026-11-16T00:00:00Z] and "
        "(closedFlag=false or lastUpdated>=[2026-11-09T00:00:00Z])"
    )
    assert len(api.queries("/service/SLAs")) == 1


async def test_change_by_type_and_board_filter_are_configurable():
    api = CwApi(hand_routes())
    con = connector(api, change_board="", change_type="Service Request", boards=["Service Desk"])
    period = week_containing(WEEK, "Europe/London")
    try:
        tickets = await con.fetch_section("tickets", acme(), period, Targets())
        changes = await con.fetch_section("changes", acme(), period, Targets())
    finally:
        await con.aclose()
    # Service Requests (1003, 1004, 1009, 1010) are now the changes, 1009 closed in the week; the
    # Change Management board is out of the tickets section by the board filter, which leaves the
    # incidents: opened 1001, 1006; closed 1001, 1002; open at the end 1005, 1006
    assert [c.id for c in changes.items] == ["1009"]
    assert (tickets.opened, tickets.closed, tickets.backlog) == (2, 2, 2)


async def test_calendar_sla_ticket_open_at_the_end_follows_is_in_sla():
    """1101 runs on a business-hours SLA, its all-hours target (12 Nov 09:00 + 24 h) long past at
    the end: ConnectWise says isInSla = true, so it is not a breach; flipped to false, it is."""
    period = week_containing(WEEK, "Europe/London")
    for in_sla, breaches in ((True, 0), (False, 1)):
        rows = fx("calendar_sla", "service_tickets")
        rows[0]["isInSla"] = in_sla
        routes = hand_routes()
        routes["/service/tickets"] = rows
        con = connector(CwApi(routes))
        try:
            tickets = await con.fetch_section("tickets", acme(), period, Targets())
        finally:
            await con.aclose()
        assert (tickets.backlog, tickets.sla_breaches) == (1, breaches)


async def test_waiting_tickets_with_the_clock_stopped_are_not_breaches():
    """Must-show 2 (fixtures/connectwise/waiting, week 9–16 Nov 2026): ten tickets entered in the
    week. 2001–2004 sit in "Waiting on ..." statuses (the clock stopped before their target):
    isInSla = true, not breaches although dateEntered + resolutionHours is past. 2005, 2006 are
    in progress past their target (isInSla = false): breaches; 2007 went to waiting only after
    its target had passed (isInSla = false): a breach. 2008 (High, entered Sunday 20:00, target
    Monday 04:00) is not. Closed in the week: 2009 missed, 2010 met → attainment 50 %.
    breaches = 2005, 2006, 2007 + 2009 = 4; by arithmetic alone it would be 8."""
    routes = hand_routes()
    routes["/service/tickets"] = fx("waiting", "service_tickets")
    con = connector(CwApi(routes))
    try:
        period = week_containing(WEEK, "Europe/London")
        tickets = await con.fetch_section("tickets", acme(), period, Targets(ticket_sla_pct=95.0))
    finally:
        await con.aclose()
    assert replace(tickets, waiting=()) == Tickets(
        opened=10,
        closed=2,
        backlog=8,
        sla_breaches=4,
        sla_attainment_pct=50.0,
        by_priority={"High": 3, "Low": 2, "Medium": 5},
        target_pct=95.0,
    )
    # "Next week": the open tickets in "Waiting on Client" wait on the customer; "Waiting on Vendor" (2004) does not
    assert tickets.waiting is not None
    assert [(w.id, w.status) for w in tickets.waiting] == [
        (i, "Waiting on Client") for i in ("2001", "2002", "2003", "2007")
    ]
    arithmetic = [t for t in fx("waiting", "service_tickets") if not t["closedFlag"]]
    assert len(arithmetic) == 8  # the open ones; 7 of them are past dateEntered + resolutionHours


async def test_open_tickets_without_a_status_name_leave_waiting_unknown_not_empty():
    """ConnectWise rows with ``status`` renamed away: the tickets' numbers stand, but the report
    cannot say what waits on the customer (None), where an empty list would tell them "nothing"."""
    rows = fx("waiting", "service_tickets")
    for row in rows:
        row["ticketStatus"] = row.pop("status")
    routes = hand_routes()
    routes["/service/tickets"] = rows
    con = connector(CwApi(routes))
    try:
        tickets = await con.fetch_section("tickets", acme(), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()
    assert tickets.waiting is None and (tickets.opened, tickets.backlog) == (10, 8)


async def test_planned_changes_come_from_the_configured_start_field():
    """An open change ticket whose estimatedStartDate falls in the week after the reported one is
    planned; one starting two weeks on is not; a board that stores the start elsewhere says so."""
    period = week_containing(WEEK, "Europe/London")  # 9–16 Nov 2026
    rows = fx("hand", "service_tickets")
    base = next(r for r in rows if r["id"] == 1007)
    for tid, start in ((1011, "2026-11-17T22:00:00Z"), (1012, "2026-11-24T22:00:00Z")):
        row = copy.deepcopy(base) | {
            "id": tid,
            "summary": f"Planned {tid}",
            "closedFlag": False,
            "customStart": start,
            "estimatedStartDate": start,
        }
        del row["closedDate"]
        rows.append(row)
    for opts, field in (({}, "estimatedStartDate"), ({"change_start_field": "customStart"}, "customStart")):
        routes = hand_routes()
        routes["/service/tickets"] = rows
        api = CwApi(routes)
        con = connector(api, **opts)
        try:
            changes = await con.fetch_section("changes", acme(), period, Targets())
        finally:
            await con.aclose()
        assert [(c.id, c.title, c.start) for c in changes.planned] == [
            ("1011", "Planned 1011", datetime(2026, 11, 17, 22, tzinfo=UTC))
        ]
        assert api.queries("/service/tickets")[0]["fields"].split(",")[-1] == field


async def test_identifier_mapping_and_unknown_company():
    routes = hand_routes()
    routes["/company/companies"] = lambda r: httpx.Response(200, json=[])
    api = CwApi(routes)
    con = connector(api, company_key="identifier")
    try:
        with pytest.raises(SourceDataError, match=r"no company with identifier 'ACMEE' \(customers.ids.connectwise\)"):
            await con.fetch_section("tickets", acme(cid="ACMEE"), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()
    assert api.queries("/company/companies")[0]["conditions"] == 'identifier="ACMEE"'
    assert api.queries("/service/tickets")[0]["conditions"].startswith('company/identifier="ACMEE" and ')
    con = connector(CwApi(hand_routes()))
    try:
        with pytest.raises(SourceDataError, match="is not a number"):
            await con.fetch_section("tickets", acme(cid="ACME"), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()


@pytest.mark.parametrize(("field", "path"), [("dateEntered", "_info"), ("isInSla", None), ("closedFlag", None)])
async def test_a_missing_field_names_itself_and_gives_no_numbers(field, path):
    rows = fx("hand", "service_tickets")
    for r in rows:
        (r[path] if path else r).pop(field, None)
    routes = hand_routes()
    routes["/service/tickets"] = rows
    con = connector(CwApi(routes))
    try:
        with pytest.raises(SourceDataError, match=f"field '{'_info.' if path else ''}{field}' is missing"):
            await con.fetch_section("tickets", acme(), week_containing(WEEK, "Europe/London"), Targets())
    finally:
        await con.aclose()


# ---- over HTTP against the simulator -----------------------------------------------------


def customer_dict(c: Any) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "timezone": c.timezone,
        "ids": {"connectwise": c.ids["connectwise"]},
        "sources": {"tickets": "connectwise", "changes": "connectwise"},
    }


async def oracle(dataset: SandboxDataset, c: Any, section: str, period: Any) -> Any:
    o = SandboxConnector(
        "connectwise", SourceConfig(type="sandbox", system="connectwise"), ConnectorContext(sandbox=dataset)
    )
    return await o.fetch_section(
        section, CustomerConfig(code=c.code, name=c.name, ids={"connectwise": c.ids["connectwise"]}), period, Targets()
    )


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    return SandboxDataset(ANCHOR)


async def test_equals_the_oracle_for_every_customer_three_weeks(dataset):
    customers = dataset.customers_in("connectwise")
    assert len(customers) == 8  # seven in the report + the unmapped INITRODE
    async with ConnectWiseSimulator(dataset) as sim:
        source = SourceConfig(**sim.source_config())
        con = ConnectWiseConnector("connectwise", source, ConnectorContext())
        try:
            for c in customers:
                cust = CustomerConfig(code=c.code, name=c.name, ids={"connectwise": c.ids["connectwise"]})
                period = week_containing(WEEK, c.timezone)
                for _ in range(3):
                    before = len(sim.log)
                    for section in ("tickets", "changes"):
                        got = await con.fetch_section(section, cust, period, Targets())
                        assert got == await oracle(dataset, c, section, period), (c.code, period.end, section)
                    pages = [p for _, p in sim.log[before:] if "/service/tickets" in p]
                    assert len(pages) >= 2, f"{c.code} should need several pages"
                    period = previous_period(period)
        finally:
            await con.aclose()


async def test_fault_matrix_tickets_umbrella(dataset):
    c = next(c for c in dataset.customers_in("connectwise") if c.code == "UMBRELLA")
    period = week_containing(WEEK, c.timezone)
    async with ConnectWiseSimulator(dataset) as sim:
        await run_fault_matrix(
            sim,
            ConnectWiseConnector,
            "tickets",
            customer_dict(c),
            period,
            await oracle(dataset, c, "tickets", period),
            bad_credentials={"private_key": "not-the-key"},
            page_marker="/service/tickets",
            drift="dateEntered>dateCreated",
        )


async def test_fault_matrix_changes_acme(dataset):
    c = next(c for c in dataset.customers_in("connectwise") if c.code == "ACME")
    period = week_containing(WEEK, c.timezone)
    async with ConnectWiseSimulator(dataset, page_size=2) as sim:
        await run_fault_matrix(
            sim,
            ConnectWiseConnector,
            "changes",
            customer_dict(c),
            period,
            await oracle(dataset, c, "changes", period),
            bad_credentials={"client_id": "00000000-0000-0000-0000-000000000000"},
            page_marker="/service/tickets",
            drift="closedDate>dateClosed",
        )


async def test_umbrella_ticket_trend_worse(dataset):
    """The planted scenario: +40 % opened and a growing backlog → ``ticket_trend_worse``."""
    c = next(c for c in dataset.customers_in("connectwise") if c.code == "UMBRELLA")
    this = week_containing(WEEK, c.timezone)
    async with ConnectWiseSimulator(dataset) as sim:
        cur = await collect_one(sim, ConnectWiseConnector, "tickets", customer_dict(c), this)
        prev = await collect_one(sim, ConnectWiseConnector, "tickets", customer_dict(c), previous_period(this))
    assert cur.section.ok and prev.section.ok
    now, before = cur.section.data, prev.section.data
    assert isinstance(now, Tickets) and isinstance(before, Tickets)
    assert now.opened >= 1.35 * before.opened and now.backlog > before.backlog
    flags = compute_flags({"tickets": cur.section}, {"tickets": prev.section}, Thresholds(), c.timezone)
    assert [f.code for f in flags] == ["ticket_trend_worse"]


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
    c = next(c for c in dataset.customers_in("connectwise") if c.code == code)
    assert c.timezone == tz
    period = week_containing(week_end.replace(day=week_end.day - 1), tz)
    assert period.hours == 169 and period.end.date() == week_end
    async with ConnectWiseSimulator(dataset) as sim:
        out = await collect_one(sim, ConnectWiseConnector, "tickets", customer_dict(c), period)
    assert out.section.ok, out.section.error
    assert out.section.data == await oracle(dataset, c, "tickets", period)
    sent = [parse_qs(urlsplit(p).query)["conditions"][0] for _, p in out.requests if "/service/tickets" in p]
    assert sent and all(
        s == f"company/id={c.ids['connectwise']} and dateEntered<[{end_utc}] and "
        f"(closedFlag=false or lastUpdated>=[{start_utc}])"
        for s in sent
    )


async def test_period_before_the_company_was_entered_is_unavailable(dataset):
    c = next(c for c in dataset.customers_in("connectwise") if c.code == "WAYNE")
    g = dataset.gen("WAYNE")
    period = week_containing(g.onboarded.date(), c.timezone)
    period = previous_period(period)
    async with ConnectWiseSimulator(dataset) as sim:
        out = await collect_one(sim, ConnectWiseConnector, "tickets", customer_dict(c), period)
    assert out.section.status == "unavailable"
    assert "was entered in ConnectWise on" in out.section.error and "customers.ids" not in out.section.error
    with pytest.raises(SourceDataError):
        await oracle(dataset, c, "tickets", period)


async def test_probe_and_customer_records_over_http(dataset):
    async with ConnectWiseSimulator(dataset) as sim:
        con = ConnectWiseConnector("connectwise", SourceConfig(**sim.source_config()), ConnectorContext())
        try:
            assert await con.probe() == "ConnectWise PSA v2025.1.100234 (cloud)"
            records = await con.customer_records()
        finally:
            await con.aclose()
    assert {r.id for r in records} == {c.ids["connectwise"] for c in dataset.customers_in("connectwise")}
    assert "Initrode Ltd" in {r.name for r in records}


async def test_sim_refuses_a_bad_condition_with_the_cw_error_body(dataset):
    async with ConnectWiseSimulator(dataset) as sim:
        cfg = sim.source_config()
        async with httpx.AsyncClient() as http:
            client = ConnectWiseClient(
                HttpSource("connectwise", http, retry=RetryPolicy(max_attempts=1), error_message=cw_error_message),
                cfg["url"],
                company_id=cfg["company_id"],
                public_key=cfg["public_key"],
                private_key=cfg["private_key"],
                client_id=cfg["client_id"],
            )
            with pytest.raises(SourceDataError, match="HTTP 400 — InvalidObject: Unknown field companyy/id"):
                await client.tickets("companyy/id=1")


# ---- drift: every field renamed in turn (must-show 1) ------------------------------------


async def test_every_renamed_field_is_an_unavailable_section_naming_it_or_not_read():
    period = week_containing(WEEK, "Europe/London")

    async def run(patch: Any) -> Any:
        routes = {k: patch(k, copy.deepcopy(v)) for k, v in hand_routes().items()}
        con = connector(CwApi(routes))
        try:
            return (
                await con.fetch_section("tickets", acme(), period, Targets()),
                await con.fetch_section("changes", acme(), period, Targets()),
            )
        finally:
            await con.aclose()

    outcomes = await check_renamed_fields(
        run,
        {
            "/service/tickets": lambda b: b,
            "/company/companies": lambda b: b,
            "/service/SLAs": lambda b: b,
            "/service/SLAs/1/priorities": lambda b: b,
        },
        {
            "/service/tickets": [
                "id",
                "summary",
                "board",
                "board.name",
                "priority",
                "priority.name",
                "priority.id",
                "sla",
                "sla.id",
                "closedFlag",
                "closedDate",
                "isInSla",
                "_info",
                "_info.dateEntered",
                "_info.lastUpdated",
            ],
            "/company/companies": ["_info.dateEntered"],
            "/service/SLAs": ["id", "name", "basedOn", "resolutionHours"],
            "/service/SLAs/1/priorities": ["priority.id", "resolutionHours"],
        },
    )
    assert sum(v == "unavailable" for v in outcomes.values()) >= 24


# ---- customer survey results: the MSP's service-desk sentiment -----------------------------


def survey_routes(**override: Any) -> dict[str, Any]:
    routes = hand_routes() | {
        "/service/surveys": fx("surveys", "service_surveys"),
        "/service/surveys/1/questions": fx("surveys", "service_surveys_1_questions"),
        "/service/surveys/2/questions": fx("surveys", "service_surveys_2_questions"),
        "/service/surveys/1/results": fx("surveys", "service_surveys_1_results"),
        "/service/surveys/2/results": fx("surveys", "service_surveys_2_results"),
    }
    return routes | override


async def _desk(api: CwApi, reads: int = 1, **opts: Any) -> Any:
    con = connector(api, **opts)
    period = week_containing(WEEK, "Europe/London")
    try:
        for _ in range(reads - 1):  # earlier periods, as the report reads the previous one too
            await con.service_desk(acme(), previous_period(period))
        return await con.service_desk(acme(), period)
    finally:
        await con.aclose()


async def test_survey_results_hand_computed():
    """fixtures/connectwise/surveys, week 9–16 Nov 2026, by hand:

    survey 1 "Ticket satisfaction": question 11 max 5, question 12 max 5 (its excluded 9-point
    option left out), question 13 not included, 14 free text → maximum 10; positive at ≥ 5.
    Results: 501 ticket 1001 9 pts +, 502 ticket 1002 5 pts + (exactly half), 503 ticket 1009 4 pts −,
    506 ticket 1007 (the change closed in the week) 10 pts +; 504 ticket 1005 (closed after the end)
    and 505 ticket 1003 (open) are about tickets not closed in the period; 507 is another company's.
    → 4 answers, 3 positive, dated by their tickets' closedDate. Survey 2 "Comments only" scores
    nothing: its one answer (601, ticket 1001) is skipped and said so.
    """
    api = CwApi(survey_routes())
    read = await _desk(api, reads=2)
    assert read.feedback is not None
    got = sorted((f.ticket_id, f.at, f.positive) for f in read.feedback)
    assert got == [
        ("1001", datetime(2026, 11, 10, 12, tzinfo=UTC), True),
        ("1002", datetime(2026, 11, 11, 10, tzinfo=UTC), True),
        ("1007", datetime(2026, 11, 10, 11, tzinfo=UTC), True),
        ("1009", datetime(2026, 11, 12, 9, tzinfo=UTC), False),
    ]
    assert {f.customer for f in read.feedback} == {"ACME"}
    assert read.feedback_note == (
        "1 answer(s) to survey 'Comments only' skipped: its questions give no points to know its maximum by"
    )
    # seven results in pages of three, every page asked for the company only
    assert [(q["page"], q["conditions"]) for q in api.queries("/service/surveys/1/results")] == [
        (p, "company/id=251") for p in ("1", "2", "3")
    ] * 2
    # two reads (this period and the previous one), the surveys and their questions read once
    assert [q["page"] for q in api.queries("/service/surveys")] == ["1"]
    assert [q["page"] for q in api.queries("/service/surveys/1/questions")] == ["1", "2"]


async def test_positive_survey_share_is_configurable_and_validated():
    read = await _desk(CwApi(survey_routes()), positive_survey_share=0.6)  # 6 of 10: 1002 (5 pts) is negative
    assert read.feedback is not None
    assert sorted(f.ticket_id for f in read.feedback if f.positive) == ["1001", "1007"]
    for bad in (0, 1.5, "half"):
        with pytest.raises(SourceDataError, match=r"sources\.connectwise\.positive_survey_share"):
            await _desk(CwApi(survey_routes()), positive_survey_share=bad)


@pytest.mark.parametrize(
    ("status", "why"),
    [(404, "the module is not licensed"), (403, "security role may not read surveys")],
)
async def test_surveys_refused_or_absent_is_not_available_with_the_reason(status, why):
    body = {"code": "NotFound" if status == 404 else "Forbidden", "message": "no", "errors": []}
    api = CwApi(survey_routes(**{"/service/surveys": lambda r: httpx.Response(status, json=body)}))
    read = await _desk(api)
    assert read.feedback is None
    assert read.feedback_note.startswith(f"not available from this PSA: GET /service/surveys answered HTTP {status}")
    assert why in read.feedback_note
    assert read.tickets  # the rest of the read is intact
    assert not api.queries("/service/surveys/1/results")


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ("/service/surveys/1/results", "totalPoints"),
        ("/service/surveys/1/results", "ticketId"),
        ("/service/surveys", "id"),
    ],
)
async def test_a_renamed_survey_field_is_a_data_error_naming_it(route, field):
    rows = fx("surveys", route.strip("/").replace("/", "_"))
    for row in rows:
        row[field + "Renamed"] = row.pop(field)
    with pytest.raises(SourceDataError, match=f"field '{field}' is missing"):
        await _desk(CwApi(survey_routes(**{route: rows})))

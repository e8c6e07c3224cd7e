"""The shared HTTP behaviour (connectors/http.py) against httpx.MockTransport."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from connectors.base import SourceAuthError, SourceDataError, SourceUnavailable
from connectors.fields import Fields, parse_time
from connectors.http import HttpSource, RetryPolicy, gather_all, retry_after_seconds
from tests.connectors.matrix import RecordingSleep


def source(handler, **kw) -> tuple[HttpSource, RecordingSleep]:
    sleep = RecordingSleep()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpSource("acmevendor", client, sleep=sleep, secrets=("s3cret-token",), **kw), sleep


def test_retry_after_forms():
    now = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Mon, 16 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Mon, 16 Nov 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_429_honours_retry_after_then_succeeds():
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.url.path)
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow down"})
        return httpx.Response(200, json={"ok": True})

    src, sleep = source(handler)
    assert await src.get_json("https://vendor.test/api/x") == {"ok": True}
    assert sleep.waits == [2.0, 2.0]
    assert src.requests == 3


async def test_long_retry_after_gives_up_at_once():
    src, sleep = source(
        lambda r: httpx.Response(429, headers={"Retry-After": "3600"}), retry=RetryPolicy(max_retry_wait=30)
    )
    with pytest.raises(SourceUnavailable, match="retry after 3600 s"):
        await src.get_json("https://vendor.test/api/x")
    assert sleep.waits == []


async def test_5xx_exhausts_retries_with_growing_backoff():
    src, sleep = source(
        lambda r: httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
    )
    with pytest.raises(SourceUnavailable) as err:
        await src.get_json("https://vendor.test/api/x?token=s3cret-token")
    assert str(err.value).startswith("acmevendor: GET /api/x: HTTP 502 (an HTML error page: the proxy or web server")
    assert "after 4 attempts" in str(err.value)
    assert "s3cret" not in str(err.value)
    assert len(sleep.waits) == 3 and sleep.waits[0] < sleep.waits[2]


async def test_auth_and_client_errors_are_not_retried():
    src, sleep = source(
        lambda r: httpx.Response(401, json={"error": "invalid_client", "error_description": "bad secret"})
    )
    with pytest.raises(SourceAuthError, match=r"refused: HTTP 401 — invalid_client: bad secret"):
        await src.get_json("https://vendor.test/auth/token")
    src, sleep = source(lambda r: httpx.Response(404, json={"message": "no such company"}))
    with pytest.raises(SourceDataError, match="HTTP 404 — no such company"):
        await src.get_json("https://vendor.test/api/c")
    assert sleep.waits == []


async def test_timeout_and_refused_connection():
    def hang(req):
        raise httpx.ReadTimeout("timed out", request=req)

    src, _ = source(hang, retry=RetryPolicy(max_attempts=2), request_timeout=0.5)
    with pytest.raises(SourceUnavailable, match=r"no answer within 0.5 s \(after 2 attempts\)"):
        await src.get_json("https://vendor.test/x")

    def refused(req):
        raise httpx.ConnectError("refused", request=req)

    src, _ = source(refused, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(SourceUnavailable, match="cannot connect"):
        await src.get_json("https://vendor.test/x")


async def test_html_and_empty_bodies_are_data_errors():
    src, _ = source(
        lambda r: httpx.Response(200, text="<!DOCTYPE html><p>Sign in</p>", headers={"content-type": "text/html"})
    )
    with pytest.raises(SourceDataError, match="with an HTML page, not JSON"):
        await src.get_json("https://vendor.test/x")
    src, _ = source(lambda r: httpx.Response(200, text=""))
    with pytest.raises(SourceDataError, match="empty body"):
        await src.get_json("https://vendor.test/x")


def test_fields_name_what_drifted():
    f = Fields(
        "halo",
        {"id": "12", "priority": {"name": "High"}, "dateoccurred": "2022-09-30T08:23:56.4214387Z"},
        "GET /api/Tickets item 0",
    )
    assert f.integer("id") == 12
    assert f.text("priority.name") == "High"
    assert f.time("dateoccurred") == datetime(2022, 9, 30, 8, 23, 56, 421438, tzinfo=UTC)
    with pytest.raises(SourceDataError, match=r"halo: GET /api/Tickets item 0: field 'dateclosed' is missing"):
        f.time("dateclosed")
    with pytest.raises(SourceDataError, match="expected an integer"):
        Fields("halo", {"id": "x"}, "item").integer("id")


def test_parse_time_formats():
    assert parse_time(1715000000) == datetime(2024, 5, 6, 12, 53, 20, tzinfo=UTC)
    assert parse_time("1715000000") == parse_time(1715000000)
    assert parse_time("[2024-05-06T00:00:00Z]") == datetime(2024, 5, 6, tzinfo=UTC)
    assert parse_time("2024-05-07T22:00:03.12+02:00") == datetime(2024, 5, 7, 20, 0, 3, 120000, tzinfo=UTC)
    assert parse_time("2024-05-07T22:00:03") == datetime(2024, 5, 7, 22, 0, 3, tzinfo=UTC)


def test_fields_nested_objects():
    f = Fields("cloudflare", {"result_info": {"page": 1}, "result": None}, "GET /zones")
    assert f.obj("result_info").integer("page") == 1
    assert f.data == {"result_info": {"page": 1}, "result": None}
    assert f.opt_obj("result") is None
    with pytest.raises(SourceDataError, match="field 'result' is NoneType"):
        f.obj("result")


async def test_gather_all_cancels_the_other_reads_when_one_fails():
    finished: list[str] = []

    async def slow() -> str:
        try:
            await asyncio.sleep(5)
        finally:
            finished.append("slow stopped")
        return "late"

    async def boom() -> str:
        await asyncio.sleep(0)
        raise SourceDataError("defender", "bad page")

    with pytest.raises(SourceDataError, match="bad page"):
        await gather_all(slow(), boom())
    assert finished == ["slow stopped"]  # cancelled and awaited, not left running against a closed connector
    assert await gather_all(asyncio.sleep(0, "a"), asyncio.sleep(0, "b")) == ["a", "b"]


async def test_the_request_budget_keeps_a_rolling_window() -> None:
    """3 requests per 10 s: the 4th waits until the 1st ages out; the waits are what a clock says."""
    from connectors.http import RequestBudget

    now = [0.0]
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    budget = RequestBudget(3, 10.0, clock=lambda: now[0], sleep=sleep)
    sent = []
    for step in (0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0):  # seconds between attempts
        now[0] += step
        await budget.acquire()
        sent.append(now[0])
    assert sent == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 20.0]
    assert all(b - a >= 10.0 for a, b in zip(sent, sent[3:], strict=False))  # never 4 in a window
    assert budget.waited == sum(waits) == 8.0 + 1.0 + 1.0 + 8.0


async def test_a_source_with_requests_per_window_counts_every_request() -> None:
    from connectors.http import HttpSource
    from reporting.config import SourceConfig

    calls = []
    transport = httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200, json={}))
    async with httpx.AsyncClient(transport=transport) as client:
        cfg = SourceConfig(type="halo", requests_per_window=2, window_seconds=0.3)
        src = HttpSource.from_config("halo", cfg, client)
        assert src.budget is not None and (src.budget.limit, src.budget.window) == (2, 0.3)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.gather(*(src.get_json("https://h.test/api/x") for _ in range(5)))
        assert loop.time() - t0 >= 0.55 and len(calls) == 5  # 2 + 2 + 1: two full windows waited

"""The Graph delivery backend: msgraph-sdk 1.65 against a loopback fake Graph
(``tests.bot.fake_graph``), asserting on the exact requests it makes."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.delivery import Deliverer, DeliveryLog, Parcel, PermanentError, StepResult
from bot.graph import (
    DELIVERY_ID_PROPERTY,
    UPLOAD_CHUNK,
    GraphBackend,
    GraphUnavailable,
    SlidingWindowLimiter,
)
from reporting.config import Config, CustomerConfig, parse_config
from reporting.models import CustomerRef, Period, Report
from tests.bot.doubles import FakeClock, pdf_of
from tests.bot.fake_graph import TOKEN, FakeGraph

MAILBOX = "reports@northwind.example"
PERIOD_END = date(2026, 11, 16)
SITE_HOST, SITE_PATH = "northwind.sharepoint.com", "/sites/Customers"
TEAMS = {"ACME": "team-acme-0001", "GLOBEX": "team-globex-0002"}
CHANNELS = {"ACME": "19:acme-shared@thread.tacv2", "GLOBEX": "19:globex-shared@thread.tacv2"}
LOOKUP = (
    "GET /users/reports@northwind.example/messages?$filter=singleValueExtendedProperties/any(ep: ep/id eq "
    f"'{DELIVERY_ID_PROPERTY}' and ep/value eq '<key>')&$select=id,isDraft,webLink&$top=5"
)
BIG = 5_000_000  # above the 3 MB inline limit and the 4 MiB simple-upload limit: two chunks


def lookup(key: str) -> str:
    return LOOKUP.replace("<key>", key)


class FakeCredential:
    """azure-identity's credential protocol, as the SDK calls it (research §8)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(datetime.now(UTC).timestamp()) + 3600)


def make_config() -> Config:
    def customer(code: str, name: str, domain: str) -> dict[str, Any]:
        return {
            "code": code,
            "name": name,
            "domain": domain,
            "cto_email": f"cto@{domain}",
            "account_owner_email": f"am-{code.lower()}@northwind.example",
            "teams_channel": CHANNELS[code],
            "sharepoint_folder": f"Customers/{code}",
            "account_engineer": {"name": "Zoë Ångström", "email": f"eng-{code.lower()}@northwind.example"},
        }

    return parse_config(
        {
            "msp": {"name": "Northwind IT", "timezone": "Europe/London"},
            "graph": {
                "mailbox": MAILBOX,
                "sharepoint_site": f"{SITE_HOST}:{SITE_PATH}",
                "sharepoint_library": "Documents",
            },
            "customers": [
                customer("ACME", "Acme Corp", "acme.example"),
                customer("GLOBEX", "Globex Corporation", "globex.example"),
            ],
        },
        "<test>",
        env={},
    )


def report_for(c: CustomerConfig, period_end: date = PERIOD_END) -> Report:
    end = datetime(period_end.year, period_end.month, period_end.day, tzinfo=UTC)
    return Report(
        customer=CustomerRef(c.code, c.name, "UTC"),
        period=Period(end - timedelta(days=7), end, "UTC"),
        sections={},
        flags=(),
        generated_at=end,
        summary=(f"{c.name}: uptime 99.95 %", "2 tickets opened"),
    )


def parcel(
    config: Config, code: str = "ACME", pdf: bytes | None = None, draft: str = "d1", period_end: date = PERIOD_END
) -> Parcel:
    c = config.customer(code)
    return Parcel(
        draft,
        code,
        c,
        period_end,
        report_for(c, period_end),
        pdf if pdf is not None else pdf_of(50_000),
        "Sam Approver",
    )


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = await FakeGraph().start()
    fake.add_mailbox(MAILBOX)
    fake.add_site(SITE_HOST, SITE_PATH, libraries=("Documents", "Site Assets"))
    for code in ("ACME", "GLOBEX"):
        fake.add_channel(TEAMS[code], CHANNELS[code], f"{code.title()} shared")
    try:
        yield fake
    finally:
        await fake.close()
    assert fake.unexpected == [], f"requests the fake does not implement: {fake.unexpected}"


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
async def backend(
    config: Config, graph: FakeGraph, clock: FakeClock, credential: FakeCredential
) -> AsyncIterator[GraphBackend]:
    b = make_backend(config, graph, clock, credential)
    yield b
    await b.aclose()


def make_backend(
    config: Config, graph: FakeGraph, clock: FakeClock, credential: FakeCredential | None = None, **kw: Any
) -> GraphBackend:
    kw.setdefault("channel_team", lambda c: TEAMS[c.code])
    return GraphBackend(
        config, credential or FakeCredential(), base_url=graph.base_url, clock=clock, sleep=clock.sleep, **kw
    )


def archive_drive(graph: FakeGraph) -> str:
    """The id of the archive site's "Documents" library."""
    return next(iter(graph.sites.values()))["drives"][0]  # type: ignore[no-any-return]


def mail_body(graph: FakeGraph, index: int = -1) -> dict[str, Any]:
    posts = [r for r in graph.requests if r.method == "POST" and r.path.endswith("/sendMail")]
    return posts[index].body  # type: ignore[no-any-return]


# -- email -------------------------------------------------------------------------------------------


async def test_a_small_pdf_goes_inline_through_sendmail_with_the_delivery_id(
    backend: GraphBackend, graph: FakeGraph, config: Config, credential: FakeCredential
) -> None:
    p = parcel(config)
    result = await backend.send_email(p, "reportbot:d1:email")
    assert graph.calls() == [lookup("reportbot:d1:email"), "POST /users/reports@northwind.example/sendMail"]
    assert graph.requests[0].raw_path.startswith(
        "/v1.0/users/reports%40northwind.example/messages"
    )  # as the SDK sends it
    body = mail_body(graph)
    assert set(body) == {"Message", "SaveToSentItems"} and body["SaveToSentItems"] is True  # the SDK's PascalCase
    msg = body["Message"]
    assert [r["emailAddress"]["address"] for r in msg["toRecipients"]] == ["cto@acme.example"]
    assert [r["emailAddress"]["address"] for r in msg["ccRecipients"]] == ["am-acme@northwind.example"]
    assert msg["replyTo"] == [{"emailAddress": {"address": "eng-acme@northwind.example", "name": "Zoë Ångström"}}]
    assert msg["subject"] == "Acme Corp: weekly report, Week of Mon 9 Nov \u2013 Sun 15 Nov 2026"
    assert msg["body"]["contentType"] == "html" and "Acme Corp: uptime 99.95 %" in msg["body"]["content"]
    assert msg["singleValueExtendedProperties"] == [{"id": DELIVERY_ID_PROPERTY, "value": "reportbot:d1:email"}]
    assert msg["internetMessageHeaders"] == [{"name": "X-Reportbot-Delivery-Id", "value": "reportbot:d1:email"}]
    [att] = msg["attachments"]
    assert att["@odata.type"] == "#microsoft.graph.fileAttachment" and att["name"] == "ACME-weekly-2026-11-16.pdf"
    assert att["contentType"] == "application/pdf" and base64.b64decode(att["contentBytes"]) == p.pdf
    assert result == StepResult("sent to cto@acme.example (cc am-acme@northwind.example)", None)
    assert len(graph.sent(MAILBOX)) == 1
    assert set(credential.scopes) == {("http://127.0.0.1/.default",)}  # the token was asked for the loopback host
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in graph.requests)

    # the step repeated (a restart with the same key): found by the delivery id, not sent again
    graph.requests.clear()
    again = await backend.send_email(p, "reportbot:d1:email")
    assert graph.calls() == [lookup("reportbot:d1:email")]
    assert (
        again.detail.endswith("(already sent)") and again.url and again.url.startswith("https://outlook.office365.com/")
    )
    assert len(graph.sent(MAILBOX)) == 1


async def test_a_large_pdf_goes_as_a_draft_with_an_upload_session_in_ranges(
    backend: GraphBackend, graph: FakeGraph, config: Config
) -> None:
    p = parcel(config, pdf=pdf_of(BIG))
    result = await backend.send_email(p, "reportbot:d1:email")
    [draft_id] = [m["id"] for m in graph.sent(MAILBOX)]
    calls = graph.calls()
    assert calls[:3] == [
        lookup("reportbot:d1:email"),
        "POST /users/reports@northwind.example/messages",
        f"POST /users/reports@northwind.example/messages/{draft_id}/attachments/createUploadSession",
    ]
    assert calls[3].startswith("PUT /upload/") and calls[4] == calls[3]
    assert calls[5:] == [f"POST /users/reports@northwind.example/messages/{draft_id}/send"]
    draft = graph.requests[1].body
    assert draft["singleValueExtendedProperties"] == [{"id": DELIVERY_ID_PROPERTY, "value": "reportbot:d1:email"}]
    assert "attachments" not in draft
    assert graph.requests[2].body == {
        "AttachmentItem": {
            "attachmentType": "file",
            "contentType": "application/pdf",
            "name": "ACME-weekly-2026-11-16.pdf",
            "size": BIG,
        }
    }
    puts = graph.requests[3:5]
    assert [r.headers["content-range"] for r in puts] == [
        f"bytes 0-{UPLOAD_CHUNK - 1}/{BIG}",
        f"bytes {UPLOAD_CHUNK}-{BIG - 1}/{BIG}",
    ]
    assert all("authorization" not in r.headers for r in puts)  # uploadUrl PUTs carry no token
    assert UPLOAD_CHUNK <= 4 * 1024 * 1024
    [sent] = graph.sent(MAILBOX)
    assert [a["_content"] for a in sent["_attachments"]] == [p.pdf]
    assert result.detail == "sent to cto@acme.example (cc am-acme@northwind.example)" and result.url


async def test_a_draft_left_by_a_crash_is_resumed_not_duplicated(
    backend: GraphBackend, graph: FakeGraph, config: Config
) -> None:
    p = parcel(config, pdf=pdf_of(BIG))
    graph.fail("PUT", r"^/upload/", 500, times=99)  # the attachment upload keeps failing: the run gives up
    with pytest.raises(GraphUnavailable):
        await backend.send_email(p, "reportbot:d1:email")
    assert len(graph.drafts(MAILBOX)) == 1 and graph.sent(MAILBOX) == []
    graph.faults.clear()
    graph.requests.clear()
    await backend.send_email(p, "reportbot:d1:email")  # the next run, same key
    [draft_id] = [m["id"] for m in graph.sent(MAILBOX)]
    assert graph.calls()[:3] == [
        lookup("reportbot:d1:email"),
        f"GET /users/reports@northwind.example/messages/{draft_id}/attachments?$select=name",
        f"POST /users/reports@northwind.example/messages/{draft_id}/attachments/createUploadSession",
    ]
    assert graph.drafts(MAILBOX) == [] and len(graph.sent(MAILBOX)) == 1


async def test_503_after_sendmail_was_accepted_does_not_send_twice(
    backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    graph.fail("POST", r"/sendMail$", 503, after=True, retry_after="2")  # Exchange took it, then the gateway failed
    result = await backend.send_email(parcel(config), "reportbot:d1:email")
    assert graph.calls() == [
        lookup("reportbot:d1:email"),
        "POST /users/reports@northwind.example/sendMail",
        lookup("reportbot:d1:email"),
    ]  # looked up before any re-send, and found
    assert clock.sleeps == [2.0]  # Retry-After honoured
    assert len(graph.sent(MAILBOX)) == 1
    assert result.detail == "sent to cto@acme.example (cc am-acme@northwind.example)" and result.url


async def test_503_before_sendmail_was_accepted_is_sent_once_after_the_lookups(
    backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    graph.fail("POST", r"/sendMail$", 503, retry_after="2")
    await backend.send_email(parcel(config), "reportbot:d1:email")
    post = "POST /users/reports@northwind.example/sendMail"
    assert graph.calls() == [lookup("reportbot:d1:email"), post, *[lookup("reportbot:d1:email")] * 3, post]
    assert clock.sleeps == [2.0, 5.0, 5.0]  # Retry-After, then time for an accepted message to reach Sent Items
    assert len(graph.sent(MAILBOX)) == 1


async def test_503_after_a_draft_was_sent_does_not_send_it_again(
    backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    graph.fail("POST", r"/messages/[^/]+/send$", 503, after=True, retry_after="1")
    await backend.send_email(parcel(config, pdf=pdf_of(BIG)), "reportbot:d1:email")
    sends = [c for c in graph.calls() if c.endswith("/send")]
    assert len(sends) == 1 and graph.calls()[-1] == lookup("reportbot:d1:email")
    assert len(graph.sent(MAILBOX)) == 1 and clock.sleeps == [1.0]


@pytest.mark.parametrize(
    ("method", "path", "step"),
    [
        ("POST", r"/users/[^/]+/messages$", "send_email"),  # the draft of a large email
        ("POST", r"/items/root/children$", "archive"),  # a folder
        ("POST", r"/tabs$", "post_channel"),  # the Weekly report tab
    ],
)
async def test_a_create_that_took_effect_before_a_503_is_not_repeated(
    method: str, path: str, step: str, backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    graph.fail(method, path, 503, after=True, retry_after="1")
    await getattr(backend, step)(parcel(config, pdf=pdf_of(BIG)), f"reportbot:d1:{step}")
    assert len([r for r in graph.requests if r.method == method and re.search(path, r.path)]) == 1
    assert clock.sleeps == [1.0]
    ch = graph.channels[(TEAMS["ACME"], CHANNELS["ACME"])]
    assert len(graph.drafts(MAILBOX)) + len(graph.sent(MAILBOX)) <= 1 and len(ch.tabs) <= 1
    assert graph.folders(archive_drive(graph)) in ([], ["Customers", "Customers/ACME", "Customers/ACME/2026"])


async def test_429_retry_after_is_honoured(
    backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    graph.fail("POST", r"/sendMail$", 429, retry_after="7")
    await backend.send_email(parcel(config), "reportbot:d1:email")
    post = "POST /users/reports@northwind.example/sendMail"
    # a 429 is a refusal: one look-up (cheap insurance), no settling, then the re-send
    assert graph.calls() == [lookup("reportbot:d1:email"), post, lookup("reportbot:d1:email"), post]
    assert clock.sleeps == [7.0] and len(graph.sent(MAILBOX)) == 1

    graph.fail("PUT", r"/content$", 429, retry_after="3")  # msgraph itself never retries an octet-stream PUT
    await backend.archive(parcel(config), "reportbot:d1:archive")
    assert clock.sleeps == [7.0, 3.0]
    assert list(graph.files(archive_drive(graph))) == ["Customers/ACME/2026/ACME-weekly-2026-11-16.pdf"]


async def test_a_retry_after_as_an_http_date_is_honoured(
    backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    graph.fail("POST", r"/sendMail$", 503, retry_after=formatdate(time.time() + 30, usegmt=True))
    await backend.send_email(parcel(config), "reportbot:d1:email")
    assert 28 <= clock.sleeps[0] <= 30 and len(graph.sent(MAILBOX)) == 1


async def test_a_retry_after_beyond_patience_leaves_the_step_for_the_next_run(
    backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    graph.fail("POST", r"/sendMail$", 429, retry_after="3600")
    with pytest.raises(GraphUnavailable, match="throttled for 3600 s"):
        await backend.send_email(parcel(config), "reportbot:d1:email")
    assert clock.sleeps == [] and graph.sent(MAILBOX) == []


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."),
        (400, "ErrorInvalidRecipients", "At least one recipient isn't valid."),
        (404, "ErrorInvalidUser", "The requested user 'reports@northwind.example' is invalid."),
    ],
)
async def test_a_permanent_graph_error_stops_the_delivery_with_its_reason(
    status: int, code: str, message: str, config: Config, graph: FakeGraph, clock: FakeClock, tmp_path: Path
) -> None:
    graph.fail("POST", r"/sendMail$", status, code=code, message=message)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    try:
        backend = make_backend(config, graph, clock)
        async with backend:
            log = await DeliveryLog.open(engine)
            p = parcel(config)
            steps = await Deliverer(config, log, backend).deliver("d1", "ACME", PERIOD_END, p.report, p.pdf, "Sam")
    finally:
        await engine.dispose()
    assert steps["email"].status == "failed"
    assert steps["email"].detail == f"sendMail of reportbot:d1:email: Graph {status} {code}: {message}"
    assert "channel" not in steps and "archive" not in steps  # delivery stopped at the failed step
    assert graph.sent(MAILBOX) == [] and clock.sleeps == []  # not retried
    assert not any(r.path.startswith(("/drives", "/sites", "/teams")) for r in graph.requests)


# -- rate limit --------------------------------------------------------------------------------------


async def test_the_31st_message_in_a_minute_waits(
    backend: GraphBackend, graph: FakeGraph, config: Config, clock: FakeClock
) -> None:
    sent_when_waiting: list[int] = []
    real_sleep = clock.sleep

    async def sleep(seconds: float) -> None:
        sent_when_waiting.append(len(graph.sent(MAILBOX)))
        await real_sleep(seconds)

    backend.messages = SlidingWindowLimiter(30, 60.0, clock=clock, sleep=sleep)
    for i in range(31):
        await backend.send_email(parcel(config, draft=f"d{i}"), f"reportbot:d{i}:email")
    assert clock.sleeps == [60.0] and sent_when_waiting == [30]  # the 31st waited for the first to leave the window
    assert len(graph.sent(MAILBOX)) == 31


async def test_the_window_slides(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(30, 60.0, clock=clock, sleep=clock.sleep)
    for _ in range(30):  # t = 1000 .. 1029
        await limiter.acquire()
        clock.now += 1
    await limiter.acquire()  # t = 1030: the first (t = 1000) leaves the window at 1060
    assert clock.sleeps == [30.0]
    await limiter.acquire()  # t = 1060: the next oldest (1001) leaves at 1061
    assert clock.sleeps == [30.0, 1.0]


# -- archive -----------------------------------------------------------------------------------------


async def test_archive_creates_the_folders_and_a_redelivery_replaces_the_file(
    config: Config, graph: FakeGraph, clock: FakeClock
) -> None:
    drive = archive_drive(graph)
    async with make_backend(config, graph, clock) as backend:
        result = await backend.archive(parcel(config, pdf=pdf_of(50_000, b"v1")), "reportbot:d1:archive")
    site_id = next(iter(graph.sites.values()))["id"]
    calls = graph.calls()
    assert calls[:2] == ["GET /sites/northwind.sharepoint.com:/sites/Customers", f"GET /sites/{site_id}/drives"]
    assert calls[2:4] == [f"GET /drives/{drive}/items/root:/Customers:", f"POST /drives/{drive}/items/root/children"]
    assert graph.requests[3].body == {
        "@odata.type": "#microsoft.graph.driveItem",
        "name": "Customers",
        "folder": {},
        "@microsoft.graph.conflictBehavior": "fail",
    }
    customers = graph.drives[drive].child("root", "Customers").id  # type: ignore[union-attr]
    acme = graph.drives[drive].child(customers, "ACME").id  # type: ignore[union-attr]
    year = graph.drives[drive].child(acme, "2026").id  # type: ignore[union-attr]
    assert calls[4:] == [
        f"GET /drives/{drive}/items/{customers}:/ACME:",
        f"POST /drives/{drive}/items/{customers}/children",
        f"GET /drives/{drive}/items/{acme}:/2026:",
        f"POST /drives/{drive}/items/{acme}/children",
        f"PUT /drives/{drive}/items/{year}:/ACME-weekly-2026-11-16.pdf:/content"
        "?@microsoft.graph.conflictBehavior=replace",
    ]
    assert all("%3A" not in r.raw_path for r in graph.requests)  # addressed by parent id, the colons raw
    assert graph.folders(drive) == ["Customers", "Customers/ACME", "Customers/ACME/2026"]
    assert result.detail == "archived to Documents/Customers/ACME/2026/ACME-weekly-2026-11-16.pdf"
    assert result.url == f"https://{SITE_HOST}{SITE_PATH}/Documents/Customers/ACME/2026/ACME-weekly-2026-11-16.pdf"

    # re-delivered after a restart (a regenerated PDF): the folders are found, the file replaced
    graph.requests.clear()
    async with make_backend(config, graph, clock) as backend:
        await backend.archive(parcel(config, pdf=pdf_of(60_000, b"v2")), "reportbot:d1:archive")
    assert [c.split(" ")[0] for c in graph.calls()] == ["GET", "GET", "GET", "GET", "GET", "PUT"]
    assert graph.files(drive) == {
        "Customers/ACME/2026/ACME-weekly-2026-11-16.pdf": pdf_of(60_000, b"v2")
    }  # no "... 1.pdf"


async def test_a_folder_made_meanwhile_409_is_taken_as_existing(
    backend: GraphBackend, graph: FakeGraph, config: Config
) -> None:
    drive = archive_drive(graph)
    graph._new_item(graph.drives[drive], "root", "Customers", folder=True)  # another instance made it...
    graph.fail("GET", r"items/root:/Customers:$", 404, code="itemNotFound")  # ...just after our look-up
    await backend.archive(parcel(config), "reportbot:d1:archive")
    assert graph.calls()[2:5] == [
        f"GET /drives/{drive}/items/root:/Customers:",
        f"POST /drives/{drive}/items/root/children",
        f"GET /drives/{drive}/items/root:/Customers:",
    ]
    assert graph.folders(drive) == ["Customers", "Customers/ACME", "Customers/ACME/2026"]


async def test_a_large_archive_goes_through_an_upload_session_with_replace(
    backend: GraphBackend, graph: FakeGraph, config: Config
) -> None:
    drive = archive_drive(graph)
    await backend.archive(parcel(config, pdf=pdf_of(50_000)), "reportbot:d1:archive")
    big = pdf_of(BIG, b"big")
    graph.requests.clear()
    await backend.archive(parcel(config, pdf=big), "reportbot:d1:archive")  # folders cached; the file exists
    session = graph.requests[0]
    assert session.method == "POST" and session.path.endswith(":/ACME-weekly-2026-11-16.pdf:/createUploadSession")
    assert session.body == {"item": {"@microsoft.graph.conflictBehavior": "replace"}}
    puts = graph.requests[1:]
    assert [r.headers["content-range"] for r in puts] == [
        f"bytes 0-{UPLOAD_CHUNK - 1}/{BIG}",
        f"bytes {UPLOAD_CHUNK}-{BIG - 1}/{BIG}",
    ]
    assert UPLOAD_CHUNK % (320 * 1024) == 0 and all("authorization" not in r.headers for r in puts)
    assert graph.files(drive) == {"Customers/ACME/2026/ACME-weekly-2026-11-16.pdf": big}


async def test_an_invalid_archive_folder_is_a_configuration_error(graph: FakeGraph, clock: FakeClock) -> None:
    cfg = make_config()
    bad = cfg.model_copy(
        update={
            "customers": tuple(
                c.model_copy(update={"sharepoint_folder": "Customers/../GLOBEX"}) if c.code == "ACME" else c
                for c in cfg.customers
            )
        }
    )
    async with make_backend(bad, graph, clock) as backend:
        with pytest.raises(PermanentError, match="not a valid SharePoint folder name"):
            await backend.archive(parcel(bad), "reportbot:d1:archive")
    assert graph.requests == []


# -- customer channel --------------------------------------------------------------------------------


async def test_channel_files_upload_then_the_tab_is_created_and_next_week_updated(
    config: Config, graph: FakeGraph, clock: FakeClock
) -> None:
    announced: list[tuple[str, str, str]] = []

    async def announce(p: Parcel, url: str, key: str) -> None:
        announced.append((p.code, url, key))

    ch = graph.channels[(TEAMS["ACME"], CHANNELS["ACME"])]
    async with make_backend(config, graph, clock, announce=announce) as backend:
        week1 = await backend.post_channel(parcel(config), "reportbot:d1:channel")
        channel_path = f"/teams/{TEAMS['ACME']}/channels/{CHANNELS['ACME']}"
        assert graph.calls() == [
            f"GET {channel_path}/filesFolder",
            f"PUT /drives/{ch.drive}/items/{ch.folder}:/ACME-weekly-2026-11-16.pdf:/content"
            "?@microsoft.graph.conflictBehavior=replace",
            f"GET {channel_path}/tabs?$expand=teamsApp",
            f"POST {channel_path}/tabs",
        ]
        assert "19%3Aacme-shared%40thread.tacv2" in graph.requests[0].raw_path  # the SDK encodes, the fake decodes
        url1 = "https://teams.example/sites/team-acme-0001/Shared%20Documents/Acme%20shared/ACME-weekly-2026-11-16.pdf"
        assert graph.requests[3].body == {
            "displayName": "Weekly report",
            "configuration": {"contentUrl": url1, "websiteUrl": url1},
            "teamsApp@odata.bind": f"{graph.base_url}/appCatalogs/teamsApps/com.microsoft.teamspace.tab.web",
        }
        assert week1 == StepResult(f"posted in {CHANNELS['ACME']}; the Weekly report tab created", url1)

        graph.requests.clear()
        next_week = PERIOD_END + timedelta(days=7)
        week2 = await backend.post_channel(parcel(config, draft="d2", period_end=next_week), "reportbot:d2:channel")
        [tab] = ch.tabs.values()
        assert [c.split("?")[0] for c in graph.calls()] == [
            f"GET {channel_path}/filesFolder",
            f"PUT /drives/{ch.drive}/items/{ch.folder}:/ACME-weekly-2026-11-23.pdf:/content",
            f"GET {channel_path}/tabs",
            f"PATCH {channel_path}/tabs/{tab['id']}",
        ]
        url2 = url1.replace("2026-11-16", "2026-11-23")
        assert (
            tab["configuration"] == {"contentUrl": url2, "websiteUrl": url2} and tab["displayName"] == "Weekly report"
        )
        assert week2.url == url2 and week2.detail.endswith("tab updated")

        # the step repeated (crash after the upload): same file replaced, the tab already right
        graph.requests.clear()
        await backend.post_channel(parcel(config, draft="d2", period_end=next_week), "reportbot:d2:channel")
        assert [c.split(" ")[0] for c in graph.calls()] == ["GET", "PUT", "GET"]
    assert announced == [
        ("ACME", url1, "reportbot:d1:channel"),
        ("ACME", url2, "reportbot:d2:channel"),
        ("ACME", url2, "reportbot:d2:channel"),
    ]
    assert sorted(graph.files(ch.drive)) == [
        "Acme shared/ACME-weekly-2026-11-16.pdf",
        "Acme shared/ACME-weekly-2026-11-23.pdf",
    ]


async def test_the_team_lookup_may_be_async_and_the_base_url_comes_from_the_config(
    graph: FakeGraph, clock: FakeClock
) -> None:
    cfg = make_config()
    cfg = cfg.model_copy(update={"graph": cfg.graph.model_copy(update={"base_url": graph.base_url})})

    async def team_of(c: CustomerConfig) -> str:  # e.g. from the conversation reference in the store
        return TEAMS[c.code]

    async with GraphBackend(cfg, FakeCredential(), channel_team=team_of, clock=clock, sleep=clock.sleep) as backend:
        result = await backend.post_channel(parcel(cfg), "reportbot:d1:channel")
    assert result.url and graph.calls()[0] == f"GET /teams/{TEAMS['ACME']}/channels/{CHANNELS['ACME']}/filesFolder"


async def test_a_channel_without_a_known_team_stops_with_the_reason(
    config: Config, graph: FakeGraph, clock: FakeClock
) -> None:
    async with make_backend(config, graph, clock, channel_team=None) as backend:
        with pytest.raises(PermanentError, match="no team id is known for ACME's channel"):
            await backend.post_channel(parcel(config), "k")
    assert graph.requests == []


# -- the whole delivery, mix-ups ---------------------------------------------------------------------


class Crash(BaseException):
    """The process dying between a step's side effect and its log entry."""


class CrashAfter:
    def __init__(self, backend: GraphBackend, step: str):
        self.backend, self.step = backend, step

    async def _do(self, step: str, p: Parcel, key: str) -> StepResult:
        name = {"email": "send_email", "channel": "post_channel", "archive": "archive"}[step]
        result: StepResult = await getattr(self.backend, name)(p, key)
        if step == self.step:
            raise Crash(step)
        return result

    async def send_email(self, p: Parcel, key: str) -> StepResult:
        return await self._do("email", p, key)

    async def post_channel(self, p: Parcel, key: str) -> StepResult:
        return await self._do("channel", p, key)

    async def archive(self, p: Parcel, key: str) -> StepResult:
        return await self._do("archive", p, key)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    yield eng
    await eng.dispose()


@pytest.mark.parametrize("crash_after", ["email", "channel", "archive"])
async def test_a_crash_after_any_step_ends_with_one_email_one_file_one_archive(
    crash_after: str, config: Config, graph: FakeGraph, clock: FakeClock, engine: AsyncEngine
) -> None:
    log = await DeliveryLog.open(engine)
    p = parcel(config, pdf=pdf_of(BIG))  # the draft path
    async with make_backend(config, graph, clock) as backend:
        with pytest.raises(Crash):
            await Deliverer(config, log, CrashAfter(backend, crash_after)).deliver(
                "d1", "ACME", PERIOD_END, p.report, p.pdf, "Sam"
            )
    async with make_backend(config, graph, clock) as backend:  # the restarted process
        steps = await Deliverer(config, log, backend).deliver("d1", "ACME", PERIOD_END, p.report, p.pdf, "Sam")
    assert {s: st.status for s, st in steps.items()} == {"email": "done", "channel": "done", "archive": "done"}
    assert steps[crash_after].attempts == 2
    assert len(graph.sent(MAILBOX)) == 1 and graph.drafts(MAILBOX) == []
    ch = graph.channels[(TEAMS["ACME"], CHANNELS["ACME"])]
    assert graph.files(ch.drive) == {"Acme shared/ACME-weekly-2026-11-16.pdf": p.pdf} and len(ch.tabs) == 1
    assert graph.files(archive_drive(graph)) == {"Customers/ACME/2026/ACME-weekly-2026-11-16.pdf": p.pdf}
    assert steps["archive"].url and steps["channel"].url and steps["email"].url


async def test_an_acme_delivery_never_touches_globex(
    config: Config, graph: FakeGraph, clock: FakeClock, engine: AsyncEngine
) -> None:
    log = await DeliveryLog.open(engine)
    p = parcel(config)
    async with make_backend(config, graph, clock) as backend:
        steps = await Deliverer(config, log, backend).deliver("d1", "ACME", PERIOD_END, p.report, p.pdf, "Sam")
    assert all(s.status == "done" for s in steps.values()) and len(steps) == 3
    wire = json.dumps([(r.method, r.path, r.query, r.body) for r in graph.requests]).lower()
    assert "globex" not in wire and "acme" in wire
    [sent] = graph.sent(MAILBOX)
    assert [r["emailAddress"]["address"] for r in sent["toRecipients"]] == ["cto@acme.example"]
    assert [r["emailAddress"]["address"] for r in sent["ccRecipients"]] == ["am-acme@northwind.example"]
    globex = graph.channels[(TEAMS["GLOBEX"], CHANNELS["GLOBEX"])]
    assert graph.files(globex.drive) == {} and globex.tabs == {}
    assert list(graph.files(archive_drive(graph))) == ["Customers/ACME/2026/ACME-weekly-2026-11-16.pdf"]


@pytest.mark.parametrize("step", ["send_email", "post_channel", "archive"])
async def test_a_parcel_carrying_another_customers_entry_is_refused_before_any_request(
    step: str, config: Config, graph: FakeGraph, clock: FakeClock
) -> None:
    acme, globex = config.customer("ACME"), config.customer("GLOBEX")
    forged = [
        Parcel("d1", "ACME", globex, PERIOD_END, report_for(acme), pdf_of(1000), "Sam"),  # wrong entry for the code
        Parcel(
            "d1",
            "ACME",
            acme.model_copy(update={"teams_channel": CHANNELS["GLOBEX"]}),
            PERIOD_END,
            report_for(acme),
            pdf_of(1000),
            "Sam",
        ),  # a forged channel id
        Parcel(
            "d1",
            "ACME",
            acme.model_copy(update={"cto_email": "cto@globex.example"}),
            PERIOD_END,
            report_for(acme),
            pdf_of(1000),
            "Sam",
        ),  # a forged recipient
        Parcel("d1", "NOSUCH", acme, PERIOD_END, report_for(acme), pdf_of(1000), "Sam"),  # an unknown code
    ]
    async with make_backend(config, graph, clock) as backend:
        for p in forged:
            with pytest.raises(PermanentError):
                await getattr(backend, step)(p, "reportbot:d1:x")
    assert graph.requests == []


async def test_a_wrong_team_for_the_channel_is_refused_by_graph_and_nothing_is_uploaded(
    config: Config, graph: FakeGraph, clock: FakeClock
) -> None:
    async with make_backend(config, graph, clock, channel_team=lambda c: TEAMS["GLOBEX"]) as backend:
        with pytest.raises(PermanentError, match="Graph 404"):
            await backend.post_channel(parcel(config), "reportbot:d1:channel")
    assert graph.calls() == [f"GET /teams/{TEAMS['GLOBEX']}/channels/{CHANNELS['ACME']}/filesFolder"]
    assert all(graph.files(ch.drive) == {} for ch in graph.channels.values())


# -- the fake itself ---------------------------------------------------------------------------------


async def test_the_fake_decodes_percent_encoded_paths_and_refuses_what_it_does_not_implement(
    backend: GraphBackend, graph: FakeGraph, config: Config
) -> None:
    drive = archive_drive(graph)
    await backend.archive(parcel(config), "k")
    # msgraph's own path-addressed form: percent-encoded colons and slashes (research §8)
    items = backend.client.drives.by_drive_id(drive).items
    item = await items.by_drive_item_id("root:/Customers/ACME/2026/ACME-weekly-2026-11-16.pdf:").get()
    assert item is not None and item.name == "ACME-weekly-2026-11-16.pdf"
    assert "root%3A%2FCustomers%2FACME" in graph.requests[-1].raw_path
    with pytest.raises(Exception, match="501"):
        await backend.client.users.by_user_id(MAILBOX).get()  # not something the backend does
    assert graph.unexpected == [f"GET /v1.0/users/{MAILBOX}"]
    graph.unexpected.clear()


class CrashAfterVariant:
    """CrashAfter that tells the technical report's steps (the same backend calls, its parcel)."""

    def __init__(self, backend: GraphBackend, step: str):
        self.backend, self.step = backend, step

    async def _do(self, name: str, p: Parcel, key: str) -> StepResult:
        step = {"email": "send_email", "channel": "post_channel", "archive": "archive"}[name]
        result: StepResult = await getattr(self.backend, step)(p, key)
        if (f"tech_{name}" if p.variant == "technical" else name) == self.step:
            raise Crash(self.step)
        return result

    async def send_email(self, p: Parcel, key: str) -> StepResult:
        return await self._do("email", p, key)

    async def post_channel(self, p: Parcel, key: str) -> StepResult:
        return await self._do("channel", p, key)

    async def archive(self, p: Parcel, key: str) -> StepResult:
        return await self._do("archive", p, key)


@pytest.mark.parametrize("crash_after", ["tech_email", "tech_archive"])
async def test_the_technical_report_goes_once_to_its_recipients_and_beside_the_archive(
    crash_after: str, config: Config, graph: FakeGraph, clock: FakeClock, engine: AsyncEngine
) -> None:
    acme = config.customer("ACME")
    with_it = acme.model_copy(
        update={"recipients": acme.recipients.model_copy(update={"technical": ("it@acme.example",)})}
    )
    config = config.model_copy(
        update={"customers": tuple(with_it if c.code == "ACME" else c for c in config.customers)}
    )
    log = await DeliveryLog.open(engine)
    p = parcel(config)
    technical = pdf_of(60_000)
    renders: list[str] = []

    async def technical_pdf(report: Report) -> bytes:
        renders.append(report.audience)
        return technical

    async with make_backend(config, graph, clock) as backend:
        with pytest.raises(Crash):
            await Deliverer(config, log, CrashAfterVariant(backend, crash_after), technical_pdf=technical_pdf).deliver(
                "d1", "ACME", PERIOD_END, p.report, p.pdf, "Sam"
            )
    async with make_backend(config, graph, clock) as backend:  # the restarted process
        steps = await Deliverer(config, log, backend, technical_pdf=technical_pdf).deliver(
            "d1", "ACME", PERIOD_END, p.report, p.pdf, "Sam"
        )
    assert {s: st.status for s, st in steps.items()} == dict.fromkeys(
        ("email", "tech_email", "channel", "archive", "tech_archive"), "done"
    )
    assert steps[crash_after].attempts == 2 and set(renders) == {"technical"}
    sent = graph.sent(MAILBOX)
    assert len(sent) == 2 and graph.drafts(MAILBOX) == []  # the repeated step found its message: not sent twice
    by_to = {tuple(r["emailAddress"]["address"] for r in m["toRecipients"]): m for m in sent}
    assert set(by_to) == {("cto@acme.example",), ("it@acme.example",)}
    tech = by_to[("it@acme.example",)]
    assert tech["subject"].startswith("Acme Corp: weekly technical report, ") and not tech.get("ccRecipients")
    assert [(a.get("name"), a["_content"]) for a in tech["_attachments"]] == [
        ("ACME-weekly-2026-11-16-technical.pdf", technical)
    ]
    ch = graph.channels[(TEAMS["ACME"], CHANNELS["ACME"])]
    assert graph.files(ch.drive) == {"Acme shared/ACME-weekly-2026-11-16.pdf": p.pdf}  # the channel: executive only
    assert graph.files(archive_drive(graph)) == {
        "Customers/ACME/2026/ACME-weekly-2026-11-16.pdf": p.pdf,
        "Customers/ACME/2026/ACME-weekly-2026-11-16-technical.pdf": technical,
    }

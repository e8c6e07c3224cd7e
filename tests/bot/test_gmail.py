"""The Gmail email step: google-auth service-account tokens and httpx against the loopback
Google (``tests.bot.fake_google``), asserting on the exact requests and the MIME sent."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.ext.asyncio import create_async_engine

from bot.delivery import Deliverer, DeliveryLog, PermanentError, StepResult
from bot.google.backend import GoogleDelivery, route
from bot.google.gmail import SIMPLE_MAX, html_to_text, message_id
from bot.outbox import OutboxBackend
from cards.review import DeliveryStepView, review_card
from reporting.config import Config
from tests.bot.doubles import FakeClock, pdf_of
from tests.bot.fake_google import GOOGLE_TOKEN_URI, SCOPE_GMAIL_READONLY, SCOPE_GMAIL_SEND, FakeGoogle
from tests.bot.google_setup import MB, SENDER, key_file, make_config, parcel, setup_google

KEY = "reportbot:d1:email"
LIST = "GET /gmail/v1/users/me/messages?q=rfc822msgid:{mid}&includeSpamTrash=true"
SEND = "POST /gmail/v1/users/me/messages/send"


@pytest.fixture
def config(google: FakeGoogle, tmp_path: Path) -> Config:
    root = setup_google(google)["root"]
    return make_config(google, key_file(google, tmp_path), root=root)


@pytest.fixture
async def delivery(config: Config, clock: FakeClock) -> AsyncIterator[GoogleDelivery]:
    d = GoogleDelivery(config, clock=clock, sleep=clock.sleep, settle_delay=1.0, chunk=2 * MB)
    yield d
    await d.aclose()


def api_calls(google: FakeGoogle) -> list[str]:
    return [c for c in google.calls() if not c.startswith("POST /token")]


def parts(msg: EmailMessage) -> dict[str, list[EmailMessage]]:
    out: dict[str, list[EmailMessage]] = {}
    for part in msg.walk():
        if not part.is_multipart():
            out.setdefault(part.get_content_type(), []).append(part)  # type: ignore[arg-type]
    return out


async def test_a_report_is_sent_as_the_sender_with_both_parts_and_the_pdf(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    p = parcel(config)
    mid = message_id(KEY, SENDER)
    result = await delivery.send_email(p, KEY)
    assert api_calls(google) == [LIST.format(mid=mid), SEND]
    [msg] = google.parsed(SENDER)
    assert msg["From"] == f"Northwind IT <{SENDER}>"
    assert [a.addr_spec for a in msg["To"].addresses] == ["cto@acme.example"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["am-acme@northwind.example"]
    assert msg["Subject"] == "Acme Corp: weekly report, Week of Mon 9 Nov \u2013 Sun 15 Nov 2026"
    assert msg["Message-ID"] == mid and msg["X-Reportbot-Delivery-Id"] == KEY
    found = parts(msg)
    [plain], [html], [pdf] = found["text/plain"], found["text/html"], found["application/pdf"]
    assert plain.get_content().replace("\r\n", "\n") == html_to_text(html.get_content())  # the same words in both
    assert "Acme Corp: uptime 99.95 %" in plain.get_content() and "<" not in plain.get_content()
    assert pdf.get_filename() == "ACME-weekly-2026-11-16.pdf" and pdf.get_content() == p.pdf
    assert pdf.get_content().startswith(b"%PDF")
    assert result.detail == f"sent to cto@acme.example (cc am-acme@northwind.example) from {SENDER}"
    assert result.url and result.url.startswith("https://mail.google.com/")
    # the tokens: RS256 assertions for the sender (domain-wide delegation), one per scope
    assert [(c["sub"], c["scope"], c["aud"], c["iss"]) for c in google.token_requests] == [
        (SENDER, SCOPE_GMAIL_READONLY, GOOGLE_TOKEN_URI, google.client_email),
        (SENDER, SCOPE_GMAIL_SEND, GOOGLE_TOKEN_URI, google.client_email),
    ]
    send = next(r for r in google.requests if repr(r) == SEND)
    assert google.tokens[send.headers["authorization"].removeprefix("Bearer ")].scopes == {SCOPE_GMAIL_SEND}
    # the step repeated (a restart with the same key): found by its Message-ID, not sent again
    google.requests.clear()
    again = await delivery.send_email(p, KEY)
    assert api_calls(google) == [LIST.format(mid=mid)]
    assert again.detail.endswith("(already sent)") and len(google.sent(SENDER)) == 1


def test_the_message_id_is_derived_from_the_delivery_key() -> None:
    assert message_id(KEY, SENDER) == message_id(KEY, SENDER)
    assert message_id(KEY, SENDER) != message_id("reportbot:d2:email", SENDER)
    assert message_id(KEY, SENDER).endswith("@northwind.example>")


async def test_503_after_the_send_was_accepted_does_not_send_twice(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, clock: FakeClock
) -> None:
    google.fail("POST", r"/messages/send$", 503, after=True)
    result = await delivery.send_email(parcel(config), KEY)
    mid = message_id(KEY, SENDER)
    assert api_calls(google) == [LIST.format(mid=mid), SEND, LIST.format(mid=mid)]  # looked up, found, not re-sent
    assert len(google.sent(SENDER)) == 1 and result.detail.startswith("sent to")
    assert len(clock.sleeps) == 1 and 1.0 <= clock.sleeps[0] <= 2.0  # the first backoff step: 1 s + jitter


async def test_503_before_the_send_is_sent_once_after_the_lookups(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, clock: FakeClock
) -> None:
    google.fail("POST", r"/messages/send$", 503)
    await delivery.send_email(parcel(config), KEY)
    mid = message_id(KEY, SENDER)
    assert api_calls(google) == [LIST.format(mid=mid), SEND, *[LIST.format(mid=mid)] * 3, SEND]
    assert len(google.sent(SENDER)) == 1


async def test_rate_limits_are_retried_with_exponential_backoff(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, clock: FakeClock
) -> None:
    google.fail("POST", r"/messages/send$", 429, reason="rateLimitExceeded", message="Rate Limit Exceeded")
    google.fail("POST", r"/messages/send$", 403, reason="userRateLimitExceeded", message="User Rate Limit Exceeded")
    await delivery.send_email(parcel(config), KEY)
    assert len(google.sent(SENDER)) == 1
    backoffs = [s for s in clock.sleeps if s != 1.0]  # (settle waits are 1.0 here)
    assert 1.0 <= clock.sleeps[0] < 2.0 and 2.0 <= backoffs[-1] < 3.0  # 2**0, 2**1 s, each + up to 1 s


async def test_the_daily_sending_limit_is_a_clear_permanent_failure_not_retried(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    google.fail(
        "POST",
        r"/messages/send$",
        429,
        times=10,
        reason="rateLimitExceeded",
        message="User-rate limit exceeded.  Retry after 2026-11-17T06:00:00.000Z (Mail sending)",
    )
    with pytest.raises(PermanentError, match="sending limit") as err:
        await delivery.send_email(parcel(config), KEY)
    assert "2,000 messages a day" in str(err.value) and "\n" not in str(err.value)
    assert api_calls(google).count(SEND) == 1 and google.sent(SENDER) == []


async def test_a_large_message_goes_through_the_resumable_upload_with_one_cut_chunk(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    p = parcel(config, pdf=pdf_of(SIMPLE_MAX + 2 * MB))  # 2 MB over the simple limit
    google.cut_chunk(2, keep=256 * 1024)  # the second chunk: a quarter MiB arrives, then the connection fails
    await delivery.send_email(p, KEY)
    calls = api_calls(google)
    mid = message_id(KEY, SENDER)
    assert calls[:2] == [LIST.format(mid=mid), "POST /upload/gmail/v1/users/me/messages/send?uploadType=resumable"]
    assert SEND not in calls
    puts = [r for r in google.requests if r.method == "PUT"]
    ranges = [r.headers["content-range"] for r in puts]
    total = len(google.sent(SENDER)[0]["raw"])
    assert total > SIMPLE_MAX
    assert ranges[:3] == [f"bytes 0-{2 * MB - 1}/{total}", f"bytes {2 * MB}-{4 * MB - 1}/{total}", f"bytes */{total}"]
    assert ranges[3] == f"bytes {2 * MB + 256 * 1024}-{4 * MB + 256 * 1024 - 1}/{total}"  # resumed where the server was
    assert all("authorization" not in r.headers for r in puts)  # the session URI is the credential
    [msg] = google.parsed(SENDER)
    assert parts(msg)["application/pdf"][0].get_content() == p.pdf
    assert base64.b64encode(p.pdf)[:20].decode() in google.sent(SENDER)[0]["raw"].decode()


async def test_one_token_per_scope_per_hour(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config, clock: FakeClock
) -> None:
    for i in range(6):
        await delivery.send_email(parcel(config, "ACME" if i % 2 else "GLOBEX", draft=f"d{i}"), f"reportbot:d{i}:email")
    assert len(google.sent(SENDER)) == 6 and len(google.token_requests) == 2  # 12 API calls, 2 tokens
    clock.now += 3300  # 55 minutes on: renewed 5 minutes before the hour is up
    await delivery.send_email(parcel(config, draft="d6"), "reportbot:d6:email")
    assert [c["scope"] for c in google.token_requests] == [SCOPE_GMAIL_READONLY, SCOPE_GMAIL_SEND] * 2


async def test_a_token_google_refuses_is_renewed_once(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    await delivery.send_email(parcel(config), KEY)
    google.tokens.clear()  # revoked
    await delivery.send_email(parcel(config, draft="d2"), "reportbot:d2:email")
    assert len(google.sent(SENDER)) == 2 and len(google.token_requests) == 4


# -- credentials and delegation: one line, saying what to fix --------------------------------------


async def deliver_email(config: Config, tmp_path: Path, clock: FakeClock) -> tuple[str, str]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    google_delivery = GoogleDelivery(config, clock=clock, sleep=clock.sleep)
    try:
        p = parcel(config)
        backend = route(config, OutboxBackend(config, tmp_path / "outbox"), google=google_delivery)
        steps = await Deliverer(config, await DeliveryLog.open(engine), backend).deliver(
            p.draft_id, p.code, p.period_end, p.report, p.pdf, "Sam"
        )
    finally:
        await google_delivery.aclose()
        await engine.dispose()
    step = steps["email"]
    card = review_card(
        p.report,
        draft_id="d1",
        version=2,
        state="failed",
        commentary="",
        pdf_url=None,
        steps=[DeliveryStepView("Email", step.status, step.detail)],
    )
    return step.status, str(step.detail) if str(step.detail) in card_texts(card) else "(not on the card)"


def card_texts(card: Any) -> str:
    """Every text on a card, Markdown escapes undone: what a person reads."""
    if isinstance(card, dict):
        return "\n".join(card_texts(v) for v in card.values())
    if isinstance(card, list):
        return "\n".join(card_texts(v) for v in card)
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", card) if isinstance(card, str) else ""


async def test_a_key_that_is_not_the_accounts_is_one_actionable_line(
    google: FakeGoogle, tmp_path: Path, clock: FakeClock
) -> None:
    root = setup_google(google)["root"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    config = make_config(google, key_file(google, tmp_path, google.service_account_info(key=other)), root=root)
    status, detail = await deliver_email(config, tmp_path, clock)
    assert status == "failed" and "\n" not in detail
    assert "invalid_grant: Invalid JWT Signature" in detail and "create a new JSON key" in detail
    assert "gmail.credentials_file" in detail and google.sent(SENDER) == []


async def test_a_delegation_not_granted_names_the_client_id_and_scopes(
    google: FakeGoogle, tmp_path: Path, clock: FakeClock
) -> None:
    root = setup_google(google)["root"]
    google.grants.clear()
    config = make_config(google, key_file(google, tmp_path), root=root)
    status, detail = await deliver_email(config, tmp_path, clock)
    assert status == "failed" and "\n" not in detail
    assert "unauthorized_client" in detail and "Domain-wide delegation" in detail
    assert f"client ID {google.client_id}" in detail and f"{SCOPE_GMAIL_SEND},{SCOPE_GMAIL_READONLY}" in detail


async def test_a_sender_that_is_not_a_user_says_so(google: FakeGoogle, tmp_path: Path, clock: FakeClock) -> None:
    root = setup_google(google)["root"]
    config = make_config(
        google, key_file(google, tmp_path), root=root, extra={"gmail": {"sender": "nobody@northwind.example"}}
    )
    status, detail = await deliver_email(config, tmp_path, clock)
    assert status == "failed" and "nobody@northwind.example is not a user" in detail and "gmail.sender" in detail


async def test_an_acme_parcel_carrying_globex_entry_is_refused_before_any_request(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    acme = parcel(config)
    forged = type(acme)(acme.draft_id, "ACME", config.customer("GLOBEX"), acme.period_end, acme.report, acme.pdf, "x")
    with pytest.raises(PermanentError, match="another customer's entry"):
        await delivery.send_email(forged, KEY)
    assert google.requests == []


async def test_the_fake_refuses_what_it_does_not_implement(
    google: FakeGoogle, delivery: GoogleDelivery, config: Config
) -> None:
    token = await delivery.gmail.http.tokens.token(SCOPE_GMAIL_READONLY, SENDER)  # type: ignore[union-attr]
    resp = await delivery.client.get(
        f"{google.origin}/gmail/v1/users/me/messages",
        params={"q": "from:x"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 501 and google.unexpected
    google.unexpected.clear()
    resp = await delivery.client.get(f"{google.origin}/gmail/v1/users/me/profile")
    assert resp.status_code == 401 and resp.json()["error"]["errors"][0]["reason"] == "authError"
    assert resp.json()["error"]["status"] == "UNAUTHENTICATED"
    assert isinstance(StepResult("x"), StepResult)


async def test_503_after_the_last_chunk_was_accepted_is_resolved_by_the_session_status(
    delivery: GoogleDelivery, google: FakeGoogle, config: Config
) -> None:
    p = parcel(config, pdf=pdf_of(SIMPLE_MAX + 2 * MB))  # 9.8 MB of MIME (base64): 5 chunks of 2 MiB
    google.fail("PUT", r"^/upload/gmail/", 503, after=True, skip=4)  # the last: sent, the answer lost
    result = await delivery.send_email(p, KEY)
    assert len(google.sent(SENDER)) == 1 and result.detail.startswith("sent to")
    ranges = [r.headers["content-range"] for r in google.requests if r.method == "PUT"]
    assert len(ranges) == 6 and ranges[-1].startswith("bytes */")  # asked the session: complete, not re-sent

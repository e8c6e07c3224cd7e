"""Signed draft-PDF links: LinkSigner itself, and GET /files/{token}/{name} over real HTTP."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from botbuilder.core import ActivityHandler

from bot.app import LINKS
from bot.links import LinkError, LinkSigner
from tests.bot.harness import LINK_SECRET, FakeConnector, FakeOpenIdServer, running_bot

PDF = b"%PDF-1.7\n% a draft report\n%%EOF\n"
DRAFTS = {("draft-acme-1", 3): PDF}  # the current version of the one draft the store knows


async def draft_pdf(draft_id: str, version: int) -> bytes | None:
    return DRAFTS.get((draft_id, version))


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> list[Any]:
    part = token.split(".")[0]
    payload: list[Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return payload


def _with_payload(token: str, payload: list[Any]) -> str:
    """The same MAC on a different payload: what someone editing a link would produce."""
    return f"{_b64(json.dumps(payload, separators=(',', ':')).encode())}.{token.split('.')[1]}"


# --------------------------------------------------------------------------- LinkSigner


def test_round_trip_and_url_shape() -> None:
    signer = LinkSigner(LINK_SECRET, 3600, "https://bot.example.com/", now=Clock(1_000_000))
    url = signer.url("draft-acme-1", 3)
    assert url.startswith("https://bot.example.com/files/") and url.endswith("/report.pdf")
    token = url.split("/")[-2]
    assert all(c.isalnum() or c in "-_." for c in token)
    assert signer.verify(token) == ("draft-acme-1", 3)
    assert _payload(token) == ["draft-acme-1", 3, 1_003_600]


def test_odd_draft_ids_survive() -> None:
    signer = LinkSigner(LINK_SECRET, 60, "http://x")
    for draft_id in ("a/b?c=d#e", "ÄCME–week 46", "x" * 500):
        assert signer.verify(signer.token(draft_id, 0)) == (draft_id, 0)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: _with_payload(t, ["draft-globex-1", 3, _payload(t)[2]]), id="other draft id"),
        pytest.param(lambda t: _with_payload(t, ["draft-acme-1", 4, _payload(t)[2]]), id="other version"),
        pytest.param(lambda t: _with_payload(t, ["draft-acme-1", 3, _payload(t)[2] + 86400]), id="later expiry"),
        pytest.param(lambda t: t[:5] + ("A" if t[5] != "A" else "B") + t[6:], id="payload byte"),
        pytest.param(lambda t: t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:], id="mac byte"),
        pytest.param(lambda t: t.split(".")[0], id="no mac"),
        pytest.param(lambda t: t + ".x", id="three parts"),
        pytest.param(lambda t: t.replace("-", "+").replace("_", "/") + "==", id="non url-safe"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "..", id="dots"),
    ],
)
def test_tampered_tokens_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    signer = LinkSigner(LINK_SECRET, 3600, "http://x")
    token = signer.token("draft-acme-1", 3)
    bad = mutate(token)
    assert bad != token
    with pytest.raises(LinkError) as info:
        signer.verify(bad)
    assert info.value.reason == "tampered"


def test_another_secret_is_tampered() -> None:
    token = LinkSigner(b"another secret of 32 bytes......", 3600, "http://x").token("draft-acme-1", 3)
    with pytest.raises(LinkError, match="tampered"):
        LinkSigner(LINK_SECRET, 3600, "http://x").verify(token)


def test_expiry_by_injected_clock() -> None:
    clock = Clock(1_000_000.0)
    signer = LinkSigner(LINK_SECRET, 3600, "http://x", now=clock)
    token = signer.token("draft-acme-1", 3)
    clock.t += 3599
    assert signer.verify(token) == ("draft-acme-1", 3)
    clock.t += 1
    with pytest.raises(LinkError) as info:
        signer.verify(token)
    assert info.value.reason == "expired"


def test_weak_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        LinkSigner(b"short", 60, "http://x")
    with pytest.raises(ValueError, match="positive"):
        LinkSigner(LINK_SECRET, 0, "http://x")


# --------------------------------------------------------------------------- GET /files/...


async def test_served_pdf_and_its_headers(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async with running_bot(ActivityHandler(), oidc=oidc, connector=connector, draft_pdf=draft_pdf) as rb:
        url = rb.app[LINKS].url("draft-acme-1", 3, "ACME-weekly-2026-11-16.pdf")
        assert url.startswith(rb.settings.public_url + "/files/")
        response = await rb.client.get(url)
        head = await rb.client.http.head(httpx_path(url))
    assert response.status_code == 200
    assert response.content == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == 'inline; filename="ACME-weekly-2026-11-16.pdf"'
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert head.status_code == 200


def httpx_path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def test_links_from_settings_work_on_the_app(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    """The bot can build its own signer from the settings; the app accepts its links."""
    async with running_bot(ActivityHandler(), oidc=oidc, connector=connector, draft_pdf=draft_pdf) as rb:
        response = await rb.client.get(LinkSigner.from_settings(rb.settings).url("draft-acme-1", 3))
    assert response.status_code == 200 and response.content == PDF


async def test_hostile_file_name_is_not_reflected(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async with running_bot(ActivityHandler(), oidc=oidc, connector=connector, draft_pdf=draft_pdf) as rb:
        token = rb.app[LINKS].token("draft-acme-1", 3)
        response = await rb.client.get(f"/files/{token}/evil%22%3B%20x%3Dy.pdf")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'inline; filename="report.pdf"'


async def test_tampered_expired_unknown_and_stale_links(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    calls: list[tuple[str, int]] = []

    async def recording_pdf(draft_id: str, version: int) -> bytes | None:
        calls.append((draft_id, version))
        return await draft_pdf(draft_id, version)

    async with running_bot(ActivityHandler(), oidc=oidc, connector=connector, draft_pdf=recording_pdf) as rb:
        links = rb.app[LINKS]
        good = links.token("draft-acme-1", 3)
        expires = _payload(good)[2]
        other_id = await rb.client.get(f"/files/{_with_payload(good, ['draft-globex-1', 3, expires])}/r.pdf")
        other_version = await rb.client.get(f"/files/{_with_payload(good, ['draft-acme-1', 2, expires])}/r.pdf")
        garbage = await rb.client.get("/files/not-a-token/report.pdf")
        # Same secret, a clock two hours back: a genuine link whose hour is up.
        expired_signer = LinkSigner(
            rb.settings.link_secret, 3600, rb.settings.public_url, now=lambda: time.time() - 7200
        )
        expired = await rb.client.get(expired_signer.url("draft-acme-1", 3))
        assert calls == []  # nothing refused above reached the store
        unknown = await rb.client.get(links.url("draft-nobody-9", 1))
        stale = await rb.client.get(links.url("draft-acme-1", 2))
    for response in (other_id, other_version, garbage):
        assert response.status_code == 403
        assert response.json() == {"error": "forbidden"}
    assert expired.status_code == 403
    assert "expired" in expired.json()["error"]
    for response in (unknown, stale):
        assert response.status_code == 404
        assert response.json() == {"error": "not found"}  # nothing about which drafts exist
    assert calls == [("draft-nobody-9", 1), ("draft-acme-1", 2)]


def test_review_card_deep_link_from_the_stored_conversation_reference() -> None:
    from bot.review_cards import message_link

    # a new post in a channel: botbuilder serializes the tenant as "tenantID"
    channel = {
        "conversation": {
            "id": "19:review@thread.tacv2;messageid=1700000000001",
            "conversationType": "channel",
            "tenantID": "tenant-1",
        }
    }
    assert message_link(channel, "1700000000001") == (
        "https://teams.microsoft.com/l/message/19%3Areview%40thread.tacv2/1700000000001"
        "?parentMessageId=1700000000001&tenantId=tenant-1"
    )
    # a reply in a thread: the link opens the reply, the thread root is its parent
    assert "parentMessageId=1700000000001" in message_link(channel, "1700000000099")
    # a personal chat (the sandbox, where `run` was typed)
    chat = {"conversation": {"id": "a:1xyz", "conversationType": "personal"}}
    assert message_link(chat, "1:abc") == (
        "https://teams.microsoft.com/l/message/a%3A1xyz/1%3Aabc?context=%7B%22contextType%22%3A%22chat%22%7D"
    )
    # nothing posted yet, or a reference without a conversation: no link
    assert message_link(None, None) == "" and message_link({"conversation": {}}, "1") == ""

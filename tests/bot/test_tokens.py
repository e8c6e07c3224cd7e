"""Outbound tokens: botbuilder's own credentials (MSAL) against a loopback Entra ID, through the real
CloudAdapter and a loopback Bot Connector — one token per scope per hour, not one per call."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from botbuilder.schema import Activity

from bot.auth import build_adapter
from bot.posting import NotPosted, Pacer, Poster
from tests.bot.fake_entra import FakeEntra
from tests.bot.harness import BOT_APP_ID, TENANT_ID, FakeConnector, make_settings

CHANNEL = "19:review@thread.tacv2"
SECRET = "tests-only-password"  # noqa: S105 - make_settings' app password, never leaves the process


@pytest.fixture
def entra(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEntra]:
    fake = FakeEntra(TENANT_ID, BOT_APP_ID, SECRET).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_file))  # MSAL's requests trusts the test's certificate
    try:
        yield fake
    finally:
        fake.close()


def poster(connector: FakeConnector, entra: FakeEntra, **overrides: str) -> Poster:
    settings = make_settings(oidc=None, service_urls=[connector.service_url], login_url=entra.authority, **overrides)
    adapter = build_adapter(settings)  # no fake credentials: botbuilder's factory, MSAL, the loopback Entra ID
    return Poster(adapter, BOT_APP_ID, Pacer(conversation_limits=(), tenant_limits=()), base_delay=0.01, max_delay=0.02)


def install(connector: FakeConnector) -> dict[str, str]:
    return {"service_url": connector.service_url, "tenant_id": TENANT_ID, "bot_id": f"28:{BOT_APP_ID}"}


async def test_one_token_for_a_hundred_connector_calls(entra: FakeEntra, connector: FakeConnector) -> None:
    p = poster(connector, entra)
    ref = p.channel_reference(CHANNEL, install(connector))
    ids = [await p.send(ref, Activity(type="message", text=f"card {i}"), f"card {i}") for i in range(50)]
    for i, activity_id in enumerate(ids):
        await p.edit(ref, activity_id, Activity(type="message", text=f"card {i}, edited"), f"card {i}")
    calls = [c for c in connector.calls if c.kind in ("send", "update")]
    print(
        f"\n{len(calls)} Bot Connector calls: {entra.token_requests} token request(s), "
        f"{entra.discovery_requests} OpenID configuration request(s)"
    )
    assert len(calls) == 100 and connector.unexpected == []
    assert entra.token_requests == 1 and entra.discovery_requests == 1
    assert entra.scopes == ["https://api.botframework.com/.default"]
    assert {c.authorization for c in calls} == {f"Bearer {entra.issued[0]}"}  # the Connector saw the minted token


async def test_the_token_is_renewed_before_it_expires_and_only_then(
    entra: FakeEntra, connector: FakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = poster(connector, entra)
    ref = p.channel_reference(CHANNEL, install(connector))
    await p.send(ref, Activity(type="message", text="first"), "first")
    real = time.time
    for minutes in (30, 54):  # well inside the hour: the cached token serves
        monkeypatch.setattr(time, "time", lambda m=minutes: real() + 60 * m)
        await p.send(ref, Activity(type="message", text=f"at +{minutes} min"), "later")
    assert entra.token_requests == 1
    monkeypatch.setattr(time, "time", lambda: real() + 60 * 56)  # under MSAL's five-minute margin: renewed once
    for i in range(5):
        await p.send(ref, Activity(type="message", text=f"after renewal {i}"), "after")
    print(f"\n8 Connector calls over 56 minutes of activity: {entra.token_requests} token requests")
    assert entra.token_requests == 2 and entra.discovery_requests == 1
    sent = [c for c in connector.calls if c.kind == "send"]
    assert [c.authorization for c in sent[-5:]] == [f"Bearer {entra.issued[1]}"] * 5


async def test_a_refused_secret_is_one_clear_failure_and_nothing_is_posted(
    entra: FakeEntra, connector: FakeConnector
) -> None:
    p = poster(connector, entra, app_password="not-the-secret")  # noqa: S106 - a wrong secret on purpose
    ref = p.channel_reference(CHANNEL, install(connector))
    with pytest.raises(NotPosted, match="AADSTS7000215") as caught:
        await p.send(ref, Activity(type="message", text="card"), "review card for ACME")
    assert "not-the-secret" not in str(caught.value)
    assert [c for c in connector.calls if c.kind == "send"] == []

"""Posting to Teams: the pacer keeps Microsoft's per-conversation limits, and the poster turns what
the Bot Connector answers (429 + Retry-After, 5xx, 403) into retries or a refusal — through the
real CloudAdapter against a loopback Connector that enforces the limits itself."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from botbuilder.schema import Activity

from bot.auth import build_adapter
from bot.posting import NotPosted, Pacer, Poster, PostRefused
from tests.bot.doubles import FakeClock
from tests.bot.harness import BOT_APP_ID, TENANT_ID, FakeConnector, FakeCredentialsFactory, make_settings

CHANNEL = "19:review@thread.tacv2"
#: Microsoft's published limits per bot per conversation ("Send to conversation"), independent of
#: the product's own table in bot.posting so a typo there shows up here.
TEAMS_LIMITS = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))


async def test_the_pacer_keeps_every_window() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    times = []
    start = clock.now
    for _ in range(130):
        await pacer.acquire(CHANNEL, TENANT_ID)
        times.append(clock.now - start)
    for window, most in TEAMS_LIMITS:
        for i in range(most, len(times)):
            assert times[i] - times[i - most] >= window, (window, most, i)
    assert times[59] < 30 <= times[60] and times[120] >= 60  # 60 per 30 s is what binds
    # other conversations are not held up by a busy one
    other = clock.now
    await pacer.acquire("19:other@thread.tacv2", TENANT_ID)
    assert clock.now == other


async def test_the_tenant_limit_spans_conversations() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    start = clock.now
    for i in range(31):
        await pacer.acquire(f"19:c{i}@thread.tacv2", TENANT_ID)
    assert clock.now - start >= 1.0  # the 31st request of the app in the tenant waits for the next second


@pytest.fixture
async def limited() -> AsyncIterator[FakeConnector]:
    fake = await FakeConnector(limits=((1.0, 3),)).start()
    try:
        yield fake
    finally:
        await fake.close()


def poster_for(connector: FakeConnector, pacer: Pacer) -> Poster:
    settings = make_settings(oidc=None, service_urls=[connector.service_url])
    adapter = build_adapter(settings, credentials_factory=FakeCredentialsFactory(BOT_APP_ID))
    return Poster(adapter, BOT_APP_ID, pacer, base_delay=0.05, max_delay=0.2)


def install(connector: FakeConnector) -> dict[str, str]:
    return {"service_url": connector.service_url, "tenant_id": TENANT_ID, "bot_id": f"28:{BOT_APP_ID}"}


async def test_throttled_posts_wait_for_retry_after_and_none_is_lost(limited: FakeConnector) -> None:
    # a pacer that knows no limits: the Connector's 429s are all that slows the poster down
    poster = poster_for(limited, Pacer(conversation_limits=(), tenant_limits=()))
    ref = poster.channel_reference(CHANNEL, install(limited))
    started = time.monotonic()
    ids = [await poster.send(ref, Activity(type="message", text=f"card {i}"), f"card {i}") for i in range(7)]
    took = time.monotonic() - started
    sent = [c for c in limited.calls if c.kind == "send"]
    assert [c.body["text"] for c in sent] == [f"card {i}" for i in range(7)] and len(set(ids)) == 7
    assert limited.throttled >= 2 and poster.throttled == limited.throttled
    assert took >= 2.0  # 3 a second: the 7th cannot go before the third second
    # the post carries the tenant Teams reads for a proactive message
    assert all(c.body["channelData"]["tenant"]["id"] == TENANT_ID for c in sent)
    assert all(c.conversation_id == CHANNEL for c in sent)


async def test_edits_count_and_are_retried_too(limited: FakeConnector) -> None:
    poster = poster_for(limited, Pacer(conversation_limits=(), tenant_limits=()))
    ref = poster.channel_reference(CHANNEL, install(limited))
    first = await poster.send(ref, Activity(type="message", text="v0"), "card")
    for v in range(1, 5):
        await poster.edit(ref, first, Activity(type="message", text=f"v{v}"), "card")
    updates = [c for c in limited.calls if c.kind == "update"]
    assert [c.body["text"] for c in updates] == ["v1", "v2", "v3", "v4"] and limited.throttled >= 1
    assert {c.activity_id for c in updates} == {first}


async def test_a_pacer_with_teams_limits_is_never_throttled(connector: FakeConnector) -> None:
    connector.limits = ((1.0, 7), (2.0, 8))
    poster = poster_for(connector, Pacer())
    ref = poster.channel_reference(CHANNEL, install(connector))
    for i in range(20):
        await poster.send(ref, Activity(type="message", text=f"card {i}"), f"card {i}")
    assert connector.throttled == 0 and len([c for c in connector.calls if c.kind == "send"]) == 20


async def test_a_gateway_error_is_retried_a_refusal_is_not(connector: FakeConnector) -> None:
    poster = poster_for(connector, Pacer())
    ref = poster.channel_reference(CHANNEL, install(connector))
    connector.fail_sends(503, times=2)
    await poster.send(ref, Activity(type="message", text="after two 503s"), "card")
    assert [c.kind for c in connector.calls] == ["refused", "refused", "send"]

    connector.fail_sends(403)
    with pytest.raises(PostRefused, match="BotNotInConversationRoster") as refused:
        await poster.send(ref, Activity(type="message", text="not in the team"), "ACME's card")
    assert refused.value.status == 403 and "ACME's card" in str(refused.value)
    assert [c.kind for c in connector.calls][-1] == "refused" and len(connector.calls) == 4  # tried once


async def test_once_leaves_an_ambiguous_answer_to_the_caller(connector: FakeConnector) -> None:
    poster = poster_for(connector, Pacer())
    ref = poster.channel_reference(CHANNEL, install(connector))
    connector.fail_sends(504, after=True)  # the post reached the channel, the answer did not
    with pytest.raises(NotPosted, match="504"):
        await poster.send(ref, Activity(type="message", text="customer card"), "customer card", once=True)
    assert [c.kind for c in connector.calls] == ["send"]  # not repeated: the caller looks first

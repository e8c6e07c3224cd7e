"""Fixtures for the bot tests: one loopback OpenID/JWKS server per session; per test a fresh Bot Connector,
a fresh Google (OAuth, Gmail, Drive) and a clock whose sleeps are instant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.bot.doubles import FakeClock
from tests.bot.fake_google import FakeGoogle
from tests.bot.harness import FakeConnector, FakeOpenIdServer


@pytest.fixture(scope="session")
def oidc() -> Iterator[FakeOpenIdServer]:
    """The Bot Framework OpenID metadata + JWKS (a thread; botbuilder caches its keys per URL)."""
    with FakeOpenIdServer() as server:
        yield server


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    """A fresh Bot Connector recording what the bot sends (on the test's loop)."""
    fake = await FakeConnector().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def google() -> AsyncIterator[FakeGoogle]:
    """Google's token endpoint, Gmail and Drive; fails the test on a request it does not implement."""
    fake = await FakeGoogle().start()
    try:
        yield fake
    finally:
        await fake.close()
    assert fake.unexpected == [], f"requests the fake does not implement: {fake.unexpected}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

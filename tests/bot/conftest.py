"""Fixtures for the bot tests: one loopback OpenID/JWKS server per session, a fresh connector per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

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

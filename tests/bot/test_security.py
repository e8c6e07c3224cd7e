"""POST /api/messages security over real HTTP: 401 for every bad token, 413, 415, 403 for an
untrusted serviceUrl, bot errors stay 500, the sandbox's anonymous mode, /healthz, settings refusals.

The bot is a trivial echo handler defined here; the fakes are in ``tests/bot/harness.py``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.schema import Activity, AdaptiveCardInvokeResponse

from bot.app import create_app
from bot.auth import PUBLIC_LOGIN_URL, bot_framework_config
from bot.deps import BotDeps
from bot.settings import PUBLIC_OPENID_METADATA, PUBLIC_TOKEN_ISSUER, SettingsError
from tests.bot.harness import (
    BOT_APP_ID,
    OUTBOUND_TOKEN,
    FakeConnector,
    FakeOpenIdServer,
    TokenMinter,
    card_action,
    channel_message,
    make_settings,
    personal_message,
    running_bot,
)


class EchoBot(ActivityHandler):
    """Replies ``echo: <text>``; records every turn it was given."""

    def __init__(self) -> None:
        self.turns: list[Activity] = []
        self.sent_ids: list[str] = []

    async def on_turn(self, turn_context: TurnContext) -> None:
        self.turns.append(turn_context.activity)
        await super().on_turn(turn_context)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        sent = await turn_context.send_activity(f"echo: {turn_context.activity.text}")
        self.sent_ids.append(sent.id)


async def test_valid_token_runs_the_bot_and_the_reply_reaches_the_connector(
    oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    bot = EchoBot()
    async with running_bot(bot, oidc=oidc, connector=connector) as rb:
        activity = channel_message("run ACME", service_url=connector.service_url)
        response = await rb.client.post(activity)
    assert response.status_code == 201
    assert [t.text for t in bot.turns] == ["<at>reportbot</at> run ACME"]
    [call] = connector.calls
    assert call.kind == "reply"
    assert call.conversation_id == activity["conversation"]["id"]
    assert call.activity_id == activity["id"]
    assert call.body["text"] == "echo: <at>reportbot</at> run ACME"
    assert call.authorization == f"Bearer {OUTBOUND_TOKEN}"
    assert bot.sent_ids == [call.result_id]  # the connector's {"id": ...} reached the bot
    assert connector.unexpected == []
    assert rb.credentials.created[0][0] == BOT_APP_ID


def _now() -> int:
    return int(time.time())


# Each case: (minter, service_url) -> the Authorization header to send (None: no header at all).
BAD_TOKENS: dict[str, Callable[[TokenMinter, str], str | None]] = {
    "no header": lambda m, url: None,
    "empty header": lambda m, url: "",
    "garbage": lambda m, url: "Bearer not-a-jwt",
    "garbage three parts": lambda m, url: "Bearer aaaa.bbbb.cccc",
    "not bearer": lambda m, url: "Basic dXNlcjpwYXNzd29yZA==",
    "bearer without token": lambda m, url: "Bearer",
    "lowercase scheme": lambda m, url: "bearer " + m.token(serviceurl=url),
    "bad signature": lambda m, url: m.header(serviceurl=url, forge=True),
    "wrong audience": lambda m, url: m.header(serviceurl=url, aud="11111111-2222-3333-4444-555555555555"),
    "no audience": lambda m, url: m.header(serviceurl=url, aud=None),
    "wrong issuer": lambda m, url: m.header(serviceurl=url, iss="https://api.botframework.com.evil.example"),
    "no issuer": lambda m, url: m.header(serviceurl=url, iss=None),
    "emulator issuer": lambda m, url: m.header(
        serviceurl=url,
        iss="https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/",
        extra={"ver": "1.0", "appid": BOT_APP_ID},
    ),
    "skill token": lambda m, url: m.header(serviceurl=url, extra={"ver": "1.0", "appid": "another-bot"}),
    "anonymous skill token": lambda m, url: m.header(serviceurl=url, extra={"appid": "AnonymousSkill"}),
    "expired": lambda m, url: m.header(serviceurl=url, nbf=_now() - 7200, exp=_now() - 3600),
    "not yet valid": lambda m, url: m.header(serviceurl=url, nbf=_now() + 3600, exp=_now() + 7200),
    "alg none": lambda m, url: m.header(serviceurl=url, alg="none"),
    "HS256 keyed with the public key": lambda m, url: m.header(serviceurl=url, alg="HS256"),
    "serviceurl claim mismatch": lambda m, url: m.header(serviceurl="https://smba.trafficmanager.net/evil/"),
    "no serviceurl claim": lambda m, url: m.header(serviceurl=None),
    "unknown kid": lambda m, url: m.header(serviceurl=url, kid="not-a-key-we-published"),
    "no kid": lambda m, url: m.header(serviceurl=url, kid=None),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_every_authentication_failure_is_401_and_the_bot_never_runs(
    case: str, oidc: FakeOpenIdServer, connector: FakeConnector, caplog: pytest.LogCaptureFixture
) -> None:
    bot = EchoBot()
    async with running_bot(bot, oidc=oidc, connector=connector) as rb:
        assert rb.minter is not None
        authorization = BAD_TOKENS[case](rb.minter, connector.service_url)
        with caplog.at_level(logging.WARNING, logger="bot.auth"):
            response = await rb.client.post(
                channel_message("run ACME", service_url=connector.service_url), authorization=authorization
            )
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "unauthorized"}
    assert bot.turns == []
    assert connector.calls == []
    token = (authorization or "").partition(" ")[2]
    if len(token) >= 8:  # the reason is logged, the token is not
        assert token not in caplog.text
        assert all(part not in caplog.text for part in token.split(".") if len(part) >= 8)


async def test_endorsement_for_another_channel_is_401(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    """The key is endorsed for msteams only; a token used for a webchat activity is refused."""
    bot = EchoBot()
    async with running_bot(bot, oidc=oidc, connector=connector) as rb:
        activity = channel_message("run ACME", service_url=connector.service_url)
        activity["channelId"] = "webchat"
        response = await rb.client.post(activity)
    assert response.status_code == 401
    assert bot.turns == [] and connector.calls == []


async def test_untrusted_service_url_with_a_valid_token_is_403(
    oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    """A genuine token for a serviceUrl we do not know: the bot must not post there."""
    bot = EchoBot()
    other = FakeConnector()
    await other.start()
    try:
        async with running_bot(bot, oidc=oidc, connector=connector) as rb:
            response = await rb.client.post(channel_message("run ACME", service_url=other.service_url))
            missing = channel_message("run ACME", service_url=connector.service_url)
            del missing["serviceUrl"]
            no_url = await rb.client.post(missing, serviceurl=connector.service_url)
    finally:
        await other.close()
    assert response.status_code == 403
    assert no_url.status_code == 403
    assert bot.turns == []
    assert connector.calls == [] and other.calls == []


async def test_unauthenticated_and_untrusted_is_401_not_403(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async with running_bot(EchoBot(), oidc=oidc, connector=connector) as rb:
        response = await rb.client.post(channel_message("x", service_url="http://127.0.0.1:9/"), authorization=None)
    assert response.status_code == 401


async def test_body_over_the_limit_is_413(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    bot = EchoBot()
    async with running_bot(bot, oidc=oidc, connector=connector, max_body_bytes=8192) as rb:
        activity = channel_message("x" * 9000, service_url=connector.service_url)
        by_length = await rb.client.post(activity)
        header = rb.minter.header(serviceurl=connector.service_url)  # type: ignore[union-attr]
        body = rb.client.http.build_request("POST", "/api/messages", json=activity).content

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: aiohttp's client_max_size stops the read
            for i in range(0, len(body), 1024):
                yield body[i : i + 1024]

        chunked = await rb.client.http.post(
            "/api/messages", content=chunks(), headers={"Content-Type": "application/json", "Authorization": header}
        )
        small = await rb.client.post(channel_message("fits", service_url=connector.service_url))
    assert by_length.status_code == 413
    assert chunked.status_code == 413
    assert small.status_code == 201
    assert [t.text for t in bot.turns] == ["<at>reportbot</at> fits"]


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"{}", 415),
        ("application/x-www-form-urlencoded", b"type=message", 415),
        ("application/json", b"{not json", 400),
        ("application/json", b"[1, 2]", 400),
        ("application/json", b'{"text": "no type"}', 400),
    ],
)
async def test_malformed_requests(
    content_type: str, body: bytes, status: int, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    bot = EchoBot()
    async with running_bot(bot, oidc=oidc, connector=connector) as rb:
        header = rb.minter.header(serviceurl=connector.service_url)  # type: ignore[union-attr]
        response = await rb.client.http.post(
            "/api/messages", content=body, headers={"Content-Type": content_type, "Authorization": header}
        )
    assert response.status_code == status
    assert bot.turns == []


class BuggyBot(ActivityHandler):
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        raise self.error


@pytest.mark.parametrize("error", [PermissionError("bug in the bot"), KeyError("bug"), ValueError("bug")])
async def test_a_bug_in_the_bot_stays_a_500(error: Exception, oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    """The 401 translation covers authentication only: a PermissionError raised by the bot's own
    code is not an authentication failure (botbuilder's CloudAdapter.process would answer 401)."""
    async with running_bot(BuggyBot(error), oidc=oidc, connector=connector) as rb:
        response = await rb.client.post(personal_message("status", service_url=connector.service_url))
    assert response.status_code == 500


class CardBot(ActivityHandler):
    """Answers an Action.Execute the two ways a handler can: through botbuilder's
    on_adaptive_card_invoke (which hands back an already-serialised dict) or with an InvokeResponse
    holding the msrest model."""

    def __init__(self, via_override: bool) -> None:
        self.via_override = via_override

    @staticmethod
    def _response(verb: str) -> AdaptiveCardInvokeResponse:
        card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": f"did {verb}"}]}
        return AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.card.adaptive", value=card)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        if self.via_override and turn_context.activity.name == "adaptiveCard/action":
            verb = turn_context.activity.value["action"]["verb"]
            return InvokeResponse(status=200, body=self._response(verb))
        return await super().on_invoke_activity(turn_context)

    async def on_adaptive_card_invoke(self, turn_context: TurnContext, invoke_value: Any) -> AdaptiveCardInvokeResponse:
        return self._response(invoke_value.action["verb"])  # 4.17.1 leaves `action` a dict


@pytest.mark.parametrize("via_override", [True, False])
async def test_card_action_invoke_answers_200_with_the_card(
    via_override: bool, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    async with running_bot(CardBot(via_override), oidc=oidc, connector=connector) as rb:
        activity = card_action(
            "approve", {"draft": "d1", "version": 3}, service_url=connector.service_url, reply_to_id="1700000000001"
        )
        response = await rb.client.post(activity)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.card.adaptive",
        "value": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "did approve"}]},
    }


# --------------------------------------------------------------------------- the sandbox (no app id)


async def test_sandbox_without_app_id_accepts_no_header_but_validates_one(
    oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    bot = EchoBot()
    async with running_bot(bot, oidc=oidc, connector=connector, app_id="", app_password="", sandbox=True) as rb:
        anonymous = await rb.client.post(
            personal_message("help", service_url=connector.service_url), authorization=None
        )
        with_header = await rb.client.post(
            personal_message("help", service_url=connector.service_url), authorization="Bearer not-a-jwt"
        )
        signed = await rb.client.post(personal_message("help", service_url=connector.service_url))
        relay = await rb.client.post(
            personal_message("help", service_url="https://attacker.example/"), authorization=None
        )
    assert anonymous.status_code == 201
    assert with_header.status_code == 401
    assert signed.status_code == 401  # a token for another app id: with no app id, no token is valid
    assert relay.status_code == 403  # the unauthenticated relay of research §1.5 is closed
    assert len(bot.turns) == 1
    [call] = connector.calls
    assert call.body["text"] == "echo: help"
    assert call.authorization is None  # botbuilder sends no token without an app id


# --------------------------------------------------------------------------- /healthz


async def test_healthz(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async with running_bot(EchoBot(), oidc=oidc, connector=connector) as rb:
        response = await rb.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "test", "store": "ok"}


async def test_healthz_when_the_health_check_fails(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async def broken() -> dict[str, Any]:
        raise ConnectionError("store down at postgresql://secret@db")

    async with running_bot(EchoBot(), oidc=oidc, connector=connector, health=broken) as rb:
        response = await rb.client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "version": "test"}


# --------------------------------------------------------------------------- configuration


def test_botbuilder_config_uses_public_cloud_constants_without_overrides() -> None:
    settings = make_settings(oidc=None, service_urls=("https://smba.trafficmanager.net/",))
    config = bot_framework_config(settings)
    assert config.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL == PUBLIC_OPENID_METADATA
    assert config.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER == PUBLIC_TOKEN_ISSUER
    assert config.TO_CHANNEL_FROM_BOT_LOGIN_URL == PUBLIC_LOGIN_URL
    assert (config.APP_ID, config.APP_TENANTID, config.APP_TYPE) == (BOT_APP_ID, settings.app_tenant_id, "SingleTenant")
    assert "tests-only-password" not in repr(config)


def test_botbuilder_config_passes_overrides() -> None:
    settings = make_settings(
        oidc=None,
        service_urls=(),
        openid_metadata_url="https://login.example/oidc",
        token_issuer="https://issuer.example",  # noqa: S106 - a URL, not a secret
        login_url="https://login.example/tenant",
    )
    config = bot_framework_config(settings)
    assert config.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL == "https://login.example/oidc"
    assert config.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER == "https://issuer.example"  # noqa: S105 - a URL
    assert config.TO_CHANNEL_FROM_BOT_LOGIN_URL == "https://login.example/tenant"


def _config(**teams: Any) -> Any:
    from reporting.config import parse_config

    data = {
        "msp": {"name": "MSP"},
        "sources": {"zabbix": {"type": "sandbox"}},
        "customers": [
            {
                "code": "ACME",
                "name": "Acme",
                "ids": {"zabbix": "1"},
                "sources": {"uptime": "zabbix"},
                "teams_channel": "19:acme-shared@thread.tacv2",
            }
        ],
        "teams": teams,
    }
    return parse_config(data, "test.toml", env={"BOT_PASSWORD": "pw-value", "LINK_SECRET": "s" * 32})


GOOD_TEAMS = {
    "app_id": BOT_APP_ID,
    "app_password": "${BOT_PASSWORD}",
    "tenant_id": "t1",
    "link_secret": "${LINK_SECRET}",
    "review_channel": "19:review@thread.tacv2",
}


def test_settings_accept_a_complete_production_config() -> None:
    from bot.settings import BotSettings

    settings = BotSettings.from_config(_config(**GOOD_TEAMS))
    assert settings.auth_enabled and settings.app_password == "pw-value"  # noqa: S105 - a test value
    assert settings.openid_metadata_url == "" and settings.host == "0.0.0.0"  # noqa: S104


@pytest.mark.parametrize(
    ("teams", "kwargs", "message"),
    [
        ({}, {}, "teams.app_id: not set"),
        ({**GOOD_TEAMS, "app_id": ""}, {}, "teams.app_id: not set"),
        ({}, {"sandbox": True, "host": "0.0.0.0"}, "--host: the sandbox listens on 127.0.0.1 only"),  # noqa: S104
        (
            {**GOOD_TEAMS, "openid_metadata_url": "http://127.0.0.1:1/oidc"},
            {},
            "teams.openid_metadata_url: endpoint overrides are refused",
        ),
        ({**GOOD_TEAMS, "token_issuer": "https://issuer.example"}, {}, "teams.token_issuer: endpoint overrides"),
        ({**GOOD_TEAMS, "login_url": "https://login.example"}, {}, "teams.login_url: endpoint overrides"),
        ({**GOOD_TEAMS, "tenant_id": ""}, {}, "teams.tenant_id: required for app_type SingleTenant"),
        ({**GOOD_TEAMS, "link_secret": None}, {}, "teams.link_secret: not set"),
        ({**GOOD_TEAMS, "review_channel": None}, {}, "teams.review_channel: not set"),
        ({**GOOD_TEAMS, "review_channel": "19:acme-shared@thread.tacv2"}, {}, "teams.review_channel: is ACME's"),
        ({**GOOD_TEAMS, "rollup_channel": "19:acme-shared@thread.tacv2"}, {}, "teams.rollup_channel: is ACME's"),
    ],
)
def test_settings_refuse_unsafe_start_ups(teams: dict[str, Any], kwargs: dict[str, Any], message: str) -> None:
    from bot.settings import BotSettings

    teams = {k: v for k, v in teams.items() if v is not None}
    with pytest.raises(SettingsError, match=re.escape(message)):
        BotSettings.from_config(_config(**teams), **kwargs)


def test_settings_allow_overrides_when_told_and_the_sandbox_on_loopback() -> None:
    from bot.settings import BotSettings

    settings = BotSettings.from_config(
        _config(
            **GOOD_TEAMS,
            openid_metadata_url="http://127.0.0.1:1/oidc",
            token_issuer=PUBLIC_TOKEN_ISSUER,
            allow_endpoint_overrides=True,
        )
    )
    assert settings.openid_metadata_url == "http://127.0.0.1:1/oidc"
    sandbox = BotSettings.from_config(_config(), sandbox=True)
    assert (sandbox.host, sandbox.auth_enabled) == ("127.0.0.1", False)
    assert sandbox.trusted_service_url("http://127.0.0.1:56150/") and not sandbox.trusted_service_url(
        "https://x.example/"
    )


async def test_healthz_lists_go_only_to_this_host_or_the_token_holder(
    oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    """Through a public ingress (a peer that is not loopback) /healthz gives counts, not the lists
    of customers and reasons."""

    async def health() -> dict[str, Any]:
        return {"store": "ok", "undelivered_cards": 1, "undelivered": ["ACME: Bot Connector 403"]}

    settings = make_settings(oidc=oidc, service_urls=[connector.service_url], metrics_token="tok-123456789")
    app = create_app(settings, BotDeps(bot=EchoBot(), adapter=None, draft_pdf=None, health=health))  # type: ignore[arg-type]
    handler = next(r.handler for r in app.router.routes() if r.resource and r.resource.canonical == "/healthz")

    def request(peer: str, **headers: str) -> Any:
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None: (peer, 443) if name == "peername" else default
        return make_mocked_request("GET", "/healthz", headers=headers, transport=transport, app=app)

    public = json.loads((await handler(request("10.1.2.3"))).body)
    assert public == {"status": "ok", "version": "test", "store": "ok", "undelivered_cards": 1}
    local = json.loads((await handler(request("127.0.0.1"))).body)
    assert local["undelivered"] == ["ACME: Bot Connector 403"]
    token = json.loads((await handler(request("10.1.2.3", Authorization="Bearer tok-123456789"))).body)
    assert token["undelivered"] == ["ACME: Bot Connector 403"]

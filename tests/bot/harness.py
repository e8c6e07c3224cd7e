"""A loopback Bot Framework for end-to-end tests of the bot over real HTTP.

What Teams and the Azure Bot Service would be, on 127.0.0.1:

``FakeOpenIdServer``
    The Bot Framework OpenID metadata document and its JWKS (one RSA key with a ``kid`` and
    ``endorsements: ["msteams"]``), served by stdlib ``http.server`` **in a thread**: botbuilder
    fetches the keys with blocking ``requests.get`` on the event loop, so a server on that loop
    would deadlock (research/teams-graph-contract.md §0). botbuilder caches the metadata per URL
    for a day, process-wide; every server gets a unique URL (random path) so tests never see
    another server's keys. One per test session is enough (see ``tests/bot/conftest.py``).
``TokenMinter``
    Bot Framework channel tokens (``iss``, ``aud`` = the bot's app id, ``serviceurl``, ``nbf``,
    ``exp``) signed RS256 with that key, and every way of getting them wrong: other claims,
    unknown ``kid``, a forged signature, ``alg: none``, HS256 keyed with the public key.
``FakeConnector``
    The Bot Connector the bot replies to (``serviceUrl``): an aiohttp app on the test's own loop
    (botbuilder's outbound calls run in a thread executor, so that is safe). It records every call
    and answers like the connector does (``{"id": ...}``).
``FakeCredentialsFactory``
    Outbound credentials for ``bot.auth.build_adapter(credentials_factory=...)``: an
    ``AppCredentials`` whose ``get_access_token`` returns a fixed string, so no Entra ID is needed
    (research §1.4b). The connector sees ``Authorization: Bearer fake-outbound-token``.
Activity builders
    ``channel_message`` (an @mention in a team channel), ``personal_message``, ``card_action``
    (an ``adaptiveCard/action`` invoke), shaped like what Teams sends.
``BotClient`` / ``running_bot``
    ``running_bot(bot, oidc=..., connector=...)`` starts ``bot.app.create_app`` on a real socket
    with settings pointed at the fakes and yields a ``RunningBot``; ``RunningBot.client.post(activity)``
    signs and POSTs an activity with httpx.

Typical use (with the ``oidc`` and ``connector`` fixtures from ``tests/bot/conftest.py``)::

    async with running_bot(MyBot(), oidc=oidc, connector=connector) as rb:
        response = await rb.client.post(channel_message("run ACME", service_url=connector.service_url))
        assert response.status_code == 201
        [reply] = connector.activities
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from botframework.connector.auth import (
    AppCredentials,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bot.app import create_app
from bot.auth import build_adapter
from bot.deps import BotDeps
from bot.settings import BotSettings

ISSUER = "https://api.botframework.com"  # what Bot Framework channel tokens carry as `iss`
BOT_APP_ID = "6f1c0b1e-0000-4000-8000-00000000b07a"
TENANT_ID = "9a8b7c6d-0000-4000-8000-0000000000aa"
BOT_NAME = "reportbot"
OUTBOUND_TOKEN = "fake-outbound-token"  # noqa: S105 - what the fake credentials send, not a secret
LINK_SECRET = b"tests-only link secret, 32 bytes!"


# --------------------------------------------------------------------------- keys and tokens


@cache
def _rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One RSA key per name per process (generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeOpenIdServer:
    """Bot Framework OpenID metadata + JWKS on 127.0.0.1, in a thread.

    ``metadata_url`` goes into ``BotSettings.openid_metadata_url``. ``requests`` lists the paths
    fetched (botbuilder fetches both documents once per URL, then caches them for a day).
    """

    def __init__(self, *, kid: str = "reportbot-test-key", endorsements: Iterable[str] = ("msteams",)) -> None:
        self.kid = kid
        self.endorsements = list(endorsements)
        self.private_key = _rsa_key("channel")
        self.public_pem = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.requests: list[str] = []
        self._prefix = f"/{uuid.uuid4().hex}"  # a fresh URL: botbuilder's metadata cache is keyed by it
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # documents -----------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        key = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        key.update({"kid": self.kid, "use": "sig", "alg": "RS256", "endorsements": self.endorsements})
        return {"keys": [key]}

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": ISSUER,
            "authorization_endpoint": "https://invalid.example/authorize",
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        }

    # lifecycle -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeOpenIdServer not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._prefix}"

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/.well-known/openidconfiguration"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/keys"

    def start(self) -> FakeOpenIdServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.requests.append(self.path)
                if self.path == f"{owner._prefix}/.well-known/openidconfiguration":
                    self._json(owner.metadata())
                elif self.path == f"{owner._prefix}/keys":
                    self._json(owner.jwks())
                else:
                    self.send_error(404)

            def _json(self, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openid", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            JwtTokenExtractor.metadataCache.pop(self.metadata_url, None)  # botbuilder's process-wide cache
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenIdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


_UNSET: Any = object()


@dataclass
class TokenMinter:
    """Bot Framework channel tokens for one bot, signed by ``oidc``'s key unless told otherwise.

    Every knob defaults to what the real channel sends; override one to make a bad token:

    - ``iss``, ``aud``, ``serviceurl``: claim values (``None`` leaves the claim out);
    - ``exp``, ``nbf``: absolute Unix times (defaults: now + 1 h, now - 1 min); botbuilder allows
      5 minutes of clock skew, so "expired" should be older than that;
    - ``kid``: header key id (default: the server's key);
    - ``alg``: ``"RS256"`` (default), ``"none"`` (unsigned), or ``"HS256"`` (HMAC keyed with the
      server's *public* key PEM: the algorithm-confusion attack);
    - ``forge=True``: RS256 with a different private key under the right ``kid`` (bad signature);
    - ``extra``: more claims.
    """

    oidc: FakeOpenIdServer
    app_id: str = BOT_APP_ID
    now: Callable[[], float] = time.time

    def token(
        self,
        *,
        serviceurl: str | None = _UNSET,
        iss: str | None = ISSUER,
        aud: str | None = _UNSET,
        exp: int | None = _UNSET,
        nbf: int | None = _UNSET,
        kid: str | None = _UNSET,
        alg: str = "RS256",
        forge: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> str:
        if serviceurl is _UNSET:
            raise TypeError("token(): serviceurl= is required (the activity's serviceUrl, or None to omit)")
        now = int(self.now())
        claims: dict[str, Any] = {
            "serviceurl": serviceurl,
            "iss": iss,
            "aud": self.app_id if aud is _UNSET else aud,
            "nbf": now - 60 if nbf is _UNSET else nbf,
            "exp": now + 3600 if exp is _UNSET else exp,
            **(extra or {}),
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        header: dict[str, Any] = {"kid": self.oidc.kid if kid is _UNSET else kid}
        if header["kid"] is None:
            del header["kid"]
        if alg == "RS256":
            key = _rsa_key("forger") if forge else self.oidc.private_key
            return jwt.encode(claims, key, algorithm="RS256", headers=header)
        header = {"alg": alg, "typ": "JWT", **header}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        if alg == "none":
            return signing_input + "."
        if alg == "HS256":  # PyJWT refuses to do this, which is the point of testing that botbuilder does too
            mac = hmac.new(self.oidc.public_pem, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(mac)}"
        raise ValueError(f"alg {alg!r}: RS256, none or HS256")

    def header(self, **knobs: Any) -> str:
        """``Authorization`` header value: ``Bearer <token(**knobs)>``."""
        return f"Bearer {self.token(**knobs)}"


# --------------------------------------------------------------------------- outbound credentials


class FakeAppCredentials(AppCredentials):
    """Outbound credentials that need no Entra ID: ``get_access_token`` returns a fixed string."""

    def __init__(self, app_id: str, token: str = OUTBOUND_TOKEN, oauth_scope: str | None = None) -> None:
        super().__init__(app_id=app_id, oauth_scope=oauth_scope)
        self.token = token

    def get_access_token(self, force_refresh: bool = False) -> str:
        return self.token


class FakeCredentialsFactory(ServiceClientCredentialsFactory):
    """``credentials_factory=`` for ``build_adapter``: same app-id rules as botbuilder's own factory.

    ``created`` records each ``(app_id, oauth_scope, login_endpoint)`` botbuilder asked for.
    """

    def __init__(self, app_id: str, token: str = OUTBOUND_TOKEN) -> None:
        self.app_id = app_id
        self.token = token
        self.created: list[tuple[str, str, str]] = []

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(self.app_id) and app_id == self.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self.app_id

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        self.created.append((app_id, oauth_scope, login_endpoint))
        if not self.app_id:
            return MicrosoftAppCredentials.empty()
        if app_id != self.app_id:
            raise Exception("Invalid app_id")  # what botbuilder's PasswordServiceClientCredentialFactory raises
        return FakeAppCredentials(app_id, self.token, oauth_scope)


# --------------------------------------------------------------------------- the Bot Connector


@dataclass(frozen=True)
class ConnectorCall:
    """One request the bot made to the connector.

    ``kind``: ``send`` (POST .../activities), ``reply`` (POST .../activities/{id}), ``update``
    (PUT .../activities/{id}), ``delete``, ``create`` (POST /v3/conversations), ``get_member``,
    or ``unexpected`` (answered 404). ``conversation_id`` and ``activity_id`` come from the path
    (URL-decoded); ``result_id`` is the id the connector answered with: for ``send`` / ``reply``
    the new message's id (what a card click later names as ``replyToId``), for ``create`` the
    new conversation's id.
    """

    kind: str
    method: str
    path: str
    conversation_id: str | None
    activity_id: str | None
    body: Any
    authorization: str | None
    result_id: str | None = None


class FakeConnector:
    """A Bot Connector on the test's loop; ``service_url`` goes into activities and settings.

    Every request is recorded in ``calls`` (unexpected ones too, answered 404: assert
    ``connector.unexpected == []``). ``members`` maps a user id (``29:...``) to the
    TeamsChannelAccount JSON that ``GET /v3/conversations/{conv}/members/{id}`` returns
    (``TeamsInfo.get_member``); unknown members get the connector's 404.
    """

    def __init__(self, limits: tuple[tuple[float, int], ...] = ()) -> None:
        self.calls: list[ConnectorCall] = []
        self.limits = limits  # (window s, most calls) per conversation, enforced like Teams: 429 + Retry-After
        self._accepted: dict[str, list[float]] = {}  # conversation -> monotonic times of accepted sends/edits
        self.members: dict[str, dict[str, Any]] = {}
        self.on_send: list[
            Callable[[ConnectorCall], None]
        ] = []  # run for every post made (e.g. to show it in FakeGraph)
        self.send_faults: list[tuple[int, bool, str]] = []  # (status, after, code), consumed one per new post
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._server: TestServer | None = None
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{conv}/activities", self._send)
        app.router.add_post("/v3/conversations/{conv}/activities/{id}", self._reply)
        app.router.add_put("/v3/conversations/{conv}/activities/{id}", self._update)
        app.router.add_delete("/v3/conversations/{conv}/activities/{id}", self._delete)
        app.router.add_get("/v3/conversations/{conv}/members/{member}", self._member)
        app.router.add_route("*", "/{tail:.*}", self._unexpected)
        self.app = app

    async def start(self) -> FakeConnector:
        self._server = TestServer(self.app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def service_url(self) -> str:
        assert self._server is not None, "FakeConnector not started"
        return f"http://127.0.0.1:{self._server.port}/"

    # what tests look at ------------------------------------------------------
    @property
    def activities(self) -> list[dict[str, Any]]:
        """Bodies of every activity sent, replied or updated, in order."""
        return [c.body for c in self.calls if c.kind in ("send", "reply", "update")]

    @property
    def unexpected(self) -> list[ConnectorCall]:
        return [c for c in self.calls if c.kind == "unexpected"]

    async def wait_for(self, predicate: Callable[[list[ConnectorCall]], bool], within: float = 5.0) -> None:
        """Wait until ``predicate(calls)`` holds (for work the bot does in the background);
        ``TimeoutError`` after ``within`` seconds."""
        async with asyncio.timeout(within):
            while not predicate(self.calls):
                self._changed.clear()
                await self._changed.wait()

    # handlers ----------------------------------------------------------------
    async def _record(self, kind: str, request: web.Request, result_id: str | None = None) -> ConnectorCall:
        raw = await request.read()
        call = ConnectorCall(
            kind=kind,
            method=request.method,
            path=request.path,
            conversation_id=request.match_info.get("conv"),
            activity_id=request.match_info.get("id"),
            body=json.loads(raw) if raw else None,
            authorization=request.headers.get("Authorization"),
            result_id=result_id,
        )
        self.calls.append(call)
        self._changed.set()
        return call

    def _new_id(self) -> str:
        return f"1{next(self._ids):012d}"

    async def _create(self, request: web.Request) -> web.Response:
        conv = f"19:{uuid.uuid4().hex}@thread.tacv2"
        await self._record("create", request, conv)
        return web.json_response({"id": conv, "activityId": self._new_id(), "serviceUrl": self.service_url}, status=201)

    def fail_sends(self, status: int, *, times: int = 1, after: bool = False, code: str = "") -> None:
        """The next ``times`` new posts are answered ``status``. ``after``: the post is made first
        (it reaches the channel, ``on_send`` runs), then the error: a gateway timing out after
        the Connector accepted the message. Without it the post is refused (kind ``refused``)."""
        default = {
            403: "BotNotInConversationRoster",
            404: "ConversationNotFound",
            429: "Throttled",
            502: "BadGateway",
            503: "ServiceUnavailable",
            504: "GatewayTimeout",
        }.get(status, "Error")
        self.send_faults.extend([(status, after, code or default)] * times)

    def _throttle(self, conversation: str) -> int | None:
        """Seconds the caller must wait (Retry-After) if one more call to ``conversation`` would
        break a limit; else count the call and return ``None``."""
        if not self.limits:
            return None
        now = time.monotonic()
        times = self._accepted.setdefault(conversation, [])
        wait = 0.0
        for window, most in self.limits:
            recent = [t for t in times if t > now - window]
            if len(recent) >= most:
                wait = max(wait, recent[-most] + window - now)
        if wait > 0:
            return max(1, int(wait + 0.999))  # Teams sends whole seconds
        times.append(now)
        longest = max(w for w, _ in self.limits)
        while times and times[0] <= now - longest:
            times.pop(0)
        return None

    async def _throttled(self, request: web.Request, retry_after: int) -> web.Response:
        await self._record("throttled", request)
        error = {"code": "Throttled", "message": "Too many requests to this conversation"}
        return web.json_response({"error": error}, status=429, headers={"Retry-After": str(retry_after)})

    @property
    def throttled(self) -> int:
        """429s answered because a limit in ``limits`` was reached."""
        return sum(1 for c in self.calls if c.kind == "throttled")

    async def _send(self, request: web.Request) -> web.Response:
        retry_after = self._throttle(request.match_info["conv"].split(";")[0])
        if retry_after is not None:
            return await self._throttled(request, retry_after)
        fault = self.send_faults.pop(0) if self.send_faults else None
        if fault is not None and not fault[1]:
            await self._record("refused", request)
            return web.json_response({"error": {"code": fault[2], "message": f"Injected {fault[0]}"}}, status=fault[0])
        call = await self._record("send", request, self._new_id())
        for hook in self.on_send:
            hook(call)
        if fault is not None:
            return web.json_response({"error": {"code": fault[2], "message": f"Injected {fault[0]}"}}, status=fault[0])
        return web.json_response({"id": call.result_id}, status=201)

    async def _reply(self, request: web.Request) -> web.Response:
        call = await self._record("reply", request, self._new_id())
        return web.json_response({"id": call.result_id}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        retry_after = self._throttle(request.match_info["conv"].split(";")[0])
        if retry_after is not None:
            return await self._throttled(request, retry_after)
        call = await self._record("update", request, request.match_info["id"])
        return web.json_response({"id": call.result_id})

    async def _delete(self, request: web.Request) -> web.Response:
        await self._record("delete", request)
        return web.Response(status=200)

    async def _member(self, request: web.Request) -> web.Response:
        await self._record("get_member", request)
        member = self.members.get(request.match_info["member"])
        if member is None:
            error = {"code": "MemberNotFoundInConversation", "message": "The member could not be found."}
            return web.json_response({"error": error}, status=404)
        return web.json_response(member)

    async def _unexpected(self, request: web.Request) -> web.Response:
        await self._record("unexpected", request)
        return web.json_response({"error": {"code": "NotFound", "message": "unexpected request"}}, status=404)


# --------------------------------------------------------------------------- Teams-shaped activities


@dataclass(frozen=True)
class TeamsUser:
    id: str  # Teams MRI, `29:...` (what refresh.userIds takes)
    name: str
    aad_object_id: str  # what approvers / engineers are configured as

    def account(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}


@dataclass(frozen=True)
class TeamsChannel:
    team_id: str  # `19:...@thread.tacv2` of the team's General channel
    channel_id: str  # `19:...@thread.tacv2`
    name: str = "Channel"

    @property
    def aad_group_id(self) -> str:
        """The team's AAD group id (what Graph's ``/teams/{id}`` takes), stable per team."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, self.team_id))


ENGINEER = TeamsUser("29:1engineer-mri", "Alex Engineer", "aad-engineer-0001")
APPROVER = TeamsUser("29:1approver-mri", "Sam Approver", "aad-approver-0002")
STRANGER = TeamsUser("29:1stranger-mri", "Pat Stranger", "aad-stranger-0003")
REVIEW_CHANNEL = TeamsChannel("19:team-msp@thread.tacv2", "19:review@thread.tacv2", "Report review")
ROLLUP_CHANNEL = TeamsChannel("19:team-msp@thread.tacv2", "19:weekly@thread.tacv2", "weekly-reports")

_activity_ids = itertools.count(1_700_000_000_000)


def _base(
    service_url: str,
    user: TeamsUser,
    conversation: dict[str, Any],
    channel_data: dict[str, Any],
    bot_id: str,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": str(next(_activity_ids)),
        "timestamp": "2026-11-16T08:00:00.000Z",
        "localTimestamp": "2026-11-16T09:00:00.000+01:00",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": user.account(),
        "conversation": conversation,
        "recipient": {"id": f"28:{bot_id}", "name": BOT_NAME},
        "channelData": channel_data,
        "locale": "en-US",
        **fields,
    }


def _channel_parts(channel: TeamsChannel, root_id: str, tenant_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    conversation = {
        "isGroup": True,
        "conversationType": "channel",
        "tenantId": tenant_id,
        "id": f"{channel.channel_id};messageid={root_id}",
    }
    channel_data = {
        "teamsChannelId": channel.channel_id,
        "teamsTeamId": channel.team_id,
        "channel": {"id": channel.channel_id, "name": channel.name},
        "team": {"id": channel.team_id, "aadGroupId": channel.aad_group_id},
        "tenant": {"id": tenant_id},
    }
    return conversation, channel_data


def channel_message(
    text: str,
    *,
    service_url: str,
    channel: TeamsChannel = REVIEW_CHANNEL,
    user: TeamsUser = ENGINEER,
    bot_id: str = BOT_APP_ID,
    tenant_id: str = TENANT_ID,
    mention: bool = True,
) -> dict[str, Any]:
    """A new post in a team channel, ``@reportbot <text>``, as Teams delivers it (HTML-ish text,
    a ``mention`` entity for the bot, ``conversation.id`` = ``<channel>;messageid=<this post>``)."""
    activity_id = str(next(_activity_ids))
    conversation, channel_data = _channel_parts(channel, activity_id, tenant_id)
    at = f"<at>{BOT_NAME}</at>"
    entities: list[dict[str, Any]] = [
        {"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web", "timezone": "Europe/London"}
    ]
    if mention:
        entities.insert(0, {"type": "mention", "text": at, "mentioned": {"id": f"28:{bot_id}", "name": BOT_NAME}})
    activity = _base(
        service_url,
        user,
        conversation,
        channel_data,
        bot_id,
        type="message",
        textFormat="plain",
        text=f"{at} {text}" if mention else text,
        entities=entities,
    )
    activity["id"] = activity_id
    return activity


def installation_update(
    *,
    service_url: str,
    team: TeamsChannel = REVIEW_CHANNEL,
    action: str = "add",
    user: TeamsUser = ENGINEER,
    bot_id: str = BOT_APP_ID,
    tenant_id: str = TENANT_ID,
) -> dict[str, Any]:
    """What Teams sends when the app is installed in (``add``) or removed from (``remove``) a
    team: the conversation is the team's General channel (its id is the team id), and
    ``channelData`` names the team, its AAD group, the tenant and the channel picked in the
    install dialog (msteams-docs ``subscribe-to-conversation-events.md``, "Installation update event")."""
    conversation = {"isGroup": True, "conversationType": "channel", "tenantId": tenant_id, "id": team.team_id}
    channel_data = {
        "settings": {"selectedChannel": {"id": team.team_id}},
        "channel": {"id": team.team_id},
        "team": {"aadGroupId": team.aad_group_id, "name": "MSP", "id": team.team_id},
        "tenant": {"id": tenant_id},
        "source": {"name": "message"},
    }
    activity = _base(service_url, user, conversation, channel_data, bot_id, type="installationUpdate", action=action)
    activity["id"] = f"f:{next(_activity_ids)}"
    activity.pop("localTimestamp", None)
    return activity


def bot_added_to_team(
    *,
    service_url: str,
    team: TeamsChannel = REVIEW_CHANNEL,
    user: TeamsUser = ENGINEER,
    bot_id: str = BOT_APP_ID,
    tenant_id: str = TENANT_ID,
) -> dict[str, Any]:
    """The ``conversationUpdate`` Teams sends with the installation: the bot among ``membersAdded``
    (``eventType`` ``teamMemberAdded``), in the team's General channel."""
    conversation = {"isGroup": True, "conversationType": "channel", "tenantId": tenant_id, "id": team.team_id}
    channel_data = {
        "team": {"aadGroupId": team.aad_group_id, "name": "MSP", "id": team.team_id},
        "eventType": "teamMemberAdded",
        "tenant": {"id": tenant_id},
    }
    activity = _base(
        service_url,
        user,
        conversation,
        channel_data,
        bot_id,
        type="conversationUpdate",
        membersAdded=[{"id": f"28:{bot_id}"}],
    )
    activity["id"] = f"f:{next(_activity_ids)}"
    activity.pop("localTimestamp", None)
    return activity


def personal_message(
    text: str, *, service_url: str, user: TeamsUser = ENGINEER, bot_id: str = BOT_APP_ID, tenant_id: str = TENANT_ID
) -> dict[str, Any]:
    """A 1:1 chat message to the bot (no mention)."""
    conversation = {"conversationType": "personal", "tenantId": tenant_id, "id": f"a:1personal-{user.aad_object_id}"}
    return _base(
        service_url,
        user,
        conversation,
        {"tenant": {"id": tenant_id}},
        bot_id,
        type="message",
        textFormat="plain",
        text=text,
        entities=[{"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web"}],
    )


def card_action(
    verb: str,
    data: dict[str, Any],
    *,
    service_url: str,
    reply_to_id: str,
    channel: TeamsChannel | None = REVIEW_CHANNEL,
    user: TeamsUser = ENGINEER,
    bot_id: str = BOT_APP_ID,
    tenant_id: str = TENANT_ID,
    trigger: str = "manual",
) -> dict[str, Any]:
    """An ``Action.Execute`` click: an ``invoke`` named ``adaptiveCard/action`` whose
    ``value.action`` has ``verb`` and ``data`` (the card's data merged with every Input.* value by id).
    ``reply_to_id`` is the id of the message that carries the card. ``channel=None``: a personal chat.
    """
    if channel is None:
        conversation: dict[str, Any] = {
            "conversationType": "personal",
            "tenantId": tenant_id,
            "id": f"a:1personal-{user.aad_object_id}",
        }
        channel_data: dict[str, Any] = {"tenant": {"id": tenant_id}, "source": {"name": "message"}}
    else:
        conversation, channel_data = _channel_parts(channel, reply_to_id, tenant_id)
        channel_data["source"] = {"name": "message"}
    value = {
        "action": {"type": "Action.Execute", "id": f"{verb}-button", "verb": verb, "data": data},
        "trigger": trigger,
    }
    return _base(
        service_url,
        user,
        conversation,
        channel_data,
        bot_id,
        type="invoke",
        name="adaptiveCard/action",
        value=value,
        replyToId=reply_to_id,
    )


# --------------------------------------------------------------------------- settings and the running app


def make_settings(
    *,
    oidc: FakeOpenIdServer | None,
    service_urls: Iterable[str],
    public_url: str = "",
    port: int = 3978,
    **overrides: Any,
) -> BotSettings:
    """BotSettings for tests: app id ``BOT_APP_ID``, SingleTenant, pointed at ``oidc``.

    ``ENGINEER`` is an engineer, ``APPROVER`` the approver; ``REVIEW_CHANNEL`` / ``ROLLUP_CHANNEL``
    are configured. ``overrides`` replace any field (e.g. ``app_id=""`` with ``sandbox=True``).
    """
    settings = BotSettings(
        app_id=BOT_APP_ID,
        app_password="tests-only-password",  # noqa: S106 - never leaves the process (fake credentials)
        app_tenant_id=TENANT_ID,
        app_type="SingleTenant",
        sandbox=False,
        host="127.0.0.1",
        port=port,
        public_url=public_url or f"http://127.0.0.1:{port}",
        link_secret=LINK_SECRET,
        link_ttl_seconds=3600.0,
        max_body_bytes=64 * 1024,
        service_urls=tuple(service_urls),
        approvers=frozenset({APPROVER.aad_object_id}),
        engineers=frozenset({ENGINEER.aad_object_id}),
        review_channel=REVIEW_CHANNEL.channel_id,
        rollup_channel=ROLLUP_CHANNEL.channel_id,
        openid_metadata_url=oidc.metadata_url if oidc else "",
        token_issuer=ISSUER if oidc else "",
        login_url="",
        version="test",
    )
    return dataclasses.replace(settings, **overrides)


class BotClient:
    """POSTs activities to a running app over real HTTP (httpx), signed by ``minter``."""

    def __init__(self, base_url: str, minter: TokenMinter | None) -> None:
        self.base_url = base_url
        self.minter = minter
        self.http = httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=10.0)

    async def post(
        self,
        activity: dict[str, Any],
        *,
        authorization: str | None = _UNSET,
        headers: dict[str, str] | None = None,
        **token_knobs: Any,
    ) -> httpx.Response:
        """POST ``activity`` to ``/api/messages``.

        By default it carries a valid token whose ``serviceurl`` is the activity's; ``token_knobs``
        (see ``TokenMinter.token``) change it; ``authorization=None`` sends no header and a string
        sends exactly that header.
        """
        if authorization is _UNSET:
            assert self.minter is not None, "no minter: pass authorization="
            token_knobs.setdefault("serviceurl", activity.get("serviceUrl"))
            authorization = self.minter.header(**token_knobs)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if authorization is not None:
            sent["Authorization"] = authorization
        return await self.http.post("/api/messages", content=json.dumps(activity).encode(), headers=sent)

    async def get(self, url_or_path: str) -> httpx.Response:
        """GET a path, or a full URL the bot made (e.g. a signed PDF link), from this server."""
        path = httpx.URL(url_or_path).raw_path.decode() if "://" in url_or_path else url_or_path
        return await self.http.get(path)

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class RunningBot:
    """What ``running_bot`` yields."""

    settings: BotSettings
    adapter: Any
    bot: Any
    deps: BotDeps
    app: web.Application
    credentials: FakeCredentialsFactory
    connector: FakeConnector
    minter: TokenMinter | None
    client: BotClient
    base_url: str
    extras: dict[str, Any] = field(default_factory=dict)


async def _no_pdf(draft_id: str, version: int) -> bytes | None:
    return None


async def _healthy() -> dict[str, Any]:
    return {"store": "ok"}


BotFactory = Callable[[BotSettings, Any], Any]


@asynccontextmanager
async def running_bot(
    bot: Any | BotFactory,
    *,
    oidc: FakeOpenIdServer | None,
    connector: FakeConnector,
    draft_pdf: Callable[[str, int], Awaitable[bytes | None]] = _no_pdf,
    health: Callable[[], Awaitable[dict[str, Any]]] = _healthy,
    **settings_overrides: Any,
) -> AsyncIterator[RunningBot]:
    """``bot.app.create_app`` listening on 127.0.0.1, wired to the fakes.

    ``bot`` is an ActivityHandler, or a factory ``(settings, adapter) -> ActivityHandler`` for a bot
    that needs them (proactive messages need the adapter and the app id). The socket is bound
    before the settings are made, so ``settings.public_url`` is the real address and signed links
    the bot makes can be fetched with ``client.get(url)``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings_overrides.setdefault("service_urls", (connector.service_url,))
    settings = make_settings(oidc=oidc, port=port, **settings_overrides)
    credentials = FakeCredentialsFactory(settings.app_id)
    adapter = build_adapter(settings, credentials_factory=credentials)
    is_handler = hasattr(bot, "on_turn") and not isinstance(bot, type)
    handler = bot if is_handler else bot(settings, adapter)
    deps = BotDeps(bot=handler, adapter=adapter, draft_pdf=draft_pdf, health=health)
    app = create_app(settings, deps)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    base_url = f"http://127.0.0.1:{port}"
    minter = TokenMinter(oidc, app_id=settings.app_id or BOT_APP_ID) if oidc else None
    client = BotClient(base_url, minter)
    try:
        yield RunningBot(settings, adapter, handler, deps, app, credentials, connector, minter, client, base_url)
    finally:
        await client.aclose()
        await runner.cleanup()

"""Inbound and outbound Bot Framework authentication: the only module that configures botbuilder's auth.

``build_adapter(settings)`` makes the CloudAdapter. It always uses botbuilder's *parameterized*
authentication (research/teams-graph-contract.md §1.3): with no endpoint overrides it is given the
public-cloud constants explicitly (OpenID metadata, token issuer, login URL, scope, caller id), so
production and the loopback tests run one code path, and nothing process-global
(``ChannelValidation.open_id_metadata_endpoint``) is touched.

``authenticate(adapter, activity, auth_header)`` runs botbuilder's inbound check on its own, before
any bot code, and turns *every* way it can fail into ``AuthenticationError`` (the app answers 401).
botbuilder 4.17.1 signals a bad token in many ways — ``PermissionError`` for claim mismatches, PyJWT
errors for a bad signature / expiry / garbage, a bare ``Exception`` for a disallowed ``alg`` or a
missing endorsement, ``IndexError`` for an unknown ``kid``, ``AttributeError`` for a missing header —
and ``CloudAdapter.process`` lets all but the first become 500. Catching broadly is safe here because
only botbuilder's validation runs inside the ``try``: the bot's turn runs later, through
``adapter.process_activity(result, ...)``, outside it, so a bug in the bot stays a 500.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import requests
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.integration.aiohttp.configuration_service_client_credential_factory import (
    ConfigurationServiceClientCredentialFactory,
)
from botbuilder.schema import Activity, CallerIdConstants
from botframework.connector.auth import (
    AppCredentials,
    AuthenticateRequestResult,
    AuthenticationConstants,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)
from msal import ConfidentialClientApplication
from msrest.authentication import Authentication

from bot.settings import PUBLIC_OPENID_METADATA, PUBLIC_TOKEN_ISSUER, BotSettings

log = logging.getLogger(__name__)

PUBLIC_LOGIN_URL = AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX  # https://login.microsoftonline.com/
PUBLIC_OAUTH_SCOPE = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE  # https://api.botframework.com
PUBLIC_OAUTH_URL = AuthenticationConstants.OAUTH_URL


class AuthenticationError(Exception):
    """The request is not authenticated. ``str(err)`` is a reason safe to log: it never holds the token."""


@dataclass(frozen=True)
class BotFrameworkConfig:
    """The attribute bag ``ConfigurationBotFrameworkAuthentication`` reads (research §1.2)."""

    APP_ID: str
    APP_PASSWORD: str
    APP_TENANTID: str
    APP_TYPE: str
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str = PUBLIC_OAUTH_SCOPE
    OAUTH_URL: str = PUBLIC_OAUTH_URL
    CALLER_ID: Any = CallerIdConstants.public_azure_channel
    VALIDATE_AUTHORITY: bool = True  # False for a login_url override: no Microsoft instance discovery for it

    def __repr__(self) -> str:  # never show the password
        return f"BotFrameworkConfig(APP_ID={self.APP_ID!r}, APP_TYPE={self.APP_TYPE!r}, ...)"


def bot_framework_config(settings: BotSettings) -> BotFrameworkConfig:
    """Settings -> botbuilder configuration. Unset endpoint overrides fall back to the public cloud.

    With no app id (``--sandbox`` only) the app type is ``MultiTenant``: botbuilder's only type that
    accepts an empty app id, which is what disables authentication for header-less requests.
    """
    app_type = settings.app_type if settings.app_id else "MultiTenant"
    return BotFrameworkConfig(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password,
        APP_TENANTID=settings.app_tenant_id,
        APP_TYPE=app_type,
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=settings.openid_metadata_url or PUBLIC_OPENID_METADATA,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=settings.token_issuer or PUBLIC_TOKEN_ISSUER,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=settings.login_url or PUBLIC_LOGIN_URL,
        VALIDATE_AUTHORITY=not settings.login_url,
    )


def _fast_retry_policy() -> None:
    """msrest builds every connector client's retry policy with ``[i for i in range(999) if i not
    in safe_codes]`` over a 500-item *list*: ~5 ms of CPU on the event loop per client, and
    botbuilder makes a client per turn and per proactive message (0.5 s of the loop for 50
    approves at once). The same codes as a frozenset give the same policy in microseconds."""
    from msrest.universal_http.requests import ClientRetryPolicy

    if not isinstance(ClientRetryPolicy.safe_codes, frozenset):
        codes = frozenset(ClientRetryPolicy.safe_codes)
        ClientRetryPolicy.safe_codes = codes  # type: ignore[assignment]  # msrest types it as a list


class SharedCredentials(ServiceClientCredentialsFactory):
    """One outbound credentials object per (app id, scope, login endpoint) for the whole process.

    botbuilder asks its factory for credentials on every turn and every proactive message, and
    botbuilder's own factory answers with a new ``MicrosoftAppCredentials`` each time: a new MSAL
    application, so a new OpenID-configuration fetch and a new Entra token for every Bot Connector
    call. Kept here, MSAL's in-memory cache serves the token until it is close to expiry (MSAL
    renews it five minutes before): one token request per scope per hour.

    MSAL's token request is synchronous (``requests``); botbuilder calls ``get_access_token`` on the
    event loop while it signs a request. So each hand-out first asks for the token in a worker
    thread: a cached token costs a thread hop, a renewal blocks the thread, never the loop.

    A login endpoint other than the public cloud's (``[teams] login_url``: a sovereign cloud or the
    tests' loopback Entra ID) is the full authority including the tenant. botbuilder hands its
    ``validate_authority`` to the credentials but never to MSAL; here MSAL gets it, so a private
    authority is not sent to Microsoft's instance discovery.
    """

    def __init__(self, inner: ServiceClientCredentialsFactory) -> None:
        self.inner = inner
        self._made: dict[tuple[str, str, str, bool], Authentication] = {}
        self.created = 0  # credentials objects made (the rest of the calls were served from ``_made``)

    async def is_valid_app_id(self, app_id: str) -> bool:
        return await self.inner.is_valid_app_id(app_id)

    async def is_authentication_disabled(self) -> bool:
        return await self.inner.is_authentication_disabled()

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> Authentication:
        key = (app_id, oauth_scope, login_endpoint, validate_authority)
        credentials = self._made.get(key)
        if credentials is None:
            credentials = await self.inner.create_credentials(app_id, oauth_scope, login_endpoint, validate_authority)
            password_based = isinstance(credentials, MicrosoftAppCredentials) and credentials.microsoft_app_id
            if password_based and credentials.app is None:
                credentials.app = ConfidentialClientApplication(
                    client_id=credentials.microsoft_app_id,
                    client_credential=credentials.microsoft_app_password,
                    authority=credentials.oauth_endpoint,
                    validate_authority=validate_authority,
                )
            self.created += 1
            self._made[key] = credentials
        if isinstance(credentials, AppCredentials) and credentials.microsoft_app_id:
            await asyncio.to_thread(credentials.get_access_token)  # from MSAL's cache, or renewed off the loop
        return credentials


def build_adapter(
    settings: BotSettings, *, credentials_factory: ServiceClientCredentialsFactory | None = None
) -> CloudAdapter:
    """The CloudAdapter for these settings.

    ``credentials_factory`` replaces botbuilder's outbound credentials (tests pass a fake whose
    ``get_access_token`` needs no Entra ID; research §1.4b). Left ``None``, botbuilder builds them
    from APP_ID / APP_PASSWORD / APP_TENANTID / APP_TYPE (SingleTenant, MultiTenant, UserAssignedMSI).
    Either way they are made once per scope and reused (``SharedCredentials``).
    """
    _fast_retry_policy()
    config = bot_framework_config(settings)
    shared = SharedCredentials(credentials_factory or ConfigurationServiceClientCredentialFactory(config))
    return CloudAdapter(ConfigurationBotFrameworkAuthentication(config, credentials_factory=shared))


async def connector_token(settings: BotSettings) -> str:
    """A token for the Bot Connector, minted the way the adapter mints it: the same botbuilder
    credentials factory (app password, or the user-assigned managed identity), the same scope,
    login endpoint (``[teams] login_url`` or the public cloud) and authority validation, through
    :class:`SharedCredentials` (``reportbot config check --live``). botbuilder's refusal is the
    ``PermissionError`` its credentials raise, naming Entra ID's AADSTS code (never the secret)."""
    config = bot_framework_config(settings)
    shared = SharedCredentials(ConfigurationServiceClientCredentialFactory(config))
    credentials = await shared.create_credentials(
        config.APP_ID,
        config.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
        config.TO_CHANNEL_FROM_BOT_LOGIN_URL,
        config.VALIDATE_AUTHORITY,
    )
    if not isinstance(credentials, AppCredentials):
        raise PermissionError(f"botbuilder made no app credentials for app {config.APP_ID!r}")
    return str(await asyncio.to_thread(credentials.get_access_token))  # from MSAL's cache: minted just now


def _reason(err: BaseException, token: str) -> str:
    """A loggable reason for ``err``: type and message, with anything token-like cut out."""
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    text = "".join(c if c.isprintable() else "?" for c in text)  # claims are the caller's text: one log line
    for piece in (token, *token.split(".")):
        if len(piece) >= 8:
            text = text.replace(piece, "<token>")
    return text[:200]


async def authenticate(adapter: CloudAdapter, activity: Activity, auth_header: str | None) -> AuthenticateRequestResult:
    """botbuilder's inbound authentication of ``activity``, every failure as ``AuthenticationError``.

    A missing or empty header is passed on as ``None`` (not ``""`` as ``CloudAdapter.process`` does),
    which botbuilder's parameterized path treats as "no header": accepted anonymously only when the
    app has no app id (the sandbox), refused otherwise. A header that is present is always validated.
    """
    header = auth_header or None
    token = header.partition(" ")[2] if header else ""
    try:
        result = await adapter.bot_framework_authentication.authenticate_request(activity, header)
    except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as err:
        # The OpenID metadata / JWKS could not be fetched: nobody can be authenticated. Fail closed,
        # but say so loudly, since this is the operator's problem, not the caller's. (Other
        # RequestExceptions, e.g. the missing emulator metadata URL an emulator-issued token leads
        # to, are the caller's problem and logged as rejections below.)
        log.error("inbound auth: cannot fetch the Bot Framework signing keys (%s)", _reason(err, token))
        raise AuthenticationError("signing keys unavailable") from err
    except Exception as err:  # noqa: BLE001 - see the module docstring: only botbuilder's validation runs here
        reason = _reason(err, token)
        log.warning("inbound auth: rejected %r activity on channel %r: %s", activity.type, activity.channel_id, reason)
        raise AuthenticationError(reason) from err
    identity = result.claims_identity if result else None
    if identity is None or not identity.is_authenticated:
        log.warning("inbound auth: rejected %r activity: no authenticated identity", activity.type)
        raise AuthenticationError("no authenticated identity")
    return result

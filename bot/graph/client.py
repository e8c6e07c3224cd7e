"""The Microsoft Graph client every part of ``bot.graph`` goes through: the msgraph-sdk client
and its azure-identity credential, the errors (:class:`GraphUnavailable`, ``PermanentError``),
the retry loop (:class:`GraphCalls`), the per-mailbox :class:`SlidingWindowLimiter`, and the
SDK workaround that imports msgraph's request builders up front.

Retries: msgraph's own retry handler is switched off (it re-sends a POST blindly — a duplicate
email after a 503 — and never retries an upload); :meth:`GraphCalls.call` retries 429, 503,
504 and connection failures itself, waiting ``Retry-After``, and runs a look-up before
repeating any request that creates something. Errors a retry cannot fix (400, 403, 404, ...)
become ``bot.delivery.PermanentError`` naming Graph's error code and message; anything else is
transient (:class:`GraphUnavailable`) and the step is repeated on the next run, same key.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from kiota_abstractions.api_error import APIError
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as msgraph_default_options
from msgraph_core import GraphClientFactory

from bot.delivery import PermanentError
from connectors.http import retry_after_seconds
from reporting.config import Config

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.microsoft.com/v1.0"
RETRY_STATUSES = frozenset({429, 503, 504})
TRANSIENT_STATUSES = frozenset({401, 408, 423, 429}) | frozenset(range(500, 600))

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def _import_builders_quietly() -> dict[str, ModuleType]:
    """msgraph 1.65's request builders each warn (DeprecationWarning, from a class body) when
    first imported — and the SDK imports them lazily, in the middle of a request. Import the
    ones this package's calls go through now, with just those warnings silenced, so neither the
    service nor the test suite (warnings are errors there) meets them. A builder missing here
    shows up as a DeprecationWarning in tests/bot/test_graph_delivery.py."""
    names = ["kiota_abstractions.default_query_parameters"] + [
        f"msgraph.generated.{m}_request_builder"
        for m in (
            "users.users",
            "users.item.user_item",
            "users.item.send_mail.send_mail",
            "users.item.messages.messages",
            "users.item.messages.item.message_item",
            "users.item.messages.item.send.send",
            "users.item.messages.item.attachments.attachments",
            "users.item.messages.item.attachments.create_upload_session.create_upload_session",
            "sites.sites",
            "sites.item.site_item",
            "sites.item.drives.drives",
            "drives.drives",
            "drives.item.drive_item",
            "drives.item.items.items",
            "drives.item.items.item.drive_item_item",
            "drives.item.items.item.children.children",
            "drives.item.items.item.content.content",
            "drives.item.items.item.create_upload_session.create_upload_session",
            "teams.teams",
            "teams.item.team_item",
            "teams.item.channels.channels",
            "teams.item.channels.item.channel_item",
            "teams.item.channels.item.files_folder.files_folder",
            "teams.item.channels.item.tabs.tabs",
            "teams.item.channels.item.tabs.item.teams_tab_item",
            "teams.item.channels.item.messages.messages",
        )
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(msgraph|kiota_abstractions)\.")
        return {
            name.removeprefix("msgraph.generated.").removesuffix("_request_builder"): importlib.import_module(name)
            for name in names
        }


#: The request builder modules, by their path under ``msgraph.generated`` (e.g. ``"users.item.messages.messages"``).
BUILDERS = _import_builders_quietly()


class GraphUnavailable(Exception):  # noqa: N818 - a condition, like the connectors' "unavailable"
    """A transient failure (throttled beyond patience, 5xx, network, 401): the step stays
    ``running`` and is repeated on the next run with the same key."""


class SlidingWindowLimiter:
    """At most ``limit`` units in any ``window`` seconds (a sliding window, not buckets).

    ``acquire(n)`` waits until ``n`` more units fit, then records them; a single request larger
    than ``limit`` waits for an empty window. Waits use the injected ``sleep`` and ``clock``."""

    def __init__(self, limit: float, window: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        self.limit, self.window = limit, window
        self._clock, self._sleep = clock, sleep
        self._events: deque[tuple[float, float]] = deque()
        self._used = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._events and self._events[0][0] <= now - self.window:
                    self._used -= self._events.popleft()[1]
                if not self._events or self._used + amount <= self.limit:
                    self._events.append((now, amount))
                    self._used += amount
                    return
                await self._sleep(self._events[0][0] + self.window - now)


def build_graph_client(
    credential: Any,
    base_url: str = DEFAULT_BASE_URL,
) -> tuple[GraphServiceClient, Callable[[], Awaitable[None]]]:
    """A ``GraphServiceClient`` on ``base_url`` with msgraph's default middleware except retries
    (see the module docstring); the token goes to ``base_url``'s host only. ``credential``: any
    azure-identity async credential (or an object with ``async get_token(*scopes, **kw)``).
    Returns the client and the coroutine function that closes its connections (msgraph-core's
    transport wrapper does not close the transport it wraps, so the pool is closed here)."""
    options = dict(msgraph_default_options)
    options[RetryHandlerOption.get_key()] = RetryHandlerOption(max_retries=0, should_retry=False)
    transport = httpx.AsyncHTTPTransport(http2=True)
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(100.0, connect=30.0)), options=options
    )
    host = urlsplit(base_url).hostname or "graph.microsoft.com"
    provider = AzureIdentityAuthenticationProvider(credential, scopes=[graph_scope(base_url)], allowed_hosts=[host])
    adapter = GraphRequestAdapter(provider, http)
    adapter.base_url = base_url.rstrip("/")

    async def close() -> None:
        await http.aclose()
        await transport.aclose()

    return GraphServiceClient(request_adapter=adapter), close


def graph_scope(base_url: str) -> str:
    """The token scope for Graph at ``base_url``: its origin's ``/.default`` without the port
    (``https://graph.microsoft.com/.default``), as kiota derives it; passed to the SDK explicitly
    so the client and ``config check --live`` ask for the same token."""
    parts = urlsplit(base_url)
    return f"{parts.scheme or 'https'}://{parts.hostname or 'graph.microsoft.com'}/.default"


def graph_credential(
    tenant_id: str,
    client_id: str = "",
    *,
    client_secret: str | None = None,
    certificate_path: str | None = None,
    managed_identity: bool = False,
    authority: str | None = None,
    ca_bundle: str | None = None,
) -> Any:
    """The azure-identity (async) credential for the app: a client secret, a certificate (PEM or
    PKCS12 file), or the host's managed identity (``client_id`` picks a user-assigned one).
    ``authority`` (an Entra ID host other than the public cloud's) is used without instance
    discovery; ``ca_bundle`` is the CA file azure-identity verifies it with (``connection_verify``).
    The caller closes it (``await credential.close()``)."""
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    if managed_identity:
        return ManagedIdentityCredential(client_id=client_id or None)
    if not tenant_id or not client_id:
        raise ValueError("a client secret or certificate credential needs tenant_id and client_id")
    kw: dict[str, Any] = {}
    if authority:
        kw.update(authority=authority, disable_instance_discovery=True)
    if ca_bundle:
        kw["connection_verify"] = ca_bundle
    if certificate_path:
        return CertificateCredential(tenant_id, client_id, certificate_path, **kw)
    if client_secret:
        return ClientSecretCredential(tenant_id, client_id, client_secret, **kw)
    raise ValueError("give client_secret, certificate_path or managed_identity=True")


def config_credential(config: Config) -> Any:
    """The Graph credential ``[graph] auth`` names, for the ``[teams]`` app (the one ``serve``
    delivers with and ``config check --live`` tests). Raises ``ValueError`` naming what is missing."""
    t, g = config.teams, config.graph
    return graph_credential(
        t.tenant_id,
        t.app_id,
        client_secret=t.app_password.get_secret_value() if g.auth == "secret" and t.app_password else None,
        certificate_path=(g.certificate_path or None) if g.auth == "certificate" else None,
        managed_identity=g.auth == "managed_identity",
        authority=g.authority or None,
        ca_bundle=g.ca_bundle or None,
    )


class GraphCalls:
    """The retry policy every Graph request in ``bot.graph`` goes through: at most
    ``max_attempts`` attempts, a ``Retry-After`` longer than ``max_retry_after`` seconds given up
    on (transient), ``settle_checks`` look-ups ``settle_delay`` apart after an ambiguous failure.
    Waits use the injected ``sleep``."""

    def __init__(
        self,
        *,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 5,
        max_retry_after: float = 120.0,
        settle_checks: int = 3,
        settle_delay: float = 5.0,
    ) -> None:
        self.sleep = sleep
        self.max_attempts, self.max_retry_after = max_attempts, max_retry_after
        self.settle_checks, self.settle_delay = settle_checks, settle_delay

    async def call(
        self, what: str, fn: Callable[[], Awaitable[T]], recheck: Callable[[], Awaitable[Any]] | None = None
    ) -> Any:
        """``await fn()``, retrying 429/503/504 and connection failures after ``Retry-After`` (or
        a backoff). ``recheck`` (for requests that create something) runs before each repeat: a
        non-None result means the first attempt took effect after all, and is returned instead.
        After an ambiguous failure (not a 429) it is asked ``settle_checks`` times, ``settle_delay``
        apart, since a message accepted by Exchange reaches Sent Items a moment later."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except APIError as err:
                status = err.response_status_code or 0
                if status not in RETRY_STATUSES or attempt >= self.max_attempts:
                    raise translate(what, err) from err
                delay, ambiguous = self.delay(err.response_headers or {}, attempt, what), status != 429
                log.warning("%s: Graph %s; retrying in %.1f s", what, status, delay)
            except httpx.TransportError as err:
                if attempt >= self.max_attempts:
                    raise GraphUnavailable(f"{what}: {type(err).__name__}") from err
                delay, ambiguous = backoff(attempt), True
                log.warning("%s: %s; retrying in %.1f s", what, type(err).__name__, delay)
            await self.sleep(delay)
            if recheck is not None:
                for check in range(self.settle_checks if ambiguous else 1):
                    if check:
                        await self.sleep(self.settle_delay)
                    done = await recheck()
                    if done is not None:
                        log.info("%s: it took effect before the failure; not repeated", what)
                        return done

    def delay(self, headers: Any, attempt: int, what: str) -> float:
        """How long to wait before attempt ``attempt + 1``: the response's ``Retry-After`` (the
        project's one parser, ``connectors.http.retry_after_seconds``), else a backoff."""
        delay = retry_after_seconds(
            headers.get("Retry-After") or headers.get("retry-after"), datetime.fromtimestamp(self._now_utc(), UTC)
        )
        if delay is None:
            return backoff(attempt)
        if delay > self.max_retry_after:
            raise GraphUnavailable(f"{what}: throttled for {delay:.0f} s; the step is repeated on the next run")
        return delay

    @staticmethod
    def _now_utc() -> float:
        return time.time()


def translate(what: str, err: APIError) -> Exception:
    """An SDK error as ``GraphUnavailable`` (transient status, or none) or ``PermanentError``."""
    status = err.response_status_code or 0
    code, message = "", err.message or ""
    if isinstance(err, ODataError) and err.error is not None:
        code, message = err.error.code or "", err.error.message or message
    text = f"{what}: Graph {status} {code}: {message}" if code else f"{what}: Graph {status}: {message}"
    if status in TRANSIENT_STATUSES or not status:
        return GraphUnavailable(text)
    return PermanentError(text)


def backoff(attempt: int) -> float:
    return min(60.0, 2.0**attempt)


def values(page: Any) -> list[Any]:
    """A collection response's ``value`` (first page: the backend asks for few enough)."""
    return list(page.value) if page is not None and page.value else []

"""The Microsoft Graph delivery backend (production): ``bot.delivery.DeliveryBackend`` over
msgraph-sdk and an azure-identity credential.

- ``send_email``: ``users/{mailbox}/sendMail`` with the PDF inline when it is under 3 MB, else a
  draft + attachment upload session + ``send``. Every message carries the delivery id in a
  single-value extended property (:data:`DELIVERY_ID_PROPERTY`); before sending — and before
  any re-send after an ambiguous failure — the mailbox is searched for that property, so a
  step repeated after a crash or a 503-after-accept never sends a second email.
- ``archive``: SharePoint ``<library>/<sharepoint_folder>/<YYYY>/<CODE>-weekly-<YYYY-MM-DD>.pdf``,
  each folder level created as needed, the file written with ``conflictBehavior=replace``.
- ``post_channel``: the PDF into the channel's ``filesFolder`` (replace), and the channel's
  "Weekly report" website tab pointed at it (created once, PATCHed weekly). Graph cannot pin a
  channel message; the card message is posted by the bot (botbuilder, proactive) — pass
  ``announce`` to have it done inside this step.

Retries: msgraph's own retry handler is switched off (it re-sends a POST blindly — a duplicate
email after a 503 — and never retries an upload); :meth:`GraphBackend._call` retries 429, 503,
504 and connection failures itself, waiting ``Retry-After``, and runs a look-up before
repeating any request that creates something. The upload sessions' byte ranges are PUT here
(not with msgraph-core's ``LargeFileUploadTask``), to the ``uploadUrl`` without an
Authorization header. Errors a retry cannot fix (400, 403, 404, ...) become
``bot.delivery.PermanentError`` naming Graph's error code and message; anything else is
transient (:class:`GraphUnavailable`) and the step is repeated on the next run, same key.

See docs/delivery.md for the permissions this needs.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import math
import re
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphServiceClient
from msgraph.generated.drives.item.items.item.create_upload_session.create_upload_session_post_request_body import (
    CreateUploadSessionPostRequestBody as DriveUploadSessionBody,
)
from msgraph.generated.models.attachment_item import AttachmentItem
from msgraph.generated.models.attachment_type import AttachmentType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.drive_item_uploadable_properties import DriveItemUploadableProperties
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.folder import Folder
from msgraph.generated.models.internet_message_header import InternetMessageHeader
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.models.teams_tab import TeamsTab
from msgraph.generated.models.teams_tab_configuration import TeamsTabConfiguration
from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
    CreateUploadSessionPostRequestBody as AttachmentUploadSessionBody,
)
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as msgraph_default_options
from msgraph_core import GraphClientFactory

from bot.delivery import Parcel, PermanentError, StepResult
from bot.outbox import cover_note, recipients, subject
from connectors.http import retry_after_seconds
from reporting.config import Config, CustomerConfig

log = logging.getLogger(__name__)


def _import_builders_quietly() -> dict[str, ModuleType]:
    """msgraph 1.65's request builders each warn (DeprecationWarning, from a class body) when
    first imported — and the SDK imports them lazily, in the middle of a request. Import the
    ones this module's calls go through now, with just those warnings silenced, so neither the
    service nor the test suite (warnings are errors there) meets them. A builder missing here
    shows up as a DeprecationWarning in tests/bot/test_graph_delivery.py."""
    names = ["kiota_abstractions.default_query_parameters"] + [f"msgraph.generated.{m}_request_builder" for m in (
        "users.users", "users.item.user_item", "users.item.send_mail.send_mail", "users.item.messages.messages",
        "users.item.messages.item.message_item", "users.item.messages.item.send.send",
        "users.item.messages.item.attachments.attachments",
        "users.item.messages.item.attachments.create_upload_session.create_upload_session",
        "sites.sites", "sites.item.site_item", "sites.item.drives.drives",
        "drives.drives", "drives.item.drive_item", "drives.item.items.items", "drives.item.items.item.drive_item_item",
        "drives.item.items.item.children.children", "drives.item.items.item.content.content",
        "drives.item.items.item.create_upload_session.create_upload_session",
        "teams.teams", "teams.item.team_item", "teams.item.channels.channels", "teams.item.channels.item.channel_item",
        "teams.item.channels.item.files_folder.files_folder", "teams.item.channels.item.tabs.tabs",
        "teams.item.channels.item.tabs.item.teams_tab_item", "teams.item.channels.item.messages.messages",
    )]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(msgraph|kiota_abstractions)\.")
        return {name.removeprefix("msgraph.generated.").removesuffix("_request_builder"): importlib.import_module(name)
                for name in names}


_BUILDERS = _import_builders_quietly()
_MessagesQuery = (_BUILDERS["users.item.messages.messages"]
                  .MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters)
_AttachmentsQuery = (_BUILDERS["users.item.messages.item.attachments.attachments"]
                     .AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters)
_TabsQuery = _BUILDERS["teams.item.channels.item.tabs.tabs"].TabsRequestBuilder.TabsRequestBuilderGetQueryParameters
_ChannelMessagesQuery = (_BUILDERS["teams.item.channels.item.messages.messages"]
                         .MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters)

DEFAULT_BASE_URL = "https://graph.microsoft.com/v1.0"
#: A named MAPI String property in a GUID-named property set of our own; Exchange stores it
#: on the message (Sent Items and Drafts keep it) and ``$filter`` can match it.
DELIVERY_ID_PROPERTY = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name ReportbotDeliveryId"
DELIVERY_ID_HEADER = "X-Reportbot-Delivery-Id"  # also on the wire, for whoever reads the headers
INLINE_ATTACHMENT_MAX = 3 * 1024 * 1024  # Graph: inline attachments "under 3 MB"
UPLOAD_CHUNK = 12 * 320 * 1024  # 3.75 MiB: <= 4 MB (Outlook) and a multiple of 320 KiB (OneDrive/SharePoint)
SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024  # drive files up to this are one PUT; larger ones an upload session
MESSAGES_PER_MINUTE = 30  # Exchange Online: 30 messages a minute per mailbox
UPLOAD_BYTES_PER_5_MIN = 150 * 1024 * 1024  # Graph Outlook throttling: 150 MB upload per 5 minutes per mailbox
MAILBOX_CONCURRENCY = 4  # Graph Outlook throttling: 4 concurrent requests per app per mailbox
TAB_NAME = "Weekly report"
CHANNEL_PAGE = 50  # GET .../channels/{id}/messages: $top is at most 50
CHANNEL_PAGES = 6  # how far back a post is looked for (300 root messages)
WEBSITE_TAB_APP = "com.microsoft.teamspace.tab.web"
RETRY_STATUSES = frozenset({429, 503, 504})
TRANSIENT_STATUSES = frozenset({401, 408, 423, 429}) | frozenset(range(500, 600))

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
ChannelTeam = Callable[[CustomerConfig], "str | Awaitable[str]"]
Announce = Callable[[Parcel, str, str], Awaitable[Any]]  # (parcel, file webUrl, idempotency key) -> message id


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


@dataclass(frozen=True)
class _Found:
    id: str
    is_draft: bool
    web_link: str | None


def build_graph_client(credential: Any, base_url: str = DEFAULT_BASE_URL,
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
        client=httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(100.0, connect=30.0)), options=options)
    host = urlsplit(base_url).hostname or "graph.microsoft.com"
    adapter = GraphRequestAdapter(AzureIdentityAuthenticationProvider(credential, allowed_hosts=[host]), http)
    adapter.base_url = base_url.rstrip("/")

    async def close() -> None:
        await http.aclose()
        await transport.aclose()

    return GraphServiceClient(request_adapter=adapter), close


def graph_credential(tenant_id: str, client_id: str = "", *, client_secret: str | None = None,
                     certificate_path: str | None = None, managed_identity: bool = False) -> Any:
    """The azure-identity (async) credential for the app: a client secret, a certificate (PEM or
    PKCS12 file), or the host's managed identity (``client_id`` picks a user-assigned one).
    The caller closes it (``await credential.close()``)."""
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    if managed_identity:
        return ManagedIdentityCredential(client_id=client_id or None)
    if not tenant_id or not client_id:
        raise ValueError("a client secret or certificate credential needs tenant_id and client_id")
    if certificate_path:
        return CertificateCredential(tenant_id, client_id, certificate_path)
    if client_secret:
        return ClientSecretCredential(tenant_id, client_id, client_secret)
    raise ValueError("give client_secret, certificate_path or managed_identity=True")


class GraphBackend:
    """``DeliveryBackend`` over Microsoft Graph.

    ``credential`` (azure-identity, or any object with ``async get_token``) or ``graph_client``
    (a ready ``GraphServiceClient``; then ``base_url`` must be its base URL) — one of them.
    ``mailbox``, ``site`` (``host:/sites/path`` or a site id), ``library`` default to
    ``config.graph``; ``base_url`` to ``config.graph.base_url`` or public Graph.

    ``channel_team(customer) -> team id`` (or an awaitable of it): ``CustomerConfig.teams_channel``
    is a channel id and
    Graph addresses a channel through its team (the AAD group id), which configuration does not
    hold; the service passes a lookup (e.g. from the conversation reference the bot stored for
    that channel, whose ``channelData.team.aadGroupId`` names it). Without it ``post_channel``
    stops with a PermanentError.

    ``announce(parcel, file_url, key)``: the bot's proactive card post in the customer channel,
    run after the upload and the tab (idempotent on ``key``); None leaves the post to the caller.
    """

    def __init__(self, config: Config, credential: Any = None, *, graph_client: GraphServiceClient | None = None,
                 base_url: str | None = None, mailbox: str | None = None, site: str | None = None,
                 library: str | None = None, channel_team: ChannelTeam | None = None, announce: Announce | None = None,
                 upload_client: httpx.AsyncClient | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, max_attempts: int = 5, max_retry_after: float = 120.0,
                 settle_checks: int = 3, settle_delay: float = 5.0,
                 message_limiter: SlidingWindowLimiter | None = None) -> None:
        if (credential is None) == (graph_client is None):
            raise ValueError("give exactly one of credential and graph_client")
        self.config = config
        self.base_url = (base_url or config.graph.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.mailbox = mailbox if mailbox is not None else config.graph.mailbox
        self.site = site if site is not None else config.graph.sharepoint_site
        self.library = library if library is not None else (config.graph.sharepoint_library or "Documents")
        self.channel_team, self.announce = channel_team, announce
        self._close_graph: Callable[[], Awaitable[None]] | None = None
        if graph_client is None:
            graph_client, self._close_graph = build_graph_client(credential, self.base_url)
        self.client = graph_client
        self._uploads = upload_client or httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=15.0))
        self._own_uploads = upload_client is None
        self._clock, self._sleep = clock, sleep
        self.max_attempts, self.max_retry_after = max_attempts, max_retry_after
        self.settle_checks, self.settle_delay = settle_checks, settle_delay
        self.messages = message_limiter or SlidingWindowLimiter(MESSAGES_PER_MINUTE, 60.0, clock=clock, sleep=sleep)
        self.upload_bytes = SlidingWindowLimiter(UPLOAD_BYTES_PER_5_MIN, 300.0, clock=clock, sleep=sleep)
        self._mailbox_slots = asyncio.Semaphore(MAILBOX_CONCURRENCY)
        self._drive_id: str | None = None
        self._folders: dict[tuple[str, str], str] = {}  # (drive, "a/b/2026") -> item id

    async def aclose(self) -> None:
        if self._close_graph is not None:
            await self._close_graph()
        if self._own_uploads:
            await self._uploads.aclose()

    async def __aenter__(self) -> GraphBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the three steps -----------------------------------------------------------------------
    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        self._own(parcel)
        if not self.mailbox:
            raise PermanentError("[graph] mailbox is not configured")
        to = recipients(parcel)  # that customer's entry only; PermanentError when it names nobody
        sent_to = f"sent to {', '.join(to)}"
        found = await self._find_message(key)
        if found is not None and not found.is_draft:
            log.info("email %s was already sent (found by its delivery id)", key)
            return StepResult(f"{sent_to} (already sent)", found.web_link)
        if found is None and len(parcel.pdf) < INLINE_ATTACHMENT_MAX:
            result = await self._send_inline(parcel, key, to)
        else:
            result = await self._send_large(parcel, key, to, found)
        return StepResult(sent_to, result.web_link if result else None)

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        self._own(parcel)
        folder = parcel.archive_folder
        parts = [*_folder_parts(folder, f"customers[{parcel.code}].sharepoint_folder"), str(parcel.period_end.year)]
        drive = await self._archive_drive()
        parent = "root"
        for depth in range(len(parts)):
            parent = await self._ensure_folder(drive, parent, parts[: depth + 1])
        item = await self._upload(drive, parent, parcel.file_name, parcel.pdf)
        return StepResult(f"archived to {self.library}/{'/'.join(parts)}/{parcel.file_name}", item.get("webUrl"))

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        self._own(parcel)
        channel = parcel.customer.teams_channel
        if not channel:
            raise PermanentError(f"customers[{parcel.code}] has no teams_channel")
        team = await self._team_of(parcel)
        channel_api = self.client.teams.by_team_id(team).channels.by_channel_id(channel)
        folder = await self._call(f"filesFolder of {channel}", channel_api.files_folder.get)
        drive = folder.parent_reference.drive_id if folder and folder.parent_reference else None
        if folder is None or not folder.id or not drive:
            raise GraphUnavailable(f"filesFolder of {channel} named no drive")
        item = await self._upload(drive, folder.id, parcel.file_name, parcel.pdf)
        url = item.get("webUrl")
        if not url:
            raise GraphUnavailable(f"the upload of {parcel.file_name} returned no webUrl")
        tab = await self._point_tab(team, channel, url)
        if self.announce is not None:
            await self.announce(parcel, url, key)
            return StepResult(f"posted in {channel}; the {TAB_NAME} tab {tab}", url)
        return StepResult(f"uploaded to {channel}'s files; the {TAB_NAME} tab {tab}", url)

    async def find_channel_post(self, parcel: Parcel, key: str, since: datetime, *, app_id: str = "") -> str | None:
        """The id of the message in the parcel's customer channel whose card carries ``key``
        (posted by the bot ``app_id``, when given), or None. For ``bot.announce``: a post whose
        outcome a crash lost. ``GET /teams/{team}/channels/{channel}/messages?$top=50`` (the
        only query options that call takes are ``$top`` and ``$expand``), following
        ``@odata.nextLink`` until a page holds nothing newer than ``since`` (less 10 minutes,
        for clock skew), or for at most :data:`CHANNEL_PAGES` pages. Needs RSC
        ``ChannelMessage.Read.Group`` (or application ``ChannelMessage.Read.All``)."""
        self._own(parcel)
        channel = parcel.customer.teams_channel
        team = await self._team_of(parcel)
        messages_api = self.client.teams.by_team_id(team).channels.by_channel_id(channel).messages
        params = _ChannelMessagesQuery(top=CHANNEL_PAGE)
        horizon = since - timedelta(minutes=10)
        page = await self._call(f"messages of {channel}", lambda: messages_api.get(
            request_configuration=RequestConfiguration(query_parameters=params)))
        for _ in range(CHANNEL_PAGES):
            newest: datetime | None = None
            for message in _values(page):
                if _carries(message, key, app_id):
                    return str(message.id)
                created = message.created_date_time
                if created is not None and (newest is None or created > newest):
                    newest = created
            next_link = page.odata_next_link if page is not None else None
            if not next_link or (newest is not None and newest < horizon):
                return None
            page = await self._call(f"messages of {channel}", lambda link=next_link: messages_api.with_url(link).get())
        return None

    async def _team_of(self, parcel: Parcel) -> str:
        team = self.channel_team(parcel.customer) if self.channel_team else ""
        if inspect.isawaitable(team):
            team = await team
        if not team:
            raise PermanentError(f"no team id is known for {parcel.code}'s channel {parcel.customer.teams_channel}")
        return str(team)

    def _own(self, parcel: Parcel) -> None:
        """The parcel's customer entry must be the configuration's entry for its code: nothing
        here reads an address, channel or folder from anywhere else."""
        try:
            configured = self.config.customer(parcel.code)
        except KeyError as err:
            raise PermanentError(f"customer {parcel.code} is not configured") from err
        if parcel.customer != configured or parcel.customer.code != parcel.code:
            raise PermanentError(
                f"the delivery of {parcel.code} carries another customer's entry ({parcel.customer.code})")

    # -- email ---------------------------------------------------------------------------------
    def _user(self) -> Any:
        return self.client.users.by_user_id(self.mailbox)

    async def _in_mailbox(self, fn: Callable[[], Awaitable[T]]) -> T:
        """At most :data:`MAILBOX_CONCURRENCY` requests to the mailbox at a time."""
        async with self._mailbox_slots:
            return await fn()

    async def _mail(self, what: str, fn: Callable[[], Awaitable[Any]],
                    recheck: Callable[[], Awaitable[Any]] | None = None) -> Any:
        return await self._call(what, lambda: self._in_mailbox(fn), recheck=recheck)

    async def _find_message(self, key: str) -> _Found | None:
        """The message carrying ``key``, anywhere in the mailbox (Drafts, Outbox, Sent Items, or
        wherever someone moved it); a sent one wins over a draft."""
        value = key.replace("'", "''")
        query = RequestConfiguration(query_parameters=_MessagesQuery(
            filter=(f"singleValueExtendedProperties/any(ep: ep/id eq '{DELIVERY_ID_PROPERTY}'"
                    f" and ep/value eq '{value}')"),
            select=["id", "isDraft", "webLink"], top=5))
        page = await self._mail(f"look-up of {key}", lambda: self._user().messages.get(request_configuration=query))
        found = [_Found(m.id, bool(m.is_draft), m.web_link) for m in _values(page) if m.id]
        found.sort(key=lambda f: f.is_draft)
        return found[0] if found else None

    async def _find_sent(self, key: str) -> _Found | None:
        found = await self._find_message(key)
        return found if found is not None and not found.is_draft else None

    def _message(self, parcel: Parcel, key: str, to: list[str], *, attach: bool) -> Message:
        msg = Message(
            subject=subject(parcel),
            body=ItemBody(content_type=BodyType.Html, content=cover_note(self.config, parcel)),
            to_recipients=[Recipient(email_address=EmailAddress(address=a)) for a in to],
            single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=DELIVERY_ID_PROPERTY, value=key)],
            internet_message_headers=[InternetMessageHeader(name=DELIVERY_ID_HEADER, value=key)],
        )
        if attach:
            msg.attachments = [FileAttachment(odata_type="#microsoft.graph.fileAttachment", name=parcel.file_name,
                                              content_type="application/pdf", content_bytes=parcel.pdf)]
        return msg

    async def _send_inline(self, parcel: Parcel, key: str, to: list[str]) -> _Found | None:
        body = SendMailPostRequestBody(message=self._message(parcel, key, to, attach=True), save_to_sent_items=True)

        async def send() -> _Found | None:
            await self.messages.acquire()
            await self._in_mailbox(lambda: self._user().send_mail.post(body))
            return None

        # a re-send only after the look-up has not found the message (503/504 after acceptance)
        return await self._call(f"sendMail of {key}", send, recheck=lambda: self._find_sent(key))

    async def _send_large(self, parcel: Parcel, key: str, to: list[str], draft: _Found | None) -> _Found | None:
        """Draft (with the delivery id) -> attachment upload session -> ``send``. A draft left by
        an earlier attempt is resumed: its attachment uploaded unless it is there, then sent."""
        resumed = draft is not None
        if draft is None:
            draft_body = self._message(parcel, key, to, attach=False)
            created = await self._mail(f"draft for {key}", lambda: self._user().messages.post(draft_body),
                                       recheck=lambda: self._find_message(key))
            if isinstance(created, _Found):
                if not created.is_draft:
                    return created
                draft = created
            elif created is None or not created.id:
                raise GraphUnavailable(f"the draft for {key} came back without an id")
            else:
                draft = _Found(created.id, True, created.web_link)
        message = self._user().messages.by_message_id(draft.id)
        if not (resumed and await self._has_attachment(message, parcel.file_name)):
            session_body = AttachmentUploadSessionBody(attachment_item=AttachmentItem(
                attachment_type=AttachmentType.File, name=parcel.file_name, size=len(parcel.pdf),
                content_type="application/pdf"))
            session = await self._mail(f"attachment upload session for {key}",
                                       lambda: message.attachments.create_upload_session.post(session_body))
            if session is None or not session.upload_url:
                raise GraphUnavailable(f"the attachment upload session for {key} has no uploadUrl")
            await self._put_ranges(session.upload_url, parcel.pdf, what=f"attachment of {key}",
                                   limiter=self.upload_bytes)

        async def send() -> _Found | None:
            await self.messages.acquire()
            try:
                await self._in_mailbox(lambda: message.send.post())
            except ODataError as err:
                if err.response_status_code != 404:
                    raise
                # the draft is gone: a send before this one went through (the item moved to Sent Items)
                sent = await self._find_sent(key)
                if sent is None:
                    raise GraphUnavailable(f"the draft for {key} vanished and nothing was sent yet") from err
                return sent
            return None

        sent = await self._call(f"send of {key}", send, recheck=lambda: self._find_sent(key))
        return sent or draft

    async def _has_attachment(self, message: Any, name: str) -> bool:
        query = RequestConfiguration(query_parameters=_AttachmentsQuery(select=["name"]))
        page = await self._mail("attachments of the draft",
                                lambda: message.attachments.get(request_configuration=query))
        return any(a.name == name for a in _values(page))

    # -- drives (archive and channel files) ----------------------------------------------------
    async def _archive_drive(self) -> str:
        if self._drive_id is not None:
            return self._drive_id
        if not self.site:
            raise PermanentError("[graph] sharepoint_site is not configured")
        if ":/" in self.site or "," not in self.site:  # "host:/sites/path" (or a bare host name)
            host, _, path = self.site.partition(":")
            url = f"{self.base_url}/sites/{quote(host, safe='')}"
            if path.strip("/"):
                url += f":{quote(path, safe='/')}"
            site = await self._call(f"site {self.site}", self.client.sites.by_site_id(host).with_url(url).get)
        else:  # a site id ("host,siteCollectionId,webId")
            site = await self._call(f"site {self.site}", self.client.sites.by_site_id(self.site).get)
        if site is None or not site.id:
            raise PermanentError(f"site {self.site} was not found")
        page = await self._call(f"libraries of {self.site}", self.client.sites.by_site_id(site.id).drives.get)
        while page is not None:
            for d in page.value or []:
                if d.id and (d.name or "").casefold() == self.library.casefold():
                    self._drive_id = d.id
                    return d.id
            link = page.odata_next_link
            if not link:
                break
            page = await self._call("libraries (next page)",
                                    self.client.sites.by_site_id(site.id).drives.with_url(link).get)
        raise PermanentError(f"site {self.site} has no document library named {self.library!r}")

    def _item(self, drive: str, parent: str) -> Any:
        return self.client.drives.by_drive_id(drive).items.by_drive_item_id(parent)

    def _by_path(self, drive: str, parent: str, name: str, suffix: str = "") -> str:
        """``/drives/{d}/items/{parent-id}:/{name}:{suffix}`` — a child addressed by its parent's
        id and its own (quoted) name, never a path from the root (research §7/§8)."""
        return (f"{self.base_url}/drives/{quote(drive, safe='!')}/items/{quote(parent, safe='')}"
                f":/{quote(name, safe='')}:{suffix}")

    async def _ensure_folder(self, drive: str, parent: str, parts: list[str]) -> str:
        """The id of folder ``parts`` (``parent`` holds ``parts[:-1]``), created when missing:
        a GET by name first (the usual case: it exists), else a POST with conflictBehavior
        ``fail``, where 409 means someone made it meanwhile."""
        path = "/".join(parts)
        if (drive, path) in self._folders:
            return self._folders[(drive, path)]
        name, api = parts[-1], self._item(drive, parent)

        async def lookup() -> str | None:
            async def get() -> DriveItem | None:
                try:
                    return await api.with_url(self._by_path(drive, parent, name)).get()
                except APIError as err:
                    if err.response_status_code == 404:
                        return None
                    raise
            item = await self._call(f"folder {path}", get)
            if item is None:
                return None
            if not item.id or item.folder is None:
                raise PermanentError(f"{self.library}/{path} exists and is not a folder")
            return item.id

        async def create() -> str | None:
            new = DriveItem(name=name, folder=Folder(), additional_data={"@microsoft.graph.conflictBehavior": "fail"})
            try:
                created = await api.children.post(new)
            except APIError as err:
                if err.response_status_code == 409:  # nameAlreadyExists
                    return await lookup()
                raise
            return created.id if created else None

        folder_id = await lookup() or await self._call(f"create folder {path}", create, recheck=lookup)
        if not folder_id:
            raise GraphUnavailable(f"the folder {path} could not be created or found")
        self._folders[(drive, path)] = folder_id
        return folder_id

    async def _upload(self, drive: str, parent: str, name: str, data: bytes) -> dict[str, Any]:
        """Write ``parent/name`` (replacing a previous version: never ``name 1.pdf``)."""
        if len(data) <= SIMPLE_UPLOAD_MAX:
            url = self._by_path(drive, parent, name, "/content?@microsoft.graph.conflictBehavior=replace")
            content = self._item(drive, parent).content.with_url(url)
            item = await self._call(f"upload of {name}", lambda: content.put(data))
            return {"id": item.id, "webUrl": item.web_url} if item else {}
        body = DriveUploadSessionBody(item=DriveItemUploadableProperties(
            additional_data={"@microsoft.graph.conflictBehavior": "replace"}))
        url = self._by_path(drive, parent, name, "/createUploadSession")
        session = await self._call(f"upload session for {name}",
                                   lambda: self._item(drive, parent).create_upload_session.with_url(url).post(body))
        if session is None or not session.upload_url:
            raise GraphUnavailable(f"the upload session for {name} has no uploadUrl")
        return await self._put_ranges(session.upload_url, data, what=f"upload of {name}", limiter=None)

    async def _put_ranges(self, upload_url: str, data: bytes, *, what: str,
                          limiter: SlidingWindowLimiter | None) -> dict[str, Any]:
        """PUT ``data`` to an upload session in ranges of at most :data:`UPLOAD_CHUNK`, each
        starting where the server's ``nextExpectedRanges`` says, with no Authorization header.
        Returns the final response's JSON (the driveItem; ``{}`` for an attachment)."""
        total, offset, failures = len(data), 0, 0
        for _ in range(2 * math.ceil(total / UPLOAD_CHUNK) + 2 * self.max_attempts):
            end = min(offset + UPLOAD_CHUNK, total)
            chunk = data[offset:end]
            if limiter is not None:
                await limiter.acquire(len(chunk))
            try:
                resp = await self._uploads.put(upload_url, content=chunk, headers={
                    "Content-Range": f"bytes {offset}-{end - 1}/{total}", "Content-Length": str(len(chunk))})
            except httpx.TransportError as err:
                failures += 1
                if failures >= self.max_attempts:
                    raise GraphUnavailable(f"{what}: {type(err).__name__}") from err
                await self._sleep(_backoff(failures))
                continue
            body = _json_or_empty(resp)
            if resp.status_code in (200, 201, 202):
                failures = 0
                ranges = body.get("nextExpectedRanges") or []
                if ranges and resp.status_code != 201:
                    offset = _range_start(ranges[0], what)
                    continue
                if end == total:
                    return body
                raise GraphUnavailable(f"{what}: the session ended at byte {end} of {total}")
            if resp.status_code == 416:  # the server has a different idea of where we are: ask it
                failures += 1
                offset = await self._session_offset(upload_url, what)
                continue
            if resp.status_code in RETRY_STATUSES or resp.status_code in TRANSIENT_STATUSES - {401}:
                failures += 1
                if failures >= self.max_attempts:
                    raise GraphUnavailable(f"{what}: {resp.status_code} {_error_text(body)}")
                await self._sleep(self._delay(resp.headers, failures, what))
                continue
            if resp.status_code == 404:
                raise GraphUnavailable(f"{what}: the upload session expired or is gone; the next run starts anew")
            raise PermanentError(f"{what}: Graph {resp.status_code} {_error_text(body)}")
        raise GraphUnavailable(f"{what}: the upload made no progress")

    async def _session_offset(self, upload_url: str, what: str) -> int:
        resp = await self._uploads.get(upload_url)
        ranges = _json_or_empty(resp).get("nextExpectedRanges") or []
        if resp.status_code != 200 or not ranges:
            raise GraphUnavailable(f"{what}: the upload session's status is unknown ({resp.status_code})")
        return _range_start(ranges[0], what)

    # -- the channel tab --------------------------------------------------------------------------
    async def _point_tab(self, team: str, channel: str, url: str) -> str:
        tabs_api = self.client.teams.by_team_id(team).channels.by_channel_id(channel).tabs
        params = _TabsQuery(expand=["teamsApp"])

        async def find() -> TeamsTab | None:
            page = await self._call(f"tabs of {channel}", lambda: tabs_api.get(
                request_configuration=RequestConfiguration(query_parameters=params)))
            for tab in page.value if page and page.value else []:
                if tab.display_name == TAB_NAME and tab.teams_app is not None and tab.teams_app.id == WEBSITE_TAB_APP:
                    return tab
            return None

        config = TeamsTabConfiguration(content_url=url, website_url=url)
        tab = await find()
        if tab is None:
            new = TeamsTab(display_name=TAB_NAME, configuration=config, additional_data={
                "teamsApp@odata.bind": f"{self.base_url}/appCatalogs/teamsApps/{WEBSITE_TAB_APP}"})
            created = await self._call(f"create the {TAB_NAME} tab in {channel}", lambda: tabs_api.post(new),
                                       recheck=find)
            if created is not None and created.configuration is not None and created.configuration.content_url == url:
                return "created"
            tab = created
        if tab is None or not tab.id:
            raise GraphUnavailable(f"the {TAB_NAME} tab in {channel} has no id")
        if tab.configuration is not None and tab.configuration.content_url == url:
            return "already points at it"
        tab_id = tab.id
        await self._call(f"update the {TAB_NAME} tab in {channel}", lambda: tabs_api.by_teams_tab_id(tab_id).patch(
            TeamsTab(display_name=TAB_NAME, configuration=config)))
        return "updated"

    # -- retries and errors ----------------------------------------------------------------------
    async def _call(self, what: str, fn: Callable[[], Awaitable[T]],
                    recheck: Callable[[], Awaitable[Any]] | None = None) -> Any:
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
                    raise _translate(what, err) from err
                delay, ambiguous = self._delay(err.response_headers or {}, attempt, what), status != 429
                log.warning("%s: Graph %s; retrying in %.1f s", what, status, delay)
            except httpx.TransportError as err:
                if attempt >= self.max_attempts:
                    raise GraphUnavailable(f"{what}: {type(err).__name__}") from err
                delay, ambiguous = _backoff(attempt), True
                log.warning("%s: %s; retrying in %.1f s", what, type(err).__name__, delay)
            await self._sleep(delay)
            if recheck is not None:
                for check in range(self.settle_checks if ambiguous else 1):
                    if check:
                        await self._sleep(self.settle_delay)
                    done = await recheck()
                    if done is not None:
                        log.info("%s: it took effect before the failure; not repeated", what)
                        return done

    def _delay(self, headers: Any, attempt: int, what: str) -> float:
        delay = retry_after_seconds(headers.get("Retry-After") or headers.get("retry-after"),
                                    datetime.fromtimestamp(self._now_utc(), UTC))
        if delay is None:
            return _backoff(attempt)
        if delay > self.max_retry_after:
            raise GraphUnavailable(f"{what}: throttled for {delay:.0f} s; the step is repeated on the next run")
        return delay

    @staticmethod
    def _now_utc() -> float:
        return time.time()


def _translate(what: str, err: APIError) -> Exception:
    status = err.response_status_code or 0
    code, message = "", err.message or ""
    if isinstance(err, ODataError) and err.error is not None:
        code, message = err.error.code or "", err.error.message or message
    text = f"{what}: Graph {status} {code}: {message}" if code else f"{what}: Graph {status}: {message}"
    if status in TRANSIENT_STATUSES or not status:
        return GraphUnavailable(text)
    return PermanentError(text)


def _backoff(attempt: int) -> float:
    return min(60.0, 2.0 ** attempt)


def _carries(message: Any, key: str, app_id: str) -> bool:
    """A channel message (msgraph ``ChatMessage``) from the bot ``app_id`` (any application when
    empty) with a card attachment whose JSON holds ``key`` as an element id."""
    sender = message.from_.application if message.from_ is not None else None
    if sender is None or (app_id and sender.id != app_id):
        return False
    needle = json.dumps(key)  # the key as a JSON string: "id": "reportbot:...:channel"
    return any(a.content and needle in a.content for a in message.attachments or []
               if (a.content_type or "").lower() == "application/vnd.microsoft.card.adaptive")


def _values(page: Any) -> list[Any]:
    """A collection response's ``value`` (first page: the backend asks for few enough)."""
    return list(page.value) if page is not None and page.value else []


def _json_or_empty(resp: httpx.Response) -> dict[str, Any]:
    if not resp.content:
        return {}
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_text(body: dict[str, Any]) -> str:
    err = body.get("error")
    if isinstance(err, dict):
        return f"{err.get('code', '')}: {err.get('message', '')}"
    return ""


def _range_start(r: str, what: str) -> int:
    m = re.fullmatch(r"(\d+)-(\d*)", r.strip())
    if m is None:
        raise GraphUnavailable(f"{what}: unreadable nextExpectedRanges {r!r}")
    return int(m[1])


_BAD_SEGMENT = re.compile(r'[\\:*?"<>|#%\x00-\x1f]')


def _folder_parts(folder: str, key: str) -> list[str]:
    """``"Customers/ACME"`` -> ``["Customers", "ACME"]``; a segment SharePoint would refuse (or
    ``..``) is a configuration error, not something to rewrite silently."""
    parts = [p for p in folder.split("/") if p]
    for p in parts:
        if p in (".", "..") or _BAD_SEGMENT.search(p) or p != p.strip() or p.endswith("."):
            raise PermanentError(f"{key}: {p!r} is not a valid SharePoint folder name")
    return parts

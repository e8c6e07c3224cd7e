"""The Microsoft Graph delivery backend (production): ``bot.delivery.DeliveryBackend`` over
msgraph-sdk and an azure-identity credential, composed of the parts in this package.

- ``send_email``: :class:`bot.graph.mail.Mail` — sent exactly once, found by its delivery id.
- ``archive``: SharePoint ``<library>/<sharepoint_folder>/<YYYY>/<CODE>-weekly-<YYYY-MM-DD>.pdf``,
  each folder level created as needed, the file written with ``conflictBehavior=replace``
  (:class:`bot.graph.drive.Drives`).
- ``post_channel``: the PDF into the channel's ``filesFolder`` (replace), and the channel's
  "Weekly report" website tab pointed at it (:class:`bot.graph.channel.Channels`); pass
  ``announce`` to have the bot's card message posted inside this step.

Every request goes through one :class:`bot.graph.client.GraphCalls` (retries, Retry-After,
look-ups before repeating a create). See docs/delivery.md for the permissions this needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from msgraph import GraphServiceClient

from bot.delivery import Parcel, PermanentError, StepResult
from bot.graph.channel import TAB_NAME, Channels, ChannelTeam
from bot.graph.client import (
    DEFAULT_BASE_URL,
    Clock,
    GraphCalls,
    GraphUnavailable,
    Sleep,
    SlidingWindowLimiter,
    build_graph_client,
)
from bot.graph.drive import Drives, folder_parts
from bot.graph.mail import MESSAGES_PER_MINUTE, UPLOAD_BYTES_PER_5_MIN, Mail
from bot.graph.upload_session import UploadSessions
from bot.outbox import Letter
from reporting.config import Config

Announce = Callable[[Parcel, str, str], Awaitable[Any]]  # (parcel, file webUrl, idempotency key) -> message id


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

    def __init__(
        self,
        config: Config,
        credential: Any = None,
        *,
        graph_client: GraphServiceClient | None = None,
        base_url: str | None = None,
        mailbox: str | None = None,
        site: str | None = None,
        library: str | None = None,
        channel_team: ChannelTeam | None = None,
        announce: Announce | None = None,
        upload_client: httpx.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 5,
        max_retry_after: float = 120.0,
        settle_checks: int = 3,
        settle_delay: float = 5.0,
        message_limiter: SlidingWindowLimiter | None = None,
    ) -> None:
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
        calls = GraphCalls(
            sleep=sleep,
            max_attempts=max_attempts,
            max_retry_after=max_retry_after,
            settle_checks=settle_checks,
            settle_delay=settle_delay,
        )
        uploads = UploadSessions(self._uploads, calls)
        self.mail = Mail(
            self.client,
            calls,
            uploads,
            config,
            mailbox=self.mailbox,
            messages=message_limiter or SlidingWindowLimiter(MESSAGES_PER_MINUTE, 60.0, clock=clock, sleep=sleep),
            upload_bytes=SlidingWindowLimiter(UPLOAD_BYTES_PER_5_MIN, 300.0, clock=clock, sleep=sleep),
        )
        self.drives = Drives(self.client, calls, uploads, base_url=self.base_url, site=self.site, library=self.library)
        self.channels = Channels(self.client, calls, base_url=self.base_url, channel_team=channel_team)

    @property
    def messages(self) -> SlidingWindowLimiter:
        """The mailbox's messages-a-minute limiter (replaceable, for tests)."""
        return self.mail.messages

    @messages.setter
    def messages(self, limiter: SlidingWindowLimiter) -> None:
        self.mail.messages = limiter

    @property
    def upload_bytes(self) -> SlidingWindowLimiter:
        """The mailbox's attachment-upload-bytes limiter."""
        return self.mail.upload_bytes

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
        return await self.mail.send(parcel, key)

    async def send_letter(self, mail: Letter, key: str) -> StepResult:
        """An email that is no customer's report (the MSP's internal summaries), once for ``key``."""
        return await self.mail.send_letter(mail, key)

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        self._own(parcel)
        folder = parcel.archive_folder
        parts = [*folder_parts(folder, f"customers[{parcel.code}].sharepoint_folder"), str(parcel.period_end.year)]
        drive = await self.drives.archive_drive()
        parent = await self.drives.ensure_path(drive, parts)
        item = await self._upload(drive, parent, parcel.file_name, parcel.pdf)
        return StepResult(f"archived to {self.library}/{'/'.join(parts)}/{parcel.file_name}", item.get("webUrl"))

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        self._own(parcel)
        channel = parcel.customer.teams_channel
        if not channel:
            raise PermanentError(f"customers[{parcel.code}] has no teams_channel")
        team = await self.channels.team_of(parcel)
        drive, folder = await self.channels.files_folder(team, channel)
        item = await self._upload(drive, folder, parcel.file_name, parcel.pdf)
        url = item.get("webUrl")
        if not url:
            raise GraphUnavailable(f"the upload of {parcel.file_name} returned no webUrl")
        tab = await self.channels.point_tab(team, channel, url)
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
        for clock skew), or for at most ``bot.graph.channel.CHANNEL_PAGES`` pages. Needs RSC
        ``ChannelMessage.Read.Group`` (or application ``ChannelMessage.Read.All``)."""
        self._own(parcel)
        return await self.channels.find_post(parcel, key, since, app_id=app_id)

    async def _upload(self, drive: str, parent: str, name: str, data: bytes) -> dict[str, Any]:
        """Every file write of the archive and channel steps (one place a test can watch)."""
        return await self.drives.upload(drive, parent, name, data)

    def _own(self, parcel: Parcel) -> None:
        """The parcel's customer entry must be the configuration's entry for its code: nothing
        here reads an address, channel or folder from anywhere else."""
        try:
            configured = self.config.customer(parcel.code)
        except KeyError as err:
            raise PermanentError(f"customer {parcel.code} is not configured") from err
        if parcel.customer != configured or parcel.customer.code != parcel.code:
            raise PermanentError(
                f"the delivery of {parcel.code} carries another customer's entry ({parcel.customer.code})"
            )

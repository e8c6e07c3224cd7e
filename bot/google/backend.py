"""Choosing a backend per delivery step, and the Google one built from ``[gmail]`` / ``[gdrive]``.

``[delivery] email = "graph" | "gmail" | "outbox"`` and ``archive = "sharepoint" | "gdrive" |
"outbox"`` pick the email and archive steps independently; the channel step is always the base
backend (Teams through Graph in production, the outbox in the sandbox). :class:`RoutedBackend`
sends each step to its implementation, so any mix works: Graph mail + Drive archive, Gmail +
SharePoint, Gmail + Drive, with the Teams review and channel either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bot.delivery import DeliveryBackend, Parcel, StepResult
from bot.google.auth import TokenSource, load_service_account
from bot.google.drive import DRIVE_API, DriveArchiver
from bot.google.gmail import GMAIL_API, GmailSender
from bot.google.http import GoogleHttp
from bot.outbox import Letter
from reporting.config import Config, GdriveConfig, GmailConfig


class RoutedBackend:
    """A ``DeliveryBackend`` whose three steps are done by (possibly) different backends."""

    def __init__(self, *, email: Any, channel: Any, archive: Any) -> None:
        self.email, self.channel, self.archive_backend = email, channel, archive

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        return await self.email.send_email(parcel, key)

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        return await self.channel.post_channel(parcel, key)

    async def send_letter(self, mail: Letter, key: str) -> StepResult:
        """An email that is no customer's report, through the email step's backend."""
        return await self.email.send_letter(mail, key)

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        return await self.archive_backend.archive(parcel, key)


def _credentials(section: str, table: GmailConfig | GdriveConfig) -> dict[str, Any] | None:
    secret = table.credentials_json.get_secret_value() if table.credentials_json else ""
    if not (table.credentials_file or secret):
        return None
    return load_service_account(section, table.credentials_file, secret)


class GoogleDelivery:
    """The Gmail email step and the Drive archive step, as configured; ``aclose()`` when done.

    One :class:`TokenSource` per service account (shared when ``[gdrive]`` has no credentials of
    its own), so tokens are cached across both steps and every delivery of the process."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        client: httpx.AsyncClient | None = None,
        settle_delay: float = 5.0,
        chunk: int | None = None,
        max_attempts: int = 5,
    ) -> None:
        self.config = config
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(120.0, connect=15.0), verify=config.gmail.ca_bundle or config.gdrive.ca_bundle or True
        )
        self._own_client = client is None
        self.sources: list[TokenSource] = []
        self.gmail: GmailSender | None = None
        self.drive: DriveArchiver | None = None
        g, d = config.gmail, config.gdrive
        gmail_info = _credentials("gmail", g)
        gmail_tokens: TokenSource | None = None
        if config.delivery.email == "gmail" and gmail_info is not None:
            gmail_tokens = TokenSource(
                gmail_info, token_uri=g.token_uri or None, section="gmail", clock=clock, ca_bundle=g.ca_bundle or None
            )
            self.sources.append(gmail_tokens)
            http = GoogleHttp(gmail_tokens, g.sender, client=self.client, sleep=sleep, max_attempts=max_attempts)
            self.gmail = GmailSender(
                config,
                http,
                sender=g.sender,
                base_url=g.base_url or GMAIL_API,
                upload_url=g.upload_url or None,
                sleep=sleep,
                settle_delay=settle_delay,
                chunk=chunk,
            )
        if config.delivery.archive == "gdrive":
            drive_info = _credentials("gdrive", d)
            if drive_info is not None:
                drive_tokens = TokenSource(
                    drive_info,
                    token_uri=d.token_uri or g.token_uri or None,
                    section="gdrive",
                    clock=clock,
                    ca_bundle=d.ca_bundle or None,
                )
                self.sources.append(drive_tokens)
            elif gmail_tokens is not None and not d.token_uri:
                drive_tokens = gmail_tokens
            else:
                assert gmail_info is not None, "checked by the configuration"  # noqa: S101
                drive_tokens = TokenSource(
                    gmail_info,
                    token_uri=d.token_uri or g.token_uri or None,
                    section="gdrive",
                    clock=clock,
                    ca_bundle=g.ca_bundle or None,
                )
                self.sources.append(drive_tokens)
            http = GoogleHttp(
                drive_tokens, d.subject or None, client=self.client, sleep=sleep, max_attempts=max_attempts
            )
            self.drive = DriveArchiver(
                config,
                http,
                root_folder_id=d.root_folder_id,
                shared_drive_id=d.shared_drive_id,
                base_url=d.base_url or DRIVE_API,
                upload_url=d.upload_url or None,
                chunk=chunk,
                principal=d.subject or drive_tokens.client_email,
            )

    @property
    def token_requests(self) -> list[tuple[str | None, str]]:
        return [m for s in self.sources for m in s.minted]

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        assert self.gmail is not None, "delivery.email is not gmail"  # noqa: S101
        return await self.gmail.send_email(parcel, key)

    async def send_letter(self, mail: Letter, key: str) -> StepResult:
        assert self.gmail is not None, "delivery.email is not gmail"  # noqa: S101
        return await self.gmail.send_letter(mail, key)

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        assert self.drive is not None, "delivery.archive is not gdrive"  # noqa: S101
        return await self.drive.archive(parcel, key)

    async def aclose(self) -> None:
        for s in self.sources:
            s.close()
        if self._own_client:
            await self.client.aclose()


def routed_backend(
    config: Config, base: Any, outbox_root: Path, closers: list[Callable[[], Awaitable[None]]]
) -> DeliveryBackend:
    """``base`` with the ``[delivery]`` choices applied (see :func:`route`): the Google backend
    built when a step is ``gmail`` / ``gdrive`` (its ``aclose`` appended to ``closers``), an
    outbox under ``outbox_root`` for an ``outbox`` step."""
    from bot.outbox import OutboxBackend

    google = None
    if config.delivery.uses_google:
        google = GoogleDelivery(config)
        closers.append(google.aclose)
    d = config.delivery
    outbox = OutboxBackend(config, outbox_root) if "outbox" in (d.email, d.archive) else None
    return route(config, base, outbox=outbox, google=google)


def route(config: Config, base: Any, *, outbox: Any = None, google: GoogleDelivery | None = None) -> DeliveryBackend:
    """The backend for ``[delivery]``: ``base`` does the channel step and the Microsoft choices
    (``graph``, ``sharepoint``: Graph in production, the outbox in the sandbox); ``outbox`` the
    ``outbox`` choices; ``google`` the ``gmail`` / ``gdrive`` ones."""
    d = config.delivery

    def pick(choice: str, google_name: str) -> Any:
        if choice == google_name:
            if google is None:
                raise ValueError(f"delivery: {google_name} is chosen but no Google backend was built")
            return google
        if choice == "outbox":
            return outbox if outbox is not None else base
        return base

    email, archive = pick(d.email, "gmail"), pick(d.archive, "gdrive")
    if email is base and archive is base:
        return base
    return RoutedBackend(email=email, channel=base, archive=archive)

"""Sending a report email exactly once, from the MSP's mailbox over Graph.

``users/{mailbox}/sendMail`` with the PDF inline when it is under 3 MB, else a draft +
attachment upload session + ``send``. Every message carries the delivery id in a single-value
extended property (:data:`DELIVERY_ID_PROPERTY`) and a header (:data:`DELIVERY_ID_HEADER`);
before sending — and before any re-send after an ambiguous failure — the mailbox is searched for
that property, so a step repeated after a crash or a 503-after-accept never sends a second email.
Paced per mailbox as Exchange Online throttles it: messages a minute, upload bytes per 5 minutes,
concurrent requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.attachment_item import AttachmentItem
from msgraph.generated.models.attachment_type import AttachmentType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.internet_message_header import InternetMessageHeader
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
    CreateUploadSessionPostRequestBody as AttachmentUploadSessionBody,
)
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

from bot.delivery import Parcel, PermanentError, StepResult
from bot.graph.client import BUILDERS, GraphCalls, GraphUnavailable, SlidingWindowLimiter, T, values
from bot.graph.upload_session import UploadSessions
from bot.outbox import Letter, letter
from reporting.config import Config

log = logging.getLogger(__name__)

_MessagesQuery = BUILDERS[
    "users.item.messages.messages"
].MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters
_AttachmentsQuery = BUILDERS[
    "users.item.messages.item.attachments.attachments"
].AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters

#: A named MAPI String property in a GUID-named property set of our own; Exchange stores it
#: on the message (Sent Items and Drafts keep it) and ``$filter`` can match it.
DELIVERY_ID_PROPERTY = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name ReportbotDeliveryId"
DELIVERY_ID_HEADER = "X-Reportbot-Delivery-Id"  # also on the wire, for whoever reads the headers
INLINE_ATTACHMENT_MAX = 3 * 1024 * 1024  # Graph: inline attachments "under 3 MB"
MESSAGES_PER_MINUTE = 30  # Exchange Online: 30 messages a minute per mailbox
UPLOAD_BYTES_PER_5_MIN = 150 * 1024 * 1024  # Graph Outlook throttling: 150 MB upload per 5 minutes per mailbox
MAILBOX_CONCURRENCY = 4  # Graph Outlook throttling: 4 concurrent requests per app per mailbox
PROBE_KEY = "reportbot:config-check:probe"  # a delivery id no message carries (config check --live)


@dataclass(frozen=True)
class _Found:
    id: str
    is_draft: bool
    web_link: str | None


class Mail:
    """The email step through ``client`` from ``mailbox`` (empty: the step stops with a
    PermanentError). ``messages`` paces sends (:data:`MESSAGES_PER_MINUTE`), ``upload_bytes``
    attachment uploads (:data:`UPLOAD_BYTES_PER_5_MIN`); both are the mailbox's, shared by
    every send through this object."""

    def __init__(
        self,
        client: GraphServiceClient,
        calls: GraphCalls,
        uploads: UploadSessions,
        config: Config,
        *,
        mailbox: str,
        messages: SlidingWindowLimiter,
        upload_bytes: SlidingWindowLimiter,
    ) -> None:
        self.client, self.calls, self.uploads, self.config = client, calls, uploads, config
        self.mailbox = mailbox
        self.messages, self.upload_bytes = messages, upload_bytes
        self._mailbox_slots = asyncio.Semaphore(MAILBOX_CONCURRENCY)

    async def send(self, parcel: Parcel, key: str) -> StepResult:
        """Send ``parcel`` to its customer's recipients once for ``key`` (the delivery id)."""
        if not self.mailbox:
            raise PermanentError("[graph] mailbox is not configured")
        # that customer's entry only; PermanentError when it names nobody
        return await self.send_letter(letter(self.config, parcel), key)

    async def send_letter(self, mail: Letter, key: str) -> StepResult:
        """Send ``mail`` once for ``key`` (the delivery id): looked up first, sent if not found."""
        if not self.mailbox:
            raise PermanentError("[graph] mailbox is not configured")
        sent_to = f"sent to {mail.to.describe()}"
        found = await self._find_message(key)
        if found is not None and not found.is_draft:
            log.info("email %s was already sent (found by its delivery id)", key)
            return StepResult(f"{sent_to} (already sent)", found.web_link)
        if found is None and len(mail.attachment) < INLINE_ATTACHMENT_MAX:
            result = await self._send_inline(mail, key)
        else:
            result = await self._send_large(mail, key, found)
        return StepResult(sent_to, result.web_link if result else None)

    async def check_mailbox(self) -> None:
        """The delivery's exactly-once look-up for a delivery id no message carries
        (:data:`PROBE_KEY`): the mailbox exists and the app may search it, with the permission
        the email step itself needs (``Mail.ReadWrite``). Nothing is sent or written. The caller
        (``bot.live_check``) has checked that a mailbox is configured."""
        await self._find_message(PROBE_KEY)

    def _user(self) -> Any:
        return self.client.users.by_user_id(self.mailbox)

    async def _in_mailbox(self, fn: Callable[[], Awaitable[T]]) -> T:
        """At most :data:`MAILBOX_CONCURRENCY` requests to the mailbox at a time."""
        async with self._mailbox_slots:
            return await fn()

    async def _mail(
        self, what: str, fn: Callable[[], Awaitable[Any]], recheck: Callable[[], Awaitable[Any]] | None = None
    ) -> Any:
        return await self.calls.call(what, lambda: self._in_mailbox(fn), recheck=recheck)

    async def _find_message(self, key: str) -> _Found | None:
        """The message carrying ``key``, anywhere in the mailbox (Drafts, Outbox, Sent Items, or
        wherever someone moved it); a sent one wins over a draft."""
        value = key.replace("'", "''")
        query = RequestConfiguration(
            query_parameters=_MessagesQuery(
                filter=(
                    f"singleValueExtendedProperties/any(ep: ep/id eq '{DELIVERY_ID_PROPERTY}'"
                    f" and ep/value eq '{value}')"
                ),
                select=["id", "isDraft", "webLink"],
                top=5,
            )
        )
        page = await self._mail(f"look-up of {key}", lambda: self._user().messages.get(request_configuration=query))
        found = [_Found(m.id, bool(m.is_draft), m.web_link) for m in values(page) if m.id]
        found.sort(key=lambda f: f.is_draft)
        return found[0] if found else None

    async def _find_sent(self, key: str) -> _Found | None:
        found = await self._find_message(key)
        return found if found is not None and not found.is_draft else None

    def _message(self, mail: Letter, key: str, *, attach: bool) -> Message:
        to = mail.to
        msg = Message(
            subject=mail.subject,
            body=ItemBody(content_type=BodyType.Html, content=mail.html),
            to_recipients=[Recipient(email_address=EmailAddress(address=a)) for a in to.to],
            cc_recipients=[Recipient(email_address=EmailAddress(address=a)) for a in to.cc],
            reply_to=(
                [Recipient(email_address=EmailAddress(name=to.reply_to[0], address=to.reply_to[1]))]
                if to.reply_to
                else None
            ),
            single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=DELIVERY_ID_PROPERTY, value=key)],
            internet_message_headers=[InternetMessageHeader(name=DELIVERY_ID_HEADER, value=key)],
        )
        if attach:
            msg.attachments = [
                FileAttachment(
                    odata_type="#microsoft.graph.fileAttachment",
                    name=mail.attachment_name,
                    content_type="application/pdf",
                    content_bytes=mail.attachment,
                )
            ]
        return msg

    async def _send_inline(self, mail: Letter, key: str) -> _Found | None:
        body = SendMailPostRequestBody(message=self._message(mail, key, attach=True), save_to_sent_items=True)

        async def send() -> _Found | None:
            await self.messages.acquire()
            await self._in_mailbox(lambda: self._user().send_mail.post(body))
            return None

        # a re-send only after the look-up has not found the message (503/504 after acceptance)
        return await self.calls.call(f"sendMail of {key}", send, recheck=lambda: self._find_sent(key))

    async def _send_large(self, mail: Letter, key: str, draft: _Found | None) -> _Found | None:
        """Draft (with the delivery id) -> attachment upload session -> ``send``. A draft left by
        an earlier attempt is resumed: its attachment uploaded unless it is there, then sent."""
        resumed = draft is not None
        if draft is None:
            draft_body = self._message(mail, key, attach=False)
            created = await self._mail(
                f"draft for {key}",
                lambda: self._user().messages.post(draft_body),
                recheck=lambda: self._find_message(key),
            )
            if isinstance(created, _Found):
                if not created.is_draft:
                    return created
                draft = created
            elif created is None or not created.id:
                raise GraphUnavailable(f"the draft for {key} came back without an id")
            else:
                draft = _Found(created.id, True, created.web_link)
        message = self._user().messages.by_message_id(draft.id)
        if not (resumed and await self._has_attachment(message, mail.attachment_name)):
            session_body = AttachmentUploadSessionBody(
                attachment_item=AttachmentItem(
                    attachment_type=AttachmentType.File,
                    name=mail.attachment_name,
                    size=len(mail.attachment),
                    content_type="application/pdf",
                )
            )
            session = await self._mail(
                f"attachment upload session for {key}",
                lambda: message.attachments.create_upload_session.post(session_body),
            )
            if session is None or not session.upload_url:
                raise GraphUnavailable(f"the attachment upload session for {key} has no uploadUrl")
            await self.uploads.put_ranges(
                session.upload_url, mail.attachment, what=f"attachment of {key}", limiter=self.upload_bytes
            )

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

        sent = await self.calls.call(f"send of {key}", send, recheck=lambda: self._find_sent(key))
        return sent or draft

    async def _has_attachment(self, message: Any, name: str) -> bool:
        query = RequestConfiguration(query_parameters=_AttachmentsQuery(select=["name"]))
        page = await self._mail(
            "attachments of the draft", lambda: message.attachments.get(request_configuration=query)
        )
        return any(a.name == name for a in values(page))

"""The Gmail email step: ``users.messages.send`` as the MSP's Workspace mailbox.

The message (``email.message.EmailMessage``): From the configured sender, To the customer's CTO,
Cc the account owner, Reply-To the account engineer (that customer's entry only), the HTML cover
note with an identical plain-text part, and the PDF attached. Its ``Message-ID`` is derived from the delivery key
(:func:`message_id`), so before any send — and before any re-send after an ambiguous failure
(a timeout, a 5xx after Gmail accepted it, a crash) — the sender's mailbox is searched
(``users.messages.list`` with ``q=rfc822msgid:<id>`` and ``includeSpamTrash``: Sent, and
wherever it was moved): a message found is not sent again.

A raw message up to :data:`SIMPLE_MAX` goes as base64url in the JSON body; a larger one through
the resumable upload endpoint (``/upload/gmail/v1/users/me/messages/send?uploadType=resumable``,
``message/rfc822``), in chunks, resumed after a lost one. Tokens: ``gmail.send`` for sending,
``gmail.readonly`` for the look-up (the ``gmail.metadata`` scope may not search).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate
from typing import Any
from urllib.parse import quote

from bot.delivery import Parcel, PermanentError, StepResult
from bot.google.auth import SCOPE_GMAIL_READONLY, SCOPE_GMAIL_SEND
from bot.google.http import ApiError, GoogleHttp, ResumableUpload, check_own
from bot.outbox import Letter, address_headers, html_to_text, letter
from reporting.config import Config
from reporting.text import neutral

log = logging.getLogger(__name__)

GMAIL_API = "https://gmail.googleapis.com"
SIMPLE_MAX = 5 * 1024 * 1024  # Google's simple-upload guidance ("5 MB or less"); larger: the resumable endpoint
DELIVERY_ID_HEADER = "X-Reportbot-Delivery-Id"
_POLICY = SMTP.clone(max_line_length=998)  # never fold the Message-ID (RFC 5322 allows 998)


def message_id(key: str, sender: str) -> str:
    """The deterministic ``Message-ID`` of a delivery: the same key always gives the same id."""
    domain = sender.rpartition("@")[2] or "reportbot.invalid"
    return f"<reportbot.{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(config: Config, parcel: Parcel, key: str, sender: str) -> EmailMessage:
    # letter(): PermanentError when the customer's entry names nobody
    return letter_message(letter(config, parcel), key, sender)


def letter_message(mail: Letter, key: str, sender: str) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = formataddr((neutral(mail.sender_name), sender)) if mail.sender_name else sender
    address_headers(msg, mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(key, sender)
    msg[DELIVERY_ID_HEADER] = key
    msg.set_content(html_to_text(mail.html))
    msg.add_alternative(mail.html, subtype="html")
    msg.add_attachment(mail.attachment, maintype="application", subtype="pdf", filename=mail.attachment_name)
    return msg


class GmailSender:
    """The email step over the Gmail API. ``http`` signs as the sender (``subject``)."""

    def __init__(
        self,
        config: Config,
        http: GoogleHttp,
        *,
        sender: str,
        base_url: str = GMAIL_API,
        upload_url: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        settle_checks: int = 3,
        settle_delay: float = 5.0,
        chunk: int | None = None,
    ) -> None:
        self.config, self.http, self.sender = config, http, sender
        self.base = base_url.rstrip("/")
        self.upload_base = (upload_url or base_url).rstrip("/")
        self._sleep = sleep
        self.settle_checks, self.settle_delay = settle_checks, settle_delay
        self.uploads = ResumableUpload(http.client, sleep=sleep, **({"chunk": chunk} if chunk else {}))

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        check_own(self.config, parcel)
        return await self.send_letter(letter(self.config, parcel), key)

    async def send_letter(self, mail: Letter, key: str) -> StepResult:
        """Send ``mail`` once for ``key``: its Message-ID is looked up first, and after any ambiguous failure."""
        msg = letter_message(mail, key, self.sender)
        sent_to = f"sent to {mail.to.describe()} from {self.sender}"
        mid = str(msg["Message-ID"])
        try:
            found = await self.find(mid)
            if found is not None:
                log.info("email %s was already sent (found by its Message-ID)", key)
                return StepResult(f"{sent_to} (already sent)", self._link(found))
            raw = msg.as_bytes()
            if len(raw) <= SIMPLE_MAX:
                result = await self._send_simple(raw, mid, key)
            else:
                result = await self._send_resumable(raw, mid, key)
        except ApiError as err:
            raise PermanentError(f"Gmail send of {mail.attachment_name} as {self.sender}: {err}{_hint(err)}") from err
        return StepResult(sent_to, self._link(result))

    async def check_profile(self) -> str:
        """``config check``: the sender's profile (readable with the look-up scope)."""
        try:
            resp = await self.http.send(
                "GET", f"{self.base}/gmail/v1/users/me/profile", SCOPE_GMAIL_READONLY, what="the sender's profile"
            )
        except ApiError as err:
            raise PermanentError(f"gmail: the profile of {self.sender}: {err}{_hint(err)}") from err
        profile = resp.json()
        return f"mailbox {profile.get('emailAddress')} ({profile.get('messagesTotal', '?')} messages)"

    async def find(self, mid: str) -> dict[str, Any] | None:
        """The sender's message with this ``Message-ID``, anywhere in the mailbox (or None)."""
        resp = await self.http.send(
            "GET",
            f"{self.base}/gmail/v1/users/me/messages",
            SCOPE_GMAIL_READONLY,
            what=f"look-up of {mid}",
            params={"q": f"rfc822msgid:{mid}", "includeSpamTrash": "true"},
        )
        messages = resp.json().get("messages") or []
        return messages[0] if messages else None

    async def _settled_find(self, mid: str) -> dict[str, Any] | None:
        """After an ambiguous failure: Gmail may index an accepted message a moment later."""
        for check in range(self.settle_checks):
            if check:
                await self._sleep(self.settle_delay)
            found = await self.find(mid)
            if found is not None:
                return found
        return None

    async def _send_simple(self, raw: bytes, mid: str, key: str) -> dict[str, Any]:
        body = {"raw": base64.urlsafe_b64encode(raw).decode().rstrip("=")}
        result = await self.http.send(
            "POST",
            f"{self.base}/gmail/v1/users/me/messages/send",
            SCOPE_GMAIL_SEND,
            what=f"send of {key}",
            json=body,
            recheck=lambda: self._settled_find(mid),
        )
        return result if isinstance(result, dict) else result.json()

    async def _send_resumable(self, raw: bytes, mid: str, key: str) -> dict[str, Any]:
        started = await self.http.send(
            "POST",
            f"{self.upload_base}/upload/gmail/v1/users/me/messages/send",
            SCOPE_GMAIL_SEND,
            what=f"upload session for {key}",
            params={"uploadType": "resumable"},
            json={},
            headers={"X-Upload-Content-Type": "message/rfc822", "X-Upload-Content-Length": str(len(raw))},
        )
        session = started.headers.get("Location")
        if not session:
            raise PermanentError(f"Gmail's upload session for {key} came back without a Location")
        return await self.uploads.put(session, raw, "message/rfc822", what=f"upload of {key}")

    def _link(self, found: dict[str, Any]) -> str | None:
        mid = found.get("id")
        return f"https://mail.google.com/mail/?authuser={quote(self.sender)}#all/{mid}" if mid else None


def _hint(err: ApiError) -> str:
    if err.status == 403 and err.reason in ("insufficientPermissions", "forbidden", "PERMISSION_DENIED"):
        return (
            " (grant the gmail.send and gmail.readonly scopes to the service account's client ID in the Admin console)"
        )
    if err.status == 400 and err.reason == "failedPrecondition":
        return " (the sender has no Gmail mailbox: give gmail.sender a licensed Workspace user)"
    return ""

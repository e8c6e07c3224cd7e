"""Signed, expiring links: to draft PDFs (the review card's "Open PDF" button), and to delivered
artefacts (the customer email's "View online" / "Download PDF", the internal summary's post).

A link is ``{base}/files/{token}/{filename}``. The token carries the draft id, the draft version
and an expiry time (Unix seconds), and an HMAC-SHA256 over them with the bot's link secret::

    token = b64url(json([draft_id, version, expires])) + "." + b64url(hmac_sha256(secret, DOMAIN + payload))

Both parts are URL-safe base64 without padding, so the token is one path segment. The filename
after it is cosmetic (what the browser saves the file as) and is not signed: the server never
trusts it for anything but a sanitised ``Content-Disposition`` name.

``verify`` checks the MAC first (constant-time) and only then the expiry, so "expired" is said only
about a link this bot really issued; everything else is "tampered".

A draft link dies with its draft's version (every save, regenerate or decision moves it on) and
after ``[teams] link_ttl_hours``: right for a review card, wrong for an email a customer opens
next week. :class:`ArtefactLinkSigner` signs links of their own kind for what was *delivered*:
the token names the customer code, the period end, the artefact (``pdf``) and that artefact's
SHA-256 from the store, and expires after ``[delivery] customer_link_days``::

    payload = json([code, period_end, name, sha256, expires])

under a separate HMAC domain string per use (:data:`CUSTOMER_DOMAIN`, :data:`INTERNAL_DOMAIN`),
so no draft link, customer link or internal link is ever accepted as another kind. The draft's
later state changes do not touch such a link; a new final render with other bytes (the week
delivered again with other content) makes it "superseded", which the server answers with 410.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import BotSettings

_DOMAIN = b"reportbot/draft-pdf-link/v1\x00"  # keeps these MACs from meaning anything elsewhere
CUSTOMER_DOMAIN = b"reportbot/customer-report-link/v1\x00"  # the customer email's links
INTERNAL_DOMAIN = b"reportbot/internal-summary-link/v1\x00"  # the MSP's own service-desk summaries
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.pdf")
DEFAULT_FILENAME = "report.pdf"


class LinkError(Exception):
    """A link that must not be served. ``reason`` is ``"expired"`` or ``"tampered"``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def safe_filename(name: str | None) -> str:
    """``name`` if it is a plain ``*.pdf`` file name (letters, digits, ``._-``), else ``report.pdf``."""
    return name if name and _SAFE_NAME.fullmatch(name) else DEFAULT_FILENAME


class LinkSigner:
    """Makes and checks draft-PDF links. ``now`` is injectable for tests (seconds since the epoch)."""

    def __init__(self, secret: bytes, ttl_seconds: float, base_url: str, now: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("link secret: at least 16 bytes")
        if ttl_seconds <= 0:
            raise ValueError("link ttl: must be positive")
        self._secret = secret
        self._ttl = ttl_seconds
        self._base = base_url.rstrip("/")
        self._now = now

    @classmethod
    def from_settings(cls, settings: BotSettings, now: Callable[[], float] = time.time) -> LinkSigner:
        """The signer the app serves with; the bot can build its own from the same settings."""
        return cls(settings.link_secret, settings.link_ttl_seconds, settings.public_url, now=now)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, _DOMAIN + payload, hashlib.sha256).digest()

    def token(self, draft_id: str, version: int) -> str:
        if not isinstance(draft_id, str) or not draft_id:
            raise ValueError("draft_id: a non-empty string")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError("version: a non-negative int")
        expires = math.ceil(self._now() + self._ttl)
        payload = json.dumps([draft_id, version, expires], separators=(",", ":")).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def url(self, draft_id: str, version: int, filename: str = DEFAULT_FILENAME) -> str:
        """``{base}/files/{token}/{filename}``; ``filename`` must be a plain ``*.pdf`` name."""
        return f"{self._base}/files/{self.token(draft_id, version)}/{safe_filename(filename)}"

    def view_url(self, draft_id: str, version: int, filename: str = DEFAULT_FILENAME) -> str:
        """``{base}/view/{token}/{name}.html``: the same report as a web page (``reporting.html``)."""
        name = safe_filename(filename).removesuffix(".pdf") + ".html"
        return f"{self._base}/view/{self.token(draft_id, version)}/{name}"

    def verify(self, token: str) -> tuple[str, int]:
        """``(draft_id, version)`` of a genuine, unexpired token; ``LinkError`` otherwise."""
        try:
            payload_part, mac_part = token.split(".")
            payload, mac = _b64decode(payload_part), _b64decode(mac_part)
        except (ValueError, binascii.Error) as err:
            raise LinkError("tampered") from err
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkError("tampered")
        try:
            draft_id, version, expires = json.loads(payload)
        except (ValueError, TypeError) as err:  # cannot happen for a token we signed, but be total
            raise LinkError("tampered") from err
        if not (isinstance(draft_id, str) and isinstance(version, int) and isinstance(expires, int)):
            raise LinkError("tampered")
        if self._now() >= expires:
            raise LinkError("expired")
        return draft_id, version


@dataclass(frozen=True)
class ArtefactRef:
    """What an artefact link names: a stored artefact (``reporting.store.artefacts``) of one
    customer-week (``code`` may be an internal pseudo-code) as it was when the link was made."""

    code: str
    period_end: date
    name: str
    sha256: str
    period_kind: str = "week"  # week | fortnight | 30d | month: the store's key holds it


@dataclass(frozen=True)
class ReportLinks:
    """The two links of a delivered report's email and when they stop working."""

    view_url: str
    pdf_url: str
    expires: datetime


_SHA256 = re.compile(r"[0-9a-f]{64}")
_ART_NAME = re.compile(r"[a-z][a-z0-9_-]{0,15}")


class ArtefactLinkSigner:
    """Makes and checks links to delivered artefacts (see the module docstring): ``{base}{prefix}/
    {token}/{file name}``, the token in its own HMAC ``domain``. ``now`` is injectable."""

    def __init__(
        self,
        secret: bytes,
        ttl_seconds: float,
        base_url: str,
        *,
        domain: bytes,
        prefix: str,
        now: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("link secret: at least 16 bytes")
        if ttl_seconds <= 0:
            raise ValueError("link ttl: must be positive")
        if domain in (_DOMAIN,) or not domain.endswith(b"\x00"):
            raise ValueError("link domain: one of its own, NUL-terminated")
        self._secret = secret
        self._ttl = ttl_seconds
        self._base = base_url.rstrip("/")
        self._domain = domain
        self._prefix = "/" + prefix.strip("/")
        self._now = now

    @classmethod
    def customer(cls, settings: BotSettings, now: Callable[[], float] = time.time) -> ArtefactLinkSigner:
        """The customer email's links (``/reports/...``), valid ``[delivery] customer_link_days``."""
        return cls(
            settings.link_secret,
            settings.report_link_ttl_seconds,
            settings.public_url,
            domain=CUSTOMER_DOMAIN,
            prefix="/reports",
            now=now,
        )

    @classmethod
    def internal(cls, settings: BotSettings, now: Callable[[], float] = time.time) -> ArtefactLinkSigner:
        """The internal summaries' links (``/internal/...``), valid as long as a review card's."""
        return cls(
            settings.link_secret,
            settings.link_ttl_seconds,
            settings.public_url,
            domain=INTERNAL_DOMAIN,
            prefix="/internal",
            now=now,
        )

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, self._domain + payload, hashlib.sha256).digest()

    def token(self, ref: ArtefactRef) -> tuple[str, int]:
        """The token for ``ref`` and its expiry (Unix seconds)."""
        if not ref.code or not _ART_NAME.fullmatch(ref.name) or not _SHA256.fullmatch(ref.sha256):
            raise ValueError("artefact ref: a code, a plain artefact name and a hex SHA-256")
        expires = math.ceil(self._now() + self._ttl)
        fields: list[object] = [ref.code, ref.period_end.isoformat(), ref.name, ref.sha256, expires]
        if ref.period_kind != "week":  # a week's token keeps the five fields it always had
            fields.append(ref.period_kind)
        payload = json.dumps(fields, separators=(",", ":")).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}", expires

    def url(self, ref: ArtefactRef, filename: str = DEFAULT_FILENAME) -> str:
        """``{base}{prefix}/{token}/{filename}``: the PDF (``filename`` a plain ``*.pdf`` name)."""
        return f"{self._base}{self._prefix}/{self.token(ref)[0]}/{safe_filename(filename)}"

    def links(self, ref: ArtefactRef, filename: str = DEFAULT_FILENAME) -> ReportLinks:
        """The web page (``….html``) and the PDF of ``ref``, one token, and when they expire."""
        token, expires = self.token(ref)
        pdf = safe_filename(filename)
        base = f"{self._base}{self._prefix}/{token}/"
        return ReportLinks(base + pdf.removesuffix(".pdf") + ".html", base + pdf, datetime.fromtimestamp(expires, UTC))

    def verify(self, token: str) -> ArtefactRef:
        """The artefact a genuine, unexpired token names; ``LinkError`` otherwise."""
        try:
            payload_part, mac_part = token.split(".")
            payload, mac = _b64decode(payload_part), _b64decode(mac_part)
        except (ValueError, binascii.Error) as err:
            raise LinkError("tampered") from err
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkError("tampered")
        try:
            fields = json.loads(payload)
            if not isinstance(fields, list) or len(fields) not in (5, 6):
                raise TypeError("not five or six fields")
            code, period_end, name, sha256, expires = fields[:5]
            kind = fields[5] if len(fields) == 6 else "week"
            if not all(isinstance(v, str) for v in (code, name, sha256, kind)):
                raise TypeError("not strings")
            if isinstance(expires, bool) or not isinstance(expires, int):
                raise TypeError("expiry not an int")
            ref = ArtefactRef(code, date.fromisoformat(period_end), name, sha256, kind)
        except (ValueError, TypeError) as err:  # cannot happen for a token we signed, but be total
            raise LinkError("tampered") from err
        if self._now() >= expires:
            raise LinkError("expired")
        return ref

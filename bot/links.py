"""Signed, expiring links to draft PDFs (the review card's "Open PDF" button).

A link is ``{base}/files/{token}/{filename}``. The token carries the draft id, the draft version
and an expiry time (Unix seconds), and an HMAC-SHA256 over them with the bot's link secret::

    token = b64url(json([draft_id, version, expires])) + "." + b64url(hmac_sha256(secret, DOMAIN + payload))

Both parts are URL-safe base64 without padding, so the token is one path segment. The filename
after it is cosmetic (what the browser saves the file as) and is not signed: the server never
trusts it for anything but a sanitised ``Content-Disposition`` name.

``verify`` checks the MAC first (constant-time) and only then the expiry, so "expired" is said only
about a link this bot really issued; everything else is "tampered".
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import BotSettings

_DOMAIN = b"reportbot/draft-pdf-link/v1\x00"  # keeps these MACs from meaning anything elsewhere
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

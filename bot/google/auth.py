"""Access tokens for a Google service account, minted in a thread and cached per scope.

google-auth's service-account credentials (``.with_subject(user)`` for domain-wide delegation)
sign the RS256 JWT assertion and trade it at the token endpoint (``token_uri``, overridable for
tests). Their ``refresh`` is blocking (``requests``), so it runs in ``asyncio.to_thread``; the
event loop never waits on Google's token endpoint. The async alternatives (aiogoogle, or
google-auth's aio transport, still experimental) would bring a second HTTP stack and a second
signing path for one request an hour; the thread costs nothing here.

Tokens are cached per (subject, scope) until five minutes before they expire (Google issues them
for an hour), so a batch of deliveries makes one token request per scope per hour, not one per
call. A token Google refuses later (401) is dropped and minted again once.

Token endpoint refusals become one-line, actionable :class:`bot.delivery.PermanentError` messages
(what to fix in the Google Admin console or the Cloud console); network trouble and Google's 5xx
become :class:`GoogleUnavailable` (the step is repeated later with the same key).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.delivery import PermanentError

log = logging.getLogger(__name__)

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
SCOPE_GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
SCOPE_GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"  # the rfc822msgid: look-up and the profile
SCOPE_DRIVE = "https://www.googleapis.com/auth/drive"
GMAIL_SCOPES = (SCOPE_GMAIL_SEND, SCOPE_GMAIL_READONLY)
REFRESH_MARGIN = 300.0  # a cached token is renewed this many seconds before it expires
DELEGATION_HELP = "Google Admin console > Security > API controls > Domain-wide delegation"

Clock = Callable[[], float]


class GoogleUnavailable(Exception):  # noqa: N818 - a condition, like GraphUnavailable
    """A transient Google failure (network, 5xx, throttled beyond patience): the step stays
    ``running`` and is repeated with the same key."""


class CredentialsError(ValueError):
    """The service account key cannot be read; the message names the key to fix."""


def load_service_account(key: str, credentials_file: str = "", credentials_json: str = "") -> dict[str, Any]:
    """The service account's key (the JSON the Cloud console downloads), from the file or from the
    JSON itself (``${ENV}`` reference). ``key`` names the config table for messages (``gmail``)."""
    if credentials_json:
        source, text = f"{key}.credentials_json", credentials_json
    elif credentials_file:
        source = f"{key}.credentials_file"
        try:
            text = Path(credentials_file).expanduser().read_text(encoding="utf-8")
        except OSError as err:
            raise CredentialsError(f"{source}: cannot read {credentials_file} ({err.strerror or err})") from None
    else:
        raise CredentialsError(f"{key}.credentials_file: not set (or give {key}.credentials_json as ${{ENV_VAR}})")
    try:
        info = json.loads(text)
    except ValueError:
        raise CredentialsError(
            f"{source}: not JSON; give the service account key file the Cloud console "
            "downloads (IAM & Admin > Service accounts > Keys > Add key > JSON)"
        ) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise CredentialsError(f'{source}: not a service account key (its "type" must be "service_account")')
    missing = [k for k in ("client_email", "client_id", "private_key", "private_key_id") if not info.get(k)]
    if missing:
        raise CredentialsError(f"{source}: the key has no {', '.join(missing)}")
    return info


@dataclass
class _Cached:
    token: str
    expires_at: float  # on the source's clock


class TokenSource:
    """Access tokens of one service account: ``await tokens.token(scope, subject)``.

    ``subject``: the Workspace user to impersonate (domain-wide delegation); None acts as the
    service account itself (a shared drive or folder shared with it). ``token_uri`` overrides the
    key's (tests, private endpoints). ``section`` names the config table in messages."""

    def __init__(
        self,
        info: dict[str, Any],
        *,
        token_uri: str | None = None,
        section: str = "gmail",
        clock: Clock = time.monotonic,
        ca_bundle: str | None = None,
    ) -> None:
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        try:
            creds = service_account.Credentials.from_service_account_info(info)
        except (ValueError, TypeError) as err:
            raise CredentialsError(
                f"{section}: the service account key's private_key cannot be read "
                f"({type(err).__name__}); download a new JSON key"
            ) from None
        self._base = creds.with_token_uri(token_uri) if token_uri else creds
        self.client_email = str(info["client_email"])
        self.client_id = str(info["client_id"])
        self.key_id = str(info["private_key_id"])
        self.section = section
        self._clock = clock
        import requests

        self._session = requests.Session()
        if ca_bundle:
            self._session.verify = ca_bundle
        self._request = Request(self._session)
        self._session_lock = threading.Lock()  # refreshes of different scopes may run in two threads at once
        self._cache: dict[tuple[str | None, str], _Cached] = {}
        self._locks: dict[tuple[str | None, str], asyncio.Lock] = {}
        self.minted: list[tuple[str | None, str]] = []  # (subject, scope) of each token request, for /healthz and tests

    def close(self) -> None:
        self._session.close()

    def forget(self, scope: str, subject: str | None) -> None:
        """Drop a cached token Google refused (401): the next call mints a new one."""
        self._cache.pop((subject, scope), None)

    async def token(self, scope: str, subject: str | None) -> str:
        key = (subject, scope)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one refresh per (subject, scope), however many deliveries wait for it
            cached = self._cache.get(key)
            if cached is not None and cached.expires_at - REFRESH_MARGIN > self._clock():
                return cached.token
            creds = self._base.with_scopes([scope])
            if subject:
                creds = creds.with_subject(subject)
            self.minted.append(key)
            await asyncio.to_thread(self._refresh, creds, scope, subject)
            expiry = creds.expiry  # naive UTC (google-auth's convention)
            lifetime = 3600.0 if expiry is None else (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
            self._cache[key] = _Cached(str(creds.token), self._clock() + lifetime)
            log.info(
                "minted a Google token for %s, scope %s (valid %.0f s)", subject or self.client_email, scope, lifetime
            )
            return str(creds.token)

    def _refresh(self, creds: Any, scope: str, subject: str | None) -> None:
        from google.auth import exceptions

        try:
            with self._session_lock:
                creds.refresh(self._request)
        except exceptions.RefreshError as err:
            raise self._refused(err, scope, subject) from None
        except exceptions.TransportError as err:
            raise GoogleUnavailable(
                f"the Google token endpoint did not answer ({type(err).__name__}); tried again later"
            ) from None

    def _refused(self, err: Any, scope: str, subject: str | None) -> Exception:
        data = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], dict) else {}
        code, desc = str(data.get("error", "")), str(data.get("error_description", ""))
        text = f"{code}: {desc}" if code else str(err.args[0] if err.args else err)
        who = subject or self.client_email
        if code == "unauthorized_client":
            return PermanentError(
                f"{self.section}: Google refused a token as {who} (unauthorized_client): in {DELEGATION_HELP}, add "
                f"client ID {self.client_id} with scopes {','.join(self._scopes_for_help(scope))}"
            )
        if code == "invalid_grant" and "signature" in desc.lower():
            return PermanentError(
                f"{self.section}: Google refused the service account key {self.key_id[:8]} (invalid_grant: Invalid "
                f"JWT Signature): it was deleted or is not {self.client_email}'s; create a new JSON key in the Cloud "
                f"console and set {self.section}.credentials_file to it"
            )
        if code == "invalid_grant" and ("email" in desc.lower() or "user" in desc.lower()):
            return PermanentError(
                f"{self.section}: {who} is not a user of the Workspace domain ({text}): set "
                f"{'gmail.sender' if self.section == 'gmail' else 'gdrive.subject'} "
                "to an existing user"
            )
        if getattr(err, "retryable", False):
            return GoogleUnavailable(f"{self.section}: the Google token endpoint failed ({text}); tried again later")
        return PermanentError(
            f"{self.section}: Google refused a token as {who} for {scope} ({text}): check the "
            "service account key and its domain-wide delegation"
        )

    def _scopes_for_help(self, scope: str) -> list[str]:
        return list(GMAIL_SCOPES) if scope in GMAIL_SCOPES else [scope]

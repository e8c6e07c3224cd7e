"""Calls to Google's REST APIs over httpx: bearer tokens from :class:`bot.google.auth.TokenSource`,
Google's error body read, and the documented retry policy.

Retried, with exponential backoff (``2**n`` seconds plus up to a second of jitter, at most
:data:`MAX_BACKOFF`; ``Retry-After`` when Google sends one): 429, 403 with reason
``rateLimitExceeded`` / ``userRateLimitExceeded``, 5xx and connection failures. A request that
creates something is never simply repeated: its ``recheck`` runs first and, when it finds the
thing, that is the answer. A 401 drops the cached token and tries once more with a new one.
Gmail's per-user sending limit (429 "User-rate limit exceeded ... (Mail sending)") is a
:class:`bot.delivery.PermanentError` at once: waiting inside a delivery for a quota that resets
after hours helps nobody; the card says so. Other 4xx are permanent, with Google's reason and
message; retries exhausted are :class:`GoogleUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.delivery import PermanentError
from bot.google.auth import GoogleUnavailable, TokenSource
from connectors.http import retry_after_seconds

log = logging.getLogger(__name__)

MAX_BACKOFF = 64.0
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class ApiError(Exception):
    status: int
    reason: str
    message: str
    retry_after: float | None = None

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"Google {self.status}{reason}: {self.message}"

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500 or (self.status == 403 and self.reason in RATE_REASONS)

    @property
    def sending_limit(self) -> bool:
        return self.status in (403, 429) and "mail sending" in self.message.lower()


def api_error(resp: httpx.Response) -> ApiError:
    """Google's ``{"error": {"code", "message", "errors": [{"reason", "domain"}], "status"}}``."""
    reason, message = "", resp.reason_phrase or ""
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or message)
        errors = err.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = str(errors[0].get("reason") or "")
        reason = reason or str(err.get("status") or "")
    elif isinstance(err, str):  # OAuth-style {"error": "...", "error_description": "..."}
        reason, message = err, str(body.get("error_description") or message)
    delay = retry_after_seconds(resp.headers.get("Retry-After"), datetime.now(UTC))
    return ApiError(resp.status_code, reason, message[:300], delay)


class GoogleHttp:
    """An httpx client that signs each request with a token for ``scope`` as ``subject``."""

    def __init__(
        self,
        tokens: TokenSource,
        subject: str | None,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 5,
        max_retry_after: float = 120.0,
        timeout: float = 120.0,
    ) -> None:
        self.tokens, self.subject = tokens, subject
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=15.0))
        self._own = client is None
        self.sleep = sleep
        self.max_attempts, self.max_retry_after = max_attempts, max_retry_after

    async def aclose(self) -> None:
        if self._own:
            await self.client.aclose()

    async def send(
        self,
        method: str,
        url: str,
        scope: str,
        *,
        what: str,
        ok: tuple[int, ...] = (200,),
        recheck: Callable[[], Awaitable[Any]] | None = None,
        **kw: Any,
    ) -> httpx.Response | Any:
        """The response (status in ``ok``), after retries; or ``recheck()``'s non-None answer when a
        failed attempt turns out to have taken effect."""
        attempt, renewed = 0, False
        extra = dict(kw.pop("headers", None) or {})
        while True:
            attempt += 1
            token = await self.tokens.token(scope, self.subject)
            try:
                resp = await self.client.request(
                    method, url, headers={**extra, "Authorization": f"Bearer {token}"}, **kw
                )
            except httpx.TransportError as exc:
                if attempt >= self.max_attempts:
                    raise GoogleUnavailable(f"{what}: {type(exc).__name__} after {attempt} attempts") from exc
                delay = backoff(attempt)
                log.warning("%s: %s; retrying in %.1f s", what, type(exc).__name__, delay)
            else:
                if resp.status_code in ok:
                    return resp
                err = api_error(resp)
                if resp.status_code == 401 and not renewed:
                    renewed = True
                    self.tokens.forget(scope, self.subject)
                    attempt -= 1
                    continue
                if err.sending_limit:
                    raise PermanentError(
                        f"{what}: the sender reached Gmail's sending limit (2,000 messages a day "
                        f"for Workspace; {err.message}); deliver again after the reset"
                    ) from err
                if not err.retryable:
                    raise err
                if attempt >= self.max_attempts:
                    raise GoogleUnavailable(f"{what}: {err} after {attempt} attempts") from err
                delay = err.retry_after if err.retry_after is not None else backoff(attempt)
                if delay > self.max_retry_after:
                    raise GoogleUnavailable(f"{what}: throttled for {delay:.0f} s; repeated on the next run") from err
                log.warning("%s: %s; retrying in %.1f s", what, err, delay)
            await self.sleep(delay)
            if recheck is not None:
                found = await recheck()
                if found is not None:
                    log.info("%s: it took effect before the failure; not repeated", what)
                    return found


def backoff(attempt: int) -> float:
    """Google's documented truncated exponential backoff: 2**n s + up to 1 s of jitter, capped."""
    return min(MAX_BACKOFF, 2.0 ** (attempt - 1) + random.random())  # noqa: S311 - jitter, not secrecy


def monotonic() -> float:
    return time.monotonic()


def check_own(config: Any, parcel: Any) -> None:
    """The parcel's customer entry must be the configuration's entry for its code: nothing here
    reads an address or a folder from anywhere else."""
    try:
        configured = config.customer(parcel.code)
    except KeyError as err:
        raise PermanentError(f"customer {parcel.code} is not configured") from err
    if parcel.customer != configured or parcel.customer.code != parcel.code:
        raise PermanentError(f"the delivery of {parcel.code} carries another customer's entry ({parcel.customer.code})")


CHUNK = 16 * 256 * 1024  # 4 MiB: resumable chunks are multiples of 256 KiB (but the last)


class ResumableUpload:
    """Google's resumable upload protocol on a session URI (the ``Location`` of the initiating
    request): ``PUT`` ranges with ``Content-Range``; ``308 Resume Incomplete`` carries ``Range:
    bytes=0-N`` (what the server has); after a failed chunk (5xx, connection lost) the status is
    asked (``Content-Range: bytes */TOTAL``) and the upload goes on from the server's offset. The
    session URI is the credential: no Authorization header is sent to it."""

    def __init__(
        self, client: httpx.AsyncClient, *, sleep: Sleep = asyncio.sleep, max_failures: int = 5, chunk: int = CHUNK
    ) -> None:
        if chunk % (256 * 1024):
            raise ValueError("the chunk size must be a multiple of 256 KiB")
        self.client, self._sleep, self.max_failures, self.chunk = client, sleep, max_failures, chunk
        self.chunks_sent = 0
        self.status_queries = 0

    async def put(self, session: str, data: bytes, content_type: str, *, what: str) -> dict[str, Any]:
        total, offset, failures, stalled = len(data), 0, 0, 0
        while True:
            end = min(offset + self.chunk, total)
            try:
                self.chunks_sent += 1
                resp = await self.client.put(
                    session,
                    content=data[offset:end],
                    headers={"Content-Range": f"bytes {offset}-{end - 1}/{total}", "Content-Type": content_type},
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures >= self.max_failures:
                    raise GoogleUnavailable(f"{what}: {type(exc).__name__} during the upload") from exc
                resp = None
            if resp is not None:
                if resp.status_code in (200, 201):
                    return _json(resp)
                if resp.status_code == 308:
                    moved_to = _next_offset(resp)
                    stalled = stalled + 1 if moved_to <= offset else 0
                    if stalled >= self.max_failures:
                        raise GoogleUnavailable(f"{what}: the upload makes no progress (at byte {offset} of {total})")
                    failures, offset = 0, moved_to
                    continue
                if resp.status_code in (404, 410):
                    raise GoogleUnavailable(f"{what}: the upload session expired; the next run starts anew")
                err = api_error(resp)
                if not err.retryable:
                    raise err
                failures += 1
                if failures >= self.max_failures:
                    raise GoogleUnavailable(f"{what}: {err} during the upload")
                log.warning("%s: chunk at %d failed (%s); asking the session where it is", what, offset, err)
            await self._sleep(backoff(failures))
            done, offset = await self._status(session, total, what)
            if done is not None:
                return done

    async def _status(self, session: str, total: int, what: str) -> tuple[dict[str, Any] | None, int]:
        self.status_queries += 1
        try:
            resp = await self.client.put(session, content=b"", headers={"Content-Range": f"bytes */{total}"})
        except httpx.TransportError as err:
            raise GoogleUnavailable(f"{what}: the upload session's status is unknown ({type(err).__name__})") from err
        if resp.status_code in (200, 201):
            return _json(resp), total
        if resp.status_code == 308:
            return None, _next_offset(resp)
        if resp.status_code in (404, 410):
            raise GoogleUnavailable(f"{what}: the upload session expired; the next run starts anew")
        raise GoogleUnavailable(f"{what}: the upload session's status is unknown ({resp.status_code})")


def _next_offset(resp: httpx.Response) -> int:
    rng = resp.headers.get("Range")
    if not rng:
        return 0
    try:
        return int(rng.rpartition("-")[2]) + 1
    except ValueError:
        raise GoogleUnavailable(f"unreadable Range {rng!r} in a 308 answer") from None


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

"""Graph upload sessions, shared by mail attachments and drive files: the byte ranges are PUT
here (not with msgraph-core's ``LargeFileUploadTask``), to the session's ``uploadUrl`` without an
Authorization header, each starting where the server's ``nextExpectedRanges`` says."""

from __future__ import annotations

import math
import re
from typing import Any

import httpx

from bot.delivery import PermanentError
from bot.graph.client import (
    RETRY_STATUSES,
    TRANSIENT_STATUSES,
    GraphCalls,
    GraphUnavailable,
    SlidingWindowLimiter,
    backoff,
)

UPLOAD_CHUNK = 12 * 320 * 1024  # 3.75 MiB: <= 4 MB (Outlook) and a multiple of 320 KiB (OneDrive/SharePoint)


class UploadSessions:
    """PUTs to upload sessions over ``http`` (a plain client: the ``uploadUrl`` carries its own
    authorisation), retried with ``calls``' policy."""

    def __init__(self, http: httpx.AsyncClient, calls: GraphCalls) -> None:
        self.http, self.calls = http, calls

    async def put_ranges(
        self, upload_url: str, data: bytes, *, what: str, limiter: SlidingWindowLimiter | None
    ) -> dict[str, Any]:
        """PUT ``data`` to an upload session in ranges of at most :data:`UPLOAD_CHUNK`, each
        starting where the server's ``nextExpectedRanges`` says, with no Authorization header.
        Returns the final response's JSON (the driveItem; ``{}`` for an attachment)."""
        calls = self.calls
        total, offset, failures = len(data), 0, 0
        for _ in range(2 * math.ceil(total / UPLOAD_CHUNK) + 2 * calls.max_attempts):
            end = min(offset + UPLOAD_CHUNK, total)
            chunk = data[offset:end]
            if limiter is not None:
                await limiter.acquire(len(chunk))
            try:
                resp = await self.http.put(
                    upload_url,
                    content=chunk,
                    headers={"Content-Range": f"bytes {offset}-{end - 1}/{total}", "Content-Length": str(len(chunk))},
                )
            except httpx.TransportError as err:
                failures += 1
                if failures >= calls.max_attempts:
                    raise GraphUnavailable(f"{what}: {type(err).__name__}") from err
                await calls.sleep(backoff(failures))
                continue
            body = json_or_empty(resp)
            if resp.status_code in (200, 201, 202):
                failures = 0
                ranges = body.get("nextExpectedRanges") or []
                if ranges and resp.status_code != 201:
                    offset = range_start(ranges[0], what)
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
                if failures >= calls.max_attempts:
                    raise GraphUnavailable(f"{what}: {resp.status_code} {error_text(body)}")
                await calls.sleep(calls.delay(resp.headers, failures, what))
                continue
            if resp.status_code == 404:
                raise GraphUnavailable(f"{what}: the upload session expired or is gone; the next run starts anew")
            raise PermanentError(f"{what}: Graph {resp.status_code} {error_text(body)}")
        raise GraphUnavailable(f"{what}: the upload made no progress")

    async def _session_offset(self, upload_url: str, what: str) -> int:
        resp = await self.http.get(upload_url)
        ranges = json_or_empty(resp).get("nextExpectedRanges") or []
        if resp.status_code != 200 or not ranges:
            raise GraphUnavailable(f"{what}: the upload session's status is unknown ({resp.status_code})")
        return range_start(ranges[0], what)


def json_or_empty(resp: httpx.Response) -> dict[str, Any]:
    if not resp.content:
        return {}
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def error_text(body: dict[str, Any]) -> str:
    err = body.get("error")
    if isinstance(err, dict):
        return f"{err.get('code', '')}: {err.get('message', '')}"
    return ""


def range_start(r: str, what: str) -> int:
    m = re.fullmatch(r"(\d+)-(\d*)", r.strip())
    if m is None:
        raise GraphUnavailable(f"{what}: unreadable nextExpectedRanges {r!r}")
    return int(m[1])

"""Typed async client of the UptimeRobot API v2 (``POST https://api.uptimerobot.com/v2/<method>``).

- Every call is a ``POST`` with an ``application/x-www-form-urlencoded`` body carrying
  ``api_key`` and ``format=json`` — the key is never put in the URL (UptimeRobot's docs: "you
  must send the api_key in your request's body").
- Answers: ``{"stat": "ok", ...}`` or ``{"stat": "fail", "error": {"type", "parameter_name",
  "passed_value", "message"}}`` — with HTTP 200. A wrong key is ``invalid_parameter`` on
  ``api_key`` ("api_key is invalid."), a missing one ``missing_parameter``: auth errors here.
- ``getMonitors`` pages with ``offset``/``limit`` (at most 50) and says
  ``pagination: {offset, limit, total}``; page 1 gives the total, the other pages are fetched
  concurrently, and the monitors must add up to ``total``.
- Rate limits: HTTP 429 with ``Retry-After`` (handled by ``HttpSource``).

This module builds requests and checks envelopes; ``connector.py`` builds the section.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from connectors.fields import Fields
from connectors.http import HttpSource
from reporting.sources import SourceAuthError, SourceDataError, SourceUnavailable

SYSTEM = "statuscheck"
MAX_LIMIT = 50


def error_message(resp: httpx.Response) -> str | None:
    """``error.message`` of a ``stat: fail`` body (or a plain ``message``)."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return None


class UptimeRobotClient:
    def __init__(self, http: HttpSource, base_url: str, api_key: str, limit: int = MAX_LIMIT):
        self.http = http
        self.base = base_url.rstrip("/")
        self._key = api_key
        self.limit = max(1, min(limit, MAX_LIMIT))

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /<method>`` with the key in the form body; the ``stat: ok`` body."""
        form = {"api_key": self._key, "format": "json", **{k: str(v) for k, v in (params or {}).items()}}
        body = await self.http.post_json(self.base + "/" + method, data=form, headers={"Accept": "application/json"})
        f = Fields(SYSTEM, body, f"POST /{method}")
        stat = f.text("stat")
        if stat == "ok":
            return body
        err_raw = body.get("error")
        err = Fields(SYSTEM, err_raw, f"POST /{method} error") if isinstance(err_raw, dict) else None
        kind = (err.opt_text("type") if err else None) or ""
        param = (err.opt_text("parameter_name") if err else None) or ""
        message = (err.opt_text("message") if err else None) or str(body.get("error") or "no error detail")
        if param == "api_key" or "api_key" in message:
            raise SourceAuthError(SYSTEM, f"POST /{method} was refused: the api_key (credentials) — {message}")
        if "rate" in kind.lower() or "rate limit" in message.lower():
            raise SourceUnavailable(SYSTEM, f"POST /{method}: {message}")
        raise SourceDataError(SYSTEM, f"POST /{method}: stat {stat!r}: {kind + ': ' if kind else ''}{message}")

    async def get_monitors(self, params: dict[str, Any]) -> list[Any]:
        """Every monitor matching ``params`` (all pages of ``getMonitors``)."""

        async def page(offset: int, limit: int) -> tuple[list[Any], int, int]:
            body = await self.call("getMonitors", {**params, "offset": offset, "limit": limit})
            f = Fields(SYSTEM, body, f"POST /getMonitors offset {offset}")
            p = f.obj("pagination")
            return f.array("monitors"), p.integer("total"), p.integer("limit")

        first, total, step = await page(0, self.limit)  # the server may grant a smaller limit
        if step < 1:
            raise SourceDataError(SYSTEM, f"POST /getMonitors: pagination.limit is {step}")
        rest = await asyncio.gather(*(page(o, step) for o in range(step, total, step)))
        monitors = first + [m for ms, _, _ in rest for m in ms]
        if len(monitors) != total:
            raise SourceDataError(
                SYSTEM, f"POST /getMonitors: {len(monitors)} monitors over the pages but pagination.total says {total}"
            )
        return monitors

    async def account_details(self) -> dict[str, Any]:
        """``POST /getAccountDetails`` — ``account.email``, ``monitor_limit``, ``up_monitors``..."""
        body = await self.call("getAccountDetails")
        return Fields(SYSTEM, body, "POST /getAccountDetails").obj("account").data

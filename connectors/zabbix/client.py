"""A typed async client for the Zabbix 6.0 – 7.x JSON-RPC API, over :class:`HttpSource`.

Every call is ``POST <frontend>/api_jsonrpc.php`` with ``Content-Type: application/json-rpc`` and
the body ``{"jsonrpc": "2.0", "method": ..., "params": ..., "id": n}``.

Authentication (API token): the server version is read once with ``apiinfo.version``, sent
WITHOUT any credential (Zabbix refuses that method with one). Then the token goes

- in the body as ``"auth"`` on 6.0 – 6.2 (6.0 ignores the ``Authorization`` header);
- as ``Authorization: Bearer <token>`` on 6.4 and later (7.2 removed the body field and answers
  ``-32600 Invalid request`` when it is present).

Zabbix answers errors with HTTP 200 and ``{"error": {"code", "message", "data"}}``; they are
translated here into the connector error tree (see :func:`_rpc_error`). Transport errors, 5xx,
429 and timeouts are :class:`HttpSource`'s job.

Zabbix has no pages. ``event.get`` is read with ``limit`` = ``page_size`` sorted by ``eventid``;
a full page is followed by the next one from ``eventid_from`` = last id + 1 until a short page.
``event.get`` by ids is split into chunks of ``page_size`` ids. Ids, clocks and most numbers come
back as strings (``"10084"``); ``sla.getsli`` returns real integers.

The client returns the vendor's JSON (dicts and lists); the mapper (``connector.py``) reads them
with :class:`connectors.fields.Fields`.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from typing import Any

import httpx

from connectors.fields import Fields
from connectors.http import HttpSource
from reporting.sources import SourceAuthError, SourceDataError, SourceUnavailable

SYSTEM = "zabbix"
ENDPOINT = "api_jsonrpc.php"
CONTENT_TYPE = "application/json-rpc"

Version = tuple[int, int, int]

#: Answers that mean the token (or session) is not accepted: a human must act.
_AUTH_TEXTS = (
    "not authorised",
    "not authorized",
    "session terminated",
    "re-login",
    "api token expired",
    "token expired",
)
#: An object the token's user may not read (permissions): a human must act too.
_PERMISSION_TEXTS = ("no permissions",)


def endpoint_url(url: str) -> str:
    """``url`` as the JSON-RPC endpoint: a frontend base URL gets ``/api_jsonrpc.php`` appended."""
    url = url.rstrip("/")
    return url if url.endswith(".php") else f"{url}/{ENDPOINT}"


def parse_version(text: Any) -> Version:
    """``"7.0.5"`` → ``(7, 0, 5)``; anything else is a SourceDataError."""
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?\S*", text.strip()) if isinstance(text, str) else None
    if m is None:
        raise SourceDataError(SYSTEM, f"apiinfo.version answered {str(text)[:40]!r}, not a version like 7.0.5")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def error_message(resp: httpx.Response) -> str | None:
    """The human part of a Zabbix error body (for non-2xx answers that carry one)."""
    try:
        body = resp.json()
    except ValueError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        parts = [str(err.get(k)) for k in ("message", "data") if err.get(k)]
        return " ".join(parts) or None
    return None


class ZabbixClient:
    """One Zabbix server. ``name`` is the ``[sources.<name>]`` key, for messages that say which
    configuration key to fix. Customer-independent answers (the version, the host groups, the
    SLAs) are read once per client and shared by every customer of the batch."""

    def __init__(self, http: HttpSource, url: str, token: str, name: str = SYSTEM, page_size: int = 1000):
        if page_size < 1:
            raise SourceDataError(SYSTEM, f"sources.{name}.page_size must be at least 1")
        self.http = http
        self.url = endpoint_url(url)
        self.name = name
        self.page_size = page_size
        self._token = token
        self._ids = itertools.count(1)
        self._locks = {k: asyncio.Lock() for k in ("version", "groups", "slas")}
        self._version: Version | None = None
        self._groups: list[dict[str, Any]] | None = None
        self._slas: list[dict[str, Any]] | None = None

    # -- transport -------------------------------------------------------------------------
    async def call(self, method: str, params: Any, *, auth: bool = True) -> Any:
        """One JSON-RPC call; the ``result``, or the error translated into the connector tree."""
        rid = next(self._ids)
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": rid}
        headers = {"Content-Type": CONTENT_TYPE}
        if auth:
            if await self.version() >= (6, 4, 0):
                headers["Authorization"] = f"Bearer {self._token}"
            else:
                body["auth"] = self._token
        resp = await self.http.request("POST", self.url, json_body=body, headers=headers)
        answer = self.http.decode(resp)
        where = f"{method} answer"
        f = Fields(SYSTEM, answer, where)
        if f.has("error"):
            raise self._rpc_error(method, f.obj("error"))
        if not f.has("result") and "result" not in answer:
            raise SourceDataError(SYSTEM, f"{where}: neither 'result' nor 'error' in the JSON-RPC answer")
        if answer.get("id") != rid:
            raise SourceDataError(
                SYSTEM, f"{where}: JSON-RPC id {answer.get('id')!r} does not match the request's {rid}"
            )
        return answer["result"]

    def _rpc_error(self, method: str, err: Fields) -> Exception:
        code = err.raw("code") if err.has("code") else None
        message = err.opt_text("message") or ""
        data = err.opt_text("data") or ""
        text = self.http.redact(" ".join(p for p in (message, data) if p)) or "no message"
        low = text.lower()
        if any(t in low for t in _AUTH_TEXTS):
            return SourceAuthError(
                SYSTEM,
                f"{method}: the API token was refused ({text}); check the credentials in sources.{self.name}.api_token",
            )
        if any(t in low for t in _PERMISSION_TEXTS):
            return SourceAuthError(
                SYSTEM,
                f"{method}: {text} — the API token's user lacks read permission "
                f"(credentials of sources.{self.name}.api_token)",
            )
        if code == -32600 and '"auth"' in data:
            return SourceDataError(
                SYSTEM, f"{method}: the server refuses the token in the request body ({text}); it is 7.2 or later"
            )
        if code == -32500:
            # an application error: a database or server-side failure, not our request's shape
            return SourceUnavailable(SYSTEM, f"{method} failed on the server: {text} (code {code})")
        return SourceDataError(SYSTEM, f"{method} was rejected: {text} (code {code})")

    # -- customer-independent, read once -------------------------------------------------------
    async def version(self) -> Version:
        """``apiinfo.version``, without auth, once per client."""
        if self._version is None:
            async with self._locks["version"]:
                if self._version is None:
                    self._version = parse_version(await self.call("apiinfo.version", {}, auth=False))
        return self._version

    async def host_groups(self) -> list[dict[str, Any]]:
        """Every host group the token may read: ``[{groupid, name}]``, once per client."""
        async with self._locks["groups"]:
            if self._groups is None:
                result = await self.call("hostgroup.get", {"output": ["groupid", "name"]})
                self._groups = _list(result, "hostgroup.get")
        return self._groups

    async def slas(self) -> list[dict[str, Any]]:
        """Every enabled SLA with its service tags, schedule and excluded downtimes, once per client."""
        async with self._locks["slas"]:
            if self._slas is None:
                result = await self.call(
                    "sla.get",
                    {
                        "output": ["slaid", "name", "period", "slo", "effective_date", "timezone", "status"],
                        "selectServiceTags": "extend",
                        "selectSchedule": "extend",
                        "selectExcludedDowntimes": "extend",
                        "filter": {"status": 1},
                    },
                )
                self._slas = _list(result, "sla.get")
        return self._slas

    # -- per customer ----------------------------------------------------------------------------
    async def _groups_key(self) -> str:
        """``selectHostGroups`` on 7.0+, ``selectGroups`` before: 6.2 introduced the former and
        deprecated the latter, 7.2 removed ``selectGroups`` from host.get and maintenance.get;
        ``selectGroups`` therefore works on every version up to 7.0. The answer carries
        ``hostgroups`` or ``groups`` accordingly (the mapper reads either)."""
        return "selectHostGroups" if await self.version() >= (7, 0, 0) else "selectGroups"

    async def hosts(self, groupid: str) -> list[dict[str, Any]]:
        """The hosts of a host group with their tags and groups."""
        result = await self.call(
            "host.get",
            {
                "groupids": [groupid],
                "output": ["hostid", "host", "name", "status"],
                "selectTags": "extend",
                await self._groups_key(): ["groupid"],
            },
        )
        return _list(result, "host.get")

    async def maintenances(self, groupids: Sequence[str]) -> list[dict[str, Any]]:
        """Maintenances linked to these host groups or to hosts in them, with their time periods,
        hosts, groups and problem tags."""
        if not groupids:
            return []
        result = await self.call(
            "maintenance.get",
            {
                "groupids": list(groupids),
                "output": "extend",
                "selectTimeperiods": "extend",
                "selectHosts": ["hostid"],
                await self._groups_key(): ["groupid"],
                "selectTags": "extend",
            },
        )
        return _list(result, "maintenance.get")

    async def problem_events(
        self, groupid: str, time_from: int, time_till: int, tags: list[dict[str, Any]], name: str = ""
    ) -> list[dict[str, Any]]:
        """Trigger problem events (source 0, object 0, value 1) of the group's hosts that were in
        the problem state at some point of ``[time_from, time_till]`` (both inclusive, epoch s):
        ``problem_time_from``/``problem_time_till``, so a problem that started before the window
        and recovered inside it (or not at all) is included. Read to the end, page by page."""
        params: dict[str, Any] = {
            "source": 0,
            "object": 0,
            "value": 1,
            "groupids": [groupid],
            "problem_time_from": time_from,
            "problem_time_till": time_till,
            "output": ["eventid", "clock", "r_eventid", "name", "objectid", "severity"],
            "selectHosts": ["hostid"],
            "sortfield": ["eventid"],
            "sortorder": "ASC",
            "limit": self.page_size,
        }
        if tags:
            params["tags"] = tags
        if name:
            params["search"] = {"name": name}
            params["searchWildcardsEnabled"] = True
        out: list[dict[str, Any]] = []
        cursor: int | None = None
        while True:
            page_params = dict(params)
            if cursor is not None:
                page_params["eventid_from"] = str(cursor)
            page = _list(await self.call("event.get", page_params), "event.get")
            out.extend(page)
            if len(page) < self.page_size:
                return out
            last = Fields(SYSTEM, page[-1], "event.get item").integer("eventid")
            if cursor is not None and last < cursor:
                raise SourceDataError(SYSTEM, "event.get: continuation went backwards (eventid order broken)")
            cursor = last + 1

    async def events_by_id(self, eventids: Sequence[str]) -> list[dict[str, Any]]:
        """``event.get`` by id (e.g. the recovery events of problems), ``page_size`` ids per call,
        the calls concurrent."""
        ids = sorted(set(eventids), key=int)
        chunks = [ids[i : i + self.page_size] for i in range(0, len(ids), self.page_size)]

        async def one(chunk: list[str]) -> list[dict[str, Any]]:
            params = {
                "eventids": chunk,
                "output": ["eventid", "clock", "value"],
                "sortfield": ["eventid"],
                "sortorder": "ASC",
                "limit": len(chunk),
            }
            return _list(await self.call("event.get", params), "event.get")

        pages = await asyncio.gather(*(one(c) for c in chunks))
        return [e for page in pages for e in page]

    async def sli(self, slaid: str, period_from: int, periods: int) -> dict[str, Any]:
        """``sla.getsli`` for ``periods`` consecutive SLA periods starting with the one that
        contains ``period_from``. (``period_to`` is not used: 6.0.14 and 7.0 return the slice
        that contains it too, one more than a half-open end would suggest.)"""
        result = await self.call("sla.getsli", {"slaid": slaid, "period_from": period_from, "periods": periods})
        if not isinstance(result, dict):
            raise SourceDataError(SYSTEM, f"sla.getsli answered a {type(result).__name__}, not an object")
        return result


def _list(result: Any, method: str) -> list[dict[str, Any]]:
    if not isinstance(result, list):
        raise SourceDataError(SYSTEM, f"{method} answered a {type(result).__name__}, not a list")
    return result

"""Typed async client for the ConnectWise PSA (Manage) REST API 3.0.

What it speaks, as ConnectWise documents it (details and sources in docs/connectors/connectwise.md):

- base URL ``https://{site}/v4_6_release/apis/3.0`` (``v4_6_release`` routes to the current codebase);
- every request carries ``Authorization: Basic base64("{company}+{publicKey}:{privateKey}")`` and a
  ``clientId: <GUID>`` header;
- list endpoints take ``conditions`` (CW's query language: dates as ``[2024-05-06T00:00:00Z]``,
  strings in double quotes, booleans bare), ``fields``, ``orderBy``, ``page`` (1-based) and
  ``pageSize`` (at most 1000), and answer a JSON array with a ``Link`` header holding
  ``rel="next"`` / ``rel="last"`` URLs; with ``rel="last"`` the remaining pages are fetched
  concurrently, otherwise ``rel="next"`` is followed to the end;
- errors come as ``{"code": ..., "message": ..., "errors": [{"code", "message", ...}]}``.

The client only builds URLs, sends requests through :class:`~connectors.http.HttpSource` and returns
the vendor's JSON; it never builds domain objects.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from connectors.fields import iso_z
from connectors.http import HttpSource, gather_all
from reporting.sources import SourceDataError

SYSTEM = "connectwise"
API_PATH = "/v4_6_release/apis/3.0"
MAX_PAGE_SIZE = 1000
MAX_PAGES = 10_000  # a runaway Link chain is a vendor bug, not a reason to loop forever

TICKET_FIELDS = (
    "id,summary,board/id,board/name,type/name,priority/id,priority/name,priority/sort,sla/id,sla/name,"
    "status/name,closedFlag,closedDate,isInSla,_info"
)
#: What the MSP's service-desk summary reads beside TICKET_FIELDS (Manage's Ticket model): the owner,
#: the first response, who closed it, the classification and the escalation level.
DESK_FIELDS = (
    "owner/id",
    "owner/identifier",
    "owner/name",
    "dateResponded",
    "closedBy",
    "subType/name",
    "escalationLevel",
)
COMPANY_FIELDS = "id,identifier,name,deletedFlag,_info"

T = TypeVar("T")


def api_base(url: str) -> str:
    """The API root: ``url`` as configured, with ``/v4_6_release/apis/3.0`` added when only the
    site (``https://api-eu.myconnectwise.net``) was given."""
    url = url.rstrip("/")
    return url if "/apis/3.0" in url else url + API_PATH


def cw_date(ts: datetime) -> str:
    """A ``conditions`` date literal: ``[2024-05-06T00:00:00Z]`` (UTC)."""
    return f"[{iso_z(ts)}]"


def cw_string(value: str) -> str:
    """A ``conditions`` string literal. ConnectWise documents no escape for ``"``, so such a
    value is refused rather than sent as a broken (or widened) query."""
    if '"' in value or "\\" in value:
        raise SourceDataError(SYSTEM, f"cannot query for {value!r}: ConnectWise conditions have no escape for quotes")
    return f'"{value}"'


_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([A-Za-z]+)"?')


def parse_link(header: str | None) -> dict[str, str]:
    """``<url>; rel="next", <url>; rel="last"`` → ``{"next": url, "last": url}``."""
    return {rel.lower(): url for url, rel in _LINK.findall(header or "")}


def _paging_params(url: str) -> dict[str, str]:
    """The paging parameters of a Link URL (``page``, ``pageId``), whatever their case."""
    out = {}
    for key, value in httpx.URL(url).params.multi_items():
        if key.lower() == "page":
            out["page"] = value
        elif key.lower() == "pageid":
            out["pageId"] = value
    return out


def cw_error_message(resp: httpx.Response) -> str | None:
    """``{"code", "message", "errors": [{"code", "message"}]}`` → ``message (code: first error)``."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    message = body.get("message") if isinstance(body.get("message"), str) else None
    code = body.get("code") if isinstance(body.get("code"), str) else None
    details = []
    errors = body.get("errors")
    if isinstance(errors, list):
        for e in errors[:2]:
            if isinstance(e, dict):
                text = e.get("message") or e.get("code")
                if isinstance(text, str) and text != message:
                    details.append(text)
    head = message or code
    if head is None:
        return None
    if code and message and code not in message:
        head = f"{code}: {message}"
    return f"{head} ({'; '.join(details)})" if details else head


class ConnectWiseClient:
    """One ConnectWise PSA site, as one API member (company + key pair) and one integration clientId."""

    def __init__(
        self,
        http: HttpSource,
        base_url: str,
        *,
        company_id: str,
        public_key: str,
        private_key: str,
        client_id: str,
        page_size: int = MAX_PAGE_SIZE,
    ):
        self.http = http
        self.base = api_base(base_url)
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        token = base64.b64encode(f"{company_id}+{public_key}:{private_key}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {token}",
            "clientId": client_id,
            "Accept": "application/json",
        }

    async def _get(
        self, path: str, params: Mapping[str, Any], ok_statuses: frozenset[int] = frozenset()
    ) -> httpx.Response:
        return await self.http.request(
            "GET", self.base + path, params=params, headers=self._headers, ok_statuses=ok_statuses
        )

    def _items(self, resp: httpx.Response, path: str) -> list[Any]:
        body = self.http.decode(resp)
        if not isinstance(body, list):
            raise SourceDataError(SYSTEM, f"GET {path}: expected a JSON array, got {type(body).__name__}")
        return body

    async def get_object(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = self.http.decode(await self._get(path, params or {}))
        if not isinstance(body, dict):
            raise SourceDataError(SYSTEM, f"GET {path}: expected a JSON object, got {type(body).__name__}")
        return body

    async def get_all(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every item of a list endpoint (see :meth:`get_all_or_status`)."""
        items = await self.get_all_or_status(path, params)
        if isinstance(items, int):  # cannot happen: no status was allowed
            raise SourceDataError(SYSTEM, f"GET {path} answered HTTP {items}")
        return items

    async def get_all_or_status(
        self, path: str, params: Mapping[str, Any] | None = None, absent: frozenset[int] = frozenset()
    ) -> list[Any] | int:
        """Every item of a list endpoint: page 1, then — when ``rel="last"`` names the last page —
        pages 2..last concurrently, then ``rel="next"`` followed until there is none (forward-only
        paging, or items added while we read). Paging parameters are taken from the Link URLs,
        but requests always go to the configured base URL: on-premise and proxied sites put
        internal host names in ``Link``. When page 1 answers a status in ``absent`` (a module not
        licensed: 404; a role without rights: 403), that status is returned instead of items."""
        base_params = {**(params or {}), "pageSize": self.page_size}
        seen: set[tuple[tuple[str, str], ...]] = set()

        first_status: list[int] = []

        async def page(paging: dict[str, str], ok: frozenset[int] = frozenset()) -> tuple[list[Any], dict[str, str]]:
            key = tuple(sorted(paging.items()))
            if key in seen:
                raise SourceDataError(
                    SYSTEM, f"GET {path}: the Link header points back to page {dict(key)} (paging loop)"
                )
            seen.add(key)
            if len(seen) > MAX_PAGES:
                raise SourceDataError(SYSTEM, f"GET {path}: more than {MAX_PAGES} pages")
            resp = await self._get(path, {**base_params, **paging}, ok)
            if resp.status_code in ok and not 200 <= resp.status_code < 300:
                first_status.append(resp.status_code)
                return [], {}
            return self._items(resp, path), parse_link(resp.headers.get("link"))

        items, links = await page({"page": "1"}, absent)
        if first_status:
            return first_status[0]
        out = list(items)
        last = _paging_params(links["last"]).get("page") if "last" in links else None
        if "next" in links and last is not None and last.isdigit() and int(last) >= 2:
            rest = await gather_all(*(page({"page": str(k)}) for k in range(2, int(last) + 1)))
            for chunk, _ in rest:
                out.extend(chunk)
            links = rest[-1][1]
        while "next" in links:
            items, links = await page(_paging_params(links["next"]))
            out.extend(items)
        return out

    # -- endpoints -----------------------------------------------------------------------
    async def system_info(self) -> dict[str, Any]:
        """``GET /system/info``: ``version``, ``isCloud``, ``serverTimeZone``."""
        return await self.get_object("/system/info")

    async def companies(self, conditions: str | None = None) -> list[Any]:
        """``GET /company/companies`` (``id``, ``identifier``, ``name``, ``_info.dateEntered``)."""
        params: dict[str, Any] = {"fields": COMPANY_FIELDS, "orderBy": "id asc"}
        if conditions:
            params["conditions"] = conditions
        return await self.get_all("/company/companies", params)

    async def tickets(self, conditions: str, extra_fields: tuple[str, ...] = ()) -> list[Any]:
        """``GET /service/tickets`` with ``conditions``, trimmed to the fields the report uses
        (``extra_fields``: configured ones, e.g. the change start field)."""
        return await self.get_all(
            "/service/tickets",
            {"conditions": conditions, "fields": ",".join((TICKET_FIELDS, *extra_fields)), "orderBy": "id asc"},
        )

    async def slas(self) -> list[Any]:
        """``GET /service/SLAs``: ``id``, ``name``, ``basedOn``, ``resolutionHours`` (the SLA's default)."""
        return await self.get_all("/service/SLAs", {"fields": "id,name,basedOn,resolutionHours", "orderBy": "id asc"})

    async def sla_priorities(self, sla_id: int) -> list[Any]:
        """``GET /service/SLAs/{id}/priorities``: per priority ``respondHours``, ``planWithin``, ``resolutionHours``."""
        return await self.get_all(f"/service/SLAs/{sla_id}/priorities", {"orderBy": "id asc"})

    async def surveys(self) -> list[Any] | int:
        """``GET /service/surveys`` (ServiceSurvey: ``id``, ``name``, ``inactiveFlag``); the HTTP status
        instead when the site answers 404 (no survey module) or 403 (the role may not read it)."""
        return await self.get_all_or_status(
            "/service/surveys", {"fields": "id,name,inactiveFlag", "orderBy": "id asc"}, frozenset({403, 404})
        )

    async def survey_questions(self, survey_id: int) -> list[Any]:
        """``GET /service/surveys/{id}/questions`` (SurveyQuestion: ``id``, ``type``, ``options[]`` with
        ``points`` and ``includeFlag``, ``noAnswerPoints``, ``includeFlag``)."""
        return await self.get_all(f"/service/surveys/{survey_id}/questions", {"orderBy": "id asc"})

    async def survey_results(self, survey_id: int, conditions: str) -> list[Any]:
        """``GET /service/surveys/{id}/results`` with ``conditions`` (SurveyResult: ``id``, ``ticketId``,
        ``totalPoints``, ``company``, ``contact``, ``results[]``, ``footerResponse``, ``surveyId``, ``_info``)."""
        return await self.get_all(
            f"/service/surveys/{survey_id}/results", {"conditions": conditions, "orderBy": "id asc"}
        )

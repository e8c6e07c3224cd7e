"""A loopback Cloudflare API v4 serving the sandbox customers that use ``cloudflare``.

REST (``/client/v4``): ``GET /zones``, ``GET /zones/{id}/healthchecks`` (paged with ``page``
and ``per_page``; ``page_size`` caps ``per_page`` so every zone needs several pages),
``GET /user/tokens/verify``; envelope ``{success, errors, messages, result, result_info}``; a
wrong token → 403 ``{"success": false, "errors": [{"code": 10000, "message": "Authentication
error"}]}``; an unknown zone → 400 with code 7003 ("Could not route to ...").

GraphQL (``POST /client/v4/graphql``): the Health Check Analytics nodes
``healthCheckEventsAdaptive`` (raw rows; ``healthChanged: 1`` in the filter keeps the state
changes only) and ``healthCheckEventsAdaptiveGroups`` (``count`` by ``dimensions``), under
``viewer.zones(filter: {zoneTag})``, with aliases, ``limit``, ``datetime_geq``/``datetime_lt``
filters and ``orderBy: [datetime_ASC|datetime_DESC]``. Only the fields asked for come back.
This is a small reader of that query shape, not a GraphQL engine: anything else is answered
with an "unknown field" / "error parsing args" error, as Cloudflare does for a bad query.

Every check runs from two regions (WEU, ENAM) every ``interval`` seconds; the sandbox's
unhealthy intervals are state changes at the same instants in both regions.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from connectors.fields import iso_z, parse_time
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.base import Simulator
from reporting.metrics import merge

REGIONS = ("WEU", "ENAM")
INTERVAL = 60
RAW_FIELDS = {
    "datetime",
    "eventId",
    "expectedResponseCodes",
    "failureReason",
    "fqdn",
    "healthChanged",
    "healthCheckId",
    "healthCheckName",
    "healthStatus",
    "originIP",
    "originResponseStatus",
    "region",
    "rttMs",
    "sampleInterval",
    "scope",
    "tcpConnMs",
    "timeToFirstByteMs",
    "tlsHandshakeMs",
}
GROUP_DIMENSIONS = {
    "fqdn",
    "healthCheckId",
    "healthCheckName",
    "healthStatus",
    "region",
    "scope",
}  # the ones served here
FAR = datetime(9999, 1, 1, tzinfo=UTC)


class GraphQLError(Exception):
    def __init__(self, message: str, status: int = 400):
        self.message, self.status = message, status
        super().__init__(message)


def _block(text: str, i: int, open_: str, close: str) -> tuple[str, int]:
    """The text inside the balanced ``open_``...``close`` starting at ``text[i]``; and the end."""
    assert text[i] == open_
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], j + 1
    raise GraphQLError("error parsing args: unbalanced brackets")


class CloudflareSimulator(Simulator):
    system = "cloudflare"

    def __init__(self, dataset: SandboxDataset, page_size: int = 1):
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size
        self.token = "cf-" + self.secret
        self.horizon = datetime.combine(dataset.anchor_end, datetime.min.time(), tzinfo=UTC)  # "now" for current status
        self._build()

    # -- data --------------------------------------------------------------------------------
    def _build(self) -> None:
        self.zones: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, list[dict[str, Any]]] = {}
        self.unhealthy: dict[str, list[tuple[datetime, datetime]]] = {}  # check id -> merged intervals
        for c in self.dataset.customers_in("cloudflare"):
            zid = c.ids["cloudflare"]
            g = self.dataset.gen(c.code)
            self.zones[zid] = {
                "id": zid,
                "name": c.domain,
                "status": "active",
                "paused": False,
                "type": "full",
                "development_mode": 0,
                "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
                "account": {"id": "9a7806061c88ada191ed06f989cc3dac", "name": "Northwind Managed Services"},
                "plan": {"id": "business", "name": "Business Website", "legacy_id": "business"},
                "created_on": iso_z(g.onboarded),
                "modified_on": iso_z(g.onboarded),
            }
            self.checks[zid] = []
            for rec in g.checks:
                hid = hashlib.md5(f"{zid}:{rec.name}".encode(), usedforsecurity=False).hexdigest()
                ivs = merge((a, b or FAR) for a, b in rec.unhealthy)
                self.unhealthy[hid] = ivs
                down_now = any(a <= self.horizon < b for a, b in ivs)
                self.checks[zid].append(
                    {
                        "id": hid,
                        "name": rec.name.replace(".", "-"),
                        "description": f"Public site {rec.name}",
                        "address": rec.name,
                        "type": "HTTPS",
                        "check_regions": list(REGIONS),
                        "consecutive_fails": 1,
                        "consecutive_successes": 1,
                        "interval": INTERVAL,
                        "retries": 2,
                        "timeout": 5,
                        "suspended": False,
                        "status": "unhealthy" if down_now else "healthy",
                        "failure_reason": "HTTP timeout occurred" if down_now else "",
                        "http_config": {
                            "method": "GET",
                            "path": "/",
                            "port": 443,
                            "expected_codes": ["200"],
                            "expected_body": "",
                            "follow_redirects": False,
                            "allow_insecure": False,
                            "header": {"Host": [rec.name]},
                        },
                        "tcp_config": None,
                        "created_on": iso_z(g.onboarded),
                        "modified_on": iso_z(g.onboarded),
                    }
                )

    def _changes(self, check: dict[str, Any], zid: str) -> list[dict[str, Any]]:
        out = []
        for a, b in self.unhealthy[check["id"]]:
            for at, status in ((a, "unhealthy"), (b, "healthy")):
                if at >= self.horizon:
                    continue
                for region in REGIONS:
                    out.append(self._row(check, zid, at, status, region, changed=1))
        return out

    def _row(
        self, check: dict[str, Any], zid: str, at: datetime, status: str, region: str, changed: int
    ) -> dict[str, Any]:
        bad = status == "unhealthy"
        return {
            "datetime": iso_z(at),
            "eventId": hashlib.md5(f"{check['id']}{at}{region}".encode(), usedforsecurity=False).hexdigest(),
            "expectedResponseCodes": "200",
            "failureReason": "HTTP timeout occurred" if bad else "",
            "fqdn": check["address"],
            "healthChanged": changed,
            "healthCheckId": check["id"],
            "healthCheckName": check["name"],
            "healthStatus": status,
            "originIP": "203.0.113.10",
            "originResponseStatus": 0 if bad else 200,
            "region": region,
            "rttMs": 0 if bad else 42,
            "sampleInterval": 1,
            "scope": "region",
            "tcpConnMs": 0 if bad else 12,
            "timeToFirstByteMs": 0 if bad else 40,
            "tlsHandshakeMs": 0 if bad else 20,
        }

    def _probe_counts(self, check: dict[str, Any], lo: datetime, hi: datetime) -> tuple[int, int]:
        """(healthy, unhealthy) probes at ``created_on + k × interval`` inside ``[lo, hi)``."""
        created = parse_time(check["created_on"])
        hi = min(hi, self.horizon)

        def count(a: datetime, b: datetime) -> int:
            a, b = max(a, lo, created), min(b, hi)
            if a >= b:
                return 0
            first = -(-int((a - created).total_seconds()) // INTERVAL)
            last = -(-int((b - created).total_seconds()) // INTERVAL)
            return max(0, last - first)

        total = count(lo, hi)
        bad = sum(count(a, b) for a, b in self.unhealthy[check["id"]])
        return total - bad, bad

    # -- HTTP ----------------------------------------------------------------------------------
    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        code = {429: 10013, 401: 10000, 403: 10000}.get(status, 10002)
        return {
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        }, "application/json"

    def source_config(self) -> dict[str, Any]:
        return {
            "type": "cloudflare",
            "url": self.url + "/client/v4",
            "token": self.token,
            "per_page": 50,
            "concurrency": 8,
        }

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/client/v4/zones", self._zones)
        r.add_get("/client/v4/zones/{zone}/healthchecks", self._healthchecks)
        r.add_get("/client/v4/user/tokens/verify", self._verify)
        r.add_post("/client/v4/graphql", self._graphql)

    def _fail(self, status: int, code: int, message: str) -> web.Response:
        return self.json(
            {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None},
            status=status,
        )

    def _authorized(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self.json(
                {
                    "success": False,
                    "errors": [
                        {
                            "code": 6003,
                            "message": "Invalid request headers",
                            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
                        }
                    ],
                    "messages": [],
                    "result": None,
                },
                status=400,
            )
        if auth != f"Bearer {self.token}":
            return self._fail(403, 10000, "Authentication error")
        return None

    def _paged(self, request: web.Request, items: list[Any]) -> web.Response:
        try:
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("per_page", "20"))
        except ValueError:
            return self._fail(400, 1004, "page and per_page must be numbers")
        per_page = max(1, min(per_page, self.page_size))
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return self.json(
            {
                "success": True,
                "errors": [],
                "messages": [],
                "result": chunk,
                "result_info": {
                    "page": page,
                    "per_page": per_page,
                    "count": len(chunk),
                    "total_count": len(items),
                    "total_pages": total_pages,
                },
            }
        )

    async def _zones(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        return self._paged(request, sorted(self.zones.values(), key=lambda z: z["name"]))

    async def _healthchecks(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        zid = request.match_info["zone"]
        if zid not in self.zones:
            return self._fail(
                400, 7003, f"Could not route to /zones/{zid}/healthchecks, perhaps your object identifier is invalid?"
            )
        return self._paged(request, self.checks[zid])

    async def _verify(self, request: web.Request) -> web.Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        return self.json(
            {
                "success": True,
                "errors": [],
                "messages": [{"code": 10000, "message": "This API Token is valid and active", "type": None}],
                "result": {"id": "ed17574386854bf78a67040be0a770b0", "status": "active"},
            }
        )

    # -- GraphQL -------------------------------------------------------------------------------
    async def _graphql(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self.json(
                {
                    "data": None,
                    "errors": [
                        {"message": "Unauthorized", "path": None, "extensions": {"timestamp": iso_z(datetime.now(UTC))}}
                    ],
                },
                status=401,
            )
        try:
            body = json.loads(await request.text())
            data = self._run(body["query"], body.get("variables") or {})
        except GraphQLError as err:
            return self.json(
                {
                    "data": None,
                    "errors": [
                        {
                            "message": err.message,
                            "path": ["viewer"],
                            "extensions": {"timestamp": iso_z(datetime.now(UTC))},
                        }
                    ],
                },
                status=200 if err.status == 200 else err.status,
            )
        except (ValueError, KeyError, TypeError):
            return self.json(
                {"data": None, "errors": [{"message": "query contains error, please review it and retry"}]}, status=400
            )
        return self.json({"data": data, "errors": None})

    def _run(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        def value(token: str) -> Any:
            token = token.strip()
            if token.startswith("$"):
                if token[1:] not in variables:
                    raise GraphQLError(f"error parsing args: variable {token} is not defined")
                return variables[token[1:]]
            return json.loads(token)

        m = re.search(r"zones\s*\(\s*filter\s*:\s*\{\s*zoneTag\s*:\s*(\$\w+|\"[^\"]*\")\s*\}\s*\)\s*\{", query)
        if not m:
            raise GraphQLError("unknown field: expected viewer.zones(filter: {zoneTag})")
        zid = value(m.group(1))
        if zid not in self.zones:
            raise GraphQLError(f"zones [{zid}] are not authorized", status=403)
        zone_body, _ = _block(query, m.end() - 1, "{", "}")
        out: dict[str, Any] = {}
        for node in re.finditer(r"(?:(\w+)\s*:\s*)?(healthCheckEventsAdaptive(?:Groups)?)\s*\(", zone_body):
            alias, name = node.group(1) or node.group(2), node.group(2)
            args, after = _block(zone_body, node.end() - 1, "(", ")")
            brace = zone_body.index("{", after)
            selection, _ = _block(zone_body, brace, "{", "}")
            out[alias] = self._node(zid, name, args, selection, value)
        if not out:
            raise GraphQLError("unknown field: no health-check node in the query")
        return {"viewer": {"zones": [out]}}

    def _node(self, zid: str, name: str, args: str, selection: str, value: Any) -> list[dict[str, Any]]:
        lm = re.search(r"limit\s*:\s*(\$\w+|\d+)", args)
        limit = int(value(lm.group(1))) if lm else 0
        if not 0 < limit <= 10000:
            raise GraphQLError("limit must be positive number and not greater than 10000")
        fm = re.search(r"filter\s*:\s*\{", args)
        if not fm:
            raise GraphQLError("error parsing args: a datetime filter is required")
        ftext, _ = _block(args, fm.end() - 1, "{", "}")
        conds = dict(re.findall(r"(\w+)\s*:\s*(\$\w+|\"[^\"]*\"|\d+)", ftext))
        try:
            lo = parse_time(value(conds["datetime_geq"]))
            hi = parse_time(value(conds["datetime_lt"]))
        except KeyError:
            raise GraphQLError("error parsing args: datetime_geq and datetime_lt are required") from None
        if hi - lo > timedelta(days=31):
            raise GraphQLError("query time range is too large")
        known = {"datetime_geq", "datetime_lt", "healthChanged", "healthCheckId"}
        if set(conds) - known:
            raise GraphQLError(f"error parsing args: unknown filter {sorted(set(conds) - known)[0]}")
        checks = self.checks[zid]
        if "healthCheckId" in conds:
            checks = [c for c in checks if c["id"] == value(conds["healthCheckId"])]
        if name == "healthCheckEventsAdaptive":
            fields = re.findall(r"\w+", selection)
            if unknown := [f for f in fields if f not in RAW_FIELDS]:
                raise GraphQLError(f"unknown field {unknown[0]!r} on healthCheckEventsAdaptive")
            if conds.get("healthChanged") != "1":
                raise GraphQLError(
                    "query consumed excessive resources, please try running smaller queries which consume fewer "
                    "resources",
                    status=429,
                )
            rows = [r for c in checks for r in self._changes(c, zid) if lo <= parse_time(r["datetime"]) < hi]
            om = re.search(r"orderBy\s*:\s*\[\s*(\w+)\s*\]", args)
            order = om.group(1) if om else "datetime_ASC"
            if order not in ("datetime_ASC", "datetime_DESC"):
                raise GraphQLError(f"error parsing args: unknown order {order}")
            rows.sort(key=lambda r: (r["datetime"], r["healthCheckId"], r["region"]), reverse=order == "datetime_DESC")
            return [{f: r[f] for f in fields} for r in rows[:limit]]
        # healthCheckEventsAdaptiveGroups: count by the requested dimensions
        dm = re.search(r"dimensions\s*\{", selection)
        dims = re.findall(r"\w+", _block(selection, dm.end() - 1, "{", "}")[0]) if dm else []
        if unknown := [d for d in dims if d not in GROUP_DIMENSIONS]:
            raise GraphQLError(f"unknown field {unknown[0]!r} on dimensions")
        rest = re.sub(r"dimensions\s*\{[^}]*\}", "", selection)
        if [w for w in re.findall(r"\w+", rest) if w != "count"]:
            raise GraphQLError("unknown field: only count and dimensions are served here")
        groups: dict[tuple[Any, ...], int] = {}
        for c in checks:
            healthy, bad = self._probe_counts(c, lo, hi)
            for region in REGIONS:
                for status, n in (("healthy", healthy), ("unhealthy", bad)):
                    if n == 0:
                        continue
                    row = {
                        "healthCheckId": c["id"],
                        "healthCheckName": c["name"],
                        "healthStatus": status,
                        "region": region,
                        "fqdn": c["address"],
                        "scope": "region",
                    }
                    key = tuple(row.get(d) for d in dims)
                    groups[key] = groups.get(key, 0) + n
        return [
            {"count": n, "dimensions": dict(zip(dims, key, strict=True))} for key, n in list(groups.items())[:limit]
        ]

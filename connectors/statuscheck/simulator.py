"""A loopback UptimeRobot API v2 serving the sandbox customers that use ``statuscheck``.

``POST /v2/getMonitors`` and ``POST /v2/getAccountDetails``, form-encoded with ``api_key`` and
``format=json`` in the body; ``{"stat": "ok", "pagination": {offset, limit, total}, "monitors":
[...]}`` paged by ``offset``/``limit`` (``page_size`` caps the limit so every customer needs
several pages); errors ``{"stat": "fail", "error": {"type", "parameter_name", "passed_value",
"message"}}`` with HTTP 200 — a wrong key is ``invalid_parameter`` on ``api_key``.

Each sandbox check is an HTTP monitor (``friendly_name`` = the check's hostname, ``url`` =
``https://<hostname>``) checked every 300 s. Its unhealthy intervals are down logs (``type``
1, ``datetime`` + ``duration``), followed by up logs (``type`` 2); a ``type`` 98 "started" log
marks its creation. ``custom_uptime_ranges`` is computed from the same intervals and printed
with 3 decimals, as UptimeRobot does. ``log_retention_days`` drops older logs (but not the
ratio), to reproduce a plan whose log retention is shorter than the period asked for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from connectors.fields import epoch
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.base import Simulator
from reporting.metrics import merge

FAR = datetime(9999, 1, 1, tzinfo=UTC)


class StatusCheckSimulator(Simulator):
    system = "statuscheck"

    def __init__(self, dataset: SandboxDataset, page_size: int = 1, log_retention_days: float | None = None):
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size
        self.api_key = "ur" + self.secret.replace("-", "x")[:20] + "-ro"
        self.horizon = datetime.combine(dataset.anchor_end, datetime.min.time(), tzinfo=UTC)
        self.retention = None if log_retention_days is None else timedelta(days=log_retention_days)
        self.monitors: list[dict[str, Any]] = []
        self.down: dict[int, list[tuple[datetime, datetime]]] = {}
        seq = 777_000_000
        for c in dataset.customers_in("statuscheck"):
            g = dataset.gen(c.code)
            for rec in g.checks:
                seq += 1
                ivs = [
                    (a, min(b, self.horizon))
                    for a, b in merge((a, b or FAR) for a, b in rec.unhealthy)
                    if a < self.horizon
                ]
                self.down[seq] = ivs
                down_now = any(b >= self.horizon for _, b in ivs)
                self.monitors.append(
                    {
                        "id": seq,
                        "friendly_name": rec.name,
                        "url": f"https://{rec.name}",
                        "type": 1,
                        "sub_type": "",
                        "keyword_type": None,
                        "keyword_case_type": None,
                        "keyword_value": "",
                        "http_username": "",
                        "http_password": "",
                        "port": "",
                        "interval": 300,
                        "timeout": 30,
                        "status": 9 if down_now else 2,
                        "create_datetime": epoch(g.onboarded),
                        "_created": g.onboarded,
                    }
                )

    # -- the answers ---------------------------------------------------------------------------
    def _logs(self, mid: int, created: datetime, lo: int | None, hi: int | None) -> list[dict[str, Any]]:
        logs: list[dict[str, Any]] = [
            {
                "id": mid * 1000,
                "type": 98,
                "datetime": epoch(created),
                "duration": 0,
                "reason": {"code": "", "detail": "Started"},
            }
        ]
        ivs = self.down[mid]
        for n, (a, b) in enumerate(ivs):
            logs.append(
                {
                    "id": mid * 1000 + 2 * n + 1,
                    "type": 1,
                    "datetime": epoch(a),
                    "duration": epoch(b) - epoch(a),
                    "reason": {"code": "503", "detail": "Service Unavailable"},
                }
            )
            if b < self.horizon:
                nxt = ivs[n + 1][0] if n + 1 < len(ivs) else self.horizon
                logs.append(
                    {
                        "id": mid * 1000 + 2 * n + 2,
                        "type": 2,
                        "datetime": epoch(b),
                        "duration": epoch(nxt) - epoch(b),
                        "reason": {"code": "200", "detail": "OK"},
                    }
                )
        if self.retention is not None:
            oldest = epoch(self.horizon - self.retention)
            logs = [x for x in logs if x["datetime"] >= oldest]
        logs = [x for x in logs if (lo is None or x["datetime"] >= lo) and (hi is None or x["datetime"] <= hi)]
        return sorted(logs, key=lambda x: x["datetime"], reverse=True)  # newest first

    def _ratio(self, mid: int, s: int, e: int) -> str:
        lo, hi = datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)
        down = sum(max(0.0, (min(b, hi) - max(a, lo)).total_seconds()) for a, b in self.down[mid])
        return f"{100.0 * ((e - s) - down) / (e - s):.3f}"

    # -- HTTP ----------------------------------------------------------------------------------
    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        kind = "rate_limit" if status == 429 else "internal_error"
        return {"stat": "fail", "error": {"type": kind, "message": message}}, "application/json"

    def source_config(self) -> dict[str, Any]:
        return {"type": "statuscheck", "url": self.url + "/v2", "api_key": self.api_key, "concurrency": 8}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/getMonitors", self._get_monitors)
        app.router.add_post("/v2/getAccountDetails", self._account)

    @staticmethod
    def fail(kind: str, message: str, param: str | None = None, passed: str | None = None) -> web.Response:
        err: dict[str, Any] = {"type": kind}
        if param is not None:
            err["parameter_name"] = param
        if passed is not None:
            err["passed_value"] = passed
        err["message"] = message
        return Simulator.json({"stat": "fail", "error": err})

    async def _form(self, request: web.Request) -> tuple[dict[str, str] | None, web.Response | None]:
        if request.content_type != "application/x-www-form-urlencoded":
            return None, self.fail("invalid_parameter", "Requests must be application/x-www-form-urlencoded POSTs.")
        form = {k: str(v) for k, v in (await request.post()).items()}
        key = form.get("api_key")
        if not key:
            return None, self.fail("missing_parameter", "api_key parameter is missing.", "api_key")
        if key != self.api_key:
            return None, self.fail("invalid_parameter", "api_key is invalid.", "api_key", key[:4] + "…")
        return form, None

    async def _account(self, request: web.Request) -> web.Response:
        _, denied = await self._form(request)
        if denied is not None:
            return denied
        down = sum(1 for m in self.monitors if m["status"] == 9)
        return self.json(
            {
                "stat": "ok",
                "account": {
                    "email": "noc@northwind.example",
                    "user_id": 1234567,
                    "firstname": "Northwind",
                    "sms_credits": 0,
                    "payment_processor": None,
                    "payment_period": None,
                    "subscription_expiry_date": None,
                    "monitor_limit": 50,
                    "monitor_interval": 1,
                    "up_monitors": len(self.monitors) - down,
                    "down_monitors": down,
                    "paused_monitors": 0,
                    "total_monitors_count": len(self.monitors),
                },
            }
        )

    async def _get_monitors(self, request: web.Request) -> web.Response:
        form, denied = await self._form(request)
        if denied is not None:
            return denied
        assert form is not None
        try:
            offset = int(form.get("offset", "0"))
            limit = int(form.get("limit", "50"))
        except ValueError:
            return self.fail("invalid_parameter", "offset and limit must be integers.", "limit")
        if not 1 <= limit <= 50:
            return self.fail("invalid_parameter", "limit should be between 1 and 50.", "limit", str(limit))
        limit = min(limit, self.page_size)
        chosen = self.monitors
        if form.get("monitors"):
            ids = {int(x) for x in form["monitors"].split("-") if x.isdigit()}
            chosen = [m for m in chosen if m["id"] in ids]
        if form.get("search"):
            q = form["search"].lower()
            chosen = [m for m in chosen if q in m["url"].lower() or q in m["friendly_name"].lower()]
        ranges = []
        for r in filter(None, form.get("custom_uptime_ranges", "").split("-")):
            a, _, b = r.partition("_")
            if not (a.isdigit() and b.isdigit() and int(a) < int(b)):
                return self.fail(
                    "invalid_parameter",
                    "custom_uptime_ranges should be like 1465440758_1466304758.",
                    "custom_uptime_ranges",
                    r,
                )
            ranges.append((int(a), int(b)))
        page = chosen[offset : offset + limit]
        out = []
        for m in page:
            row = {k: v for k, v in m.items() if not k.startswith("_")}
            if ranges:
                row["custom_uptime_ranges"] = "-".join(self._ratio(m["id"], a, b) for a, b in ranges)
            if form.get("logs") == "1":
                lo = int(form["logs_start_date"]) if form.get("logs_start_date", "").isdigit() else None
                hi = int(form["logs_end_date"]) if form.get("logs_end_date", "").isdigit() else None
                row["logs"] = self._logs(m["id"], m["_created"], lo, hi)
            out.append(row)
        return self.json(
            {"stat": "ok", "pagination": {"offset": offset, "limit": limit, "total": len(chosen)}, "monitors": out}
        )

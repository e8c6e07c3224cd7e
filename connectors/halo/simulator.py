"""A loopback HaloPSA API serving the sandbox MSP.

Wire format: ``POST /auth/token`` (OAuth2 client credentials, form body, optional ``?tenant=``;
a wrong client id or secret is ``401 {"error": "invalid_client"}``) issuing bearer tokens with
``expires_in``; ``/api/Tickets``, ``/api/Client``, ``/api/Client/{id}``, ``/api/Priority`` that refuse
a missing, unknown or expired token with 401; ``pageinate=true&page_size&page_no`` paging capped at
this simulator's small page size, in ``{"page_no", "page_size", "record_count", "<items>"}``
envelopes; ticket filters ``client_id``, ``open_only``, ``closed_only``, ``datesearch``
(``dateoccured`` / ``datecleared``) with ``startdate``/``enddate`` (``YYYY-MM-DDTHH:MM:SS``, UTC).

Every sandbox customer using Halo is a client (``id`` = its sandbox id, ``datecreated`` = its
onboarding). Its tickets are the dataset's ``TicketRecord``s: service tickets of type 1
("Incident") on SLA 1 with ``fixbydate`` = the record's ``resolve_by`` and ``slastate`` "I"/"O" from
closed ≤ fixbydate; changes of type :data:`CHANGE_TYPE_ID` ("Change Request"). Unset dates are
written the way Halo writes them, ``1900-01-01T00:00:00``. Ticket ids are the dataset's
per-customer sequence numbers (they repeat across clients; lists are filtered by client).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from connectors.sandbox.dataset import PRIORITIES, TECHNICIANS, DeskFacts, SandboxDataset
from connectors.sim.base import Simulator

CHANGE_TYPE_ID = 3
INCIDENT_TYPE_ID = 1
WAITING_STATUS_ID = 4  # this instance's "Waiting on User" status (Halo's status ids are per instance)
SLA_ID = 1
PRIORITY_IDS = {name: i + 1 for i, (name, _, _) in enumerate(PRIORITIES)}
UNSET = "1900-01-01T00:00:00"
TOKEN_LIFETIME = 3600
FIRST_LINE_TEAM = "Service Desk"
SECOND_LINE_TEAM = "2nd Line"


def _ts(dt: datetime | None, fraction: bool = False) -> str:
    """Halo's date forms: ``2026-11-09T08:23:56.0000000Z`` on some fields, plain UTC on others."""
    if dt is None:
        return UNSET
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (".0000000Z" if fraction else "")


def _param_date(value: str) -> datetime:
    dt = datetime.fromisoformat(value.rstrip("Z"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class HaloSimulator(Simulator):
    system = "halo"
    serves_feedback = True  # False: an instance without /api/Feedback (it answers 404)

    def __init__(self, dataset: SandboxDataset, page_size: int = 5):
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size
        self.tenant = "northwind"
        self.client_id = hashlib.sha256(("id:" + self.secret).encode()).hexdigest()[:36]
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.token_requests = 0
        self._clients: list[dict[str, Any]] | None = None
        self._tickets: dict[int, list[dict[str, Any]]] | None = None

    # -- data
    def clients(self) -> list[dict[str, Any]]:
        if self._clients is None:
            rows = []
            for c in self.dataset.customers_in("halo"):
                rows.append(
                    {
                        "id": int(c.ids["halo"]),
                        "name": c.name,
                        "toplevel_id": 1,
                        "toplevel_name": "Northwind customers",
                        "inactive": False,
                        "colour": "#1F4E79",
                        "datecreated": _ts(self.dataset.gen(c.code).onboarded, fraction=True),
                        "main_site_id": 1000 + int(c.ids["halo"]),
                        "open_ticket_count": sum(1 for t in self.dataset.gen(c.code).tickets if t.closed is None),
                    }
                )
            self._clients = sorted(rows, key=lambda r: r["id"])
        return self._clients

    def tickets(self) -> dict[int, list[dict[str, Any]]]:
        if self._tickets is None:
            out: dict[int, list[dict[str, Any]]] = {}
            for client in self.clients():
                code = next(c.code for c in self.dataset.customers_in("halo") if int(c.ids["halo"]) == client["id"])
                g = self.dataset.gen(code)
                out[client["id"]] = [self._ticket(t, client, g.desk.get(t.id)) for t in g.tickets]
            self._tickets = out
        return self._tickets

    def agents(self) -> list[dict[str, Any]]:
        """``GET /api/Agent``: the desk's agents (``id``, ``name``, ``team``)."""
        return [
            {"id": tid, "name": name, "team": FIRST_LINE_TEAM if tier == 1 else SECOND_LINE_TEAM, "isdisabled": False}
            for tid, _, name, tier in TECHNICIANS
        ]

    def feedback(self) -> list[dict[str, Any]]:
        """``GET /api/Feedback``: customers' feedback on closed tickets (``ticket_id``, ``client_id``,
        ``score`` 1 best .. 4 worst, ``date``), oldest first."""
        rows = []
        for c in self.dataset.customers_in("halo"):
            g = self.dataset.gen(c.code)
            for tid, desk in g.desk.items():
                if desk.feedback_score is not None:
                    rows.append(
                        {
                            "ticket_id": int(tid),
                            "client_id": int(c.ids["halo"]),
                            "score": desk.feedback_score,
                            "date": _ts(desk.feedback_at),
                            "comment": "",
                        }
                    )
        rows.sort(key=lambda r: (r["date"], r["client_id"], r["ticket_id"]))
        return [{"id": i + 1, **r} for i, r in enumerate(rows)]

    @staticmethod
    def _ticket(t: Any, client: dict[str, Any], desk: DeskFacts | None = None) -> dict[str, Any]:
        closed = t.closed is not None
        row: dict[str, Any] = {
            "id": int(t.id),
            "dateoccurred": _ts(t.created, fraction=True),
            "summary": t.title,
            "details": "",
            "status_id": 9 if closed else WAITING_STATUS_ID if t.waiting_on_customer else 1,
            "tickettype_id": CHANGE_TYPE_ID if t.is_change else INCIDENT_TYPE_ID,
            "sla_id": SLA_ID,
            "priority_id": PRIORITY_IDS["Medium"] if t.is_change else PRIORITY_IDS[t.priority],
            "client_id": client["id"],
            "client_name": client["name"],
            "site_id": client["main_site_id"],
            "site_name": "Main",
            "user_id": 1,
            "user_name": "General User",
            "team": "Service Desk",
            "onhold": bool(t.waiting_on_customer),  # a status waiting on the user holds the SLA clock
            "startdate": _ts(t.scheduled),
            "respondbydate": _ts(t.created),
            "fixbydate": _ts(t.resolve_by),
            "dateclosed": _ts(t.closed),
            "hasbeenclosed": closed,
            "excludefromsla": bool(t.is_change),
            "slaholdtime": 0,
            "slaresponsestate": "I",
            "slastate": ("I" if t.resolve_by is None or t.closed <= t.resolve_by else "O") if closed else "",
            "inactive": False,
            "lastactiondate": _ts(t.closed or t.created),
        }
        if desk is not None:  # the service-desk fields: assigned agent, team, category, first response
            row |= {
                "agent_id": desk.technician or 0,  # Halo's "unassigned" agent
                "team": SECOND_LINE_TEAM if desk.escalated else FIRST_LINE_TEAM,
                "category_1": desk.category.replace(" / ", ">"),
                "responsedate": _ts(desk.first_response),
            }
        return row

    def priorities(self) -> list[dict[str, Any]]:
        return [
            {
                "priorityid": PRIORITY_IDS[name],
                "slaid": SLA_ID,
                "name": name,
                "fixtime": hours,
                "fixunits": "H",
                "responsetime": max(1, hours // 8),
                "responseunits": "H",
                "ishidden": False,
            }
            for name, hours, _ in PRIORITIES
        ]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.tickets()  # build the tables before serving, not inside the first (timed) request
        return await super().start(host, port)

    # -- wire format
    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        return {"message": message}, "application/json"

    def expire_tokens(self) -> None:
        """Revoke every issued token (the next API call answers 401)."""
        self.tokens.clear()

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        expiry = self.tokens.get(header[len("Bearer ") :])
        return expiry is not None and time.monotonic() < expiry

    @staticmethod
    def _unauthorised() -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def _page(self, request: web.Request, key: str, rows: list[dict[str, Any]]) -> web.Response:
        q = request.query
        if q.get("pageinate", "").lower() == "true":
            try:
                size, no = int(q.get("page_size", "50")), int(q.get("page_no", "1"))
            except ValueError:
                return self.json({"message": "page_size and page_no must be numbers"}, status=400)
            if size < 1 or no < 1:
                return self.json({"message": "page_size and page_no must be positive"}, status=400)
            size = min(size, self.page_size)
            chunk = rows[(no - 1) * size : no * size]
            return self.json({"page_no": no, "page_size": size, "record_count": len(rows), key: chunk})
        count = int(q.get("count", "50"))
        return self.json({"record_count": len(rows), key: rows[:count]})

    def routes(self, app: web.Application) -> None:
        async def token(request: web.Request) -> web.Response:
            self.token_requests += 1
            form = await request.post()
            if "tenant" in request.query and request.query["tenant"] != self.tenant:
                return self.json({"error": "invalid_request", "error_description": "unknown tenant"}, status=400)
            if form.get("grant_type") != "client_credentials":
                return self.json({"error": "unsupported_grant_type"}, status=400)
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.secret:
                return self.json({"error": "invalid_client"}, status=401)
            value = secrets.token_urlsafe(24)
            self.tokens[value] = time.monotonic() + TOKEN_LIFETIME
            return self.json(
                {
                    "access_token": value,
                    "token_type": "Bearer",
                    "expires_in": TOKEN_LIFETIME,
                    "scope": str(form.get("scope", "all")),
                }
            )

        async def tickets(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._unauthorised()
            q = request.query
            rows: list[dict[str, Any]] = []
            if "client_id" in q:
                try:
                    rows = list(self.tickets().get(int(q["client_id"]), []))
                except ValueError:
                    return self.json({"message": "client_id must be a number"}, status=400)
            else:
                rows = [t for ts in self.tickets().values() for t in ts]
            if q.get("open_only", "").lower() == "true":
                rows = [r for r in rows if r["dateclosed"] == UNSET]
            if q.get("closed_only", "").lower() == "true":
                rows = [r for r in rows if r["dateclosed"] != UNSET]
            if "datesearch" in q:
                column = {"dateoccured": "dateoccurred", "datecleared": "dateclosed"}.get(q["datesearch"])
                if column is None:
                    return self.json({"message": f"Invalid datesearch {q['datesearch']}"}, status=400)
                try:
                    lo = _param_date(q["startdate"]) if "startdate" in q else None
                    hi = _param_date(q["enddate"]) if "enddate" in q else None
                except ValueError:
                    return self.json({"message": "startdate/enddate must be YYYY-MM-DDTHH:MM:SS"}, status=400)
                rows = [
                    r
                    for r in rows
                    if r[column] != UNSET
                    and (lo is None or _param_date(r[column]) >= lo)
                    and (hi is None or _param_date(r[column]) <= hi)
                ]
            rows.sort(key=lambda r: r["id"])
            return self._page(request, "tickets", rows)

        async def clients(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._unauthorised()
            return self._page(request, "clients", self.clients())

        async def client(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._unauthorised()
            found = next((c for c in self.clients() if str(c["id"]) == request.match_info["id"]), None)
            if found is None:
                return self.json({"message": "Client not found"}, status=404)
            return self.json(found)

        async def priorities(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._unauthorised()
            return self.json(self.priorities())

        async def agents(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._unauthorised()
            return self.json(self.agents())

        async def feedback(request: web.Request) -> web.Response:
            if not self._authorised(request):
                return self._unauthorised()
            if not self.serves_feedback:
                return self.json({"message": "The resource cannot be found."}, status=404)
            rows = self.feedback()
            if "client_id" in request.query:
                rows = [r for r in rows if str(r["client_id"]) == request.query["client_id"]]
            return self._page(request, "feedback", rows)

        app.router.add_post("/auth/token", token)
        app.router.add_get("/api/Agent", agents)
        app.router.add_get("/api/Feedback", feedback)
        app.router.add_get("/api/Tickets", tickets)
        app.router.add_get("/api/Client", clients)
        app.router.add_get("/api/Client/{id}", client)
        app.router.add_get("/api/Priority", priorities)

    def source_config(self) -> dict[str, Any]:
        return {
            "type": "halo",
            "url": self.url,
            "tenant": self.tenant,
            "client_id": self.client_id,
            "client_secret": self.secret,
            "change_ticket_type_id": CHANGE_TYPE_ID,
            "waiting_status_ids": [WAITING_STATUS_ID],
            "page_size": self.page_size,
            "concurrency": 8,  # loopback: let a batch's small pages run together (production default: 4)
        }

"""A loopback ConnectWise PSA REST API 3.0 serving the sandbox MSP.

Wire format as ConnectWise documents it: routes under ``/v4_6_release/apis/3.0``; Basic auth with
``company+publicKey:privateKey`` and a ``clientId`` header on every request (wrong → 401 with the
CW error body); list endpoints that evaluate ``conditions`` (a real parser of CW's grammar:
``and``/``or``, parentheses, ``= != < <= > >= like in``, ``"strings"``, ``[dates]``, numbers,
``true/false/null``), apply ``fields`` and ``orderBy``, and page with ``page``/``pageSize`` capped at
this simulator's small page size, announcing the pages in a ``Link`` header (``rel="next"``,
``rel="last"``, ``rel="first"``, ``rel="prev"``); errors as ``{"code", "message", "errors"}``.

Every sandbox customer using ConnectWise is a company (``id`` = its sandbox id, ``identifier`` =
its code, ``_info.dateEntered`` = its onboarding). Its tickets are the dataset's ``TicketRecord``s:
service tickets on the "Service Desk" board under the "Standard SLA" (all hours; resolution
target per priority = the dataset's priority hours, so ``resolve_by`` = entered + hours and
``isInSla`` = closed ≤ that), changes on the "Change Management" board with type "Change". Ticket
ids are the dataset's per-customer sequence numbers (so they repeat across companies; lists are
ordered by ``id`` then company). Customer surveys: one "Ticket satisfaction" survey (two scored
questions of 0..5 points and a free-text one, ``/service/surveys/1/questions``) whose results
(``/service/surveys/1/results``) answer the dataset's ticket feedback (``DeskFacts.feedback_score``:
1, 2 → 7..10 points, 3, 4 → 0..4 points); ``surveys_status = 404 / 403`` plays a site without the
module or a role without rights.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from connectors.fields import iso_z, parse_time
from connectors.sandbox.dataset import (
    AUTOMATION_MEMBER,
    PRIORITIES,
    SURVEY_QUESTIONS,
    TECHNICIANS,
    DeskFacts,
    SandboxDataset,
    survey_answer,
)
from connectors.sim.base import Simulator

API = "/v4_6_release/apis/3.0"
SERVICE_BOARD = {"id": 1, "name": "Service Desk"}
CHANGE_BOARD = {"id": 7, "name": "Change Management"}
STANDARD_SLA = {"id": 1, "name": "Standard SLA"}
PRIORITY_IDS = {name: i + 1 for i, (name, _, _) in enumerate(PRIORITIES)}
SURVEY = {"id": 1, "name": "Ticket satisfaction"}
MEMBERS = {tid: {"id": tid, "identifier": ident, "name": name} for tid, ident, name, _ in TECHNICIANS}


# ---- the conditions language ---------------------------------------------------------------


class ConditionError(ValueError):
    """A ``conditions`` string the simulator cannot parse (ConnectWise answers 400)."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<str>"(?:[^"])*")
      | (?P<date>\[[^\]]*\])
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_/.]*)
    )""",
    re.VERBOSE,
)

Predicate = Callable[[dict[str, Any]], bool]


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ConditionError(f"cannot parse conditions near {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def lookup(row: dict[str, Any], path: str) -> Any:
    """``company/id`` → row["company"]["id"]; fields not at the top are looked up in ``_info``
    (ConnectWise lets ``dateEntered`` be queried although it lives in ``_info``)."""
    cur: Any = row
    parts = path.split("/")
    if parts[0] not in row and isinstance(row.get("_info"), dict) and parts[0] in row["_info"]:
        cur = row["_info"]
    for p in parts:
        if not isinstance(cur, dict) or p not in cur:
            return _MISSING
        cur = cur[p]
    return cur


_MISSING = object()


def _literal(kind: str, text: str) -> Any:
    if kind == "str":
        return text[1:-1]
    if kind == "date":
        try:
            return parse_time(text)
        except ValueError as err:
            raise ConditionError(f"bad date literal {text}") from err
    if kind == "num":
        return float(text) if "." in text else int(text)
    if kind == "word" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "word" and text.lower() == "null":
        return None
    raise ConditionError(f"expected a value, got {text!r}")


@functools.lru_cache(maxsize=65536)
def _time(text: str) -> datetime:
    return parse_time(text)


def _compare(value: Any, op: str, lit: Any) -> bool:
    if op in ("=", "!="):
        if isinstance(lit, datetime) and isinstance(value, str):
            value = _time(value)
        if isinstance(lit, str) and isinstance(value, str):
            eq = value.lower() == lit.lower()  # CW compares strings case-insensitively
        else:
            eq = value == lit
        return eq if op == "=" else not eq
    if op == "like":
        if not isinstance(value, str) or not isinstance(lit, str):
            return False
        pattern = "^" + ".*".join(re.escape(p) for p in lit.split("%")) + "$"
        return re.match(pattern, value, re.IGNORECASE) is not None
    if value is None or lit is None:
        return False
    if isinstance(lit, datetime):
        if not isinstance(value, str):
            return False
        value = _time(value)
    try:
        return {"<": value < lit, "<=": value <= lit, ">": value > lit, ">=": value >= lit}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, text: str, known: Callable[[str], bool]):
        self.toks = _tokens(text)
        self.i = 0
        self.known = known
        self.depth = 0
        self.equalities: dict[str, Any] = {}  # top-level "field = literal" conjuncts (for indexes)

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ConditionError("conditions end too early")
        self.i += 1
        return tok

    def word(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() in words:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        pred = self.expr()
        tok = self.peek()
        if tok is not None:
            raise ConditionError(f"unexpected {tok[1]!r} in conditions")
        return pred

    def expr(self) -> Predicate:
        self.depth += 1
        parts = [self.term()]
        while self.word("or"):
            parts.append(self.term())
        self.depth -= 1
        if self.depth == 0 and len(parts) > 1:
            self.equalities.clear()  # a top-level "or": no conjunct holds for every match
        if len(parts) == 1:
            return parts[0]
        ps = tuple(parts)
        return lambda r: any(p(r) for p in ps)

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.word("and"):
            parts.append(self.factor())
        if len(parts) == 1:
            return parts[0]
        ps = tuple(parts)
        return lambda r: all(p(r) for p in ps)

    def factor(self) -> Predicate:
        if self.word("not"):
            self.depth += 1  # nothing under a "not" is a conjunct every match satisfies
            inner = self.factor()
            self.depth -= 1
            return lambda r: not inner(r)
        kind, text = self.take()
        if kind == "lp":
            pred = self.expr()
            if self.take()[0] != "rp":
                raise ConditionError("missing ')' in conditions")
            return pred
        if kind != "word":
            raise ConditionError(f"expected a field name, got {text!r}")
        field = text
        if not self.known(field):
            raise ConditionError(f"Unknown field {field} in conditions")
        if self.word("like"):
            op = "like"
        elif self.word("in"):
            if self.take()[0] != "lp":
                raise ConditionError("'in' needs a list")
            values = []
            while True:
                k, t = self.take()
                values.append(_literal(k, t))
                k, t = self.take()
                if k == "rp":
                    break
                if k != "comma":
                    raise ConditionError("bad 'in' list")
            return lambda r: any(_compare(lookup(r, field), "=", v) for v in values)
        else:
            kind, op = self.take()
            if kind != "op":
                raise ConditionError(f"expected an operator after {field}, got {op!r}")
            op = "!=" if op == "<>" else op
        lit = _literal(*self.take())
        if op == "=" and self.depth == 1 and not isinstance(lit, datetime):
            self.equalities[field] = lit
        return lambda r: (v := lookup(r, field)) is not _MISSING and _compare(v, op, lit)


def parse_conditions(text: str, known: Callable[[str], bool]) -> Predicate:
    """CW ``conditions`` → a predicate over a JSON row (raises ConditionError like CW's 400)."""
    return _Parser(text, known).parse()


def top_equalities(text: str) -> dict[str, Any]:
    """The ``field = literal`` conjuncts every match must satisfy (empty under a top-level ``or``)."""
    p = _Parser(text, lambda f: True)
    p.parse()
    return dict(p.equalities)


def project(row: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Apply ``fields=a,b/c``: keep only those (nested) keys."""
    if not fields:
        return row
    out: dict[str, Any] = {}
    for path in (p.strip() for p in fields.split(",") if p.strip()):
        parts = path.split("/")
        src: Any = row
        for p in parts:
            src = src.get(p, _MISSING) if isinstance(src, dict) else _MISSING
        if src is _MISSING:
            continue
        dst = out
        for p in parts[:-1]:
            dst = dst.setdefault(p, {})
        dst[parts[-1]] = src
    return out


# ---- the simulator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Creds:
    company: str
    public_key: str
    private_key: str
    client_id: str


class ConnectWiseSimulator(Simulator):
    system = "connectwise"
    desk_fields = True  # serve the service-desk fields (owner, dateResponded, ...); False: a PSA without them
    surveys_status: int | None = None  # 404 / 403: GET /service/surveys answers that (no module / no rights)

    def __init__(self, dataset: SandboxDataset, page_size: int = 5):
        super().__init__()
        self.dataset = dataset
        self.page_size = page_size
        digest = hashlib.sha256(self.secret.encode()).hexdigest()
        self.creds = _Creds("northwind", f"pk{digest[:14]}", self.secret, str(uuid.UUID(digest[:32])))
        self._companies: list[dict[str, Any]] | None = None
        self._tickets: list[dict[str, Any]] | None = None
        self._by_company: dict[int, list[dict[str, Any]]] = {}
        self._results: list[dict[str, Any]] | None = None

    # -- data
    def companies(self) -> list[dict[str, Any]]:
        if self._companies is None:
            rows = []
            for c in self.dataset.customers_in("connectwise"):
                entered = iso_z(self.dataset.gen(c.code).onboarded)
                rows.append(
                    {
                        "id": int(c.ids["connectwise"]),
                        "identifier": c.code,
                        "name": c.name,
                        "status": {"id": 1, "name": "Active"},
                        "types": [{"id": 1, "name": "Client"}],
                        "deletedFlag": False,
                        "_info": {"dateEntered": entered, "lastUpdated": entered, "enteredBy": "sandbox"},
                    }
                )
            self._companies = sorted(rows, key=lambda r: r["id"])
        return self._companies

    def tickets(self) -> list[dict[str, Any]]:
        if self._tickets is None:
            rows = []
            for company in self.companies():
                g = self.dataset.gen(company["identifier"])
                ref = {"id": company["id"], "identifier": company["identifier"], "name": company["name"]}
                for t in g.tickets:
                    rows.append(self._ticket(t, ref, g.desk.get(t.id) if self.desk_fields else None))
            self._tickets = sorted(rows, key=lambda r: (r["id"], r["company"]["id"]))
            for r in self._tickets:
                self._by_company.setdefault(r["company"]["id"], []).append(r)
        return self._tickets

    @staticmethod
    def _desk(row: dict[str, Any], t: Any, desk: DeskFacts) -> None:
        """The service-desk fields of a service ticket (Manage's Ticket model): ``owner``,
        ``dateResponded``, ``subType``, ``source``, ``escalationLevel``, ``closedBy`` (a member
        identifier: the automation's API member for tickets it closed)."""
        kind, _, sub = desk.category.partition(" / ")
        row |= {
            "subType": {"id": 100 + sum(map(ord, sub)) % 900, "name": sub or kind},
            "source": {"id": 2, "name": "Email"},
            "escalationLevel": 1 if desk.escalated else 0,
        }
        row["type"] = {"id": 10 + sum(map(ord, kind)) % 90, "name": kind}
        if desk.technician is not None:
            row["owner"] = MEMBERS[desk.technician]
        if desk.first_response is not None:
            row["dateResponded"] = iso_z(desk.first_response)
        if t.closed is not None:
            if desk.closed_by_automation:
                row["closedBy"] = AUTOMATION_MEMBER
            elif desk.technician is not None:
                row["closedBy"] = MEMBERS[desk.technician]["identifier"]

    @staticmethod
    def _ticket(t: Any, company: dict[str, Any], desk: DeskFacts | None = None) -> dict[str, Any]:
        entered = iso_z(t.created)
        row: dict[str, Any] = {
            "id": int(t.id),
            "summary": t.title,
            "recordType": "ServiceTicket",
            "company": company,
            "closedFlag": t.closed is not None,
            "_info": {"dateEntered": entered, "lastUpdated": iso_z(t.closed or t.created), "enteredBy": "sandbox"},
        }
        if t.is_change:
            row |= {
                "board": CHANGE_BOARD,
                "type": {"id": 30, "name": "Change"},
                "priority": {"id": PRIORITY_IDS["Medium"], "name": "Medium"},
                "status": {"id": 75, "name": "Completed" if t.closed else "Scheduled"},
                "isInSla": True,
            }
            if t.scheduled is not None:
                row["estimatedStartDate"] = iso_z(t.scheduled)
        else:
            met = t.closed is not None and t.resolve_by is not None and t.closed <= t.resolve_by
            row |= {
                "board": SERVICE_BOARD,
                "type": {"id": 10, "name": "Incident"},
                "priority": {"id": PRIORITY_IDS[t.priority], "name": t.priority, "sort": PRIORITY_IDS[t.priority]},
                "status": (
                    {"id": 5, "name": "Closed"}
                    if t.closed
                    else {"id": 7, "name": t.status}
                    if t.waiting_on_customer
                    else {"id": 1, "name": "New"}
                ),
                "sla": STANDARD_SLA,
                "slaStatus": (
                    "Resolved"
                    if t.closed
                    else "Waiting"
                    if t.waiting_on_customer
                    else f"Resolve by {iso_z(t.resolve_by)}"
                ),
                # open: the PSA's verdict now; a status waiting on the client stops the clock
                "isInSla": met
                if t.closed
                else (t.waiting_on_customer or t.resolve_by is None or t.resolve_by >= datetime.now(UTC)),
            }
        if t.closed is not None:
            row |= {
                "closedDate": iso_z(t.closed),
                "closedBy": "sandbox",
                "dateResolved": iso_z(t.closed),
                "resolveMinutes": int((t.closed - t.created).total_seconds() // 60),
            }
        if desk is not None:
            ConnectWiseSimulator._desk(row, t, desk)
        return row

    def slas(self) -> list[dict[str, Any]]:
        return [
            {
                **STANDARD_SLA,
                "basedOn": "AllHours",
                "defaultFlag": True,
                "respondHours": 1.0,
                "planWithin": 4.0,
                "resolutionHours": 24.0,
                "_info": {"lastUpdated": "2024-01-01T00:00:00Z"},
            }
        ]

    def sla_priorities(self) -> list[dict[str, Any]]:
        return [
            {
                "id": 100 + i,
                "priority": {"id": PRIORITY_IDS[name], "name": name},
                "respondHours": min(hours / 4, 4.0),
                "respondPercent": 100,
                "planWithin": hours / 2,
                "planWithinPercent": 100,
                "resolutionHours": float(hours),
                "resolutionPercent": 100,
                "sla": STANDARD_SLA,
            }
            for i, (name, hours, _) in enumerate(PRIORITIES)
        ]

    def surveys(self) -> list[dict[str, Any]]:
        """``GET /service/surveys``: the one ticket-satisfaction survey (ServiceSurvey model)."""
        return [
            {
                **SURVEY,
                "inactiveFlag": False,
                "headerText": "How did we do?",
                "_info": {"lastUpdated": "2024-01-01T00:00:00Z"},
            }
        ]

    def survey_questions(self) -> list[dict[str, Any]]:
        """``GET /service/surveys/1/questions`` (SurveyQuestion; ``options[]``: caption, points, includeFlag)."""
        return [
            {
                "id": 10 + j,
                "sequenceNumber": j + 1,
                "type": kind,
                "question": text,
                "options": [{"caption": c, "points": p, "includeFlag": True} for c, p in options],
                "includeFlag": True,
                "requiredFlag": bool(options),
                "noAnswerPoints": 0,
                "surveyId": SURVEY["id"],
            }
            for j, (text, kind, options) in enumerate(SURVEY_QUESTIONS)
        ]

    def survey_results(self) -> list[dict[str, Any]]:
        """``GET /service/surveys/1/results`` (SurveyResult): one per closed ticket the dataset
        gives feedback on (its ``DeskFacts.feedback_score``), the options picked by
        ``dataset.survey_answer``; ``totalPoints`` = their points; ``_info.dateEntered`` = when answered."""
        if self._results is None:
            rows: list[dict[str, Any]] = []
            scored = [(j, opts) for j, (_, _, opts) in enumerate(SURVEY_QUESTIONS) if opts]
            for company in self.companies():
                code = company["identifier"]
                ref = {"id": company["id"], "identifier": code, "name": company["name"]}
                g = self.dataset.gen(code)
                for t in g.tickets:
                    desk = g.desk.get(t.id)
                    if desk is None or desk.feedback_score is None or desk.feedback_at is None:
                        continue
                    picks = survey_answer(code, t.id, desk.feedback_score)
                    answers = [
                        {"questionId": 10 + j, "answer": str(k)} for (j, _), k in zip(scored, picks, strict=True)
                    ]
                    points = sum(opts[k][1] for (_, opts), k in zip(scored, picks, strict=True))
                    answered = iso_z(desk.feedback_at)
                    rows.append(
                        {
                            "ticketId": int(t.id),
                            "emailAddress": f"user@{code.lower()}.example",
                            "footerResponse": "" if desk.feedback_score < 3 else "Took too long.",
                            "contactMeFlag": desk.feedback_score >= 3,
                            "contact": {"id": 1000 + company["id"], "name": f"{company['name']} contact"},
                            "results": answers,
                            "totalPoints": points,
                            "company": ref,
                            "surveyId": SURVEY["id"],
                            "_info": {"dateEntered": answered, "lastUpdated": answered},
                        }
                    )
            for i, r in enumerate(sorted(rows, key=lambda r: (r["_info"]["dateEntered"], r["company"]["id"]))):
                r["id"] = i + 1
            self._results = sorted(rows, key=lambda r: r["id"])
        return self._results

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.tickets()  # build the tables before serving, not inside the first (timed) request
        self.survey_results()
        return await super().start(host, port)

    # -- wire format
    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        code = {400: "InvalidObject", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests"}
        return {"code": code.get(status, "ConnectWiseApi"), "message": message, "errors": []}, "application/json"

    def _error(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> web.Response:
        return self.json({"code": code, "message": message, "errors": errors or []}, status=status)

    def _refused(self, request: web.Request) -> web.Response | None:
        expected = base64.b64encode(
            f"{self.creds.company}+{self.creds.public_key}:{self.creds.private_key}".encode()
        ).decode()
        if request.headers.get("Authorization", "") != f"Basic {expected}":
            return self._error(
                401,
                "ConnectWiseApi",
                "An exception has been thrown.",
                [{"code": "UserNotAuthenticated", "message": "UserNotAuthenticated", "resource": "ConnectWiseApi"}],
            )
        if request.headers.get("clientId", "") != self.creds.client_id:
            return self._error(
                401,
                "ConnectWiseApi",
                "A clientId is required on every request.",
                [
                    {
                        "code": "InvalidClientId",
                        "message": "ClientId is missing or not registered",
                        "resource": "clientId",
                    }
                ],
            )
        return None

    def _list(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        q = request.query
        if "conditions" in q:
            try:
                pred = parse_conditions(
                    q["conditions"], lambda f: any(lookup(r, f) is not _MISSING for r in rows) or not rows
                )
                company = top_equalities(q["conditions"]).get("company/id")
            except ConditionError as err:
                return self._error(
                    400,
                    "InvalidObject",
                    str(err),
                    [{"code": "InvalidCondition", "message": str(err), "resource": "conditions"}],
                )
            if isinstance(company, int) and rows is self._tickets:  # the ticket table's index by company
                rows = self._by_company.get(company, [])
            rows = [r for r in rows if pred(r)]
        order = q.get("orderBy", "").strip().lower()
        if order.startswith("id"):
            rows = sorted(rows, key=lambda r: r.get("id", 0), reverse=order.endswith("desc"))
        try:
            page = int(q.get("page", "1"))
            size = int(q.get("pageSize", "25"))
        except ValueError:
            return self._error(400, "InvalidObject", "page and pageSize must be numbers")
        if page < 1 or size < 1:
            return self._error(400, "InvalidObject", "page and pageSize must be positive")
        size = min(size, 1000, self.page_size)
        last = max(1, math.ceil(len(rows) / size))
        chunk = [project(r, q.get("fields")) for r in rows[(page - 1) * size : page * size]]
        links = []

        def link(p: int, rel: str) -> str:
            url = request.url.update_query({"page": str(p), "pageSize": str(size)})
            return f'<{url}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        headers = {"Link": ", ".join(links)} if links else {}
        return self.json(chunk, headers=headers)

    def routes(self, app: web.Application) -> None:
        async def system_info(request: web.Request) -> web.Response:
            return self._refused(request) or self.json(
                {
                    "version": "v2025.1.100234",
                    "isCloud": True,
                    "serverTimeZone": "Eastern Standard Time",
                    "licenseBits": [],
                    "cloudRegion": "NA",
                }
            )

        async def companies(request: web.Request) -> web.Response:
            return self._list(request, self.companies())

        async def tickets(request: web.Request) -> web.Response:
            return self._list(request, self.tickets())

        async def slas(request: web.Request) -> web.Response:
            return self._list(request, self.slas())

        async def sla_priorities(request: web.Request) -> web.Response:
            if request.match_info["id"] != str(STANDARD_SLA["id"]):
                return self._refused(request) or self._error(404, "NotFound", "SLA was not found.")
            return self._list(request, self.sla_priorities())

        async def surveys(request: web.Request) -> web.Response:
            if self.surveys_status is not None:
                message = {404: "The resource was not found.", 403: "You do not have access to this resource."}
                return self._refused(request) or self._error(
                    self.surveys_status,
                    "NotFound" if self.surveys_status == 404 else "Forbidden",
                    message.get(self.surveys_status, "refused"),
                )
            return self._list(request, self.surveys())

        def survey_route(rows: Callable[[], list[dict[str, Any]]]) -> Callable[[web.Request], Any]:
            async def handler(request: web.Request) -> web.Response:
                if request.match_info["id"] != str(SURVEY["id"]):
                    return self._refused(request) or self._error(404, "NotFound", "Survey was not found.")
                return self._list(request, rows())

            return handler

        app.router.add_get(f"{API}/system/info", system_info)
        app.router.add_get(f"{API}/service/surveys", surveys)
        app.router.add_get(f"{API}/service/surveys/{{id}}/questions", survey_route(self.survey_questions))
        app.router.add_get(f"{API}/service/surveys/{{id}}/results", survey_route(self.survey_results))
        app.router.add_get(f"{API}/company/companies", companies)
        app.router.add_get(f"{API}/service/tickets", tickets)
        app.router.add_get(f"{API}/service/SLAs", slas)
        app.router.add_get(f"{API}/service/SLAs/{{id}}/priorities", sla_priorities)

    def source_config(self) -> dict[str, Any]:
        return {
            "type": "connectwise",
            "url": self.url + API,
            "company_id": self.creds.company,
            "public_key": self.creds.public_key,
            "private_key": self.creds.private_key,
            "client_id": self.creds.client_id,
            "page_size": self.page_size,
            "concurrency": 8,  # loopback: let a batch's small pages run together (production default: 4)
        }

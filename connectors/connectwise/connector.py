"""ConnectWise PSA → the report's ``tickets`` and ``changes`` sections.

One customer is one ConnectWise company (``customers.ids.<source>`` = the company ``id``, or its
``identifier`` with ``company_key = "identifier"``). For a period ``[start, end)`` the connector reads,
concurrently:

1. the company (``GET /company/companies?conditions=id=251``): it must exist; its
   ``_info.dateEntered`` bounds what the PSA can know (a period that ends before the company was
   entered has no data, which is not the same as zero tickets);
2. every ticket of the company that matters for the period, in ONE query —
   ``company/id=251 and dateEntered<[end] and (closedFlag=false or lastUpdated>=[start])`` — i.e.
   entered before the end and open or updated since the start (closing updates a ticket): those
   opened, closed or open in the period, including the ones closed since. Every row must carry
   ``closedFlag`` and ``_info.lastUpdated`` and every closed row ``closedDate``, so a renamed field
   is a data error instead of a condition that silently matches nothing;
3. the SLA definitions (``GET /service/SLAs`` and ``/service/SLAs/{id}/priorities``), once per
   connector, for the resolution targets of tickets that were still open at period end.
4. for the MSP's internal service-desk summary only (:meth:`ConnectWiseConnector.service_desk`):
   the customer surveys (``GET /service/surveys`` and ``/service/surveys/{id}/questions``, once per
   connector) and the company's survey results (``/service/surveys/{id}/results``), counted as
   answers about tickets closed in the period (see :meth:`ConnectWiseConnector._survey_answers`).

Every figure comes from the tickets' dates, never from "open now", so a past week (backfill) is
what it was. The vendor-neutral formulas are ``reporting.metrics.tickets_section`` and
``changes_section``; the mapping to their records is:

- ``created`` = ``_info.dateEntered``; ``closed`` = ``closedDate`` when ``closedFlag`` is true, else
  open (a re-opened ticket is open: ConnectWise keeps only the latest close);
- ``met_sla`` = ``isInSla`` (the PSA's own verdict) for tickets closed in the period;
- open at period end (``breached_at_end``): the PSA's own verdict ``isInSla`` — ConnectWise stops
  the clock while a ticket sits in a status flagged to stop it ("Waiting on Client"), and a breach
  cannot be undone, so ``isInSla = true`` means not breached at period end. ``isInSla = false`` is
  a breach at period end unless even the all-hours target ``dateEntered`` + ``resolutionHours`` of
  the ticket's ``sla`` for its ``priority`` (``/service/SLAs/{id}/priorities``; the SLA's own
  ``resolutionHours`` when the priority has no row) lies after it — the only arithmetic used.
  For a week long past (backfill), ``isInSla`` is read today: a ticket that breached after that
  week's end while its all-hours target was already past then counts as breached at that end;
- ``is_change`` = the ticket is on the change board (``change_board``, default "Change Management")
  or of the change type (``change_type``, e.g. "Change"); change tickets are counted only in
  ``changes`` (closed in the period), never in ``tickets``;
- "Next week": ``scheduled`` = a change ticket's ``estimatedStartDate`` (``change_start_field``;
  UNVERIFIED that every change process fills it — a board that plans changes only as schedule
  entries lists none); ``waiting_on_customer`` = an open ticket whose ``status/name`` is one of
  ``waiting_statuses`` (case-insensitive; default "Waiting on Client", "Waiting Customer",
  "Waiting on Customer" — each board names its own statuses). Statuses are as read now, not as
  at period end.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.connectwise.client import (
    DESK_FIELDS,
    SYSTEM,
    ConnectWiseClient,
    cw_date,
    cw_error_message,
    cw_string,
)
from connectors.connectwise.options import WAITING_STATUSES
from connectors.fields import Fields, require_in_schema
from connectors.http import (
    HttpSource,
    SharedReads,
    gather_all,
    require_credential,
    require_secret,
    require_url,
    source_http,
)
from reporting import metrics
from reporting.config import CustomerConfig, SourceConfig
from reporting.metrics import TicketRecord, in_period
from reporting.models import Period, SectionData, Targets
from reporting.servicedesk import DeskRead, DeskTicket, FeedbackRecord
from reporting.sources import SourceDataError, SourceRecord

log = logging.getLogger(__name__)

SECTIONS = frozenset({"tickets", "changes"})
LABEL = "ConnectWise PSA"
#: the API members automation platforms close tickets as, unless ``automation_members`` says
AUTOMATION_MEMBERS = ("RewstAPI",)
#: a survey answer is positive when ``totalPoints`` >= this share of its survey's maximum points
POSITIVE_SURVEY_SHARE = 0.5
SURVEY_ABSENT = {
    404: "the site has no survey resource: the module is not licensed or not present",
    403: "the API member's security role may not read surveys",
}
ESCALATION_RULE = "escalationLevel above 0 (ConnectWise's own escalation level on the ticket, as read now)"


@dataclass(frozen=True)
class Sla:
    """One ConnectWise SLA: how its clock runs and its resolution target per priority id."""

    id: int
    name: str
    based_on: str  # AllHours | Customer | MyCalendar | Custom
    resolution_hours: float | None  # the SLA's default
    by_priority: dict[int, float]

    def resolution_for(self, priority_id: int | None) -> float | None:
        if priority_id is not None and priority_id in self.by_priority:
            return self.by_priority[priority_id]
        return self.resolution_hours


@dataclass(frozen=True)
class Survey:
    """One ConnectWise customer survey and the most points an answer to it can score."""

    id: int
    name: str
    max_points: float | None  # None: its questions give no points to know the maximum by


@dataclass(frozen=True)
class Surveys:
    """The site's surveys, read once per connector, or why they cannot be read."""

    by_id: dict[int, Survey]
    unavailable: str | None = None  # "not available from this PSA: GET /service/surveys answered HTTP 404 ..."


def survey_max_points(survey_id: int, questions: list[Any]) -> float | None:
    """The most points an answer to a survey can score: Σ over its questions of the largest
    ``points`` among the question's ``options`` (and its ``noAnswerPoints``). Questions and options
    with ``includeFlag = false`` are left out (UNVERIFIED: that the flag means "not asked"); a
    question without options (free text) adds nothing. None when a question has options but none
    carries ``points``, or when no question scores at all: the maximum cannot be known."""
    total = 0.0
    scored = False
    for j, q in enumerate(questions):
        qf = Fields(SYSTEM, q, f"GET /service/surveys/{survey_id}/questions item {j}")
        if qf.opt_flag("includeFlag") is False:
            continue
        options = qf.array("options") if qf.has("options") else []
        points = []
        for k, o in enumerate(options):
            of = Fields(SYSTEM, o, f"GET /service/surveys/{survey_id}/questions item {j} → options[{k}]")
            if of.opt_flag("includeFlag") is False:
                continue
            p = of.opt_number("points")
            if p is not None:
                points.append(p)
        if options and not points:
            return None
        no_answer = qf.opt_number("noAnswerPoints")
        if no_answer is not None:
            points.append(no_answer)
        if points:
            scored = True
            total += max(points)
    return total if scored and total > 0 else None


@dataclass(frozen=True)
class Week:
    """What one customer-period needs, read once and shared by both sections."""

    company: dict[str, Any]
    tickets: list[Any]
    slas: dict[int, Sla]


def _int_option(src: SourceConfig, name: str, key: str, default: int) -> int:
    try:
        return int(src.option(key, default))
    except (TypeError, ValueError):
        raise SourceDataError(SYSTEM, f"sources.{name}.{key} must be a whole number") from None


@connector_shape
class ConnectWiseConnector(ConnectorDefaults):
    """``[sources.<name>] type = "connectwise"``: the ``tickets`` and ``changes`` sections."""

    system = SYSTEM
    sections = SECTIONS

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        self.sections = SECTIONS
        self.source = source
        self.company_key = str(source.option("company_key", "id"))
        self.change_board: str | None = source.option("change_board", "Change Management") or None
        self.change_type: str | None = source.option("change_type") or None
        self.change_start_field = str(source.option("change_start_field", "estimatedStartDate") or "estimatedStartDate")
        self.waiting = frozenset(str(s).casefold() for s in (source.option("waiting_statuses", WAITING_STATUSES) or ()))
        members = source.option("automation_members", AUTOMATION_MEMBERS) or ()
        self.automation_members = frozenset(str(m).casefold() for m in members)
        boards = source.option("boards")
        self.boards: frozenset[str] | None = frozenset(boards) if boards else None
        secrets = tuple(s for s in (source.secret("private_key"),) if s)
        self.http: HttpSource
        self.http, self._httpx = source_http(SYSTEM, source, ctx, error_message=cw_error_message, secrets=secrets)
        self._client: ConnectWiseClient | None = None
        self._slas: dict[int, Sla] | None = None
        self._slas_lock = asyncio.Lock()
        self._surveys: Surveys | None = None
        self._surveys_lock = asyncio.Lock()
        self._weeks: SharedReads[tuple[str, datetime, datetime], Week] = SharedReads(len(SECTIONS))

    # -- configuration, checked when first used so a bad table is one unavailable section --
    @property
    def client(self) -> ConnectWiseClient:
        """The vendor API client, built on first use: a missing credential or a bad option is
        then one unavailable section, never a constructor that raises."""
        if self._client is None:
            src, name = self.source, self.name
            url = require_url(SYSTEM, src)
            for key in ("company_id", "public_key", "client_id"):
                require_credential(SYSTEM, name, src, key)
            if self.company_key not in ("id", "identifier"):
                raise SourceDataError(
                    SYSTEM, f'sources.{name}.company_key must be "id" or "identifier", not {self.company_key!r}'
                )
            self._client = ConnectWiseClient(
                self.http,
                url,
                company_id=str(src.option("company_id")),
                public_key=str(src.option("public_key")),
                private_key=require_secret(SYSTEM, name, src, "private_key"),
                client_id=str(src.option("client_id")),
                page_size=_int_option(src, name, "page_size", 1000),
            )
        return self._client

    async def probe(self) -> str:
        """One authenticated call: ``GET /system/info`` → "ConnectWise PSA v2024.1.10234"."""
        info = Fields(SYSTEM, await self.client.system_info(), "GET /system/info")
        cloud = info.opt_flag("isCloud")
        return f"ConnectWise PSA {info.text('version')}" + (" (cloud)" if cloud else "")

    # -- the protocol ----------------------------------------------------------------------
    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        if section not in SECTIONS:
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        cid = customer.ids.get(self.name)
        if not cid:
            raise SourceDataError(SYSTEM, f"{customer.code} has no company id (customers.ids.{self.name})")
        week = await self._week(str(cid), period)
        records = self._records(week, period)
        if section == "tickets":
            # an open ticket without status/name (a renamed field, a trimmed projection): the report
            # cannot say what waits on the customer, rather than say "nothing"
            says = all(r.status for r in records if not r.is_change and r.closed is None)
            return metrics.tickets_section(records, period, targets.ticket_sla_pct, reads_waiting=says)
        return metrics.changes_section(records, period)

    async def customer_records(self) -> list[SourceRecord]:
        """Every company not deleted, keyed like ``customers.ids`` (``id`` or ``identifier``)."""
        out = []
        for i, row in enumerate(await self.client.companies("deletedFlag=false")):
            f = Fields(SYSTEM, row, f"GET /company/companies item {i}")
            out.append(SourceRecord(SYSTEM, f.text(self.company_key), f.text("name")))
        return out

    async def aclose(self) -> None:
        await self._weeks.aclose()
        await self._httpx.aclose()

    # -- reading ---------------------------------------------------------------------------
    async def _week(self, cid: str, period: Period) -> Week:
        """The company's data for ``period``, fetched once for both sections. The shared task is
        shielded: one section timing out must not cancel the other's read."""
        key = (cid, period.start.astimezone(UTC), period.end.astimezone(UTC))
        return await self._weeks.get(key, lambda: self._load(cid, period))

    def _company_condition(self, cid: str) -> str:
        if self.company_key == "id":
            if not cid.isdigit():
                raise SourceDataError(
                    SYSTEM,
                    f"company id {cid!r} is not a number (customers.ids.{self.name}; "
                    f'set sources.{self.name}.company_key = "identifier" to map by identifier)',
                )
            return f"id={cid}"
        return f"identifier={cw_string(cid)}"

    def ticket_conditions(self, cid: str, period: Period) -> str:
        """Tickets of the company entered before the end and either open or updated since the
        start (closing a ticket updates it, so every ticket closed since the start is in it).

        The answer proves itself: every row must carry the fields filtered on (``closedFlag``,
        ``_info.lastUpdated``) and every closed row its ``closedDate`` — a renamed field is a data
        error, where a condition on ``closedDate`` silently matched nothing."""
        company = self._company_condition(cid)
        return (
            f"company/{company} and dateEntered<{cw_date(period.end)} "
            f"and (closedFlag=false or lastUpdated>={cw_date(period.start)})"
        )

    async def _load(self, cid: str, period: Period, desk: bool = False) -> Week:
        client = self.client
        extra = (self.change_start_field, *DESK_FIELDS) if desk else (self.change_start_field,)
        companies, tickets, slas = await gather_all(
            client.companies(self._company_condition(cid)),
            client.tickets(self.ticket_conditions(cid, period), extra),
            self._sla_table(),
        )
        if not companies:
            raise SourceDataError(SYSTEM, f"no company with {self.company_key} {cid!r} (customers.ids.{self.name})")
        company = Fields(SYSTEM, companies[0], "GET /company/companies item 0")
        entered = company.time("_info.dateEntered")
        if period.end <= entered:
            raise SourceDataError(
                SYSTEM,
                f"company {company.text('name')!r} was entered in ConnectWise on "
                f"{entered.astimezone(period.end.tzinfo).date().isoformat()}; "
                f"it has no records for a period ending {period.end.date().isoformat()}",
            )
        return Week(companies[0], tickets, slas)

    async def _sla_table(self) -> dict[int, Sla]:
        """All SLAs with their per-priority resolution targets, read once per connector."""
        async with self._slas_lock:
            if self._slas is None:
                client = self.client
                rows = await client.slas()
                heads = [Fields(SYSTEM, r, f"GET /service/SLAs item {i}") for i, r in enumerate(rows)]
                require_in_schema(SYSTEM, heads, ["resolutionHours"], "GET /service/SLAs")
                prios = await gather_all(*(client.sla_priorities(h.integer("id")) for h in heads))
                table = {}
                for h, plist in zip(heads, prios, strict=True):
                    sla_id = h.integer("id")
                    by_priority = {}
                    for j, p in enumerate(plist):
                        pf = Fields(SYSTEM, p, f"GET /service/SLAs/{sla_id}/priorities item {j}")
                        by_priority[pf.integer("priority.id")] = pf.number("resolutionHours")
                    table[sla_id] = Sla(
                        sla_id, h.text("name"), h.text("basedOn"), h.opt_number("resolutionHours"), by_priority
                    )
                self._slas = table
            return self._slas

    async def _survey_table(self) -> Surveys:
        """The site's surveys with each one's maximum points (:func:`survey_max_points` over
        ``GET /service/surveys/{id}/questions``), read once per connector. ``GET /service/surveys``
        answering 404 or 403 is kept as the reason sentiment is not available."""
        async with self._surveys_lock:
            if self._surveys is None:
                client = self.client
                rows = await client.surveys()
                if isinstance(rows, int):
                    why = SURVEY_ABSENT.get(rows, "")
                    self._surveys = Surveys(
                        {}, f"not available from this PSA: GET /service/surveys answered HTTP {rows} ({why})"
                    )
                    return self._surveys
                heads = [Fields(SYSTEM, r, f"GET /service/surveys item {i}") for i, r in enumerate(rows)]
                ids = [h.integer("id") for h in heads]
                questions = await gather_all(*(client.survey_questions(i) for i in ids))
                self._surveys = Surveys(
                    {
                        i: Survey(i, h.text("name"), survey_max_points(i, qs))
                        for i, h, qs in zip(ids, heads, questions, strict=True)
                    }
                )
            return self._surveys

    def _positive_share(self) -> float:
        key = "positive_survey_share"
        try:
            share = float(self.source.option(key, POSITIVE_SURVEY_SHARE))
        except (TypeError, ValueError):
            share = float("nan")
        if not 0 < share <= 1:
            raise SourceDataError(
                SYSTEM, f"sources.{self.name}.{key} must be a share above 0 and at most 1 (0.5 = half the points)"
            )
        return share

    async def _survey_answers(
        self, customer: CustomerConfig, company_id: int, closed: dict[int, datetime]
    ) -> tuple[tuple[FeedbackRecord, ...] | None, str]:
        """The company's survey answers about tickets closed in the period, and a note.

        ``GET /service/surveys/{id}/results?conditions=company/id=<id>`` for every survey; each
        result's ``company/id`` is checked again here. A result is about ``ticketId`` and dated by
        that ticket's ``closedDate`` (``closed``: the tickets of this read closed in the period —
        answers about other tickets are not counted). positive = ``totalPoints`` ≥
        ``positive_survey_share`` (default 0.5) × its survey's maximum points; results of a survey
        whose maximum cannot be known are skipped and counted in the note.

        Endpoints and field names are those of the OpenAPI-generated clients (spinen
        connectwise-service-php-client SurveysApi / SurveyResultsApi, pyconnectwise); UNVERIFIED
        against a live site: that ``/results`` honours ``conditions=company/id=..`` (hence the
        per-row check), that ``totalPoints`` is on the questions' ``points`` scale, and what
        ``includeFlag`` means on questions and options."""
        share = self._positive_share()
        surveys = await self._survey_table()
        if surveys.unavailable is not None:
            return None, surveys.unavailable
        order = sorted(surveys.by_id)
        results = await gather_all(*(self.client.survey_results(sid, f"company/id={company_id}") for sid in order))
        answers = []
        skipped: dict[str, int] = {}
        for sid, rows in zip(order, results, strict=True):
            survey = surveys.by_id[sid]
            for i, row in enumerate(rows):
                f = Fields(SYSTEM, row, f"GET /service/surveys/{sid}/results item {i}")
                ticket_id = f.integer("ticketId")
                points = f.number("totalPoints")
                if f.integer("company.id") != company_id or ticket_id not in closed:
                    continue
                if survey.max_points is None:
                    skipped[survey.name] = skipped.get(survey.name, 0) + 1
                    continue
                answers.append(
                    FeedbackRecord(
                        customer=customer.code,
                        customer_name=customer.name,
                        ticket_id=str(ticket_id),
                        at=closed[ticket_id],
                        positive=points >= share * survey.max_points,
                    )
                )
        note = "; ".join(
            f"{n} answer(s) to survey {name!r} skipped: its questions give no points to know its maximum by"
            for name, n in sorted(skipped.items())
        )
        return tuple(answers), note

    # -- the MSP's service-desk summary ------------------------------------------------------
    async def service_desk(self, customer: CustomerConfig, period: Period) -> DeskRead:
        """The customer's service tickets with who worked them, for ``reporting.servicedesk``.

        One ticket read (the same conditions as the sections') with the desk fields added:
        ``technician`` = ``owner/name`` (else ``owner/identifier``; no owner: unassigned);
        ``responded`` = ``dateResponded``; ``category`` = ``type/name`` / ``subType/name``;
        ``escalated`` = ``escalationLevel`` > 0 (absent: not readable, None); ``automated`` (closed
        tickets) = ``closedBy`` is one of ``automation_members`` (case-insensitive; absent: None).
        Feedback: the company's customer survey results about tickets of this read closed in the
        period (:meth:`_survey_answers`: answers about tickets closed in the period, dated by the
        ticket's close). A PSA that lacks the desk fields yields None for them, never an error."""
        cid = customer.ids.get(self.name)
        if not cid:
            raise SourceDataError(SYSTEM, f"{customer.code} has no company id (customers.ids.{self.name})")
        week = await self._load(str(cid), period, desk=True)
        records = {r.id: r for r in self._records(week, period)}
        closed = {int(r.id): r.closed for r in records.values() if r.closed is not None and in_period(r.closed, period)}
        company_id = Fields(SYSTEM, week.company, "GET /company/companies item 0").integer("id")
        feedback, feedback_note = await self._survey_answers(customer, company_id, closed)
        out = []
        for i, row in enumerate(week.tickets):
            f = Fields(SYSTEM, row, f"GET /service/tickets item {i}")
            record = records.get(str(f.integer("id")))
            if record is None or record.is_change:
                continue
            owner = f.opt_text("owner.name") or f.opt_text("owner.identifier")
            kind, sub = f.opt_text("type.name"), f.opt_text("subType.name")
            level = f.opt_number("escalationLevel")
            automated: bool | None = False
            if record.closed is not None:
                closed_by = f.opt_text("closedBy")
                automated = None if closed_by is None else closed_by.casefold() in self.automation_members
            out.append(
                DeskTicket(
                    customer=customer.code,
                    customer_name=customer.name,
                    system=SYSTEM,
                    record=record,
                    technician=owner,
                    responded=f.opt_time("dateResponded"),
                    category=" / ".join(x for x in (kind, sub) if x) or None,
                    escalated=None if level is None else level > 0,
                    automated=automated,
                )
            )
        return DeskRead(
            customer=customer.code,
            customer_name=customer.name,
            system=SYSTEM,
            system_label=LABEL,
            tickets=tuple(out),
            feedback=feedback,
            feedback_note=feedback_note,
            automation_note="not available from this PSA: closed tickets do not say who closed them (closedBy)",
            escalation_rule=ESCALATION_RULE,
        )

    # -- mapping ---------------------------------------------------------------------------
    def _is_change(self, board: str | None, type_name: str | None) -> bool:
        return bool(
            (self.change_board and board == self.change_board) or (self.change_type and type_name == self.change_type)
        )

    def _records(self, week: Week, period: Period) -> list[TicketRecord]:
        """Vendor tickets → ``TicketRecord``s (see the module docstring for each field)."""
        out = []
        start, end = period.start, period.end
        rows = [Fields(SYSTEM, row, f"GET /service/tickets item {i}") for i, row in enumerate(week.tickets)]
        where = "GET /service/tickets"
        require_in_schema(SYSTEM, rows, ["board.name", "type.name"] if self.change_type else ["board.name"], where)
        changes = [self._is_change(f.opt_text("board.name"), f.opt_text("type.name")) for f in rows]
        service = [f for f, is_change in zip(rows, changes, strict=True) if not is_change]
        require_in_schema(SYSTEM, service, ["sla.id"], where)
        require_in_schema(SYSTEM, [f for f in service if f.has("priority")], ["priority.id"], where)
        for f, is_change in zip(rows, changes, strict=True):
            ticket_id = f.integer("id")
            board = f.opt_text("board.name")
            if not is_change and self.boards is not None and board not in self.boards:
                continue
            created = f.time("_info.dateEntered")
            f.time("_info.lastUpdated")  # filtered on: must exist on every row
            closed = f.time("closedDate") if f.flag("closedFlag") else None
            met: bool | None = None
            resolve_by: datetime | None = None
            breached: bool | None = None
            priority = (f.opt_text("priority.name") or "Change") if is_change else f.text("priority.name")
            if not is_change:
                in_sla = f.flag("isInSla")
                if closed is not None and start <= closed < end:
                    met = in_sla
                if created < end and (closed is None or closed >= end):
                    if f.has("sla"):
                        resolve_by = self._target(f, ticket_id, week.slas, created)
                    breached = self._breached_at_end(in_sla, resolve_by, end)
            # the priority's own ``sort`` (Manage's PriorityReference) orders the report's priority table
            rank = None if is_change else f.opt_number("priority.sort")
            status = f.opt_text("status.name") or ""
            scheduled = f.opt_time(self.change_start_field) if is_change else None
            waiting = not is_change and closed is None and status.casefold() in self.waiting
            out.append(
                TicketRecord(
                    str(ticket_id),
                    f.text("summary"),
                    priority,
                    created,
                    closed,
                    resolve_by,
                    met,
                    is_change,
                    breached_at_end=breached,
                    priority_rank=rank,
                    scheduled=scheduled,
                    waiting_on_customer=waiting,
                    status=status,
                )
            )
        return out

    @staticmethod
    def _breached_at_end(in_sla: bool, all_hours_target: datetime | None, end: datetime) -> bool:
        """Had a ticket open at ``end`` breached its SLA by then? ConnectWise's own ``isInSla``.

        ``isInSla`` is the PSA's verdict now, with the clock stopped while the ticket sat in a
        status flagged to stop it ("Waiting on Client"); a breach cannot be undone, so ``true``
        means it had not breached at ``end``. ``false`` means it breached at some time: not yet
        at ``end`` if even the all-hours target (``dateEntered`` + ``resolutionHours``, the
        earliest a paused or calendar clock can reach) is not past ``end``.
        """
        if in_sla:
            return False
        return all_hours_target is None or all_hours_target < end

    def _target(self, f: Fields, ticket_id: int, slas: dict[int, Sla], created: datetime) -> datetime | None:
        """The all-hours resolution target of a ticket: ``dateEntered`` + ``resolutionHours`` of its
        SLA for its priority (the earliest its clock can reach; calendar SLAs and paused clocks
        only move it later). None when the SLA sets no resolution target."""
        sla_id = f.integer("sla.id")
        sla = slas.get(sla_id)
        if sla is None:
            raise SourceDataError(SYSTEM, f"ticket {ticket_id} has SLA {sla_id}, which GET /service/SLAs does not list")
        priority_id = f.integer("priority.id") if f.has("priority.id") else None
        hours = sla.resolution_for(priority_id)
        if hours is None or hours <= 0:
            return None  # the SLA sets no resolution target for this priority
        return created + timedelta(hours=hours)

"""HaloPSA → the report's ``tickets`` and ``changes`` sections.

One customer is one Halo client (``customers.ids.<source>`` = the client ``id``). For a period
``[start, end)`` the connector reads, concurrently:

1. the client (``GET /api/Client/{id}``): it must exist; its ``datecreated`` bounds what Halo can
   know (a period ending before the client was created has no data — not zero tickets);
2. the client's tickets open now (``GET /api/Tickets?client_id=..&open_only=true``);
3. the client's tickets closed since the period start (``closed_only=true&datesearch=datecleared
   &startdate=<start − margin>``, no end date) — together with 2., every ticket that was opened,
   closed or open during the period, including the ones closed since;
4. the priority names (``GET /api/Priority``), once per connector.

Exact period boundaries are applied here, on the tickets' own dates, so a past week (backfill)
is what it was, whatever Halo does with the time zone of ``startdate``. The vendor-neutral
formulas are ``reporting.metrics.tickets_section`` and ``changes_section``; the mapping to their
records:

- ``created`` = ``dateoccurred``; ``closed`` = ``dateclosed`` for tickets Halo lists as closed
  (open ones are open, whatever an old ``dateclosed`` says);
- ``met_sla`` (tickets closed in the period) = Halo's resolution verdict ``slastate``: ``"I"``
  inside, ``"O"`` outside; if Halo gives neither, ``dateclosed <= fixbydate``;
- open at period end (``breached_at_end``), Halo's own SLA fields: Halo stops the clock while a
  ticket is ``onhold`` (``slaholdtime`` = the time held) and moves ``fixbydate`` on by the time
  held when the hold ends. A ticket on hold now is a breach only if Halo's ``slastate`` already
  says "O"; any other ticket open at period end is a breach when its ``fixbydate`` (as moved for
  hold time) is before the end. No arithmetic of our own: Halo always gives ``fixbydate``;
- tickets with ``excludefromsla = true`` are ``sla_excluded``: left out of attainment's
  denominator and never a breach;
- ``is_change`` = ``tickettype_id == change_ticket_type_id``; changes count only in ``changes``;
- ``priority`` = the name of (``sla_id``, ``priority_id``) in ``GET /api/Priority``;
- "Next week": ``scheduled`` = a change ticket's ``startdate`` (``change_start_field``; the field
  name is UNVERIFIED against Halo's schema, unset dates are the 1900-01-01 placeholder);
  ``waiting_on_customer`` = an open ticket whose ``status_id`` is one of ``waiting_status_ids``
  (Halo's status ids are per instance, so there is no default: unset, the report does not say
  which tickets wait). Statuses are as read now, not as at period end.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import ConnectorContext, ConnectorDefaults, connector_shape
from connectors.fields import Fields, require_in_schema
from connectors.halo.client import SYSTEM, HaloClient, halo_error_message
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
from reporting.metrics import TicketRecord
from reporting.models import Period, SectionData, Targets
from reporting.servicedesk import DeskRead, DeskTicket, FeedbackRecord
from reporting.sources import SourceDataError, SourceRecord

log = logging.getLogger(__name__)

SECTIONS = frozenset({"tickets", "changes"})
LABEL = "HaloPSA"
FIRST_LINE_TEAMS = ("Service Desk",)
POSITIVE_SCORES = (1, 2)  # Halo feedback: 1 best .. 4 worst (UNVERIFIED scale)
NO_AUTOMATION = "not available from this PSA: Halo tickets carry no marker of being closed by automation"
NO_DATE_BEFORE = datetime(1901, 1, 1, tzinfo=UTC)  # Halo writes unset dates as 1900-01-01
# ticket fields Halo sends on every ticket (null or a placeholder when unset): one absent from
# all tickets of an answer is a renamed field, not "none of them has one"
SCHEMA_FIELDS = ("sla_id", "fixbydate", "dateclosed", "excludefromsla", "slastate", "onhold")


@dataclass(frozen=True)
class Week:
    client: dict[str, Any]
    open_rows: list[Any]
    closed_rows: list[Any]
    priorities: dict[tuple[int, int], str]


def _halo_time(f: Fields, key: str) -> datetime | None:
    """A Halo date that may be unset: absent, null, "" or the 1900-01-01 placeholder → None."""
    value = f.opt_time(key)
    return None if value is None or value < NO_DATE_BEFORE else value


@connector_shape
class HaloConnector(ConnectorDefaults):
    """``[sources.<name>] type = "halo"``: the ``tickets`` and ``changes`` sections."""

    system = SYSTEM
    sections = SECTIONS

    def __init__(self, name: str, source: SourceConfig, ctx: ConnectorContext):
        self.name = name
        self.sections = SECTIONS
        self.source = source
        self._config_error: str | None = None
        self.change_type_id: int | None = None
        self.ticket_type_ids: frozenset[int] | None = None
        self.waiting_ids: frozenset[int] | None = None
        self.change_start_field = str(source.option("change_start_field", "startdate") or "startdate")
        self.margin = timedelta(hours=24)
        self.positive_scores: frozenset[int] = frozenset(POSITIVE_SCORES)
        try:
            scores = source.option("positive_feedback_scores", POSITIVE_SCORES) or ()
            self.positive_scores = frozenset(int(x) for x in scores)
            waiting = source.option("waiting_status_ids")
            self.waiting_ids = frozenset(int(t) for t in waiting) if waiting is not None else None
            change_type = source.option("change_ticket_type_id")
            self.change_type_id = int(change_type) if change_type not in (None, "") else None
            types = source.option("ticket_type_ids")
            self.ticket_type_ids = frozenset(int(t) for t in types) if types else None
            self.margin = timedelta(hours=float(source.option("closed_since_margin_hours", 24)))
        except (TypeError, ValueError):
            self._config_error = (
                f"sources.{name}: change_ticket_type_id and ticket_type_ids take ticket type ids (numbers), "
                f"waiting_status_ids status ids, closed_since_margin_hours a number of hours, "
                f"positive_feedback_scores feedback scores (numbers)"
            )
        teams = source.option("first_line_teams", FIRST_LINE_TEAMS) or ()
        self.first_line_teams = frozenset(str(t).casefold() for t in teams)
        secrets = tuple(s for s in (source.secret("client_secret"),) if s)
        self.http: HttpSource
        self.http, self._httpx = source_http(SYSTEM, source, ctx, error_message=halo_error_message, secrets=secrets)
        self._client: HaloClient | None = None
        self._prios: dict[tuple[int, int], str] | None = None
        self._prios_lock = asyncio.Lock()
        self._agents: dict[int, str] | None = None  # agent id -> name, read once per connector
        self._agents_lock = asyncio.Lock()
        self._weeks: SharedReads[tuple[int, datetime, datetime], Week] = SharedReads(len(SECTIONS))
        # a batch of many clients reads the whole tenant once (clients, open tickets, tickets
        # closed since the start) and splits it by client: ~3 + pages requests for the batch
        # instead of ~3 per client — hosted Halo allows 300 requests per rolling 5 minutes
        batch = int(getattr(ctx, "customers", {}).get(name, 0))
        self.tenant_wide = batch >= int(source.option("tenant_reads_from", 3))
        self._tenant: dict[Any, asyncio.Future[Any]] = {}

    @property
    def client(self) -> HaloClient:
        """The vendor API client, built on first use: a missing credential or a bad option is
        then one unavailable section, never a constructor that raises."""
        """The API client, built when first used (a bad table is one unavailable section)."""
        if self._client is None:
            if self._config_error:
                raise SourceDataError(SYSTEM, self._config_error)
            src, name = self.source, self.name
            url = require_url(SYSTEM, src)
            root = url[: -len("/api")] if url.endswith("/api") else url
            client_id = require_credential(SYSTEM, name, src, "client_id")
            self._client = HaloClient(
                self.http,
                root + "/api",
                str(src.option("auth_url") or root + "/auth"),
                client_id=str(client_id),
                client_secret=require_secret(SYSTEM, name, src, "client_secret"),
                scope=str(src.option("scope", "all")),
                tenant=src.option("tenant") or None,
                page_size=int(src.option("page_size", 100)),
            )
        return self._client

    async def probe(self) -> str:
        """A token and one page of ``GET /api/Client`` → "HaloPSA API, 14 clients"."""
        body = await self.client.get_json("/Client", {"pageinate": "true", "page_size": 1, "page_no": 1})
        count = Fields(SYSTEM, body, "GET /api/Client").integer("record_count")
        return f"HaloPSA API, {count} client{'s' if count != 1 else ''}"

    # -- the protocol ----------------------------------------------------------------------
    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        if section not in SECTIONS:
            raise SourceDataError(SYSTEM, f"does not provide section {section!r}")
        if self._config_error:
            raise SourceDataError(SYSTEM, self._config_error)
        if section == "changes" and self.change_type_id is None:
            raise SourceDataError(
                SYSTEM, f"sources.{self.name}.change_ticket_type_id is not set (the ticket type of changes)"
            )
        cid = str(customer.ids.get(self.name) or "")
        if not cid.isdigit():
            raise SourceDataError(
                SYSTEM, f"client id {cid!r} of {customer.code} is not a Halo client id (customers.ids.{self.name})"
            )
        week = await self._week(int(cid), period)
        records = self._records(week, period)
        if section == "tickets":
            return metrics.tickets_section(
                records, period, targets.ticket_sla_pct, reads_waiting=self.waiting_ids is not None
            )
        return metrics.changes_section(records, period)

    async def customer_records(self) -> list[SourceRecord]:
        out = []
        for i, row in enumerate(await self.client.clients()):
            f = Fields(SYSTEM, row, f"GET /api/Client item {i}")
            out.append(SourceRecord(SYSTEM, f.text("id"), f.text("name")))
        return out

    async def aclose(self) -> None:
        for task in self._tenant.values():
            task.cancel()
        await asyncio.gather(*self._tenant.values(), return_exceptions=True)
        await self._weeks.aclose()
        await self._httpx.aclose()

    # -- reading ---------------------------------------------------------------------------
    async def _week(self, cid: int, period: Period) -> Week:
        """The client's data for ``period``, read once for both sections (shielded: one
        section's timeout does not cancel the other's read)."""
        key = (cid, period.start.astimezone(UTC), period.end.astimezone(UTC))
        return await self._weeks.get(key, lambda: self._load(cid, period))

    def _tenant_read(self, key: Any, read: Any) -> asyncio.Future[Any]:
        """One tenant-wide read per key for the connector's batch (shared, never cancelled by one
        reader's timeout)."""
        task = self._tenant.get(key)
        if task is None:
            task = self._tenant[key] = asyncio.ensure_future(read())
        return task

    async def _load_tenant_wide(self, cid: int, period: Period) -> tuple[Any, list[Any], list[Any]]:
        api = self.client
        # from the UTC midnight before start − margin: customers in nearby time zones share one read
        since = (period.start - self.margin).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        clients, open_all, closed_all = await gather_all(
            asyncio.shield(self._tenant_read("clients", api.clients)),
            asyncio.shield(self._tenant_read("open", lambda: api.open_tickets(None))),
            asyncio.shield(self._tenant_read(("closed", since), lambda: api.tickets_closed_since(None, since))),
        )
        client = next(
            (c for i, c in enumerate(clients) if Fields(SYSTEM, c, f"GET /api/Client item {i}").integer("id") == cid),
            None,
        )

        def mine(rows: list[Any], label: str) -> list[Any]:
            require_in_schema(SYSTEM, rows, ["client_id"], f"GET /api/Tickets ({label}, every client)")
            return [
                r
                for i, r in enumerate(rows)
                if Fields(SYSTEM, r, f"GET /api/Tickets ({label}) item {i}").opt_text("client_id") == str(cid)
            ]

        return client, mine(open_all, "open"), mine(closed_all, "closed")

    async def _load(self, cid: int, period: Period) -> Week:
        api = self.client
        if self.tenant_wide:
            (client, open_rows, closed_rows), prios = await gather_all(
                self._load_tenant_wide(cid, period), self._priorities()
            )
        else:
            client, open_rows, closed_rows, prios = await gather_all(
                api.client(cid),
                api.open_tickets(cid),
                api.tickets_closed_since(cid, period.start - self.margin),
                self._priorities(),
            )
        if client is None:
            raise SourceDataError(SYSTEM, f"no client with id {cid} (customers.ids.{self.name})")
        f = Fields(SYSTEM, client, f"GET /api/Client/{cid}")
        require_in_schema(SYSTEM, [f], ["datecreated"], f"GET /api/Client/{cid}")
        created = _halo_time(f, "datecreated")
        if created is not None and period.end <= created:
            raise SourceDataError(
                SYSTEM,
                f"client {f.text('name')!r} was created in HaloPSA on "
                f"{created.astimezone(period.end.tzinfo).date().isoformat()}; "
                f"it has no records for a period ending {period.end.date().isoformat()}",
            )
        return Week(client, open_rows, closed_rows, prios)

    async def _priorities(self) -> dict[tuple[int, int], str]:
        async with self._prios_lock:
            if self._prios is None:
                table = {}
                for i, row in enumerate(await self.client.priorities()):
                    f = Fields(SYSTEM, row, f"GET /api/Priority item {i}")
                    table[(f.integer("slaid"), f.integer("priorityid"))] = f.text("name")
                self._prios = table
            return self._prios

    async def _agent_names(self) -> dict[int, str]:
        """``GET /api/Agent`` once for every customer and week the summary reads (tenant-wide)."""
        async with self._agents_lock:
            if self._agents is None:
                names = {}
                for i, row in enumerate(await self.client.agents()):
                    af = Fields(SYSTEM, row, f"GET /api/Agent item {i}")
                    names[af.integer("id")] = af.text("name")
                self._agents = names
            return self._agents

    # -- the MSP's service-desk summary ------------------------------------------------------
    async def service_desk(self, customer: CustomerConfig, period: Period) -> DeskRead:
        """The client's service tickets with who worked them, and its feedback, for
        ``reporting.servicedesk``.

        The sections' ticket reads, plus ``GET /api/Agent`` (names) and ``GET /api/Feedback``:
        ``technician`` = the name of ``agent_id`` (0 or absent: unassigned; an id the agent list
        lacks: "agent <id>"); ``responded`` = ``responsedate`` (unset: none); ``category`` =
        ``category_1`` (its ``>`` levels shown as " / "); ``escalated`` = ``team`` is not one of
        ``first_line_teams`` (absent: not readable); ``automated``: not available (Halo tickets
        carry no automation marker). Feedback answers: ``score`` in ``positive_feedback_scores``
        (default 1, 2) is positive, dated ``date``; a Halo without ``/api/Feedback`` (404) has
        sentiment "not available"."""
        if self._config_error:
            raise SourceDataError(SYSTEM, self._config_error)
        cid = str(customer.ids.get(self.name) or "")
        if not cid.isdigit():
            raise SourceDataError(
                SYSTEM, f"client id {cid!r} of {customer.code} is not a Halo client id (customers.ids.{self.name})"
            )
        week, names, feedback_rows = await gather_all(
            self._load(int(cid), period), self._agent_names(), self.client.feedback(int(cid))
        )
        records = {r.id: r for r in self._records(week, period)}
        rows = {}
        for label, listed in (("open", week.open_rows), ("closed", week.closed_rows)):
            for i, row in enumerate(listed):
                f = Fields(SYSTEM, row, f"GET /api/Tickets ({label}) item {i}")
                rows[str(f.integer("id"))] = f
        out = []
        for tid, f in sorted(rows.items(), key=lambda kv: int(kv[0])):
            record = records.get(tid)
            if record is None or record.is_change:
                continue
            agent = int(f.opt_number("agent_id") or 0)
            team = f.opt_text("team")
            category = f.opt_text("category_1")
            out.append(
                DeskTicket(
                    customer=customer.code,
                    customer_name=customer.name,
                    system=SYSTEM,
                    record=record,
                    technician=None if agent == 0 else names.get(agent, f"agent {agent}"),
                    responded=_halo_time(f, "responsedate"),
                    category=" / ".join(p.strip() for p in category.split(">")) if category else None,
                    escalated=None if team is None else team.casefold() not in self.first_line_teams,
                    automated=None,
                )
            )
        feedback: tuple[FeedbackRecord, ...] | None = None
        if feedback_rows is not None:
            answers = []
            for i, row in enumerate(feedback_rows):
                ff = Fields(SYSTEM, row, f"GET /api/Feedback item {i}")
                answers.append(
                    FeedbackRecord(
                        customer=customer.code,
                        customer_name=customer.name,
                        ticket_id=ff.text("ticket_id"),
                        at=ff.time("date"),
                        positive=int(ff.number("score")) in self.positive_scores,
                    )
                )
            feedback = tuple(answers)
        return DeskRead(
            customer=customer.code,
            customer_name=customer.name,
            system=SYSTEM,
            system_label=LABEL,
            tickets=tuple(out),
            feedback=feedback,
            feedback_note="" if feedback is not None else "not available from this PSA: it has no feedback resource",
            automation_note=NO_AUTOMATION,
            escalation_rule="team is not first line (" + ", ".join(sorted(self.first_line_teams)) + "), as read now",
        )

    # -- mapping ---------------------------------------------------------------------------
    def _priority_name(self, f: Fields, prios: dict[tuple[int, int], str]) -> str:
        pid = f.integer("priority_id")
        sla = f.integer("sla_id") if f.has("sla_id") else None
        if sla is not None and (sla, pid) in prios:
            return prios[(sla, pid)]
        names = {name for (_, p), name in prios.items() if p == pid}
        return names.pop() if len(names) == 1 else f"Priority {pid}"

    def _records(self, week: Week, period: Period) -> list[TicketRecord]:
        """Halo tickets → ``TicketRecord``s (see the module docstring for each field)."""
        rows: dict[int, tuple[Fields, bool]] = {}
        for label, listed in (("open", week.open_rows), ("closed", week.closed_rows)):
            require_in_schema(SYSTEM, listed, SCHEMA_FIELDS, f"GET /api/Tickets ({label})")
        for i, row in enumerate(week.open_rows):
            f = Fields(SYSTEM, row, f"GET /api/Tickets (open) item {i}")
            rows[f.integer("id")] = (f, False)
        for i, row in enumerate(week.closed_rows):  # closed since: wins over a stale open copy
            f = Fields(SYSTEM, row, f"GET /api/Tickets (closed) item {i}")
            rows[f.integer("id")] = (f, True)
        out = []
        for ticket_id, (f, is_closed) in sorted(rows.items()):
            ticket_type = f.integer("tickettype_id")
            is_change = self.change_type_id is not None and ticket_type == self.change_type_id
            if not is_change and self.ticket_type_ids is not None and ticket_type not in self.ticket_type_ids:
                continue
            created = f.time("dateoccurred")
            closed = None
            if is_closed:
                closed = _halo_time(f, "dateclosed")
                if closed is None:
                    raise SourceDataError(
                        SYSTEM, f"{f.where}: ticket {ticket_id} is listed as closed but has no dateclosed"
                    )
            met: bool | None = None
            resolve_by: datetime | None = None
            breached: bool | None = None
            excluded = bool(f.opt_flag("excludefromsla")) and not is_change
            if not is_change and not excluded:
                resolve_by = _halo_time(f, "fixbydate")
                if closed is not None and period.start <= closed < period.end:
                    met = self._verdict(f, ticket_id, closed, resolve_by)
                if created < period.end and (closed is None or closed >= period.end):
                    breached = self._breached_at_end(f, is_closed, resolve_by, period.end)
            priority = "Change" if is_change else self._priority_name(f, week.priorities)
            scheduled = _halo_time(f, self.change_start_field) if is_change else None
            status_id = f.integer("status_id") if f.has("status_id") else None
            waiting = (
                not is_change and closed is None and self.waiting_ids is not None and status_id in self.waiting_ids
            )
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
                    excluded,
                    breached_at_end=breached,
                    scheduled=scheduled,
                    waiting_on_customer=waiting,
                    status="" if status_id is None else f"status {status_id}",
                )
            )
        return out

    @staticmethod
    def _breached_at_end(f: Fields, is_closed: bool, fix_by: datetime | None, end: datetime) -> bool:
        """Had a ticket open at ``end`` breached by then, per Halo's own SLA fields?

        Halo stops the clock while a ticket is on hold (``onhold``; the time held is
        ``slaholdtime``) and moves ``fixbydate`` on by the time held when the hold ends. So:
        a ticket on hold now has a stopped clock and a ``fixbydate`` not yet moved — it is a
        breach only when Halo already says so (``slastate`` "O"); any other ticket breached
        at ``end`` when its (moved) ``fixbydate`` is before ``end``.
        """
        if not is_closed and f.flag("onhold"):
            return (f.opt_text("slastate") or "").strip().upper() == "O"
        return fix_by is not None and fix_by < end

    @staticmethod
    def _verdict(f: Fields, ticket_id: int, closed: datetime, fix_by: datetime | None) -> bool | None:
        """Halo's ``slastate`` ("I" in / "O" out); without one, ``dateclosed <= fixbydate``."""
        state = (f.opt_text("slastate") or "").strip().upper()
        by_dates = None if fix_by is None else closed <= fix_by
        if state in ("I", "O"):
            verdict = state == "I"
            if by_dates is not None and by_dates != verdict:
                log.debug("halo ticket %s: slastate %s but dateclosed vs fixbydate says %s", ticket_id, state, by_dates)
            return verdict
        return by_dates

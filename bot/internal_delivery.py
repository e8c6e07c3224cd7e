"""Delivering the MSP's own weekly service-desk summaries (``reporting.internal``): the owner
report emailed to ``[internal_reports] owners``, the manager report to ``managers`` (the admins'
saved lists over the file's), and a post in #weekly-reports with the headline and both PDFs.

MSP-internal: they name technicians and engineers' work. They go to the MSP's own addresses and
its roll-up channel only — an address of a customer (``Config.customer_of_address``: a customer's
``cto_email``, or at its ``domain``) stops that email before anything is sent, and the post
never goes to a customer's channel (``bot.posting.Routes``, ``internal=True``).

Exactly once per week, like a customer's delivery (``bot.delivery``): each step is recorded in the
store's ``deliveries`` table under the delivery id ``internal-<period_end>`` (never a draft id) —
``running`` before the side effect, then ``done``, ``failed`` (a customer's address in the list,
a backend's PermanentError) or ``skipped`` (nobody configured, no channel to post in yet). A
``done`` step is never repeated: a batch re-run, a second instance or a restart finds it so. A
``running`` one (a crash during it) is repeated with the same key, which every mail backend makes
harmless (Graph looks the message up by its delivery id, Gmail by its Message-ID, the outbox
writes the same file), and the post edits the card already posted. ``failed`` and ``skipped``
steps are tried again by the next run. One instance at a time, under the delivery lease.

The summaries are made once per week and kept in the store (``artefacts`` under the pseudo
customer code :data:`INTERNAL_CODE`: both PDFs, then the headline JSON), so a resumed delivery
sends the very PDFs the first attempt sent, and any instance can serve their links.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import jinja2

from bot.delivery import LEASE_SECONDS, DeliveryBusy, DeliveryLog, PermanentError, StepResult, StepState, delivery_owner
from bot.outbox import Addressing, Letter
from bot.published import INTERNAL_CODE
from reporting.config import Config
from reporting.internal import AUDIENCES, Headline, file_name, headline, read_all, report_for
from reporting.models import Period
from reporting.store import HistoryStore
from reporting.text import neutral

log = logging.getLogger(__name__)

STEPS = ("owner_email", "manager_email", "post")
LABEL = {"owner": "Owner", "manager": "Manager"}
KIND = "internal"  # the artefacts' kind
_HEADLINE = "headline"

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("bot", "templates"), autoescape=True)  # noqa: S701 - autoescape is on


def delivery_id(period_end: date) -> str:
    """The week's id in ``deliveries.draft_id`` (at most 36 characters; never a draft's uuid)."""
    return f"internal-{period_end.isoformat()}"


def email_step(audience: str) -> str:
    return f"{audience}_email"


@dataclass(frozen=True)
class InternalSummary:
    """The week's two PDFs (by audience) and the headline their email and post show."""

    headline: Headline
    pdfs: Mapping[str, bytes]

    @property
    def period_end(self) -> date:
        return self.headline.period_end


class Skipped(Exception):  # noqa: N818 - a condition
    """A step that cannot be done now and is no failure (nobody configured, no channel yet)."""


async def make_summary(
    config: Config, connectors: Mapping[str, object], period: Period, now: datetime | None = None
) -> InternalSummary:
    """Read every customer's PSA for ``period`` (and the one before) and render both PDFs."""
    from reporting.pdf.internal import render_internal_pdf  # ReportLab kept off the import path

    reads, previous, unavailable = await read_all(config, connectors, period)
    generated = (now or datetime.now(UTC)).astimezone(period.start.tzinfo)
    report = report_for(config, period, reads, previous, unavailable, generated)
    pdfs = {a: await asyncio.to_thread(render_internal_pdf, report, a) for a in AUDIENCES}
    return InternalSummary(headline(report), pdfs)


class SummaryStore:
    """The week's summaries in the store's ``artefacts``: the PDFs first, the headline last, so a
    headline found means a complete set."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    async def save(self, summary: InternalSummary) -> dict[str, str]:
        """Store both PDFs and the headline; the PDFs' SHA-256 by audience."""
        shas = {
            a: await self.store.put_artefact(INTERNAL_CODE, summary.period_end, a, summary.pdfs[a], KIND)
            for a in AUDIENCES
        }
        text = json.dumps(summary.headline.to_json(), sort_keys=True).encode()
        await self.store.put_artefact(INTERNAL_CODE, summary.period_end, _HEADLINE, text, KIND)
        return shas

    async def load(self, period_end: date) -> InternalSummary | None:
        head = await self.store.artefact(INTERNAL_CODE, period_end, _HEADLINE)
        if head is None:
            return None
        pdfs = {}
        for a in AUDIENCES:
            stored = await self.store.artefact(INTERNAL_CODE, period_end, a)
            if stored is None:
                return None
            pdfs[a] = stored.content
        return InternalSummary(Headline.from_json(json.loads(head.content)), pdfs)


def internal_note(summary: InternalSummary, audience: str, msp_name: str, brand_color: str) -> str:
    h = summary.headline
    return _ENV.get_template("internal_note.html.j2").render(
        msp_name=neutral(msp_name),
        brand_color=brand_color,
        audience=audience,
        audience_label=LABEL[audience].lower(),
        period=neutral(h.period_label),
        customers=h.customers,
        unavailable=h.unavailable,
        figures=h.figures(),
        recommendations=[neutral(r) for r in h.recommendations],
        file_name=file_name(audience, h.period_end),
    )


def internal_letter(summary: InternalSummary, audience: str, to: tuple[str, ...], msp_name: str, brand: str) -> Letter:
    h = summary.headline
    subject = neutral(f"MSP-internal — {msp_name}: service desk {LABEL[audience].lower()} report, {h.period_label}")
    return Letter(
        Addressing(to),
        subject,
        internal_note(summary, audience, msp_name, brand),
        file_name(audience, h.period_end),
        summary.pdfs[audience],
        msp_name,
    )


#: the post: (summary, one line per email step) -> what the step records
PostSummary = Callable[[InternalSummary, list[str]], Awaitable[StepResult]]


class InternalReports:
    """Makes, stores and delivers a week's summaries. ``mailer``: any email backend with
    ``send_letter`` (the outbox, Graph, Gmail, or ``[delivery]``'s routing of them); ``post``:
    the #weekly-reports post (None: no post, e.g. nowhere to post); ``settings``: the admins'
    saved settings (``bot.admin_settings.LiveSettings``), refreshed before each delivery."""

    def __init__(
        self,
        config: Config,
        store: HistoryStore,
        deliveries: DeliveryLog,
        mailer: Any,
        *,
        connectors: Mapping[str, object],
        post: PostSummary | None = None,
        settings: Any = None,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.summaries = SummaryStore(store)
        self.log = deliveries
        self.mailer = mailer
        self.connectors = connectors
        self.post = post
        self.settings = settings
        self.owner = owner or delivery_owner()
        self.lease_seconds = lease_seconds
        self.now = now

    def recipients(self, audience: str) -> tuple[str, ...]:
        if self.settings is not None:
            return tuple(self.settings.internal_recipients(audience))
        file = self.config.internal_reports
        return file.owners if audience == "owner" else file.managers

    @property
    def msp_name(self) -> str:
        return str(self.settings.msp_name) if self.settings is not None else self.config.msp.name

    async def steps(self, period_end: date) -> dict[str, StepState]:
        return await self.log.steps(delivery_id(period_end))

    async def pending(self, period_end: date) -> list[str]:
        """The steps of that week not done yet (never run, running, failed or skipped)."""
        done = await self.steps(period_end)
        return [s for s in STEPS if s not in done or done[s].status != "done"]

    async def summary(self, period: Period) -> InternalSummary:
        """The week's summaries as stored, else made now (from the PSAs) and stored."""
        stored = await self.summaries.load(period.end_date)
        if stored is not None:
            return stored
        made = await make_summary(self.config, self.connectors, period, self.now())
        await self.summaries.save(made)
        return made

    async def run(self, period: Period) -> dict[str, StepState]:
        """Deliver the week's summaries: whatever is not done yet. Nothing is read or rendered
        when every step is done. Raises :class:`DeliveryBusy` when another live instance holds the
        week's delivery, and a transient failure (Graph down, Teams throttling) as it came, with
        its step left ``running`` for the next attempt."""
        if not await self.pending(period.end_date):
            log.info("the service desk summaries of %s were delivered before", period.end_date)
            return await self.steps(period.end_date)
        if self.settings is not None:
            await self.settings.refresh()  # the admins' lists as saved now
        return await self.deliver(await self.summary(period))

    async def deliver(self, summary: InternalSummary) -> dict[str, StepState]:
        did = delivery_id(summary.period_end)
        holder = await self.log.take_lease(did, self.owner, self.lease_seconds)
        if holder is not None:
            raise DeliveryBusy(did, holder)
        try:
            return await self._steps(did, summary)
        finally:
            try:
                await self.log.release_lease(did, self.owner)
            except Exception:  # the store went away: the lease runs out by itself
                log.warning("could not release the delivery lease of %s", did, exc_info=True)

    async def _record(self, did: str, step: str, status: str, detail: str) -> None:
        await self.log.start(did, step, f"reportbot:{did}:{step}")
        await self.log.end(did, step, status, detail)

    async def _steps(self, did: str, summary: InternalSummary) -> dict[str, StepState]:
        where = {"period": summary.period_end.isoformat(), "draft_id": did}
        for audience in AUDIENCES:
            step = email_step(audience)
            done = await self.log.steps(did)
            if step in done and done[step].status == "done":
                continue
            to = self.recipients(audience)
            if self.mailer is None:
                await self._record(did, step, "skipped", "no email delivery is configured here")
                continue
            if not to:
                await self._record(did, step, "skipped", f"nobody is configured ([internal_reports] {audience}s)")
                continue
            customer_side = [(a, code) for a in to if (code := self.config.customer_of_address(a)) is not None]
            if customer_side:
                listed = ", ".join(f"{a} ({code})" for a, code in customer_side)
                reason = f"not sent: {listed} — an address of a customer; internal reports never go to a customer"
                await self._record(did, step, "failed", reason)
                log.error("the %s summary of %s was not sent: %s", audience, summary.period_end, reason, extra=where)
                continue
            if not await self.log.renew_lease(did, self.owner, self.lease_seconds):
                raise DeliveryBusy(did, "another instance, which took the delivery over")
            key = f"reportbot:{did}:{step}"
            await self.log.start(did, step, key)
            mail = internal_letter(summary, audience, to, self.msp_name, self.config.msp.brand_color)
            try:
                result = await self.mailer.send_letter(mail, key)
            except PermanentError as err:
                await self.log.end(did, step, "failed", str(err))
                log.error("the %s summary of %s was not sent: %s", audience, summary.period_end, err, extra=where)
                continue
            await self.log.end(did, step, "done", result.detail, result.url)
            log.info("the %s summary of %s: %s", audience, summary.period_end, result.detail, extra=where)
        done = await self.log.steps(did)
        if "post" not in done or done["post"].status != "done":
            await self._post(did, summary, done, where)
        return await self.log.steps(did)

    async def _post(
        self, did: str, summary: InternalSummary, done: dict[str, StepState], where: dict[str, str]
    ) -> None:
        if self.post is None:
            await self._record(did, "post", "skipped", "no channel to post in here")
            return
        lines = []
        for audience in AUDIENCES:
            s = done.get(email_step(audience))
            if s is None:
                continue
            verb = {"done": "emailed:", "skipped": "not emailed:", "failed": "not emailed:"}.get(s.status, "emailing:")
            lines.append(f"{LABEL[audience]} report {verb} {s.detail or s.status}")
        await self.log.start(did, "post", f"reportbot:{did}:post")
        try:
            result = await self.post(summary, lines)
        except Skipped as why:
            await self.log.end(did, "post", "skipped", str(why))
            return
        except PermanentError as err:
            await self.log.end(did, "post", "failed", str(err))
            log.error("the service desk summary of %s was not posted: %s", summary.period_end, err, extra=where)
            return
        await self.log.end(did, "post", "done", result.detail, result.url)

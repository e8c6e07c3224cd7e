"""Delivery after approval: email, customer channel, archive — each step exactly once.

A :class:`Deliverer` runs the steps of one approved report in order through a
:class:`DeliveryBackend` (``bot.outbox.OutboxBackend`` for the sandbox and the demo; the
Microsoft Graph backend is the production one). Each (draft, step) is recorded in the store
before the side effect (``running``) and after it (``done``, with its result). After a crash a
``running`` step is repeated with the same idempotency key — the backend must make a repeat a
no-op (the outbox writes the same file again; Graph looks the message up by its delivery id
first) — and a ``done`` step is never repeated. A step that fails for good stops that report's
delivery with the reason, which the review card shows; other reports go on.

Recipients, channel and archive folder come only from the customer's own configuration entry,
looked up by the draft's customer code in the store — never from card data.

Two audiences: the executive report goes by the steps above; when the customer has technical
recipients (the admins' saved ``recipients.technical``, else the file's), two more steps send the
technical variant — ``tech_email`` (a second email, its PDF attached) right after ``email`` and
``tech_archive`` (``<CODE>-weekly-<YYYY-MM-DD>-technical.pdf`` beside the executive one) after
``archive`` — each recorded and resumed like the others under its own key. The customer channel
gets the executive report only. Without technical recipients there are no technical steps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.links import ReportLinks
from reporting.config import Config, CustomerConfig
from reporting.drafts import DraftState
from reporting.models import Report, technical
from reporting.store import create_tables, writing
from reporting.telemetry import DELIVERIES

log = logging.getLogger(__name__)

STEPS = ("email", "channel", "archive")
"""The steps every delivery has (the executive report)."""
TECHNICAL_STEPS = ("tech_email", "tech_archive")
"""The technical report's steps, run only for a customer with technical recipients."""
ALL_STEPS = ("email", "tech_email", "channel", "archive", "tech_archive")
"""Every step in the order it runs (the emails first: a channel or archive failure stops the rest)."""
STEP_LABELS = {
    "email": "Email",
    "tech_email": "Technical report email",
    "channel": "Customer channel",
    "archive": "Archive",
    "tech_archive": "Technical report archive",
}

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("draft_id", String(36), nullable=False),
    Column("step", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("key", String(120), nullable=False),  # idempotency key for the backend
    Column("detail", Text),
    Column("url", Text),
    Column("attempts", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("draft_id", "step", name="pk_deliveries"),
)


delivery_leases = Table(
    "delivery_leases",
    metadata,
    Column("draft_id", String(36), primary_key=True),
    Column("owner", String(200), nullable=False),  # host:pid:random of the delivering process
    Column("lease_until", DateTime(timezone=True), nullable=False),
)

LEASE_SECONDS = 60.0
"""How long a delivery's lease lasts without renewal (renewed every third of it and before every step)."""


def delivery_owner() -> str:
    """Who holds a delivery lease: host, process and a random suffix (unique per process life)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def owner_is_gone(holder: str, me: str) -> bool:
    """Whether ``holder`` is known to be dead: a process of this host that no longer runs, or an
    earlier life of this very process slot (same host and pid, another suffix — a restarted
    container). A holder on another host is alive until its lease runs out."""
    host, _, rest = holder.partition(":")
    pid_text, _, suffix = rest.partition(":")
    my_host, _, my_rest = me.partition(":")
    my_pid = my_rest.partition(":")[0]
    if host != my_host or not pid_text.isdigit():
        return False
    if pid_text == my_pid:
        return holder != me
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's process): alive
        return False
    return False


class DeliveryBusy(Exception):  # noqa: N818 - a condition
    """Another live instance is delivering this draft now; nothing was done here."""

    def __init__(self, draft_id: str, holder: str):
        self.draft_id, self.holder = draft_id, holder
        super().__init__(f"draft {draft_id} is being delivered by {holder}")


class PermanentError(Exception):
    """A step that cannot succeed by retrying (403, 404, a bad address): delivery stops here."""


@dataclass(frozen=True)
class StepResult:
    detail: str
    url: str | None = None


@dataclass(frozen=True)
class Parcel:
    """What one report's delivery needs, all derived from the store and the customer's entry."""

    draft_id: str
    code: str
    customer: CustomerConfig
    period_end: date
    report: Report
    pdf: bytes
    approved_by: str
    #: the admins' settings (``bot.admin_settings``): the email's To list when set (else the
    #: customer's ``cto_email`` / ``account_owner_email``), the MSP's name when set
    recipients: tuple[str, ...] = ()
    msp_name: str = ""
    #: a test send (``bot.test_send``): only to ``recipients``, "TEST" in the subject and file name
    test: bool = False
    #: "technical": the technical report, to the technical ``recipients`` (``-technical`` in its name)
    variant: str = "executive"
    #: the email's "View online" / "Download PDF" links to this delivered PDF (``bot.published``)
    links: ReportLinks | None = None

    @property
    def file_name(self) -> str:
        word = self.report.period.file_word  # weekly | fortnightly | 30day | monthly
        suffix = "-technical" if self.variant == "technical" else ""
        return f"{self.code}-{word}-{self.period_end.isoformat()}{suffix}{'-TEST' if self.test else ''}.pdf"

    def key(self, step: str) -> str:
        return f"reportbot:{self.draft_id}:{step}"

    @property
    def archive_folder(self) -> str:
        """The customer's folder in the archive library (:func:`archive_folder`)."""
        return archive_folder(self.customer)


def archive_folder(customer: CustomerConfig) -> str:
    """A customer's folder in the archive library: ``sharepoint_folder``, else ``Customers/<CODE>``."""
    return customer.sharepoint_folder or f"Customers/{customer.code}"


class DeliveryBackend(Protocol):
    async def send_email(self, parcel: Parcel, key: str) -> StepResult: ...

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult: ...

    async def archive(self, parcel: Parcel, key: str) -> StepResult: ...


@dataclass(frozen=True)
class StepState:
    step: str
    status: str
    detail: str | None
    url: str | None
    attempts: int


class DeliveryLog:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    @classmethod
    async def open(cls, engine: AsyncEngine) -> DeliveryLog:
        await create_tables(engine, metadata)
        return cls(engine)

    async def steps(self, draft_id: str) -> dict[str, StepState]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(deliveries).where(deliveries.c.draft_id == draft_id))).all()
        return {r.step: StepState(r.step, r.status, r.detail, r.url, r.attempts) for r in rows}

    async def start(self, draft_id: str, step: str, key: str) -> None:
        now = datetime.now(UTC)
        try:
            async with writing(self.engine) as conn:
                await conn.execute(
                    deliveries.insert().values(
                        draft_id=draft_id, step=step, status="running", key=key, attempts=1, updated_at=now
                    )
                )
        except IntegrityError:
            async with writing(self.engine) as conn:
                await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.draft_id == draft_id, deliveries.c.step == step)
                    .values(status="running", attempts=deliveries.c.attempts + 1, updated_at=now)
                )

    async def end(self, draft_id: str, step: str, status: str, detail: str, url: str | None = None) -> None:
        async with writing(self.engine) as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.draft_id == draft_id, deliveries.c.step == step)
                .values(status=status, detail=detail[:1000], url=url, updated_at=datetime.now(UTC))
            )

    # -- the per-draft lease: one instance delivers a draft at a time
    async def take_lease(self, draft_id: str, owner: str, seconds: float) -> str | None:
        """Hold ``draft_id``'s delivery for ``seconds``. None when this owner now holds it (new,
        its own, expired, or its holder known dead); otherwise the live holder."""
        now = datetime.now(UTC)
        until = now + timedelta(seconds=seconds)
        try:
            async with writing(self.engine) as conn:
                await conn.execute(delivery_leases.insert().values(draft_id=draft_id, owner=owner, lease_until=until))
            return None
        except IntegrityError:
            pass  # someone holds it (perhaps this owner, or a dead one): look at the holder below
        async with writing(self.engine) as conn:
            row = (await conn.execute(select(delivery_leases).where(delivery_leases.c.draft_id == draft_id))).first()
            if row is None:  # released meanwhile
                await conn.execute(delivery_leases.insert().values(draft_id=draft_id, owner=owner, lease_until=until))
                return None
            holder, held_until = row.owner, row.lease_until
            if held_until.tzinfo is None:
                held_until = held_until.replace(tzinfo=UTC)
            if holder != owner and held_until >= now and not owner_is_gone(holder, owner):
                return str(holder)
            await conn.execute(
                update(delivery_leases)
                .where(
                    delivery_leases.c.draft_id == draft_id,
                    delivery_leases.c.owner == holder,
                )
                .values(owner=owner, lease_until=until)
            )
        if holder != owner:
            log.warning("took over the delivery of draft %s from %s (lease expired or process gone)", draft_id, holder)
        return None

    async def renew_lease(self, draft_id: str, owner: str, seconds: float) -> bool:
        """False when the lease is no longer this owner's (it was paused past it and taken over)."""
        async with writing(self.engine) as conn:
            res = await conn.execute(
                update(delivery_leases)
                .where(
                    delivery_leases.c.draft_id == draft_id,
                    delivery_leases.c.owner == owner,
                )
                .values(lease_until=datetime.now(UTC) + timedelta(seconds=seconds))
            )
        return res.rowcount == 1

    async def release_lease(self, draft_id: str, owner: str) -> None:
        async with writing(self.engine) as conn:
            await conn.execute(
                delivery_leases.delete().where(delivery_leases.c.draft_id == draft_id, delivery_leases.c.owner == owner)
            )

    async def unfinished_steps(self, draft_id: str) -> bool:
        """Whether ``draft_id`` has a step left ``running``."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(deliveries.c.step)
                    .where(deliveries.c.draft_id == draft_id, deliveries.c.status == "running")
                    .limit(1)
                )
            ).first()
        return row is not None

    async def unfinished(self) -> list[str]:
        """Drafts with a step left ``running`` (a crash mid-delivery): resume them on start."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(deliveries.c.draft_id).where(deliveries.c.status == "running").distinct())
            ).all()
        return [r[0] for r in rows]


TechnicalPdf = Callable[[Report], Awaitable[bytes]]
"""Renders the technical variant of a report (``reporting.models.technical`` applied) as PDF bytes."""


def technical_recipients(customer: CustomerConfig, saved: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Who receives the technical report: the admins' saved list, else the file's
    ``recipients.technical``; empty: nobody (no technical steps)."""
    return saved or customer.recipients.technical


class Deliverer:
    """Runs one draft's delivery under its lease (:meth:`DeliveryLog.take_lease`): two instances
    — one resuming after a restart, one still delivering — never run the same draft's steps at
    once, which the backends' look-ups before a send could not make safe on their own (both would
    look, find nothing, and send).

    ``technical_pdf``: renders the technical report's PDF when a technical step runs (the service
    passes the engine's PDF workers and branding); default: ``reporting.pdf`` in a thread, with
    the configuration's branding and the admins' MSP name."""

    def __init__(
        self,
        config: Config,
        log_: DeliveryLog,
        backend: DeliveryBackend,
        *,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        settings: Any = None,
        technical_pdf: TechnicalPdf | None = None,
        links: Callable[[Parcel], ReportLinks | None] | None = None,
    ):
        self.config = config
        self.technical_pdf = technical_pdf
        self.links = links  # bot.published.CustomerLinks when [teams] public_url is set: the email's links
        self.settings = settings  # bot.admin_settings.LiveSettings: the admins' recipients and MSP name
        self.log = log_
        self.backend = backend
        self.owner = owner or delivery_owner()
        self.lease_seconds = lease_seconds

    async def deliver(
        self,
        draft_id: str,
        code: str,
        period_end: date,
        report: Report,
        pdf: bytes,
        approved_by: str,
        on_step: Callable[[str], Awaitable[None]] | None = None,
    ) -> dict[str, StepState]:
        """Run the steps not yet done, in order. Returns every step's state. ``on_step(step)``
        runs after each step's outcome is recorded (the review card shows it); its failure is
        logged and never stops the delivery. Raises :class:`DeliveryBusy` (nothing done) when
        another live instance holds the draft's lease, or took it over meanwhile."""
        holder = await self.log.take_lease(draft_id, self.owner, self.lease_seconds)
        if holder is not None:
            raise DeliveryBusy(draft_id, holder)
        beat = asyncio.ensure_future(self._keep_lease(draft_id))
        try:
            return await self._steps(draft_id, code, period_end, report, pdf, approved_by, on_step)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            try:
                await self.log.release_lease(draft_id, self.owner)
            except Exception:  # the store went away: the lease runs out by itself
                log.warning("could not release the delivery lease of draft %s", draft_id, exc_info=True)

    async def _keep_lease(self, draft_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.log.renew_lease(draft_id, self.owner, self.lease_seconds)
            except Exception:  # checked again before the next step
                log.warning("could not renew the delivery lease of draft %s", draft_id, exc_info=True)

    async def _steps(
        self,
        draft_id: str,
        code: str,
        period_end: date,
        report: Report,
        pdf: bytes,
        approved_by: str,
        on_step: Callable[[str], Awaitable[None]] | None,
    ) -> dict[str, StepState]:
        customer = self.config.customer(code)  # from configuration, by the draft's own code
        recipients: tuple[str, ...] = ()
        saved_technical: tuple[str, ...] = ()
        msp_name = ""
        if self.settings is not None:  # the admins' settings as saved now, over the file's values
            await self.settings.refresh()
            recipients, msp_name = self.settings.executive(code), self.settings.now.msp_name
            technical_of = getattr(self.settings, "technical", None)  # duck-typed settings may predate it
            saved_technical = tuple(technical_of(code)) if technical_of is not None else ()
        parcel = Parcel(draft_id, code, customer, period_end, report, pdf, approved_by, recipients, msp_name)
        if self.links is not None:
            parcel = replace(parcel, links=self.links(parcel))
        tech_to = technical_recipients(customer, saved_technical)
        tech_parcels: list[Parcel] = []  # the technical parcel, rendered when its first step runs

        async def tech_parcel() -> Parcel:
            if not tech_parcels:
                tech_pdf = await self._technical_pdf(report, msp_name)
                # no links: they open the stored (executive) report, not this PDF
                tech_parcels.append(replace(parcel, pdf=tech_pdf, recipients=tech_to, variant="technical", links=None))
            return tech_parcels[0]

        async def tech_email(_: Parcel, key: str) -> StepResult:
            return await self.backend.send_email(await tech_parcel(), key)

        async def tech_archive(_: Parcel, key: str) -> StepResult:
            return await self.backend.archive(await tech_parcel(), key)

        calls: dict[str, Callable[[Parcel, str], Awaitable[StepResult]]] = {
            "email": self.backend.send_email,
            "tech_email": tech_email,
            "channel": self.backend.post_channel,
            "archive": self.backend.archive,
            "tech_archive": tech_archive,
        }
        done = await self.log.steps(draft_id)
        plan = [s for s in ALL_STEPS if s in STEPS or tech_to]
        for step in TECHNICAL_STEPS:
            if not tech_to and step in done and done[step].status == "running":
                # begun for recipients since removed from the settings: nothing to send it to now
                await self.log.end(draft_id, step, "done", "not sent: no technical recipients are set any more")
        for step in plan:
            if step in done and done[step].status == "done":
                continue
            if not await self.log.renew_lease(draft_id, self.owner, self.lease_seconds):
                # paused past the lease, and another instance took the delivery over (and may have
                # finished it): what it did is recorded; this one does nothing more
                raise DeliveryBusy(draft_id, "another instance, which took the delivery over")
            key = parcel.key(step)
            where = {"customer": code, "period": period_end.isoformat(), "draft_id": draft_id, "step": step}
            await self.log.start(draft_id, step, key)
            t0 = time.perf_counter()
            try:
                result = await calls[step](parcel, key)
            except PermanentError as err:
                await self.log.end(draft_id, step, "failed", str(err))
                DELIVERIES.labels(step, "failed").inc()
                log.error("delivery of %s stopped at %s: %s", code, step, err, extra=where)
                break
            except Exception as err:
                DELIVERIES.labels(step, "error").inc()  # transient: the step stays running and is resumed
                log.warning(
                    "delivery of %s interrupted at %s: %s: %s", code, step, type(err).__name__, err, extra=where
                )
                raise
            await self.log.end(draft_id, step, "done", result.detail, result.url)
            DELIVERIES.labels(step, "done").inc()
            log.info(
                "delivery of %s: %s done",
                code,
                step,
                extra={**where, "duration_ms": round(1000 * (time.perf_counter() - t0))},
            )
            if on_step is not None and step != plan[-1]:  # after the last one the handoff's state change shows it
                try:
                    await on_step(step)
                except Exception:
                    log.warning("could not show the %s step of %s", step, code, exc_info=True)
        return await self.log.steps(draft_id)

    async def _technical_pdf(self, report: Report, msp_name: str) -> bytes:
        variant = technical(report)
        if self.technical_pdf is not None:
            return await self.technical_pdf(variant)
        from reporting.pdf import render_pdf

        branding = self.config.branding()
        if msp_name:
            branding = replace(branding, msp_name=msp_name)
        return await asyncio.to_thread(render_pdf, variant, branding)


class DeliveryHandoff:
    """``bot.review``'s hand-off: deliver, and move the draft to ``delivering`` → ``delivered``
    (or ``failed`` with the step's reason)."""

    def __init__(self, deliverer: Deliverer, state: Any, on_progress: Callable[[str], Awaitable[None]] | None = None):
        self.deliverer = deliverer
        self.state = state  # bot.state.ReviewState
        self.on_progress = on_progress  # (draft id): a step is done; the bot edits the review card

    async def __call__(self, draft: Any, report: Report, pdf: bytes) -> None:
        await self.state.set_state(draft.id, DraftState.DELIVERING)
        progress = self.on_progress
        try:
            steps = await self.deliverer.deliver(
                draft.id,
                draft.customer_code,
                draft.period_end,
                report,
                pdf,
                draft.decided_by or "",
                on_step=(lambda step: progress(draft.id)) if progress else None,
            )
        except DeliveryBusy as busy:  # that instance records the outcome; if it dies, the resume finds it stalled
            log.info("not delivering %s here: %s", draft.customer_code, busy)
            return
        failed = [s for s in steps.values() if s.status == "failed"]
        if failed:
            await self.state.set_state(
                draft.id, DraftState.FAILED, reason=f"{STEP_LABELS[failed[0].step]}: {failed[0].detail}"[:500]
            )
        elif all(s in steps for s in STEPS) and all(s.status == "done" for s in steps.values()):
            # every step this delivery recorded (the technical ones when it had any) is done
            await self.state.set_state(draft.id, DraftState.DELIVERED)

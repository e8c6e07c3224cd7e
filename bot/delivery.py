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
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from reporting.config import Config, CustomerConfig
from reporting.drafts import DraftState
from reporting.models import Report
from reporting.store import create_tables, writing

log = logging.getLogger(__name__)

STEPS = ("email", "channel", "archive")
STEP_LABELS = {"email": "Email", "channel": "Customer channel", "archive": "Archive"}

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

    @property
    def file_name(self) -> str:
        return f"{self.code}-weekly-{self.period_end.isoformat()}.pdf"

    def key(self, step: str) -> str:
        return f"reportbot:{self.draft_id}:{step}"

    @property
    def archive_folder(self) -> str:
        """The customer's folder in the archive library (``sharepoint_folder``, else ``Customers/<CODE>``)."""
        return self.customer.sharepoint_folder or f"Customers/{self.code}"


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
                await conn.execute(deliveries.insert().values(draft_id=draft_id, step=step, status="running", key=key,
                                                              attempts=1, updated_at=now))
        except IntegrityError:
            async with writing(self.engine) as conn:
                await conn.execute(update(deliveries).where(deliveries.c.draft_id == draft_id, deliveries.c.step == step)
                                   .values(status="running", attempts=deliveries.c.attempts + 1, updated_at=now))

    async def end(self, draft_id: str, step: str, status: str, detail: str, url: str | None = None) -> None:
        async with writing(self.engine) as conn:
            await conn.execute(update(deliveries).where(deliveries.c.draft_id == draft_id, deliveries.c.step == step)
                               .values(status=status, detail=detail[:1000], url=url, updated_at=datetime.now(UTC)))

    async def unfinished_steps(self, draft_id: str) -> bool:
        """Whether ``draft_id`` has a step left ``running``."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(deliveries.c.step).where(
                deliveries.c.draft_id == draft_id, deliveries.c.status == "running").limit(1))).first()
        return row is not None

    async def unfinished(self) -> list[str]:
        """Drafts with a step left ``running`` (a crash mid-delivery): resume them on start."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(deliveries.c.draft_id).where(deliveries.c.status == "running").distinct())).all()
        return [r[0] for r in rows]


class Deliverer:
    def __init__(self, config: Config, log_: DeliveryLog, backend: DeliveryBackend):
        self.config = config
        self.log = log_
        self.backend = backend

    async def deliver(self, draft_id: str, code: str, period_end: date, report: Report, pdf: bytes, approved_by: str,
                      on_step: Callable[[str], Awaitable[None]] | None = None) -> dict[str, StepState]:
        """Run the steps not yet done, in order. Returns every step's state. ``on_step(step)``
        runs after each step's outcome is recorded (the review card shows it); its failure is
        logged and never stops the delivery."""
        customer = self.config.customer(code)  # from configuration, by the draft's own code
        parcel = Parcel(draft_id, code, customer, period_end, report, pdf, approved_by)
        calls = {"email": self.backend.send_email, "channel": self.backend.post_channel, "archive": self.backend.archive}
        done = await self.log.steps(draft_id)
        for step in STEPS:
            if step in done and done[step].status == "done":
                continue
            key = parcel.key(step)
            await self.log.start(draft_id, step, key)
            try:
                result = await calls[step](parcel, key)
            except PermanentError as err:
                await self.log.end(draft_id, step, "failed", str(err))
                log.error("delivery of %s stopped at %s: %s", code, step, err)
                break
            await self.log.end(draft_id, step, "done", result.detail, result.url)
            if on_step is not None and step != STEPS[-1]:  # after the last one the handoff's state change shows it
                try:
                    await on_step(step)
                except Exception:
                    log.warning("could not show the %s step of %s", step, code, exc_info=True)
        return await self.log.steps(draft_id)


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
        steps = await self.deliverer.deliver(draft.id, draft.customer_code, draft.period_end, report, pdf,
                                             draft.decided_by or "",
                                             on_step=(lambda step: progress(draft.id)) if progress else None)
        failed = [s for s in steps.values() if s.status == "failed"]
        if failed:
            await self.state.set_state(draft.id, DraftState.FAILED, reason=f"{STEP_LABELS[failed[0].step]}: {failed[0].detail}"[:500])
        elif all(s in steps and steps[s].status == "done" for s in STEPS):
            await self.state.set_state(draft.id, DraftState.DELIVERED)

"""The review workflow, without Teams: drafts, commentary, approve, regenerate, skip.

``bot.handler`` turns Teams activities into calls here and results into cards. Every action
names the draft and the version its card showed; the draft store's compare-and-set
(``bot.state.ReviewState.change``) decides, so a stale card or a second click cannot undo or
repeat anything:

- ``save``: stores the commentary verbatim with its author and time, re-renders the draft
  (Markdown + PDF with the commentary), version + 1;
- ``approve``: configured approvers only; freezes the draft (state ``approved``, who, when),
  renders the final PDF with the commentary and hands it to delivery; a repeated approve, or an
  approve of an already decided draft, changes nothing;
- ``regenerate``: collects the customer's week again (commentary kept), version + 1;
- ``skip``: state ``skipped`` with the engineer's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

from bot.state import Draft, ReviewState
from cards.review import MAX_SKIP_REASON
from reporting import snapshot
from reporting.collect import SourceBreaker
from reporting.config import Config, CustomerConfig
from reporting.drafts import DECIDED, EDITABLE, DraftState
from reporting.engine import Engine
from reporting.html import render_html
from reporting.models import PERIOD_FILE_WORDS, Commentary, Report
from reporting.output import report_paths
from reporting.period import day_in
from reporting.store import HistoryStore
from reporting.telemetry import APPROVE_LATENCY
from reporting.text import CommentaryTooLong, clean_commentary, neutral

log = logging.getLogger(__name__)


ANSWER_FIRST_SECONDS = 2.0
"""How long a final render waits for card actions being answered to finish (see Review.answering)."""


class ReviewError(Exception):
    """An action that cannot be done; ``str()`` is shown to the engineer."""


class StaleVersion(ReviewError):
    """The card was out of date; ``current`` is the draft as it is now."""

    def __init__(self, current: Draft):
        self.current = current
        super().__init__(
            f"This card was out of date (version {current.version} is current); here is the current draft."
        )


class Handoff(Protocol):
    """Delivery: given an approved draft and its final report and PDF, deliver it."""

    async def __call__(self, draft: Draft, report: Report, pdf: bytes) -> None: ...


@dataclass(frozen=True)
class User:
    aad_object_id: str
    name: str

    @property
    def label(self) -> str:
        return self.name or self.aad_object_id or "unknown user"


class Review:
    def __init__(
        self,
        config: Config,
        engine: Engine,
        history: HistoryStore,
        state: ReviewState,
        out: Path,
        handoff: Handoff,
        may_approve: Callable[[str | None], bool],
        week_day: Callable[[], date],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        backfill_weeks: int = 0,
    ):
        self.config = config
        self.engine = engine
        self.history = history
        self.state = state
        self.out = out
        self.handoff = handoff
        self.may_approve = may_approve
        self.week_day = week_day
        self.now = now
        self.backfill_weeks = backfill_weeks  # earlier weeks to store first when missing (deltas need a baseline)
        self._locks: dict[str, asyncio.Lock] = {}
        self._finishing = asyncio.Semaphore(2)  # final renders + hand-offs, two at a time (two PDF workers)
        self.background: set[asyncio.Task[None]] = set()
        self.finishing: dict[str, asyncio.Task[None]] = {}  # draft id -> its final render + hand-off
        self._answering = 0  # card actions being answered right now
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the answer to a card action: final renders wait (up to ``ANSWER_FIRST_SECONDS``)
        until no action is being answered, so 50 engineers approving at once are each answered
        before the loop, the store's single writer and the PDF workers are spent on final PDFs
        that are delivered in the background anyway."""
        self._answering += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if not self._answering:
                self._quiet.set()

    async def _after_answers(self) -> None:
        if not self._quiet.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), ANSWER_FIRST_SECONDS)

    # -- reading
    def customer(self, code: str) -> CustomerConfig:
        return self.config.customer(code)

    async def report(self, draft: Draft) -> Report:
        payload = await self.history.get(draft.customer_code, draft.period_end, draft.period_kind)
        if payload is None:
            raise ReviewError(f"the draft of {draft.customer_code} for {draft.period_end} has no stored report")
        report = snapshot.from_dict(payload)
        if draft.commentary and draft.commentary_at:
            report = replace(
                report, commentary=Commentary(draft.commentary, draft.commentary_by or "", draft.commentary_at)
            )
        return report

    def pdf_path(self, draft: Draft) -> Path:
        word = PERIOD_FILE_WORDS[draft.period_kind]
        return report_paths(self.out, draft.customer_code, draft.period_end.isoformat(), word)["pdf"]

    async def pdf(self, draft_id: str, version: int) -> bytes | None:
        """The draft's PDF, only for its current version (an old link shows nothing)."""
        draft = await self.state.get(draft_id)
        if draft is None or draft.version != version:
            return None
        return await self.stored_pdf(draft)

    async def html(self, draft_id: str, version: int) -> str | None:
        """The draft's report as a web page (``reporting.html``), rendered from the stored report
        with its commentary, only for its current version; None for an unknown or stale link."""
        draft = await self.state.get(draft_id)
        if draft is None or draft.version != version:
            return None
        try:
            report = await self.report(draft)
        except ReviewError:
            return None
        return await asyncio.to_thread(render_html, report, self.engine.branding)

    async def stored_pdf(self, draft: Draft) -> bytes | None:
        """The last PDF rendered for the draft's customer-week, from the store (so any instance
        has it), else from this instance's ``--out`` (a store written before PDFs were kept)."""
        stored = await self.history.artefact(draft.customer_code, draft.period_end, "pdf", draft.period_kind)
        if stored is not None:
            return stored.content
        path = self.pdf_path(draft)
        return await asyncio.to_thread(path.read_bytes) if path.exists() else None

    # -- actions
    async def run(self, code: str, week_day: date | None = None, breaker: SourceBreaker | None = None) -> Draft:
        """Collect and render ``code``'s period that contains ``week_day`` (default: its newest
        period that has ended, :meth:`Engine.batch_period`); the draft at its next version (or
        as it is, if decided). ``breaker``: the Monday batch's memory of sources that hang (a
        typed ``run`` asks every source afresh)."""
        customer = self.customer(code)
        if week_day is None:
            week_day = day_in(self.engine.batch_period(customer, self.week_day()))
        period = self.engine.period_for(customer, week_day)
        async with self._lock(code):
            existing = await self.state.for_week(code, period.end_date, period.kind)
            if existing is not None and not existing.editable:
                return existing
            if self.backfill_weeks:
                await self.engine.backfill(customer, week_day, self.backfill_weeks, breaker)
            result = await self.engine.draft(customer, week_day, self.out, breaker)
            draft = await self.state.upsert_drafted(code, period.end_date, period.kind)
            if draft.commentary:  # a regenerated draft keeps the engineer's words: render them in
                await self.engine.write(await self.report(draft), self.out)
            log.info(
                "drafted %s for %s (version %d, %d flags)",
                code,
                period.end_date,
                draft.version,
                len(result.report.flags),
            )
            return draft

    async def save(self, draft_id: str, version: int, commentary: str, user: User) -> Draft:
        # the store boundary: no NUL (PostgreSQL text cannot hold it), no controls or bidi
        # overrides, and the one commentary limit, with a message that says by how much
        try:
            commentary = clean_commentary(commentary)
        except CommentaryTooLong as exc:
            raise ReviewError(str(exc)) from None
        draft = await self._current(draft_id, version)
        changed = await self.state.change(
            draft_id,
            version,
            state=DraftState.SAVED,
            commentary=commentary,
            commentary_by=neutral(user.label),
            commentary_at=self.now(),
        )
        if changed is None:
            raise StaleVersion(await self._must(draft_id))
        await self.engine.write(await self.report(changed), self.out)
        log.info("commentary saved on %s by %s (%d characters)", draft.customer_code, user.label, len(commentary))
        return changed

    async def approve(
        self, draft_id: str, version: int, user: User, commentary: str | None = None, current: Draft | None = None
    ) -> tuple[Draft, bool]:
        """(draft, started): ``started`` is False when nothing was done (already decided).
        ``current``: the draft as the caller just read it (saves reading it again; the
        compare-and-set below decides either way)."""
        draft = current if current is not None and current.id == draft_id else await self._must(draft_id)
        if draft.state in DECIDED:
            return draft, False  # a repeated approve is a no-op, never a second delivery
        if not self.may_approve(user.aad_object_id):
            raise ReviewError("Only the configured approvers may approve this report.")
        if commentary is not None and neutral(commentary, multiline=True) != draft.commentary:
            draft = await self.save(draft_id, version, commentary, user)
            version = draft.version
        changed = await self.state.change(
            draft_id, version, state=DraftState.APPROVED, decided_by=user.label, decided_at=self.now()
        )
        if changed is None:
            current = await self._must(draft_id)
            if current.state in DECIDED:
                return current, False
            raise StaleVersion(current)
        if changed.created_at is not None and changed.decided_at is not None:
            APPROVE_LATENCY.observe(max(0.0, (changed.decided_at - changed.created_at).total_seconds()))
        log.info(
            "draft of %s approved by %s",
            changed.customer_code,
            user.label,
            extra={
                "customer": changed.customer_code,
                "period": changed.period_end.isoformat(),
                "draft_id": changed.id,
                "step": "approve",
            },
        )
        self._start_finish(changed)
        return changed, True

    async def retry_delivery(self, draft_id: str, version: int, user: User) -> tuple[Draft, bool]:
        """A failed delivery, run again: the steps not done are repeated with their same keys
        (each backend makes a repeat harmless; a done step is never repeated). (draft, started):
        ``started`` is False when the delivery is not failed (any more): nothing is done."""
        draft = await self._must(draft_id)
        if draft.state != DraftState.FAILED:
            return draft, False
        if not self.may_approve(user.aad_object_id):
            raise ReviewError("Only the configured approvers may retry a delivery.")
        changed = await self.state.change(
            draft_id, version, allowed=(DraftState.FAILED,), state=DraftState.APPROVED, reason=None
        )
        if changed is None:
            current = await self._must(draft_id)
            if current.state != DraftState.FAILED:
                return current, False
            raise StaleVersion(current)
        log.info("%s retries the delivery of %s", user.label, draft.customer_code)
        self._start_finish(changed)
        return changed, True

    def _start_finish(self, draft: Draft) -> None:
        task = asyncio.ensure_future(self._finish(draft))
        self.background.add(task)
        self.finishing[draft.id] = task
        task.add_done_callback(self.background.discard)
        task.add_done_callback(lambda t: self.finishing.pop(draft.id, None))

    async def regenerate(self, draft_id: str, version: int, user: User) -> Draft:
        draft = await self._current(draft_id, version)
        log.info("%s regenerates %s", user.label, draft.customer_code)
        return await self.run(draft.customer_code)

    async def skip(self, draft_id: str, version: int, reason: str, user: User) -> Draft:
        reason = neutral(reason).strip()  # a NUL would fail the save on PostgreSQL
        if not reason:
            raise ReviewError("Say why this week is skipped.")
        if len(reason) > MAX_SKIP_REASON:
            raise ReviewError(f"The reason is {len(reason)} characters; the limit is {MAX_SKIP_REASON}.")
        await self._current(draft_id, version)
        changed = await self.state.change(
            draft_id, version, state=DraftState.SKIPPED, decided_by=user.label, decided_at=self.now(), reason=reason
        )
        if changed is None:
            raise StaleVersion(await self._must(draft_id))
        return changed

    async def wait_background(self) -> None:
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)

    # -- internals
    async def finish_again(self, draft: Draft) -> None:
        """The final render and hand-off of an approved draft whose process stopped before handing
        it off (the delivery resumer, at start). A draft already finishing here is left alone."""
        if draft.id in self.finishing:
            return
        self._start_finish(draft)
        await asyncio.gather(self.finishing.get(draft.id) or asyncio.sleep(0), return_exceptions=True)

    async def _finish(self, draft: Draft) -> None:
        """After approval: the final PDF with the commentary, then delivery (in the background)."""
        try:
            async with self._finishing:
                await self._after_answers()
                report = await self.report(draft)
                await self._after_answers()
                result = await self.engine.write(report, self.out, kind="final")
                pdf = await asyncio.to_thread(result.paths["pdf"].read_bytes)
            await self.handoff(draft, report, pdf)
        except Exception as err:  # a background step: record it on the draft, never lose it silently
            log.exception("delivery of %s failed", draft.customer_code)
            await self.state.set_state(draft.id, DraftState.FAILED, reason=f"{type(err).__name__}: {err}"[:500])

    async def _must(self, draft_id: str) -> Draft:
        draft = await self.state.get(draft_id)
        if draft is None:
            raise ReviewError("This draft does not exist (any more).")
        return draft

    async def _current(self, draft_id: str, version: int) -> Draft:
        draft = await self._must(draft_id)
        if draft.version != version:
            raise StaleVersion(draft)
        if draft.state not in EDITABLE:
            raise ReviewError(f"This report is already {draft.state}; it can no longer be changed.")
        return draft

    def _lock(self, code: str) -> asyncio.Lock:
        return self._locks.setdefault(code, asyncio.Lock())

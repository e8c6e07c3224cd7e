"""The Monday batch: every customer's draft for the last complete week, exactly once.

All customers run concurrently (bounded by ``[schedule] concurrency``; an instance claims a
customer-week only when it has a free slot, so several instances share the work). Each customer-week is
claimed in the store first (``scheduler.claims``), so several bot instances sharing the store,
or a restarted one, never draft the same customer-week twice; a claim whose holder died is
taken over once its lease expires, so a batch always finishes. Each draft is handed to
``on_drafted`` as soon as it is ready (the bot posts its review card), and once every customer
of the week is finished, ``on_complete`` runs exactly once across instances (the roll-up), and
then ``after_rollup`` (the MSP's own service-desk summaries, delivered), once across instances too.

What makes the drafts and posts cards is injected: this module knows neither Teams nor the
review workflow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from reporting.collect import SourceBreaker
from reporting.telemetry import BATCH_DURATION
from scheduler.claims import FINISHED, Claims

log = logging.getLogger(__name__)

ROLLUP = "__rollup__"  # the claim that makes the roll-up post happen once per week
INTERNAL = "__internal__"  # the claim that makes the internal summaries' delivery run once per week


class ClaimLost(Exception):  # noqa: N818 - a condition, like asyncio.CancelledError
    """Another instance holds the customer-week now; this one must not post."""


@dataclass
class BatchResult:
    period_end: date | None = None
    drafted: list[str] = field(default_factory=list)  # by this instance
    failed: list[str] = field(default_factory=list)  # by this instance
    skipped: list[str] = field(default_factory=list)  # finished before, or by another instance
    rollup_posted: bool = False
    internal_done: bool = False  # this instance ran ``after_rollup`` to its end


class BatchRunner:
    def __init__(
        self,
        claims: Claims,
        codes: Callable[[], Sequence[str]],
        period_end: Callable[[str, date], date],
        make_draft: Callable[[str, date], Awaitable[Any]],
        on_drafted: Callable[[str, Any], Awaitable[None]],
        on_complete: Callable[[date, list[str]], Awaitable[None]],
        concurrency: int = 6,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        period_kind: Callable[[str], str] = lambda _code: "week",
        rollup_end: Callable[[date], date] | None = None,
        poll_seconds: float | None = None,
        post_retry_seconds: float = 5.0,
        post_retry_max_seconds: float = 300.0,
        after_rollup: Callable[[date], Awaitable[None]] | None = None,
    ):
        self.after_rollup = after_rollup  # (week day): after the roll-up, once per week across instances
        self.post_retry_seconds = post_retry_seconds  # a card Teams did not take: first wait, doubling
        self.post_retry_max_seconds = post_retry_max_seconds
        self.claims = claims
        self.codes = codes
        self.period_end = period_end
        self.period_kind = period_kind  # week | fortnight | 30d | month: a claim is per customer-period
        self.rollup_end = rollup_end  # the week the roll-up is for (default: the first customer's period end)
        self._kinds: dict[str, str] = {}
        self.make_draft = make_draft
        self.on_drafted = on_drafted
        self.on_complete = on_complete
        self.concurrency = concurrency
        self.now = now
        lease = claims.lease.total_seconds()
        self.heartbeat = max(0.5, lease / 3)
        self.poll = poll_seconds if poll_seconds is not None else max(0.2, min(5.0, lease / 4))
        self.progress: dict[str, str] = {}  # code -> queued | collecting | drafted | failed | elsewhere
        self.breaker = SourceBreaker()  # this batch's hung sources: ``make_draft`` passes it to the engine
        self._lock = asyncio.Lock()

    async def run(self, week_day: date, only: Callable[[str], bool] | None = None, rollup: bool = True) -> BatchResult:
        """Draft every customer of ``week_day``'s batch (``period_end`` says which period each one's
        is) that no instance has finished; wait for the ones other instances hold (taking them
        over if their lease runs out); then the roll-up (unless ``rollup`` is False). ``only``:
        the customers this run is for (the daily run of the periods that end on other days)."""
        async with self._lock:  # one batch at a time in this instance (a cron fire and a catch-up)
            t0 = time.perf_counter()
            try:
                return await self._run(week_day, only, rollup)
            finally:
                BATCH_DURATION.observe(time.perf_counter() - t0)

    async def _run(self, week_day: date, only: Callable[[str], bool] | None, rollup: bool) -> BatchResult:
        codes = [c for c in self.codes() if only is None or only(c)]
        result = BatchResult()
        self._kinds = {c: self.period_kind(c) for c in codes}
        ends = {c: self.period_end(c, week_day) for c in codes}
        result.period_end = self.rollup_end(week_day) if self.rollup_end else next(iter(ends.values()), None)
        self.progress = {c: "queued" for c in codes}
        # a source that runs out its timeout for one customer is not waited for again in this
        # batch: with a hung Zabbix the Monday batch ends about one timeout later, not one per customer
        self.breaker = SourceBreaker()
        running: dict[str, asyncio.Task[None]] = {}
        pending = set(codes)

        async def work(code: str) -> None:
            await self._one(code, ends[code], week_day, result)

        try:
            while pending or running:
                for code in sorted(pending):
                    if len(running) >= self.concurrency:
                        break  # claim only what this instance can start now: the rest stays free for others
                    claim = await self.claims.get(code, ends[code], self._kind(code))
                    if claim is not None and claim.status in FINISHED:
                        pending.discard(code)
                        if code not in result.drafted and code not in result.failed:
                            result.skipped.append(code)
                            self.progress[code] = claim.status
                        continue
                    if await self.claims.claim(code, ends[code], self.now(), self._kind(code)):
                        pending.discard(code)
                        running[code] = asyncio.ensure_future(work(code))
                    else:
                        self.progress[code] = "on another instance"  # another bot instance holds it (for now)
                if running:
                    done, _ = await asyncio.wait(
                        running.values(), timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                    )
                    for code in [c for c, t in running.items() if t in done]:
                        running.pop(code).result()
                elif pending:
                    await asyncio.sleep(self.poll)
        finally:  # cancelled (shutdown) or failed: stop this batch's workers and their heartbeats;
            # their claims then expire and another instance takes them over
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
        if result.period_end is not None and rollup:
            result.rollup_posted = await self._rollup(result.period_end, codes)
            if self.after_rollup is not None:
                result.internal_done = await self._after_rollup(result.period_end, week_day)
        log.info(
            "batch for the week ending %s: %d drafted here, %d failed here, %d done before or elsewhere",
            result.period_end,
            len(result.drafted),
            len(result.failed),
            len(result.skipped),
            extra={"period": str(result.period_end), "step": "batch"},
        )
        return result

    async def _one(self, code: str, period_end: date, week_day: date, result: BatchResult) -> None:
        self.progress[code] = "collecting"
        if not await self._holding(code, period_end, self._draft_and_post(code, period_end, week_day, result)):
            self.progress[code] = "on another instance"

    async def _draft_and_post(self, code: str, period_end: date, week_day: date, result: BatchResult) -> None:
        try:
            draft = await self.make_draft(code, week_day)
        except Exception as err:  # one customer's failure must not stop the batch
            log.exception(
                "batch: %s failed", code, extra={"customer": code, "period": str(period_end), "step": "draft"}
            )
            await self.claims.finish(
                code, period_end, "failed", self.now(), f"{type(err).__name__}: {err}"[:500], self._kind(code)
            )
            self.progress[code] = "failed"
            result.failed.append(code)
            return
        self.progress[code] = "posting"
        await self._until_done(code, period_end, lambda: self.on_drafted(code, draft), f"{code}'s review card")
        if not await self.claims.finish(code, period_end, "drafted", self.now(), period_kind=self._kind(code)):
            log.warning("batch: the claim on %s was taken over while its card was posted", code)
        self.progress[code] = "drafted"
        result.drafted.append(code)

    async def _until_done(self, code: str, period_end: date, attempt: Callable[[], Awaitable[None]], what: str) -> None:
        """``attempt()`` (a post to Teams) until it succeeds, with backoff, while holding the
        claim: the claim is renewed (which proves it is still this instance's) right before
        every attempt, and a lost claim ends the work (:class:`ClaimLost`) with nothing posted."""
        delay = self.post_retry_seconds
        while True:
            if not await self.claims.renew(code, period_end, self.now(), self._kind(code)):
                raise ClaimLost(code)
            try:
                await attempt()
                return
            except Exception as err:  # kept and tried again: a card is never dropped
                self.progress[code] = f"not posted yet: {err}"[:300]
                log.warning(
                    "batch: %s not posted (%s); trying again in %.0f s",
                    what,
                    err,
                    delay,
                    extra={"customer": code, "period": str(period_end), "step": "post_card"},
                )
            await asyncio.sleep(delay)
            delay = min(self.post_retry_max_seconds, delay * 2)

    async def _holding(self, code: str, period_end: date, job: Awaitable[None]) -> bool:
        """Run ``job`` while renewing the claim on (code, period_end); if the heartbeat finds the
        claim lost (this instance was paused past its lease and another took over), the job is
        cancelled. False when the claim was lost."""
        work = asyncio.ensure_future(job)
        beat = asyncio.ensure_future(self._heartbeat(code, period_end))
        try:
            done, _ = await asyncio.wait({work, beat}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                try:
                    work.result()
                except ClaimLost:
                    log.warning("batch: lost the claim on %s; its work stops here", code)
                    return False
                return True
            log.warning("batch: lost the claim on %s (lease expired); its work is cancelled", code)
            return False
        finally:
            for task in (work, beat):
                task.cancel()
            await asyncio.gather(work, beat, return_exceptions=True)

    def _kind(self, code: str) -> str:
        return self._kinds.get(code, "week")  # the roll-up's claim: a week's

    async def _heartbeat(self, code: str, period_end: date) -> None:
        """Returns when the claim is lost."""
        while True:
            await asyncio.sleep(self.heartbeat)
            if not await self.claims.renew(code, period_end, self.now(), self._kind(code)):
                return

    async def _after_rollup(self, period_end: date, week_day: date) -> bool:
        """``after_rollup(week_day)`` once per week across instances (True if this instance ran
        it to its end), under its own claim: a failure is retried with backoff while the claim is
        held, a crash leaves the claim to be taken over once its lease runs out."""
        assert self.after_rollup is not None  # noqa: S101 - the caller checks
        job = self.after_rollup
        while True:
            claim = await self.claims.get(INTERNAL, period_end)
            if claim is not None and claim.status in FINISHED:
                return False
            if await self.claims.claim(INTERNAL, period_end, self.now()):
                break
            await asyncio.sleep(self.poll)

        async def run() -> None:
            await self._until_done(INTERNAL, period_end, lambda: job(week_day), "the internal summaries")
            await self.claims.finish(INTERNAL, period_end, "drafted", self.now())

        done = await self._holding(INTERNAL, period_end, run())
        if done:
            self.progress.pop(INTERNAL, None)
        return done

    async def _rollup(self, period_end: date, codes: list[str]) -> bool:
        """Post the roll-up once per week across instances (True if this instance did). Its
        claim is finished only once it is posted."""
        while True:
            claim = await self.claims.get(ROLLUP, period_end)
            if claim is not None and claim.status in FINISHED:
                return False  # posted (or failed) by an instance already
            if await self.claims.claim(ROLLUP, period_end, self.now()):
                break
            await asyncio.sleep(self.poll)  # another instance is posting it; take over if it dies

        async def post() -> None:
            await self._until_done(ROLLUP, period_end, lambda: self.on_complete(period_end, codes), "the roll-up")
            await self.claims.finish(ROLLUP, period_end, "drafted", self.now())

        posted = await self._holding(ROLLUP, period_end, post())
        if posted:
            self.progress.pop(ROLLUP, None)
        return posted

"""The weekly procedure for one customer: collect -> deltas -> summary -> render -> store.

Connectors and the store are injected; this module knows neither Teams nor any vendor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from reporting import fmt, snapshot
from reporting.children import sigint_ignored_by_children
from reporting.collect import SourceBreaker, collect
from reporting.config import Config, CustomerConfig
from reporting.deltas import compute_flags
from reporting.markdown import render_markdown
from reporting.models import (
    Backups,
    Branding,
    CustomerRef,
    Period,
    PeriodKind,
    Report,
    Security,
    Tickets,
    Uptime,
    WeekPoint,
    technical,
)
from reporting.output import report_paths, write_atomic
from reporting.period import (
    WeekNotEnded,
    batch_period,
    day_in,
    has_ended,
    has_started,
    partial_read,
    period_containing,
    previous_period,
)
from reporting.sources import Connector
from reporting.store import HistoryStore
from reporting.summary import engineer_actions, executive_summary, recommendations
from reporting.telemetry import DRAFTS

log = logging.getLogger(__name__)

PdfRenderer = Callable[[Report, Branding], bytes]
HISTORY_POINTS = 8


@dataclass
class Draft:
    code: str
    report: Report
    #: "md", "pdf", "json": the executive report; "technical.md", "technical.pdf",
    #: "technical.json": its technical variant
    paths: dict[str, Path] = field(default_factory=dict)
    render_seconds: float = 0.0


def _week_point(payload: dict[str, Any]) -> WeekPoint:
    r = snapshot.from_dict(payload)
    up = r.sections.get("uptime")
    tk = r.sections.get("tickets")
    u = up.data if up is not None and isinstance(up.data, Uptime) else None
    t = tk.data if tk is not None and isinstance(tk.data, Tickets) else None
    sec_s, bk_s = r.sections.get("security"), r.sections.get("backups")
    sec = sec_s.data if sec_s is not None and isinstance(sec_s.data, Security) else None
    bk = bk_s.data if bk_s is not None and isinstance(bk_s.data, Backups) else None
    return WeekPoint(
        period_end=r.period.end_date,
        uptime_pct=u.overall_pct if u else None,
        tickets_opened=t.opened if t else None,
        tickets_closed=t.closed if t else None,
        backlog=t.backlog if t else None,
        secure_score_pct=sec.secure_score_pct if sec else None,
        sla_attainment_pct=t.sla_attainment_pct if t else None,
        sla_breaches=t.sla_breaches if t else None,
        backup_success_pct=bk.success_rate_pct if bk and bk.run_history else None,
        incidents_new=sec.incidents_new if sec else None,
        uptime_target_pct=u.target_pct if u else None,
    )


def _exit_with_parent(parent: int) -> None:
    """PDF worker initializer: the worker ends with the process that started it. On Linux the
    kernel sends it SIGKILL when that process dies (``prctl(PR_SET_PDEATHSIG)``), even by
    SIGKILL when no shutdown code runs; a parent already gone ends it at once. (The kernel ties
    this to the thread that started the worker: the pool is used from the event loop's thread,
    which lives as long as the process.)"""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != parent:
        os._exit(0)


class Engine:
    def __init__(
        self,
        config: Config,
        connectors: Mapping[str, Connector],
        store: HistoryStore,
        branding: Branding,
        render_pdf: PdfRenderer,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        pdf_processes: int = 0,
        allow_partial: bool = False,
    ):
        self.config = config
        self.connectors = connectors
        self.store = store
        self.branding = branding
        self.render_pdf = render_pdf
        self.now = now
        self.allow_partial = allow_partial  # a week not over yet: refused (WeekNotEnded) unless set
        self.period_kinds: dict[str, PeriodKind] = {}  # code -> the admins' saved period (LiveSettings)
        # ReportLab holds the GIL while it renders. A batch renders on one thread beside the loop;
        # the bot (``pdf_processes``) renders in worker processes, so a render never delays the
        # answer to a card click (the event loop keeps the GIL).
        self._pdf_pool: Executor = (
            ProcessPoolExecutor(
                max_workers=pdf_processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
            if pdf_processes
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf")
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop rendering: renders not started are cancelled, a running one gets ``timeout``
        seconds to finish, then its worker process is terminated; no worker outlives this."""
        pool = self._pdf_pool
        if not isinstance(pool, ProcessPoolExecutor):
            pool.shutdown(wait=True, cancel_futures=True)
            return
        # CPython's ProcessPoolExecutor keeps its workers in ``_processes`` (pid -> Process);
        # ``shutdown`` has no timeout, so it runs in a thread and a stuck worker is terminated
        workers = list((getattr(pool, "_processes", None) or {}).values())
        closing = threading.Thread(
            target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True}, name="pdf-pool-shutdown", daemon=True
        )
        closing.start()
        closing.join(timeout)
        if closing.is_alive():
            for proc in workers:
                if proc.is_alive():
                    log.warning("PDF worker %s still rendering after %.0f s; terminating it", proc.pid, timeout)
                    proc.terminate()
            closing.join(5.0)
        for proc in workers:
            proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)

    def kind_of(self, customer: CustomerConfig) -> PeriodKind:
        """The customer's period: the admins' saved setting, else the file's ``period``."""
        return self.period_kinds.get(customer.code) or customer.period

    def period_for(self, customer: CustomerConfig, day: date) -> Period:
        """The customer's period (of its kind) that contains ``day``."""
        return period_containing(day, self.config.customer_timezone(customer), self.kind_of(customer))

    def batch_period(self, customer: CustomerConfig, week_day: date) -> Period:
        """The customer's period for the batch of the week that contains ``week_day`` (the last
        complete week, for the Monday batch): that week for a weekly customer; otherwise the
        customer's newest period that has ended by now and before the week after that one ended
        (a month that ended on a Tuesday is the one drafted that week, on the daily run)."""
        kind = self.kind_of(customer)
        tz = self.config.customer_timezone(customer)
        return batch_period(week_day, tz, kind, self.now())

    async def build(self, customer: CustomerConfig, period: Period, breaker: SourceBreaker | None = None) -> Report:
        """Collect and compare; no files written. ``breaker``: the batch's memory of hung sources.

        A week that has not ended in the customer's timezone is refused (:class:`WeekNotEnded`)
        before any source is asked, unless the engine allows partial reports: then the report
        carries ``partial_as_of`` and every rendering labels it partial."""
        tz = period.timezone
        now = self.now()
        partial = not has_ended(period, now)
        if partial and (not self.allow_partial or not has_started(period, now)):
            raise WeekNotEnded(customer.code, period, started=has_started(period, now))
        read = partial_read(period, now) if partial else period
        sections = await collect(
            self.config, customer, read, self.connectors, lambda: self.now().astimezone(period.start.tzinfo), breaker
        )
        prev_payload = await self.store.get(customer.code, previous_period(period).end.date(), period.kind)
        previous = snapshot.from_dict(prev_payload).sections if prev_payload else None
        w = fmt.words(period)
        flags = compute_flags(sections, previous, self.config.thresholds, tz, w)
        history = tuple(
            _week_point(p)
            for p in await self.store.history(customer.code, period.end.date(), HISTORY_POINTS, period.kind)
        )
        return Report(
            customer=CustomerRef(
                customer.code,
                customer.name,
                tz,
                *(
                    (customer.account_engineer.name, customer.account_engineer.email)
                    if customer.account_engineer
                    else ()
                ),
            ),
            period=period,
            sections=sections,
            flags=flags,
            generated_at=self.now(),
            summary=executive_summary(sections, flags, previous, w),
            recommendations=recommendations(sections, flags, w),
            history=history,
            engineer_actions=engineer_actions(sections, flags, w),
            partial_as_of=read.end if partial else None,
        )

    async def backfill(
        self, customer: CustomerConfig, week_day: date, weeks: int, breaker: SourceBreaker | None = None
    ) -> int:
        """Store history snapshots for up to ``weeks`` weeks before ``week_day``'s week that the
        store lacks, oldest first, so deltas and trends have a baseline. A week in which no
        section could be read (e.g. before the customer was onboarded) is not stored."""
        period = self.period_for(customer, week_day)
        todo: list[Period] = []
        p = period
        for _ in range(weeks):
            p = previous_period(p)
            todo.append(p)
        stored = 0
        for p in reversed(todo):
            if not has_ended(p, self.now()):
                continue  # history holds finished weeks only (a partial run of a future week)
            if await self.store.get(customer.code, p.end.date(), p.kind) is not None:
                continue
            report = await self.build(customer, p, breaker)
            if not any(s.ok for s in report.sections.values()):
                continue
            await self.store.save(snapshot.to_dict(report), kind="history")
            stored += 1
        return stored

    async def draft(
        self, customer: CustomerConfig, week_day: date, out: Path, breaker: SourceBreaker | None = None
    ) -> Draft:
        """Build, render (.md, .pdf, .json, each written atomically) and store the draft."""
        period = self.period_for(customer, week_day)
        where = {"customer": customer.code, "period": period.end_date.isoformat(), "step": "draft"}
        t0 = time.perf_counter()
        try:
            report = await self.build(customer, period, breaker)
            draft = await self.write(report, out)
        except Exception:
            DRAFTS.labels("failed").inc()
            raise
        DRAFTS.labels("ok").inc()
        unavailable = sorted(name for name, s in report.sections.items() if not s.ok)
        log.info(
            "draft for %s made",
            customer.code,
            extra={**where, "duration_ms": round(1000 * (time.perf_counter() - t0)), "unavailable": unavailable},
        )
        return draft

    async def pdf(self, report: Report, branding: Branding | None = None) -> bytes:
        """``report`` as PDF bytes (in the PDF workers), nothing written or stored; ``branding``
        replaces the engine's (a test send marks its cover "TEST")."""
        loop = asyncio.get_running_loop()
        workers = isinstance(self._pdf_pool, ProcessPoolExecutor)  # submit() may start a worker process
        with sigint_ignored_by_children() if workers else contextlib.nullcontext():
            rendering = loop.run_in_executor(self._pdf_pool, self.render_pdf, report, branding or self.branding)
        return await rendering

    async def write(self, report: Report, out: Path, kind: str = "draft") -> Draft:
        """Render ``report`` (with its commentary, if any) and its technical variant to .md, .pdf
        and .json, each written atomically, and store its snapshot (one per report: the technical
        variant is the same figures with their detail, all of it in that snapshot). The review
        workflow calls this after a save."""
        report = replace(report, audience="executive")
        tech = technical(report)
        payload = snapshot.to_dict(report)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        markdown = render_markdown(report, self.branding)
        tech_markdown = render_markdown(tech, self.branding)
        pdf, tech_pdf = await asyncio.gather(self.pdf(report), self.pdf(tech))
        elapsed = loop.time() - t0
        end = report.period.end_date.isoformat()
        word = report.period.file_word
        paths = report_paths(out, report.customer.code, end, word)
        tech_paths = report_paths(out, report.customer.code, end, word, variant="technical")
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        tech_text = json.dumps(snapshot.to_dict(tech), indent=2, ensure_ascii=False) + "\n"

        def files() -> None:  # fsync'd writes: off the event loop
            write_atomic(paths["md"], markdown)
            write_atomic(paths["pdf"], pdf)
            write_atomic(paths["json"], text)
            write_atomic(tech_paths["md"], tech_markdown)
            write_atomic(tech_paths["pdf"], tech_pdf)
            write_atomic(tech_paths["json"], tech_text)

        await asyncio.to_thread(files)
        await self.store.save(payload, kind=kind, files={"pdf": pdf})  # the PDF too: any instance can serve it
        every = {**paths, **{f"technical.{ext}": p for ext, p in tech_paths.items()}}
        return Draft(report.customer.code, report, every, elapsed)

    async def run_many(
        self,
        customers: Sequence[CustomerConfig],
        week_day: date,
        out: Path,
        backfill_weeks: int = 0,
        on_done: Callable[[Draft | BaseException, CustomerConfig], Awaitable[None] | None] | None = None,
        containing: bool = True,
    ) -> list[Draft | BaseException]:
        """Drafts for ``customers`` concurrently (bounded by ``[schedule] concurrency``). A source
        that runs out its timeout once is not waited for again in this batch (``SourceBreaker``),
        so one hung source costs about one timeout, not one per customer. Each customer's period
        is the one of its kind that contains ``week_day``, or with ``containing`` False its
        newest one that had ended by the end of ``week_day``'s week (:meth:`batch_period`)."""
        sem = asyncio.Semaphore(self.config.schedule.concurrency)
        breaker = SourceBreaker()

        async def one(c: CustomerConfig) -> Draft | BaseException:
            day = week_day if containing else day_in(self.batch_period(c, week_day))
            async with sem:
                try:
                    if backfill_weeks:
                        await self.backfill(c, day, backfill_weeks, breaker)
                    result: Draft | BaseException = await self.draft(c, day, out, breaker)
                except Exception as err:  # one customer's failure must not stop the batch
                    log.exception("draft for %s failed", c.code)
                    result = err
            if on_done is not None:
                maybe = on_done(result, c)
                if maybe is not None:
                    await maybe
            return result

        return list(await asyncio.gather(*(one(c) for c in customers)))

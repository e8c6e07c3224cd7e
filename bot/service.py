"""``reportbot serve``: everything the bot needs, built once and closed in order.

:func:`open_service` builds the store, the connectors, the engine, the review workflow, the
botbuilder adapter and the Teams handler, and the aiohttp app; tests build the same thing with
a fake outbound credentials factory. With ``--sandbox`` the configuration is the sandbox MSP
whose sources are the vendor simulators (run in a child process), and the bot listens on
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from sqlalchemy.exc import InterfaceError, OperationalError

from bot.admin_settings import LiveSettings, SettingsStore
from bot.announce import ChannelAnnouncer, ChannelPostUnavailable
from bot.app import create_app
from bot.auth import build_adapter
from bot.delivery import (
    ALL_STEPS,
    Deliverer,
    DeliveryBusy,
    DeliveryHandoff,
    DeliveryLog,
    PermanentError,
    StepResult,
)
from bot.deps import BotDeps
from bot.google.auth import GoogleUnavailable
from bot.google.backend import routed_backend
from bot.graph import GraphBackend, GraphUnavailable, config_credential
from bot.graph.permissions import uses_graph
from bot.handler import ReportBot
from bot.internal_delivery import LABEL, InternalReports, InternalSummary, Skipped
from bot.links import ArtefactLinkSigner, ArtefactRef, LinkSigner
from bot.outbox import OutboxBackend
from bot.posting import NoRoute, PostRefused
from bot.published import INTERNAL_CODE, CustomerLinks, PublishedArtefacts, sha256
from bot.review import Review
from bot.settings import BotSettings
from bot.state import Draft, ReviewState
from cards.internal import internal_summary_card
from connectors.base import Connector, ConnectorContext
from connectors.registry import CONNECTORS
from reporting.config import Config
from reporting.drafts import DraftState
from reporting.engine import Engine
from reporting.internal import AUDIENCES, file_name
from reporting.models import PERIOD_FILE_WORDS, Report
from reporting.output import write_atomic
from reporting.period import day_in, last_complete_week_day, week_containing, zone
from reporting.store import HistoryStore
from scheduler.batch import BatchRunner
from scheduler.claims import Claims
from scheduler.schedule import WeeklySchedule

log = logging.getLogger(__name__)


class LocalHandoff:
    """Delivery hand-off until Graph delivery is configured: the approved final PDF is filed
    under ``OUT/approved/<CODE>/<CODE>-<weekly|...>-<YYYY-MM-DD>.pdf`` (written atomically), where the
    delivery step picks it up. Nothing is emailed or posted by this class."""

    def __init__(self, out: Path):
        self.out = out

    async def __call__(self, draft: Draft, report: Report, pdf: bytes) -> None:
        path = (
            self.out
            / "approved"
            / draft.customer_code
            / f"{draft.customer_code}-{PERIOD_FILE_WORDS[draft.period_kind]}-{draft.period_end.isoformat()}.pdf"
        )
        await asyncio.to_thread(write_atomic, path, pdf)
        log.info("approved report of %s handed off: %s", draft.customer_code, path)


@dataclass
class Service:
    settings: BotSettings
    config: Config
    app: web.Application
    bot: ReportBot
    review: Review
    state: ReviewState
    store: HistoryStore
    links: LinkSigner
    batch: BatchRunner
    schedule: WeeklySchedule
    resumer: DeliveryResumer
    internal: InternalReports | None = None


#: Failures of a resumed delivery that the same attempt may not meet again (Graph or the Bot
#: Connector unavailable or throttled, the network, the store's connection): tried again later.
TRANSIENT = (
    GraphUnavailable,
    GoogleUnavailable,
    ChannelPostUnavailable,
    httpx.TransportError,
    OSError,
    TimeoutError,
    OperationalError,
    InterfaceError,
)


class CannotResume(Exception):  # noqa: N818 - a condition
    """A resumed delivery that no retry can finish (its final PDF is gone): recorded as failed."""


@dataclass
class Resuming:
    """A delivery being resumed: what ``/healthz`` shows about it."""

    code: str
    attempts: int = 0
    last_error: str | None = None
    next_at: float | None = None  # time.monotonic() of the next attempt while waiting


@dataclass
class DeliveryResumer:
    """Deliveries a crash left half done, resumed in the background once the bot listens.

    Every draft with a delivery step left ``running`` is handed to delivery again (each step is
    idempotent; a done step is never repeated), at most ``concurrency`` at a time. A transient
    failure (:data:`TRANSIENT`: Graph down, throttled, the network) is tried again after a
    backoff that doubles from ``first_delay`` up to ``max_delay`` seconds, with ``jitter`` (a
    fraction: 0.2 = ±20 %) so instances do not retry in step. Anything else — a missing final
    PDF, a report gone from the store, a customer no longer configured — is recorded as the
    delivery's failure (the steps left running become ``failed`` with the reason, the draft
    ``failed``), so the review card shows it with Retry delivery. Nothing here raises into the
    bot: the web app answers while deliveries wait for Graph. ``on_done(draft_id)`` runs when a
    resumed delivery has ended (delivered or failed for good): the bot edits the review card
    and the roll-up."""

    review: Review
    deliveries: DeliveryLog
    handoff: Callable[[Draft, Report, bytes], Awaitable[None]]
    on_done: Callable[[str], Awaitable[None]] | None = None
    first_delay: float = 5.0
    max_delay: float = 300.0
    jitter: float = 0.2
    concurrency: int = 2
    stalled_after: float = 600.0  # an approved or delivering draft untouched this long has no live process
    internal: InternalReports | None = None  # the MSP's summaries: their unfinished weeks resumed too
    pending: dict[str, Resuming] = field(default_factory=dict, init=False)  # draft id -> its resume
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _slots: asyncio.Semaphore = field(init=False, repr=False)
    _later: asyncio.Future[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    def start(self) -> None:
        """Look for unfinished deliveries and resume them, in the background."""
        self._spawn(self._find())

    async def stop(self) -> None:
        """Cancel what is still waiting or running (it is resumed on the next start)."""
        if self._later is not None:
            self._later.cancel()
            await asyncio.gather(self._later, return_exceptions=True)
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self) -> None:
        """Until every resume has ended (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def status(self) -> list[str]:
        """One line per delivery still being resumed (for ``/healthz``)."""
        now = time.monotonic()
        out = []
        for draft_id, r in sorted(self.pending.items(), key=lambda kv: kv[1].code):
            line = f"{r.code} ({draft_id}): {r.attempts} attempt{'s' if r.attempts != 1 else ''}"
            if r.last_error:
                line += f", last: {r.last_error}"
            if r.next_at is not None:
                line += f"; next in {max(0.0, r.next_at - now):.0f} s"
            out.append(line[:300])
        return out

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.first_delay * 2 ** max(0, attempt - 1))
        return base * (1 + self.jitter * (2 * random.random() - 1))  # noqa: S311 - spreading retries, not secrecy

    async def _find(self) -> None:
        attempt = 0
        while True:  # the store itself may be unreachable at start: keep trying
            attempt += 1
            try:
                draft_ids = await self.deliveries.unfinished()
                break
            except TRANSIENT as err:
                log.warning("cannot list unfinished deliveries (%s: %s); trying again", type(err).__name__, err)
                await asyncio.sleep(self._delay(attempt))
        for draft_id in draft_ids:
            if draft_id.startswith("internal-"):  # not a draft: the week's service-desk summaries
                if self.internal is not None and draft_id not in self.pending:
                    self.pending[draft_id] = Resuming(code="service desk summaries")
                    self._spawn(self._resume_internal(draft_id))
                continue
            if draft_id not in self.pending:
                self.pending[draft_id] = Resuming(code="?")
                self._spawn(self._resume(draft_id))
        await self._find_stalled()

    async def _find_stalled(self) -> None:
        """Approved drafts that were never handed off (the process stopped during the final render)
        and deliveries stopped between two steps (no step ``running``): resumed once they have
        been untouched for ``stalled_after`` seconds, so a delivery another instance is still
        running is not taken over; looked for again at that age for those approved just before."""
        attempt = 0
        while True:
            attempt += 1
            try:
                now = datetime.now(UTC)
                in_flight = await self.review.state.stalled(now + timedelta(seconds=1))  # every one, young or old
                break
            except TRANSIENT as err:
                log.warning("cannot list stalled deliveries (%s: %s); trying again", type(err).__name__, err)
                await asyncio.sleep(self._delay(attempt))
        cutoff = now - timedelta(seconds=self.stalled_after)
        later = []
        for draft in in_flight:
            if draft.id in self.pending or draft.id in self.review.finishing:
                continue
            if draft.updated_at < cutoff:
                self.pending[draft.id] = Resuming(code=draft.customer_code)
                self._spawn(self._resume(draft.id))
            else:
                later.append(draft)
        if later:  # looked at again when the oldest of them is old enough (not waited for by ``wait``)
            oldest = min(d.updated_at for d in later)
            wait = max(1.0, (oldest + timedelta(seconds=self.stalled_after) - now).total_seconds())
            self._later = asyncio.ensure_future(self._look_again(wait))

    async def _look_again(self, after: float) -> None:
        await asyncio.sleep(after)
        self._spawn(self._find_stalled())

    async def _resume(self, draft_id: str) -> None:
        status = self.pending[draft_id]
        try:
            while True:
                status.attempts += 1
                status.next_at = None
                try:
                    async with self._slots:
                        if not await self._attempt(draft_id, status):
                            return  # nothing to resume (the draft is gone)
                    break
                except CannotResume as err:
                    log.error(
                        "the delivery of %s cannot be resumed: %s",
                        status.code,
                        err,
                        extra={"customer": status.code, "draft_id": draft_id, "step": "resume"},
                    )
                    await self._fail(draft_id, str(err))
                    break
                except TRANSIENT as err:
                    status.last_error = f"{type(err).__name__}: {err}"[:200]
                    delay = self._delay(status.attempts)
                    status.next_at = time.monotonic() + delay
                    log.warning(
                        "the delivery of %s could not be resumed yet (%s); trying again in %.0f s",
                        status.code,
                        status.last_error,
                        delay,
                        extra={"customer": status.code, "draft_id": draft_id, "step": "resume"},
                    )
                    await asyncio.sleep(delay)
                except Exception as err:  # not transient: the delivery's failure, shown on its card
                    log.exception(
                        "the delivery of %s cannot be resumed",
                        status.code,
                        extra={"customer": status.code, "draft_id": draft_id, "step": "resume"},
                    )
                    await self._fail(draft_id, f"{type(err).__name__}: {err}")
                    break
            if self.on_done is not None:
                try:
                    await self.on_done(draft_id)
                except Exception:  # the card edit is cosmetic; the delivery's state is in the store
                    log.warning("could not show the resumed delivery of %s", status.code, exc_info=True)
        finally:
            self.pending.pop(draft_id, None)

    async def _resume_internal(self, delivery: str) -> None:
        """An internal summaries' delivery a crash left running: its steps not done, from the
        stored PDFs, retried after a transient failure like a draft's."""
        assert self.internal is not None  # noqa: S101 - _find checks
        status = self.pending[delivery]
        try:
            period_end = date.fromisoformat(delivery.removeprefix("internal-"))
            period = week_containing(period_end - timedelta(days=1), self.internal.config.msp.timezone)
            while True:
                status.attempts += 1
                try:
                    await self.internal.run(period)
                    return
                except DeliveryBusy:
                    return  # another live instance is delivering them
                except TRANSIENT as err:
                    status.last_error = f"{type(err).__name__}: {err}"[:200]
                    wait = self._delay(status.attempts)
                    status.next_at = time.monotonic() + wait
                    await asyncio.sleep(wait)
                    status.next_at = None
        except Exception:  # a background resume: logged, the next start tries again
            log.exception("resuming the delivery of the service desk summaries %s failed", delivery)
        finally:
            self.pending.pop(delivery, None)

    async def _attempt(self, draft_id: str, status: Resuming) -> bool:
        draft = await self.review.state.get(draft_id)
        if draft is None:
            log.error("cannot resume the delivery of draft %s: the draft is not in the store", draft_id)
            return False
        status.code = draft.customer_code
        in_flight = draft.state in (DraftState.APPROVED, DraftState.DELIVERING)
        if not in_flight and not await self.deliveries.unfinished_steps(draft_id):
            return False  # finished meanwhile (another instance, or this one): nothing to resume
        if draft.state == DraftState.APPROVED and not await self.deliveries.steps(draft_id):
            log.info(
                "rendering the final PDF of %s again and handing it off (approved, never handed off)",
                draft.customer_code,
            )
            await self.review.finish_again(draft)
            return True
        pdf = await self.review.stored_pdf(draft)
        if pdf is None:
            name = self.review.pdf_path(draft).name
            raise CannotResume(f"the final PDF {name} is missing; Retry delivery renders it again")
        log.info(
            "resuming the delivery of %s (attempt %d)",
            draft.customer_code,
            status.attempts,
            extra={"customer": draft.customer_code, "draft_id": draft.id, "step": "resume"},
        )
        await self.handoff(draft, await self.review.report(draft), pdf)
        return True

    async def _fail(self, draft_id: str, reason: str) -> None:
        reason = f"resuming the delivery: {reason}"[:500]
        try:
            steps = await self.deliveries.steps(draft_id)
            for step in ALL_STEPS:
                if step in steps and steps[step].status == "running":
                    await self.deliveries.end(draft_id, step, "failed", reason)
            await self.review.state.set_state(draft_id, "failed", reason=reason)
        except Exception:  # the store went away too: the next start finds the delivery unfinished again
            log.exception("could not record the failed resume of draft %s", draft_id)


def build_connectors(config: Config) -> dict[str, Connector]:
    ctx = ConnectorContext(customers=ConnectorContext.batch_sizes(config.customers))
    used = sorted({s for c in config.customers for s in c.sources.values()})
    return {name: CONNECTORS[config.sources[name].type or name](name, config.sources[name], ctx) for name in used}


@contextlib.asynccontextmanager
async def open_service(
    config: Config,
    settings: BotSettings,
    out: Path,
    *,
    credentials_factory: Any = None,
    week_day: Callable[[], date] | None = None,
    base: Path | None = None,
    backfill_weeks: int = 0,
    graph_token_credential: Any = None,
    shutdown_grace_seconds: float = 4.0,
) -> AsyncIterator[Service]:
    """``credentials_factory`` (the Bot Connector's) and ``graph_token_credential`` (Graph's, any
    object with ``async get_token``; not closed here) replace the configured ones in tests.

    On leaving (a shutdown), work stops in order: the schedule takes no more fires; a running
    batch is cancelled; resumes are cancelled; the bot's background work (a final render, a
    delivery, a card post) gets ``shutdown_grace_seconds`` to finish and is then cancelled
    (an interrupted delivery is resumed on the next start); the batch claims this instance still
    holds are released for another instance; the PDF worker processes are shut down."""
    from reporting.pdf import render_pdf

    store = await HistoryStore.open(config.store.url)
    connectors: dict[str, Connector] = {}
    engine: Engine | None = None
    closers: list[Callable[[], Any]] = []
    try:
        state = await ReviewState.open(store.engine)
        connectors = build_connectors(config)
        engine = Engine(config, connectors, store, config.branding(base), render_pdf, pdf_processes=2)
        week = week_day or (lambda: last_complete_week_day(datetime.now(UTC), config.msp.timezone))
        deliveries = await DeliveryLog.open(store.engine)
        live = LiveSettings(await SettingsStore.open(store.engine), config, engine)
        await live.refresh()
        handoff: Any = LocalHandoff(out)
        mailer: Any = None  # the email step's backend: test sends go through it alone
        # the email's "View online" / "Download PDF": only where the bot has a public address
        email_links = CustomerLinks(ArtefactLinkSigner.customer(settings)) if settings.report_links else None
        if settings.sandbox:  # the sandbox delivers to the local outbox through the real delivery steps
            sandbox_backend = routed_backend(config, OutboxBackend(config, out / "outbox"), out / "outbox", closers)
            handoff = DeliveryHandoff(
                Deliverer(
                    config, deliveries, sandbox_backend, settings=live, technical_pdf=engine.pdf, links=email_links
                ),
                state,
            )
            mailer = sandbox_backend
        elif uses_graph(config):  # production: Graph (and [delivery]'s choices)
            g = config.graph
            graph_cred = graph_token_credential
            if graph_cred is None:
                graph_cred = config_credential(config)
                closers.append(graph_cred.close)

            async def team_of(customer: Any) -> str:  # configured, else as Teams told the bot
                return g.channel_teams.get(customer.code) or await state.team_of(customer.teams_channel)

            # post and find are called only once delivering: bot and graph_backend exist by then
            announcer = await ChannelAnnouncer.open(
                store.engine,
                post=lambda parcel, card: bot.post_customer_card(parcel, card),
                find=lambda parcel, key, since: graph_backend.find_channel_post(
                    parcel, key, since, app_id=settings.app_id
                ),
                msp_name=config.msp.name,
            )
            graph_backend = GraphBackend(config, graph_cred, channel_team=team_of, announce=announcer)
            closers.append(graph_backend.aclose)
            backend = routed_backend(config, graph_backend, out / "outbox", closers)  # [delivery]: Gmail, Drive...
            handoff = DeliveryHandoff(
                Deliverer(config, deliveries, backend, settings=live, technical_pdf=engine.pdf, links=email_links),
                state,
            )
            mailer = backend
        review = Review(
            config, engine, store, state, out, handoff, settings.may_approve, week, backfill_weeks=backfill_weeks
        )
        adapter = build_adapter(settings, credentials_factory=credentials_factory)
        links = LinkSigner.from_settings(settings)
        bot = ReportBot(
            settings,
            config,
            review,
            state,
            adapter,
            pdf_url=links.url,
            deliveries=deliveries,
            batch_progress=lambda: dict(batch.progress),
            page_url=links.view_url,
            live_settings=live,
            mailer=mailer,
        )  # the batch is made below, once bot can post
        if isinstance(handoff, DeliveryHandoff):
            handoff.on_progress = bot.show_progress  # the review card shows each step as it is done
        # started once the bot listens (start_serving); the card and roll-up are edited when each ends
        resumer = DeliveryResumer(review, deliveries, handoff, on_done=bot.show_delivery_ended)
        claims = await Claims.open(store.engine, instance_name(), config.schedule.lease_seconds)

        # the MSP's own service-desk summaries: emailed to [internal_reports] through the email
        # step's backend, posted in the roll-up channel with signed links to both PDFs
        internal_links = ArtefactLinkSigner.internal(settings)

        async def post_summary(summary: InternalSummary, lines: list[str]) -> StepResult:
            end = summary.period_end
            documents = [
                (
                    f"{LABEL[a]} report (PDF)",
                    internal_links.url(ArtefactRef(INTERNAL_CODE, end, a, sha256(summary.pdfs[a])), file_name(a, end)),
                )
                for a in AUDIENCES
            ]
            try:
                where = await bot.post_internal(end, internal_summary_card(summary.headline, documents, lines))
            except NoRoute as err:
                if settings.sandbox:  # nobody has talked to the sandbox bot yet: tried again on the next run
                    raise Skipped(str(err)) from err
                raise
            except PostRefused as err:
                raise PermanentError(str(err)) from err
            return StepResult(where)

        internal = InternalReports(
            config, store, deliveries, mailer, connectors=connectors, post=post_summary, settings=live
        )

        async def deliver_internal(day: date) -> None:
            try:
                await internal.run(week_containing(day, config.msp.timezone))
            except DeliveryBusy as busy:  # that instance records the outcome
                log.info("not delivering the service desk summaries here: %s", busy)

        resumer.internal = internal

        async def drafted(code: str, draft: Any) -> None:
            await bot.post_card(draft)

        batch = BatchRunner(
            claims,
            codes=live.enabled_codes,  # a customer an admin disabled is skipped (refreshed before each run)
            # each customer's period for the batch of week_day's week (its kind's newest ended one)
            period_end=lambda code, day: engine.batch_period(config.customer(code), day).end_date,
            make_draft=lambda code, day: review.run(
                code, day_in(engine.batch_period(config.customer(code), day)), breaker=batch.breaker
            ),
            on_drafted=drafted,
            on_complete=bot.post_rollup,
            concurrency=config.schedule.concurrency,
            period_kind=lambda code: engine.kind_of(config.customer(code)),
            rollup_end=lambda day: week_containing(day, config.msp.timezone).end_date,
            after_rollup=deliver_internal,
        )

        batches: set[asyncio.Task[Any]] = set()  # running batches, cancelled at shutdown

        def not_weekly(code: str) -> bool:
            return engine.kind_of(config.customer(code)) != "week"

        async def run_batch(daily: bool = False) -> None:
            """The Monday batch, or (``daily``) the daily run: the customers on a fortnight, 30-day
            or monthly period whose newest ended period is not drafted yet, with no roll-up (a
            weekly customer waits for the Monday batch)."""
            task = asyncio.current_task()
            if task is not None:
                batches.add(task)
            try:
                await live.refresh()  # the admins' settings as saved now (another instance's too)
                if daily:
                    today = engine.now().astimezone(zone(config.msp.timezone)).date()  # as of now, not last week
                    await batch.run(today, only=not_weekly, rollup=False)
                    return
                skipped = [c.code for c in config.customers if not live.now.enabled(c.code)]
                if skipped:
                    log.info("the batch skips %s: reports disabled in the settings", ", ".join(skipped))
                await batch.run(week())
            except asyncio.CancelledError:  # the shutdown stopped it on purpose: not a failed job
                log.info("the batch was stopped by the shutdown; its unfinished customer-weeks are released")
            finally:
                batches.discard(task)

        async def run_periods() -> None:
            await run_batch(daily=True)

        schedule = WeeklySchedule(
            config.schedule.cron,
            config.schedule.reminder_cron,
            config.msp.timezone,
            config.schedule.misfire_grace_minutes,
            run_batch,
            bot.remind,
            period_cron=config.schedule.period_cron,
            run_periods=run_periods,
        )

        async def health() -> dict[str, Any]:
            status = await store.status()
            next_run = schedule.next_run()
            undelivered = await bot.undelivered()
            stuck: list[Any] = []
            if status == "ok":  # approved or delivering, untouched past the stall limit, nobody resuming them
                cutoff = datetime.now(UTC) - timedelta(seconds=resumer.stalled_after)
                stuck = [d for d in await state.stalled(cutoff) if d.id not in resumer.pending]
            return {
                "store": status,
                "next_batch": next_run.isoformat() if next_run else None,
                "undelivered_cards": len(undelivered),
                "undelivered": [f"{k}: {why}"[:300] for k, why in sorted(undelivered.items())],
                "pending_resumes": len(resumer.pending),
                "resuming": resumer.status(),
                "stuck_deliveries": len(stuck),
                "stuck": [f"{d.customer_code} ({d.id}): {d.state} since {d.updated_at.isoformat()}" for d in stuck],
            }

        published = PublishedArtefacts(store, lambda: engine.branding)  # engine: set above, never None here
        app = create_app(
            settings,
            BotDeps(
                bot=bot,
                adapter=adapter,
                draft_pdf=review.pdf,
                health=health,
                draft_html=review.html,
                published=published,
            ),
        )
        try:
            yield Service(settings, config, app, bot, review, state, store, links, batch, schedule, resumer, internal)
        finally:
            schedule.shutdown()
            await stop_work(bot, review, resumer, claims, batches, shutdown_grace_seconds)
    finally:
        for close in reversed(closers):
            await close()
        if engine is not None:
            engine.close(timeout=2.0)  # a render still running after the grace above is stopped
        for c in connectors.values():
            await c.aclose()
        await store.close()


async def stop_work(
    bot: ReportBot,
    review: Review,
    resumer: DeliveryResumer,
    claims: Claims,
    batches: set[asyncio.Task[Any]],
    grace: float,
) -> None:
    """End the work in flight at shutdown (see :func:`open_service`); never raises."""
    for task in list(batches):
        task.cancel()
    await asyncio.gather(*batches, return_exceptions=True)
    await resumer.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while tasks := set(bot.background) | set(review.background):
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning(
                "stopping %d background task%s still running after %.0f s (an interrupted delivery is "
                "resumed on the next start)",
                len(tasks),
                "s" if len(tasks) != 1 else "",
                grace,
            )
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            break
        await asyncio.wait(tasks, timeout=remaining)
    try:
        released = await claims.release_held(datetime.now(UTC))
    except Exception:  # the store is gone: the leases run out on their own
        log.exception("could not release this instance's batch claims; they expire with their lease")
        return
    if released:
        log.info("released the batch claims on %s for another instance", ", ".join(released))


def instance_name() -> str:
    """Who holds a batch claim: host, process and a random suffix (unique per start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def start_serving(service: Service, *, run_now: bool = False, sock: socket.socket | None = None) -> web.AppRunner:
    """Listen (on ``sock`` if given, else the settings' host and port), then start the schedule
    and, in the background, the resume of unfinished deliveries: nothing before the socket
    listens waits for Graph or the Bot Connector. The caller cleans the runner up."""
    runner = web.AppRunner(service.app, access_log=None, handle_signals=False, shutdown_timeout=3.0)
    await runner.setup()
    site: web.BaseSite = (
        web.SockSite(runner, sock)
        if sock is not None
        else web.TCPSite(runner, service.settings.host, service.settings.port)
    )
    await site.start()
    service.resumer.start()
    service.schedule.start(run_now=run_now)
    return runner


async def run_forever(service: Service, *, run_now: bool = False, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (``reportbot serve`` sets it on SIGTERM or SIGINT), then stop
    listening; leaving :func:`open_service` ends the rest."""
    runner = await start_serving(service, run_now=run_now)
    print(
        f"weekly batch: {service.config.schedule.cron!r} in {service.config.msp.timezone}; next run "
        f"{service.schedule.next_run()}",
        flush=True,
    )
    mode = (
        "sandbox (no authentication; 127.0.0.1 only)"
        if service.settings.sandbox and not service.settings.app_id
        else "production"
    )
    print(
        f"reportbot listening on http://{service.settings.host}:{service.settings.port}/api/messages — {mode}",
        flush=True,
    )
    try:
        await (stop or asyncio.Event()).wait()
        print("reportbot: stopping (no new work; running work finishes or is handed back)", flush=True)
    finally:
        await runner.cleanup()

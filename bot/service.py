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
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.announce import ChannelAnnouncer
from bot.app import create_app
from bot.auth import build_adapter
from bot.delivery import Deliverer, DeliveryHandoff, DeliveryLog
from bot.deps import BotDeps
from bot.graph_delivery import GraphBackend, graph_credential
from bot.handler import ReportBot
from bot.links import LinkSigner
from bot.outbox import OutboxBackend
from bot.review import Review
from bot.settings import BotSettings
from bot.state import Draft, ReviewState
from connectors.base import Connector, ConnectorContext
from connectors.registry import CONNECTORS
from reporting.config import Config
from reporting.engine import Engine
from reporting.models import Report
from reporting.output import write_atomic
from reporting.period import last_complete_week_day
from reporting.store import HistoryStore
from scheduler.batch import BatchRunner
from scheduler.claims import Claims
from scheduler.schedule import WeeklySchedule

log = logging.getLogger(__name__)


class LocalHandoff:
    """Delivery hand-off until Graph delivery is configured: the approved final PDF is filed
    under ``OUT/approved/<CODE>/<CODE>-weekly-<YYYY-MM-DD>.pdf`` (written atomically), where the
    delivery step picks it up. Nothing is emailed or posted by this class."""

    def __init__(self, out: Path):
        self.out = out

    async def __call__(self, draft: Draft, report: Report, pdf: bytes) -> None:
        path = self.out / "approved" / draft.customer_code / f"{draft.customer_code}-weekly-{draft.period_end.isoformat()}.pdf"
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


def build_connectors(config: Config) -> dict[str, Connector]:
    ctx = ConnectorContext()
    used = sorted({s for c in config.customers for s in c.sources.values()})
    return {name: CONNECTORS[config.sources[name].type or name](name, config.sources[name], ctx) for name in used}


@contextlib.asynccontextmanager
async def open_service(config: Config, settings: BotSettings, out: Path, *, credentials_factory: Any = None,
                       week_day: Callable[[], date] | None = None, base: Path | None = None,
                       backfill_weeks: int = 0) -> AsyncIterator[Service]:
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
        handoff: Any = LocalHandoff(out)
        if settings.sandbox:  # the sandbox delivers to the local outbox through the real delivery steps
            handoff = DeliveryHandoff(Deliverer(config, deliveries, OutboxBackend(config, out / "outbox")), state)
        elif config.graph.mailbox:  # production: Microsoft Graph as the bot's app
            g = config.graph
            graph_cred = graph_credential(settings.app_tenant_id, settings.app_id,
                                          client_secret=settings.app_password if g.auth == "secret" else None,
                                          certificate_path=g.certificate_path or None,
                                          managed_identity=g.auth == "managed_identity")
            closers.append(graph_cred.close)
            async def team_of(customer: Any) -> str:  # configured, else as Teams told the bot
                return g.channel_teams.get(customer.code) or await state.team_of(customer.teams_channel)

            graph_backend = GraphBackend(config, graph_cred, channel_team=team_of)
            closers.append(graph_backend.aclose)
            graph_backend.announce = await ChannelAnnouncer.open(
                store.engine, post=lambda parcel, card: bot.post_customer_card(parcel, card),
                find=lambda parcel, key, since: graph_backend.find_channel_post(parcel, key, since, app_id=settings.app_id),
                msp_name=config.msp.name)
            handoff = DeliveryHandoff(Deliverer(config, deliveries, graph_backend), state)
        review = Review(config, engine, store, state, out, handoff, settings.may_approve, week,
                        backfill_weeks=backfill_weeks)
        adapter = build_adapter(settings, credentials_factory=credentials_factory)
        links = LinkSigner.from_settings(settings)
        bot = ReportBot(settings, config, review, state, adapter, pdf_url=links.url)
        bot.deliveries = deliveries
        if isinstance(handoff, DeliveryHandoff):
            handoff.on_progress = bot.show_progress  # the review card shows each step as it is done
        await resume_deliveries(review, deliveries, handoff)
        claims = await Claims.open(store.engine, instance_name(), config.schedule.lease_seconds)

        async def drafted(code: str, draft: Any) -> None:
            await bot.post_card(draft)

        batch = BatchRunner(
            claims,
            codes=lambda: [c.code for c in config.customers],
            period_end=lambda code, day: engine.period_for(config.customer(code), day).end_date,  # type: ignore[union-attr]
            make_draft=review.run,
            on_drafted=drafted,
            on_complete=bot.post_rollup,
            concurrency=config.schedule.concurrency,
        )
        bot.batch_progress = lambda: dict(batch.progress)

        async def run_batch() -> None:
            await batch.run(week())

        schedule = WeeklySchedule(config.schedule.cron, config.schedule.reminder_cron, config.msp.timezone,
                                  config.schedule.misfire_grace_minutes, run_batch, bot.remind)

        async def health() -> dict[str, Any]:
            undelivered = await bot.undelivered()
            return {"store": await store.status(), "undelivered_cards": len(undelivered),
                    "undelivered": [f"{k}: {why}"[:300] for k, why in sorted(undelivered.items())]}

        app = create_app(settings, BotDeps(bot=bot, adapter=adapter, draft_pdf=review.pdf, health=health))
        try:
            yield Service(settings, config, app, bot, review, state, store, links, batch, schedule)
        finally:
            schedule.shutdown()
        await bot.wait_background()
    finally:
        for close in reversed(closers):
            await close()
        if engine is not None:
            engine.close()
        for c in connectors.values():
            await c.aclose()
        await store.close()


async def resume_deliveries(review: Review, deliveries: DeliveryLog, handoff: Any) -> None:
    """Deliveries a crash left half done: repeat their unfinished steps (each step is idempotent)."""
    for draft_id in await deliveries.unfinished():
        draft = await review.state.get(draft_id)
        if draft is None:
            continue
        path = review.pdf_path(draft)
        if not path.exists():
            log.error("cannot resume the delivery of %s: its final PDF %s is missing", draft.customer_code, path)
            continue
        log.info("resuming the delivery of %s", draft.customer_code)
        await handoff(draft, await review.report(draft), await asyncio.to_thread(path.read_bytes))


def instance_name() -> str:
    """Who holds a batch claim: host, process and a random suffix (unique per start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def run_forever(service: Service, *, run_now: bool = False) -> None:
    runner = web.AppRunner(service.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, service.settings.host, service.settings.port)
    await site.start()
    service.schedule.start(run_now=run_now)
    print(f"weekly batch: {service.config.schedule.cron!r} in {service.config.msp.timezone}; next run "
          f"{service.schedule.next_run()}", flush=True)
    mode = "sandbox (no authentication; 127.0.0.1 only)" if service.settings.sandbox and not service.settings.app_id else "production"
    print(f"reportbot listening on http://{service.settings.host}:{service.settings.port}/api/messages — {mode}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

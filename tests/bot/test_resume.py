"""``serve`` during a Graph outage, with a delivery a crash left half done.

The real service wiring (``bot.service.open_service`` + ``start_serving``: store, engine with
its PDF worker processes, review workflow, Graph delivery through msgraph-sdk, botbuilder's
CloudAdapter, the batch) against the vendor simulators, a loopback Microsoft Graph
(``tests.bot.fake_graph``) and a loopback Bot Connector, with activities shaped as Teams sends
them over real HTTP with signed tokens.

First life: the app is installed in the MSP's team, the batch posts the review cards and the
roll-up, the approver approves ACME, and the process stops mid-delivery (its delivery task is
cancelled while Graph answers 503 with a long Retry-After): the store holds ACME ``delivering``
with its email step ``running``, as after a crash. Second life: ``serve`` starts while Graph
answers every request 503. It must listen and answer ``/healthz`` and ``run ACME`` at once;
the delivery is resumed in the background and completes once Graph recovers — or, when Graph
refuses for good (403), is recorded as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.service import Service, open_service, start_serving
from cards.verbs import VERB_RETRY
from connectors.sandbox.config import sandbox_config_dict
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.farm import SimulatorFarm
from reporting.config import Config, parse_config
from tests.bot.fake_graph import FakeGraph
from tests.bot.harness import (
    APPROVER,
    BOT_APP_ID,
    ROLLUP_CHANNEL,
    BotClient,
    FakeConnector,
    FakeCredentialsFactory,
    FakeOpenIdServer,
    TokenMinter,
    card_action,
    channel_message,
    installation_update,
    make_settings,
)
from tests.bot.test_graph_delivery import FakeCredential
from tests.bot.test_review_e2e import actions, card_of, delivery_facts, text_of

ANCHOR = date(2026, 11, 16)
WEEK_DAY = date(2026, 11, 10)
MAILBOX = "reports@northwind.example"  # the sandbox configuration's [graph]
SITE = ("northwind.example", "/sites/Customers")
TEAMS = {"ACME": "team-acme-0001", "GLOBEX": "team-globex-0002"}
ANSWER_WITHIN = 10.0


@dataclass
class Setup:
    config: Config
    graph: FakeGraph
    connector: FakeConnector
    oidc: FakeOpenIdServer
    out: Path


@pytest.fixture
async def setup(tmp_path: Path, oidc: FakeOpenIdServer, connector: FakeConnector) -> AsyncIterator[Setup]:
    async with make_setup(tmp_path, oidc, connector, f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as s:
        yield s


@contextlib.asynccontextmanager
async def make_setup(
    tmp_path: Path, oidc: FakeOpenIdServer, connector: FakeConnector, store_url: str
) -> AsyncIterator[Setup]:
    """ACME and GLOBEX on their simulators, a loopback Graph with their mailbox, site and channels,
    and a configuration whose store is ``store_url``."""
    dataset = SandboxDataset(ANCHOR)
    systems = {"zabbix", "connectwise", "datto", "defender", "cloudflare"}  # ACME's and GLOBEX's stack
    graph = await FakeGraph().start()
    graph.add_mailbox(MAILBOX)
    graph.add_site(*SITE)
    for code, team in TEAMS.items():
        graph.add_channel(team, f"{code.lower()}-shared", f"{code.title()} shared")
    try:
        async with SimulatorFarm(dataset, systems=systems) as farm:
            raw = sandbox_config_dict(dataset, store_url, farm.sources())
            raw["customers"] = [c for c in raw["customers"] if c["code"] in TEAMS]
            # the MSP's own summaries (emailed after the roll-up) would share the mailbox these
            # tests count and fail: nobody gets them here (tests/bot/test_internal_delivery.py sets them)
            raw.pop("internal_reports", None)
            raw["graph"].update(base_url=graph.base_url, channel_teams=TEAMS)
            raw["schedule"] = {"cron": "0 6 * * mon", "reminder_cron": "", "misfire_grace_minutes": 1}
            yield Setup(parse_config(raw, "<test>", env={}), graph, connector, oidc, tmp_path / "out")
    finally:
        await graph.close()
    assert graph.unexpected == [], graph.unexpected
    assert connector.unexpected == [], connector.unexpected


@dataclass
class Serving:
    service: Service
    client: BotClient
    started: float  # time.monotonic() before open_service


@contextlib.asynccontextmanager
async def serving(
    s: Setup,
    *,
    first_delay: float = 5.0,
    max_delay: float = 300.0,
    stalled_after: float = 600.0,
    out: Path | None = None,
    **settings: Any,
) -> AsyncIterator[Serving]:
    """``reportbot serve`` as ``bot.cli`` runs it (open_service, then start_serving), on a free
    port of 127.0.0.1, with the fakes' credentials. ``settings``: BotSettings fields to replace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    bot_settings = make_settings(oidc=s.oidc, service_urls=[s.connector.service_url], port=port, **settings)
    started = time.monotonic()
    async with open_service(
        s.config,
        bot_settings,
        out or s.out,
        credentials_factory=FakeCredentialsFactory(BOT_APP_ID),
        week_day=lambda: WEEK_DAY,
        graph_token_credential=FakeCredential(),
    ) as service:
        service.resumer.first_delay, service.resumer.max_delay = first_delay, max_delay
        service.resumer.stalled_after = stalled_after
        runner = await start_serving(service, sock=sock)
        client = BotClient(f"http://127.0.0.1:{port}", TokenMinter(s.oidc, app_id=BOT_APP_ID))
        try:
            yield Serving(service, client, started)
        finally:
            await client.aclose()
            await runner.cleanup()


async def sql(service: Service, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """The store as the service sees it (SQLite: one pooled connection; read through it)."""
    async with service.store.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(query), params)).all()]


async def until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within:g} s waiting for {what}")


async def approve(client: BotClient, s: Setup, draft_id: str, version: int, card_id: str) -> None:
    """The approver's click on ``draft_id``'s review card, as Teams sends it to ``client``'s bot."""
    r = await client.post(
        card_action(
            "approve",
            {"draft_id": draft_id, "version": version, "customer": "ACME"},
            service_url=s.connector.service_url,
            reply_to_id=card_id,
            user=APPROVER,
        )
    )
    assert r.status_code == 200, r.text


async def state_is(service: Service, draft_id: str, state: str) -> bool:
    return await sql(service, "select state from drafts where id = :d", d=draft_id) == [(state,)]


async def crash_mid_delivery(s: Setup, out: Path | None = None) -> tuple[str, str]:
    """The first life (drafts under ``out``); returns ACME's draft id and the roll-up's message id."""
    s.graph.fail("GET", r"^/users/[^/]+/messages$", 503, retry_after="60")  # the delivery's first Graph call
    async with serving(s, out=out) as sv:
        r = await sv.client.post(installation_update(service_url=s.connector.service_url))
        assert r.status_code in (200, 201), r.text
        result = await sv.service.batch.run(WEEK_DAY)
        assert sorted(result.drafted) == ["ACME", "GLOBEX"] and result.rollup_posted
        [(draft_id, version, card_id)] = await sql(
            sv.service, "select id, version, card_activity_id from drafts where customer_code = 'ACME'"
        )
        assert card_id, "ACME's review card was posted"
        await approve(sv.client, s, draft_id, version, card_id)
        await until(
            lambda: _true(any(q.method == "GET" and q.path.endswith("/messages") for q in s.graph.requests)),
            60,
            "the delivery's first Graph request",
        )
        sv.service.review.finishing[draft_id].cancel()  # the process stops here, mid-delivery
        await asyncio.gather(*sv.service.review.background, return_exceptions=True)
        assert await sql(sv.service, "select state from drafts where id = :d", d=draft_id) == [("delivering",)]
        assert await sql(sv.service, "select step, status from deliveries where draft_id = :d", d=draft_id) == [
            ("email", "running")
        ]
        rollup = sv.service.state
        stored = await rollup.reference(f"rollup:{result.period_end.isoformat()}")  # type: ignore[union-attr]
        assert stored is not None
    s.graph.faults.clear()
    return draft_id, stored["activity_id"]


async def _true(value: bool) -> bool:
    return value


def graph_down(graph: FakeGraph, status: int = 503) -> None:
    """Every Graph request answered ``status`` (503 with ``Retry-After: 1``, as Graph does)."""
    for method in ("GET", "POST", "PUT", "PATCH"):
        graph.fail(method, r".*", status, times=10**6, retry_after="1" if status == 503 else None)


async def health(client: BotClient) -> dict[str, Any]:
    r = await client.get("/healthz")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_serve_answers_while_graph_is_down_and_the_delivery_completes_when_it_recovers(setup: Setup) -> None:
    draft_id, rollup_id = await crash_mid_delivery(setup)
    graph_down(setup.graph)
    since = len(setup.connector.calls)
    async with serving(setup, first_delay=0.5, max_delay=2.0) as sv:
        # the bot listens and answers at once, Graph or not
        body = await health(sv.client)
        healthz_s = time.monotonic() - sv.started
        assert body["pending_resumes"] == 1, body
        r = await sv.client.post(channel_message("run ACME", service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        await setup.connector.wait_for(
            lambda calls: any(
                c.kind in ("send", "reply") and "Collecting the figures for ACME" in str((c.body or {}).get("text"))
                for c in calls
            ),
            within=ANSWER_WITHIN,
        )  # the ack
        run_s = time.monotonic() - sv.started
        print(f"\nGraph down: /healthz answered {healthz_s:.2f} s after start, `run ACME` {run_s:.2f} s")
        assert healthz_s < ANSWER_WITHIN and run_s < ANSWER_WITHIN

        # the resume meets the outage, is kept and shown, and tried again
        async def waiting() -> bool:
            lines = (await health(sv.client))["resuming"]
            return any("ACME" in line and "503" in line for line in lines)

        await until(waiting, 60, "/healthz to show the resume waiting for Graph")
        assert await sql(sv.service, "select state from drafts where id = :d", d=draft_id) == [("delivering",)]

        setup.graph.faults.clear()  # Graph recovers
        await until(lambda: state_is(sv.service, draft_id, "delivered"), 90, "the resumed delivery to complete")
        await sv.service.resumer.wait()
        assert (await health(sv.client))["pending_resumes"] == 0
        assert await sql(
            sv.service, "select step, status from deliveries where draft_id = :d order by step", d=draft_id
        ) == [("archive", "done"), ("channel", "done"), ("email", "done")]
        assert len(setup.graph.sent(MAILBOX)) == 1  # one email, after all that

        # the review card and the roll-up were edited through the Connector: delivered
        card = last_edit(setup.connector, await card_id_of(sv.service, draft_id), since)
        assert "Delivered" in text_of(card) and "delivering" not in text_of(card)
        facts = delivery_facts(card)
        assert [facts[step].split()[1] for step in ("Email", "Customer channel", "Archive")] == ["done"] * 3, facts
        assert VERB_RETRY not in actions(card)
        rollup = last_edit(setup.connector, rollup_id, since)
        assert "**Review:** Delivered (approved by" in text_of(rollup) and "delivering" not in text_of(rollup)
        assert all(
            c.conversation_id == ROLLUP_CHANNEL.channel_id
            for c in setup.connector.calls[since:]
            if c.kind == "update" and c.activity_id == rollup_id
        )


def last_edit(connector: FakeConnector, activity_id: str, since: int) -> dict[str, Any]:
    """The card of the newest edit (``PUT .../activities/{id}``) of ``activity_id`` after call ``since``."""
    edits = [c for c in connector.calls[since:] if c.kind == "update" and c.activity_id == activity_id]
    assert edits, f"message {activity_id} was not edited: {[(c.kind, c.activity_id) for c in connector.calls[since:]]}"
    card = card_of(edits[-1].body)
    assert card is not None
    return card


async def card_id_of(service: Service, draft_id: str) -> str:
    [(card_id,)] = await sql(service, "select card_activity_id from drafts where id = :d", d=draft_id)
    return str(card_id)


async def test_a_resume_graph_refuses_for_good_is_recorded_as_failed(setup: Setup) -> None:
    draft_id, rollup_id = await crash_mid_delivery(setup)
    graph_down(setup.graph, 403)
    since = len(setup.connector.calls)
    async with serving(setup, first_delay=0.5, max_delay=2.0) as sv:
        await health(sv.client)
        assert time.monotonic() - sv.started < ANSWER_WITHIN
        await until(lambda: state_is(sv.service, draft_id, "failed"), 60, "the resumed delivery to fail")
        await sv.service.resumer.wait()
        [(status, detail)] = await sql(
            sv.service, "select status, detail from deliveries where draft_id = :d", d=draft_id
        )
        assert status == "failed" and "403" in detail
        [(reason,)] = await sql(sv.service, "select reason from drafts where id = :d", d=draft_id)
        assert reason.startswith("Email:") and "403" in reason

        # the review card shows the failure, its reason and Retry delivery; the roll-up says so
        card = last_edit(setup.connector, await card_id_of(sv.service, draft_id), since)
        assert "Delivery failed" in text_of(card) and "ErrorAccessDenied" in delivery_facts(card)["Email"]
        assert actions(card)[VERB_RETRY]["title"] == "Retry delivery"
        assert actions(card)[VERB_RETRY]["data"]["draft_id"] == draft_id
        rollup = last_edit(setup.connector, rollup_id, since)
        assert "**Review:** Delivery failed" in text_of(rollup)
    assert setup.graph.sent(MAILBOX) == []


async def test_an_approval_the_process_never_handed_off_is_delivered_on_the_next_start(setup: Setup) -> None:
    # first life: ACME approved; the process stops during the final render, before the hand-off
    async with serving(setup) as sv:
        r = await sv.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        result = await sv.service.batch.run(WEEK_DAY)
        assert "ACME" in result.drafted
        [(draft_id, version, card_id)] = await sql(
            sv.service, "select id, version, card_activity_id from drafts where customer_code = 'ACME'"
        )
        stopped = asyncio.Event()

        async def never(*_: Any) -> None:  # the process dies here: nothing is handed to delivery
            stopped.set()
            await asyncio.Event().wait()

        sv.service.review.handoff = never
        r = await sv.client.post(
            card_action(
                "approve",
                {"draft_id": draft_id, "version": version, "customer": "ACME"},
                service_url=setup.connector.service_url,
                reply_to_id=card_id,
                user=APPROVER,
            )
        )
        assert r.status_code == 200 and "Approved by" in r.text, r.text
        await asyncio.wait_for(stopped.wait(), 60)
        sv.service.review.finishing[draft_id].cancel()
        await asyncio.gather(*sv.service.review.background, return_exceptions=True)
    # what such a stop leaves: approved, no delivery step at all (nothing "running" to resume)
    assert await sql_once(setup, "select state from drafts where id = :d", d=draft_id) == [("approved",)]
    assert await sql_once(setup, "select count(*) from deliveries where draft_id = :d", d=draft_id) == [(0,)]
    assert setup.graph.sent(MAILBOX) == []

    since = len(setup.connector.calls)
    async with serving(setup, stalled_after=0.0) as sv:  # second life: the draft has been left alone long enough
        await until(lambda: state_is(sv.service, draft_id, "delivered"), 90, "the stalled approval to be delivered")
        await sv.service.resumer.wait()
        assert await sql(
            sv.service, "select step, status from deliveries where draft_id = :d order by step", d=draft_id
        ) == [("archive", "done"), ("channel", "done"), ("email", "done")]
        assert len(setup.graph.sent(MAILBOX)) == 1
        card = last_edit(setup.connector, await card_id_of(sv.service, draft_id), since)
        assert "Delivered" in text_of(card)


async def sql_once(s: Setup, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """The store between two lives (no service running)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(s.config.store.url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(query), params)).all()]
    finally:
        await engine.dispose()

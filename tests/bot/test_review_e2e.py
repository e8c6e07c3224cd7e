"""The review loop end to end over real HTTP: signed activities in, the real ReportBot, the
real review workflow and engine over the vendor simulators, and what reaches the Bot Connector.

``run ACME`` in the review channel → ack + review card posted there → ``save`` (hostile
commentary, stored verbatim) → ``approve`` by an engineer who is not an approver (refused) →
``approve`` by the approver (answered at once; final PDF handed off in the background; the card
edited for everyone) → a repeated approve is a no-op. Plus stale versions, tampered card data,
a customer channel asking for another customer, and the signed PDF link.
"""

from __future__ import annotations

import asyncio
import email
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from email import policy
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from bot.delivery import Deliverer, DeliveryHandoff, DeliveryLog, Parcel, PermanentError, StepResult
from bot.handler import ReportBot
from bot.links import LinkSigner
from bot.outbox import OutboxBackend
from bot.review import Review
from bot.service import LocalHandoff, build_connectors
from bot.state import ReviewState
from connectors.sandbox.config import sandbox_config_dict
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.farm import SimulatorFarm
from reporting.config import parse_config
from reporting.engine import Engine
from reporting.pdf import render_pdf
from reporting.store import HistoryStore
from tests.bot.harness import (
    APPROVER,
    ENGINEER,
    REVIEW_CHANNEL,
    STRANGER,
    TENANT_ID,
    FakeConnector,
    FakeOpenIdServer,
    TeamsChannel,
    card_action,
    channel_message,
    personal_message,
    running_bot,
)

ANCHOR = date(2026, 11, 16)
WEEK_DAY = date(2026, 11, 10)
HOSTILE = "Leeds WAN: **ISP** fault <b>bold</b> [x](javascript:alert(1)) <script>alert(1)</script> | pipe"
ACME_CHANNEL = TeamsChannel("19:team-acme@thread.tacv2", "acme-shared", "Acme shared")  # sandbox teams_channel


@dataclass
class World:
    review: Review
    state: ReviewState
    out: Path
    handoffs: list[str]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    dataset = SandboxDataset(ANCHOR)
    systems = {"zabbix", "connectwise", "datto", "defender", "cloudflare"}  # ACME's and GLOBEX's stack
    async with SimulatorFarm(dataset, systems=systems) as farm:
        raw = sandbox_config_dict(dataset, f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", farm.sources())
        raw["customers"] = [c for c in raw["customers"] if c["code"] in ("ACME", "GLOBEX")]
        config = parse_config(raw, "<test>", env={})
        store = await HistoryStore.open(config.store.url)
        state = await ReviewState.open(store.engine)
        connectors = build_connectors(config)
        engine = Engine(config, connectors, store, config.branding(None), render_pdf)
        handoffs: list[str] = []
        local = LocalHandoff(tmp_path)

        async def handoff(draft: Any, report: Any, pdf: bytes) -> None:
            handoffs.append(draft.customer_code)
            await local(draft, report, pdf)

        review = Review(
            config,
            engine,
            store,
            state,
            tmp_path,
            handoff,
            may_approve=lambda aad: aad == APPROVER.aad_object_id,
            week_day=lambda: WEEK_DAY,
            backfill_weeks=1,
        )
        try:
            yield World(review, state, tmp_path, handoffs)
        finally:
            engine.close()
            for c in connectors.values():
                await c.aclose()
            await store.close()


def make_bot(world: World, **kwargs: Any) -> Any:
    """``kwargs``: ReportBot's keyword arguments (``deliveries``, ``batch_progress``)."""

    def factory(settings: Any, adapter: Any) -> ReportBot:
        world.review.may_approve = settings.may_approve
        links = LinkSigner.from_settings(settings)
        return ReportBot(settings, world.review.config, world.review, world.state, adapter, pdf_url=links.url, **kwargs)

    return factory


def card_of(activity: dict[str, Any]) -> dict[str, Any] | None:
    for a in activity.get("attachments") or []:
        if a.get("contentType") == "application/vnd.microsoft.card.adaptive":
            return a["content"]
    return None


def actions(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("type") == "Action.Execute":
                out[x["verb"]] = x
            if x.get("type") == "Action.OpenUrl":
                out["open"] = x
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(card)
    return out


def delivery_facts(card: dict[str, Any]) -> dict[str, str]:
    """The review card's delivery steps: step name -> what it shows."""
    out: dict[str, str] = {}

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("type") == "FactSet":
                out.update({f["title"]: f["value"] for f in x["facts"]})
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(card)
    return out


def text_of(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


async def run_and_get_card(rb: Any, connector: FakeConnector, code: str) -> tuple[dict[str, Any], str]:
    r = await rb.client.post(channel_message(f"run {code}", service_url=connector.service_url))
    assert r.status_code == 201, r.text
    try:
        await connector.wait_for(
            lambda calls: any(c.kind == "send" and card_of(c.body) and code in text_of(card_of(c.body)) for c in calls),
            within=60,
        )
    except TimeoutError:
        raise AssertionError(
            f"no review card for {code}; the connector saw "
            f"{[(c.kind, c.conversation_id, str(c.body)[:200]) for c in connector.calls]}"
        ) from None
    call = next(c for c in connector.calls if c.kind == "send" and card_of(c.body) and code in text_of(card_of(c.body)))
    assert call.conversation_id == REVIEW_CHANNEL.channel_id  # a new post in the review channel, not a reply
    return card_of(call.body), call.result_id  # type: ignore[return-value]


async def invoke(
    rb: Any, connector: FakeConnector, verb: str, data: dict[str, Any], reply_to: str, **kw: Any
) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = await rb.client.post(card_action(verb, data, service_url=connector.service_url, reply_to_id=reply_to, **kw))
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    assert elapsed < 2.0, f"the {verb} invoke took {elapsed:.2f} s"
    body = r.json()
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    return body["value"]


async def test_run_save_approve_loop(world: World, oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        card, message_id = await run_and_get_card(rb, connector, "ACME")
        acts = actions(card)
        assert {"save", "approve", "regenerate", "skip", "open"} <= set(acts)
        sent_texts = [c.body.get("text") for c in connector.calls if c.kind in ("send", "reply") and c.body.get("text")]
        assert any("Collecting the figures for ACME" in t for t in sent_texts)  # the ack, at once
        assert "**HIGH**" in text_of(card) and "Uptime" in text_of(
            card
        )  # the week-over-week drop, against the backfilled week
        data = acts["save"]["data"]
        assert data["customer"] == "ACME" and data["version"] == 1

        # the signed PDF link works; a tampered one does not
        pdf = await rb.client.get(acts["open"]["url"])
        assert (
            pdf.status_code == 200
            and pdf.headers["content-type"] == "application/pdf"
            and pdf.content.startswith(b"%PDF")
        )
        bad = await rb.client.get(acts["open"]["url"].replace("/files/", "/files/x"))
        assert bad.status_code == 403

        # save: hostile commentary stored verbatim, card edited for everyone
        saved = await invoke(rb, connector, "save", {**data, "commentary": HOSTILE}, message_id)
        assert actions(saved)["save"]["data"]["version"] == 2
        draft = await world.state.get(data["draft_id"])
        assert draft is not None and draft.commentary == HOSTILE and draft.commentary_by == ENGINEER.name
        await connector.wait_for(lambda calls: any(c.kind == "update" and c.activity_id == message_id for c in calls))
        md = (world.out / "ACME" / "ACME-weekly-2026-11-16.md").read_text()
        assert "<script>" not in md and "&lt;script&gt;" in md  # escaped in the re-rendered draft

        # a stale card (version 1) is refused and answered with the current card
        stale = await invoke(rb, connector, "save", {**data, "commentary": "old"}, message_id)
        assert "out of date" in text_of(stale) and actions(stale)["save"]["data"]["version"] == 2

        # approve by an engineer who is not an approver: refused, nothing changes
        v2 = actions(saved)["approve"]["data"]
        refused = await invoke(rb, connector, "approve", v2, message_id, user=ENGINEER)
        assert "Only the configured approvers" in text_of(refused)
        assert (await world.state.get(data["draft_id"])).state == "saved"  # type: ignore[union-attr]

        # approve by the approver: answered at once, delivery handed off in the background
        approved = await invoke(rb, connector, "approve", {**v2, "commentary": HOSTILE}, message_id, user=APPROVER)
        assert "Approved by Sam Approver" in text_of(approved)
        assert "approve" not in actions(approved)  # frozen
        await rb.bot.wait_background()
        assert world.handoffs == ["ACME"]
        final = world.out / "approved" / "ACME" / "ACME-weekly-2026-11-16.pdf"
        assert final.read_bytes().startswith(b"%PDF")
        updates = [c for c in connector.calls if c.kind == "update" and c.activity_id == message_id]
        assert "Approved by Sam Approver" in text_of(card_of(updates[-1].body))  # type: ignore[arg-type]

        # a repeated approve is a no-op, never a second delivery
        again = await invoke(rb, connector, "approve", {**v2, "version": v2["version"] + 1}, message_id, user=APPROVER)
        assert "nothing was done again" in text_of(again)
        await rb.bot.wait_background()
        assert world.handoffs == ["ACME"]
        assert connector.unexpected == []


async def test_tampered_card_data_and_outsiders_are_refused(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        card, message_id = await run_and_get_card(rb, connector, "ACME")
        data = actions(card)["approve"]["data"]

        # ACME's draft id presented as GLOBEX's: refused, nothing changes
        forged = await invoke(rb, connector, "approve", {**data, "customer": "GLOBEX"}, message_id, user=APPROVER)
        assert "not recognised" in text_of(forged)
        # a draft id that does not exist
        ghost = await invoke(rb, connector, "skip", {**data, "draft_id": "0" * 32, "skip_reason": "x"}, message_id)
        assert "not recognised" in text_of(ghost)
        # a user who is neither engineer nor approver
        outsider = await invoke(rb, connector, "skip", {**data, "skip_reason": "x"}, message_id, user=STRANGER)
        assert "configured engineers" in text_of(outsider)
        # the same click from the customer's own shared channel
        shared = await invoke(rb, connector, "approve", data, message_id, user=APPROVER, channel=ACME_CHANNEL)
        assert "review channel" in text_of(shared)
        assert (await world.state.get(data["draft_id"])).state == "drafted"  # type: ignore[union-attr]
        assert world.handoffs == []

        # skip with a reason works
        skipped = await invoke(
            rb, connector, "skip", {**data, "skip_reason": "customer asked to pause reports"}, message_id
        )
        assert "Skipped by Alex Engineer" in text_of(skipped)
        assert (await world.state.get(data["draft_id"])).reason == "customer asked to pause reports"  # type: ignore[union-attr]


async def test_commands_and_channel_permissions(world: World, oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        svc = connector.service_url

        async def ask(activity: dict[str, Any]) -> str:
            before = len(connector.calls)
            r = await rb.client.post(activity)
            assert r.status_code == 201
            return json.dumps([c.body for c in connector.calls[before:]], ensure_ascii=False)

        # unknown code in the review channel: close matches are offered
        said = await ask(channel_message("run ACMEE", service_url=svc))
        assert "No customer has the code" in said and "Did you mean: ACME" in said
        # in ACME's shared channel another customer's code gets the same answer as a code nobody has,
        # with no suggestions; so does "run all"
        foreign = await ask(channel_message("RUN globex", service_url=svc, channel=ACME_CHANNEL, user=STRANGER))
        nobody = await ask(channel_message("run nobody", service_url=svc, channel=ACME_CHANNEL, user=STRANGER))
        assert (
            "No customer has the code" in foreign
            and "Did you mean" not in foreign
            and "Globex Corporation" not in foreign
        )
        assert "Did you mean" not in nobody
        said = await ask(channel_message("run all", service_url=svc, channel=ACME_CHANNEL, user=STRANGER))
        assert "GLOBEX" not in said and "Globex" not in said and "Did you mean" not in said
        # a stranger in the review channel may not run anything
        said = await ask(channel_message("run ACME", service_url=svc, user=STRANGER))
        assert "not one of the engineers" in said
        # help and status in a personal chat
        said = await ask(personal_message("help", service_url=svc))
        assert "run all" in said and "status" in said
        said = await ask(personal_message("Status", service_url=svc))
        assert "ACME" in said and "GLOBEX" in said and "not started" in said  # no batch yet, no drafts


async def test_references_survive_a_restart_and_other_tenants_are_ignored(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        await run_and_get_card(rb, connector, "ACME")
        async with asyncio.timeout(10):  # the card's message id is stored just after the Connector answers
            while not (await world.state.latest(["ACME"]))[0].card_activity_id:  # noqa: ASYNC110 - polls the store
                await asyncio.sleep(0.05)
        draft = (await world.state.latest(["ACME"]))[0]
        # a message from another organisation's tenant in a channel with the same id: not served
        r = await rb.client.post(
            channel_message("run ACME", service_url=connector.service_url, tenant_id="other-tenant")
        )
        assert r.status_code == 201
        assert "I only work for the organisation that installed me" in json.dumps(connector.activities[-1])
    # a new process: a fresh bot and adapter over the same store reaches the review channel
    # from the stored conversation reference, with no new message from Teams; the customer-week
    # already has its card, so the batch's post edits that card rather than posting a second one
    before = len(connector.calls)
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        await rb.bot.post_card(draft)
    [call] = connector.calls[before:]
    assert call.kind == "update" and call.conversation_id == REVIEW_CHANNEL.channel_id and card_of(call.body)
    stored = await world.state.get(draft.id)
    assert stored is not None and call.activity_id == stored.card_activity_id


async def test_the_team_of_each_channel_is_learnt_from_teams_for_graph(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        r = await rb.client.post(channel_message("status", service_url=connector.service_url, channel=ACME_CHANNEL))
        assert r.status_code == 201
        await rb.bot.post_rollup(WEEK_DAY, ["ACME"])  # a roll-up row is stored next to the references
    assert await world.state.team_of(ACME_CHANNEL.channel_id) == ACME_CHANNEL.aad_group_id
    assert await world.state.team_of("19:never-heard-from@thread.tacv2") == ""
    latest = await world.state.latest_reference()  # the newest conversation, not the roll-up row or a team row
    assert latest is not None and latest["conversation"]["id"].startswith(ACME_CHANNEL.channel_id)


async def test_regenerate_recollects_and_keeps_the_commentary(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        card, message_id = await run_and_get_card(rb, connector, "GLOBEX")
        data = actions(card)["save"]["data"]
        saved = await invoke(
            rb, connector, "save", {**data, "commentary": "FS01 agent offline since Friday"}, message_id
        )
        v2 = actions(saved)["regenerate"]["data"]
        before = sum(1 for p in connector.calls if p.kind == "update")
        busy = await invoke(rb, connector, "regenerate", v2, message_id)
        assert "Collecting GLOBEX's figures again" in text_of(busy)
        await rb.bot.wait_background()
        draft = await world.state.get(data["draft_id"])
        assert draft is not None and draft.version == 3 and draft.state == "drafted"
        assert draft.commentary == "FS01 agent offline since Friday"  # the engineer's words survive a re-collect
        updates = [c for c in connector.calls if c.kind == "update"][before:]
        assert updates and "Regenerated by Alex Engineer" in text_of(card_of(updates[-1].body))  # type: ignore[arg-type]
        md = (world.out / "GLOBEX" / "GLOBEX-weekly-2026-11-16.md").read_text()
        assert "FS01 agent offline since Friday" in md


async def test_status_shows_batch_progress_and_the_reminder_lists_waiting_drafts(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    progress: dict[str, str] = {}
    async with running_bot(
        make_bot(world, batch_progress=lambda: progress), oidc=oidc, connector=connector, draft_pdf=world.review.pdf
    ) as rb:
        await run_and_get_card(rb, connector, "ACME")
        progress["GLOBEX"] = "collecting"  # a batch is running
        before = len(connector.calls)
        r = await rb.client.post(personal_message("status", service_url=connector.service_url))
        assert r.status_code == 201
        said = json.dumps([c.body for c in connector.calls[before:]], ensure_ascii=False)
        assert "ACME" in said and "drafted" in said and "GLOBEX" in said and "collecting" in said
        before = len(connector.calls)
        await rb.bot.remind()
        [call] = connector.calls[before:]
        assert call.conversation_id == REVIEW_CHANNEL.channel_id
        assert call.body["text"] == "Reminder: 1 draft still waiting for approval: ACME."


async def test_sandbox_cards_made_before_anyone_talked_are_posted_on_first_contact(
    world: World, connector: FakeConnector
) -> None:
    """`serve --sandbox --now`: the batch drafts before the Agents Playground has said anything;
    the cards (and the roll-up) are posted to the first conversation that appears."""
    async with running_bot(
        make_bot(world),
        oidc=None,
        connector=connector,
        draft_pdf=world.review.pdf,
        app_id="",
        app_type="MultiTenant",
        sandbox=True,
        review_channel="",
        rollup_channel="",
        approvers=frozenset(),
        engineers=frozenset(),
    ) as rb:
        draft = await world.review.run("ACME")
        await rb.bot.post_card(draft)  # what the batch does when a draft is ready
        await rb.bot.post_rollup(draft.period_end, ["ACME"])
        assert connector.calls == []  # nowhere to post yet
        r = await rb.client.post(personal_message("help", service_url=connector.service_url), authorization=None)
        assert r.status_code == 201
        await rb.bot.wait_background()
        cards = [card_of(c.body) for c in connector.calls if c.kind == "send"]
        texts = [text_of(c) for c in cards if c]
        assert any("Acme Manufacturing (ACME)" in t for t in texts) and any("roll-up" in t.lower() for t in texts)
        assert "Anyone here may approve" in next(t for t in texts if "Acme Manufacturing (ACME)" in t)


async def test_rollup_is_edited_in_place_as_drafts_are_approved(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    from tests.bot.harness import ROLLUP_CHANNEL

    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        # the roll-up channel is known once the bot has heard from it (install / any message)
        r = await rb.client.post(channel_message("help", service_url=connector.service_url, channel=ROLLUP_CHANNEL))
        assert r.status_code == 201
        card, message_id = await run_and_get_card(rb, connector, "ACME")
        # the bot stores the card's message id once Teams' reply to the post is in: wait for it
        for _ in range(200):
            draft = (await world.state.latest(["ACME"]))[0]
            if draft.card_activity_id:
                break
            await asyncio.sleep(0.05)
        assert draft.card_activity_id == message_id
        await rb.bot.post_rollup(draft.period_end, ["ACME"])
        [posted] = [c for c in connector.calls if c.kind == "send" and c.conversation_id == ROLLUP_CHANNEL.channel_id]
        first = text_of(card_of(posted.body))  # type: ignore[arg-type]
        assert "**Review:** Awaiting review" in first
        # a deep link to the review card message in the review channel, and the draft's PDF
        review_thread = quote(f"{REVIEW_CHANNEL.channel_id}", safe="")
        assert f"[Review card](https://teams.microsoft.com/l/message/{review_thread}/{message_id}?" in first
        assert f"tenantId={TENANT_ID}" in first
        assert re.search(r"\[PDF\]\(http://127\.0\.0\.1:\d+/[^)]+\)", first), first
        await invoke(rb, connector, "approve", actions(card)["approve"]["data"], message_id, user=APPROVER)
        await rb.bot.wait_background()
        edits = [c for c in connector.calls if c.kind == "update" and c.activity_id == posted.result_id]
        assert edits
        last = text_of(card_of(edits[-1].body))  # type: ignore[arg-type]
        assert re.search(r"\*\*Review:\*\* (Approved|Delivered \(approved) by " + re.escape(APPROVER.name), last), last


async def test_a_failed_delivery_is_retried_from_the_card_and_only_unfinished_steps_run(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    calls: list[str] = []

    class BotNotInChannelOnce(OutboxBackend):
        async def send_email(self, parcel: Parcel, key: str) -> StepResult:
            calls.append("email")
            return await super().send_email(parcel, key)

        async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
            calls.append("channel")
            if calls.count("channel") == 1:
                raise PermanentError("the card post: Bot Connector 403 BotNotInConversationRoster")
            return await super().post_channel(parcel, key)

        async def archive(self, parcel: Parcel, key: str) -> StepResult:
            calls.append("archive")
            return await super().archive(parcel, key)

    log = await DeliveryLog.open(world.state.engine)
    backend = BotNotInChannelOnce(world.review.config, world.out / "outbox")
    handoff = DeliveryHandoff(Deliverer(world.review.config, log, backend), world.state)
    world.review.handoff = handoff
    async with running_bot(
        make_bot(world, deliveries=log), oidc=oidc, connector=connector, draft_pdf=world.review.pdf
    ) as rb:
        handoff.on_progress = rb.bot.show_progress  # as bot.service wires it
        card, message_id = await run_and_get_card(rb, connector, "ACME")
        data = actions(card)["approve"]["data"]
        await invoke(rb, connector, "approve", data, message_id, user=APPROVER)
        await rb.bot.wait_background()
        draft = await world.state.get(data["draft_id"])
        assert draft is not None and draft.state == "failed" and calls == ["email", "channel"]
        failed_card = card_of(
            [c for c in connector.calls if c.kind == "update" and c.activity_id == message_id][-1].body
        )
        assert failed_card is not None and "BotNotInConversationRoster" in text_of(failed_card)
        retry = actions(failed_card)["retryDelivery"]["data"]
        assert retry["version"] == draft.version

        # an engineer who is not an approver may not retry; a stale card is refused
        refused = await invoke(rb, connector, "retryDelivery", retry, message_id, user=ENGINEER)
        assert "Only the configured approvers" in text_of(refused)
        stale = await invoke(
            rb, connector, "retryDelivery", {**retry, "version": retry["version"] - 1}, message_id, user=APPROVER
        )
        assert "out of date" in text_of(stale)
        assert calls == ["email", "channel"]

        done = await invoke(rb, connector, "retryDelivery", retry, message_id, user=APPROVER)
        assert "Delivery retried by Sam Approver" in text_of(done) and "retryDelivery" not in actions(done)
        await rb.bot.wait_background()
        assert calls == ["email", "channel", "channel", "archive"]  # the email was done: not sent again
        draft = await world.state.get(data["draft_id"])
        assert draft is not None and draft.state == "delivered" and draft.reason is None
        assert {s: v.status for s, v in (await log.steps(draft.id)).items()} == {
            "email": "done",
            "channel": "done",
            "archive": "done",
        }
        assert len(list((world.out / "outbox" / "mail").glob("*.eml"))) == 1
        # the card was edited as each step finished: one edit shows the channel done and the archive not yet
        edits = [card_of(c.body) for c in connector.calls if c.kind == "update" and c.activity_id == message_id]
        shown = [delivery_facts(e) for e in edits if e]
        assert any(
            f.get("Customer channel", "").startswith("\u2705 done") and f.get("Archive", "").endswith("pending")
            for f in shown
        ), shown

        # a second click on the old retry card does nothing
        again = await invoke(
            rb, connector, "retryDelivery", {**retry, "version": draft.version}, message_id, user=APPROVER
        )
        assert "nothing was retried" in text_of(again)
        await rb.bot.wait_background()
        assert calls == ["email", "channel", "channel", "archive"]
        assert connector.unexpected == []


async def test_the_review_card_names_the_technical_audience_and_shows_its_steps(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    config = world.review.config
    acme = config.customer("ACME")
    it = ("it@acme.example", "noc@acme.example")
    acme = acme.model_copy(update={"recipients": acme.recipients.model_copy(update={"technical": it})})
    world.review.config = config = config.model_copy(
        update={"customers": tuple(acme if c.code == "ACME" else c for c in config.customers)}
    )
    log = await DeliveryLog.open(world.state.engine)
    handoff = DeliveryHandoff(
        Deliverer(config, log, OutboxBackend(config, world.out / "outbox"), technical_pdf=world.review.engine.pdf),
        world.state,
    )
    world.review.handoff = handoff
    async with running_bot(
        make_bot(world, deliveries=log), oidc=oidc, connector=connector, draft_pdf=world.review.pdf
    ) as rb:
        handoff.on_progress = rb.bot.show_progress
        card, message_id = await run_and_get_card(rb, connector, "ACME")
        assert "On approval, the technical report also goes to 2 addresses." in text_of(card)
        data = actions(card)["approve"]["data"]
        await invoke(rb, connector, "approve", data, message_id, user=APPROVER)
        await rb.bot.wait_background()
        draft = await world.state.get(data["draft_id"])
        assert draft is not None and draft.state == "delivered"
        edits = [card_of(c.body) for c in connector.calls if c.kind == "update" and c.activity_id == message_id]
        labels = ["Email", "Technical report email", "Customer channel", "Archive", "Technical report archive"]
        facts = {k: v for k, v in delivery_facts(edits[-1]).items() if k in labels}  # type: ignore[arg-type]
        assert list(facts) == labels
        assert all(v.startswith("\u2705 done") for v in facts.values()), facts
        assert "sent to it@acme.example, noc@acme.example" in facts["Technical report email"]
        mails = sorted(p.name for p in (world.out / "outbox" / "mail").glob("*.eml"))
        assert mails == ["ACME-weekly-2026-11-16-technical.eml", "ACME-weekly-2026-11-16.eml"]
        # the technical PDF sent is the final one: the approved draft's, rendered again (same bytes)
        sent = email.message_from_bytes((world.out / "outbox" / "mail" / mails[0]).read_bytes(), policy=policy.default)
        [pdf] = list(sent.iter_attachments())
        assert pdf.get_content() == (world.out / "ACME" / "ACME-weekly-2026-11-16-technical.pdf").read_bytes()
        assert connector.unexpected == []

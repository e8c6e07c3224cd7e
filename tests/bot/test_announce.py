"""The bot's card post in the customer channel, exactly once: the real botbuilder adapter against
the loopback Bot Connector (``FakeConnector``) and msgraph-sdk against the loopback Graph
(``FakeGraph``), linked so that a post the Connector accepts shows up in Graph's channel
messages, as in Teams. The tests assert on the exact requests."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botbuilder.schema import ChannelAccount, ConversationAccount, ConversationReference
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.announce import ChannelAnnouncer, ChannelPostUnavailable
from bot.announce import metadata as announce_tables
from bot.auth import build_adapter
from bot.delivery import Deliverer, DeliveryLog, Parcel, PermanentError
from bot.graph import GraphBackend
from bot.handler import ReportBot
from bot.state import ReviewState
from reporting.config import Config
from reporting.store import create_tables
from tests.bot.fake_graph import FakeGraph
from tests.bot.harness import BOT_APP_ID, TENANT_ID, FakeConnector, FakeCredentialsFactory, make_settings
from tests.bot.test_graph_delivery import (
    CHANNELS,
    MAILBOX,
    SITE_HOST,
    SITE_PATH,
    TEAMS,
    FakeClock,
    make_backend,
    make_config,
    parcel,
)
from tests.processes import run_async

ROOT = Path(__file__).resolve().parents[2]
ACME_FILE_URL = "https://teams.example/sites/team-acme-0001/Shared%20Documents/Acme%20shared/ACME-weekly-2026-11-16.pdf"


class World:
    """Graph, the Connector, the store and a bot whose posts the Connector shows in Graph."""

    def __init__(
        self,
        graph: FakeGraph,
        connector: FakeConnector,
        engine: AsyncEngine,
        state: ReviewState,
        bot: ReportBot,
        config: Config,
        clock: FakeClock,
    ) -> None:
        self.graph, self.connector, self.engine, self.state, self.bot = graph, connector, engine, state, bot
        self.config, self.clock = config, clock
        self.backends: list[GraphBackend] = []

    def backend(self, **kw: Any) -> GraphBackend:
        """A Graph backend whose ``announce`` is the real ChannelAnnouncer (a new one each call:
        as after a restart, nothing is remembered but the store)."""
        b = make_backend(self.config, self.graph, self.clock)
        b.announce = self.announcer(b, **kw)
        self.backends.append(b)
        return b

    def announcer(self, backend: GraphBackend, **kw: Any) -> ChannelAnnouncer:
        kw.setdefault("settle_delay", 5.0)
        return ChannelAnnouncer(
            self.engine,
            post=self.bot.post_customer_card,
            find=lambda p, key, since: backend.find_channel_post(p, key, since, app_id=BOT_APP_ID),
            msp_name=self.config.msp.name,
            sleep=self.clock.sleep,
            **kw,
        )

    def posts(self, channel: str = CHANNELS["ACME"]) -> list[Any]:
        return [c for c in self.connector.calls if c.kind == "send" and c.conversation_id == channel]

    def lookups(self) -> list[str]:
        return [c for c in self.graph.calls() if "/messages" in c and c.startswith("GET /teams/")]


def channel_ref(service_url: str, channel: str, tenant: str = TENANT_ID) -> dict[str, Any]:
    """What the bot stores when it hears from a channel (``TurnContext.get_conversation_reference``)."""
    ref = ConversationReference(
        activity_id="1700000000001",
        user=ChannelAccount(id="29:someone", name="Someone"),
        bot=ChannelAccount(id=f"28:{BOT_APP_ID}", name="reportbot"),
        conversation=ConversationAccount(
            id=f"{channel};messageid=1700000000001", conversation_type="channel", is_group=True, tenant_id=tenant
        ),
        channel_id="msteams",
        service_url=service_url,
    )
    return ref.serialize()  # type: ignore[no-any-return]


@pytest.fixture
async def world(tmp_path: Path, connector: FakeConnector) -> AsyncIterator[World]:
    graph = await FakeGraph().start()
    graph.add_mailbox(MAILBOX)
    graph.add_site(SITE_HOST, SITE_PATH)
    for code in ("ACME", "GLOBEX"):
        graph.add_channel(TEAMS[code], CHANNELS[code], f"{code.title()} shared")
    team_of = {ch: team for team, ch in ((TEAMS[c], CHANNELS[c]) for c in TEAMS)}

    def show_in_graph(call: Any) -> None:  # Teams: a post the Connector accepted is a channel message
        channel = (call.conversation_id or "").split(";")[0]
        if channel in team_of:
            graph.add_channel_message(team_of[channel], channel, call.result_id, activity=call.body, app_id=BOT_APP_ID)

    connector.on_send.append(show_in_graph)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    state = await ReviewState.open(engine)
    await create_tables(engine, announce_tables)
    config = make_config()
    settings = make_settings(oidc=None, service_urls=[connector.service_url])
    adapter = build_adapter(settings, credentials_factory=FakeCredentialsFactory(BOT_APP_ID))
    bot = ReportBot(settings, config, review=None, state=state, adapter=adapter, pdf_url=lambda d, v: "")  # type: ignore[arg-type]
    await state.remember(f"channel:{CHANNELS['ACME']}", "channel", channel_ref(connector.service_url, CHANNELS["ACME"]))
    # what the installation of the app in the team told the bot (see tests/bot/test_field.py for the events themselves)
    await state.remember_install(
        "19:team-msp@thread.tacv2",
        {
            "service_url": connector.service_url,
            "tenant_id": TENANT_ID,
            "aad_group_id": TEAMS["GLOBEX"],
            "bot_id": f"28:{BOT_APP_ID}",
        },
    )
    w = World(graph, connector, engine, state, bot, config, FakeClock())
    try:
        yield w
    finally:
        for b in w.backends:
            await b.aclose()
        await engine.dispose()
        await graph.close()
    assert graph.unexpected == [], graph.unexpected
    assert connector.unexpected == [], connector.unexpected


def card_of(body: dict[str, Any]) -> dict[str, Any]:
    [att] = body["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    return att["content"]  # type: ignore[no-any-return]


async def test_the_card_is_posted_once_in_the_customer_channel_with_the_file_link(world: World) -> None:
    p = parcel(world.config)
    backend = world.backend()
    result = await backend.post_channel(p, "reportbot:d1:channel")
    [post] = world.posts()
    assert post.conversation_id == CHANNELS["ACME"]  # a new post in the channel, not a reply
    assert post.authorization == "Bearer fake-outbound-token"
    card = card_of(post.body)
    assert card["body"][0]["id"] == "reportbot:d1:channel"  # the key, to find the post again
    text = json.dumps(card)
    assert "Weekly report: Acme Corp" in text and "Acme Corp: uptime 99.95 %" in text
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the report (PDF)", "url": ACME_FILE_URL}]
    assert "Sam Approver" not in text  # the customer sees no reviewer names
    assert result.url == ACME_FILE_URL and result.detail.startswith(f"posted in {CHANNELS['ACME']}")
    assert world.lookups() == []  # a first attempt has nothing to look for
    record = await backend.announce.record("reportbot:d1:channel")  # type: ignore[union-attr]
    assert record is not None and record.status == "posted" and record.message_id == post.result_id

    # The step repeated (a crash after the post but before the delivery log said "done"):
    # the post is recorded, so there is no second post and no lookup either.
    again = world.backend()
    await again.post_channel(p, "reportbot:d1:channel")
    assert len(world.posts()) == 1 and world.lookups() == []


async def test_a_post_accepted_before_a_gateway_timeout_is_found_in_graph_and_not_repeated(world: World) -> None:
    p = parcel(world.config)
    world.connector.fail_sends(504, after=True)  # the Connector posted it, then the gateway timed out
    with pytest.raises(ChannelPostUnavailable, match="Bot Connector 504"):
        await world.backend().post_channel(p, "reportbot:d1:channel")
    assert len(world.posts()) == 1
    assert (
        len([c for c in world.connector.calls if c.kind == "send"]) == 1
    )  # botbuilder did not re-send the POST itself

    await world.backend().post_channel(p, "reportbot:d1:channel")  # the step, repeated with the same key
    assert len(world.posts()) == 1  # found, not posted again
    assert world.lookups() == [f"GET /teams/{TEAMS['ACME']}/channels/{CHANNELS['ACME']}/messages?$top=50"]
    [message] = world.graph.channels[(TEAMS["ACME"], CHANNELS["ACME"])].messages
    record = await world.backend().announce.record("reportbot:d1:channel")  # type: ignore[union-attr]
    assert record is not None and record.status == "posted" and record.message_id == message["id"]


async def test_a_refused_post_is_looked_for_then_made_once(world: World) -> None:
    p = parcel(world.config)
    world.connector.fail_sends(503)  # refused: nothing reached the channel
    with pytest.raises(ChannelPostUnavailable):
        await world.backend().post_channel(p, "reportbot:d1:channel")
    assert [c.kind for c in world.connector.calls] == ["refused"]  # one POST: no blind retry by msrest
    await world.backend().post_channel(p, "reportbot:d1:channel")
    assert len(world.posts()) == 1
    assert len(world.lookups()) == 3  # settle_checks: a message can take a moment to show in Graph
    assert world.clock.sleeps.count(5.0) == 2


async def test_the_lookup_pages_back_and_matches_only_the_bots_card_with_this_key(world: World) -> None:
    p = parcel(world.config)
    team, channel = TEAMS["ACME"], CHANNELS["ACME"]
    world.connector.fail_sends(502, after=True)
    with pytest.raises(ChannelPostUnavailable):
        await world.backend().post_channel(p, "reportbot:d1:channel")
    # Since then: 70 people's messages (one quoting the key), another draft's card, a card from another app.
    for i in range(35):
        world.graph.add_channel_message(team, channel, f"h{i}", text=f"message {i}")
    world.graph.add_channel_message(team, channel, "quote", text='see "reportbot:d1:channel"')
    other = {
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {"type": "AdaptiveCard", "body": [{"type": "Container", "id": "reportbot:d0:channel"}]},
            }
        ]
    }
    world.graph.add_channel_message(team, channel, "other-draft", activity=other, app_id=BOT_APP_ID)
    forged = {
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {"type": "AdaptiveCard", "body": [{"type": "Container", "id": "reportbot:d1:channel"}]},
            }
        ]
    }
    world.graph.add_channel_message(team, channel, "other-app", activity=forged, app_id="another-app-id")
    for i in range(35, 70):
        world.graph.add_channel_message(team, channel, f"h{i}", text=f"message {i}")

    await world.backend().post_channel(p, "reportbot:d1:channel")
    assert len(world.posts()) == 1
    assert world.lookups() == [
        f"GET /teams/{team}/channels/{channel}/messages?$top=50",
        f"GET /teams/{team}/channels/{channel}/messages?$top=50&$skiptoken=50",
    ]
    record = await world.backend().announce.record("reportbot:d1:channel")  # type: ignore[union-attr]
    assert record is not None and record.message_id == world.posts()[0].result_id


async def test_a_bot_not_in_the_channel_stops_the_delivery_with_the_connectors_reason(world: World) -> None:
    log = await DeliveryLog.open(world.engine)
    world.connector.fail_sends(403, code="BotNotInConversationRoster")
    p = parcel(world.config)
    steps = await Deliverer(world.config, log, world.backend()).deliver(
        "d1", "ACME", p.period_end, p.report, p.pdf, "Sam Approver"
    )
    assert steps["email"].status == "done" and steps["channel"].status == "failed" and "archive" not in steps
    assert "Bot Connector 403 BotNotInConversationRoster" in (steps["channel"].detail or "")
    assert world.posts() == []
    # the bot is added to the channel; the delivery is retried: a refused post needs no look-up
    steps = await Deliverer(world.config, log, world.backend()).deliver(
        "d1", "ACME", p.period_end, p.report, p.pdf, "Sam Approver"
    )
    assert {s: v.status for s, v in steps.items()} == {"email": "done", "channel": "done", "archive": "done"}
    assert len(world.posts()) == 1 and world.lookups() == [] and len(world.graph.sent(MAILBOX)) == 1


async def test_a_channel_the_bot_never_heard_from_is_reached_through_the_tenants_service_url(world: World) -> None:
    globex = parcel(world.config, "GLOBEX")
    await world.backend().post_channel(globex, "reportbot:d2:channel")
    [post] = world.posts(CHANNELS["GLOBEX"])
    assert post.conversation_id == CHANNELS["GLOBEX"]
    assert world.posts(CHANNELS["ACME"]) == []


async def test_no_team_installation_at_all_is_a_permanent_failure(world: World, connector: FakeConnector) -> None:
    async with world.engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM conversations")
    await world.state.remember(
        "channel:19:other@thread.tacv2",
        "channel",
        channel_ref(connector.service_url, "19:other@thread.tacv2", tenant="another-tenant"),
    )
    with pytest.raises(PermanentError, match="has not been installed in any team"):
        await world.backend().post_channel(parcel(world.config, "GLOBEX"), "reportbot:d2:channel")
    assert connector.calls == []


async def test_a_parcel_carrying_another_customers_entry_is_refused_before_any_post(world: World) -> None:
    acme = parcel(world.config, "ACME")
    forged = Parcel(acme.draft_id, "ACME", world.config.customer("GLOBEX"), acme.period_end, acme.report, acme.pdf, "x")
    with pytest.raises(PermanentError, match="another customer's entry"):
        await world.backend().post_channel(forged, "reportbot:d1:channel")
    with pytest.raises(PermanentError, match="another customer's entry"):
        await world.backend().find_channel_post(forged, "reportbot:d1:channel", acme.report.generated_at)
    assert world.connector.calls == [] and world.graph.requests == []


# -- the process killed after each side effect ------------------------------------------------------


async def run_child(*args: str) -> tuple[int, str]:
    code, out, err = await run_async(
        sys.executable, "-m", "tests.bot.crash_graph_delivery", *args, within=120, cwd=str(ROOT)
    )
    assert code in (0, 137), err.decode()[-3000:]
    return code, out.decode()


@pytest.mark.parametrize("point", ["email", "upload", "post", "archive"])
async def test_killed_after_each_side_effect_the_restart_finishes_with_exactly_one_of_each(
    world: World, tmp_path: Path, point: str
) -> None:
    db = str(tmp_path / "crash.db")
    code, _ = await run_child(db, world.graph.base_url, world.connector.service_url, point)
    assert code == 137, f"the process was meant to die after {point}"
    code, out = await run_child(db, world.graph.base_url, world.connector.service_url)  # the restart
    assert code == 0
    steps = json.loads(out)
    assert {s: v[0] for s, v in steps.items()} == {"email": "done", "channel": "done", "archive": "done"}, steps

    graph, team, channel = world.graph, TEAMS["ACME"], CHANNELS["ACME"]
    sent = graph.sent(MAILBOX)
    assert len(sent) == 1 and graph.drafts(MAILBOX) == []  # exactly one email
    assert [r["emailAddress"]["address"] for r in sent[0]["toRecipients"]] == ["cto@acme.example"]
    assert [r["emailAddress"]["address"] for r in sent[0]["ccRecipients"]] == ["am-acme@northwind.example"]
    assert len(world.posts()) == 1  # exactly one card post in the customer channel
    assert len(graph.channels[(team, channel)].messages) == 1
    assert world.posts(CHANNELS["GLOBEX"]) == []
    ch = graph.channels[(team, channel)]
    assert list(graph.files(ch.drive)) == ["Acme shared/ACME-weekly-2026-11-16.pdf"]  # one file, no "... 1.pdf"
    assert [t["displayName"] for t in ch.tabs.values()] == ["Weekly report"]
    archive = next(iter(graph.sites.values()))["drives"][0]
    assert list(graph.files(archive)) == ["Customers/ACME/2026/ACME-weekly-2026-11-16.pdf"]
    # What the restart did for the step the kill interrupted: looked, then did not repeat it.
    lookups = world.lookups()
    if point == "post":
        assert lookups == [f"GET /teams/{team}/channels/{channel}/messages?$top=50"]  # found: not posted again
    else:
        assert lookups == []
    if point == "email":
        assert steps["email"][2].endswith("(already sent)")

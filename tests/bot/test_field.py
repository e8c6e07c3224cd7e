"""The bot the way an MSP deploys it: the app installed in the MSP's team, and nobody has typed in
the review channel, the roll-up channel or a customer's channel.

Everything the bot learns comes from activities shaped exactly as Teams sends them (the
``installationUpdate`` and ``conversationUpdate`` of an install, ``conversation.tenantId``,
``channelData.tenant/team/channel``), over real HTTP with signed tokens, into the real
``ReportBot``, the real review workflow over the vendor simulators, the real batch with its claims
in the store — and what reaches the loopback Bot Connector is what is checked.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import MetaData, select

from bot.delivery import Parcel
from bot.handler import ReportBot
from cards.customer import channel_card
from scheduler.batch import ROLLUP, BatchRunner
from scheduler.claims import Claims
from tests.bot import test_review_e2e
from tests.bot.harness import (
    APPROVER,
    REVIEW_CHANNEL,
    ROLLUP_CHANNEL,
    TENANT_ID,
    FakeConnector,
    FakeOpenIdServer,
    TeamsChannel,
    bot_added_to_team,
    card_action,
    channel_message,
    installation_update,
    running_bot,
)
from tests.bot.test_review_e2e import WEEK_DAY, World, actions, card_of, make_bot, text_of

world = test_review_e2e.world  # the fixture, shared with the review tests

ACME_CHANNEL = "acme-shared"  # the sandbox's teams_channel of ACME; nobody ever talks there


def batch_for(rb: Any, world: World, *, owner: str = "instance-1", lease: float = 30.0) -> BatchRunner:
    bot: ReportBot = rb.bot

    async def drafted(code: str, draft: Any) -> None:
        await bot.post_card(draft)

    return BatchRunner(
        Claims(world.state.engine, owner, lease),
        codes=lambda: [c.code for c in world.review.config.customers],
        period_end=lambda code, day: world.review.engine.period_for(world.review.config.customer(code), day).end_date,
        make_draft=world.review.run,
        on_drafted=drafted,
        on_complete=bot.post_rollup,
        concurrency=2,
        post_retry_seconds=0.2,
        post_retry_max_seconds=0.5,
    )


async def open_claims(world: World) -> Claims:
    return await Claims.open(world.state.engine, "instance-1", 30.0)


def sends(connector: FakeConnector, channel: str) -> list[Any]:
    return [c for c in connector.calls if c.kind == "send" and c.conversation_id == channel]


async def store_dump(world: World) -> str:
    """Every row of every table of the store, as text (to compare byte for byte)."""
    meta = MetaData()
    async with world.state.engine.connect() as conn:
        await conn.run_sync(meta.reflect)
        rows = {
            name: [list(map(str, r)) for r in (await conn.execute(select(table))).all()]
            for name, table in sorted(meta.tables.items())
        }
    return json.dumps(rows, sort_keys=True)


async def test_installed_in_a_team_the_batch_reaches_every_configured_channel(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    await open_claims(world)
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        # what Teams sends when a team owner adds the app to the MSP's team (General channel only)
        for activity in (
            installation_update(service_url=connector.service_url),
            bot_added_to_team(service_url=connector.service_url),
        ):
            r = await rb.client.post(activity)
            assert r.status_code in (200, 201), r.text
        assert [c for c in connector.calls if c.kind != "unexpected"] == []  # installing posts nothing
        result = await batch_for(rb, world).run(WEEK_DAY)
        assert sorted(result.drafted) == ["ACME", "GLOBEX"] and result.rollup_posted
        review = sends(connector, REVIEW_CHANNEL.channel_id)
        assert sorted(
            next(code for code in ("ACME", "GLOBEX") if code in text_of(card_of(c.body))) for c in review
        ) == ["ACME", "GLOBEX"]
        [rollup] = sends(connector, ROLLUP_CHANNEL.channel_id)
        assert card_of(rollup.body) and "ACME" in text_of(card_of(rollup.body))
        for call in review + [rollup]:  # a new post (not a reply), carrying the tenant Teams needs
            assert call.body["channelData"]["tenant"]["id"] == TENANT_ID
            assert "replyToId" not in call.body
        # a customer's channel nobody has talked in: the delivery's card post gets there too
        draft = (await world.state.latest(["ACME"]))[0]
        report = await world.review.report(draft)
        parcel = Parcel(
            draft.id, "ACME", world.review.config.customer("ACME"), draft.period_end, report, b"%PDF", "Sam"
        )
        message_id = await rb.bot.post_customer_card(
            parcel,
            channel_card(report, file_url="https://files.example/acme.pdf", key="reportbot:x:channel", msp_name="MSP"),
        )
        [post] = sends(connector, ACME_CHANNEL)
        assert post.result_id == message_id and post.body["conversation"]["id"] == ACME_CHANNEL
        # and a later activity from the review channel stores a reference with its tenant
        await rb.client.post(channel_message("status", service_url=connector.service_url))
        stored = await world.state.reference(f"channel:{REVIEW_CHANNEL.channel_id}")
        assert stored is not None and stored["conversation"]["tenantID"] == TENANT_ID
    assert connector.unexpected == []


async def test_a_card_that_cannot_be_posted_is_kept_retried_and_shown(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    claims = await open_claims(world)
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        batch = asyncio.ensure_future(batch_for(rb, world).run(WEEK_DAY))
        # nothing is installed yet: every card waits, the batch does not finish, nothing is dropped
        end = world.review.engine.period_for(world.review.config.customer("ACME"), WEEK_DAY).end_date
        async with asyncio.timeout(60):  # listed at once as "not posted yet", then with the reason of the refusal
            while sum("not been installed" in w for w in (await rb.bot.undelivered()).values()) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        undelivered = await rb.bot.undelivered()
        assert set(undelivered) >= {f"review:ACME:{end}", f"review:GLOBEX:{end}"}
        assert "not been installed in a team" in undelivered[f"review:ACME:{end}"]
        assert not batch.done()
        assert (await claims.get("ACME", end)).status == "collecting"  # type: ignore[union-attr]
        said = await rb.client.post(channel_message("status", service_url=connector.service_url))
        assert said.status_code == 201
        # the app is installed: the retries post every card and then the roll-up
        await rb.client.post(installation_update(service_url=connector.service_url))
        result = await asyncio.wait_for(batch, 30)
        assert sorted(result.drafted) == ["ACME", "GLOBEX"] and result.rollup_posted
        assert len(sends(connector, REVIEW_CHANNEL.channel_id)) == 2
        assert len(sends(connector, ROLLUP_CHANNEL.channel_id)) == 1
        assert await rb.bot.undelivered() == {}
        assert (await claims.get("ACME", end)).status == "drafted"  # type: ignore[union-attr]
        assert (await claims.get(ROLLUP, end)).status == "drafted"  # type: ignore[union-attr]
        # the status card the engineer saw while it waited said so
        status_reply = [c for c in connector.calls if c.kind == "reply" and "card not posted yet" in json.dumps(c.body)]
        assert status_reply


async def test_a_batch_after_run_and_approve_posts_no_second_card(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    await open_claims(world)
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        await rb.client.post(installation_update(service_url=connector.service_url))
        r = await rb.client.post(channel_message("run ACME", service_url=connector.service_url))
        assert r.status_code == 201
        await connector.wait_for(lambda calls: any(c.kind == "send" and card_of(c.body) for c in calls), within=60)
        [posted] = [c for c in sends(connector, REVIEW_CHANNEL.channel_id) if card_of(c.body)]
        data = actions(card_of(posted.body))["approve"]["data"]
        r = await rb.client.post(
            card_action("approve", data, service_url=connector.service_url, reply_to_id=posted.result_id, user=APPROVER)
        )
        assert r.status_code == 200
        await rb.bot.wait_background()
        assert (await world.state.latest(["ACME"]))[0].state == "approved"
        before = len(sends(connector, REVIEW_CHANNEL.channel_id))
        result = await batch_for(rb, world).run(WEEK_DAY)
        assert sorted(result.drafted) == ["ACME", "GLOBEX"]
        new = [c for c in sends(connector, REVIEW_CHANNEL.channel_id)[before:] if card_of(c.body)]
        assert [("GLOBEX" in text_of(card_of(c.body)), "ACME" in text_of(card_of(c.body))) for c in new] == [
            (True, False)
        ]
        assert (await world.state.latest(["ACME"]))[0].state == "approved"  # the batch changed nothing of it


async def test_a_foreign_tenant_leaves_the_store_unchanged(
    world: World, oidc: FakeOpenIdServer, connector: FakeConnector
) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        await rb.client.post(installation_update(service_url=connector.service_url))
        before = await store_dump(world)
        other = "0badc0de-0000-4000-8000-0000000000ff"
        for activity in (
            installation_update(service_url=connector.service_url, tenant_id=other),
            bot_added_to_team(service_url=connector.service_url, tenant_id=other),
            channel_message("run ACME", service_url=connector.service_url, tenant_id=other),
            card_action(
                "approve",
                {"draft_id": "x", "version": 1, "customer": "ACME"},
                service_url=connector.service_url,
                reply_to_id="1",
                tenant_id=other,
            ),
        ):
            r = await rb.client.post(activity)
            assert r.status_code in (201, 403), (activity["type"], r.status_code, r.text)
        assert await store_dump(world) == before
        await rb.bot.wait_background()
    assert await store_dump(world) == before


async def test_an_uninstall_forgets_the_team(world: World, oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        await rb.client.post(installation_update(service_url=connector.service_url))
        assert await world.state.installation(TENANT_ID) is not None
        await rb.client.post(installation_update(service_url=connector.service_url, action="remove"))
        assert await world.state.installation(TENANT_ID) is None


async def test_help_names_no_other_customer(world: World, oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    globex = TeamsChannel(
        "19:team-globex@thread.tacv2", world.review.config.customer("GLOBEX").teams_channel, "Globex shared"
    )
    async with running_bot(make_bot(world), oidc=oidc, connector=connector, draft_pdf=world.review.pdf) as rb:
        for channel, expected in ((globex, "run GLOBEX"), (REVIEW_CHANNEL, "run CODE")):
            before = len(connector.calls)
            await rb.client.post(channel_message("help", service_url=connector.service_url, channel=channel))
            said = json.dumps([c.body for c in connector.calls[before:]])
            assert expected in said and "ACME" not in said, said

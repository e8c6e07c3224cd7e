"""The harness carries what the real bot's end-to-end tests need: background work that edits a
message for everyone (``update_activity``) and posts proactively (``continue_conversation`` after
the turn is over), member look-ups (``TeamsInfo.get_member``), and ``wait_for``."""

from __future__ import annotations

import asyncio
from typing import Any

from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import Activity

from bot.settings import BotSettings
from tests.bot.harness import (
    APPROVER,
    BOT_APP_ID,
    OUTBOUND_TOKEN,
    FakeConnector,
    FakeOpenIdServer,
    card_action,
    channel_message,
    running_bot,
)


class BackgroundBot(ActivityHandler):
    """On a message: replies, then later (after the turn) edits that reply and posts again."""

    def __init__(self, settings: BotSettings, adapter: Any) -> None:
        self.settings = settings
        self.adapter = adapter
        self.tasks: list[asyncio.Task[None]] = []
        self.member_email: str | None = None

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        sent = await turn_context.send_activity("working on it")
        member = await TeamsInfo.get_member(turn_context, turn_context.activity.from_property.id)
        self.member_email = member.email
        reference = TurnContext.get_conversation_reference(turn_context.activity)
        self.tasks.append(asyncio.create_task(self._later(reference, sent.id)))

    async def _later(self, reference: Any, message_id: str) -> None:
        async def callback(context: TurnContext) -> None:
            await context.update_activity(Activity(id=message_id, type="message", text="done"))
            await context.send_activity("here is the result")

        await self.adapter.continue_conversation(reference, callback, bot_app_id=self.settings.app_id)


async def test_background_edit_and_proactive_post(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    connector.members[APPROVER.id] = {**APPROVER.account(), "email": "sam@msp.example", "userPrincipalName": "sam"}
    async with running_bot(BackgroundBot, oidc=oidc, connector=connector) as rb:
        response = await rb.client.post(channel_message("run ACME", service_url=connector.service_url, user=APPROVER))
        assert response.status_code == 201
        await connector.wait_for(lambda calls: len(calls) >= 4)
        await asyncio.gather(*rb.bot.tasks)
    kinds = [c.kind for c in connector.calls]
    # The proactive post replies in the same thread: the reference carries the activity id.
    assert kinds == ["reply", "get_member", "update", "reply"]
    reply, member, update, later = connector.calls
    assert rb.bot.member_email == "sam@msp.example"
    assert member.path.endswith(f"/members/{APPROVER.id}")
    assert update.activity_id == reply.result_id and update.body["text"] == "done"
    assert later.body["text"] == "here is the result" and later.conversation_id == reply.conversation_id
    assert all(c.authorization == f"Bearer {OUTBOUND_TOKEN}" for c in connector.calls)
    assert {created[0] for created in rb.credentials.created} == {BOT_APP_ID}
    assert connector.unexpected == []


async def test_card_action_shape(oidc: FakeOpenIdServer, connector: FakeConnector) -> None:
    seen: list[Activity] = []

    class Recorder(ActivityHandler):
        async def on_turn(self, turn_context: TurnContext) -> None:
            seen.append(turn_context.activity)

    async with running_bot(Recorder(), oidc=oidc, connector=connector) as rb:
        activity = card_action(
            "save",
            {"draft": "d1", "version": 2, "commentary": "ok"},
            service_url=connector.service_url,
            reply_to_id="1000000000001",
            user=APPROVER,
        )
        response = await rb.client.post(activity)
    assert response.status_code == 501  # an invoke nobody answered: botbuilder's "not implemented"
    [got] = seen
    assert (got.type, got.name, got.reply_to_id) == ("invoke", "adaptiveCard/action", "1000000000001")
    assert got.value["action"] == {
        "type": "Action.Execute",
        "id": "save-button",
        "verb": "save",
        "data": {"draft": "d1", "version": 2, "commentary": "ok"},
    }
    assert got.from_property.aad_object_id == APPROVER.aad_object_id
    assert got.conversation.id == "19:review@thread.tacv2;messageid=1000000000001"

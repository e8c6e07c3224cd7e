"""The bot's turn: what Teams sends is read, remembered and routed — nothing else lives here.

- every activity from another organisation's Teams is refused before anything is stored
  (:class:`bot.routing.Router`);
- every other activity's conversation reference (with its tenant) and, for a team, its
  installation are remembered (:meth:`ReportBot._remember`), so the bot can start posts in any
  configured channel of the team later;
- messages go to :class:`bot.commands.Commands`, card actions to :func:`bot.verbs.act`;
- what the bot posts and keeps up to date is :class:`bot.review_cards.ReviewCards`; where a post
  goes and how fast, :mod:`bot.posting`.

Note: botbuilder 4.17.1 double-serialises an ``AdaptiveCardInvokeResponse`` returned from
``on_adaptive_card_invoke`` (HTTP 500), so :meth:`ReportBot.on_invoke_activity` is overridden
and answers with the same JSON as a plain dict.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import Activity, ConversationReference, InvokeResponse

from bot import verbs
from bot.admin import Admin, TestSender
from bot.admin_settings import LiveSettings
from bot.commands import Commands, send_card
from bot.delivery import DeliveryBackend, DeliveryLog, Parcel
from bot.posting import Poster, Routes
from bot.review import Review
from bot.review_cards import ReviewCards, card_message
from bot.routing import (
    Router,
    Where,
    bot_removed,
    conversation_key,
    json_object,
    team_group_of,
    team_of,
    tenant_of,
    user_of,
)
from bot.settings import BotSettings
from bot.state import Draft, ReviewState
from cards.verbs import SETTINGS_VERBS
from reporting.config import Config

log = logging.getLogger(__name__)

CARD_RESPONSE = "application/vnd.microsoft.card.adaptive"
#: An unchanged conversation reference is written again at most this often (its ``updated_at`` is
#: how the sandbox finds the conversation heard from last); a changed one is written at once.
REFERENCE_REFRESH_SECONDS = 60.0


class ReportBot(TeamsActivityHandler):
    def __init__(
        self,
        settings: BotSettings,
        config: Config,
        review: Review,
        state: ReviewState,
        adapter: Any,
        pdf_url: Callable[[str, int], str],
        poster: Poster | None = None,
        *,
        deliveries: DeliveryLog | None = None,
        batch_progress: Callable[[], dict[str, str]] | None = None,
        page_url: Callable[[str, int], str] | None = None,
        live_settings: LiveSettings | None = None,
        mailer: DeliveryBackend | None = None,
    ):
        """``live_settings``: the admins' saved settings (``@reportbot settings``; without it the
        command says settings are not available); ``mailer``: the email step's backend, which test
        sends go through (without it ``test CODE`` says email is not configured)."""
        self.settings = settings
        self.config = config
        self.review = review
        self.state = state
        self.adapter = adapter
        self.poster = poster or Poster(adapter, settings.app_id)
        self.router = Router(settings, config)
        self.background: set[asyncio.Task[None]] = set()
        self.cards = ReviewCards(
            settings,
            config,
            review,
            state,
            self.poster,
            Routes(settings, state, self.poster, self.router),
            pdf_url,
            self._spawn,
            deliveries,
            page_url,
        )
        self.cards.live = live_settings
        tester = TestSender(config, review, mailer, live_settings)
        self.admin = Admin(settings, config, live_settings, tester, self._spawn, self.cards.tell)
        self.commands = Commands(
            settings, config, review, state, self.cards, self._spawn, batch_progress, self.admin, live_settings
        )
        self.verbs = verbs.VerbContext(settings, review, state, self.cards, self._spawn)
        self._teams_known: dict[str, str] = {}  # channel id -> team AAD group id, as stored
        self._refs_known: dict[str, tuple[str, float]] = {}  # key -> (reference as stored, when)
        self._installs_known: dict[str, str] = {}  # team id -> what was stored for it (one write per change)

    # ---- what the service and the batch call ------------------------------------------------
    async def post_card(self, draft: Draft, origin: ConversationReference | None = None) -> None:
        await self.cards.post_card(draft, origin)

    async def post_rollup(self, period_end: Any, codes: list[str]) -> None:
        await self.cards.post_rollup(period_end, codes)

    async def post_internal(self, period_end: Any, card: dict[str, Any]) -> str:
        return await self.cards.post_internal(period_end, card)

    async def post_customer_card(self, parcel: Parcel, card: dict[str, Any]) -> str:
        return await self.cards.post_customer_card(parcel, card)

    async def remind(self) -> None:
        await self.cards.remind()

    async def show_progress(self, draft_id: str) -> None:
        await self.cards.show_progress(draft_id)

    async def show_delivery_ended(self, draft_id: str) -> None:
        await self.cards.show_delivery_ended(draft_id)

    async def undelivered(self) -> dict[str, str]:
        return await self.cards.undelivered()

    # ---- the turn -----------------------------------------------------------------------------
    def where(self, activity: Activity) -> Where:
        return self.router.where(activity)

    async def on_turn(self, turn_context: TurnContext) -> None:
        """Another organisation's activity is refused before anything is read into the store."""
        activity = turn_context.activity
        if self.router.foreign(activity):
            log.warning(
                "refused a %s activity from tenant %r (not this app's tenant)", activity.type, tenant_of(activity)[:64]
            )
            if activity.type == "invoke":
                await turn_context.send_activity(Activity(type="invokeResponse", value=InvokeResponse(status=403)))
            elif activity.type == "message":
                await turn_context.send_activity("I only work for the organisation that installed me.")
            return
        await super().on_turn(turn_context)

    async def _remember(self, tc: TurnContext) -> None:
        activity = tc.activity
        key, kind = conversation_key(activity)
        ref = TurnContext.get_conversation_reference(activity)
        tenant = tenant_of(activity)
        if ref.conversation is not None and tenant:
            # botbuilder-schema 4.17.1 reads the tenant from a JSON key "tenantID"; Teams sends
            # "tenantId" (and channelData.tenant.id), so without this every reference has none
            ref.conversation.tenant_id = tenant
        stored = ref.serialize()
        stored.pop("activityId", None)  # which message it was does not matter: posts start new ones
        marker = json.dumps(stored, sort_keys=True)
        known = self._refs_known.get(key)
        now = time.monotonic()
        if known is None or known[0] != marker or now - known[1] >= REFERENCE_REFRESH_SECONDS:
            await _write_once(self._refs_known, key, (marker, now), self.state.remember(key, kind, stored))
        await self._remember_install(activity, tenant)
        if kind == "channel":  # Graph addresses a channel through its team: remember which one
            channel, group = key.split(":", 1)[1], team_group_of(activity)
            if group and self._teams_known.get(channel) != group:  # one write per channel, not per activity
                await _write_once(self._teams_known, channel, group, self.state.remember_team(channel, group))
        if self.cards.waiting():  # sandbox: cards made before anyone talked to the bot
            self._spawn(self.cards.post_waiting())

    async def _remember_install(self, activity: Activity, tenant: str) -> None:
        """A team-scoped activity (the installation events above all) tells where the team's
        channels are reached: kept so a configured channel nobody typed in can get a post."""
        team = team_of(activity)
        if not team or not activity.service_url:
            return
        team_id = str(team["id"])
        if bot_removed(activity):
            await self.state.forget_install(team_id)
            self._installs_known.pop(team_id, None)
            log.info("the app was removed from team %s", team_id)
            return
        info = {
            "service_url": activity.service_url,
            "tenant_id": tenant,
            "aad_group_id": str(team.get("aadGroupId") or ""),
            "bot_id": activity.recipient.id if activity.recipient else "",
        }
        marker = repr(sorted(info.items()))
        if self._installs_known.get(team_id) != marker:
            await _write_once(self._installs_known, team_id, marker, self._store_install(team_id, info))

    async def _store_install(self, team_id: str, info: dict[str, str]) -> None:
        await self.state.remember_install(team_id, info)
        if info["aad_group_id"]:  # the team's General channel has the team's id
            await self.state.remember_team(team_id, info["aad_group_id"])

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        await self._remember(turn_context)
        await super().on_conversation_update_activity(turn_context)

    async def on_installation_update(self, turn_context: TurnContext) -> None:
        await self._remember(turn_context)
        if (turn_context.activity.action or "").lower() == "add":
            log.info("installed in %s", conversation_key(turn_context.activity)[0])

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        await self._remember(turn_context)
        where = self.where(activity)
        if isinstance(activity.value, dict) and activity.value.get("verb"):  # Action.Submit from an old client
            verb = activity.value.get("verb")
            if verb in SETTINGS_VERBS:
                card = await self.admin.act(turn_context, verb, activity.value, user_of(activity), where)
                await self._update_card_message(turn_context, activity.reply_to_id, card)
                return
            card = await verbs.act(self.verbs, activity.value.get("verb"), activity.value, user_of(activity), where)
            await self._update_card_message(turn_context, activity.reply_to_id, card)
            return
        TurnContext.remove_recipient_mention(activity)
        await self.commands.handle(turn_context, where, (activity.text or "").strip().split(), user_of(activity))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        action = json_object(json_object(activity.value).get("action"))
        data = json_object(action.get("data"))
        await self._remember(turn_context)
        verb = action.get("verb")
        if isinstance(verb, str) and verb in SETTINGS_VERBS:
            card = await self.admin.act(turn_context, verb, data, user_of(activity), self.where(activity))
        else:
            card = await verbs.act(self.verbs, verb, data, user_of(activity), self.where(activity))
        # plain JSON, not an AdaptiveCardInvokeResponse: msrest would walk the whole card to
        # serialise its ``value`` (~1 ms an answer); bot.app sends either shape as it is
        return InvokeResponse(status=200, body={"statusCode": 200, "type": CARD_RESPONSE, "value": card})

    async def _update_card_message(self, tc: TurnContext, activity_id: str | None, card: dict[str, Any]) -> None:
        if not activity_id:
            await send_card(tc, card)
            return
        update = card_message(card)
        update.id = activity_id
        await tc.update_activity(update)

    # ---- background work ------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def wait_background(self) -> None:
        while self.background or self.review.background:
            await asyncio.gather(*list(self.background), *list(self.review.background), return_exceptions=True)


async def _write_once(known: dict[str, Any], key: str, value: Any, write: Awaitable[None]) -> None:
    """``write`` with ``known[key] = value`` set first, so activities arriving together while it
    runs see it and make no second write; forgotten again if the write fails."""
    known[key] = value
    try:
        await write
    except BaseException:
        known.pop(key, None)
        raise

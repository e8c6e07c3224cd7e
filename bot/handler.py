"""The Teams side of the review workflow: commands, review cards and their verbs.

Commands (a channel mention with the mention stripped, or a personal chat; case-insensitive):
``run <CODE>``, ``run all``, ``status``, ``help``. Where they are accepted:

- the review channel (``[teams] review_channel``) and personal chats: configured engineers and
  approvers (``BotSettings.may_run``); in ``--sandbox`` with no review channel configured, the
  conversation where ``run`` is typed acts as the review channel;
- a customer-shared channel (a customer's ``teams_channel``): only that customer's own code,
  and nothing about any other customer is ever shown there — an unknown or foreign code gets
  the same "unknown" answer without suggestions;
- anywhere else: a one-line refusal.

Card actions arrive as ``adaptiveCard/action`` invokes (Action.Execute) or, from old clients,
as a message whose ``value`` carries the verb (Action.Submit). They are routed by verb through
:attr:`ReportBot.verbs`. The data on the card (draft id, version, customer) is checked against
the store before anything happens. The invoke is answered at once with the updated card; slow
work (re-collecting, the final PDF, delivery) runs in the background and the card is then
edited for everyone with ``update_activity``.

Note: botbuilder 4.17.1 double-serialises an ``AdaptiveCardInvokeResponse`` returned from
``on_adaptive_card_invoke`` (HTTP 500), so :meth:`ReportBot.on_invoke_activity` is overridden.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import Activity, AdaptiveCardInvokeResponse, ConversationReference, InvokeResponse
from botbuilder.schema.teams import TeamsChannelData

from bot.announce import ChannelPostUnavailable
from bot.delivery import STEP_LABELS, STEPS, DeliveryLog, Parcel, PermanentError
from bot.posting import NoRoute, NotPosted, Poster, PostRefused
from bot.review import Review, ReviewError, StaleVersion, User
from bot.settings import BotSettings
from bot.state import Draft, ReviewState
from cards import verbs
from cards.help import help_card
from cards.review import Decision, DeliveryStepView, review_card
from cards.rollup import rollup_card
from cards.status import status_card
from cards.unknown import unknown_customer_card
from reporting import snapshot
from reporting.config import Config
from reporting.drafts import DraftState
from reporting.rollup import rollup_rows

log = logging.getLogger(__name__)

CARD_RESPONSE = "application/vnd.microsoft.card.adaptive"
_REVIEW_WORD = {"drafted": "awaiting review", "saved": "awaiting approval", "approved": "approved",
                "delivering": "delivering", "delivered": "delivered", "skipped": "skipped", "failed": "delivery failed"}


@dataclass(frozen=True)
class Where:
    """Where an activity came from, as far as permissions go."""

    kind: str  # "review" | "personal" | "customer" | "other"
    conversation_key: str
    customer: str | None = None  # the customer whose shared channel this is


def conversation_key(activity: Activity) -> tuple[str, str]:
    """(key, kind) under which a conversation's reference is stored."""
    conv = activity.conversation
    ctype = (conv.conversation_type if conv else None) or "personal"
    if ctype == "channel":
        data = TeamsChannelData().deserialize(activity.channel_data or {})
        channel = data.channel.id if data.channel and data.channel.id else (conv.id or "").split(";")[0]
        return f"channel:{channel}", "channel"
    if ctype == "personal":
        user = activity.from_property.aad_object_id or activity.from_property.id if activity.from_property else ""
        return f"personal:{user}", "personal"
    return f"{ctype}:{conv.id}", ctype


def _tenant(activity: Activity) -> str:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = data.get("tenant") if isinstance(data.get("tenant"), dict) else {}
    return str(tenant.get("id") or (activity.conversation.tenant_id if activity.conversation else "") or "")


def _team(activity: Activity) -> dict[str, Any]:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = data.get("team")
    return team if isinstance(team, dict) and team.get("id") else {}


def _bot_removed(activity: Activity) -> bool:
    """The app was uninstalled from the team (``installationUpdate`` remove, or the bot among
    ``membersRemoved`` of a ``conversationUpdate``)."""
    if activity.type == "installationUpdate":
        return (activity.action or "").lower() in ("remove", "remove-upgrade")
    bot_id = activity.recipient.id if activity.recipient else None
    return activity.type == "conversationUpdate" and any(m.id == bot_id for m in activity.members_removed or [])


def _user(activity: Activity) -> User:
    f = activity.from_property
    return User(aad_object_id=(f.aad_object_id or "") if f else "", name=(f.name or "") if f else "")


class ReportBot(TeamsActivityHandler):
    def __init__(self, settings: BotSettings, config: Config, review: Review, state: ReviewState, adapter: Any,
                 pdf_url: Callable[[str, int], str], poster: Poster | None = None):
        self.settings = settings
        self.poster = poster or Poster(adapter, settings.app_id)
        self.config = config
        self.review = review
        self.state = state
        self.adapter = adapter
        self.pdf_url = pdf_url
        self.customer_channels = {c.teams_channel: c.code for c in config.customers if c.teams_channel}
        self.codes = [c.code for c in config.customers]
        self.verbs: dict[str, Callable[[TurnContext, Draft, dict[str, Any], User], Awaitable[dict[str, Any]]]] = {
            verbs.VERB_SAVE: self._save,
            verbs.VERB_APPROVE: self._approve,
            verbs.VERB_REGENERATE: self._regenerate,
            verbs.VERB_SKIP: self._skip,
            verbs.VERB_RETRY: self._retry,
        }
        self.background: set[asyncio.Task[None]] = set()
        self.batch_progress: Callable[[], dict[str, str]] | None = None  # set by the scheduler wiring
        self.deliveries: DeliveryLog | None = None  # set when delivery is configured: the card shows each step
        self._teams_known: dict[str, str] = {}  # channel id -> team AAD group id, as stored
        self._installs_known: dict[str, str] = {}  # team id -> what was stored for it (one write per change)
        self.not_posted: dict[str, str] = {}  # "review:<CODE>:<week>" / "rollup:<week>" -> why its card waits
        self.post_retry_seconds = 5.0  # first wait before posting a card again; doubles up to the max
        self.post_retry_max_seconds = 300.0
        self._unposted: list[str] = []  # sandbox: draft ids whose cards wait for a conversation
        self._unposted_rollup: tuple[Any, list[str]] | None = None

    # ---- where are we -------------------------------------------------------------------
    def foreign(self, activity: Activity) -> bool:
        """An activity from another organisation's Teams (a single-tenant app's other tenants)."""
        tenant = _tenant(activity)
        return bool(self.settings.app_type == "SingleTenant" and self.settings.app_tenant_id and tenant
                    and tenant != self.settings.app_tenant_id)

    def where(self, activity: Activity) -> Where:
        key, kind = conversation_key(activity)
        if self.foreign(activity):
            return Where("other", key)  # another organisation's Teams: nothing here is for them
        if kind == "channel":
            channel = key.split(":", 1)[1]
            if channel in self.customer_channels:
                return Where("customer", key, self.customer_channels[channel])
            if channel == self.settings.review_channel or (self.settings.sandbox and not self.settings.review_channel):
                return Where("review", key)
            return Where("other", key)
        if kind == "personal":
            return Where("personal", key)
        if self.settings.sandbox and not self.settings.review_channel:
            return Where("review", key)  # the Agents Playground's group chat
        return Where("other", key)

    async def on_turn(self, turn_context: TurnContext) -> None:
        """Another organisation's activity is refused before anything is read into the store."""
        activity = turn_context.activity
        if self.foreign(activity):
            log.warning("refused a %s activity from tenant %r (not this app's tenant)", activity.type, _tenant(activity)[:64])
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
        tenant = _tenant(activity)
        if ref.conversation is not None and tenant:
            # botbuilder-schema 4.17.1 reads the tenant from a JSON key "tenantID"; Teams sends
            # "tenantId" (and channelData.tenant.id), so without this every reference has none
            ref.conversation.tenant_id = tenant
        await self.state.remember(key, kind, ref.serialize())
        await self._remember_install(activity, tenant)
        if kind == "channel":  # Graph addresses a channel through its team: remember which one
            data = TeamsChannelData().deserialize(tc.activity.channel_data or {})
            channel, group = key.split(":", 1)[1], data.team.aad_group_id if data.team is not None else None
            if group and self._teams_known.get(channel) != group:  # one write per channel, not per activity
                await self.state.remember_team(channel, group)
                self._teams_known[channel] = group
        if self._unposted or self._unposted_rollup:  # sandbox: cards made before anyone talked to the bot
            self._spawn(self._post_waiting())

    async def _remember_install(self, activity: Activity, tenant: str) -> None:
        """A team-scoped activity (the installation events above all) tells where the team's
        channels are reached: kept so a configured channel nobody typed in can get a post."""
        team = _team(activity)
        if not team or not activity.service_url:
            return
        team_id = str(team["id"])
        if _bot_removed(activity):
            await self.state.forget_install(team_id)
            self._installs_known.pop(team_id, None)
            log.info("the app was removed from team %s", team_id)
            return
        info = {"service_url": activity.service_url, "tenant_id": tenant, "aad_group_id": str(team.get("aadGroupId") or ""),
                "bot_id": activity.recipient.id if activity.recipient else ""}
        marker = repr(sorted(info.items()))
        if self._installs_known.get(team_id) != marker:
            await self.state.remember_install(team_id, info)
            self._installs_known[team_id] = marker
            if info["aad_group_id"]:  # the team's General channel has the team's id
                await self.state.remember_team(team_id, info["aad_group_id"])

    async def _post_waiting(self) -> None:
        waiting, self._unposted = self._unposted, []
        rollup, self._unposted_rollup = self._unposted_rollup, None
        for draft_id in waiting:
            draft = await self.state.get(draft_id)
            if draft is not None:
                await self.post_card(draft)
        if rollup is not None:
            await self.post_rollup(*rollup)

    # ---- activities -----------------------------------------------------------------------
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
            card = await self._act(turn_context, activity.value.get("verb"), activity.value, where)
            await self._update_card_message(turn_context, activity.reply_to_id, card)
            return
        TurnContext.remove_recipient_mention(activity)
        words = (activity.text or "").strip().split()
        command = words[0].lower() if words else "help"
        args = words[1:]
        user = _user(activity)
        if where.kind == "other":
            await turn_context.send_activity("I take commands in the review channel, in a personal chat, or in a customer's own channel.")
            return
        if where.kind != "customer" and not self.settings.may_run(user.aad_object_id):
            await turn_context.send_activity("You are not one of the engineers configured to run reports ([teams] engineers).")
            return
        if command == "help" or command not in ("run", "status"):
            note = f"In this channel only {where.customer}'s report can be run." if where.customer else None
            if command not in ("help", ""):
                note = f"I don't know the command {command[:30]!r}." + (f" {note}" if note else "")
            await self._send_card(turn_context, help_card(note=note, example=where.customer or "CODE"))
            return
        if command == "status":
            await self._status(turn_context, where)
            return
        await self._run(turn_context, where, args)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        value = activity.value if isinstance(activity.value, dict) else {}
        action = value.get("action") if isinstance(value.get("action"), dict) else {}
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        await self._remember(turn_context)
        card = await self._act(turn_context, action.get("verb"), data, self.where(activity))
        # the body stays an msrest model: CloudAdapter serialises it once (a dict would fail)
        return InvokeResponse(status=200, body=AdaptiveCardInvokeResponse(status_code=200, type=CARD_RESPONSE, value=card))

    # ---- commands -------------------------------------------------------------------------
    async def _run(self, tc: TurnContext, where: Where, args: list[str]) -> None:
        if not args:
            example = where.customer or "CODE"
            await tc.send_activity(f"Say which customer: **run {example}**" + ("." if where.customer else ", or **run all**."))
            return
        target = args[0].upper()
        if target == "ALL":
            if where.kind == "customer":
                await self._send_card(tc, unknown_customer_card(args[0], []))
                return
            codes = list(self.codes)
        else:
            allowed = [where.customer] if where.kind == "customer" else self.codes
            if target not in allowed:
                close = [] if where.kind == "customer" else difflib.get_close_matches(target, self.codes, n=3, cutoff=0.5)
                await self._send_card(tc, unknown_customer_card(args[0], close))
                return
            codes = [target]
        names = ", ".join(codes) if len(codes) <= 5 else f"{len(codes)} customers"
        await tc.send_activity(f"Collecting this week's figures for {names}; the draft card{'s' if len(codes) > 1 else ''} "
                               "will appear in the review channel as each is ready.")
        origin = TurnContext.get_conversation_reference(tc.activity)
        task = asyncio.ensure_future(self._draft_and_post(codes, origin))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _draft_and_post(self, codes: list[str], origin: ConversationReference) -> None:
        sem = asyncio.Semaphore(self.config.schedule.concurrency)

        async def one(code: str) -> None:
            async with sem:
                try:
                    draft = await self.review.run(code)
                except Exception as err:  # one customer's failure is reported, the others go on
                    log.exception("run %s failed", code)
                    await self._tell(origin, f"{code}: the draft could not be made ({type(err).__name__}: {err})")
                    return
            await self.keep_posting(draft, origin)

        await asyncio.gather(*(one(c) for c in codes))

    async def keep_posting(self, draft: Draft, origin: ConversationReference | None = None) -> None:
        """Post the draft's card, and if Teams cannot take it now keep trying with backoff (the
        first failure is told where ``run`` was typed). Ends when posted, or when the draft was
        decided meanwhile; a shutdown cancels it (the draft stays in the store, card-less, and
        shows as undelivered until a batch or ``run`` posts it)."""
        delay, told = self.post_retry_seconds, False
        while True:
            try:
                await self.post_card(draft, origin)
                return
            except NotPosted as err:
                log.warning("%s; trying again in %.0f s", err, delay)
                if origin is not None and not told:
                    told = True
                    await self._tell(origin, f"{draft.customer_code}: the review card could not be posted yet ({err}); "
                                             "I keep trying.")
            await asyncio.sleep(delay)
            delay = min(self.post_retry_max_seconds, delay * 2)

    async def undelivered(self) -> dict[str, str]:
        """Cards of the current weeks that are not in Teams: ``review:<CODE>:<week>`` or
        ``rollup:<week>`` -> why (for ``status`` and ``/healthz``)."""
        out = dict(self.not_posted)
        day = self.review.week_day()
        weeks = sorted({self.review.engine.period_for(c, day).end_date for c in self.config.customers})
        for d in await self.state.without_card(weeks):
            out.setdefault(f"review:{d.customer_code}:{d.period_end.isoformat()}", "not posted yet")
        return out

    async def _tell(self, origin: ConversationReference, text: str) -> None:
        try:
            await self._send_to(origin, MessageFactory.text(text), "a reply")
        except NotPosted as err:
            log.warning("could not answer in %s: %s", origin.conversation.id if origin.conversation else "?", err)

    async def _status(self, tc: TurnContext, where: Where) -> None:
        """This week's drafts and their state; while a batch runs, its progress (queued,
        collecting, failed) for customers without a draft yet."""
        codes = [where.customer] if where.customer else self.codes
        week = self.review.week_day()
        rows = []
        for code in codes:
            if code is None:
                continue
            end = self.review.engine.period_for(self.config.customer(code), week).end_date
            draft = await self.state.for_week(code, end)
            payload = await self.review.history.get(code, end) if draft is not None else None
            flags = len(payload.get("flags", [])) if payload else 0
            if draft is not None:
                state = draft.state if draft.card_activity_id else f"{draft.state}, card not posted yet"
                rows.append((code, state, flags, draft.updated_at))
            else:
                progress = self.batch_progress().get(code) if self.batch_progress else None
                rows.append((code, progress or "not started", 0, None))
        await self._send_card(tc, status_card(rows, period_end=end if codes else None, tz=self.config.msp.timezone))

    # ---- cards ----------------------------------------------------------------------------
    async def card_for(self, draft: Draft, message: str | None = None) -> dict[str, Any]:
        report = await self.review.report(draft)
        decision = Decision(draft.decided_by or "", draft.decided_at, draft.reason) if draft.decided_at else None
        steps: list[DeliveryStepView] = []
        recorded = await self.deliveries.steps(draft.id) if self.deliveries is not None else {}
        if recorded:
            for name in STEPS:
                s = recorded.get(name)
                url = s.url if s and s.url and s.url.startswith(("http://", "https://")) else None
                steps.append(DeliveryStepView(STEP_LABELS[name], s.status if s else "pending", s.detail if s else None, url))
        elif draft.state == DraftState.APPROVED:
            steps.append(DeliveryStepView("Delivery", "pending", "final PDF rendered; handed to delivery"))
        if draft.state == DraftState.FAILED and not any(s.status == "failed" for s in steps):
            steps.append(DeliveryStepView("Delivery", "failed", draft.reason))
        note = None
        if draft.editable:
            note = ("Anyone here may approve (sandbox mode: no approvers are configured)."
                    if self.settings.sandbox and not self.settings.approvers else "Only the configured approvers may approve.")
        return review_card(
            report, draft_id=draft.id, version=draft.version, state=draft.state, commentary=draft.commentary,
            pdf_url=self.pdf_url(draft.id, draft.version), approvers_note=note, steps=steps, message=message,
            decision=decision, tz=self.config.msp.timezone,
        )

    async def post_card(self, draft: Draft, origin: ConversationReference | None = None) -> None:
        """Post the draft's card in the review channel (or, in the sandbox without one, where
        ``run`` was typed) and remember the message, so later changes edit it.

        A customer-week has one card: when its draft already has one and this is not a fresh
        ``run`` typed by someone (``origin``), that card is edited instead of posting a second.
        Raises :class:`NotPosted` (kept in :attr:`not_posted` for ``status`` and ``/healthz``)
        when the card cannot be posted now; the caller keeps it and tries again."""
        key = f"review:{draft.customer_code}:{draft.period_end.isoformat()}"
        current = await self.state.get(draft.id) or draft
        if origin is None and current.card_ref and current.card_activity_id:
            await self.refresh_card(current)
            self.not_posted.pop(key, None)
            return
        try:
            ref = await self._review_reference(origin)
        except NoRoute as err:
            if self.settings.sandbox and not self.settings.review_channel:
                # nobody has talked to the sandbox bot yet: post when someone does
                if draft.id not in self._unposted:
                    self._unposted.append(draft.id)
                log.info("%s's review card waits for the first conversation", draft.customer_code)
                return
            self.not_posted[key] = str(err)
            raise
        card = await self.card_for(current)
        try:
            activity_id = await self.poster.send(ref, MessageFactory.attachment(CardFactory.adaptive_card(card)),
                                                 f"{draft.customer_code}'s review card")
        except NotPosted as err:
            self.not_posted[key] = str(err)
            raise
        await self.state.set_card(draft.id, ref.serialize(), activity_id)
        self.not_posted.pop(key, None)

    async def _review_reference(self, origin: ConversationReference | None) -> ConversationReference:
        return await self._channel_reference(self.settings.review_channel, origin, purpose="the review channel")

    async def _channel_reference(self, channel: str, origin: ConversationReference | None = None, *,
                                 purpose: str = "the channel", internal: bool = True) -> ConversationReference:
        """Where to start a new post in ``channel``: its stored reference, else the newest team
        installation of the tenant, addressed to the channel id (Teams lets a bot start a post in
        any channel of a team it is installed in; nobody needs to have typed there). In the
        sandbox with no channel configured: where ``run`` was typed (``origin``), else the
        conversation the bot heard from last — never a customer's channel (``internal``).
        Raises :class:`NoRoute` when none of these exists."""
        if channel:
            stored = await self.state.reference(f"channel:{channel}")
            if stored is not None:
                ref = ConversationReference().deserialize(stored)
                ref.conversation.id = channel
            else:
                install = await self.state.installation(self.settings.app_tenant_id or "")
                if install is None and self.settings.app_tenant_id:
                    install = await self.state.installation()
                if install is None:
                    raise NoRoute(f"{purpose} ({channel}) cannot be reached: the app has not been installed in a team "
                                  "yet (install it in the team that holds the channel)")
                ref = self.poster.channel_reference(channel, install)
        else:
            if not self.settings.sandbox:
                raise NoRoute(f"{purpose} is not configured ([teams])")
            if origin is not None and internal and self._is_customer_conversation(origin.conversation.id if origin.conversation else ""):
                origin = None
            if origin is None:  # a scheduled batch
                latest = await self._latest_internal_reference()
                if latest is None:
                    raise NoRoute(f"{purpose}: nobody has talked to the bot yet")
                origin = ConversationReference().deserialize(latest)
            ref = ConversationReference().deserialize(origin.serialize())
            ref.conversation.id = ref.conversation.id.split(";")[0]
        ref.activity_id = None
        return ref

    def _is_customer_conversation(self, conversation_id: str) -> bool:
        return (conversation_id or "").split(";")[0] in self.customer_channels

    async def _latest_internal_reference(self) -> dict[str, Any] | None:
        """Sandbox: the newest conversation that is not a customer's channel."""
        for ref in await self.state.recent_references():
            if not self._is_customer_conversation(str((ref.get("conversation") or {}).get("id") or "")):
                return ref
        return None

    async def _send_to(self, ref: ConversationReference, activity: Activity, what: str = "a message") -> str:
        """A new message in ``ref``'s conversation (a new post in a channel), not a reply: paced
        and retried by :class:`bot.posting.Poster`."""
        return await self.poster.send(ref, activity, what)

    async def post_customer_card(self, parcel: Parcel, card: dict[str, Any]) -> str:
        """The delivery's card as a new post in the parcel's customer channel (``bot.announce``
        makes it exactly once). The channel comes from the customer's configuration entry only;
        it is reached through its stored reference or the tenant's team installation."""
        channel = parcel.customer.teams_channel
        what = f"the card post in {parcel.code}'s channel {channel}"
        try:
            ref = await self._channel_reference(channel, purpose=f"{parcel.code}'s channel", internal=False)
        except NoRoute as err:
            raise PermanentError(f"{what}: the bot has not been installed in any team yet (no channel to reach Teams through)") from err
        try:
            return await self.poster.send(ref, MessageFactory.attachment(CardFactory.adaptive_card(card)), what, once=True)
        except PostRefused as err:
            raise PermanentError(str(err)) from err
        except NotPosted as err:
            raise ChannelPostUnavailable(str(err)) from err

    async def _rollup_card(self, period_end: Any, codes: list[str]) -> dict[str, Any]:
        reports = []
        for code in codes:
            payload = await self.review.history.get(code, period_end)
            if payload is not None:
                reports.append(snapshot.from_dict(payload))
        states = {d.customer_code: d.state for d in await self.state.week(period_end)}
        rows = [replace(r, action=f"{r.action} ({_REVIEW_WORD.get(states.get(r.code, ''), 'no draft')})") for r in rollup_rows(reports)]
        return rollup_card(rows, period_end, self.config.msp.name)

    async def post_rollup(self, period_end: Any, codes: list[str]) -> None:
        """The week's roll-up card in the roll-up channel (``[teams] rollup_channel``, else the
        review channel), remembered so it is edited in place as drafts get approved and
        delivered. Raises :class:`NotPosted` when it cannot be posted now (the batch keeps it)."""
        key = f"rollup:{period_end.isoformat()}"
        stored = await self.state.reference(key)
        if stored is not None:  # posted before (another batch, another instance): edit, never a second card
            await self.refresh_rollup(period_end)
            self.not_posted.pop(key, None)
            return
        card = await self._rollup_card(period_end, codes)
        try:
            ref = await self._channel_reference(self.settings.rollup_channel or self.settings.review_channel,
                                                purpose="the roll-up channel")
        except NoRoute as err:
            if self.settings.sandbox:
                self._unposted_rollup = (period_end, codes)
                return
            self.not_posted[key] = str(err)
            raise
        try:
            activity_id = await self._send_to(ref, MessageFactory.attachment(CardFactory.adaptive_card(card)),
                                              f"the roll-up of {period_end}")
        except NotPosted as err:
            self.not_posted[key] = str(err)
            raise
        await self.state.remember(key, "rollup", {"ref": ref.serialize(), "activity_id": activity_id, "codes": codes})
        self.not_posted.pop(key, None)

    async def refresh_rollup(self, period_end: Any) -> None:
        """Edit the week's roll-up card (if posted) to show each customer's review state now."""
        stored = await self.state.reference(f"rollup:{period_end.isoformat()}")
        if stored is None:
            return
        card = await self._rollup_card(period_end, stored["codes"])
        await self._edit(stored["ref"], stored["activity_id"], card, f"the roll-up card of {period_end}")

    async def remind(self) -> None:
        """Drafts of the last complete week still waiting for approval, listed in the review channel."""
        week = self.review.week_day()
        waiting = []
        for c in self.config.customers:
            draft = await self.state.for_week(c.code, self.review.engine.period_for(c, week).end_date)
            if draft is not None and draft.editable:
                waiting.append(c.code)
        if not waiting:
            return
        try:
            ref = await self._review_reference(None)
            await self._send_to(ref, MessageFactory.text(
                f"Reminder: {len(waiting)} draft{'s' if len(waiting) != 1 else ''} still waiting for approval: {', '.join(waiting)}."),
                "the approval reminder")
        except NotPosted as err:
            log.error("the approval reminder was not posted: %s", err)

    async def show_progress(self, draft_id: str) -> None:
        """A delivery step finished: edit the draft's review card to show it."""
        draft = await self.state.get(draft_id)
        if draft is not None:
            await self.refresh_card(draft)

    async def show_delivery_ended(self, draft_id: str) -> None:
        """A delivery ended without a card click (resumed at start-up): the review card and the
        roll-up are edited as after an approve (:meth:`_when_delivered`)."""
        draft = await self.state.get(draft_id)
        if draft is not None:
            await self._when_delivered(draft)

    async def refresh_card(self, draft: Draft, message: str | None = None) -> None:
        """Edit the draft's posted card for everyone (after a change)."""
        if not draft.card_ref or not draft.card_activity_id:
            return
        card = await self.card_for(draft, message)
        await self._edit(draft.card_ref, draft.card_activity_id, card, f"the review card of {draft.customer_code}")

    async def _edit(self, ref: dict[str, Any], activity_id: str, card: dict[str, Any], what: str) -> None:
        """Replace a posted card (``update_activity``) for everyone in its conversation."""
        update = MessageFactory.attachment(CardFactory.adaptive_card(card))
        try:
            await self.poster.edit(ConversationReference().deserialize(ref), activity_id, update, what)
        except NotPosted as err:  # the message may have been deleted; the state itself is safe in the store
            log.warning("could not update %s: %s", what, err)

    async def _update_card_message(self, tc: TurnContext, activity_id: str | None, card: dict[str, Any]) -> None:
        if not activity_id:
            await self._send_card(tc, card)
            return
        update = MessageFactory.attachment(CardFactory.adaptive_card(card))
        update.id = activity_id
        await tc.update_activity(update)

    @staticmethod
    async def _send_card(tc: TurnContext, card: dict[str, Any]) -> None:
        await tc.send_activity(MessageFactory.attachment(CardFactory.adaptive_card(card)))

    # ---- verbs ----------------------------------------------------------------------------
    async def _act(self, tc: TurnContext, verb: Any, data: dict[str, Any], where: Where) -> dict[str, Any]:
        user = _user(tc.activity)
        handler = self.verbs.get(verb) if isinstance(verb, str) else None
        draft_id, customer = data.get("draft_id"), data.get("customer")
        try:
            version = int(data.get("version"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            version = -1
        draft = await self.state.get(draft_id) if isinstance(draft_id, str) else None
        if handler is None or draft is None or draft.customer_code != customer or version < 1:
            log.warning("refused card action %r on %r from %s", verb, draft_id, where.conversation_key)
            return help_card(note="That card action was not recognised; nothing was changed.")
        if where.kind not in ("review", "personal") or not self.settings.may_run(user.aad_object_id):
            log.warning("refused card action %r on %s from %s", verb, draft.customer_code, where.conversation_key)
            return help_card(note="Review actions are taken in the review channel by the configured engineers.")
        try:
            return await handler(tc, draft, {**data, "version": version}, user)
        except StaleVersion as err:
            return await self.card_for(err.current, str(err))
        except ReviewError as err:
            current = await self.state.get(draft.id)
            return await self.card_for(current or draft, str(err))

    async def _after(self, draft: Draft, message: str | None = None) -> dict[str, Any]:
        """The card for the clicker now; the posted card edited for everyone in the background."""
        self._spawn(self.refresh_card(draft))
        return await self.card_for(draft, message)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _save(self, tc: TurnContext, draft: Draft, data: dict[str, Any], user: User) -> dict[str, Any]:
        commentary = data.get(verbs.INPUT_COMMENTARY)
        if not isinstance(commentary, str):
            raise ReviewError("No commentary came with the card.")
        saved = await self.review.save(draft.id, data["version"], commentary, user)
        return await self._after(saved, f"Commentary saved by {user.label}.")

    async def _approve(self, tc: TurnContext, draft: Draft, data: dict[str, Any], user: User) -> dict[str, Any]:
        commentary = data.get(verbs.INPUT_COMMENTARY)
        approved, started = await self.review.approve(
            draft.id, data["version"], user, commentary if isinstance(commentary, str) else None)
        if not started:
            return await self.card_for(approved, f"Already {approved.state}; nothing was done again.")
        # the clicker sees the frozen card now; everyone else once the final PDF is handed off
        # (one edit instead of two keeps 50 approves at once under the 2 s answer)
        self._spawn(self._when_delivered(approved))
        return await self.card_for(approved, f"Approved by {user.label}; the final PDF is being prepared for delivery.")

    async def _retry(self, tc: TurnContext, draft: Draft, data: dict[str, Any], user: User) -> dict[str, Any]:
        retried, started = await self.review.retry_delivery(draft.id, data["version"], user)
        if not started:
            return await self.card_for(retried, f"The delivery is {retried.state}; nothing was retried.")
        self._spawn(self._when_delivered(retried))
        return await self.card_for(retried, f"Delivery retried by {user.label}; the steps not done are run again.")

    async def _when_delivered(self, draft: Draft) -> None:
        task = self.review.finishing.get(draft.id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        current = await self.state.get(draft.id)
        if current is not None:
            await self.refresh_card(current)
            await self.refresh_rollup(current.period_end)

    async def _regenerate(self, tc: TurnContext, draft: Draft, data: dict[str, Any], user: User) -> dict[str, Any]:
        if draft.version != data["version"]:
            raise StaleVersion(draft)
        if not draft.editable:
            raise ReviewError(f"This report is already {draft.state}; it can no longer be regenerated.")

        async def again() -> None:
            try:
                fresh = await self.review.regenerate(draft.id, data["version"], user)
                await self.refresh_card(fresh, f"Regenerated by {user.label}.")
            except ReviewError as err:
                log.warning("regenerate %s: %s", draft.customer_code, err)

        self._spawn(again())
        return await self.card_for(draft, f"Collecting {draft.customer_code}'s figures again; this card updates when done.")

    async def _skip(self, tc: TurnContext, draft: Draft, data: dict[str, Any], user: User) -> dict[str, Any]:
        reason = data.get(verbs.INPUT_SKIP_REASON)
        skipped = await self.review.skip(draft.id, data["version"], reason if isinstance(reason, str) else "", user)
        self._spawn(self.refresh_rollup(skipped.period_end))
        return await self._after(skipped, f"Skipped by {user.label}.")

    async def wait_background(self) -> None:
        while self.background or self.review.background:
            await asyncio.gather(*list(self.background), *list(self.review.background), return_exceptions=True)

"""The cards the bot posts and keeps up to date: each draft's review card, the week's roll-up,
the approval reminder and the delivery's card post in a customer's channel.

A customer-week has one review card and a week one roll-up: once posted, the message is
remembered in the store and every later change edits it (``update_activity``) for everyone. A
card that cannot be posted now raises :class:`bot.posting.NotPosted` and is kept in
:attr:`ReviewCards.not_posted` (shown by ``status`` and ``/healthz``); the caller (the batch, or
:meth:`ReviewCards.keep_posting` for a typed ``run``) tries again. Where a post goes and how fast
is :mod:`bot.posting`'s business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from botbuilder.core import CardFactory, MessageFactory
from botbuilder.schema import Activity, ConversationReference

from bot.announce import ChannelPostUnavailable
from bot.delivery import ALL_STEPS, STEP_LABELS, STEPS, DeliveryLog, Parcel, PermanentError, technical_recipients
from bot.posting import NoRoute, NotPosted, Poster, PostRefused, Routes
from bot.review import Review
from bot.settings import BotSettings
from bot.state import Draft, ReviewState
from cards.review import Decision, DeliveryStepView, review_card
from cards.rollup import rollup_card
from reporting import snapshot
from reporting.config import Config
from reporting.drafts import DraftState
from reporting.period import week_containing
from reporting.rollup import DraftStatus, rollup_rows

log = logging.getLogger(__name__)

TEAMS_WEB = "https://teams.microsoft.com"


def message_link(ref: dict[str, Any] | None, activity_id: str | None) -> str:
    """A Teams deep link to a posted message (the review card), from its stored conversation
    reference: ``/l/message/<channel>/<message>?tenantId=…&parentMessageId=<thread root>`` in a
    channel, ``?context={"contextType":"chat"}`` in a chat. "" when the reference is incomplete."""
    if not ref or not activity_id:
        return ""
    conversation = ref.get("conversation") or {}
    conversation_id = str(conversation.get("id") or "")
    if not conversation_id:
        return ""
    channel, _, thread = conversation_id.partition(";messageid=")
    message = quote(activity_id, safe="")
    if conversation.get("conversationType") == "channel" or channel.endswith(("@thread.tacv2", "@thread.skype")):
        query = {"parentMessageId": thread or activity_id}
        tenant = conversation.get("tenantId") or conversation.get("tenantID")  # botbuilder serializes "tenantID"
        if tenant:
            query["tenantId"] = str(tenant)
        return f"{TEAMS_WEB}/l/message/{quote(channel, safe='')}/{message}?{urlencode(query)}"
    chat = urlencode({"context": '{"contextType":"chat"}'})
    return f"{TEAMS_WEB}/l/message/{quote(channel, safe='')}/{message}?{chat}"


def card_message(card: dict[str, Any]) -> Activity:
    return MessageFactory.attachment(CardFactory.adaptive_card(card))


class ReviewCards:
    def __init__(
        self,
        settings: BotSettings,
        config: Config,
        review: Review,
        state: ReviewState,
        poster: Poster,
        routes: Routes,
        pdf_url: Callable[[str, int], str],
        spawn: Callable[[Awaitable[None]], None],
        deliveries: DeliveryLog | None = None,
        page_url: Callable[[str, int], str] | None = None,
    ):
        self.settings = settings
        self.config = config
        self.review = review
        self.state = state
        self.poster = poster
        self.routes = routes
        self.pdf_url = pdf_url
        self.page_url = page_url  # (draft id, version) -> the report as a web page
        self.spawn = spawn
        self.deliveries = deliveries  # when delivery is configured: the card shows each step
        self.not_posted: dict[str, str] = {}  # "review:<CODE>:<week>" / "rollup:<week>" -> why its card waits
        self.post_retry_seconds = 5.0  # first wait before posting a card again; doubles up to the max
        self.post_retry_max_seconds = 300.0
        self._unposted: list[str] = []  # sandbox: draft ids whose cards wait for a conversation
        self._unposted_rollup: tuple[Any, list[str]] | None = None
        self.live: Any = None  # bot.admin_settings.LiveSettings: a period the engine does not make is said

    # ---- the review card ------------------------------------------------------------------
    async def card_for(
        self, draft: Draft, message: str | None = None, *, steps_recorded: bool = True
    ) -> dict[str, Any]:
        """The review card of ``draft`` as it is now. ``steps_recorded=False``: the caller knows
        no delivery step can be recorded yet (it has just approved an editable draft), so the
        delivery log is not read."""
        report = await self.review.report(draft)
        decision = Decision(draft.decided_by or "", draft.decided_at, draft.reason) if draft.decided_at else None
        steps: list[DeliveryStepView] = []
        recorded = await self.deliveries.steps(draft.id) if self.deliveries is not None and steps_recorded else {}
        if recorded:
            for name in ALL_STEPS:
                if name not in STEPS and name not in recorded:
                    continue  # no technical report for this delivery (or not begun yet)
                s = recorded.get(name)
                url = s.url if s and s.url and s.url.startswith(("http://", "https://")) else None
                steps.append(
                    DeliveryStepView(STEP_LABELS[name], s.status if s else "pending", s.detail if s else None, url)
                )
        elif draft.state == DraftState.APPROVED:
            steps.append(DeliveryStepView("Delivery", "pending", "final PDF rendered; handed to delivery"))
        if draft.state == DraftState.FAILED and not any(s.status == "failed" for s in steps):
            steps.append(DeliveryStepView("Delivery", "failed", draft.reason))
        note = None
        if draft.editable:
            note = (
                "Anyone here may approve (sandbox mode: no approvers are configured)."
                if self.settings.sandbox and not self.settings.approvers
                else "Only the configured approvers may approve."
            )
            n = len(self._technical_to(draft.customer_code))
            if n:
                note += f" On approval, the technical report also goes to {n} address{'es' if n != 1 else ''}."
        return review_card(
            report,
            draft_id=draft.id,
            version=draft.version,
            state=draft.state,
            commentary=draft.commentary,
            pdf_url=self.pdf_url(draft.id, draft.version),
            approvers_note=note,
            steps=steps,
            message=message,
            decision=decision,
            tz=self.config.msp.timezone,
            page_url=self.page_url(draft.id, draft.version) if self.page_url else None,
        )

    def _technical_to(self, code: str) -> tuple[str, ...]:
        """Who the technical report would go to now (the admins' list, else the file's)."""
        try:
            customer = self.config.customer(code)
        except KeyError:
            return ()
        saved = self.live.now.customer(code).technical if self.live is not None else ()
        return technical_recipients(customer, saved)

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
            ref = await self.routes.review(origin)
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
            activity_id = await self.poster.send(ref, card_message(card), f"{draft.customer_code}'s review card")
        except NotPosted as err:
            self.not_posted[key] = str(err)
            raise
        await self.state.set_card(draft.id, ref.serialize(), activity_id)
        self.not_posted.pop(key, None)

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
                    await self.tell(
                        origin,
                        f"{draft.customer_code}: the review card could not be posted yet ({err}); I keep trying.",
                    )
            await asyncio.sleep(delay)
            delay = min(self.post_retry_max_seconds, delay * 2)

    async def refresh_card(self, draft: Draft, message: str | None = None) -> None:
        """Edit the draft's posted card for everyone (after a change)."""
        if not draft.card_ref or not draft.card_activity_id:
            return
        card = await self.card_for(draft, message)
        await self._edit(draft.card_ref, draft.card_activity_id, card, f"the review card of {draft.customer_code}")

    async def show_progress(self, draft_id: str) -> None:
        """A delivery step finished: edit the draft's review card to show it."""
        draft = await self.state.get(draft_id)
        if draft is not None:
            await self.refresh_card(draft)

    async def when_delivered(self, draft: Draft) -> None:
        """Once the draft's final PDF and delivery are done: its card and the roll-up edited."""
        task = self.review.finishing.get(draft.id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        current = await self.state.get(draft.id)
        if current is not None:
            await self.refresh_card(current)
            await self.refresh_rollup(current.period_end)

    async def show_delivery_ended(self, draft_id: str) -> None:
        """A delivery ended without a card click (resumed at start-up): the review card and the
        roll-up are edited as after an approve (:meth:`when_delivered`)."""
        draft = await self.state.get(draft_id)
        if draft is not None:
            await self.when_delivered(draft)

    async def undelivered(self) -> dict[str, str]:
        """Cards of the current weeks that are not in Teams: ``review:<CODE>:<week>`` or
        ``rollup:<week>`` -> why (for ``status`` and ``/healthz``)."""
        out = dict(self.not_posted)
        day = self.review.week_day()
        weeks = sorted({self.review.engine.batch_period(c, day).end_date for c in self.config.customers})
        for d in await self.state.without_card(weeks):
            out.setdefault(f"review:{d.customer_code}:{d.period_end.isoformat()}", "not posted yet")
        return out

    # ---- the roll-up ----------------------------------------------------------------------
    async def _rollup_card(self, period_end: Any, codes: list[str]) -> dict[str, Any]:
        reports = []
        statuses: dict[str, DraftStatus | None] = {code: None for code in codes}
        for code in codes:
            # each customer's report of this batch: its week, or its newest fortnight/30 days/month
            try:
                p = self.review.engine.batch_period(self.config.customer(code), period_end - timedelta(days=1))
            except KeyError:  # a customer no longer in the configuration: its week
                p = week_containing(period_end - timedelta(days=1), self.config.msp.timezone)
            payload = await self.review.history.get(code, p.end_date, p.kind)
            if payload is not None:
                reports.append(snapshot.from_dict(payload))
            d = await self.state.for_week(code, p.end_date, p.kind)
            if d is not None:
                statuses[code] = DraftStatus(
                    d.state,
                    d.decided_by or "",
                    d.decided_at,
                    d.reason or "",
                    message_link(d.card_ref, d.card_activity_id),
                    self.pdf_url(d.id, d.version),
                )
        owners = {c.code: c.owner for c in self.config.customers}
        rows = rollup_rows(reports, statuses, owners, self.config.msp.timezone)
        msp_name = self.live.msp_name if self.live is not None else self.config.msp.name
        return rollup_card(rows, period_end, msp_name)

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
            ref = await self.routes.channel(
                self.settings.rollup_channel or self.settings.review_channel, purpose="the roll-up channel"
            )
        except NoRoute as err:
            if self.settings.sandbox:
                self._unposted_rollup = (period_end, codes)
                return
            self.not_posted[key] = str(err)
            raise
        try:
            activity_id = await self.poster.send(ref, card_message(card), f"the roll-up of {period_end}")
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

    async def post_internal(self, period_end: Any, card: dict[str, Any]) -> str:
        """The week's service-desk summary card (``bot.internal_delivery``) in the roll-up channel,
        remembered so that a repeat (after a crash) edits it instead of posting a second one. Never
        a customer's channel. Raises :class:`NoRoute` / :class:`NotPosted` when it cannot be posted now."""
        key = f"internal:{period_end.isoformat()}"
        channel = self.settings.rollup_channel or self.settings.review_channel
        stored = await self.state.reference(key)
        if stored is not None:
            await self._edit(stored["ref"], stored["activity_id"], card, f"the service desk summary of {period_end}")
            return f"updated the post in {channel or 'the roll-up channel'}"
        ref = await self.routes.channel(channel, purpose="the roll-up channel")
        activity_id = await self.poster.send(ref, card_message(card), f"the service desk summary of {period_end}")
        await self.state.remember(key, "rollup", {"ref": ref.serialize(), "activity_id": activity_id})
        return f"posted in {channel or 'the roll-up channel'}"

    # ---- other posts ----------------------------------------------------------------------
    async def remind(self) -> None:
        """Drafts of the last complete week still waiting for approval, listed in the review channel."""
        week = self.review.week_day()
        waiting = []
        for c in self.config.customers:
            period = self.review.engine.batch_period(c, week)
            draft = await self.state.for_week(c.code, period.end_date, period.kind)
            if draft is not None and draft.editable:
                waiting.append(c.code)
        if not waiting:
            return
        try:
            ref = await self.routes.review(None)
            drafts = f"{len(waiting)} draft{'s' if len(waiting) != 1 else ''}"
            text = f"Reminder: {drafts} still waiting for approval: {', '.join(waiting)}."
            await self.poster.send(ref, MessageFactory.text(text), "the approval reminder")
        except NotPosted as err:
            log.error("the approval reminder was not posted: %s", err)

    async def post_customer_card(self, parcel: Parcel, card: dict[str, Any]) -> str:
        """The delivery's card as a new post in the parcel's customer channel (``bot.announce``
        makes it exactly once). The channel comes from the customer's configuration entry only;
        it is reached through its stored reference or the tenant's team installation."""
        channel = parcel.customer.teams_channel
        what = f"the card post in {parcel.code}'s channel {channel}"
        try:
            ref = await self.routes.channel(channel, purpose=f"{parcel.code}'s channel", internal=False)
        except NoRoute as err:
            raise PermanentError(
                f"{what}: the bot has not been installed in any team yet (no channel to reach Teams through)"
            ) from err
        try:
            return await self.poster.send(ref, card_message(card), what, once=True)
        except PostRefused as err:
            raise PermanentError(str(err)) from err
        except NotPosted as err:
            raise ChannelPostUnavailable(str(err)) from err

    async def tell(self, origin: ConversationReference, text: str) -> None:
        """A line of text where someone typed a command (failures are logged, not raised)."""
        try:
            await self.poster.send(origin, MessageFactory.text(text), "a reply")
        except NotPosted as err:
            log.warning("could not answer in %s: %s", origin.conversation.id if origin.conversation else "?", err)

    # ---- the sandbox: cards made before anyone talked to the bot ---------------------------
    def waiting(self) -> bool:
        return bool(self._unposted or self._unposted_rollup)

    async def post_waiting(self) -> None:
        waiting, self._unposted = self._unposted, []
        rollup, self._unposted_rollup = self._unposted_rollup, None
        for draft_id in waiting:
            draft = await self.state.get(draft_id)
            if draft is not None:
                await self.post_card(draft)
        if rollup is not None:
            await self.post_rollup(*rollup)

    async def _edit(self, ref: dict[str, Any], activity_id: str, card: dict[str, Any], what: str) -> None:
        """Replace a posted card (``update_activity``) for everyone in its conversation."""
        try:
            await self.poster.edit(ConversationReference().deserialize(ref), activity_id, card_message(card), what)
        except NotPosted as err:  # the message may have been deleted; the state itself is safe in the store
            log.warning("could not update %s: %s", what, err)

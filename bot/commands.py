"""The typed commands: ``run <CODE>``, ``run all``, ``status``, ``help``, and the admins'
``settings [CODE]`` and ``test <CODE>`` (:mod:`bot.admin`) (a channel mention with the mention
stripped, or a personal chat; case-insensitive).

In a customer's shared channel only that customer's own code is accepted and nothing about any
other customer is shown — an unknown or foreign code gets the same "unknown" answer without
suggestions, and the help's example is that customer's own code.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import ConversationReference

from bot.admin import Admin
from bot.admin_settings import LiveSettings
from bot.review import Review, User
from bot.review_cards import ReviewCards, card_message
from bot.routing import Where
from bot.settings import BotSettings
from bot.state import ReviewState
from cards.help import help_card
from cards.status import status_card
from cards.unknown import unknown_customer_card
from reporting.config import Config
from reporting.period import WeekNotEnded

log = logging.getLogger(__name__)


async def send_card(tc: TurnContext, card: dict[str, Any]) -> None:
    await tc.send_activity(card_message(card))


class Commands:
    def __init__(
        self,
        settings: BotSettings,
        config: Config,
        review: Review,
        state: ReviewState,
        cards: ReviewCards,
        spawn: Callable[[Awaitable[None]], None],
        batch_progress: Callable[[], dict[str, str]] | None = None,
        admin: Admin | None = None,
        live: LiveSettings | None = None,
    ):
        self.settings = settings
        self.admin = admin  # settings and test (review channel and personal chat only)
        self.live = live  # the admins' settings, read again before a typed run
        self.config = config
        self.review = review
        self.state = state
        self.cards = cards
        self.spawn = spawn
        self.batch_progress = batch_progress  # code -> queued | collecting | ... while a batch runs
        self.codes = [c.code for c in config.customers]

    async def handle(self, tc: TurnContext, where: Where, words: list[str], user: User) -> None:
        command = words[0].lower() if words else "help"
        args = words[1:]
        if where.kind == "other":
            await tc.send_activity(
                "I take commands in the review channel, in a personal chat, or in a customer's own channel."
            )
            return
        if self.admin is not None and where.kind in ("review", "personal"):  # admins need not be engineers
            if command == "settings":
                await self.admin.show(tc, where, user, args)
                return
            if command == "test":
                await self.admin.test(tc, where, user, args)
                return
        if where.kind != "customer" and not self.settings.may_run(user.aad_object_id):
            await tc.send_activity("You are not one of the engineers configured to run reports ([teams] engineers).")
            return
        if command == "help" or command not in ("run", "status"):
            note = f"In this channel only {where.customer}'s report can be run." if where.customer else None
            if command not in ("help", ""):
                note = f"I don't know the command {command[:30]!r}." + (f" {note}" if note else "")
            await send_card(tc, help_card(note=note, example=where.customer or "CODE"))
            return
        if command == "status":
            await self.status(tc, where)
            return
        await self.run(tc, where, args)

    async def run(self, tc: TurnContext, where: Where, args: list[str]) -> None:
        if not args:
            example = where.customer or "CODE"
            await tc.send_activity(
                f"Say which customer: **run {example}**" + ("." if where.customer else ", or **run all**.")
            )
            return
        target = args[0].upper()
        if target == "ALL":
            if where.kind == "customer":
                await send_card(tc, unknown_customer_card(args[0], []))
                return
            codes = list(self.codes)
        else:
            allowed = [where.customer] if where.kind == "customer" else self.codes
            if target not in allowed:
                close = (
                    [] if where.kind == "customer" else difflib.get_close_matches(target, self.codes, n=3, cutoff=0.5)
                )
                await send_card(tc, unknown_customer_card(args[0], close))
                return
            codes = [target]
        names = ", ".join(codes) if len(codes) <= 5 else f"{len(codes)} customers"
        await tc.send_activity(
            f"Collecting the figures for {names}; the draft card{'s' if len(codes) > 1 else ''} "
            "will appear in the review channel as each is ready."
        )
        self.spawn(self._draft_and_post(codes, TurnContext.get_conversation_reference(tc.activity)))

    async def _draft_and_post(self, codes: list[str], origin: ConversationReference) -> None:
        if self.live is not None:
            await self.live.refresh()  # the MSP name another instance's admin saved
        sem = asyncio.Semaphore(self.config.schedule.concurrency)

        async def one(code: str) -> None:
            async with sem:
                try:
                    draft = await self.review.run(code)
                except WeekNotEnded as err:  # refused before any source was asked: nothing written
                    await self.cards.tell(origin, f"{err}. The draft is made once the week is over.")
                    return
                except Exception as err:  # one customer's failure is reported, the others go on
                    log.exception("run %s failed", code)
                    await self.cards.tell(origin, f"{code}: the draft could not be made ({type(err).__name__}: {err})")
                    return
            await self.cards.keep_posting(draft, origin)

        await asyncio.gather(*(one(c) for c in codes))

    async def status(self, tc: TurnContext, where: Where) -> None:
        """This week's drafts and their state; while a batch runs, its progress (queued,
        collecting, failed) for customers without a draft yet."""
        codes = [where.customer] if where.customer else self.codes
        week = self.review.week_day()
        rows: list[tuple[str, str, int, datetime | None]] = []
        end = None
        for code in codes:
            if code is None:
                continue
            period = self.review.engine.batch_period(self.config.customer(code), week)
            end = period.end_date
            draft = await self.state.for_week(code, end, period.kind)
            payload = await self.review.history.get(code, end, period.kind) if draft is not None else None
            flags = len(payload.get("flags", [])) if payload else 0
            if draft is not None:
                state = draft.state if draft.card_activity_id else f"{draft.state}, card not posted yet"
                rows.append((code, state, flags, draft.updated_at))
            else:
                progress = self.batch_progress().get(code) if self.batch_progress else None
                rows.append((code, progress or "not started", 0, None))
        await send_card(tc, status_card(rows, period_end=end if codes else None, tz=self.config.msp.timezone))

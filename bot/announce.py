"""The bot's card post in a customer's channel, exactly once.

The Bot Connector cannot make a post idempotent. ``POST /v3/conversations/{id}/activities``
takes no idempotency key, and it has no call that reads a message back. A process that dies
between the Connector's answer and writing the answer down cannot tell, on restart, whether
the customer already has the card. So a post goes through three records in
``channel_posts`` (same database as the delivery log):

1. **intent**: the key (``reportbot:<draft>:channel``) and the time, written *before* the
   post (status ``posting``);
2. **the post**: the card carries the key as an element id (``cards.customer``);
3. **outcome**: the activity id the Connector returned (status ``posted``).

A repeat of the step finds one of three things:

- ``posted``: done; nothing is sent.
- ``posting``: the earlier attempt's outcome is unknown. The channel's messages are read
  through Microsoft Graph (``GET /teams/{team}/channels/{channel}/messages``, with RSC
  ``ChannelMessage.Read.Group``), looking for a message from the bot whose card carries the key.
  The lookup is asked ``settle_checks`` times, ``settle_delay`` apart, because a message can
  take a moment to show up in Graph. If the message is found, its id is recorded and nothing
  is posted. If it is not, the card is posted.
- ``refused`` (the Connector answered 400/403/404 last time) or nothing: the card is posted.

Failures: a Connector answer of 400/403/404 is permanent. Examples: the bot is not in the
channel (``BotNotInConversationRoster``), it was blocked (``MessageWritesBlocked``), or the
conversation is unknown. These stop that report's delivery with the reason. Any other
failure (429, 5xx, the network, a timeout) is transient: the step stays ``running`` and its
intent stays ``posting``, so the next run looks before it posts again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.delivery import Parcel, PermanentError
from cards.customer import channel_card
from reporting.store import create_tables, writing

log = logging.getLogger(__name__)

metadata = MetaData()

channel_posts = Table(
    "channel_posts",
    metadata,
    Column("key", String(120), primary_key=True),
    Column("channel", String(300), nullable=False),
    Column("status", String(16), nullable=False),  # posting | posted | refused (a 4xx: nothing was posted)
    Column("message_id", String(200)),
    Column("attempts", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),  # the first intent: a post can only be newer
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: ``post(parcel, card) -> message id``: the bot's new post in the parcel's customer channel.
Post = Callable[[Parcel, dict[str, Any]], Awaitable[str]]
#: ``find(parcel, key, since) -> message id | None``: the channel's message that carries ``key``.
Find = Callable[[Parcel, str, datetime], Awaitable["str | None"]]


class ChannelPostUnavailable(Exception):  # noqa: N818 - a condition, like GraphUnavailable
    """A transient failure of the post (429, 5xx, network): the step is repeated later, and
    looks for the post before making it again."""


@dataclass(frozen=True)
class PostRecord:
    key: str
    channel: str
    status: str
    message_id: str | None
    attempts: int
    started_at: datetime


class ChannelAnnouncer:
    """``announce(parcel, file_url, key)`` for ``bot.graph.GraphBackend``."""

    def __init__(
        self,
        engine: AsyncEngine,
        post: Post,
        find: Find,
        *,
        msp_name: str,
        settle_checks: int = 3,
        settle_delay: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.engine = engine
        self.post, self.find = post, find
        self.msp_name = msp_name
        self.settle_checks, self.settle_delay, self._sleep = settle_checks, settle_delay, sleep

    @classmethod
    async def open(cls, engine: AsyncEngine, post: Post, find: Find, **kw: Any) -> ChannelAnnouncer:
        """The announcer, its table created (at start-up, like ``DeliveryLog.open``)."""
        await create_tables(engine, metadata)
        return cls(engine, post, find, **kw)

    async def record(self, key: str) -> PostRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(channel_posts).where(channel_posts.c.key == key))).first()
        if row is None:
            return None
        m = row._mapping
        started = m["started_at"] if m["started_at"].tzinfo else m["started_at"].replace(tzinfo=UTC)
        return PostRecord(m["key"], m["channel"], m["status"], m["message_id"], m["attempts"], started)

    async def __call__(self, parcel: Parcel, file_url: str, key: str) -> str:
        channel = parcel.customer.teams_channel
        rec = await self.record(key)
        if rec is not None and rec.status == "posted" and rec.message_id:
            log.info("the card of %s is already in %s (message %s)", key, rec.channel, rec.message_id)
            return rec.message_id
        if rec is not None and rec.status == "posting":  # an earlier attempt may have posted it: look first
            found = await self._look(parcel, key, rec.started_at)
            if found is not None:
                log.info("the card of %s was posted before the interruption (message %s); not posted again", key, found)
                await self._set(key, status="posted", message_id=found)
                return found
        await self._intent(key, channel)
        card = channel_card(parcel.report, file_url=file_url, key=key, msp_name=parcel.msp_name or self.msp_name)
        try:
            message_id = await self.post(parcel, card)
        except PermanentError:  # the Connector said no (403, 404): nothing was posted, nothing to look for
            await self._set(key, status="refused")
            raise
        await self._set(key, status="posted", message_id=message_id)
        return message_id

    async def _look(self, parcel: Parcel, key: str, since: datetime) -> str | None:
        for check in range(max(self.settle_checks, 1)):
            if check:
                await self._sleep(self.settle_delay)
            found = await self.find(parcel, key, since)
            if found is not None:
                return found
        return None

    async def _intent(self, key: str, channel: str) -> None:
        now = datetime.now(UTC)
        try:
            async with writing(self.engine) as conn:
                await conn.execute(
                    channel_posts.insert().values(
                        key=key, channel=channel, status="posting", attempts=1, started_at=now, updated_at=now
                    )
                )
        except IntegrityError:
            async with writing(self.engine) as conn:
                await conn.execute(
                    update(channel_posts)
                    .where(channel_posts.c.key == key)
                    .values(status="posting", attempts=channel_posts.c.attempts + 1, updated_at=now)
                )

    async def _set(self, key: str, **values: Any) -> None:
        async with writing(self.engine) as conn:
            await conn.execute(
                update(channel_posts).where(channel_posts.c.key == key).values(updated_at=datetime.now(UTC), **values)
            )


def connector_failure(what: str, err: Exception) -> Exception:
    """A Bot Connector error as a delivery error: 400/403/404 permanent (with the Connector's
    code and message), anything else transient."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    detail = ""
    inner = getattr(err, "error", None)
    body_error = getattr(inner, "error", None)
    if body_error is not None:
        detail = f" {getattr(body_error, 'code', '') or ''}: {getattr(body_error, 'message', '') or ''}".rstrip(": ")
    if status in (400, 403, 404):
        return PermanentError(f"{what}: Bot Connector {status}{detail}")
    return ChannelPostUnavailable(f"{what}: {f'Bot Connector {status}{detail}' if status else type(err).__name__}")

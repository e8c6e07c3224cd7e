"""Posting to Teams: where a new post goes, how fast, and what happens when Teams says no.

Three things every proactive message of the bot goes through (review cards, the roll-up,
reminders, the customer-channel card, and every edit of them):

**Where** (:class:`Routes`). A post into a configured channel id needs the channel id,
the tenant and the tenant's ``serviceUrl`` — not a message anyone typed there. The bot learns
the last two when it is installed in a team (``installationUpdate`` / ``conversationUpdate``
carry ``channelData.team``, ``channelData.tenant`` and ``serviceUrl``) and from every later
activity of that team; :class:`bot.state.ReviewState` keeps them as installation rows. A channel
the bot has heard from is reached through its own stored reference; any other configured
channel through the newest installation in the expected tenant, addressed by the channel id (a
new activity to the channel's conversation id starts a new post: Bot Connector
``POST /v3/conversations/{channel}/activities``). Nothing else is ever a fallback — in
particular never a customer's channel for an internal post.

**How fast** (:class:`Pacer`). Microsoft's published bot limits per conversation (a whole
channel is one conversation): 7 messages a second, 8 in 2 s, 60 in 30 s, 1,800 an hour; per app
per tenant 30 requests a second. Sends and edits both count. Each is a sliding window; a call
waits until every window has room and is counted when its answer arrives, so 200 cards into one
channel are paced, not refused.

**When Teams says no** (:meth:`Poster.send`, :meth:`Poster.edit`). 429 (and 412, 502, 503, 504,
which Microsoft lists as retryable) is retried after ``Retry-After`` or an exponential backoff
with jitter, and the conversation's pacer is paused for as long; nothing is lost to throttling.
400/401/403/404 (bot not in the channel, blocked, unknown conversation) are raised as
:class:`PostRefused` with the Connector's code: a person must act.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount, ConversationReference

from connectors.http import retry_after_seconds
from reporting.telemetry import TEAMS_POSTS, TEAMS_THROTTLED

if TYPE_CHECKING:
    from bot.routing import Router
    from bot.settings import BotSettings
    from bot.state import ReviewState

log = logging.getLogger(__name__)

#: (window seconds, most calls in it), per conversation: learn.microsoft.com .../bots/how-to/rate-limit
CONVERSATION_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
#: per app per tenant
TENANT_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 30),)
RETRYABLE = frozenset({412, 429, 502, 503, 504})
REFUSED = frozenset({400, 401, 403, 404})


class NotPosted(Exception):  # noqa: N818 - a condition the caller keeps and retries
    """A post that could not be made now; ``str()`` says why, in words an engineer can act on."""


class NoRoute(NotPosted):
    """No way to reach the channel: the bot is not installed in any team of the tenant yet."""


class PostRefused(NotPosted):
    """The Bot Connector refused the post (400/401/403/404): the bot is not in that channel, was
    blocked or removed, or the channel id is wrong. ``status`` and ``code`` are the Connector's."""

    def __init__(self, message: str, status: int, code: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code


class Pacer:
    """Sliding-window limits per conversation and per tenant, for one process.

    A call is counted when it *ends* (the Connector's answer arrived), so however long one request
    takes and another does not, two calls the Connector saw are never closer than the pacer
    thinks; calls still under way count as happening now. Calls to one conversation go one at a
    time (at most 7 a second are allowed anyway); other conversations are not held up."""

    def __init__(
        self,
        conversation_limits: tuple[tuple[float, int], ...] = CONVERSATION_LIMITS,
        tenant_limits: tuple[tuple[float, int], ...] = TENANT_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.conversation_limits = conversation_limits
        self.tenant_limits = tenant_limits
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[str, deque[float]] = {}
        self._inflight: dict[str, int] = {}
        self._paused: dict[str, float] = {}  # key -> clock time until which nothing is sent (Retry-After)
        self._locks: dict[str, asyncio.Lock] = {}
        self.waited = 0.0  # seconds spent waiting for room, all keys (the benchmark prints it)

    def _wait(self, key: str, limits: tuple[tuple[float, int], ...], now: float) -> float:
        sent = self._sent.get(key, ())
        inflight = self._inflight.get(key, 0)
        wait = max(0.0, self._paused.get(key, 0.0) - now)
        for window, most in limits:
            if inflight >= most:
                wait = max(wait, 0.05)  # every slot is taken by calls still under way
            elif len(sent) + inflight >= most:
                wait = max(wait, sent[-(most - inflight)] + window - now)
        return wait

    @asynccontextmanager
    async def slot(self, conversation: str, tenant: str = "") -> AsyncIterator[None]:
        """Wait until one more call to ``conversation`` (in ``tenant``) keeps every limit, make it
        inside the ``async with``, and count it when it ends."""
        keys = [(f"c:{conversation}", self.conversation_limits)]
        if tenant:
            keys.append((f"t:{tenant}", self.tenant_limits))
        async with self._locks.setdefault(f"c:{conversation}", asyncio.Lock()):
            while True:
                now = self.clock()
                wait = max(self._wait(k, lim, now) for k, lim in keys)
                if wait <= 0:
                    break
                self.waited += wait
                await self.sleep(wait)
            for key, _ in keys:
                self._inflight[key] = self._inflight.get(key, 0) + 1
            try:
                yield
            finally:
                now = self.clock()
                for key, limits in keys:
                    self._inflight[key] -= 1
                    sent = self._sent.setdefault(key, deque(maxlen=max((most for _, most in limits), default=1)))
                    sent.append(now)

    async def acquire(self, conversation: str, tenant: str = "") -> None:
        """Count a call to ``conversation`` made now, once there is room for it."""
        async with self.slot(conversation, tenant):
            pass

    def pause(self, conversation: str, seconds: float) -> None:
        """Teams said 429: nothing more to ``conversation`` for ``seconds``."""
        key = f"c:{conversation}"
        self._paused[key] = max(self._paused.get(key, 0.0), self.clock() + seconds)


def _conversation(ref: ConversationReference) -> str:
    conv = ref.conversation
    return ((conv.id if conv else "") or "").split(";")[0]


def _tenant_of(ref: ConversationReference) -> str:
    conv = ref.conversation
    return (conv.tenant_id if conv else "") or ""


def connector_status(err: BaseException) -> tuple[int | None, str, str, float | None]:
    """(HTTP status, Connector error code, message, Retry-After seconds) of a Bot Connector error
    (botframework's ``ErrorResponseException``: msrest's ``HttpOperationError``)."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    body_error = getattr(getattr(err, "error", None), "error", None)
    code = str(getattr(body_error, "code", "") or "")
    message = str(getattr(body_error, "message", "") or "")
    retry = retry_after_seconds(headers.get("Retry-After")) if hasattr(headers, "get") else None
    return (status if isinstance(status, int) else None), code, message, retry


class Poster:
    """Sends and edits through the adapter, paced and retried (one per process)."""

    def __init__(
        self,
        adapter: Any,
        app_id: str,
        pacer: Pacer | None = None,
        *,
        attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        self.adapter = adapter
        self.app_id = app_id
        self.pacer = pacer or Pacer(sleep=sleep)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.throttled = 0  # 429s seen (the benchmark prints it)

    # -- references -----------------------------------------------------------------------
    def channel_reference(self, channel: str, install: dict[str, Any]) -> ConversationReference:
        """A reference that starts a new post in ``channel`` through a team installation
        (``serviceUrl`` and tenant as Teams gave them when the app was installed)."""
        tenant = str(install.get("tenant_id") or "")
        return ConversationReference(
            channel_id="msteams",
            service_url=str(install["service_url"]),
            bot=ChannelAccount(id=str(install.get("bot_id") or f"28:{self.app_id}")),
            conversation=ConversationAccount(
                id=channel, is_group=True, conversation_type="channel", tenant_id=tenant or None
            ),
        )

    # -- calls ----------------------------------------------------------------------------
    async def send(self, ref: ConversationReference, activity: Activity, what: str, *, once: bool = False) -> str:
        """A new message in ``ref``'s conversation (a new post in a channel, not a reply); its id.

        ``once``: the caller makes the post exactly once itself (``bot.announce``), so only answers
        that prove nothing was posted (429, 412) are retried here; a 5xx or a timeout may come
        after the Connector accepted the post and is raised for the caller to look first."""
        result: list[Any] = []

        async def callback(tc: TurnContext) -> None:
            outgoing = TurnContext.apply_conversation_reference(activity, ref)
            outgoing.reply_to_id = None
            _tenant_channel_data(outgoing, ref)
            responses = await tc.adapter.send_activities(tc, [outgoing])
            result.append(responses[0] if responses else None)

        await self._call(
            ref, callback, what, retryable=frozenset({412, 429}) if once else RETRYABLE, network=not once, kind="send"
        )
        response = result[0] if result else None
        if response is None or not getattr(response, "id", None):
            raise NotPosted(f"{what}: the Bot Connector returned no message id")
        return str(response.id)

    async def edit(self, ref: ConversationReference, activity_id: str, activity: Activity, what: str) -> None:
        """Replace a posted message (``update_activity``) for everyone in its conversation."""
        activity.id = activity_id

        async def callback(tc: TurnContext) -> None:
            _tenant_channel_data(activity, ref)
            await tc.update_activity(activity)

        await self._call(ref, callback, what, kind="update")

    async def _call(
        self,
        ref: ConversationReference,
        callback: Callable[[TurnContext], Awaitable[None]],
        what: str,
        *,
        retryable: frozenset[int] = RETRYABLE,
        network: bool = True,
        kind: str = "send",
    ) -> None:
        conversation, tenant = _conversation(ref), _tenant_of(ref)
        delay = self.base_delay
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.pacer.slot(conversation, tenant):
                    await self.adapter.continue_conversation(ref, callback, self.app_id or None)
                TEAMS_POSTS.labels(kind, "ok").inc()
                return
            except Exception as err:  # botbuilder raises msrest errors (and OSError for the network)
                status, code, message, retry_after = connector_status(err)
                detail = (
                    f"Bot Connector {status}{f' {code}' if code else ''}{f': {message}' if message else ''}"
                    if status
                    else f"{type(err).__name__}: {err}"
                )
                if status == 429:
                    TEAMS_THROTTLED.inc()
                if status in REFUSED:
                    TEAMS_POSTS.labels(kind, "refused").inc()
                    raise PostRefused(f"{what}: {detail}", status, code) from err
                if attempt == self.attempts or (status not in retryable if status is not None else not network):
                    TEAMS_POSTS.labels(kind, "failed").inc()
                    raise NotPosted(f"{what}: {detail} (after {attempt} attempts)") from err
                wait = retry_after_seconds_or(retry_after, delay)
                if status == 429:
                    self.throttled += 1
                    self.pacer.pause(conversation, wait)
                log.info(
                    "%s: %s; trying again in %.1f s (attempt %d of %d)",
                    what,
                    detail,
                    wait,
                    attempt,
                    self.attempts,
                    extra={"step": f"teams_{kind}", "status": status, "conversation": conversation},
                )
                await self.sleep(wait)
                delay = min(self.max_delay, delay * 2)


def retry_after_seconds_or(retry_after: float | None, delay: float) -> float:
    """The server's Retry-After when it gave one, else ``delay`` with ±20 % jitter."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography


def _tenant_channel_data(activity: Activity, ref: ConversationReference) -> None:
    """Teams reads the tenant of a proactive post from ``channelData.tenant.id``."""
    tenant = _tenant_of(ref)
    if not tenant:
        return
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    if "tenant" not in data:
        activity.channel_data = {**data, "tenant": {"id": tenant}}


class Routes:
    """Where a new post in a channel goes (the **Where** above), for one process."""

    def __init__(self, settings: BotSettings, state: ReviewState, poster: Poster, router: Router):
        self.settings = settings
        self.state = state
        self.poster = poster
        self.router = router

    async def review(self, origin: ConversationReference | None = None) -> ConversationReference:
        return await self.channel(self.settings.review_channel, origin, purpose="the review channel")

    async def channel(
        self,
        channel: str,
        origin: ConversationReference | None = None,
        *,
        purpose: str = "the channel",
        internal: bool = True,
    ) -> ConversationReference:
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
                    raise NoRoute(
                        f"{purpose} ({channel}) cannot be reached: the app has not been installed in a team "
                        "yet (install it in the team that holds the channel)"
                    )
                ref = self.poster.channel_reference(channel, install)
        else:
            if not self.settings.sandbox:
                raise NoRoute(f"{purpose} is not configured ([teams])")
            if (
                origin is not None
                and internal
                and self.router.is_customer_conversation(origin.conversation.id if origin.conversation else "")
            ):
                origin = None
            if origin is None:  # a scheduled batch
                latest = await self._latest_internal()
                if latest is None:
                    raise NoRoute(f"{purpose}: nobody has talked to the bot yet")
                origin = ConversationReference().deserialize(latest)
            ref = ConversationReference().deserialize(origin.serialize())
            ref.conversation.id = ref.conversation.id.split(";")[0]
        ref.activity_id = None
        return ref

    async def _latest_internal(self) -> dict[str, Any] | None:
        """Sandbox: the newest conversation that is not a customer's channel."""
        for ref in await self.state.recent_references():
            if not self.router.is_customer_conversation(str((ref.get("conversation") or {}).get("id") or "")):
                return ref
        return None

"""The HTTP behaviour every vendor client shares, written once.

A vendor client (``connectors/<system>/client.py``) owns its URLs, auth and paging; it sends
every request through :class:`HttpSource`, which adds:

- a per-source concurrency limit (``[sources.<name>] concurrency``, an ``asyncio.Semaphore``);
- a per-request timeout (``[sources.<name>] request_timeout_seconds``, default 15 s);
- bounded retries: 429 and 503 honour ``Retry-After`` (seconds or an HTTP date), other 5xx
  and transport errors back off exponentially with jitter; at most ``max_attempts`` tries and
  never a single wait above ``max_retry_wait`` seconds (a longer ``Retry-After`` ends the
  attempt instead of stalling the batch);
- translation into the connector error tree (``connectors.base``) with a message that names
  the system, the method and path, and the cause — never a header, a query string, a body or a
  secret;
- JSON decoding that refuses HTML pages and other non-JSON bodies.

The ``httpx.AsyncClient`` is injected, so tests can hand in a ``MockTransport`` and production
gets one pooled client per source.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

import httpx
from pydantic import Field

from reporting.config import SourceConfig, SourceOptions
from reporting.sources import SourceAuthError, SourceDataError, SourceUnavailable
from reporting.telemetry import VENDOR_REQUEST_SECONDS, VENDOR_REQUESTS

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REQUEST_ID_HEADERS = ("x-cw-request-id", "request-id", "x-ms-request-id", "cf-ray", "x-request-id")

ErrorMessage = Callable[[httpx.Response], str | None]
"""A vendor's error-body parser: the human message in an error response, or None."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_base: float = 0.25  # first backoff in seconds; doubles per attempt, with jitter
    max_retry_wait: float = 30.0  # the longest single wait; a longer Retry-After gives up


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _json_message(resp: httpx.Response) -> str | None:
    """Generic error parser: ``message`` / ``error.message`` / ``errors[0].message`` / ``detail``."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"]
    if isinstance(err, str):
        desc = body.get("error_description")
        return f"{err}: {desc}" if isinstance(desc, str) else err
    for key in ("message", "detail", "title"):
        if isinstance(body.get(key), str):
            return body[key]
    errs = body.get("errors")
    if isinstance(errs, list) and errs and isinstance(errs[0], dict) and isinstance(errs[0].get("message"), str):
        return errs[0]["message"]
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestBudget:
    """At most ``limit`` requests in any rolling ``window`` seconds, kept on our side (hosted
    HaloPSA: 300 per 5 minutes): a request over budget waits until the oldest one in the window
    ages out, instead of drawing a 429. ``clock``/``sleep`` are injectable for tests."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.limit, self.window = limit, window
        self._clock, self._sleep = clock, sleep
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds spent waiting for the budget (for tests and benchmarks)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                wait = self._sent[0] + self.window - now
                self.waited += wait
                await self._sleep(wait)


class HttpSource:
    """One configured source's HTTP access: limits, request budget, retries, error translation."""

    def __init__(
        self,
        system: str,
        client: httpx.AsyncClient,
        *,
        concurrency: int = 4,
        request_timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        error_message: ErrorMessage = _json_message,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        secrets: tuple[str, ...] = (),
        budget: RequestBudget | None = None,
    ):
        self.system = system
        self.budget = budget
        self.client = client
        self.request_timeout = request_timeout
        self.retry = retry or RetryPolicy()
        self._error_message = error_message
        self._sleep = sleep
        self._limit = asyncio.Semaphore(concurrency)
        # defence in depth (messages never carry headers or bodies): redact secrets that could be
        # recognised; a value under 8 characters would garble ordinary words instead
        self._secrets = tuple(s for s in secrets if s and len(s) >= 8)
        self.requests = 0  # requests sent, retries included (for tests and benchmarks)

    @classmethod
    def from_config(cls, system: str, source: SourceConfig, client: httpx.AsyncClient, **kw: Any) -> HttpSource:
        per_window = source.option("requests_per_window")
        if per_window and "budget" not in kw:
            kw["budget"] = RequestBudget(int(per_window), float(source.option("window_seconds", 60.0)))
        return cls(
            system,
            client,
            concurrency=source.concurrency,
            request_timeout=float(source.option("request_timeout_seconds", 15.0)),
            retry=RetryPolicy(
                max_attempts=int(source.option("max_attempts", 4)),
                max_retry_wait=float(source.option("max_retry_wait_seconds", 30.0)),
            ),
            **kw,
        )

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _fail(self, kind: type[Exception], message: str) -> Exception:
        return kind(self.system, self.redact(message))

    def _what(self, method: str, url: str) -> str:
        path = httpx.URL(url).path or "/"
        return f"{method} {path}"

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send with retries; return a 2xx response (or one in ``ok_statuses``), else raise.

        401/403 → SourceAuthError; other 4xx → SourceDataError; 429/5xx/timeouts/refused
        connections after the last attempt → SourceUnavailable.
        """
        what = self._what(method, url)
        policy = self.retry
        last = ""
        for attempt in range(1, policy.max_attempts + 1):
            wait: float | None = None
            if self.budget is not None:
                await self.budget.acquire()
            outcome = "connect_error"
            try:
                async with self._limit:
                    self.requests += 1
                    t0 = time.perf_counter()
                    resp = await self.client.request(
                        method,
                        url,
                        params=params,
                        headers=headers,
                        json=json_body,
                        data=data,
                        auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                        timeout=self.request_timeout,
                    )
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug(
                            "%s %s -> %s in %.0f ms",
                            self.system,
                            what,
                            resp.status_code,
                            1000 * (time.perf_counter() - t0),
                            extra={
                                "request_id": next(
                                    (resp.headers[h] for h in REQUEST_ID_HEADERS if h in resp.headers), None
                                )
                            },
                        )
                    outcome = str(resp.status_code)
            except httpx.TimeoutException:
                outcome = "timeout"
                last = f"no answer within {self.request_timeout:g} s"
            except httpx.TransportError as err:
                last = f"cannot connect ({type(err).__name__})"
            else:
                status = resp.status_code
                _metered(self.system, outcome, t0)
                if 200 <= status < 300 or status in ok_statuses:
                    return resp
                message = self._describe(resp)
                if status in (401, 403):
                    raise self._fail(SourceAuthError, f"{what} was refused: HTTP {status} {message}".rstrip())
                if status not in RETRY_STATUSES:
                    raise self._fail(SourceDataError, f"{what} answered HTTP {status} {message}".rstrip())
                last = f"HTTP {status} {message}".rstrip()
                if status in (429, 503):
                    wait = retry_after_seconds(resp.headers.get("retry-after"))
                    if wait is not None and wait > policy.max_retry_wait:
                        raise self._fail(
                            SourceUnavailable, f"{what}: {last}; asked to retry after {wait:.0f} s, longer than we wait"
                        )
            if outcome in ("timeout", "connect_error"):
                _metered(self.system, outcome, t0)
            if attempt == policy.max_attempts:
                break
            if wait is None:
                wait = policy.backoff_base * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - jitter, not crypto
            log.info(
                "%s %s: %s; retry %d/%d in %.2f s",
                self.system,
                what,
                self.redact(last),
                attempt,
                policy.max_attempts - 1,
                wait,
            )
            await self._sleep(wait)
        attempts = f"{policy.max_attempts} attempt{'s' if policy.max_attempts != 1 else ''}"
        raise self._fail(SourceUnavailable, f"{what}: {last} (after {attempts})")

    def _describe(self, resp: httpx.Response) -> str:
        ctype = resp.headers.get("content-type", "")
        if "json" in ctype or resp.content[:1] in (b"{", b"["):
            msg = self._error_message(resp)
            return f"— {_short(msg)}" if msg else ""
        if "html" in ctype or resp.content.lstrip()[:1] == b"<":
            if resp.status_code >= 500:
                return "(an HTML error page: the proxy or web server in front of the API)"
            return "(an HTML page, not the API: a proxy or login page?)"
        return ""

    def decode(self, resp: httpx.Response) -> Any:
        """The JSON body, or SourceDataError naming what came back instead."""
        what = self._what(resp.request.method, str(resp.request.url))
        raw = resp.content
        if not raw.strip():
            raise self._fail(SourceDataError, f"{what} answered HTTP {resp.status_code} with an empty body, not JSON")
        try:
            return json.loads(raw)
        except ValueError:
            ctype = resp.headers.get("content-type", "unknown type").split(";")[0]
            kind = "an HTML page" if raw.lstrip()[:1] == b"<" else f"a {ctype} body"
            raise self._fail(
                SourceDataError, f"{what} answered HTTP {resp.status_code} with {kind}, not JSON"
            ) from None

    async def get_json(self, url: str, **kw: Any) -> Any:
        return self.decode(await self.request("GET", url, **kw))

    async def post_json(self, url: str, **kw: Any) -> Any:
        return self.decode(await self.request("POST", url, **kw))


def _metered(system: str, outcome: str, t0: float) -> None:
    """One vendor request in ``reportbot_vendor_requests_total`` and its latency."""
    VENDOR_REQUESTS.labels(system, outcome).inc()
    VENDOR_REQUEST_SECONDS.labels(system).observe(time.perf_counter() - t0)


def new_client(source: SourceConfig, **kw: Any) -> httpx.AsyncClient:
    """The pooled client a source uses in production: its CA bundle (``ca_bundle``, a PEM file
    naming a private CA) if set, as an SSL context (httpx 0.28 deprecates a path)."""
    ca = source.option("ca_bundle")
    verify: Any = ssl.create_default_context(cafile=ca) if ca else True
    limits = httpx.Limits(max_connections=source.concurrency * 2, max_keepalive_connections=source.concurrency)
    return httpx.AsyncClient(verify=verify, limits=limits, follow_redirects=False, **kw)


# Typed as typeshed types asyncio.gather: a few reads of different types unpack as a tuple of their
# types (the value is a list, which unpacks and indexes alike); any number of one type, a list.
@overload
async def gather_all(a1: Awaitable[T1], a2: Awaitable[T2], /) -> tuple[T1, T2]: ...
@overload
async def gather_all(a1: Awaitable[T1], a2: Awaitable[T2], a3: Awaitable[T3], /) -> tuple[T1, T2, T3]: ...
@overload
async def gather_all(
    a1: Awaitable[T1], a2: Awaitable[T2], a3: Awaitable[T3], a4: Awaitable[T4], /
) -> tuple[T1, T2, T3, T4]: ...
@overload
async def gather_all(*aws: Awaitable[T]) -> list[T]: ...
async def gather_all(*aws: Awaitable[Any]) -> Any:
    """``asyncio.gather`` for a section's independent reads, all or nothing: when one fails, the
    others are cancelled and awaited (no request keeps running on a connector that is being
    closed), then the first failure is raised as it was."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class HttpOptions(SourceOptions):
    """The keys every HTTP source takes (``HttpSource.from_config``, ``new_client``)."""

    request_timeout_seconds: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, le=20)
    max_retry_wait_seconds: float = Field(default=30.0, ge=0)
    ca_bundle: str | None = None  # a PEM file of CAs to trust for a private endpoint
    # the vendor's request budget, kept client-side: at most this many requests per rolling window
    requests_per_window: int | None = Field(default=None, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)


def require_url(system: str, source: SourceConfig) -> str:
    if not source.url:
        raise SourceDataError(system, f"sources.{system}.url is not set")
    return source.url.rstrip("/")


def require_secret(system: str, name: str, source: SourceConfig, key: str) -> str:
    """A secret credential (password, key, token). Missing: ``SourceAuthError`` — the one rule for
    every credential, secret or not: a human must supply it, like a refused one."""
    value = source.secret(key)
    if not value:
        raise SourceAuthError(system, f"sources.{name}.{key} is not set (put it in the environment and write ${{VAR}})")
    return value


def require_credential(system: str, name: str, source: SourceConfig, key: str, what: str = "") -> str:
    """A credential that is not secret (a client id, a public key, a user name). Missing:
    ``SourceAuthError``, the same rule as :func:`require_secret`."""
    value = source.option(key)
    if value in (None, ""):
        raise SourceAuthError(system, f"sources.{name}.{key} is not set" + (f" ({what})" if what else ""))
    return str(value)


def source_http(system: str, source: SourceConfig, ctx: Any, **kw: Any) -> tuple[HttpSource, httpx.AsyncClient]:
    """The ``HttpSource`` of a configured source, with its client from ``ctx.client_factory``
    (a ``ConnectorContext``) or a new pooled one. The caller closes the client in ``aclose()``."""
    factory = getattr(ctx, "client_factory", None)
    client = factory(source) if factory is not None else new_client(source)
    sleep = getattr(ctx, "sleep", None)
    if sleep is not None:
        kw.setdefault("sleep", sleep)
    return HttpSource.from_config(system, source, client, **kw), client


class SharedReads(Generic[K, V]):
    """One read per key, shared by the ``readers`` sections that need it (a PSA's tickets feed
    both ``tickets`` and ``changes``): the first caller starts it, the others await the same
    task. Each caller awaits it shielded, so one section's timeout does not cancel the other's
    read; once every reader has it, it is forgotten (no tickets held for the batch). ``aclose``
    cancels what is still running."""

    def __init__(self, readers: int):
        self.readers = readers
        self._tasks: dict[K, asyncio.Task[V]] = {}
        self._count: dict[K, int] = {}
        self._running: set[asyncio.Task[V]] = set()

    def _settled(self, task: asyncio.Task[V]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its readers got it, or timed out and no longer care

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.ensure_future(load())
            self._running.add(task)
            task.add_done_callback(self._settled)
        self._count[key] = self._count.get(key, 0) + 1
        if self._count[key] >= self.readers:
            self._tasks.pop(key, None)
            self._count.pop(key, None)
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._tasks.clear()
        self._count.clear()

"""What every loopback vendor simulator shares: an aiohttp server on 127.0.0.1, a request log,
and a fault switch.

A simulator serves the sandbox dataset in one vendor's wire format (its own module under
``connectors/<system>/simulator.py``). This base adds, in front of every route, the faults a
real API shows on a bad day — set on ``sim.faults`` by tests, or by ``reportbot demo
--sim-faults`` (see :meth:`Faults.parse`):

- ``latency_ms``: every request waits this long before it is answered;
- ``status`` + ``count``: the next ``count`` requests answer that status (429, 500, 502, 503...)
  with the vendor's error body (:meth:`Simulator.error_body`) and ``retry_after`` if set;
- ``hang`` + ``count``: the next ``count`` requests never answer in time (sleep ``hang`` s);
- ``html`` + ``count``: the next ``count`` requests answer ``200`` with an HTML page, the way a
  captive proxy or a login redirect does;
- ``drift``: ``old>new`` renames a JSON key in every answer (schema drift).

``only`` limits the counted faults to paths containing that text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTML_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response.</p></body></html>"
)


@dataclass
class Faults:
    latency_ms: float = 0.0
    status: int = 0
    count: int = 0
    retry_after: str | None = None
    hang: float = 0.0
    html: bool = False
    drift: dict[str, str] = field(default_factory=dict)
    only: str = ""

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``latency_ms=100,status=429,count=2,retry_after=1,drift=status>state,only=/api``."""
        f = cls()
        known = {x.name for x in fields(cls)}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key not in known:
                raise ValueError(f"unknown fault {key!r} (known: {', '.join(sorted(known))})")
            if key == "drift":
                old, _, new = value.partition(">")
                f.drift[old] = new
            elif key in ("latency_ms", "hang"):
                setattr(f, key, float(value))
            elif key in ("status", "count"):
                setattr(f, key, int(value))
            elif key == "html":
                f.html = value.lower() in ("1", "true", "yes", "")
            else:
                setattr(f, key, value)
        return f


def _rename(obj: Any, drift: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        return {drift.get(k, k): _rename(v, drift) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename(v, drift) for v in obj]
    return obj


class Simulator:
    """Base of a vendor simulator. Subclasses set ``system`` and add routes in ``routes()``."""

    system: ClassVar[str] = ""

    def __init__(self) -> None:
        self.faults = Faults()
        self.log: list[tuple[str, str]] = []  # (method, path_qs) of every request
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.secret = secrets.token_urlsafe(18)  # per-run credential; subclasses derive theirs

    # -- for subclasses
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> tuple[Any, str]:
        """The vendor's error body for an injected fault: (payload, content type)."""
        return {"message": message}, "application/json"

    def source_config(self) -> dict[str, Any]:
        """``[sources.<system>]`` for the real connector pointed at this simulator."""
        raise NotImplementedError

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(text=json.dumps(data), status=status, content_type="application/json", headers=headers)

    # -- the fault switch and the request log
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.log.append((request.method, request.path_qs))
        f = self.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000.0)
        if f.count > 0 and (not f.only or f.only in request.path):
            f.count -= 1
            if f.hang:
                await asyncio.sleep(f.hang)
            if f.html:
                return web.Response(text=HTML_ERROR_PAGE, status=200, content_type="text/html")
            if f.status:
                body, ctype = self.error_body(f.status, "injected fault")
                headers = {"Retry-After": f.retry_after} if f.retry_after else None
                text = body if isinstance(body, str) else json.dumps(body)
                return web.Response(text=text, status=f.status, content_type=ctype, headers=headers)
        resp = await handler(request)
        if f.drift and isinstance(resp, web.Response) and resp.content_type == "application/json" and resp.text:
            resp.text = json.dumps(_rename(json.loads(resp.text), f.drift))
        return resp

    # -- life cycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]  # aiohttp's private _server: set once started
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

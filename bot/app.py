"""The bot's web app: ``POST /api/messages``, ``GET /healthz``, ``GET /metrics``, the signed draft-PDF links
and the links of delivered reports (``/reports/...``: the customer email's; ``/internal/...``: the
MSP's own summaries).

``create_app(settings, deps)`` holds no module-level state. ``POST /api/messages`` is botbuilder's
``CloudAdapter.process`` taken apart so each refusal has its own status, in this order:

1. body larger than ``settings.max_body_bytes`` -> 413 (by Content-Length before reading, and by
   aiohttp's ``client_max_size`` while reading a chunked body);
2. not ``application/json`` -> 415; not a JSON object or no activity ``type`` -> 400;
3. authentication (``bot.auth.authenticate``) -> 401 for every failure (botbuilder alone answers
   500 for most of them);
4. an authenticated activity whose ``serviceUrl`` is not a configured Bot Connector -> 403 (the bot
   would otherwise post its replies, report content included, wherever the activity says);
5. the bot's turn via ``adapter.process_activity(auth_result, ...)`` -> 201, or the invoke response.
   Anything the bot raises propagates: aiohttp logs it and answers 500. (We deliberately do not use
   botbuilder's ``aiohttp_error_middleware``, which would turn a ``KeyError`` in the bot into 404
   and a ``PermissionError`` into 401.)
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import logging
from typing import Any

from aiohttp import web
from botbuilder.core import serializer_helper
from botbuilder.schema import Activity
from msrest.serialization import Model

from bot.auth import AuthenticationError, authenticate
from bot.deps import BotDeps
from bot.links import ArtefactLinkSigner, ArtefactRef, LinkError, LinkSigner, safe_filename
from bot.published import INTERNAL_CODE, Gone
from bot.settings import BotSettings
from reporting.html import CSP
from reporting.telemetry import exposition

log = logging.getLogger(__name__)

LINKS: web.AppKey[LinkSigner] = web.AppKey("links", LinkSigner)
REPORT_LINKS: web.AppKey[ArtefactLinkSigner] = web.AppKey("report_links", ArtefactLinkSigner)
INTERNAL_LINKS: web.AppKey[ArtefactLinkSigner] = web.AppKey("internal_links", ArtefactLinkSigner)
SETTINGS: web.AppKey[BotSettings] = web.AppKey("settings", BotSettings)
DEPS: web.AppKey[BotDeps] = web.AppKey("deps", BotDeps)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _refusal_page(status: int, title: str, message: str) -> web.Response:
    """A short HTML page for a person who followed a link that cannot be served (no details)."""
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
        f'{html.escape(title)}</title></head><body style="font-family:Segoe UI,Arial,sans-serif;'
        f'max-width:40em;margin:3em auto;color:#222222;"><h1 style="font-size:1.4em;">{html.escape(title)}'
        f"</h1><p>{html.escape(message)}</p></body></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS)


_EXPIRED = (
    410,
    "This link has expired",
    "Links like this one work for a limited time. The PDF attached to the email is yours to keep; "
    "for a new link, ask whoever sent you the report.",
)
_SUPERSEDED = (
    410,
    "This report has been replaced",
    "This link is to a version of the report that has since been replaced by a newer one. "
    "Please use the link you received with the newer version, or ask whoever sent you the report.",
)
_FORBIDDEN = (
    403,
    "This link is not valid",
    "The link is incomplete or has been changed. Please open it again from where you found it, "
    "or copy the whole address.",
)


def _invoke_body(body: Any) -> Any:
    """JSON for an invoke response body: msrest models serialised once, plain data as it is.

    (``CloudAdapter.process`` serialises unconditionally, so a body that ``ActivityHandler`` already
    turned into a dict fails with HTTP 500 — research §0. Here either shape works.)
    """
    return serializer_helper(body) if isinstance(body, Model) else body


def create_app(settings: BotSettings, deps: BotDeps) -> web.Application:
    links = LinkSigner.from_settings(settings)
    report_links = ArtefactLinkSigner.customer(settings)
    internal_links = ArtefactLinkSigner.internal(settings)
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[LINKS] = links
    app[REPORT_LINKS] = report_links
    app[INTERNAL_LINKS] = internal_links
    app[SETTINGS] = settings
    app[DEPS] = deps

    async def messages(request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            return _error(413, "request body too large")
        if request.content_type != "application/json":
            return _error(415, "expected application/json")
        raw = await request.read()  # raises HTTPRequestEntityTooLarge (413) past client_max_size
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "body is not an activity")
        try:
            activity = Activity().deserialize(body)
        except Exception:  # noqa: BLE001 - msrest raises several types for a malformed payload
            return _error(400, "body is not an activity")
        if not activity.type:
            return _error(400, "activity has no type")

        try:
            auth = await authenticate(deps.adapter, activity, request.headers.get("Authorization"))
        except AuthenticationError:
            return _error(401, "unauthorized")

        if not settings.trusted_service_url(activity.service_url):
            log.warning(
                "refused %r activity: serviceUrl %r is not a configured Bot Connector",
                activity.type,
                activity.service_url,
            )
            return _error(403, "untrusted serviceUrl")

        invoke_response = await deps.adapter.process_activity(auth, activity, deps.bot.on_turn)
        if invoke_response:
            return web.json_response(_invoke_body(invoke_response.body), status=invoke_response.status)
        return web.Response(status=201)

    def has_token(request: web.Request) -> bool:
        return bool(settings.metrics_token) and hmac.compare_digest(
            request.headers.get("Authorization", ""), f"Bearer {settings.metrics_token}"
        )

    def privileged(request: web.Request) -> bool:
        """A caller on this host (the container's HEALTHCHECK, a sidecar) or one with the metrics token."""
        if has_token(request):
            return True
        try:
            return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
        except ValueError:
            return False

    async def healthz(request: web.Request) -> web.Response:
        """200 ``{"status": "ok", ...}`` while the store answers; 503 (``degraded``, same fields)
        when it does not, or ``unavailable`` when the probe itself failed. The fields come from
        ``deps.health``: the store, the next scheduled batch, undelivered cards, stuck deliveries.
        The lists (which name customers and reasons) go only to a privileged caller; anyone else,
        e.g. through the public ingress, gets the counts."""
        try:
            extra = await deps.health()
        except Exception:  # noqa: BLE001 - a health probe reports, it does not crash
            log.exception("health check failed")
            return web.json_response({"status": "unavailable", "version": settings.version}, status=503)
        if not privileged(request):
            extra = {k: v for k, v in extra.items() if not isinstance(v, list)}
        ok = extra.get("store", "ok") == "ok"
        body = {"status": "ok" if ok else "degraded", "version": settings.version, **extra}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        """The Prometheus text exposition of this process (``reporting.telemetry``); with
        ``$REPORTBOT_METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
        if settings.metrics_token and not has_token(request):
            return _error(401, "unauthorized")
        body, content_type = exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    def verified(request: web.Request) -> tuple[str, int] | web.Response:
        """The (draft id, version) a signed link names, or the 403 that refuses it."""
        try:
            return links.verify(request.match_info["token"])
        except LinkError as err:
            log.info("refused a report link: %s", err.reason)
            message = (
                "this link has expired; open the card again for a fresh one" if err.reason == "expired" else "forbidden"
            )
            return _error(403, message)

    async def files(request: web.Request) -> web.StreamResponse:
        target = verified(request)
        if isinstance(target, web.Response):
            return target
        pdf = await deps.draft_pdf(*target)
        if pdf is None:
            # Same answer for an unknown draft and a superseded version: nothing about other drafts.
            return _error(404, "not found")
        name = safe_filename(request.match_info["name"])
        return web.Response(
            body=pdf,
            content_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="{name}"',
                "Cache-Control": "private, no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)

    async def view(request: web.Request) -> web.StreamResponse:
        """The report as a web page at the same signed, expiring link as its PDF (``/view/``
        instead of ``/files/``), with a policy that lets the page fetch nothing."""
        target = verified(request)
        if isinstance(target, web.Response):
            return target
        page = await deps.draft_html(*target) if deps.draft_html is not None else None
        if page is None:
            return _error(404, "not found")
        return web.Response(
            text=page,
            content_type="text/html",
            charset="utf-8",
            headers={
                "Content-Security-Policy": CSP,
                "Cache-Control": "private, no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY",
            },
        )

    app.router.add_get("/files/{token}/{name}", files)
    app.router.add_get("/view/{token}/{name}", view)

    def artefact_ref(request: web.Request, signer: ArtefactLinkSigner, internal: bool) -> ArtefactRef | web.Response:
        """The delivered artefact a link names, or the page that refuses it: 403 for a link this
        bot did not make (forged, edited, cut short, another kind of link), 410 for an expired one."""
        try:
            ref = signer.verify(request.match_info["token"])
        except LinkError as err:
            log.info("refused a delivered-report link: %s", err.reason)
            return _refusal_page(*(_EXPIRED if err.reason == "expired" else _FORBIDDEN))
        if (ref.code == INTERNAL_CODE) != internal:  # never signed so; checked all the same
            return _refusal_page(*_FORBIDDEN)
        return ref

    async def published(request: web.Request, signer: ArtefactLinkSigner, internal: bool) -> web.StreamResponse:
        """``…/{token}/{name}.pdf``: the stored PDF; ``…/{token}/{name}.html``: the report's web page
        (customer links only). 410 when the stored artefact is no longer the one the link names."""
        ref = artefact_ref(request, signer, internal)
        if isinstance(ref, web.Response):
            return ref
        if deps.published is None:
            return _refusal_page(*_SUPERSEDED)
        name = request.match_info["name"]
        try:
            if name.endswith(".html") and not internal:
                page = await deps.published.page(ref)
                return web.Response(text=page, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS)
            pdf = await deps.published.pdf(ref)
        except Gone as gone:
            log.info("refused a delivered-report link of %s for %s: %s", ref.code, ref.period_end, gone.reason)
            return _refusal_page(*_SUPERSEDED)
        return web.Response(
            body=pdf,
            content_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="{safe_filename(name)}"',
                "Cache-Control": "private, no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def customer_report(request: web.Request) -> web.StreamResponse:
        return await published(request, report_links, internal=False)

    async def internal_summary(request: web.Request) -> web.StreamResponse:
        return await published(request, internal_links, internal=True)

    app.router.add_get("/reports/{token}/{name}", customer_report)
    app.router.add_get("/internal/{token}/{name}", internal_summary)
    return app

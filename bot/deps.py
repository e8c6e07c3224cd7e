"""What ``bot.app.create_app`` is given: built once at start-up, no module-level globals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class BotDeps:
    bot: Any  # a botbuilder ActivityHandler (bot.handler.ReportBot in production)
    adapter: Any  # the CloudAdapter from bot.auth.build_adapter
    draft_pdf: Callable[
        [str, int], Awaitable[bytes | None]
    ]  # (draft id, version) -> that draft's PDF, None if unknown/stale
    health: Callable[[], Awaitable[dict[str, Any]]]  # extra /healthz fields, e.g. {"store": "ok"}
    # (draft id, version) -> that draft's report as one self-contained HTML page, None if unknown/stale
    draft_html: Callable[[str, int], Awaitable[str | None]] | None = None
    # bot.published.PublishedArtefacts: delivered reports (and the internal summaries) at their own links
    published: Any = None

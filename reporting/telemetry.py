"""What one reportbot process tells its operator: Prometheus metrics and structured logs.

Metrics (``prometheus-client``, the process's default registry, served at ``GET /metrics`` by
``reportbot serve``). Every name starts ``reportbot_``; each counts from the process start:

- ``reportbot_batch_duration_seconds`` (histogram): one weekly batch, start to last draft.
- ``reportbot_drafts_total{outcome}``: drafts made (``ok``) or failed (``failed``).
- ``reportbot_sections_total{source, section, outcome}``: sections collected ``ok`` or
  ``unavailable``; ``reportbot_sections_unavailable_total{source, reason}`` counts the unavailable
  ones by cause (``timeout``, ``auth``, ``data``, ``unavailable``, ``not_configured``, ``bug``).
- ``reportbot_vendor_requests_total{source, status}`` and
  ``reportbot_vendor_request_seconds{source}`` (histogram): every HTTP request to a vendor API,
  retries included; ``status`` is the HTTP status, or ``timeout`` / ``connect_error``.
- ``reportbot_deliveries_total{step, outcome}``: delivery steps (``email``, ``archive``,
  ``channel``...) ``done``, ``failed`` or ``skipped``.
- ``reportbot_teams_posts_total{kind, outcome}``: messages the bot sent to Teams (``ok``,
  ``failed``); ``reportbot_teams_throttled_total``: Bot Connector answers of HTTP 429.
- ``reportbot_approve_latency_seconds`` (histogram): from a draft's creation to its approval.

Logs: :func:`setup_logging` configures the root logger for the CLI. ``json`` writes one JSON
object per line with ``ts``, ``level``, ``logger``, ``message`` and every ``extra=`` field of the
call (``customer``, ``period``, ``source``, ``section``, ``draft_id``, ``step``, ``duration_ms``...);
``text`` writes ``LEVEL logger: message [key=value ...]``. Third-party loggers (azure, msal,
httpx, aiohttp's access log, apscheduler...) are held at WARNING unless the level is DEBUG.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.exposition import choose_encoder

__all__ = [
    "APPROVE_LATENCY",
    "BATCH_DURATION",
    "DELIVERIES",
    "DRAFTS",
    "SECTIONS",
    "SECTIONS_UNAVAILABLE",
    "TEAMS_POSTS",
    "TEAMS_THROTTLED",
    "VENDOR_REQUESTS",
    "VENDOR_REQUEST_SECONDS",
    "JsonFormatter",
    "TextFormatter",
    "exposition",
    "setup_logging",
]

BATCH_DURATION = Histogram(
    "reportbot_batch_duration_seconds",
    "Duration of one weekly batch, from its start to its last draft",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
DRAFTS = Counter("reportbot_drafts", "Drafts made, by outcome (ok, failed)", ["outcome"])
SECTIONS = Counter(
    "reportbot_sections", "Report sections collected, by source, section and outcome", ["source", "section", "outcome"]
)
SECTIONS_UNAVAILABLE = Counter(
    "reportbot_sections_unavailable",
    "Report sections left unavailable, by source and reason (timeout, auth, data, unavailable, not_configured, bug)",
    ["source", "reason"],
)
VENDOR_REQUESTS = Counter(
    "reportbot_vendor_requests",
    "HTTP requests to vendor APIs (retries included), by source and status (HTTP status, timeout, connect_error)",
    ["source", "status"],
)
VENDOR_REQUEST_SECONDS = Histogram(
    "reportbot_vendor_request_seconds",
    "Latency of vendor API requests, by source (until the response headers)",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES = Counter(
    "reportbot_deliveries", "Delivery steps, by step and outcome (done, failed, skipped)", ["step", "outcome"]
)
TEAMS_POSTS = Counter(
    "reportbot_teams_posts", "Messages sent to Teams, by kind (card, update, reply) and outcome", ["kind", "outcome"]
)
TEAMS_THROTTLED = Counter("reportbot_teams_throttled", "Bot Connector answers of HTTP 429 (Teams throttling)")
APPROVE_LATENCY = Histogram(
    "reportbot_approve_latency_seconds",
    "From a draft's creation to its approval",
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200),
)


def exposition(accept: str = "") -> tuple[bytes, str]:
    """(body, content type) of every metric of this process (``GET /metrics``), in the format the
    scraper's ``Accept`` header asks for (OpenMetrics, text 1.0.0 or text 0.0.4: prometheus-client's
    own negotiation)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(REGISTRY), content_type


# LogRecord's own attributes: everything else on a record came from ``extra=``.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

QUIET = (
    "aiohttp.access",
    "apscheduler",
    "asyncio",
    "azure",
    "botbuilder",
    "botframework",
    "google",
    "hpack",
    "httpcore",
    "httpx",
    "kiota",
    "msal",
    "msrest",
    "urllib3",
)


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record."""
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (control characters escaped by ``json``, so a hostile vendor
    string cannot forge a second line)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in extras(record).items():
            out.setdefault(k, _plain(v))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message [key=value ...]``: the ``extra=`` fields a plain format drops."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extras(record)
        if fields:
            tail = " ".join(
                f"{k}={_plain(v)!r}" if isinstance(v, str) and " " in v else f"{k}={_plain(v)}"
                for k, v in fields.items()
            )
            head, sep, rest = line.partition("\n")
            line = f"{head} [{tail}]{sep}{rest}"
        return line


LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")


def setup_logging(level: str = "error", fmt: str = "text", stream: TextIO | None = None) -> None:
    """The root logger at ``level`` (debug, info, warning, error) in ``fmt`` (text, json) on
    ``stream`` (stderr). Replaces what an earlier call installed."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_reportbot", False)]:
        root.removeHandler(old)
    handler._reportbot = True  # type: ignore[attr-defined]  # marks our handler for the next call
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG else max(numeric, logging.WARNING))

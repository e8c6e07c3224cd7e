"""Microsoft Graph for the bot's deliveries (production):

- ``client``: the msgraph-sdk client and credential, errors, the retry loop, the per-mailbox limiter;
- ``upload_session``: the byte-range PUTs of upload sessions (mail attachments, drive files);
- ``mail``: sending a report email exactly once;
- ``drive``: SharePoint/OneDrive folders and files (the archive, a channel's files);
- ``channel``: a customer channel's team, files folder, tab and the bot's card post in it;
- ``backend``: :class:`GraphBackend`, the ``bot.delivery.DeliveryBackend`` composing them.
"""

from bot.graph.backend import Announce, GraphBackend
from bot.graph.channel import CHANNEL_PAGE, CHANNEL_PAGES, TAB_NAME, WEBSITE_TAB_APP, ChannelTeam
from bot.graph.client import (
    DEFAULT_BASE_URL,
    GraphCalls,
    GraphUnavailable,
    SlidingWindowLimiter,
    build_graph_client,
    config_credential,
    graph_credential,
    graph_scope,
)
from bot.graph.drive import SIMPLE_UPLOAD_MAX
from bot.graph.mail import (
    DELIVERY_ID_HEADER,
    DELIVERY_ID_PROPERTY,
    INLINE_ATTACHMENT_MAX,
    MAILBOX_CONCURRENCY,
    MESSAGES_PER_MINUTE,
    UPLOAD_BYTES_PER_5_MIN,
)
from bot.graph.upload_session import UPLOAD_CHUNK

__all__ = [
    "CHANNEL_PAGE",
    "CHANNEL_PAGES",
    "DEFAULT_BASE_URL",
    "DELIVERY_ID_HEADER",
    "DELIVERY_ID_PROPERTY",
    "INLINE_ATTACHMENT_MAX",
    "MAILBOX_CONCURRENCY",
    "MESSAGES_PER_MINUTE",
    "SIMPLE_UPLOAD_MAX",
    "TAB_NAME",
    "UPLOAD_BYTES_PER_5_MIN",
    "UPLOAD_CHUNK",
    "WEBSITE_TAB_APP",
    "Announce",
    "ChannelTeam",
    "GraphBackend",
    "GraphCalls",
    "GraphUnavailable",
    "SlidingWindowLimiter",
    "build_graph_client",
    "config_credential",
    "graph_credential",
    "graph_scope",
]

"""The Teams app manifest and the app package (``manifest.json`` + two icons in one zip).

Schema 1.25 by default: the first version with ``supportsChannelFeatures`` (which opts the app
in to shared and private channels, where customers sit), and it includes the 12-command limit
(1.24) and the ``color32x32`` icon (1.21). Later versions (up to 1.30, the newest the validator
bundles) accept the same document, and ``manifest_version`` selects one. The package is checked
against Microsoft's own schema by ``tests/manifest`` (npm ``@microsoft/app-manifest``).

Without a configuration (sandbox, local tries in the Agents Playground) the ids are
:data:`PLACEHOLDER_APP_ID`, all zeros, which no real registration can have.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from manifest.icons import color_icon, outline_icon

PLACEHOLDER_APP_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_MANIFEST_VERSION = "1.25"
SCHEMA_URL = "https://developer.microsoft.com/json-schemas/teams/v{version}/MicrosoftTeams.schema.json"
COLOR_ICON = "color.png"
OUTLINE_ICON = "outline.png"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_DOMAIN = re.compile(r"^(\*\.)?[A-Za-z0-9.-]+(:[0-9]+)?$")

# The bot's commands, as the Teams compose box suggests them (team channel and personal chat).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("run", "run <CODE> or run all: generate this week's draft report(s) for review"),
    ("status", "This week's drafts and their state"),
    ("help", "What I can do"),
)

# Resource-specific consent, granted per team by its owner when the app is installed. Only what
# the delivery does with Microsoft Graph inside a customer's team; each with its reason.
RSC_PERMISSIONS: tuple[tuple[str, str], ...] = (
    (
        "TeamsTab.Create.Group",
        "Create the 'Weekly report' tab in the customer's channel (POST /teams/{id}/channels/{id}/tabs); "
        "Graph has no API to pin a channel message, so this tab is the week's pin.",
    ),
    (
        "TeamsTab.ReadWrite.Group",
        "Find that tab again (GET .../tabs) and point it at the new week's PDF every Monday "
        "(PATCH .../tabs/{id}); Create alone can neither read nor update a tab.",
    ),
    (
        "ChannelMessage.Read.Group",
        "After an interrupted delivery, find out whether the bot's report card already reached the "
        "customer's channel (GET /teams/{id}/channels/{id}/messages) before posting it again: the Bot "
        "Connector cannot read a message back, so this is what keeps the post to exactly one.",
    ),
    (
        "File.Read.Group",
        "Locate the channel's files folder (GET .../channels/{id}/filesFolder): shared and private "
        "channels have their own SharePoint site. Writing the PDF there needs an application "
        "permission granted in Entra (Files.ReadWrite.All, or Sites.Selected with a per-site grant); "
        "RSC has no file-write permission.",
    ),
)
# Deliberately absent:
# - ChannelMessage.Send.Group: the bot posts through the Bot Framework, not Graph.
# - ChannelSettings.Read.Group: channel ids come from the configuration and the activities.
# - ChannelMember.Read.Group: who may act is decided by configured AAD object ids, not by reading
#   the channel roster; add it only if the bot starts handling shared-channel membership events.
# - groupChat scope: reports belong to the review channel, personal chats and customer channels;
#   a group chat maps to no customer, so the bot would only ever refuse there.


def _require(ok: bool, field: str, problem: str) -> None:
    if not ok:
        raise ValueError(f"manifest {field}: {problem}")


def build_manifest(
    app_id: str,
    bot_name: str,
    version: str,
    valid_domains: Sequence[str] = (),
    *,
    teams_app_id: str | None = None,
    developer_name: str = "reportbot",
    website_url: str | None = None,
    privacy_url: str | None = None,
    terms_url: str | None = None,
    accent_color: str = "#1F4E79",
    manifest_version: str = DEFAULT_MANIFEST_VERSION,
) -> dict[str, Any]:
    """The manifest for a bot registered as ``app_id`` (the Entra/Bot Framework app id).

    ``teams_app_id`` is the Teams app's own id (default: the bot's id, a common choice).
    ``valid_domains``: host names (no scheme) the app may open inside Teams, e.g. the bot's
    public host. Developer URLs default to ``https://<first valid domain>/`` (``/privacy``,
    ``/terms``), or to a ``.invalid`` placeholder when there is none.
    Raises ValueError naming the field on anything the schema or Teams would refuse.
    """
    teams_app_id = teams_app_id or app_id
    _require(bool(_GUID.match(app_id)), "bots[0].botId", f"{app_id!r} is not a GUID")
    _require(bool(_GUID.match(teams_app_id)), "id", f"{teams_app_id!r} is not a GUID")
    _require(bool(_SEMVER.match(version)), "version", f"{version!r} is not MAJOR.MINOR.PATCH")
    _require(0 < len(bot_name) <= 30, "name.short", "must be 1 to 30 characters")
    _require(0 < len(developer_name) <= 32, "developer.name", "must be 1 to 32 characters")
    _require(bool(_HEX.match(accent_color)), "accentColor", f"{accent_color!r} is not #RRGGBB")
    _require(
        bool(re.fullmatch(r"1\.(2[5-9]|[3-9][0-9])", manifest_version)), "manifestVersion", "must be 1.25 or later"
    )
    domains = list(dict.fromkeys(valid_domains))
    _require(len(domains) <= 16, "validDomains", "at most 16 entries")
    for d in domains:
        _require(bool(_DOMAIN.match(d)), "validDomains", f"{d!r} is not a host name (no scheme, no path)")

    site = website_url or (f"https://{domains[0].removeprefix('*.')}/" if domains else "https://reportbot.invalid/")
    privacy = privacy_url or site.rstrip("/") + "/privacy"
    terms = terms_url or site.rstrip("/") + "/terms"
    for field, url in (("websiteUrl", site), ("privacyUrl", privacy), ("termsOfUseUrl", terms)):
        _require(url.lower().startswith("https://"), f"developer.{field}", "must be an https URL")

    scopes = ["team", "personal"]
    return {
        "$schema": SCHEMA_URL.format(version=manifest_version),
        "manifestVersion": manifest_version,
        "version": version,
        "id": teams_app_id,
        "developer": {"name": developer_name, "websiteUrl": site, "privacyUrl": privacy, "termsOfUseUrl": terms},
        "name": {"short": bot_name, "full": f"{bot_name}: weekly customer reports"[:100]},
        "description": {
            "short": "Weekly customer reports: review, comment, approve, deliver.",
            "full": (
                "Drafts each managed customer's weekly report (uptime and SLA, tickets, changes, "
                "backups, security, public sites), posts it as a card in the review channel where an "
                "engineer adds commentary and approves, then emails the PDF to the customer, posts it "
                "in the customer's channel, files it in SharePoint and posts a roll-up of all customers."
            ),
        },
        "icons": {"color": COLOR_ICON, "outline": OUTLINE_ICON},
        "accentColor": accent_color,
        "bots": [
            {
                "botId": app_id,
                "scopes": scopes,
                "isNotificationOnly": False,
                "supportsFiles": False,  # PDFs travel as links: bots cannot send files in channels
                "supportsCalling": False,
                "supportsVideo": False,
                "commandLists": [{"scopes": scopes, "commands": [{"title": t, "description": d} for t, d in COMMANDS]}],
            }
        ],
        "supportsChannelFeatures": "tier1",
        "validDomains": domains,
        "defaultInstallScope": "team",
        "defaultGroupCapability": {"team": "bot"},
        # RSC needs the Entra app id here; "resource" is unused by RSC but must be a URI.
        "webApplicationInfo": {"id": app_id, "resource": f"api://botid-{app_id}"},
        "authorization": {
            "permissions": {"resourceSpecific": [{"name": name, "type": "Application"} for name, _ in RSC_PERMISSIONS]}
        },
    }


def sandbox_manifest(version: str = "0.1.0") -> dict[str, Any]:
    """The manifest without configuration: placeholder ids, no domains."""
    return build_manifest(PLACEHOLDER_APP_ID, "reportbot", version, ())


def build_package(manifest: dict[str, Any], out_zip: Path, *, brand_color: str | None = None) -> Path:
    """Write the app package: ``manifest.json``, ``color.png`` (192×192) and ``outline.png``
    (32×32, white on transparent) at the zip root. Byte-for-byte reproducible (fixed entry
    times and order); written to a temporary file and moved into place, so a failure never
    leaves a partial package at ``out_zip``."""
    icons = manifest.get("icons", {})
    _require(
        icons.get("color") == COLOR_ICON and icons.get("outline") == OUTLINE_ICON,
        "icons",
        f"must name {COLOR_ICON!r} and {OUTLINE_ICON!r}",
    )
    entries = {
        "manifest.json": (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode(),
        COLOR_ICON: color_icon(brand_color or manifest.get("accentColor", "#1F4E79")),
        OUTLINE_ICON: outline_icon(),
    }
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_zip.name}.", dir=out_zip.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for name, data in entries.items():
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        os.replace(tmp, out_zip)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_zip

"""The Microsoft Graph application permissions the delivery needs, derived from the configuration.

:func:`required_permissions` is the one list: docs/delivery.md's "Permissions" table describes
it, and ``reportbot config check --live`` tests the Graph token's ``roles`` against it. A row is
needed only when the configuration uses what it is for:

- the email rows when ``[delivery] email = "graph"`` (the default);
- the archive row when ``archive = "sharepoint"`` (the default);
- the channel rows when a customer has a ``teams_channel``;
- none at all when nothing is delivered through Graph (:func:`uses_graph`).

Some grants never show in an app-only token: resource-specific consent (RSC, granted per team by
its owner when the app is installed; the names are the manifest's, ``manifest.builder.RSC_PERMISSIONS``)
and Exchange Online's RBAC for Applications (``[graph] mail_permissions = "exchange_rbac"``).
"""

from __future__ import annotations

from dataclasses import dataclass

from reporting.config import Config


@dataclass(frozen=True)
class Permission:
    """One row: what the delivery does (``need``) and the application permissions (Entra app
    roles) any one of which allows it (``any_of``).

    ``rsc``: resource-specific consent in the app manifest that allows it too (not in an app token).
    ``exchange_role``: set when ``[graph] mail_permissions = "exchange_rbac"``: the Exchange Online
    application role scoped to the mailbox that grants it instead; the app role must then *not* be
    consented tenant-wide (grants add up: the scope would restrict nothing).
    ``also``: what a role in the token does not prove on its own (checked by another line)."""

    need: str
    any_of: tuple[str, ...]
    rsc: tuple[str, ...] = ()
    exchange_role: str = ""
    also: str = ""


def uses_graph(config: Config) -> bool:
    """Whether ``serve`` delivers through Graph: a ``[graph] mailbox``, or a ``[delivery]`` table
    (whose channel step is always Teams, through Graph). Otherwise approved PDFs are filed under
    ``OUT/approved/``."""
    return bool(config.graph.mailbox or config.delivery.model_fields_set)


def email_via_graph(config: Config) -> bool:
    return uses_graph(config) and config.delivery.email == "graph"


def archive_via_graph(config: Config) -> bool:
    return uses_graph(config) and config.delivery.archive == "sharepoint"


def channels_via_graph(config: Config) -> bool:
    return uses_graph(config) and any(c.teams_channel for c in config.customers)


def required_permissions(config: Config) -> tuple[Permission, ...]:
    """The Graph permissions this configuration's delivery needs, in the docs table's order."""
    rbac = config.graph.mail_permissions == "exchange_rbac"
    rows: list[Permission] = []
    if email_via_graph(config):
        rows += [
            Permission(
                "send as the reports mailbox",
                ("Mail.Send",),
                exchange_role="Application Mail.Send" if rbac else "",
            ),
            Permission(
                "find a message by its delivery id; drafts and attachment upload sessions for large PDFs",
                ("Mail.ReadWrite",),
                exchange_role="Application Mail.ReadWrite" if rbac else "",
            ),
        ]
    if archive_via_graph(config):
        rows.append(
            Permission(
                "archive to SharePoint",
                ("Files.ReadWrite.All", "Sites.ReadWrite.All", "Sites.Selected"),
                also="Sites.Selected needs a write grant on the archive site (the archive line tests it)",
            )
        )
    if channels_via_graph(config):
        rows += [
            Permission("channel files (filesFolder + upload)", ("Files.ReadWrite.All",)),
            Permission(
                "the Weekly report tab",
                ("TeamsTab.ReadWrite.All",),
                rsc=("TeamsTab.Create.Group", "TeamsTab.ReadWrite.Group"),
            ),
            Permission(
                "finding a card post whose outcome a crash lost",
                ("ChannelMessage.Read.All",),
                rsc=("ChannelMessage.Read.Group",),
            ),
        ]
    return tuple(rows)

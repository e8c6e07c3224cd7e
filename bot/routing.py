"""Where an activity comes from, and so what may be done there.

- the review channel (``[teams] review_channel``) and personal chats: configured engineers and
  approvers (``BotSettings.may_run``); in ``--sandbox`` with no review channel configured, the
  conversation where ``run`` is typed acts as the review channel;
- a customer-shared channel (a customer's ``teams_channel``): only that customer's own code,
  and nothing about any other customer is ever shown there;
- another organisation's Teams (a single-tenant app's other tenants): nothing at all;
- anywhere else: a one-line refusal.

The tenant is read from ``channelData.tenant.id``, else ``conversation.tenantId``: botbuilder-schema
4.17.1 maps ``tenant_id`` to a JSON key ``tenantID`` that Teams never sends, so the model's field
is empty for every real activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botbuilder.schema import Activity

from bot.review import User
from bot.settings import BotSettings
from reporting.config import Config


@dataclass(frozen=True)
class Where:
    """Where an activity came from, as far as permissions go."""

    kind: str  # "review" | "personal" | "customer" | "other"
    conversation_key: str
    customer: str | None = None  # the customer whose shared channel this is


def json_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object (a dict), else ``{}``: for reading an activity's
    ``channelData`` or ``value``, which the client may leave out or fill with anything."""
    return value if isinstance(value, dict) else {}


def conversation_key(activity: Activity) -> tuple[str, str]:
    """(key, kind) under which a conversation's reference is stored."""
    conv = activity.conversation
    ctype = (conv.conversation_type if conv else None) or "personal"
    if ctype == "channel":
        given = json_object(json_object(activity.channel_data).get("channel"))
        channel = given.get("id") or (conv.id or "").split(";")[0]
        return f"channel:{channel}", "channel"
    if ctype == "personal":
        user = activity.from_property.aad_object_id or activity.from_property.id if activity.from_property else ""
        return f"personal:{user}", "personal"
    return f"{ctype}:{conv.id}", ctype


def tenant_of(activity: Activity) -> str:
    tenant = json_object(json_object(activity.channel_data).get("tenant"))
    return str(tenant.get("id") or (activity.conversation.tenant_id if activity.conversation else "") or "")


def team_of(activity: Activity) -> dict[str, Any]:
    """``channelData.team`` of a team-scoped activity (``{}`` when there is none)."""
    team = json_object(activity.channel_data).get("team")
    return team if isinstance(team, dict) and team.get("id") else {}


def team_group_of(activity: Activity) -> str | None:
    """The AAD group id of the activity's team (Graph addresses a channel through it)."""
    group = team_of(activity).get("aadGroupId")
    return group if isinstance(group, str) and group else None


def bot_removed(activity: Activity) -> bool:
    """The app was uninstalled from the team (``installationUpdate`` remove, or the bot among
    ``membersRemoved`` of a ``conversationUpdate``)."""
    if activity.type == "installationUpdate":
        return (activity.action or "").lower() in ("remove", "remove-upgrade")
    bot_id = activity.recipient.id if activity.recipient else None
    return activity.type == "conversationUpdate" and any(m.id == bot_id for m in activity.members_removed or [])


def user_of(activity: Activity) -> User:
    f = activity.from_property
    return User(aad_object_id=(f.aad_object_id or "") if f else "", name=(f.name or "") if f else "")


class Router:
    """Classifies activities by where they came from (one per process)."""

    def __init__(self, settings: BotSettings, config: Config):
        self.settings = settings
        self.customer_channels = {c.teams_channel: c.code for c in config.customers if c.teams_channel}

    def foreign(self, activity: Activity) -> bool:
        """An activity from another organisation's Teams (a single-tenant app's other tenants)."""
        tenant = tenant_of(activity)
        return bool(
            self.settings.app_type == "SingleTenant"
            and self.settings.app_tenant_id
            and tenant
            and tenant != self.settings.app_tenant_id
        )

    def where(self, activity: Activity) -> Where:
        key, kind = conversation_key(activity)
        if self.foreign(activity):
            return Where("other", key)  # another organisation's Teams: nothing here is for them
        if kind == "channel":
            channel = key.split(":", 1)[1]
            if channel in self.customer_channels:
                return Where("customer", key, self.customer_channels[channel])
            if channel == self.settings.review_channel or (self.settings.sandbox and not self.settings.review_channel):
                return Where("review", key)
            return Where("other", key)
        if kind == "personal":
            return Where("personal", key)
        if self.settings.sandbox and not self.settings.review_channel:
            return Where("review", key)  # the Agents Playground's group chat
        return Where("other", key)

    def is_customer_conversation(self, conversation_id: str) -> bool:
        return (conversation_id or "").split(";")[0] in self.customer_channels

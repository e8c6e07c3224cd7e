"""A customer's Teams channel over Graph: the team it belongs to, its files folder, its
"Weekly report" website tab (created once, PATCHed weekly), and finding the bot's card post in
it by its idempotency key. Graph cannot pin a channel message; the card itself is posted by the
bot (botbuilder, proactive) — ``bot.announce``."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.teams_tab import TeamsTab
from msgraph.generated.models.teams_tab_configuration import TeamsTabConfiguration

from bot.delivery import Parcel, PermanentError
from bot.graph.client import BUILDERS, GraphCalls, GraphUnavailable, values
from reporting.config import CustomerConfig

_TabsQuery = BUILDERS["teams.item.channels.item.tabs.tabs"].TabsRequestBuilder.TabsRequestBuilderGetQueryParameters
_ChannelMessagesQuery = BUILDERS[
    "teams.item.channels.item.messages.messages"
].MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters

TAB_NAME = "Weekly report"
WEBSITE_TAB_APP = "com.microsoft.teamspace.tab.web"
CHANNEL_PAGE = 50  # GET .../channels/{id}/messages: $top is at most 50
CHANNEL_PAGES = 6  # how far back a post is looked for (300 root messages)

ChannelTeam = Callable[[CustomerConfig], "str | Awaitable[str]"]


class Channels:
    """Customer channels through ``client`` (``base_url`` its base URL). ``channel_team(customer)
    -> team id`` (or an awaitable of it): Graph addresses a channel through its team, which the
    configuration may not hold; None, or an empty answer, is a PermanentError."""

    def __init__(
        self, client: GraphServiceClient, calls: GraphCalls, *, base_url: str, channel_team: ChannelTeam | None
    ) -> None:
        self.client, self.calls, self.base_url = client, calls, base_url
        self.channel_team = channel_team

    async def team_of(self, parcel: Parcel) -> str:
        team = self.channel_team(parcel.customer) if self.channel_team else ""
        if inspect.isawaitable(team):
            team = await team
        if not team:
            raise PermanentError(f"no team id is known for {parcel.code}'s channel {parcel.customer.teams_channel}")
        return str(team)

    async def files_folder(self, team: str, channel: str) -> tuple[str, str]:
        """``(drive id, folder item id)`` of the channel's files (its SharePoint folder)."""
        channel_api = self.client.teams.by_team_id(team).channels.by_channel_id(channel)
        folder = await self.calls.call(f"filesFolder of {channel}", channel_api.files_folder.get)
        drive = folder.parent_reference.drive_id if folder and folder.parent_reference else None
        if folder is None or not folder.id or not drive:
            raise GraphUnavailable(f"filesFolder of {channel} named no drive")
        return str(drive), str(folder.id)

    async def point_tab(self, team: str, channel: str, url: str) -> str:
        """Point the channel's :data:`TAB_NAME` website tab at ``url`` (creating it the first
        time); says what it did: ``created``, ``updated`` or ``already points at it``."""
        tabs_api = self.client.teams.by_team_id(team).channels.by_channel_id(channel).tabs
        params = _TabsQuery(expand=["teamsApp"])

        async def find() -> TeamsTab | None:
            page = await self.calls.call(
                f"tabs of {channel}",
                lambda: tabs_api.get(request_configuration=RequestConfiguration(query_parameters=params)),
            )
            for tab in page.value if page and page.value else []:
                if tab.display_name == TAB_NAME and tab.teams_app is not None and tab.teams_app.id == WEBSITE_TAB_APP:
                    return tab
            return None

        config = TeamsTabConfiguration(content_url=url, website_url=url)
        tab = await find()
        if tab is None:
            new = TeamsTab(
                display_name=TAB_NAME,
                configuration=config,
                additional_data={"teamsApp@odata.bind": f"{self.base_url}/appCatalogs/teamsApps/{WEBSITE_TAB_APP}"},
            )
            created = await self.calls.call(
                f"create the {TAB_NAME} tab in {channel}", lambda: tabs_api.post(new), recheck=find
            )
            if created is not None and created.configuration is not None and created.configuration.content_url == url:
                return "created"
            tab = created
        if tab is None or not tab.id:
            raise GraphUnavailable(f"the {TAB_NAME} tab in {channel} has no id")
        if tab.configuration is not None and tab.configuration.content_url == url:
            return "already points at it"
        tab_id = tab.id
        await self.calls.call(
            f"update the {TAB_NAME} tab in {channel}",
            lambda: tabs_api.by_teams_tab_id(tab_id).patch(TeamsTab(display_name=TAB_NAME, configuration=config)),
        )
        return "updated"

    async def find_post(self, parcel: Parcel, key: str, since: datetime, *, app_id: str = "") -> str | None:
        """The id of the message in the parcel's customer channel whose card carries ``key``
        (posted by the bot ``app_id``, when given), or None; see
        ``GraphBackend.find_channel_post``."""
        channel = parcel.customer.teams_channel
        team = await self.team_of(parcel)
        messages_api = self.client.teams.by_team_id(team).channels.by_channel_id(channel).messages
        params = _ChannelMessagesQuery(top=CHANNEL_PAGE)
        horizon = since - timedelta(minutes=10)
        page = await self.calls.call(
            f"messages of {channel}",
            lambda: messages_api.get(request_configuration=RequestConfiguration(query_parameters=params)),
        )
        for _ in range(CHANNEL_PAGES):
            newest: datetime | None = None
            for message in values(page):
                if carries(message, key, app_id):
                    return str(message.id)
                created = message.created_date_time
                if created is not None and (newest is None or created > newest):
                    newest = created
            next_link = page.odata_next_link if page is not None else None
            if not next_link or (newest is not None and newest < horizon):
                return None
            page = await self.calls.call(f"messages of {channel}", messages_api.with_url(next_link).get)
        return None


def carries(message: Any, key: str, app_id: str) -> bool:
    """A channel message (msgraph ``ChatMessage``) from the bot ``app_id`` (any application when
    empty) with a card attachment whose JSON holds ``key`` as an element id."""
    sender = message.from_.application if message.from_ is not None else None
    if sender is None or (app_id and sender.id != app_id):
        return False
    needle = json.dumps(key)  # the key as a JSON string: "id": "reportbot:...:channel"
    return any(
        a.content and needle in a.content
        for a in message.attachments or []
        if (a.content_type or "").lower() == "application/vnd.microsoft.card.adaptive"
    )

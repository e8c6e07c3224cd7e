"""A Graph delivery process that dies (``os._exit``) right after one side effect took effect,
before anything recorded it. Used by tests/bot/test_delivery_crash_graph.py.

    python -m tests.bot.crash_graph_delivery STORE_DB GRAPH_BASE_URL CONNECTOR_URL [POINT]

POINT: ``email`` (sendMail answered), ``upload`` (the channel's file PUT answered), ``post`` (the
Bot Connector returned the card's id), ``archive`` (the archive file PUT answered). Without a
POINT the process runs the delivery to the end, as a restarted service would, and prints every
step's state as JSON.

Everything is real but the two servers (the parent test's loopback Graph and Bot Connector)
and the credentials: msgraph-sdk, botbuilder's CloudAdapter, the delivery log, the announcer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from bot.announce import ChannelAnnouncer
from bot.auth import build_adapter
from bot.delivery import Deliverer, DeliveryLog, Parcel, StepResult
from bot.graph import GraphBackend
from bot.handler import ReportBot
from bot.state import ReviewState
from tests.bot.harness import BOT_APP_ID, FakeCredentialsFactory, make_settings
from tests.bot.test_announce import channel_ref
from tests.bot.test_graph_delivery import CHANNELS, TEAMS, FakeCredential, make_config, parcel, pdf_of

DRAFT = "d-crash"


def die() -> None:
    os._exit(137)  # as if killed: no cleanup, nothing recorded after the side effect


class DieAfter(GraphBackend):
    def __init__(self, *args: Any, point: str | None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.point = point
        self._in_channel = False

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        result = await super().send_email(parcel, key)
        if self.point == "email":
            die()
        return result

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        self._in_channel = True
        try:
            return await super().post_channel(parcel, key)
        finally:
            self._in_channel = False

    async def _upload(self, drive: str, parent: str, name: str, data: bytes) -> dict[str, Any]:
        item = await super()._upload(drive, parent, name, data)
        if (self.point == "upload" and self._in_channel) or (self.point == "archive" and not self._in_channel):
            die()
        return item


async def main(db: str, graph_url: str, connector_url: str, point: str | None) -> None:
    config = make_config()
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    try:
        state = await ReviewState.open(engine)
        await state.remember(f"channel:{CHANNELS['ACME']}", "channel", channel_ref(connector_url, CHANNELS["ACME"]))
        settings = make_settings(oidc=None, service_urls=[connector_url])
        adapter = build_adapter(settings, credentials_factory=FakeCredentialsFactory(BOT_APP_ID))
        bot = ReportBot(settings, config, review=None, state=state, adapter=adapter, pdf_url=lambda d, v: "")  # type: ignore[arg-type]

        async def post(p: Parcel, card: dict[str, Any]) -> str:
            message_id = await bot.post_customer_card(p, card)
            if point == "post":
                die()
            return message_id

        backend = DieAfter(
            config,
            FakeCredential(),
            base_url=graph_url,
            channel_team=lambda c: TEAMS[c.code],
            point=point,
            settle_delay=0.05,
        )
        backend.announce = await ChannelAnnouncer.open(
            engine,
            post=post,
            find=lambda p, key, since: backend.find_channel_post(p, key, since, app_id=BOT_APP_ID),
            msp_name=config.msp.name,
            settle_delay=0.05,
        )
        try:
            p = parcel(config, "ACME", pdf=pdf_of(60_000), draft=DRAFT)
            log = await DeliveryLog.open(engine)
            steps = await Deliverer(config, log, backend).deliver(DRAFT, "ACME", p.period_end, p.report, p.pdf, "Sam")
            print(json.dumps({s: [v.status, v.attempts, v.detail] for s, v in steps.items()}))
        finally:
            await backend.aclose()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))

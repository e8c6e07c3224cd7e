"""A Google delivery process that dies (``os._exit``) right after one side effect took effect,
before anything recorded it. Used by tests/bot/test_google_demo.py.

    python -m tests.bot.crash_google_delivery STORE_DB CONFIG_JSON [POINT]

POINT: ``email`` (Gmail accepted ``messages.send``) or ``archive`` (Drive created the file).
Without a POINT the process runs the delivery to the end, as a restarted service would, and
prints every step's state as JSON. Everything is real but the loopback Google (the parent test's)
and the channel step (the outbox): google-auth, httpx, the delivery log.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from bot.delivery import Deliverer, DeliveryLog
from bot.google.backend import GoogleDelivery, route
from bot.google.drive import DriveArchiver
from bot.google.gmail import GmailSender
from bot.outbox import OutboxBackend
from reporting.config import parse_config
from tests.bot.doubles import pdf_of
from tests.bot.google_setup import parcel

DRAFT = "d-crash"


def die() -> None:
    os._exit(137)  # as if killed: no cleanup, nothing recorded after the side effect


async def main(db: str, config_path: str, point: str | None) -> None:
    config = parse_config(json.loads(await asyncio.to_thread(Path(config_path).read_text)), config_path, env={})
    if point == "email":
        send = GmailSender._send_simple

        async def send_then_die(self: GmailSender, *a: Any) -> dict[str, Any]:
            await send(self, *a)
            die()
            raise AssertionError("unreachable")

        GmailSender._send_simple = send_then_die  # type: ignore[method-assign]
    elif point == "archive":
        create = DriveArchiver._create

        async def create_then_die(self: DriveArchiver, *a: Any) -> dict[str, Any]:
            await create(self, *a)
            die()
            raise AssertionError("unreachable")

        DriveArchiver._create = create_then_die  # type: ignore[method-assign]
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    google = GoogleDelivery(config, settle_delay=0.05)
    try:
        backend = route(config, OutboxBackend(config, Path(db).parent / "outbox"), google=google)
        p = parcel(config, "ACME", pdf=pdf_of(60_000), draft=DRAFT)
        log = await DeliveryLog.open(engine)
        steps = await Deliverer(config, log, backend).deliver(DRAFT, "ACME", p.period_end, p.report, p.pdf, "Sam")
        print(json.dumps({s: [v.status, v.attempts, v.detail] for s, v in steps.items()}))
    finally:
        await google.aclose()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))

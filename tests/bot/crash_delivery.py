"""A delivery process that dies (``os._exit``) right after one step's side effect, before the
delivery log records it — used by tests/bot/test_delivery.py::test_killed_process_*.

    python -m tests.bot.crash_delivery STORE_DB OUTBOX REPORT_JSON [STEP]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from bot.delivery import Deliverer, DeliveryLog, Parcel, StepResult
from bot.outbox import OutboxBackend
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import SandboxDataset
from reporting import snapshot

PERIOD_END = date(2026, 11, 16)


class DieAfter(OutboxBackend):
    def __init__(self, config, root, step):  # type: ignore[no-untyped-def]
        super().__init__(config, root)
        self.die_after = step

    def _maybe_die(self, step: str) -> None:
        if step == self.die_after:
            os._exit(137)  # as if killed: no cleanup, no log entry for this step

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        r = await super().send_email(parcel, key)
        self._maybe_die("email")
        return r

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        r = await super().post_channel(parcel, key)
        self._maybe_die("channel")
        return r

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        r = await super().archive(parcel, key)
        self._maybe_die("archive")
        return r


async def main(db: str, outbox: str, report_json: str, step: str | None) -> None:
    config = sandbox_config(SandboxDataset(PERIOD_END), "sqlite+aiosqlite:///unused.db")
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    try:
        log = await DeliveryLog.open(engine)
        report = snapshot.from_dict(json.loads(Path(report_json).read_text()))  # noqa: ASYNC240 - a test child, one small file
        backend = DieAfter(config, Path(outbox), step) if step else OutboxBackend(config, Path(outbox))
        steps = await Deliverer(config, log, backend).deliver(
            "d-crash", report.customer.code, PERIOD_END, report, b"%PDF-1.7 x", "Sam"
        )
        print(json.dumps({s: [v.status, v.attempts] for s, v in steps.items()}))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))

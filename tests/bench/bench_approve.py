"""Benchmark: 50 concurrent approves answered while the final PDFs are still being made.

    python tests/bench/bench_approve.py [--customers 50]

Drafts for N sandbox customers (12 + synthetic ones) are made first through the real review
workflow over the vendor simulators. Then N approve invokes (signed Bot Framework tokens, the
real app, ReportBot and workflow, a loopback Bot Connector) are sent at once — from another
process (``fire_requests.py``), as Teams would, so signing and reading them costs the bot nothing. Printed: the
invoke latency p50 / p95 / max (the contract is "answered within 2 s"), how many final PDFs
were already handed off when the last invoke was answered, and how long until all were.
Not a pytest module.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bot.handler import ReportBot
from bot.links import LinkSigner
from bot.review import Review
from bot.service import build_connectors
from bot.state import ReviewState
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.farm import SimulatorFarm
from reporting.engine import Engine
from reporting.pdf import render_pdf
from reporting.store import HistoryStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for the bot test harness
from tests.bot.harness import APPROVER, FakeConnector, FakeOpenIdServer, card_action, running_bot  # noqa: E402

ANCHOR = date(2026, 11, 16)
WEEK_DAY = date(2026, 11, 10)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def bench(customers: int, tmp: Path, profile: Path | None = None) -> dict[str, float]:
    dataset = SandboxDataset(ANCHOR, synthetic=max(0, customers - 12), include_unmapped=False)
    handed: list[float] = []
    async with SimulatorFarm(dataset) as farm:
        config = sandbox_config(dataset, f"sqlite+aiosqlite:///{tmp / 'store.db'}", farm.sources())
        store = await HistoryStore.open(config.store.url)
        state = await ReviewState.open(store.engine)
        connectors = build_connectors(config)
        engine = Engine(config, connectors, store, config.branding(None), render_pdf, pdf_processes=2)  # as bot.service

        async def handoff(draft: Any, report: Any, pdf: bytes) -> None:
            handed.append(time.perf_counter())

        review = Review(
            config, engine, store, state, tmp, handoff, may_approve=lambda a: True, week_day=lambda: WEEK_DAY
        )
        t0 = time.perf_counter()
        drafts = await asyncio.gather(*(review.run(c.code) for c in config.customers[:customers]))
        drafting = time.perf_counter() - t0

        def factory(settings: Any, adapter: Any) -> ReportBot:
            return ReportBot(settings, config, review, state, adapter, pdf_url=LinkSigner.from_settings(settings).url)

        with FakeOpenIdServer() as oidc:
            connector = await FakeConnector().start()
            try:
                async with running_bot(factory, oidc=oidc, connector=connector, draft_pdf=review.pdf) as rb:
                    # Teams' side (signing, sending, reading) runs in another process, as it would
                    requests = []
                    for d in drafts:
                        data = {"draft_id": d.id, "version": d.version, "customer": d.customer_code}
                        activity = card_action(
                            "approve", data, service_url=connector.service_url, reply_to_id="1", user=APPROVER
                        )
                        headers = {
                            "Content-Type": "application/json",
                            "Authorization": rb.minter.header(serviceurl=activity["serviceUrl"]),
                        }
                        requests.append({"headers": headers, "body": json.dumps(activity)})
                    spec = tmp / "requests.json"
                    spec.write_text(json.dumps({"url": f"{rb.base_url}/api/messages", "requests": requests}))
                    profiler = cProfile.Profile() if profile else None
                    if profiler:
                        profiler.enable()
                    t_start = time.perf_counter()
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable,
                        str(Path(__file__).with_name("fire_requests.py")),
                        str(spec),
                        stdout=asyncio.subprocess.PIPE,
                    )
                    out, _ = await proc.communicate()
                    fired = json.loads(out)
                    for status, body in zip(fired["statuses"], fired["bodies"], strict=True):
                        assert status == 200 and "Approved by" in body, body
                    latencies = fired["latencies"]
                    answered = time.perf_counter()
                    if profiler:
                        profiler.disable()
                        profiler.dump_stats(profile)
                    done_at_answer = sum(1 for h in handed if h <= answered)
                    await rb.bot.wait_background()
                    finished = time.perf_counter()
            finally:
                await connector.close()
        engine.close()
        for c in connectors.values():
            await c.aclose()
        await store.close()
    print(f"{len(drafts)} drafts made in {drafting:.1f} s (collect + render, over the simulators)")
    print(
        f"{len(latencies)} concurrent approve invokes: p50 {1000 * statistics.median(latencies):.0f} ms, "
        f"p95 {1000 * pct(latencies, 0.95):.0f} ms, max {1000 * max(latencies):.0f} ms (contract: < 2000 ms)"
    )
    print(
        f"final PDFs handed off when the last invoke was answered: {done_at_answer} of {len(drafts)}; "
        f"all {len(handed)} handed off {finished - t_start:.1f} s after the first click"
    )
    return {"p50": statistics.median(latencies), "p95": pct(latencies, 0.95), "max": max(latencies)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=50)
    ap.add_argument("--profile", type=Path, help="write a cProfile of the bot while the invokes are answered here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(bench(args.customers, Path(tmp), args.profile))
    return 0 if figures["max"] < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())

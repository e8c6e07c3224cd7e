"""Benchmark: the 12-customer demo batch with latency injected on every vendor call.

    python tests/bench/bench_connectors.py [--latency-ms 100] [--requests-only]

First, for 12 and for 200 customers, the requests each source served per customer using it in
one week's collection (Halo under its hosted budget of 300 requests per 5 minutes: the batch's
Halo requests must fit in one window). Then the latency benchmark:

Every simulator waits ``--latency-ms`` before answering each request. First each customer is
collected ALONE with fresh connectors (cold caches), which measures its chain of dependent
calls: the wall time one customer needs when nothing else runs. Then the whole batch runs
through the engine (collect, render, store: the draft phase, history already stored). The batch
passes when

    batch_s <= 1.5 x max(chain_s) + render_s

i.e. requests of different customers and sections overlap instead of queueing; ``render_s`` is
the Markdown + PDF time of all 12 reports, both variants, rendered one after
the other (ReportLab renders one report at a time). Prints the
figures and the requests each simulator served. Not a pytest module.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.cli import _connectors
from connectors.base import ConnectorContext
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import HISTORY_WEEKS, MSP_TIMEZONE, SandboxDataset
from connectors.sim.base import Faults
from connectors.sim.farm import SimulatorFarm
from reporting.collect import collect
from reporting.engine import Engine
from reporting.markdown import render_markdown
from reporting.models import technical
from reporting.pdf import render_pdf
from reporting.period import week_containing
from reporting.store import HistoryStore

WEEK_DAY = date(2026, 11, 10)
ANCHOR = week_containing(WEEK_DAY, MSP_TIMEZONE).end_date


async def bench(latency_ms: float, out: Path) -> dict[str, float]:
    dataset = SandboxDataset(ANCHOR)
    async with SimulatorFarm(dataset) as farm:
        store_url = f"sqlite+aiosqlite:///{(out / 'bench.db').resolve()}"
        config = sandbox_config(dataset, store_url, farm.sources())
        customers = list(config.customers)
        ctx = ConnectorContext(sandbox=dataset)

        # history without latency (not what is measured)
        store = await HistoryStore.open(config.store.url)
        connectors = _connectors(config, ctx, customers)
        engine = Engine(config, connectors, store, config.branding(None), render_pdf)
        try:
            for c in customers:
                await engine.backfill(c, WEEK_DAY, HISTORY_WEEKS)
        finally:
            engine.close()
            for k in connectors.values():
                await k.aclose()

        for sim in farm.sims.values():
            sim.faults = Faults(latency_ms=latency_ms)
        before = farm.requests()

        chains: dict[str, float] = {}
        for c in customers:
            connectors = _connectors(config, ctx, [c])
            period = week_containing(WEEK_DAY, config.customer_timezone(c))
            t0 = time.perf_counter()
            await collect(config, c, period, connectors, lambda: datetime.now(UTC))
            chains[c.code] = time.perf_counter() - t0
            for k in connectors.values():
                await k.aclose()
        alone = farm.requests()

        connectors = _connectors(config, ctx, customers)
        engine = Engine(config, connectors, store, config.branding(None), render_pdf)
        try:
            t0 = time.perf_counter()
            drafts = await engine.run_many(customers, WEEK_DAY, out)
            batch = time.perf_counter() - t0
        finally:
            engine.close()
            for k in connectors.values():
                await k.aclose()
            await store.close()
        after = farm.requests()

    failed = [d for d in drafts if isinstance(d, BaseException)]
    if failed:
        raise SystemExit(f"{len(failed)} drafts failed: {failed[0]!r}")
    # render cost without queueing: every report rendered again, one after the other, in both
    # variants (a draft writes the executive and the technical report)
    t0 = time.perf_counter()
    for d in drafts:
        for variant in (d.report, technical(d.report)):  # type: ignore[union-attr]
            render_markdown(variant, config.branding(None))
            render_pdf(variant, config.branding(None))
    render = time.perf_counter() - t0
    slowest = max(chains, key=chains.__getitem__)
    bound = 1.5 * chains[slowest] + render
    print(f"latency per vendor call: {latency_ms:.0f} ms, on every request of the {len(farm.sims)} simulators")
    print("chain of dependent calls, each customer collected alone (s):")
    for code, s in sorted(chains.items(), key=lambda kv: -kv[1]):
        print(f"  {code:<10} {s:6.2f}  (~{s / (latency_ms / 1000):.0f} round trips)")
    print("requests served per simulator (alone runs / batch):")
    for system in sorted(after):
        print(f"  {system:<12} {alone[system] - before[system]:5d} / {after[system] - alone[system]:5d}")
    print(f"slowest chain: {chains[slowest]:.2f} s ({slowest}); render total: {render:.2f} s")
    print(
        f"batch of {len(customers)}: {batch:.2f} s; bound 1.5 x chain + render = {bound:.2f} s "
        f"-> {'PASS' if batch <= bound else 'FAIL'} ({batch / bound:.2f} of the bound)"
    )
    return {"batch_s": batch, "bound_s": bound, "chain_s": chains[slowest], "render_s": render}


HALO_BUDGET = (300, 300.0)  # hosted HaloPSA: 300 requests per rolling 5 minutes
HALO_PAGE_SIZE = 100  # the page size the connector asks for (the simulator's own cap is small)


async def requests_per_customer(total: int) -> dict[str, float]:
    """One week of every section for ``total`` sandbox customers (12 planted + synthetic ones),
    collected as a batch with the connectors as ``run --all`` builds them; prints the requests each
    source served per customer that uses it. Halo runs under its hosted budget (300 per 5 min):
    its requests for the whole batch must fit in one window, and nothing may wait."""
    dataset = SandboxDataset(ANCHOR, synthetic=max(0, total - 12))
    async with SimulatorFarm(dataset) as farm:
        farm.sims["halo"].page_size = HALO_PAGE_SIZE  # type: ignore[attr-defined]
        sources = farm.sources()
        sources["halo"] |= {
            "page_size": HALO_PAGE_SIZE,
            "requests_per_window": HALO_BUDGET[0],
            "window_seconds": HALO_BUDGET[1],
        }
        config = sandbox_config(dataset, "sqlite+aiosqlite:///:memory:", sources)
        customers = list(config.customers)[:total]
        users = ConnectorContext.batch_sizes(customers)
        connectors = _connectors(config, ConnectorContext(sandbox=dataset), customers)
        before = farm.requests()
        sem = asyncio.Semaphore(config.schedule.concurrency)
        t0 = time.perf_counter()

        async def one(c: Any) -> None:
            async with sem:
                await collect(
                    config,
                    c,
                    week_containing(WEEK_DAY, config.customer_timezone(c)),
                    connectors,
                    lambda: datetime.now(UTC),
                )

        try:
            await asyncio.gather(*(one(c) for c in customers))
            elapsed = time.perf_counter() - t0
            halo_wait = connectors["halo"].http.budget.waited if "halo" in connectors else 0.0  # type: ignore[attr-defined]
        finally:
            for k in connectors.values():
                await k.aclose()
        after = farm.requests()
    out = {}
    print(f"{len(customers)} customers, one week, collected in {elapsed:.1f} s — requests per customer per source:")
    for system in sorted(users):
        n = after[system] - before[system]
        out[system] = n / users[system]
        print(f"  {system:<12} {users[system]:4d} customers  {n:6d} requests  {out[system]:6.2f} per customer")
    halo = after["halo"] - before["halo"]
    ok = halo <= HALO_BUDGET[0] and halo_wait == 0.0
    print(
        f"  halo: {halo} requests for {users.get('halo', 0)} customers, budget {HALO_BUDGET[0]} per "
        f"{HALO_BUDGET[1]:.0f} s, waited {halo_wait:.1f} s -> {'PASS' if ok else 'FAIL'}"
    )
    out["halo_total"], out["halo_ok"] = float(halo), float(ok)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--requests-only", action="store_true", help="only the requests-per-customer figures")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    ok = True
    for total in (12, 200):
        ok = bool(asyncio.run(requests_per_customer(total))["halo_ok"]) and ok
    if args.requests_only:
        return 0 if ok else 1
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(bench(args.latency_ms, Path(tmp)))
    return 0 if figures["batch_s"] <= figures["bound_s"] and ok else 1


if __name__ == "__main__":
    sys.exit(main())

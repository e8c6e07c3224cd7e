"""Benchmark of the weekly batch (the ``reportbot demo`` path) on the sandbox MSP.

    python tests/bench/bench_engine.py [--customers 200] [--out DIR] [--rounds 20]

Not a pytest module (the name does not match ``test_*.py``). Everything is local: the sandbox
connectors and a fresh SQLite store per batch. Outputs go to a temp dir (removed) unless --out.
The large batch runs in a child process so its peak RSS is measured alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bot.cli import Setup, _generate
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import HISTORY_WEEKS, MSP_TIMEZONE, SandboxDataset
from reporting.engine import Draft
from reporting.period import week_containing

WEEK_DAY = date(2026, 11, 10)  # inside the week Mon 2026-11-09 .. Sun 2026-11-15
ANCHOR = week_containing(WEEK_DAY, MSP_TIMEZONE).end_date  # Monday 2026-11-16
BASE_CUSTOMERS = 12
TARGETS = {
    "batch_12_s": 5.0,
    "render_median_ms": 150.0,
    "batch_n_s": 60.0,
    "peak_rss_mb": 300.0,
    "pdf_max_kib": 700.0,
}  # fonts embedded as subsets keep a report far below this


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def setup_for(customers: int, out: Path) -> Setup:
    dataset = SandboxDataset(ANCHOR, synthetic=max(0, customers - BASE_CUSTOMERS))
    store_url = f"sqlite+aiosqlite:///{(out / 'reportbot-sandbox.db').resolve()}"
    return Setup(sandbox_config(dataset, store_url), None, dataset, WEEK_DAY)


def run_batch(customers: int, out: Path) -> tuple[dict[str, Any], list[Draft]]:
    """Fresh store: backfill + draft every customer (as ``reportbot demo``), then the draft phase
    alone: the same drafts again, now that the store holds the history (backfill=0)."""
    out.mkdir(parents=True, exist_ok=True)
    setup = setup_for(customers, out)
    chosen = list(setup.config.customers)
    t0 = time.perf_counter()
    drafts, failures, _ = asyncio.run(_generate(setup, chosen, out / "full", HISTORY_WEEKS, quiet=True))
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    again, failures2, _ = asyncio.run(_generate(setup, chosen, out / "draft", 0, quiet=True))
    draft_only = time.perf_counter() - t0
    sizes = [d.paths["pdf"].stat().st_size for d in drafts]
    return {
        "customers": len(chosen),
        "drafts": len(drafts),
        "failures": len(failures) + len(failures2),
        "total_s": round(total, 3),
        "draft_phase_s": round(draft_only, 3),
        "pdf_median_bytes": int(statistics.median(sizes)) if sizes else 0,
        "pdf_max_bytes": max(sizes, default=0),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }, drafts


def time_renders(drafts: list[Draft], rounds: int) -> dict[str, float]:
    from reporting.html import render_html
    from reporting.markdown import render_markdown
    from reporting.pdf import render_pdf

    branding = sandbox_config(SandboxDataset(ANCHOR), "sqlite+aiosqlite:///unused.db").branding(None)
    md_ms: list[float] = []
    pdf_ms: list[float] = []
    html_ms: list[float] = []
    html_kib: list[float] = []
    for _ in range(rounds):
        for d in drafts:
            t0 = time.perf_counter()
            render_markdown(d.report, branding)
            t1 = time.perf_counter()
            render_pdf(d.report, branding)
            t2 = time.perf_counter()
            page = render_html(d.report, branding)  # served on request (/view/), not in the batch
            t3 = time.perf_counter()
            md_ms.append((t1 - t0) * 1000)
            pdf_ms.append((t2 - t1) * 1000)
            html_ms.append((t3 - t2) * 1000)
            html_kib.append(len(page.encode()) / 1024)
    both = [a + b for a, b in zip(md_ms, pdf_ms, strict=True)]
    return {
        "render_median_ms": round(statistics.median(both), 1),
        "render_p95_ms": round(pct(both, 0.95), 1),
        "md_median_ms": round(statistics.median(md_ms), 2),
        "pdf_median_ms": round(statistics.median(pdf_ms), 1),
        "pdf_p95_ms": round(pct(pdf_ms, 0.95), 1),
        "html_median_ms": round(statistics.median(html_ms), 1),
        "html_p95_ms": round(pct(html_ms, 0.95), 1),
        "html_max_kib": round(max(html_kib, default=0.0), 1),
    }


def child_batch(customers: int, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(customers), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - our own script
    if done.returncode != 0:
        raise SystemExit(f"child batch failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def line(label: str, value: float, unit: str, target: float | None = None) -> None:
    verdict = "" if target is None else f"   (target < {target:g} {unit}: {'ok' if value < target else 'MISS'})"
    print(f"{label:<40} {value:>10.1f} {unit}{verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=200, help="size of the large batch (default 200)")
    p.add_argument("--out", type=Path, help="keep outputs under DIR (default: a temp dir, removed)")
    p.add_argument("--rounds", type=int, default=20, help="render rounds over the 12 reports")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="reportbot-bench-") as tmp:
        root: Path = args.out or Path(tmp)
        if args.child is not None:  # the child: one batch, its figures as the last stdout line
            print(json.dumps(run_batch(args.child, root)[0]))
            return 0
        small, drafts = run_batch(BASE_CUSTOMERS, root / f"batch-{BASE_CUSTOMERS}")
        render = time_renders(drafts, args.rounds)
        big = child_batch(args.customers, root / f"batch-{args.customers}")
    n = big["customers"]
    print(
        f"reportbot benchmark: week {WEEK_DAY} (anchor {ANCHOR}), {HISTORY_WEEKS} backfill weeks, "
        f"{args.rounds} render rounds"
    )
    line(f"batch {BASE_CUSTOMERS} customers, with backfill", small["total_s"], "s", TARGETS["batch_12_s"])
    line(f"batch {BASE_CUSTOMERS} customers, draft phase", small["draft_phase_s"], "s")
    line(f"batch {n} customers, with backfill", big["total_s"], "s", TARGETS["batch_n_s"])
    line(f"batch {n} customers, draft phase", big["draft_phase_s"], "s")
    line("render md+pdf per report, median", render["render_median_ms"], "ms", TARGETS["render_median_ms"])
    line("render md+pdf per report, p95", render["render_p95_ms"], "ms")
    line("  markdown alone, median", render["md_median_ms"], "ms")
    line("  pdf alone, median", render["pdf_median_ms"], "ms")
    line("web page (on request), median", render["html_median_ms"], "ms")
    line("web page (on request), p95", render["html_p95_ms"], "ms")
    line("web page size, max", render["html_max_kib"], "KiB")
    line(f"peak RSS, {BASE_CUSTOMERS}-customer run", small["peak_rss_mb"], "MB", TARGETS["peak_rss_mb"])
    line(f"peak RSS, {n}-customer run (child)", big["peak_rss_mb"], "MB", TARGETS["peak_rss_mb"])
    for label, r in ((str(BASE_CUSTOMERS), small), (str(n), big)):
        line(f"PDF size median ({label} customers)", r["pdf_median_bytes"] / 1024, "KiB")
        line(f"PDF size max ({label} customers)", r["pdf_max_bytes"] / 1024, "KiB", TARGETS["pdf_max_kib"])
    failures = small["failures"] + big["failures"]
    if failures:
        print(f"WARNING: {failures} draft(s) failed; figures are not comparable")
    print(
        json.dumps(
            {
                "week_day": WEEK_DAY.isoformat(),
                "batch_small": small,
                "batch_large": big,
                "render": render,
                "targets": TARGETS,
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

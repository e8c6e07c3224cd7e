"""Fire prepared HTTP POSTs all at once and print each one's latency — the client side of
``bench_approve.py``, in its own process so that Teams' side of the exchange (building and
signing the requests, reading the answers) does not run on the bot's event loop.

    python tests/bench/fire_requests.py REQUESTS.json

REQUESTS.json: ``{"url": ..., "requests": [{"headers": {...}, "body": "..."}]}``. Prints one JSON
object: ``{"latencies": [seconds...], "statuses": [...], "bodies": [...]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx


async def fire(spec: dict[str, Any]) -> dict[str, Any]:
    n = len(spec["requests"])
    limits = httpx.Limits(max_connections=n + 1, max_keepalive_connections=n + 1)
    async with httpx.AsyncClient(trust_env=False, timeout=30.0, limits=limits) as client:
        await client.get(spec["url"].rsplit("/api/", 1)[0] + "/healthz")  # connection set-up off the clock

        async def one(r: dict[str, Any]) -> tuple[float, int, str]:
            t0 = time.perf_counter()
            resp = await client.post(spec["url"], content=r["body"].encode(), headers=r["headers"])
            return time.perf_counter() - t0, resp.status_code, resp.text

        results = await asyncio.gather(*(one(r) for r in spec["requests"]))
    latencies, statuses, bodies = zip(*results, strict=True)
    return {"latencies": latencies, "statuses": statuses, "bodies": bodies}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(fire(json.loads(Path(sys.argv[1]).read_text())))))

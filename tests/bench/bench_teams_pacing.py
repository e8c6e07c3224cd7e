"""Benchmark: 200 review cards and 200 edits into one Teams channel, against a Connector that
enforces Microsoft's per-conversation limits.

    python tests/bench/bench_teams_pacing.py [--cards 200] [--edits 200]

The real ``bot.posting.Poster`` sends through the real botbuilder CloudAdapter to a loopback Bot
Connector (``tests.bot.harness.FakeConnector``) that counts what it accepted per conversation and
answers 429 with ``Retry-After`` whenever one more call would exceed 7 per second, 8 per 2 s,
60 per 30 s or 1,800 per hour (Microsoft's published bot limits). Cards are posted concurrently,
as the Monday batch does; each edit follows its card. Printed: cards and edits the Connector
accepted (every one must be), 429s answered, the time taken, and the theoretical minimum — the
time the last call could go if every call went at the earliest instant the limits allow. Not a
pytest module; about 3 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from botbuilder.schema import Activity

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for the bot test harness
from bot.auth import build_adapter  # noqa: E402
from bot.posting import Poster  # noqa: E402
from tests.bot.harness import BOT_APP_ID, TENANT_ID, FakeConnector, FakeCredentialsFactory, make_settings  # noqa: E402

CHANNEL = "19:review@thread.tacv2"
TEAMS_LIMITS = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))  # (window s, most calls) per conversation


def theoretical_minimum(calls: int, limits: tuple[tuple[float, int], ...] = TEAMS_LIMITS) -> float:
    """When the last of ``calls`` can go at the earliest, the first going at 0 (greedy is optimal
    for sliding windows: every call goes at the first instant all windows allow)."""
    times: list[float] = []
    for i in range(calls):
        t = times[-1] if times else 0.0
        for window, most in limits:
            if i >= most:
                t = max(t, times[i - most] + window)
        times.append(t)
    return times[-1] if times else 0.0


async def bench(cards: int, edits: int) -> dict[str, float]:
    connector = await FakeConnector(limits=TEAMS_LIMITS).start()
    try:
        settings = make_settings(oidc=None, service_urls=[connector.service_url])
        adapter = build_adapter(settings, credentials_factory=FakeCredentialsFactory(BOT_APP_ID))
        poster = Poster(adapter, BOT_APP_ID)
        install = {"service_url": connector.service_url, "tenant_id": TENANT_ID, "bot_id": f"28:{BOT_APP_ID}"}
        ref = poster.channel_reference(CHANNEL, install)

        async def card(i: int) -> None:
            posted = await poster.send(ref, Activity(type="message", text=f"review card {i}"), f"card {i}")
            if i < edits:
                await poster.edit(ref, posted, Activity(type="message", text=f"review card {i}, edited"), f"card {i}")

        started = time.monotonic()
        await asyncio.gather(*(card(i) for i in range(cards)))
        took = time.monotonic() - started
        sent = [c for c in connector.calls if c.kind == "send" and c.conversation_id == CHANNEL]
        updated = [c for c in connector.calls if c.kind == "update" and c.conversation_id == CHANNEL]
        texts = {c.body["text"] for c in sent}
        return {
            "cards": len(sent),
            "distinct": len(texts),
            "edits": len(updated),
            "lost": cards - len(texts) + edits - len({c.activity_id for c in updated}),
            "throttled": connector.throttled,
            "seconds": took,
            "minimum": theoretical_minimum(cards + min(edits, cards)),
            "waited": poster.pacer.waited,
        }
    finally:
        await connector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=200)
    parser.add_argument("--edits", type=int, default=200)
    args = parser.parse_args()
    r = asyncio.run(bench(args.cards, args.edits))
    print(
        f"teams pacing: {r['cards']} cards ({r['distinct']} distinct) and {r['edits']} edits into one channel, "
        f"{r['lost']} lost, {r['throttled']} answered 429"
    )
    print(
        f"teams pacing: {r['seconds']:.1f} s taken; theoretical minimum {r['minimum']:.1f} s "
        f"({r['seconds'] / r['minimum'] if r['minimum'] else 0:.2f}x)"
    )
    if r["lost"] or r["cards"] != args.cards:
        sys.exit("teams pacing: cards were lost")


if __name__ == "__main__":
    main()

"""Drive the whole review loop in the Microsoft 365 Agents Playground, headless.

Start the bot and the Playground first (README, "Try the bot locally"), then:

    .venv/bin/python docs/playground/loop.py [CODE]

It talks to the Playground's own HTTP API (what its browser UI uses) as the mocked user "Alex
Wilber" in the personal chat: sends ``run CODE``, waits for the review card, clicks **Save**
with a commentary, **Approve**, and **Approve** again, and prints what the bot answered and how
long each click took. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

PLAYGROUND = "http://127.0.0.1:56150"
COMMENTARY = "Leeds plant WAN outage on Wednesday: the ISP replaced the line card. <b>Not</b> **markup**."


def find(card: Any, kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("type") == kind:
                out[x.get("verb") or x.get("title") or str(len(out))] = x
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(card)
    return out


def texts(card: Any) -> list[str]:
    return [b["text"] for b in find(card, "TextBlock").values() if b.get("text")] if card else []


async def drain(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict[str, Any]]:
    got = []
    try:
        while True:
            msg = await asyncio.wait_for(ws.receive(), seconds)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            got.append(json.loads(msg.data))
    except TimeoutError:
        pass
    return got


async def main(code: str) -> int:
    async with aiohttp.ClientSession() as http:
        config = (await (await http.get(f"{PLAYGROUND}/_internal/v1/config")).json())["config"]
        chat, me = config["personalChat"]["id"], config["currentUser"]["id"]
        async with http.ws_connect(
            f"{PLAYGROUND.replace('http', 'ws')}/_ws_conversation/v1/conversations/stream"
        ) as ws:
            await http.post(
                f"{PLAYGROUND}/_conversation/v1/conversations/{chat}/messages",
                json={"from": {"id": me}, "text": f"run {code}", "textFormat": "plain"},
            )
            events = await drain(ws, 30)
            for e in events:
                if e.get("message", {}).get("text"):
                    print("bot:", e["message"]["text"])
            cards = [
                e["message"] for e in events if e.get("action") == "createMessage" and e["message"].get("attachments")
            ]
            if not cards:
                print("no review card arrived", file=sys.stderr)
                return 1
            message = cards[-1]
            card = message["attachments"][0]["content"]
            print("card:", " | ".join(texts(card)[:4]))

            async def click(verb: str, extra: dict[str, Any]) -> dict[str, Any]:
                nonlocal card
                action = find(card, "Action.Execute")[verb]
                body = {
                    "name": "adaptiveCard/action",
                    "from": {"id": me},
                    "conversation": {"id": chat},
                    "replyToId": message["messageId"],
                    "value": {
                        "action": {"type": "Action.Execute", "verb": verb, "data": {**action["data"], **extra}},
                        "trigger": "manual",
                    },
                }
                t0 = time.perf_counter()
                answer = await (await http.post(f"{PLAYGROUND}/_conversation/v1/invoke", json=body)).json()
                ms = 1000 * (time.perf_counter() - t0)
                new = answer.get("value") if isinstance(answer.get("value"), dict) else None  # the replacement card
                edits = await drain(ws, 6)
                print(
                    f"{verb}: answered in {ms:.0f} ms; message edits seen: "
                    f"{sum(e.get('action') == 'updateMessage' for e in edits)}"
                )
                if new:
                    print("   ", " | ".join(texts(new)[1:4]))
                    if find(new, "Action.Execute"):
                        card = new
                return answer

            await click("save", {"commentary": COMMENTARY})
            await click("approve", {"commentary": COMMENTARY})
            await click("approve", {})
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ACME")))

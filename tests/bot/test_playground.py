"""Issue 16, must-show 4: ``test ACME`` typed in the Microsoft 365 Agents Playground (Microsoft's
own local Teams emulator, ``@microsoft/m365agentsplayground``, run with node) reaches
``reportbot serve --sandbox`` and delivers only to the requester.

The Playground plays the Bot Connector: it sends the bot Teams-shaped activities for its mocked
user (Alex Wilber, alexw@example.com) and answers the bot's ``GET /v3/conversations/{id}/members/{id}``
with that user's ``email``; this test talks to the Playground's own HTTP API (what its browser UI
uses, as ``docs/playground/loop.py`` does). Afterwards the outbox holds exactly one ``.eml``, to
that address, marked TEST, and nothing archived or posted; no delivery is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from tests import processes
from tests.bot.test_serve_shutdown import free_ports
from tests.cards.nodetools import node_modules  # noqa: F401 - the fixture


def _wait(url: str, what: str, proc: subprocess.Popen[bytes], log: Path, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while True:
        assert proc.poll() is None, f"{what} stopped: {log.read_text(errors='replace')[-2000:]}"
        assert time.monotonic() < deadline, f"{what} did not start: {log.read_text(errors='replace')[-2000:]}"
        with contextlib.suppress(httpx.TransportError):  # not listening yet: ask again
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.3)


async def _say(playground: str, text: str, settle: float = 45.0) -> tuple[dict[str, Any], list[str]]:
    """Type ``text`` in the Playground's personal chat; the bot's messages until it is quiet."""
    async with aiohttp.ClientSession() as http:
        config = (await (await http.get(f"{playground}/_internal/v1/config")).json())["config"]
        chat, me = config["personalChat"]["id"], config["currentUser"]["id"]
        said: list[str] = []
        async with http.ws_connect(
            f"{playground.replace('http', 'ws')}/_ws_conversation/v1/conversations/stream"
        ) as ws:
            post = f"{playground}/_conversation/v1/conversations/{chat}/messages"
            await http.post(post, json={"from": {"id": me}, "text": text, "textFormat": "plain"})
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline and not any(" sent to " in s or "could not" in s for s in said):
                try:
                    msg = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(msg.data)
                if event.get("action") == "createMessage" and event.get("message", {}).get("text"):
                    said.append(event["message"]["text"])
        return config["currentUser"], said


def test_test_acme_from_the_agents_playground_goes_to_the_requester_only(tmp_path: Path, node_modules: Path) -> None:  # noqa: F811
    bot_port, pg_port = free_ports(2)
    out = tmp_path / "reports"
    bot_log, pg_log = tmp_path / "serve.log", tmp_path / "playground.log"
    npx = shutil.which("npx")
    assert npx is not None
    bot = playground = None
    try:
        with bot_log.open("wb") as log:
            bot = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "bot.cli", "serve", "--sandbox", "--port", str(bot_port), "--out", str(out)],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(f"http://127.0.0.1:{bot_port}/healthz", "reportbot serve --sandbox", bot, bot_log)
        env = {
            **os.environ,
            "TEAMSAPPTESTER_BROWSER": "none",
            "APPLICATION_INSIGHTS_NO_STATSBEAT": "true",
            "PATH": f"{node_modules / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        with pg_log.open("wb") as log:
            playground = subprocess.Popen(  # noqa: S603 - Microsoft's Playground, installed at a pinned version
                [
                    str(node_modules / ".bin" / "agentsplayground"),
                    "-e",
                    f"http://127.0.0.1:{bot_port}/api/messages",
                    "-c",
                    "msteams",
                    "-p",
                    str(pg_port),
                    "--disable-telemetry",
                ],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{pg_port}"
        _wait(f"{base}/_internal/v1/config", "the Agents Playground", playground, pg_log)

        user, said = asyncio.run(_say(base, "test ACME"))
        address = user["email"]
        assert address == "alexw@example.com"  # the Playground's mocked user, as its members API gives it
        assert any("TEST report of ACME" in s and f"sent to {address} only" in s for s in said), said

        outbox = out / "outbox"
        files = sorted(p.relative_to(outbox).as_posix() for p in outbox.rglob("*") if p.is_file())
        assert len(files) == 1 and files[0].startswith("mail/ACME-") and files[0].endswith("-TEST.eml"), files
        msg = email.message_from_bytes((outbox / files[0]).read_bytes(), policy=email.policy.default)
        assert msg["To"] == address and msg["Cc"] is None and msg["Bcc"] is None
        assert str(msg["Subject"]).startswith("TEST — Acme Manufacturing:")
        [pdf] = [a for a in msg.iter_attachments() if a.get_content_type() == "application/pdf"]
        assert pdf.get_filename().endswith("-TEST.pdf")
        db = sqlite3.connect(out / "reportbot-sandbox.db")
        try:
            assert db.execute("select count(*) from deliveries").fetchone() == (0,)  # not the week's delivery
            assert db.execute("select count(*) from drafts").fetchone() == (0,)
        finally:
            db.close()
    finally:
        processes.stop(playground, bot)

"""Two `reportbot serve` processes against one PostgreSQL database (127.0.0.1:5432; CI has it).

Both start with ``--now`` on the same twelve-customer configuration (the sandbox MSP, its vendor
simulators served by this test): every customer-week is drafted exactly once between them.
Then a process is killed (SIGKILL) in the middle of a slow batch: the other finishes the
customers it held once their lease runs out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from connectors.sandbox.config import sandbox_config_files
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.base import Faults
from connectors.sim.farm import SimulatorFarm
from tests.processes import stop

ANCHOR = date(2026, 11, 16)
ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
CODES = 12


class Farm:
    """The simulators in a thread of their own; ``faults`` can be changed while they run."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.farm: SimulatorFarm | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        async def run() -> None:
            self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
            async with SimulatorFarm(SandboxDataset(ANCHOR)) as farm:
                self.farm = farm
                self.ready.set()
                await self.stop.wait()

        try:
            asyncio.run(run())
        except BaseException as err:
            self.error = err
            self.ready.set()

    def __enter__(self) -> Farm:
        self.thread.start()
        assert self.ready.wait(30) and self.error is None, self.error
        return self

    def latency(self, ms: float) -> None:
        assert self.farm is not None
        for sim in self.farm.sims.values():
            sim.faults = Faults(latency_ms=ms)

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database for this test (dropped afterwards)."""
    name = f"reportbot_t_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as err:
        if os.environ.get("CI"):
            raise AssertionError(f"CI must provide PostgreSQL at {ADMIN}: {err}") from err
        pytest.skip(f"no PostgreSQL at {ADMIN} on this machine ({err}); CI runs this test")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def write_config(farm: Farm, tmp: Path, store_url: str, lease: float) -> tuple[Path, dict[str, str]]:
    assert farm.farm is not None
    toml, env = sandbox_config_files(farm.farm.dataset, farm.farm.sources(), tmp / "unused.db")
    toml = toml.replace(f'url = "sqlite:///{(tmp / "unused.db").resolve()}"', f'url = "{store_url}"')
    toml = toml.replace(
        "[collect]", f'[schedule]\nconcurrency = 3\nlease_seconds = {lease}\nreminder_cron = ""\n\n[collect]'
    )
    path = tmp / "two.toml"
    path.write_text(toml)
    return path, dict(line.split("=", 1) for line in env.splitlines())


def serve(config: Path, env: dict[str, str], port: int, out: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "bot.cli",
        "serve",
        "--sandbox",
        "--config",
        str(config),
        "--port",
        str(port),
        "--out",
        str(out),
        "--now",
    ]
    with (out.parent / f"serve-{port}.log").open("wb") as log:  # the child keeps its own descriptor
        # a process group of its own: tests.processes.stop can end it and all it started
        return subprocess.Popen(  # noqa: S603
            cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


async def claims(store_url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(store_url, timeout=5)
    try:
        try:
            rows = await conn.fetch(
                "select customer_code, status, owner, attempts from batch_claims where customer_code <> '__rollup__'"
            )
        except asyncpg.UndefinedTableError:
            return []
        return [dict(r) for r in rows]
    finally:
        await conn.close()


async def versions(store_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(store_url, timeout=5)
    try:
        return {r["customer_code"]: r["version"] for r in await conn.fetch("select customer_code, version from drafts")}
    finally:
        await conn.close()


def wait_until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {within:g} s waiting for {what}")


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.postgres
def test_two_processes_draft_each_customer_week_once(database: str, tmp_path: Path) -> None:
    with Farm() as farm:
        farm.latency(150)  # a batch long enough (~10 s) that the later-starting process finds free customers
        config, env = write_config(farm, tmp_path, database, lease=30)
        p1, p2 = free_ports(2)
        procs = [serve(config, env, p1, tmp_path / "a"), serve(config, env, p2, tmp_path / "b")]
        try:
            wait_until(
                lambda: sum(c["status"] == "drafted" for c in asyncio.run(claims(database))) == CODES,
                240,
                "12 drafted customer-weeks",
            )
        finally:
            stop(*procs)
        rows = asyncio.run(claims(database))
        assert sorted(r["customer_code"] for r in rows) == sorted({r["customer_code"] for r in rows})  # one claim each
        assert all(r["attempts"] == 1 for r in rows)
        assert set(asyncio.run(versions(database)).values()) == {1}  # each draft made exactly once
        owners = {r["owner"].rsplit(":", 2)[1] for r in rows}
        assert owners == {str(procs[0].pid), str(procs[1].pid)}, f"both processes took part: {rows}"


@pytest.mark.postgres
def test_a_killed_process_customers_are_finished_by_the_other(database: str, tmp_path: Path) -> None:
    with Farm() as farm:
        farm.latency(150)  # a slow batch, so there is a middle to kill it in
        config, env = write_config(farm, tmp_path, database, lease=4)
        p1, p2 = free_ports(2)
        victim = serve(config, env, p1, tmp_path / "a")
        try:
            wait_until(
                lambda: any(c["status"] == "collecting" for c in asyncio.run(claims(database))),
                120,
                "the first process to start collecting",
            )
            time.sleep(1.0)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            held = [c["customer_code"] for c in asyncio.run(claims(database)) if c["status"] == "collecting"]
            assert held, "the killed process held unfinished customer-weeks"
            farm.latency(20)
            survivor = serve(config, env, p2, tmp_path / "b")
            try:
                wait_until(
                    lambda: sum(c["status"] == "drafted" for c in asyncio.run(claims(database))) == CODES,
                    240,
                    "the survivor to finish all 12",
                )
            finally:
                stop(survivor)
        finally:
            stop(victim)
        rows = {r["customer_code"]: r for r in asyncio.run(claims(database))}
        for code in held:
            assert rows[code]["attempts"] == 2 and rows[code]["owner"].rsplit(":", 2)[1] == str(survivor.pid)


class ConnectorThread:
    """A loopback Bot Connector (``tests.bot.harness.FakeConnector``) in a thread of its own, so
    both serve processes post their cards where this test can count them."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.connector: Any = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        from tests.bot.harness import FakeConnector

        async def run() -> None:
            self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
            self.connector = await FakeConnector().start()
            try:
                self.ready.set()
                await self.stop.wait()
            finally:
                await self.connector.close()

        asyncio.run(run())

    def __enter__(self) -> ConnectorThread:
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    def posts(self, channel: str) -> list[dict[str, Any]]:
        """Bodies of the new posts made in ``channel`` (not edits)."""
        return [c.body for c in list(self.connector.calls) if c.kind == "send" and c.conversation_id == channel]


def install_app(port: int, service_url: str) -> None:
    """The installationUpdate Teams sends when the app is added to the MSP's team."""
    import httpx

    from tests.bot.harness import installation_update

    activity = installation_update(service_url=service_url)
    deadline = time.monotonic() + 60
    while True:
        try:
            r = httpx.post(f"http://127.0.0.1:{port}/api/messages", json=activity, timeout=5)
            assert r.status_code in (200, 201), r.text
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def serve_logs(tmp: Path, lines: int = 40) -> str:
    """The last lines of each serve process's log, for a failure message (CI shows nothing else)."""
    out = []
    for log in sorted(tmp.glob("serve-*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(out)


def card_customer(body: dict[str, Any]) -> str:
    """The customer a review card is for (its ``reportbot:review`` data on the actions)."""
    import json

    text = json.dumps(body)
    found = {code for code in CUSTOMER_CODES if f'"customer": "{code}"' in text}
    assert len(found) == 1, text[:500]
    return found.pop()


CUSTOMER_CODES = [c.code for c in SandboxDataset(ANCHOR).customers]


@pytest.mark.postgres
def test_a_paused_instance_posts_no_second_card(database: str, tmp_path: Path) -> None:
    """SIGSTOP past the lease, the other instance takes the customer-weeks over and posts their
    cards; after SIGCONT the paused one finds its claims lost and posts nothing."""
    from tests.bot.harness import REVIEW_CHANNEL, ROLLUP_CHANNEL

    with Farm() as farm, ConnectorThread() as teams:
        farm.latency(150)
        config, env = write_config(farm, tmp_path, database, lease=4)
        config.write_text(
            config.read_text() + f'\n[teams]\nreview_channel = "{REVIEW_CHANNEL.channel_id}"\n'
            f'rollup_channel = "{ROLLUP_CHANNEL.channel_id}"\n'
        )
        p1, p2 = free_ports(2)
        paused = serve(config, env, p1, tmp_path / "a")
        other: subprocess.Popen[bytes] | None = None
        try:
            install_app(p1, teams.connector.service_url)
            wait_until(
                lambda: any(c["status"] == "collecting" for c in asyncio.run(claims(database))),
                120,
                "the first process to start collecting",
            )
            paused.send_signal(signal.SIGSTOP)
            held = {c["customer_code"] for c in asyncio.run(claims(database)) if c["status"] == "collecting"}
            assert held
            time.sleep(5)  # past the 4 s lease
            other = serve(config, env, p2, tmp_path / "b")
            try:
                wait_until(lambda: len(teams.posts(REVIEW_CHANNEL.channel_id)) >= CODES, 240, "12 review cards")
                # the roll-up, then the MSP's service-desk summaries (bot.internal_delivery)
                wait_until(
                    lambda: len(teams.posts(ROLLUP_CHANNEL.channel_id)) >= 2, 90, "the roll-up and the summaries"
                )
            except AssertionError as err:
                held_now = asyncio.run(claims(database))
                raise AssertionError(f"{err}; claims: {held_now}\n{serve_logs(tmp_path)}") from None
            before = len(teams.connector.calls)
            paused.send_signal(signal.SIGCONT)
            time.sleep(8)  # the paused process's heartbeat and post retries run again
            after = [(c.kind, c.conversation_id) for c in list(teams.connector.calls)[before:]]
            assert after == [], f"the paused instance touched no card once resumed: {after}"
            assert paused.poll() is None and other.poll() is None, "both processes are still serving"
        finally:
            stop(paused, other)
        cards = [card_customer(b) for b in teams.posts(REVIEW_CHANNEL.channel_id)]
        assert sorted(cards) == sorted(CUSTOMER_CODES), f"one review card per customer-week: {sorted(cards)}"
        rollup, summaries = teams.posts(ROLLUP_CHANNEL.channel_id)  # one roll-up, one service desk summary
        assert "Weekly roll-up" in str(rollup) and "Service desk summary" in str(summaries)
        rows = {r["customer_code"]: r for r in asyncio.run(claims(database))}
        for code in held:  # taken over by the other instance
            assert rows[code]["owner"].rsplit(":", 2)[1] == str(other.pid) and rows[code]["attempts"] == 2
        assert all(r["status"] == "drafted" for r in rows.values())


@pytest.mark.postgres
def test_an_instance_frozen_inside_a_transaction_holds_the_others_up_only_briefly(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance paused between a heartbeat's UPDATE and its COMMIT holds that claim's row lock.
    PostgreSQL ends its session after the stalled-transaction limit, so the other instance's
    take-over waits that long instead of until the paused one wakes; woken, the paused one finds
    its claim lost and carries on with a fresh connection."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update
    from sqlalchemy.exc import DBAPIError

    from reporting import store as store_module
    from reporting.store import HistoryStore
    from scheduler.claims import Claims, claims

    monkeypatch.setattr(store_module, "STALLED_TRANSACTION_SECONDS", 2.0)
    url = database.replace("postgresql://", "postgresql+asyncpg://", 1)
    week = date(2026, 11, 30)

    async def scenario() -> None:
        frozen, other = await HistoryStore.open(url), await HistoryStore.open(url)
        try:
            now = datetime.now(UTC)
            mine = await Claims.open(frozen.engine, "a:1:x", 1)
            theirs = await Claims.open(other.engine, "b:2:y", 1)
            assert await mine.claim("ACME", week, now)
            conn = await frozen.engine.connect()
            await conn.begin()
            await conn.execute(update(claims).where(claims.c.customer_code == "ACME").values(updated_at=now))
            started = time.monotonic()  # ...and the process is frozen here, its transaction open
            taken = await asyncio.wait_for(theirs.claim("ACME", week, now + timedelta(seconds=5)), 30)
            waited = time.monotonic() - started
            assert taken, "the other instance takes the expired claim over"
            assert 1.5 <= waited < 10, f"held up {waited:.1f} s by the frozen transaction"
            with pytest.raises(DBAPIError):  # woken: the server has ended that session
                await conn.commit()
            await conn.close()
            assert not await mine.renew("ACME", week, now + timedelta(seconds=6)), "its claim is lost"
        finally:
            await frozen.close()
            await other.close()

    asyncio.run(scenario())

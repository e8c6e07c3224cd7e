"""The history store on SQLite (default) and on PostgreSQL (127.0.0.1:5432, present in CI)."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text as sqltext

from reporting.config import StoreConfig
from reporting.store import HistoryStore, StoreError

PG_URL = os.environ.get("REPORTBOT_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def payload(code: str, end: str, n: int) -> dict:
    return {"customer": {"code": code}, "period": {"end": f"{end}T00:00:00+00:00"}, "n": n}


async def _pg_store() -> tuple[HistoryStore, str]:
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=5)
    except (OSError, asyncpg.PostgresError) as err:
        if os.environ.get("CI"):
            raise AssertionError(f"CI must provide PostgreSQL at {PG_URL}: {err}") from err
        pytest.skip(f"no PostgreSQL at {PG_URL} on this machine ({err}); CI runs this test")
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    store = await HistoryStore.open(PG_URL, connect_args={"server_settings": {"search_path": schema}})
    return store, schema


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    if request.param == "sqlite":
        s = await HistoryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
        yield s
        await s.close()
        return
    s, schema = await _pg_store()
    try:
        yield s
    finally:
        async with s.engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await s.close()


async def test_rerun_replaces_the_week(store: HistoryStore) -> None:
    await store.save(payload("ACME", "2026-11-16", 1), kind="draft")
    await store.save(payload("ACME", "2026-11-16", 2), kind="draft")
    assert await store.count() == 1
    got = await store.get("ACME", date(2026, 11, 16))
    assert got is not None and got["n"] == 2
    assert await store.get("ACME", date(2026, 11, 9)) is None


async def test_history_is_oldest_first_and_before_the_week(store: HistoryStore) -> None:
    for i, end in enumerate(["2026-10-19", "2026-10-26", "2026-11-02", "2026-11-09", "2026-11-16"]):
        await store.save(payload("ACME", end, i), kind="history")
    await store.save(payload("GLOBEX", "2026-11-09", 99), kind="history")
    hist = await store.history("ACME", date(2026, 11, 16), limit=3)
    assert [h["n"] for h in hist] == [1, 2, 3]
    assert await store.count("GLOBEX") == 1
    assert await store.status() == "ok"


async def test_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the store at sqlite.*missing.dir does not exist"):
        await HistoryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'h.db'}")
    with pytest.raises(StoreError) as info:
        await HistoryStore.open("postgresql+asyncpg://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(info.value)


@pytest.mark.postgres
async def test_a_url_with_libpq_sslmode_opens() -> None:
    """``?sslmode=prefer`` as guides write it: asyncpg alone would fail with a TypeError at start."""
    first, schema = await _pg_store()  # PostgreSQL answers (or the test is skipped off CI)
    url = StoreConfig(url=PG_URL.replace("+asyncpg", "") + "?sslmode=prefer").url
    assert url.endswith("?ssl=prefer")
    other = await HistoryStore.open(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        assert await other.status() == "ok"
    finally:
        await other.close()
        async with first.engine.begin() as conn:
            await conn.execute(sqltext(f'DROP SCHEMA "{schema}" CASCADE'))
        await first.close()


def test_a_failed_sqlite_open_leaves_no_thread_behind(tmp_path: Path) -> None:
    """Past the folder check SQLite itself refuses (the "file" is a folder). aiosqlite's worker
    thread must have ended when the error is raised: one still running calls into a loop that
    ``asyncio.run`` has just closed ("Event loop is closed" in that thread, which failed whichever
    test ran next). Each attempt closes its loop at once, as a CLI run or a test does."""

    async def attempt() -> None:
        with pytest.raises(StoreError, match="cannot open the store at sqlite.*unable to open database file"):
            await HistoryStore.open(f"sqlite+aiosqlite:///{tmp_path}")

    for _ in range(20):
        asyncio.run(attempt())
        left = [t.name for t in threading.enumerate() if "_connection_worker_thread" in t.name]
        assert left == [], f"aiosqlite threads still running after the failed open: {left}"

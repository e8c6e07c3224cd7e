"""A store made before period kinds is brought up to date when it is opened: the reports,
artefacts, drafts and batch-claims tables gain ``period_kind`` (their rows are weeks) in their
key, so a customer's month and week that end on the same day are two reports, not one. On SQLite
(rebuilt) and on PostgreSQL (altered in place), with the rows kept."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.asyncio import create_async_engine

from bot.state import ReviewState
from reporting.store import HistoryStore
from scheduler.claims import Claims
from tests.scheduler import test_two_processes

database = test_two_processes.database  # the fixture: a fresh PostgreSQL database, dropped afterwards

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
END = date(2026, 12, 1)  # a Tuesday: a month's end; a week ending that day is made up for the clash

OLD = MetaData()  # the four tables as the store created them before period kinds
Table(
    "reports",
    OLD,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_code", String(32), nullable=False),
    Column("period_end", Date, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("customer_code", "period_end", name="uq_reports_customer_period"),
)
Table(
    "artefacts",
    OLD,
    Column("customer_code", String(32), nullable=False),
    Column("period_end", Date, nullable=False),
    Column("name", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("customer_code", "period_end", "name", name="pk_artefacts"),
)
Table(
    "drafts",
    OLD,
    Column("id", String(36), primary_key=True),
    Column("customer_code", String(32), nullable=False),
    Column("period_end", Date, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("commentary", Text, nullable=False, default=""),
    Column("commentary_by", String(200)),
    Column("commentary_at", DateTime(timezone=True)),
    Column("decided_by", String(200)),
    Column("decided_at", DateTime(timezone=True)),
    Column("reason", Text),
    Column("card_ref", Text),
    Column("card_activity_id", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("customer_code", "period_end", name="uq_drafts_customer_period"),
)
Table(
    "batch_claims",
    OLD,
    Column("customer_code", String(40), nullable=False),
    Column("period_end", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("owner", String(80), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("customer_code", "period_end", name="pk_batch_claims"),
)


def payload(kind: str, start: str) -> dict[str, object]:
    return {
        "customer": {"code": "ACME", "name": "Acme"},
        "period": {"start": start, "end": f"{END.isoformat()}T00:00:00+00:00", "timezone": "UTC", "kind": kind},
        "sections": {},
        "flags": [],
    }


async def make_old_store(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(OLD.create_all)
            week = payload("week", "2026-11-24T00:00:00+00:00")
            del week["period"]["kind"]  # type: ignore[attr-defined]  # older snapshots have no kind
            await conn.execute(
                OLD.tables["reports"].insert(),
                [{"customer_code": "ACME", "period_end": END, "kind": "draft", "payload": json.dumps(week),
                  "created_at": NOW, "updated_at": NOW}],
            )  # fmt: skip
            await conn.execute(
                OLD.tables["artefacts"].insert(),
                [{"customer_code": "ACME", "period_end": END, "name": "pdf", "kind": "draft", "content": b"%PDF-old",
                  "sha256": hashlib.sha256(b"%PDF-old").hexdigest(), "size": 8, "updated_at": NOW}],
            )  # fmt: skip
            await conn.execute(
                OLD.tables["drafts"].insert(),
                [{"id": "d-old", "customer_code": "ACME", "period_end": END, "version": 3, "state": "delivered",
                  "commentary": "kept", "created_at": NOW, "updated_at": NOW}],
            )  # fmt: skip
            await conn.execute(
                OLD.tables["batch_claims"].insert(),
                [{"customer_code": "ACME", "period_end": END, "status": "drafted", "owner": "old", "lease_until": NOW,
                  "attempts": 1, "updated_at": NOW}],
            )  # fmt: skip
    finally:
        await engine.dispose()


async def check_upgraded(url: str) -> None:
    store = await HistoryStore.open(url)
    try:
        state = await ReviewState.open(store.engine)
        claims = await Claims.open(store.engine, "new", 60)
        # the old rows are weeks, whole
        old = await state.for_week("ACME", END)
        assert old is not None and (old.id, old.version, old.commentary, old.period_kind) == (
            "d-old",
            3,
            "kept",
            "week",
        )
        assert await state.for_week("ACME", END, "month") is None
        assert (await store.get("ACME", END)) is not None and await store.get("ACME", END, "month") is None
        art = await store.artefact("ACME", END)
        assert art is not None and art.content == b"%PDF-old"
        claim = await claims.get("ACME", END)
        assert claim is not None and claim.status == "drafted"
        # a month ending the same day is a report, a draft and a claim of its own
        await store.save(payload("month", "2026-11-01T00:00:00+00:00"), files={"pdf": b"%PDF-month"})
        month = await store.get("ACME", END, "month")
        assert month is not None and month["period"]["kind"] == "month"
        got = await store.artefact("ACME", END, "pdf", "month")
        assert got is not None and got.content == b"%PDF-month"
        new = await state.upsert_drafted("ACME", END, "month")
        assert new.id != "d-old" and new.period_kind == "month" and new.version == 1
        assert await claims.claim("ACME", END, NOW, "month")
        assert not await claims.claim("ACME", END, NOW, "week")  # the week's claim is still there
        assert await store.count("ACME") == 2
        # opening again changes nothing
        again = await HistoryStore.open(url)
        await ReviewState.open(again.engine)
        await Claims.open(again.engine, "again", 60)
        assert await again.count("ACME") == 2
        async with again.engine.connect() as conn:
            kinds = (await conn.execute(text("SELECT period_kind FROM drafts ORDER BY period_kind"))).all()
        assert [k[0] for k in kinds] == ["month", "week"]
        await again.close()
    finally:
        await store.close()


async def test_a_sqlite_store_from_before_period_kinds_is_upgraded(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await make_old_store(url)
    await check_upgraded(url)


@pytest.fixture
async def pg_url(database: str) -> AsyncIterator[str]:
    yield database.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.mark.postgres
async def test_a_postgresql_store_from_before_period_kinds_is_upgraded(pg_url: str) -> None:
    await make_old_store(pg_url)
    await check_upgraded(pg_url)

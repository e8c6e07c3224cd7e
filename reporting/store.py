"""The history store: one snapshot per customer per period, SQLite by default, PostgreSQL alike.

A snapshot is the report's JSON (``reporting.snapshot``). Saving the same customer-week again
replaces that row (an upsert on the unique ``(customer_code, period_end)`` key), so a re-run
never duplicates a week. ``kind`` tells a draft (rendered, awaiting review) from a history row
(collected only to give the deltas a baseline).

Beside each rendered snapshot the store keeps its artefacts (``artefacts``: the PDF, bytes in a
PostgreSQL ``bytea`` / SQLite blob, with their SHA-256), written in the same transaction, so every
instance sharing the store can serve a draft's signed link or resume a delivery that another
instance started — the files under ``--out`` are that instance's copy, not the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

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
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

metadata = MetaData()

reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_code", String(32), nullable=False),
    Column("period_end", Date, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # week | fortnight | 30d | month; stores made before period kinds get "week" (add_period_kind)
    Column("period_kind", String(16), nullable=False, server_default="week"),
    UniqueConstraint("customer_code", "period_kind", "period_end", name="uq_reports_customer_kind_period"),
)

artefacts = Table(
    "artefacts",
    metadata,
    Column("customer_code", String(32), nullable=False),
    Column("period_end", Date, nullable=False),
    Column("name", String(16), nullable=False),  # "pdf"
    Column("kind", String(16), nullable=False),  # the render it came from: draft | final
    Column("content", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("period_kind", String(16), nullable=False, server_default="week"),
    PrimaryKeyConstraint("customer_code", "period_kind", "period_end", "name", name="pk_artefacts_kind"),
)

# the key each table had before period kinds: (table, its key constraint, primary key or unique)
PRE_KIND_KEYS: dict[str, tuple[str, str]] = {
    "reports": ("uq_reports_customer_period", "unique"),
    "artefacts": ("pk_artefacts", "primary"),
}


@dataclass(frozen=True)
class Artefact:
    content: bytes
    kind: str
    sha256: str
    updated_at: datetime


@dataclass(frozen=True)
class Published:
    """An artefact and the report snapshot stored with it (None when there is none)."""

    artefact: Artefact
    payload: dict[str, Any] | None


class StoreError(RuntimeError):
    """The history store cannot be opened or read."""


_SCHEMA_LOCK = 0x7265706F7274  # "report": the advisory lock that serialises table creation

STALLED_TRANSACTION_SECONDS = 20.0
"""PostgreSQL ends a session of ours that has sat this long inside a transaction without sending
anything (``idle_in_transaction_session_timeout``). Every transaction reportbot opens lasts
milliseconds; one that stalls is an instance frozen mid-transaction (a paused VM or container, a
SIGSTOP), and the row or advisory locks it holds would otherwise block every other instance —
their claims, heartbeats and table creation — until it woke up."""


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction (``engine.begin()``). On SQLite, this process's writers take turns
    (an asyncio lock per engine) instead of racing for the database's single write lock: the
    loser of that race sleeps in SQLite's busy handler (1, 2, 5 ... 100 ms steps), which is what
    50 approvals at once mostly waited on. Other processes still meet ``busy_timeout``."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    lock = _WRITE_LOCKS.setdefault(engine.sync_engine, asyncio.Lock())
    async with lock, engine.begin() as conn:
        yield conn


def _engine_options(backend: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` plus, on PostgreSQL, the stalled-transaction limit and a liveness check of pooled
    connections (a session the server ended is replaced, not handed out)."""
    if backend != "postgresql":
        return given
    connect_args = dict(given.get("connect_args", {}))
    settings = {
        "idle_in_transaction_session_timeout": str(int(STALLED_TRANSACTION_SECONDS * 1000)),
        "application_name": "reportbot",
        **connect_args.get("server_settings", {}),
    }
    return {"pool_pre_ping": True, **given, "connect_args": {**connect_args, "server_settings": settings}}


async def create_tables(
    engine: AsyncEngine, tables: MetaData, pre_kind_keys: Mapping[str, tuple[str, str]] | None = None
) -> None:
    """``CREATE TABLE IF NOT EXISTS`` for ``tables``. On PostgreSQL under an advisory lock:
    bot instances starting together would otherwise race in the catalog ("duplicate key value
    violates unique constraint pg_type_typname_nsp_index").

    ``pre_kind_keys``: tables of ``tables`` whose key gained ``period_kind`` (table name -> its
    old key constraint and whether it was the primary key). A table created before that is
    brought up to date first, in the same transaction: every row it holds is a week's."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        for name, (old_key, kind) in (pre_kind_keys or {}).items():
            await add_period_kind(conn, tables.tables[name], old_key, kind)
        await conn.run_sync(tables.create_all)


async def add_period_kind(conn: AsyncConnection, table: Table, old_key: str, kind: str) -> None:
    """Add the ``period_kind`` column (every existing row: ``week``) to ``table`` as a store
    made before period kinds created it, and put it in the table's key. Nothing happens to a
    table that has the column, or does not exist yet.

    PostgreSQL changes the table in place. SQLite cannot change a key, so the table is rebuilt
    the way SQLite's documentation gives (a new table, the rows copied, the old one dropped, the
    new one renamed), inside this transaction: an interrupted upgrade leaves the old table."""

    def columns(sync_conn: Any) -> list[str] | None:
        found = inspect(sync_conn)
        if not found.has_table(table.name):
            return None
        return [c["name"] for c in found.get_columns(table.name)]

    have = await conn.run_sync(columns)
    if have is None or "period_kind" in have:
        return
    q = f'"{table.name}"'
    rows = (await conn.execute(select(func.count()).select_from(sql_table(table.name)))).scalar_one()
    log.info("store: adding period_kind to %s; its %d rows are weeks", table.name, rows)
    if conn.dialect.name == "postgresql":
        key = next(
            c
            for c in table.constraints
            if isinstance(c, PrimaryKeyConstraint if kind == "primary" else UniqueConstraint)
        )
        cols = ", ".join(f'"{c.name}"' for c in key.columns)
        what = "PRIMARY KEY" if kind == "primary" else "UNIQUE"
        await conn.execute(text(f"ALTER TABLE {q} ADD COLUMN period_kind VARCHAR(16) NOT NULL DEFAULT 'week'"))
        await conn.execute(text(f'ALTER TABLE {q} DROP CONSTRAINT "{old_key}"'))
        await conn.execute(text(f'ALTER TABLE {q} ADD CONSTRAINT "{key.name}" {what} ({cols})'))
        return
    new = table.to_metadata(MetaData(), name=f"{table.name}__with_kind")
    await conn.run_sync(new.create)
    shared = ", ".join(f'"{c}"' for c in have)
    # the names are this module's own tables' and the columns the table has: no outside text
    await conn.execute(text(f'INSERT INTO "{new.name}" ({shared}) SELECT {shared} FROM {q}'))  # noqa: S608
    await conn.execute(text(f"DROP TABLE {q}"))
    await conn.execute(text(f'ALTER TABLE "{new.name}" RENAME TO {q}'))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection of a file store: write-ahead log, so readers never wait for a writer
    and a commit appends to the log instead of rewriting pages and syncing twice; ``synchronous =
    NORMAL``, which in WAL mode survives any crash of the process (a power cut can lose the last
    commits, never the database); writers queue for up to 5 s instead of failing at once."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


async def _aiosqlite_connect(*args: Any, **kw: Any) -> Any:
    """``aiosqlite.connect`` that, when the connection fails, waits for aiosqlite's worker thread
    before raising. aiosqlite (0.22) answers a failed ``sqlite3.connect`` by queueing its thread's
    stop with a future of the running loop that nobody awaits; the thread later resolves that
    future through ``loop.call_soon_threadsafe``. Had the loop closed by then (the failed open
    ended a short ``asyncio.run``, or a test), that call raises "Event loop is closed" in the
    thread: an unhandled thread exception, reported against whatever runs next."""
    import aiosqlite

    conn = aiosqlite.connect(*args, **kw)
    thread = conn._thread
    thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does
    try:
        return await conn
    except BaseException:
        await asyncio.to_thread(thread.join, 5.0)  # its last step needs this loop open: waited for here
        raise


def _via_aiosqlite_connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
    """``do_connect``: SQLAlchemy's aiosqlite adapter connects through :func:`_aiosqlite_connect`,
    with the arguments it derived from the URL."""
    cparams["async_creator_fn"] = _aiosqlite_connect


def _checked(row: Any, name: str, code: str, period_end: date) -> Artefact:
    """A stored artefact row as an :class:`Artefact`, after its SHA-256 is checked."""
    content = bytes(row.content)
    if hashlib.sha256(content).hexdigest() != row.sha256:
        raise StoreError(f"the stored {name} of {code} for {period_end} is damaged (its SHA-256 does not match)")
    at = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return Artefact(content, row.kind, row.sha256, at)


class HistoryStore:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    def _artefact_row(
        self, code: str, period_kind: str, period_end: date, name: str, content: bytes, kind: str, now: datetime
    ) -> Any:
        """The insert-or-replace of one artefact (the same customer, period and name)."""
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        row = insert(artefacts).values(
            customer_code=code,
            period_kind=period_kind,
            period_end=period_end,
            name=name,
            kind=kind,
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            updated_at=now,
        )
        return row.on_conflict_do_update(
            index_elements=["customer_code", "period_kind", "period_end", "name"],
            set_={k: row.excluded[k] for k in ("kind", "content", "sha256", "size", "updated_at")},
        )

    @classmethod
    async def open(cls, url: str, **engine_kw: Any) -> HistoryStore:
        try:
            parsed = make_url(url)
        except (SQLAlchemyError, ValueError) as err:
            raise StoreError(f"cannot open the store at {_safe(url)}: {err}") from err
        folder = (
            Path(parsed.database).parent
            if parsed.get_backend_name() == "sqlite"
            and parsed.database
            and parsed.database != ":memory:"
            and not parsed.database.startswith("file:")
            else None
        )
        if folder is not None and not folder.is_dir():
            # said in words a person can act on (aiosqlite would say "unable to open database file")
            raise StoreError(
                f"cannot open the store at {_safe(url)}: the folder {folder} does not exist "
                "(create it, or point [store] url at one that does)"
            )
        try:
            engine = create_async_engine(parsed, **_engine_options(parsed.get_backend_name(), engine_kw))
        except (SQLAlchemyError, ValueError) as err:
            raise StoreError(f"cannot open the store at {_safe(url)}: {err}") from err
        if engine.dialect.driver == "aiosqlite":
            event.listen(engine.sync_engine, "do_connect", _via_aiosqlite_connect)
        if engine.dialect.name == "sqlite" and folder is not None:
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            await create_tables(engine, metadata, PRE_KIND_KEYS)
        except (SQLAlchemyError, OSError) as err:
            await engine.dispose()
            reason = str(getattr(err, "orig", None) or err).splitlines()[0]
            raise StoreError(f"cannot open the store at {_safe(url)}: {reason}") from err
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def save(
        self, payload: dict[str, Any], kind: str = "draft", files: Mapping[str, bytes] | None = None
    ) -> None:
        """Insert or replace the snapshot of ``payload``'s customer-period and, in the same
        transaction, its ``files`` (name -> bytes, e.g. ``{"pdf": ...}``)."""
        code = payload["customer"]["code"]
        period_end = datetime.fromisoformat(payload["period"]["end"]).date()
        period_kind = payload["period"].get("kind", "week")
        now = datetime.now(UTC)
        text = json.dumps(payload, sort_keys=True)
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(reports).values(
            customer_code=code,
            period_kind=period_kind,
            period_end=period_end,
            kind=kind,
            payload=text,
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["customer_code", "period_kind", "period_end"],
            set_={"kind": stmt.excluded.kind, "payload": stmt.excluded.payload, "updated_at": stmt.excluded.updated_at},
        )
        async with writing(self.engine) as conn:
            await conn.execute(stmt)
            for name, content in (files or {}).items():
                await conn.execute(self._artefact_row(code, period_kind, period_end, name, content, kind, now))

    async def artefact(
        self, code: str, period_end: date, name: str = "pdf", period_kind: str = "week"
    ) -> Artefact | None:
        """The last rendered ``name`` (``pdf``) of a customer-period, whichever instance made it."""
        c = artefacts.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(c.content, c.kind, c.sha256, c.updated_at).where(
                        c.customer_code == code,
                        c.period_kind == period_kind,
                        c.period_end == period_end,
                        c.name == name,
                    )
                )
            ).first()
        if row is None:
            return None
        return _checked(row, name, code, period_end)

    async def published(
        self, code: str, period_end: date, name: str = "pdf", period_kind: str = "week"
    ) -> Published | None:
        """A customer-period's artefact ``name`` with the snapshot saved beside it, read in one
        statement (so never an artefact of one render with the report of another): what a
        delivered report's link serves. None when no artefact of that name is stored."""
        a, r = artefacts.c, reports.c
        query = (
            select(a.content, a.kind, a.sha256, a.updated_at, r.payload)
            .select_from(
                artefacts.outerjoin(
                    reports,
                    (r.customer_code == a.customer_code)
                    & (r.period_kind == a.period_kind)
                    & (r.period_end == a.period_end),
                )
            )
            .where(a.customer_code == code, a.period_kind == period_kind, a.period_end == period_end, a.name == name)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        payload = json.loads(row.payload) if row.payload is not None else None
        return Published(_checked(row, name, code, period_end), payload)

    async def put_artefact(
        self, code: str, period_end: date, name: str, content: bytes, kind: str, period_kind: str = "week"
    ) -> str:
        """Store one artefact without a snapshot (e.g. the MSP's internal summaries, under a
        pseudo-code); replaces the same (code, week, name). Returns its SHA-256."""
        row = self._artefact_row(code, period_kind, period_end, name, content, kind, datetime.now(UTC))
        async with writing(self.engine) as conn:
            await conn.execute(row)
        return hashlib.sha256(content).hexdigest()

    async def get(self, code: str, period_end: date, period_kind: str = "week") -> dict[str, Any] | None:
        c = reports.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(c.payload).where(
                        c.customer_code == code, c.period_kind == period_kind, c.period_end == period_end
                    )
                )
            ).first()
        return json.loads(row[0]) if row else None

    async def history(self, code: str, before: date, limit: int = 8, period_kind: str = "week") -> list[dict[str, Any]]:
        """Up to ``limit`` snapshots of ``code``'s periods of ``period_kind`` that end before
        ``before``, oldest first."""
        c = reports.c
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(c.payload)
                    .where(c.customer_code == code, c.period_kind == period_kind, c.period_end < before)
                    .order_by(reports.c.period_end.desc())
                    .limit(limit)
                )
            ).all()
        return [json.loads(r[0]) for r in reversed(rows)]

    async def count(self, code: str | None = None, period_end: date | None = None) -> int:
        q = select(func.count()).select_from(reports)
        if code is not None:
            q = q.where(reports.c.customer_code == code)
        if period_end is not None:
            q = q.where(reports.c.period_end == period_end)
        async with self.engine.connect() as conn:
            return int((await conn.execute(q)).scalar_one())

    async def status(self) -> str:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
        except (SQLAlchemyError, OSError) as err:
            return f"error: {type(err).__name__}"
        return "ok"


def _safe(url: str) -> str:
    """The URL without its password, for error messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url

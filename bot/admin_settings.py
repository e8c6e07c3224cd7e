"""The admins' report settings in the store: every save a new version (who, when, what changed).

Table ``report_settings``: one row per saved version, ``version`` its primary key. A save names
the version its card showed and inserts ``version + 1``: two admins saving the same form at once
cannot both win (the primary key refuses the second insert), and a form older than the current
version is refused with the current values (:class:`StaleSettings`). Each row holds the whole
settings (JSON), the change from the version before (``{key: {"from", "to"}}``), and the admin
(AAD object id and name).

:class:`LiveSettings` is what the rest of the bot reads: the newest version, refreshed from the
store before a batch, a typed ``run`` and every delivery, and applied where the file's values are
read (the engine's branding for the MSP name; the batch's customer list; the To lists of the
executive and the technical report emails; who gets the MSP's internal service-desk summaries).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from reporting.config import Config
from reporting.models import Branding
from reporting.overrides import ReportSettings, diff
from reporting.period import period_kind
from reporting.store import create_tables, writing
from reporting.text import neutral

log = logging.getLogger(__name__)

metadata = MetaData()

report_settings = Table(
    "report_settings",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("settings", Text, nullable=False),  # JSON: ReportSettings.to_json()
    Column("changes", Text, nullable=False),  # JSON: {dotted key: {"from": ..., "to": ...}}
    Column("saved_by_id", String(200), nullable=False),  # AAD object id
    Column("saved_by_name", String(200), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)


class StaleSettings(Exception):  # noqa: N818 - a condition
    """The form showed an older version; ``current`` is the settings as they are now."""

    def __init__(self, current: ReportSettings):
        self.current = current
        super().__init__(
            f"Someone saved the settings meanwhile (version {current.version} is current); nothing was saved. "
            "Here are the current values."
        )


@dataclass(frozen=True)
class SavedVersion:
    version: int
    changes: dict[str, dict[str, Any]]
    saved_by_id: str
    saved_by_name: str
    saved_at: datetime


class SettingsStore:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    @classmethod
    async def open(cls, engine: AsyncEngine) -> SettingsStore:
        await create_tables(engine, metadata)
        return cls(engine)

    async def current(self) -> ReportSettings:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(report_settings).order_by(report_settings.c.version.desc()).limit(1))
            ).first()
        if row is None:
            return ReportSettings()
        return ReportSettings.from_json(json.loads(row.settings), row.version)

    async def history(self, limit: int = 20) -> list[SavedVersion]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(report_settings).order_by(report_settings.c.version.desc()).limit(limit))
            ).all()
        return [
            SavedVersion(
                r.version,
                json.loads(r.changes),
                r.saved_by_id,
                r.saved_by_name,
                r.saved_at if r.saved_at.tzinfo else r.saved_at.replace(tzinfo=UTC),
            )
            for r in rows
        ]

    async def save(self, expected: int, new: ReportSettings, by_id: str, by_name: str) -> ReportSettings:
        """Store ``new`` as version ``expected + 1`` if ``expected`` is the current version;
        :class:`StaleSettings` otherwise (nothing stored). A save that changes nothing stores nothing."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(report_settings).order_by(report_settings.c.version.desc()).limit(1))
            ).first()
        current = ReportSettings() if row is None else ReportSettings.from_json(json.loads(row.settings), row.version)
        if current.version != expected:
            raise StaleSettings(current)
        changes = diff(current, new)
        if not changes:
            return current
        saved = replace(new, version=expected + 1)
        try:
            async with writing(self.engine) as conn:
                await conn.execute(
                    report_settings.insert().values(
                        version=saved.version,
                        settings=json.dumps(saved.to_json(), sort_keys=True),
                        changes=json.dumps(changes, sort_keys=True),
                        saved_by_id=neutral(by_id)[:200],
                        saved_by_name=neutral(by_name)[:200],
                        saved_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:  # another admin's save of the same version won
            raise StaleSettings(await self.current()) from None
        log.info("settings version %d saved by %s: %s", saved.version, neutral(by_id)[:64], ", ".join(sorted(changes)))
        return saved


class LiveSettings:
    """The settings in force, applied where the configuration's values are read."""

    def __init__(self, store: SettingsStore, config: Config, engine: Any = None):
        self.store = store
        self.config = config
        self.engine = engine  # reporting.engine.Engine: its branding carries the MSP name
        self.base_branding: Branding | None = engine.branding if engine is not None else None
        self.now = ReportSettings()

    async def refresh(self) -> ReportSettings:
        self.apply(await self.store.current())
        return self.now

    def apply(self, settings: ReportSettings) -> None:
        self.now = settings
        if self.engine is not None:
            # the saved periods (an empty one keeps the file's, Engine.kind_of)
            self.engine.period_kinds = {
                code: period_kind(c.period) for code, c in settings.customers.items() if c.period
            }
        if self.engine is not None and self.base_branding is not None:
            name = settings.msp_name or self.base_branding.msp_name
            self.engine.branding = replace(self.base_branding, msp_name=name)

    @property
    def msp_name(self) -> str:
        return self.now.msp_name or self.config.msp.name

    def enabled_codes(self) -> list[str]:
        return [c.code for c in self.config.customers if self.now.enabled(c.code)]

    def executive(self, code: str) -> tuple[str, ...]:
        """The saved executive recipients (empty: the file's, ``bot.outbox.addressing``)."""
        return self.now.customer(code).executive

    def technical(self, code: str) -> tuple[str, ...]:
        """The saved technical recipients (empty: the file's ``recipients.technical``)."""
        return self.now.customer(code).technical

    def internal_recipients(self, audience: str) -> tuple[str, ...]:
        """Who gets the MSP's ``owner`` or ``manager`` service-desk summary: the admins' list
        when saved, else the file's ``[internal_reports]`` one."""
        saved = self.now.owners if audience == "owner" else self.now.managers
        file = self.config.internal_reports.owners if audience == "owner" else self.config.internal_reports.managers
        return saved or file


async def overrides_in_force(url: str) -> list[str]:
    """What ``config check`` prints about the admins' settings: one line per value that overrides
    the file, with the version and who saved it. Reads the store without creating anything (a
    SQLite file that does not exist, or a store without the table, has no settings)."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    parsed = make_url(url)
    sqlite_file = Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None
    if sqlite_file is not None and not await asyncio.to_thread(sqlite_file.exists):
        return ["settings: none saved in Teams (the store file does not exist yet); the file's values are in force"]
    engine = create_async_engine(parsed)
    try:
        async with engine.connect() as conn:
            has_table = await conn.run_sync(lambda sync: inspect(sync).has_table(report_settings.name))
        if not has_table:
            return ["settings: none saved in Teams; the file's values are in force"]
        store = SettingsStore(engine)
        current = await store.current()
        if not current.version:
            return ["settings: none saved in Teams; the file's values are in force"]
        [last] = await store.history(limit=1)
    finally:
        await engine.dispose()
    who = neutral(last.saved_by_name or last.saved_by_id)
    lines = [
        f"settings: version {current.version} saved in Teams by {who} ({neutral(last.saved_by_id)}) "
        f"at {last.saved_at.isoformat(timespec='seconds')}; these override the file:"
    ]
    overrides = current.overrides()
    if not overrides:
        lines.append("  (none: every value is the file's)")
    for key, value in overrides.items():
        shown = (
            ", ".join(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else value
        )
        lines.append(f"  {key} = {neutral(shown)}")
    return lines

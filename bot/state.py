"""The review workflow's state in the store: drafts (one per customer-week) and conversation
references. Same database as the report history (``[store] url``), so several bot instances
and restarts see the same drafts, versions and channels.

Every change to a draft is a compare-and-set on its ``version``: an action carries the version
its card showed, and only the holder of the current version can change the draft (the version
then moves on). Two engineers clicking at once, or an old card, cannot both win.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, overload

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from reporting.drafts import EDITABLE, DraftState
from reporting.store import create_tables, writing
from reporting.text import neutral

metadata = MetaData()

drafts = Table(
    "drafts",
    metadata,
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
    Column("card_ref", Text),  # JSON conversation reference of the review card's conversation
    Column("card_activity_id", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("period_kind", String(16), nullable=False, server_default="week"),  # week | fortnight | 30d | month
    UniqueConstraint("customer_code", "period_kind", "period_end", name="uq_drafts_customer_kind_period"),
)
PRE_KIND_KEYS = {"drafts": ("uq_drafts_customer_period", "unique")}  # reporting.store.add_period_kind

conversations = Table(
    "conversations",
    metadata,
    Column("key", String(300), primary_key=True),  # e.g. "channel:19:abc@thread.tacv2", "personal:<aad id>"
    Column("kind", String(16), nullable=False),  # channel | personal | groupChat
    Column("ref", Text, nullable=False),  # JSON of botbuilder's ConversationReference
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

NOT_CONVERSATIONS = ("rollup", "team", "install")  # kinds of rows in ``conversations`` that are not references


@dataclass(frozen=True)
class Draft:
    id: str
    customer_code: str
    period_end: date
    version: int
    state: str
    commentary: str
    commentary_by: str | None
    commentary_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    card_ref: dict[str, Any] | None
    card_activity_id: str | None
    updated_at: datetime
    created_at: datetime | None = None
    period_kind: str = "week"

    @property
    def editable(self) -> bool:
        return self.state in EDITABLE


@overload
def _aware(ts: datetime) -> datetime: ...
@overload
def _aware(ts: datetime | None) -> datetime | None: ...
def _aware(ts: datetime | None) -> datetime | None:
    return ts if ts is None or ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # SQLite drops the offset


def _draft(row: Any) -> Draft:
    m = row._mapping
    return Draft(
        id=m["id"],
        customer_code=m["customer_code"],
        period_end=m["period_end"],
        version=m["version"],
        state=m["state"],
        commentary=m["commentary"] or "",
        commentary_by=m["commentary_by"],
        commentary_at=_aware(m["commentary_at"]),
        decided_by=m["decided_by"],
        decided_at=_aware(m["decided_at"]),
        reason=m["reason"],
        card_ref=json.loads(m["card_ref"]) if m["card_ref"] else None,
        card_activity_id=m["card_activity_id"],
        updated_at=_aware(m["updated_at"]),
        created_at=_aware(m["created_at"]),
        period_kind=m["period_kind"],
    )


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """The store boundary for people's text: no NUL (PostgreSQL text columns cannot hold it), no
    other controls or bidi overrides; commentary keeps its line breaks."""
    out = dict(values)
    for key in ("commentary", "commentary_by", "decided_by", "reason"):
        if isinstance(out.get(key), str):
            out[key] = neutral(out[key], multiline=key == "commentary")
    return out


class ReviewState:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    @classmethod
    async def open(cls, engine: AsyncEngine) -> ReviewState:
        await create_tables(engine, metadata, PRE_KIND_KEYS)
        return cls(engine)

    # -- drafts
    async def get(self, draft_id: str) -> Draft | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(drafts).where(drafts.c.id == draft_id))).first()
        return _draft(row) if row else None

    async def for_week(self, code: str, period_end: date, period_kind: str = "week") -> Draft | None:
        """The draft of ``code``'s period of ``period_kind`` that ends on ``period_end``."""
        c = drafts.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(drafts).where(
                        c.customer_code == code, c.period_kind == period_kind, c.period_end == period_end
                    )
                )
            ).first()
        return _draft(row) if row else None

    async def latest(self, codes: list[str] | None = None) -> list[Draft]:
        """The newest draft of each customer (optionally only ``codes``)."""
        async with self.engine.connect() as conn:
            q = select(drafts).order_by(drafts.c.customer_code, drafts.c.period_end.desc())
            if codes is not None:
                q = q.where(drafts.c.customer_code.in_(codes))
            rows = (await conn.execute(q)).all()
        out: dict[str, Draft] = {}
        for r in rows:
            d = _draft(r)
            out.setdefault(d.customer_code, d)
        return list(out.values())

    async def upsert_drafted(self, code: str, period_end: date, period_kind: str = "week") -> Draft:
        """A new draft (version 1), or the period's existing one moved to its next version and back
        to ``drafted`` if it is still editable. A decided draft is returned unchanged."""
        now = datetime.now(UTC)
        c = drafts.c
        async with writing(self.engine) as conn:
            row = (
                await conn.execute(
                    select(drafts).where(
                        c.customer_code == code, c.period_kind == period_kind, c.period_end == period_end
                    )
                )
            ).first()
            if row is None:
                draft_id = uuid.uuid4().hex
                await conn.execute(
                    drafts.insert().values(
                        id=draft_id,
                        customer_code=code,
                        period_kind=period_kind,
                        period_end=period_end,
                        version=1,
                        state=DraftState.DRAFTED,
                        commentary="",
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                draft_id = row._mapping["id"]
                if row._mapping["state"] in EDITABLE:
                    await conn.execute(
                        update(drafts)
                        .where(drafts.c.id == draft_id)
                        .values(version=drafts.c.version + 1, state=DraftState.DRAFTED, updated_at=now)
                    )
        got = await self.get(draft_id)
        assert got is not None
        return got

    async def change(
        self, draft_id: str, version: int, *, allowed: tuple[str, ...] = EDITABLE, **values: Any
    ) -> Draft | None:
        """Compare-and-set: apply ``values`` and move to the next version only if the draft is at
        ``version`` and in one of ``allowed`` states. None when someone else got there first."""
        values = {**_clean(values), "version": drafts.c.version + 1, "updated_at": datetime.now(UTC)}
        async with writing(self.engine) as conn:  # UPDATE ... RETURNING: one round trip (SQLite >= 3.35, PostgreSQL)
            row = (
                await conn.execute(
                    update(drafts)
                    .where(drafts.c.id == draft_id, drafts.c.version == version, drafts.c.state.in_(allowed))
                    .values(**values)
                    .returning(*drafts.c)
                )
            ).first()
        return _draft(row) if row else None

    async def stalled(self, before: datetime) -> list[Draft]:
        """Drafts approved (or being delivered) and untouched since ``before``: a process that
        stopped between the approval and the end of the delivery left them so."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(drafts)
                    .where(
                        drafts.c.state.in_((DraftState.APPROVED, DraftState.DELIVERING)), drafts.c.updated_at < before
                    )
                    .order_by(drafts.c.updated_at)
                )
            ).all()
        return [_draft(r) for r in rows]

    async def set_state(self, draft_id: str, state: str, **values: Any) -> Draft | None:
        """A background step's state change (delivery progress): no version check, version moves on."""
        async with writing(self.engine) as conn:
            row = (
                await conn.execute(
                    update(drafts)
                    .where(drafts.c.id == draft_id)
                    .values(state=state, version=drafts.c.version + 1, updated_at=datetime.now(UTC), **_clean(values))
                    .returning(*drafts.c)
                )
            ).first()
        return _draft(row) if row else None

    async def set_card(self, draft_id: str, ref: dict[str, Any], activity_id: str) -> None:
        async with writing(self.engine) as conn:
            await conn.execute(
                update(drafts)
                .where(drafts.c.id == draft_id)
                .values(card_ref=json.dumps(ref), card_activity_id=activity_id)
            )

    # -- conversation references
    async def remember(self, key: str, kind: str, ref: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        text = json.dumps(ref, sort_keys=True)
        async with writing(self.engine) as conn:
            res = await conn.execute(
                update(conversations).where(conversations.c.key == key).values(kind=kind, ref=text, updated_at=now)
            )
            if res.rowcount == 0:
                await conn.execute(conversations.insert().values(key=key, kind=kind, ref=text, updated_at=now))

    async def latest_reference(self, kind: str | None = None, tenant: str = "") -> dict[str, Any] | None:
        """The conversation (of ``kind``, in ``tenant``, if given) the bot heard from last: the
        sandbox's stand-in for a review channel, or the service URL to reach a channel by."""
        q = select(conversations.c.ref).order_by(conversations.c.updated_at.desc())
        if kind is not None:
            q = q.where(conversations.c.kind == kind)
        else:  # rows that are not conversation references
            q = q.where(conversations.c.kind.not_in(NOT_CONVERSATIONS))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q.limit(1 if not tenant else 200))).all()
        for (text,) in rows:
            ref = json.loads(text)
            conv = ref.get("conversation") or {}
            if (
                not tenant or (conv.get("tenantID") or conv.get("tenantId") or "") == tenant
            ):  # botbuilder writes "tenantID"
                return ref
        return None

    async def recent_references(self, limit: int = 50) -> list[dict[str, Any]]:
        """Conversation references, newest first (not roll-up, team or installation rows)."""
        q = (
            select(conversations.c.ref)
            .where(conversations.c.kind.not_in(NOT_CONVERSATIONS))
            .order_by(conversations.c.updated_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [json.loads(text) for (text,) in rows]

    async def remember_install(self, team_id: str, info: dict[str, Any]) -> None:
        """The bot is installed in team ``team_id`` (the General channel's ``19:...`` id): where
        Teams reaches it (``service_url``), the ``tenant_id``, ``aad_group_id`` and the bot's id.
        What :class:`bot.posting.Poster` needs to start a post in any channel of that team."""
        await self.remember(f"install:{team_id}", "install", {**info, "team_id": team_id})

    async def forget_install(self, team_id: str) -> None:
        async with writing(self.engine) as conn:
            await conn.execute(conversations.delete().where(conversations.c.key == f"install:{team_id}"))

    async def installation(self, tenant: str = "") -> dict[str, Any] | None:
        """The newest team installation (in ``tenant``, if given)."""
        found = await self.installations(tenant)
        return found[0] if found else None

    async def installations(self, tenant: str = "", limit: int = 200) -> list[dict[str, Any]]:
        """The teams the app is installed in (in ``tenant``, if given), newest first, as
        :meth:`remember_install` keeps them (of the newest ``limit`` installations)."""
        q = (
            select(conversations.c.ref)
            .where(conversations.c.kind == "install")
            .order_by(conversations.c.updated_at.desc())
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q.limit(limit))).all()
        found = [dict(json.loads(text)) for (text,) in rows]
        return [info for info in found if not tenant or info.get("tenant_id") == tenant]

    async def without_card(self, period_ends: list[date]) -> list[Draft]:
        """Drafts of those weeks whose review card has not been posted (yet)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(drafts)
                    .where(drafts.c.period_end.in_(period_ends), drafts.c.card_activity_id.is_(None))
                    .order_by(drafts.c.customer_code)
                )
            ).all()
        return [_draft(r) for r in rows]

    async def remember_team(self, channel: str, aad_group_id: str) -> None:
        """The team (AAD group id, what Graph's ``/teams/{id}`` takes) that holds ``channel``, as
        Teams said in an activity's ``channelData.team.aadGroupId``."""
        await self.remember(f"team-of:{channel}", "team", {"aadGroupId": aad_group_id})

    async def team_of(self, channel: str) -> str:
        stored = await self.reference(f"team-of:{channel}")
        return str(stored.get("aadGroupId") or "") if stored else ""

    async def reference(self, key: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(conversations.c.ref).where(conversations.c.key == key))).first()
        return json.loads(row[0]) if row else None

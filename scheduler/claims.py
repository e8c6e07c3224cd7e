"""Claims: one batch run per customer-week across restarts and across bot instances.

A claim is a row keyed by (customer, period end) in the shared store. An instance may work on
a customer-week only while it holds the claim; it renews the claim's lease while it works
(heartbeat). The row is created by an INSERT (the unique key makes exactly one instance win),
or taken over by an UPDATE that only matches an unfinished claim whose lease has expired — the
instance that held it died mid-batch. A finished claim (``drafted`` or ``failed``) is never
taken again, so a restart never re-runs a finished customer-week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from reporting.store import create_tables, writing

metadata = MetaData()

claims = Table(
    "batch_claims",
    metadata,
    Column("customer_code", String(40), nullable=False),
    Column("period_end", Date, nullable=False),
    Column("status", String(16), nullable=False),  # collecting | drafted | failed
    Column("owner", String(80), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("period_kind", String(16), nullable=False, server_default="week"),  # week | fortnight | 30d | month
    PrimaryKeyConstraint("customer_code", "period_kind", "period_end", name="pk_batch_claims_kind"),
)
PRE_KIND_KEYS = {"batch_claims": ("pk_batch_claims", "primary")}  # reporting.store.add_period_kind

RUNNING = "collecting"
FINISHED = ("drafted", "failed")


@dataclass(frozen=True)
class Claim:
    customer_code: str
    period_end: date
    status: str
    owner: str
    lease_until: datetime
    attempts: int
    error: str | None


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _claim(row: Any) -> Claim:
    m = row._mapping
    return Claim(
        m["customer_code"],
        m["period_end"],
        m["status"],
        m["owner"],
        _aware(m["lease_until"]),
        m["attempts"],
        m["error"],
    )


class Claims:
    def __init__(self, engine: AsyncEngine, owner: str, lease_seconds: float):
        self.engine = engine
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)

    @classmethod
    async def open(cls, engine: AsyncEngine, owner: str, lease_seconds: float) -> Claims:
        await create_tables(engine, metadata, PRE_KIND_KEYS)
        return cls(engine, owner, lease_seconds)

    async def claim(self, code: str, period_end: date, now: datetime, period_kind: str = "week") -> bool:
        """True when this instance now holds the customer-week (new, or taken over after its
        holder's lease expired)."""
        try:
            async with writing(self.engine) as conn:
                await conn.execute(
                    claims.insert().values(
                        customer_code=code,
                        period_kind=period_kind,
                        period_end=period_end,
                        status=RUNNING,
                        owner=self.owner,
                        lease_until=now + self.lease,
                        attempts=1,
                        updated_at=now,
                    )
                )
            return True
        except IntegrityError:
            pass
        async with writing(self.engine) as conn:
            res = await conn.execute(
                update(claims)
                .where(
                    claims.c.customer_code == code,
                    claims.c.period_kind == period_kind,
                    claims.c.period_end == period_end,
                    claims.c.status == RUNNING,
                    claims.c.lease_until < now,
                )
                .values(owner=self.owner, lease_until=now + self.lease, attempts=claims.c.attempts + 1, updated_at=now)
            )
        return res.rowcount == 1

    async def renew(self, code: str, period_end: date, now: datetime, period_kind: str = "week") -> bool:
        """Heartbeat; False if the claim was lost (taken over after an expired lease)."""
        async with writing(self.engine) as conn:
            res = await conn.execute(
                update(claims)
                .where(
                    claims.c.customer_code == code,
                    claims.c.period_kind == period_kind,
                    claims.c.period_end == period_end,
                    claims.c.owner == self.owner,
                    claims.c.status == RUNNING,
                )
                .values(lease_until=now + self.lease, updated_at=now)
            )
        return res.rowcount == 1

    async def finish(
        self,
        code: str,
        period_end: date,
        status: str,
        now: datetime,
        error: str | None = None,
        period_kind: str = "week",
    ) -> bool:
        async with writing(self.engine) as conn:
            res = await conn.execute(
                update(claims)
                .where(
                    claims.c.customer_code == code,
                    claims.c.period_kind == period_kind,
                    claims.c.period_end == period_end,
                    claims.c.owner == self.owner,
                    claims.c.status == RUNNING,
                )
                .values(status=status, error=error, updated_at=now)
            )
        return res.rowcount == 1

    async def release_held(self, now: datetime) -> list[str]:
        """At shutdown: every unfinished claim this instance holds ends its lease ``now``, so
        another instance (or this one restarted) takes the customer-week over at once instead
        of after the lease. The claim stays unfinished: its work is done again, never skipped.
        Returns the customer codes released."""
        held = (claims.c.owner == self.owner) & (claims.c.status == RUNNING)
        async with writing(self.engine) as conn:
            codes = [r[0] for r in (await conn.execute(select(claims.c.customer_code).where(held))).all()]
            await conn.execute(update(claims).where(held).values(lease_until=now, updated_at=now))
        return sorted(codes)

    async def get(self, code: str, period_end: date, period_kind: str = "week") -> Claim | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(claims).where(
                        claims.c.customer_code == code,
                        claims.c.period_kind == period_kind,
                        claims.c.period_end == period_end,
                    )
                )
            ).first()
        return _claim(row) if row else None

    async def week(self, period_end: date) -> dict[str, Claim]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(claims).where(claims.c.period_end == period_end))).all()
        return {c.customer_code: c for c in map(_claim, rows)}

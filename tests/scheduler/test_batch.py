"""The Monday batch: DST-correct firing, misfire catch-up without re-runs, exactly-once
claims across instances, lease take-over, and one slow customer delaying only itself."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from scheduler.batch import ROLLUP, BatchRunner
from scheduler.claims import Claims
from scheduler.schedule import WeeklySchedule, missed_run, trigger

CODES = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "STARK"]
WEEK_DAY = date(2026, 11, 10)
PERIOD_END = date(2026, 11, 16)
LONDON = "Europe/London"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'claims.db'}")
    yield eng
    await eng.dispose()


class Recorder:
    def __init__(self, slow: dict[str, float] | None = None, hang: set[str] | None = None):
        self.drafts: Counter[str] = Counter()
        self.posted: dict[str, float] = {}
        self.rollups = 0
        self.slow = slow or {}
        self.hang = hang or set()
        self.t0 = time.perf_counter()

    async def make_draft(self, code: str, week_day: date) -> str:
        assert week_day == WEEK_DAY
        if code in self.hang:
            await asyncio.Event().wait()  # this instance "dies" while collecting
        await asyncio.sleep(self.slow.get(code, 0.01))
        self.drafts[code] += 1
        return f"draft-{code}"

    async def on_drafted(self, code: str, draft: str) -> None:
        self.posted[code] = time.perf_counter() - self.t0

    async def on_complete(self, period_end: date, codes: list[str]) -> None:
        assert period_end == PERIOD_END and sorted(codes) == sorted(CODES)
        self.rollups += 1


async def runner(
    engine: AsyncEngine, owner: str, rec: Recorder, lease: float = 30.0, concurrency: int = 4
) -> BatchRunner:
    claims = await Claims.open(engine, owner, lease)
    return BatchRunner(
        claims,
        lambda: CODES,
        lambda code, day: PERIOD_END,
        rec.make_draft,
        rec.on_drafted,
        rec.on_complete,
        concurrency=concurrency,
        poll_seconds=0.1,
    )


@pytest.mark.parametrize(
    ("after", "local", "utc"),
    [
        (
            "2026-10-24T12:00:00+00:00",
            "2026-10-26T06:00:00+00:00",
            "2026-10-26T06:00:00+00:00",
        ),  # the week clocks go back
        (
            "2026-03-28T12:00:00+00:00",
            "2026-03-30T06:00:00+01:00",
            "2026-03-30T05:00:00+00:00",
        ),  # the week clocks go forward
    ],
)
def test_fires_monday_0600_local_across_dst(after: str, local: str, utc: str) -> None:
    fire = trigger("0 6 * * mon", LONDON).get_next_fire_time(None, datetime.fromisoformat(after))
    assert fire == datetime.fromisoformat(local)
    assert fire.astimezone(UTC) == datetime.fromisoformat(utc)
    assert fire.strftime("%A %H:%M") == "Monday 06:00"


def test_missed_run_within_grace_only() -> None:
    grace = timedelta(hours=3)
    monday_six = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)  # London is on GMT in November
    assert missed_run("0 6 * * mon", LONDON, monday_six + timedelta(minutes=5), grace) == monday_six
    assert missed_run("0 6 * * mon", LONDON, monday_six + timedelta(hours=1), grace) == monday_six
    assert missed_run("0 6 * * mon", LONDON, monday_six + timedelta(hours=4), grace) is None
    assert missed_run("0 6 * * mon", LONDON, monday_six - timedelta(minutes=1), grace) is None  # Sunday night: not due


async def test_restart_after_a_finished_batch_drafts_nothing_and_a_late_start_runs_it(engine: AsyncEngine) -> None:
    first = Recorder()
    result = await (await runner(engine, "host:1", first)).run(WEEK_DAY)
    assert sorted(result.drafted) == sorted(CODES) and result.rollup_posted and first.rollups == 1
    # 06:05, restarted: the catch-up fires the batch again, which finds every customer-week finished
    again = Recorder()
    result = await (await runner(engine, "host:2", again)).run(WEEK_DAY)
    assert result.drafted == [] and sorted(result.skipped) == sorted(CODES)
    assert not again.drafts and again.rollups == 0


async def test_two_instances_draft_every_customer_exactly_once(engine: AsyncEngine) -> None:
    # each draft takes longer than an instance needs to claim, so neither can take all six:
    # with three slots each, each instance holds three while the other claims
    rec = Recorder(slow={c: 0.4 for c in CODES})
    a, b = await runner(engine, "a:1", rec, concurrency=3), await runner(engine, "b:1", rec, concurrency=3)
    ra, rb = await asyncio.gather(a.run(WEEK_DAY), b.run(WEEK_DAY))
    assert rec.drafts == Counter({c: 1 for c in CODES})
    assert sorted(ra.drafted + rb.drafted) == sorted(CODES)
    assert len(ra.drafted) == len(rb.drafted) == 3  # the work was shared
    assert rec.rollups == 1 and ra.rollup_posted != rb.rollup_posted


async def test_a_dead_instance_claims_are_taken_over_after_the_lease(engine: AsyncEngine) -> None:
    dying = Recorder(hang={"HOOLI", "STARK"})
    a = await runner(engine, "a:dies", dying, lease=2.0)
    task = asyncio.ensure_future(a.run(WEEK_DAY))
    await asyncio.sleep(0.5)  # A has claimed everything and finished four customers
    task.cancel()  # ... and dies with HOOLI and STARK half done (its heartbeats stop)
    with pytest.raises(asyncio.CancelledError):
        await task
    survivor = Recorder()
    b = await runner(engine, "b:lives", survivor, lease=2.0)
    t0 = time.perf_counter()
    result = await b.run(WEEK_DAY)
    waited = time.perf_counter() - t0
    assert sorted(result.drafted) == ["HOOLI", "STARK"] and sorted(result.skipped) == [
        "ACME",
        "GLOBEX",
        "INITECH",
        "UMBRELLA",
    ]
    assert 1.0 < waited < 6.0  # it waited for the lease to run out, then took over
    assert survivor.drafts == Counter({"HOOLI": 1, "STARK": 1}) and dying.drafts["HOOLI"] == 0
    claim = await b.claims.get("HOOLI", PERIOD_END)
    assert claim is not None and claim.status == "drafted" and claim.owner == "b:lives" and claim.attempts == 2
    assert survivor.rollups == 1 and (await b.claims.get(ROLLUP, PERIOD_END)).status == "drafted"  # type: ignore[union-attr]


async def test_a_slow_customer_delays_only_itself(engine: AsyncEngine) -> None:
    rec = Recorder(slow={"HOOLI": 1.5})
    result = await (await runner(engine, "host:1", rec)).run(WEEK_DAY)
    assert sorted(result.drafted) == sorted(CODES)
    others = [t for c, t in rec.posted.items() if c != "HOOLI"]
    assert max(others) < 0.6 < rec.posted["HOOLI"]  # each card was posted as its draft finished


async def test_schedule_runs_a_missed_batch_on_start(engine: AsyncEngine) -> None:
    rec = Recorder()
    batch = await runner(engine, "host:1", rec)
    done = asyncio.Event()

    async def run_batch() -> None:
        await batch.run(WEEK_DAY)
        done.set()

    async def remind() -> None:
        return None

    start = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)  # the process was down at 06:00
    schedule = WeeklySchedule("0 6 * * mon", "30 8 * * mon", LONDON, 180, run_batch, remind, now=lambda: start)
    schedule.start()
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        schedule.shutdown()
    assert rec.drafts == Counter({c: 1 for c in CODES})


async def test_the_monday_batch_waits_for_a_hung_source_once_not_once_per_customer(tmp_path: Path) -> None:
    """Zabbix accepts every request and never answers. The batch (as `serve` builds it: its
    breaker handed to each customer's run) asks Zabbix for the first customers it starts; once one
    has run out the 2 s timeout, the other Zabbix customers' uptime is unavailable at once,
    saying so, and the batch ends about one timeout in, not one per customer."""
    from bot.review import Review
    from bot.service import build_connectors
    from bot.state import ReviewState
    from connectors.sandbox.config import sandbox_config_dict
    from connectors.sandbox.dataset import SandboxDataset
    from connectors.sim.base import Faults
    from connectors.sim.farm import SimulatorFarm
    from reporting.config import parse_config
    from reporting.engine import Engine
    from reporting.pdf import render_pdf
    from reporting.store import HistoryStore

    timeout = 2.0
    dataset = SandboxDataset(date(2026, 11, 16))
    async with SimulatorFarm(dataset) as farm:
        farm.sims["zabbix"].faults = Faults(hang=3600, count=10**9)
        raw = sandbox_config_dict(dataset, f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", farm.sources())
        raw["collect"]["timeout_seconds"] = timeout
        config = parse_config(raw, "<test>", env={})
        on_zabbix = [c.code for c in config.customers if c.sources.get("uptime") == "zabbix"]
        assert len(on_zabbix) >= 6, on_zabbix
        store = await HistoryStore.open(config.store.url)
        state = await ReviewState.open(store.engine)
        connectors = build_connectors(config)
        engine = Engine(config, connectors, store, config.branding(None), render_pdf)

        async def handoff(*_: object) -> None:
            raise AssertionError("nothing is approved here")

        review = Review(
            config, engine, store, state, tmp_path, handoff, may_approve=lambda _: False, week_day=lambda: WEEK_DAY
        )
        drafted: list[str] = []

        async def on_drafted(code: str, draft: object) -> None:
            drafted.append(code)

        async def on_complete(*_: object) -> None:
            return None

        batch = BatchRunner(
            await Claims.open(store.engine, "instance-1", 30.0),
            lambda: [c.code for c in config.customers],
            lambda code, day: engine.period_for(config.customer(code), day).end_date,
            lambda code, day: review.run(code, day, breaker=batch.breaker),
            on_drafted,
            on_complete,
            concurrency=2,
        )
        try:
            t0 = time.monotonic()
            result = await batch.run(WEEK_DAY)
            elapsed = time.monotonic() - t0
            errors = {}
            for code in on_zabbix:
                payload = await store.get(code, engine.period_for(config.customer(code), WEEK_DAY).end_date)
                assert payload is not None
                errors[code] = payload["sections"]["uptime"]["error"] or ""
        finally:
            engine.close()
            for c in connectors.values():
                await c.aclose()
            await store.close()
    print(f"batch of {len(config.customers)} with zabbix hung: {elapsed:.1f} s (timeout {timeout} s)")
    assert sorted(result.drafted) == sorted(drafted) == sorted(c.code for c in config.customers)
    timed_out = [c for c, e in errors.items() if f"no answer within {timeout:g} s (" in e]
    told = [c for c, e in errors.items() if "earlier in this run" in e]
    assert 1 <= len(timed_out) <= 2 and len(timed_out) + len(told) == len(on_zabbix), errors
    assert elapsed < timeout * len(on_zabbix) / 2, elapsed  # without the breaker: one timeout per customer


async def test_customers_on_other_periods_are_claimed_per_period_and_the_daily_run_posts_no_rollup(
    engine: AsyncEngine,
) -> None:
    """ACME reports weekly, GLOBEX monthly. The Monday batch claims each customer's own period
    (GLOBEX's October ended on Sun 1 Nov; its week ending 16 Nov is another claim); the daily
    run for GLOBEX alone drafts nothing more once its month is claimed, and posts no roll-up."""
    kinds = {"ACME": "week", "GLOBEX": "month"}
    ends = {"ACME": PERIOD_END, "GLOBEX": date(2026, 11, 1)}
    made: list[tuple[str, date]] = []
    rollups: list[date] = []

    async def make_draft(code: str, day: date) -> str:
        made.append((code, day))
        return code

    async def drafted(code: str, draft: str) -> None:
        return None

    async def complete(end: date, codes: list[str]) -> None:
        rollups.append(end)

    claims = await Claims.open(engine, "host:1", 30)
    batch = BatchRunner(
        claims,
        lambda: list(kinds),
        lambda code, day: ends[code],
        make_draft,
        drafted,
        complete,
        poll_seconds=0.1,
        period_kind=lambda code: kinds[code],
        rollup_end=lambda day: PERIOD_END,
    )
    result = await batch.run(WEEK_DAY)
    assert sorted(result.drafted) == ["ACME", "GLOBEX"] and rollups == [PERIOD_END]
    assert (await claims.get("GLOBEX", date(2026, 11, 1), "month")).status == "drafted"  # type: ignore[union-attr]
    assert await claims.get("GLOBEX", date(2026, 11, 1)) is None  # no week claim for it
    # the daily run: GLOBEX only, already drafted; no roll-up
    daily = await batch.run(WEEK_DAY, only=lambda code: kinds[code] != "week", rollup=False)
    assert daily.drafted == [] and daily.skipped == ["GLOBEX"] and rollups == [PERIOD_END]
    # November ends: the next daily run drafts it, still without a roll-up
    ends["GLOBEX"] = date(2026, 12, 1)
    daily = await batch.run(WEEK_DAY, only=lambda code: kinds[code] != "week", rollup=False)
    assert daily.drafted == ["GLOBEX"] and rollups == [PERIOD_END]
    assert [c for c, _ in made] == ["ACME", "GLOBEX", "GLOBEX"]
    # a weekly claim and a monthly one for the same customer and the same day are two claims
    assert await claims.claim("ACME", date(2026, 12, 1), datetime(2026, 12, 1, tzinfo=UTC), "month")
    assert await claims.claim("ACME", date(2026, 12, 1), datetime(2026, 12, 1, tzinfo=UTC), "week")


async def test_the_daily_period_job_is_scheduled_beside_the_monday_batch(engine: AsyncEngine) -> None:
    async def nothing() -> None:
        return None

    schedule = WeeklySchedule(
        "0 6 * * mon",
        "",
        LONDON,
        180,
        nothing,
        nothing,
        now=lambda: datetime(2026, 11, 17, 12, 0, tzinfo=UTC),
        period_cron="0 6 * * *",
        run_periods=nothing,
    )
    schedule.start()
    try:
        job = schedule.scheduler.get_job("period-batch")
        assert job is not None
        fire = job.next_run_time  # APScheduler's own clock: the next 06:00 in London, within a day
        assert fire.strftime("%H:%M") == "06:00" and str(fire.tzinfo) == LONDON
        assert timedelta(0) < fire - datetime.now(UTC) <= timedelta(days=1)
    finally:
        schedule.shutdown()

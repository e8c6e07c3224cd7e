"""The ``reportbot`` command line: run, demo, config check."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import functools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.admin_settings import LiveSettings, SettingsStore, overrides_in_force
from bot.google.auth import CredentialsError
from connectors.base import Connector, ConnectorContext, ConnectorError
from connectors.registry import CONNECTORS, OPTIONS
from connectors.sandbox.config import sandbox_config, sandbox_config_files
from connectors.sandbox.dataset import CUSTOMERS, HISTORY_WEEKS, MSP_TIMEZONE, SandboxDataset
from connectors.sim.farm import FarmProcess, SimulatorFarm, parse_fault_specs
from reporting import fmt
from reporting.collect import source_timeout, unmapped_records
from reporting.config import Config, ConfigError, CustomerConfig, load_config
from reporting.drafts import DraftState
from reporting.engine import Draft, Engine
from reporting.models import PERIOD_KINDS, Period, PeriodKind, Report
from reporting.output import write_atomic
from reporting.period import (
    PeriodError,
    WeekNotEnded,
    batch_period,
    has_ended,
    has_started,
    last_complete_week_day,
    parse_week,
    period_containing,
    period_kind,
    week_containing,
)
from reporting.rollup import DraftStatus, rollup_markdown, rollup_rows
from reporting.store import HistoryStore, StoreError
from reporting.telemetry import FORMATS, LEVELS, setup_logging

EXIT_USAGE = 2
EXIT_FAILED = 1


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        self.code = code
        super().__init__(message)


@dataclass
class Setup:
    config: Config
    base: Path | None  # folder of the config file, for relative paths
    sandbox: SandboxDataset | None
    week_day: date
    fault_specs: list[str] = field(default_factory=list)  # --sim-faults, checked: injected into the sandbox simulators
    path: str | None = None  # the configuration file (None: the sandbox)
    allow_partial: bool = False  # --allow-partial: a week not over yet is reported, labelled partial
    reviews: dict[str, DraftStatus | None] | None = None  # the demo: each draft's review state, for the roll-up
    skip_disabled: bool = False  # `run --all`: customers an admin disabled in Teams are skipped
    week_given: bool = False  # --week: each customer's period that contains it (else its newest ended one)
    period: PeriodKind | None = None  # --period: every customer's period for this run


def _last_complete_for_all(zones: Sequence[str]) -> date:
    """The default week: the last one that has ended in every customer's timezone (early on a
    Monday in London, a Los Angeles customer's week is still running: the week before is taken)."""
    now = datetime.now(UTC)
    return min(last_complete_week_day(now, tz) for tz in zones)


def _resolve(args: argparse.Namespace) -> Setup:
    path = args.config or os.environ.get("REPORTBOT_CONFIG")
    if path:
        if getattr(args, "sim_faults", None):
            raise CliError("--sim-faults works only on the sandbox (no --config, no REPORTBOT_CONFIG)", EXIT_USAGE)
        config = load_config(path, source_types=OPTIONS)
        zones = [config.customer_timezone(c) for c in config.customers] or [config.msp.timezone]
        week_day = parse_week(args.week) if args.week else _last_complete_for_all(zones)
        return _with_period(Setup(config, Path(path).resolve().parent, None, week_day, path=path), args)
    week_day = parse_week(args.week) if args.week else _last_complete_for_all([c.timezone for c in CUSTOMERS])
    anchor = week_containing(week_day, MSP_TIMEZONE).end_date
    dataset = SandboxDataset(anchor, synthetic=getattr(args, "synthetic", 0) or 0)
    out = Path(args.out)
    store_url = f"sqlite+aiosqlite:///{(out / 'reportbot-sandbox.db').resolve()}"
    specs = list(getattr(args, "sim_faults", None) or [])
    try:
        parse_fault_specs(specs)
    except ValueError as err:
        raise CliError(f"--sim-faults: {err}", EXIT_USAGE) from err
    return _with_period(Setup(sandbox_config(dataset, store_url), None, dataset, week_day, specs), args)


def _with_period(setup: Setup, args: argparse.Namespace) -> Setup:
    """``--week`` and ``--period`` into ``setup``: ``--period`` sets every customer's period for
    this run (over the file's and the admins' saved ones)."""
    setup.week_given = bool(getattr(args, "week", None))
    raw = getattr(args, "period", None)
    if raw:
        try:
            setup.period = period_kind(raw)
        except PeriodError as err:
            raise CliError(f"--period: {err}", EXIT_USAGE) from err
        setup.config = setup.config.model_copy(
            update={"customers": [c.model_copy(update={"period": setup.period}) for c in setup.config.customers]}
        )
    return setup


def _period_of(setup: Setup, customer: CustomerConfig) -> Period:
    """The period a run reports for ``customer`` (before the admins' saved settings are read)."""
    tz = setup.config.customer_timezone(customer)
    kind = setup.period or customer.period
    if setup.week_given:
        return period_containing(setup.week_day, tz, kind)
    return batch_period(setup.week_day, tz, kind, datetime.now(UTC))


def _select(config: Config, codes: Sequence[str], all_: bool) -> list[CustomerConfig]:
    if all_:
        return list(config.customers)
    if not codes:
        raise CliError("name at least one customer code, or --all", EXIT_USAGE)
    known = [c.code for c in config.customers]
    chosen = []
    for raw in codes:
        code = raw.upper()
        if code not in known:
            close = difflib.get_close_matches(code, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known codes: {', '.join(known[:12])}"
            raise CliError(f"unknown customer code {raw!r}{hint}", EXIT_USAGE)
        chosen.append(config.customer(code))
    return chosen


def _connectors(config: Config, ctx: ConnectorContext, customers: Sequence[CustomerConfig]) -> dict[str, Connector]:
    needed = {s for c in customers for s in c.sources.values()}
    if not ctx.customers:
        ctx = replace(ctx, customers=ConnectorContext.batch_sizes(customers))
    out: dict[str, Connector] = {}
    for name in sorted(needed):
        src = config.sources[name]
        kind = src.type or name
        factory = CONNECTORS.get(kind)
        if factory is None:
            raise CliError(
                f"sources.{name}.type: no connector named {kind!r} (known: {', '.join(sorted(CONNECTORS))})", EXIT_USAGE
            )
        try:
            out[name] = factory(name, src, ctx)
        except ConnectorError as err:
            raise CliError(f"sources.{name}: {err}") from err
    return out


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 24
        filled = round(width * self.done / max(self.total, 1))
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line + ("\n" if self.done == self.total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


async def _generate(
    setup: Setup, customers: list[CustomerConfig], out: Path, backfill: int, quiet: bool = False, deliver: bool = False
) -> tuple[list[Draft], list[str], list[str]]:
    if setup.sandbox is None:
        return await _generate_with(setup, setup.config, customers, out, backfill, quiet, deliver)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)  # the sandbox's store lives there
    # the sandbox: the real connectors against the vendors' simulators on 127.0.0.1, served by a
    # child process as the vendors' servers would be (the batch keeps a core of its own)
    try:
        async with FarmProcess(setup.sandbox, setup.fault_specs) as farm:
            config = sandbox_config(setup.sandbox, setup.config.store.url, farm.sources)
            return await _generate_with(
                setup, config, [config.customer(c.code) for c in customers], out, backfill, quiet, deliver
            )
    except RuntimeError as err:
        if "simulators" in str(err):
            raise CliError(str(err)) from err
        raise


async def _generate_with(
    setup: Setup,
    config: Config,
    customers: list[CustomerConfig],
    out: Path,
    backfill: int,
    quiet: bool,
    deliver: bool = False,
) -> tuple[list[Draft], list[str], list[str]]:
    from reporting.pdf import render_pdf  # ReportLab import kept off the config-check path

    ctx = ConnectorContext(sandbox=setup.sandbox)
    connectors = _connectors(config, ctx, customers)
    try:
        store = await HistoryStore.open(config.store.url)
    except StoreError as err:
        for c in connectors.values():
            await c.aclose()
        raise CliError(f"{setup.path or 'the sandbox'}: store.url: {err}") from err
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)  # only now: a rejected run leaves nothing
    engine = Engine(
        config, connectors, store, config.branding(setup.base), render_pdf, allow_partial=setup.allow_partial
    )
    live = LiveSettings(await SettingsStore.open(store.engine), config, engine)
    await live.refresh()  # the admins' settings saved in Teams: the MSP name, who is disabled
    if setup.period is not None:  # --period: over the admins' saved periods too
        engine.period_kinds = {c.code: setup.period for c in config.customers}
    if setup.skip_disabled:
        skipped = [c.code for c in customers if not live.now.enabled(c.code)]
        customers = [c for c in customers if live.now.enabled(c.code)]
        if skipped:
            print(f"skipped (reports disabled in the settings): {', '.join(skipped)}", file=sys.stderr)
    # the unmapped-customer sweep is advice: it runs beside the batch, every source under its
    # timeout, so it never adds a timeout of its own to the run
    sweep = asyncio.create_task(unmapped_records(connectors, config.customers, lambda s: source_timeout(config, s)))
    progress = Progress(len(customers), enabled=not quiet)
    failures: list[str] = []

    def done(result: Draft | BaseException, c: CustomerConfig) -> None:
        progress.step(c.code if isinstance(result, Draft) else f"{c.code} FAILED")

    try:
        results = await engine.run_many(
            customers, setup.week_day, out, backfill_weeks=backfill, on_done=done, containing=setup.week_given
        )
        if deliver:
            rollup_end = week_containing(setup.week_day, config.msp.timezone).end_date
            drafted = [r for r in results if isinstance(r, Draft)]
            setup.reviews = await _approve_and_deliver(
                config, store, drafted, out, rollup_end, technical_pdf=engine.pdf
            )
        swept = await sweep
        unmapped = [f"{r.system}: {r.id} ({r.name})" for r in swept.records]
        for line in swept.skipped:
            print(f"warning: {line}", file=sys.stderr)
    finally:
        if not sweep.done():
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)
        engine.close()
        for c in connectors.values():
            await c.aclose()
        await store.close()
    drafts = []
    for customer, r in zip(customers, results, strict=True):
        if isinstance(r, Draft):
            drafts.append(r)
        else:
            failures.append(f"{customer.code}: {type(r).__name__}: {r}")
    return drafts, failures, unmapped


DEMO_APPROVER = "Sandbox engineer (demo)"


async def _approve_and_deliver(
    config: Config,
    store: HistoryStore,
    drafts: list[Draft],
    out: Path,
    rollup_end: date,
    technical_pdf: Callable[[Report], Awaitable[bytes]] | None = None,
) -> dict[str, DraftStatus | None]:
    """The demo's review step: every draft approved as the sandbox engineer (recorded as such) and
    delivered to ``OUT/outbox/`` through the real delivery steps; then the roll-up card. Returns
    each draft's review state as the store has it after delivery."""
    from bot.delivery import Deliverer, DeliveryHandoff, DeliveryLog
    from bot.google.backend import routed_backend
    from bot.outbox import OutboxBackend
    from bot.state import ReviewState
    from cards.rollup import rollup_card

    state = await ReviewState.open(store.engine)
    deliveries = await DeliveryLog.open(store.engine)
    backend = OutboxBackend(config, out / "outbox")
    closers: list[Any] = []  # [delivery] may send the email step through Gmail, the archive to Drive
    handoff = DeliveryHandoff(
        Deliverer(
            config, deliveries, routed_backend(config, backend, out / "outbox", closers), technical_pdf=technical_pdf
        ),
        state,
    )
    try:
        for d in drafts:
            draft = await state.upsert_drafted(d.code, d.report.period.end_date, d.report.period.kind)
            approved = await state.change(
                draft.id,
                draft.version,
                state=DraftState.APPROVED,
                decided_by=DEMO_APPROVER,
                decided_at=datetime.now(UTC),
            ) or await state.get(draft.id)
            if approved is not None and approved.state == DraftState.APPROVED:
                await handoff(approved, d.report, d.paths["pdf"].read_bytes())
    finally:
        for close in reversed(closers):
            await close()
    statuses: dict[str, DraftStatus | None] = {}
    for d in drafts:
        row = await state.for_week(d.code, d.report.period.end_date, d.report.period.kind)
        statuses[d.code] = (
            None
            if row is None
            else DraftStatus(
                row.state, row.decided_by or "", row.decided_at, row.reason or "", "", f"{d.code}/{d.paths['pdf'].name}"
            )
        )  # relative to OUT, where rollup-<week>.md is
    if drafts:  # the roll-up of the week (customers on other periods: their newest report)
        rows = rollup_rows((d.report for d in drafts), statuses, _owners(config), config.msp.timezone)
        await backend.post_rollup(rollup_end, rollup_card(rows, rollup_end, config.msp.name))
    return statuses


def _owners(config: Config) -> dict[str, str]:
    return {c.code: c.owner for c in config.customers}


def _summary_table(drafts: list[Draft]) -> str:
    rows = [("Customer", "Status", "Flags")]
    for r in sorted(rollup_rows(d.report for d in drafts), key=lambda r: r.code):
        rows.append((r.code, r.status, ", ".join(r.flags) or "-"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, f"{'-' * w0}  {'-' * w1}  {'-' * 5}")
    return "\n".join(lines)


def _write_rollup(setup: Setup, drafts: list[Draft], out: Path, unmapped: list[str]) -> Path:
    period_end = week_containing(setup.week_day, setup.config.msp.timezone).end_date
    path = out / f"rollup-{period_end.isoformat()}.md"
    rows = rollup_rows((d.report for d in drafts), setup.reviews, _owners(setup.config), setup.config.msp.timezone)
    write_atomic(path, rollup_markdown(rows, setup.config.msp.name, period_end, unmapped))
    return path


def _refuse_unfinished(setup: Setup, customers: Sequence[CustomerConfig], allow_partial: bool) -> None:
    """A week that has not ended for one of ``customers`` (in its own timezone) stops the run
    before anything is written, unless ``--allow-partial``; a week that has not started, always."""
    now = datetime.now(UTC)
    for c in customers:
        period = _period_of(setup, c)
        started = has_started(period, now)
        if has_ended(period, now) or (allow_partial and started):
            continue
        hint = (
            "Report a week that has ended, or pass --allow-partial for a report labelled partial"
            if started
            else "Report a week that has ended"
        )
        raise CliError(f"{WeekNotEnded(c.code, period, started=started)}; nothing was written. {hint}", EXIT_USAGE)


async def _internal(setup: Setup, out: Path, deliver: bool = False) -> tuple[dict[str, Path], list[str]]:
    """The MSP-internal owner and manager reports (sandbox: against the vendors' simulators);
    with ``deliver``, also delivered to the outbox (one line per step)."""
    if setup.sandbox is None:
        return await _internal_with(setup, setup.config, out, deliver)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)  # the sandbox's store lives there
    async with FarmProcess(setup.sandbox, setup.fault_specs) as farm:
        config = sandbox_config(setup.sandbox, setup.config.store.url, farm.sources)
        return await _internal_with(setup, config, out, deliver)


async def _deliver_internal(config: Config, report: Any, paths: dict[str, Path], out: Path) -> list[str]:
    """``run --internal --deliver``: the summaries emailed to ``[internal_reports]`` (the admins'
    saved lists over the file's) and their card posted — into ``OUT/outbox/``, through the same
    steps and records as the bot's Monday batch, so a second run sends nothing twice."""
    from bot.delivery import DeliveryLog, StepResult
    from bot.internal_delivery import AUDIENCES, InternalReports, InternalSummary
    from bot.outbox import OutboxBackend
    from cards.internal import internal_summary_card
    from reporting.internal import headline

    try:
        store = await HistoryStore.open(config.store.url)
    except StoreError as err:
        raise CliError(f"store.url: {err}") from err
    try:
        live = LiveSettings(await SettingsStore.open(store.engine), config)
        outbox = OutboxBackend(config, out / "outbox")

        async def post(summary: InternalSummary, lines: list[str]) -> StepResult:
            files = {a: str(paths[f"{a}.pdf"].resolve()) for a in AUDIENCES}
            card = internal_summary_card(summary.headline, [], lines)
            where = await outbox.post_internal(summary.period_end, card, files)
            return StepResult("posted to the outbox", where.resolve().as_uri())

        internal = InternalReports(
            config, store, await DeliveryLog.open(store.engine), outbox, connectors={}, post=post, settings=live
        )
        end = report.period.end_date
        if await internal.pending(end):
            await live.refresh()
            summary = await internal.summaries.load(end)
            if summary is None:  # this run's PDFs; a week delivered in part keeps the ones it sent
                pdfs = {a: await asyncio.to_thread(paths[f"{a}.pdf"].read_bytes) for a in AUDIENCES}
                summary = InternalSummary(headline(report), pdfs)
                await internal.summaries.save(summary)
            steps = await internal.deliver(summary)
        else:
            steps = await internal.steps(end)
            print(f"the summaries of the week ending {end} were delivered before; nothing sent again", file=sys.stderr)
    finally:
        await store.close()
    return [f"{name}: {s.status}: {s.detail or ''}".rstrip(": ") for name, s in sorted(steps.items(), key=_step_order)]


def _step_order(item: tuple[str, Any]) -> int:
    from bot.internal_delivery import STEPS

    return STEPS.index(item[0]) if item[0] in STEPS else len(STEPS)


async def _internal_with(
    setup: Setup, config: Config, out: Path, deliver: bool = False
) -> tuple[dict[str, Path], list[str]]:
    from reporting.internal import read_all, report_for, write_reports

    period = week_containing(setup.week_day, config.msp.timezone)
    if not has_ended(period, datetime.now(UTC)):
        raise CliError(
            f"the week ending {period.end_date.isoformat()} has not ended yet; nothing was written", EXIT_USAGE
        )
    # only the PSAs: the summary reads tickets, nothing from the other sources
    psa = [
        c.model_copy(update={"sources": {"tickets": c.sources["tickets"]}})
        for c in config.customers
        if c.sources.get("tickets")
    ]
    connectors = _connectors(config, ConnectorContext(sandbox=setup.sandbox), psa)
    try:
        reads, previous, unavailable = await read_all(config, connectors, period)
    finally:
        for c in connectors.values():
            await c.aclose()
    report = report_for(config, period, reads, previous, unavailable, datetime.now(UTC).astimezone(period.start.tzinfo))
    paths = await asyncio.to_thread(write_reports, report, out)
    return paths, (await _deliver_internal(config, report, paths, out) if deliver else [])


def cmd_internal(args: argparse.Namespace) -> int:
    """``reportbot run --internal [--deliver]``: the MSP's own service-desk summary (owner and
    manager reports) from every customer's PSA, into ``OUT/internal/``; with ``--deliver`` also
    emailed to ``[internal_reports]`` and posted, into ``OUT/outbox/``. MSP-internal: never
    delivered to a customer."""
    if args.codes or args.all:
        raise CliError("--internal covers every customer's PSA: name no customer codes and no --all", EXIT_USAGE)
    out = Path(args.out)
    setup = _resolve(args)
    try:
        paths, steps = asyncio.run(_internal(setup, out, deliver=args.deliver))
    except RuntimeError as err:
        if "simulators" in str(err):
            raise CliError(str(err)) from err
        raise
    for key in sorted(paths):
        print(f"{key}: {paths[key]}")
    for line in steps:
        print(line)
    return EXIT_FAILED if any(": failed" in line for line in steps) else 0


def cmd_run(args: argparse.Namespace) -> int:
    if getattr(args, "internal", False):
        return cmd_internal(args)
    if getattr(args, "deliver", False):
        raise CliError("--deliver goes with --internal (customer reports are delivered on approval)", EXIT_USAGE)
    out = Path(args.out)
    setup = _resolve(args)
    customers = _select(setup.config, args.codes, args.all)
    _refuse_unfinished(setup, customers, args.allow_partial)
    setup.allow_partial = args.allow_partial
    setup.skip_disabled = bool(args.all)
    backfill = args.backfill if args.backfill is not None else (HISTORY_WEEKS if setup.sandbox else 0)
    t0 = time.perf_counter()
    drafts, failures, unmapped = asyncio.run(_generate(setup, customers, out, backfill))
    if args.all and drafts:
        _write_rollup(setup, drafts, out, unmapped)
    for d in drafts:
        print(f"{d.code}: {d.paths['pdf']}  ({len(d.report.flags)} flags)")
    for u in unmapped:
        print(f"warning: source record maps to no customer: {u}", file=sys.stderr)
    for f in failures:
        print(f"error: {f}", file=sys.stderr)
    print(f"{len(drafts)} draft(s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return EXIT_FAILED if failures else 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.config = None
    out = Path(args.out)
    setup = _resolve(args)
    customers = list(setup.config.customers)
    _refuse_unfinished(setup, customers, args.allow_partial)
    setup.allow_partial = args.allow_partial
    t0 = time.perf_counter()
    print(
        f"Sandbox MSP: {setup.config.msp.name}, {len(customers)} customers, "
        f"{fmt.week(week_containing(setup.week_day, setup.config.msp.timezone))} "
        f"(history seeded: {HISTORY_WEEKS} weeks)"
    )
    drafts, failures, unmapped = asyncio.run(_generate(setup, customers, out, HISTORY_WEEKS, deliver=True))
    rollup = _write_rollup(setup, drafts, out, unmapped)
    print()
    print(_summary_table(drafts))
    print()
    for u in unmapped:
        print(f"warning: source record maps to no customer: {u}")
    for f in failures:
        print(f"error: {f}", file=sys.stderr)
    print(
        f"{len(drafts)} drafts (md, pdf, json; each with its -technical variant) under {out}/<CODE>/ and the "
        f"roll-up {rollup} in {time.perf_counter() - t0:.1f} s."
    )
    outbox = out / "outbox"
    print(
        f"Approved as {DEMO_APPROVER!r} and delivered to {outbox}/: "
        f"{len(list((outbox / 'mail').glob('*.eml')))} emails (mail/), "
        f"{len(list((outbox / 'channels').glob('*/*.json')))} channel posts (channels/), "
        f"{len(list((outbox / 'sharepoint').rglob('*.pdf')))} archived PDFs (sharepoint/), and the roll-up card."
    )
    print("To review drafts by hand instead, try `reportbot serve --sandbox` with the Agents Playground (README).")
    return EXIT_FAILED if failures else 0


def cmd_config_check(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get("REPORTBOT_CONFIG")
    if not path:
        raise CliError("config check needs --config FILE (or REPORTBOT_CONFIG)", EXIT_USAGE)
    if args.live and args.offline:
        raise CliError("config check: --live contacts the deployment, --offline nothing; give one of them", EXIT_USAGE)
    config = load_config(path, source_types=OPTIONS)
    problems = []
    for c in config.customers:
        missing = [s for s in ("uptime", "tickets", "changes", "backups", "security", "sites") if s not in c.sources]
        if missing:
            problems.append(
                f"warning: customers[{c.code}].sources: no source for {', '.join(missing)} (reported as unavailable)"
            )
        for name in sorted(set(c.sources.values())):
            kind = config.sources[name].type or name
            if kind not in CONNECTORS:
                problems.append(f"error: sources.{name}.type: no connector named {kind!r}")
            elif name not in c.ids and kind != "sandbox":
                problems.append(f"error: customers[{c.code}].ids.{name}: missing (the customer's id in {name})")
    if config.delivery.uses_google:
        from bot.google.check import offline_problems

        problems += offline_problems(config)
    for p in problems:
        print(p, file=sys.stderr)
    try:  # the admins' settings saved in Teams, over the file's values
        for line in asyncio.run(overrides_in_force(config.store.url)):
            print(line)
    except Exception as err:  # the store is unreachable: said, not fatal to the file's check
        problems.append(f"warning: store.url: cannot read the settings saved in Teams ({type(err).__name__})")
        print(problems[-1], file=sys.stderr)
    lines: list[str] = []
    if not args.offline and not any(p.startswith("error") for p in problems):
        lines = asyncio.run(_check_sources(config))
        if config.delivery.uses_google:  # the Gmail / Drive delegation, the archive root
            from bot.google.check import check_google

            lines += asyncio.run(check_google(config))
        for line in lines:
            print(line, file=sys.stderr if line.startswith(("error", "warning")) else sys.stdout)
    everything = problems + lines
    errors = [p for p in everything if p.startswith("error")]
    warnings = [p for p in everything if p.startswith("warning")]
    failed = 0
    live = ""
    if args.live and not any(p.startswith("error") for p in problems):  # the file is sound (sources may be down)
        from bot.live_check import live_check

        checks = asyncio.run(live_check(config))
        for check in checks:
            print(check, flush=True)
        failed = sum(1 for c in checks if c.status == "FAIL")
        live = f"; live: {sum(1 for c in checks if c.status == 'ok')} ok, {failed} failed"
    elif args.live:
        live = "; live checks not run (fix the configuration errors first)"
    checked = "offline: sources not contacted" if args.offline else f"{len(config.sources)} sources contacted"
    print(
        f"{path}: {len(config.customers)} customers, {len(config.sources)} sources ({checked}); "
        f"{len(errors)} errors, {len(warnings)} warnings{live}"
    )
    return EXIT_USAGE if errors else EXIT_FAILED if failed else 0


async def _check_sources(config: Config) -> list[str]:
    """Each used source answers (``probe``) and every customer's id resolves there."""
    ctx = ConnectorContext()
    used = sorted({name for c in config.customers for name in c.sources.values()})
    out: list[str] = []

    async def one(name: str) -> list[str]:
        src = config.sources[name]
        kind = src.type or name
        if kind == "sandbox":
            return [f"ok: sources.{name}: the in-process sandbox feed (nothing to contact)"]
        lines: list[str] = []
        try:
            connector = CONNECTORS[kind](name, src, ctx)
        except ConnectorError as err:
            return [f"error: sources.{name}: {err}"]
        limit = source_timeout(config, name)
        try:
            t0 = time.perf_counter()
            try:
                what = await asyncio.wait_for(connector.probe(), limit)
                records = await asyncio.wait_for(connector.customer_records(), limit)
            except TimeoutError:
                return [f"error: sources.{name}: no answer within {limit:g} s (timeout_seconds)"]
            except ConnectorError as err:
                return [f"error: sources.{name}: {err}"]
            ms = 1000 * (time.perf_counter() - t0)
            lines.append(
                f"ok: sources.{name}: {what} at {src.url} answered in {ms:.0f} ms; {len(records)} customer records"
            )
            ids = {r.id: r for r in records}
            mapped = set()
            check_id = getattr(
                connector, "check_id", None
            )  # sources without customer entities (Veeam VBR job prefixes)
            for c in config.customers:
                if name not in c.sources.values():
                    continue
                cid = c.ids.get(name, "")
                found = ids[cid].name if cid in ids else None
                if found is None and check_id is not None:
                    try:
                        found = await asyncio.wait_for(check_id(cid), limit)
                    except TimeoutError:
                        lines.append(f"error: customers[{c.code}].ids.{name}: {name} gave no answer within {limit:g} s")
                        continue
                    except ConnectorError as err:
                        lines.append(f"error: customers[{c.code}].ids.{name}: {err}")
                        continue
                if found is not None:
                    mapped.add(cid)
                    lines.append(f"ok: customers[{c.code}].ids.{name} = {cid!r} -> {found}")
                else:
                    close = difflib.get_close_matches(cid, list(ids), n=3, cutoff=0.6)
                    hint = f"; close: {', '.join(close)}" if close else ""
                    lines.append(f"error: customers[{c.code}].ids.{name}: {cid!r} is not a customer in {name}{hint}")
            accepts = getattr(connector, "accepts_id", lambda r, cid: False)
            configured = [c.ids[name] for c in config.customers if name in c.ids]
            for rid, r in sorted(ids.items()):
                if rid not in mapped and rid not in configured and not any(accepts(r, cid) for cid in configured):
                    lines.append(f"warning: sources.{name}: {rid!r} ({r.name}) maps to no configured customer")
        finally:
            await connector.aclose()
        return lines

    for lines in await asyncio.gather(*(one(n) for n in used)):
        out.extend(lines)
    return out


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve the vendor simulators until interrupted, and write a config that points at them."""
    week_day = parse_week(args.week) if args.week else last_complete_week_day(datetime.now(UTC), MSP_TIMEZONE)
    dataset = SandboxDataset(week_containing(week_day, MSP_TIMEZONE).end_date)
    try:
        faults = parse_fault_specs(args.sim_faults or [])
    except ValueError as err:
        raise CliError(f"--sim-faults: {err}", EXIT_USAGE) from err
    target = Path(args.write_config)

    async def serve() -> None:
        async with SimulatorFarm(dataset, faults=faults) as farm:
            toml, env = sandbox_config_files(dataset, farm.sources(), target.with_suffix(".db"))
            write_atomic(target, toml)
            env_path = target.with_suffix(".env")
            write_atomic(env_path, env)
            env_path.chmod(0o600)
            for system, sim in sorted(farm.sims.items()):
                print(f"{system:<12} {sim.url}")
            print(f"config: {target}  (credentials as ${{VAR}} references; values in {env_path})")
            print(f"try:    env $(cat {env_path}) reportbot config check --config {target}")
            print("Ctrl-C stops the simulators.", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    return 0


_FAULTS_HELP = (
    "inject faults into a vendor simulator, e.g. 'zabbix:status=503,count=3,retry_after=2', "
    "'*:latency_ms=100', 'halo:html=1,count=2', 'datto:drift=status>state' (repeatable)"
)


def cmd_serve(args: argparse.Namespace) -> int:
    """The bot (and, with issue 7, the scheduler): until interrupted."""
    from bot.service import open_service, run_forever
    from bot.settings import BotSettings, SettingsError

    out = Path(args.out)
    path = args.config or os.environ.get("REPORTBOT_CONFIG")
    if not args.sandbox and not path:
        raise CliError("serve needs --config FILE (or REPORTBOT_CONFIG), or --sandbox to try it locally", EXIT_USAGE)
    config_base = Path(path).resolve().parent if path else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)

        def on_signal() -> None:  # the first one stops the bot in order; a second one, at once
            stop.set()
            for sig in signals:
                loop.remove_signal_handler(sig)

        for sig in signals:
            loop.add_signal_handler(sig, on_signal)
        if args.sandbox and not path:
            week_day = last_complete_week_day(datetime.now(UTC), MSP_TIMEZONE)
            dataset = SandboxDataset(week_containing(week_day, MSP_TIMEZONE).end_date)
            out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before serving
            store_url = f"sqlite+aiosqlite:///{(out / 'reportbot-sandbox.db').resolve()}"
            async with FarmProcess(dataset) as farm:
                config = sandbox_config(dataset, store_url, farm.sources)
                await _serve(config, None, lambda: week_day, HISTORY_WEEKS, stop)
        else:
            assert path  # checked above: without --sandbox, serve needs a config
            await _serve(load_config(path, source_types=OPTIONS), config_base, None, 0, stop)

    async def _serve(config: Config, base: Path | None, week: Any, backfill: int, stop: asyncio.Event) -> None:
        try:
            settings = BotSettings.from_config(
                config, sandbox=args.sandbox, host=args.host, port=args.port, version=_version()
            )
        except SettingsError as err:
            raise CliError(str(err).replace("\n", "; "), EXIT_USAGE) from err
        try:
            async with open_service(
                config, settings, out, week_day=week, base=base, backfill_weeks=backfill
            ) as service:
                await run_forever(service, run_now=args.now, stop=stop)
        except StoreError as err:
            raise CliError(f"store.url: {err}") from err

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from manifest.builder import build_manifest, build_package, sandbox_manifest

    path = args.config or os.environ.get("REPORTBOT_CONFIG")
    if path:
        config = load_config(path, source_types=OPTIONS)
        if not config.teams.app_id:
            raise CliError("teams.app_id: needed for the Teams app package", EXIT_USAGE)
        try:
            host = urlsplit(config.teams.public_url).hostname if config.teams.public_url else None
            manifest = build_manifest(
                config.teams.app_id,
                "reportbot",
                _version(),
                valid_domains=[host] if host else [],
                accent_color=config.msp.brand_color,
                developer_name=config.msp.name,
            )
        except (TypeError, ValueError) as err:
            raise CliError(f"manifest: {err}", EXIT_USAGE) from err
        brand = config.msp.brand_color
    else:
        manifest, brand = sandbox_manifest(_version()), None
    target = build_package(manifest, Path(args.out), brand_color=brand)
    print(
        f"{target}: Teams app package (manifest {manifest.get('manifestVersion')}, bot {manifest['bots'][0]['botId']})"
    )
    return 0


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reportbot")
    except PackageNotFoundError:
        return "0"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reportbot", description="Weekly MSP customer reports.")
    p.add_argument("--version", action="version", version=f"reportbot {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="generate draft reports")
    run.add_argument("codes", nargs="*", metavar="CODE")
    run.add_argument("--all", action="store_true", help="every configured customer (also writes the roll-up)")
    run.add_argument(
        "--week", help="any date (YYYY-MM-DD) inside the Monday–Sunday week to report; default: the last complete week"
    )
    run.add_argument("--out", default="reports", help="output folder (default: ./reports)")
    run.add_argument("--config", help="configuration file (default: $REPORTBOT_CONFIG, else the sandbox)")
    run.add_argument(
        "--backfill",
        type=int,
        default=None,
        metavar="N",
        help="first store up to N earlier weeks missing from history (default: 0; sandbox: 5)",
    )
    run.add_argument("--sim-faults", action="append", metavar="SYSTEM:SPEC", help="sandbox only: " + _FAULTS_HELP)
    run.add_argument(
        "--internal",
        action="store_true",
        help="the MSP's own service-desk summary (owner and manager reports, MSP-internal) into OUT/internal/",
    )
    run.add_argument(
        "--deliver",
        action="store_true",
        help="with --internal: email the summaries to [internal_reports] and post their card, into OUT/outbox/ "
        "(once per week: a second run sends nothing again)",
    )
    run.add_argument(
        "--allow-partial",
        action="store_true",
        help=(
            "report a week that has not ended yet (labelled 'partial, as of <time>'); without it such a week is refused"
        ),
    )
    run.add_argument(
        "--period",
        choices=PERIOD_KINDS,
        help=(
            "report this period for every customer named (over its configured one): week, fortnight (14 days), "
            "30d (30 days) or month (the calendar month); --week then names any date inside it"
        ),
    )
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="the whole weekly procedure on the sandbox MSP")
    demo.add_argument("--out", default="reports")
    demo.add_argument(
        "--week", help="report this week instead of the last complete one (the sandbox plants its scenarios there)"
    )
    demo.add_argument("--sim-faults", action="append", metavar="SYSTEM:SPEC", help=_FAULTS_HELP)
    demo.add_argument(
        "--allow-partial", action="store_true", help="report a week that has not ended yet, labelled partial"
    )
    demo.add_argument("--period", choices=PERIOD_KINDS, help="every customer's period (default: week)")
    demo.set_defaults(func=cmd_demo)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("--config")
    check.add_argument("--offline", action="store_true", help="validate the file only; do not contact the sources")
    check.add_argument(
        "--live",
        action="store_true",
        help=(
            "also check the deployment: the bot's Bot Connector token, the Graph token and its permissions, the "
            "mailbox, a probe file in the SharePoint archive, the Teams channels, the store (exit 1 on a FAIL)"
        ),
    )
    check.set_defaults(func=cmd_config_check)

    serve = sub.add_parser("serve", help="run the Teams bot")
    serve.add_argument("--config", help="configuration file (default: $REPORTBOT_CONFIG)")
    serve.add_argument("--port", type=int, default=3978)
    serve.add_argument("--host", default=None, help="listen address (default 0.0.0.0; the sandbox: 127.0.0.1 only)")
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="no app id needed: listen on 127.0.0.1 for the Agents Playground; without --config, the sandbox MSP",
    )
    serve.add_argument("--out", default="reports", help="where drafts are written (default: ./reports)")
    serve.add_argument("--now", action="store_true", help="run the weekly batch at once (as well as on its schedule)")
    serve.set_defaults(func=cmd_serve)

    man = sub.add_parser("manifest", help="build the Teams app package")
    man.add_argument("--config", help="configuration file (default: $REPORTBOT_CONFIG; without: a sandbox package)")
    man.add_argument("--out", required=True, metavar="FILE.zip")
    man.set_defaults(func=cmd_manifest)

    sb = sub.add_parser("sandbox", help="serve the vendor simulators on 127.0.0.1 and write a config for them")
    sb.add_argument(
        "--write-config",
        default="sandbox.toml",
        metavar="FILE",
        help="where to write the config (default: sandbox.toml)",
    )
    sb.add_argument("--week", help="the week the sandbox plants its scenarios in (default: the last complete one)")
    sb.add_argument("--sim-faults", action="append", metavar="SYSTEM:SPEC", help=_FAULTS_HELP)
    sb.set_defaults(func=cmd_sandbox)
    _logging_options(p)
    return p


def _logging_options(parser: argparse.ArgumentParser) -> None:
    """``-v``, ``--log-level`` and ``--log-format`` on the command and on every subcommand, so they
    work anywhere on the line (``reportbot -v run`` and ``reportbot run ACME -v``). SUPPRESS keeps
    a subcommand's absent option from overwriting one given before it."""
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress (--log-level info)"
    )
    group.add_argument(
        "--log-level",
        choices=LEVELS,
        default=argparse.SUPPRESS,
        help="what to log on stderr (default: $REPORTBOT_LOG_LEVEL, else error)",
    )
    group.add_argument(
        "--log-format",
        choices=FORMATS,
        default=argparse.SUPPRESS,
        help="text, or json: one object per line with customer, source, draft id... (default: $REPORTBOT_LOG_FORMAT)",
    )
    for action in parser._actions:  # argparse offers no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _logging_options(child)


def _setup_logging(args: argparse.Namespace) -> None:
    level = getattr(args, "log_level", None) or os.environ.get("REPORTBOT_LOG_LEVEL", "").lower() or None
    if level is None:
        level = "info" if getattr(args, "verbose", False) else "error"
    fmt_name = getattr(args, "log_format", None) or os.environ.get("REPORTBOT_LOG_FORMAT", "").lower() or "text"
    try:
        setup_logging(level, fmt_name)
    except ValueError as err:  # from the environment; the options themselves are checked by argparse
        raise CliError(f"{err} (REPORTBOT_LOG_LEVEL / REPORTBOT_LOG_FORMAT)", EXIT_USAGE) from err


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _setup_logging(args)
        return int(args.func(args))
    except (CliError, ConfigError, PeriodError, CredentialsError) as err:
        code = err.code if isinstance(err, CliError) else EXIT_USAGE
        print(f"reportbot: {err}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("reportbot: interrupted; finished reports are complete, nothing half-written was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

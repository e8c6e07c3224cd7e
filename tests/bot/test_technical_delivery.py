"""Delivering the technical report (issue 16, item 1): on approval the executive recipients get the
executive PDF, the technical recipients a second email with the technical PDF; both PDFs are
archived; the customer channel keeps the executive one. Each new step is recorded and resumed like
the others: after a crash at any step, one of each — never a second technical email."""

from __future__ import annotations

import email
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date
from email import policy
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.delivery import ALL_STEPS, STEPS, Deliverer, DeliveryHandoff, DeliveryLog, Parcel, StepResult
from bot.outbox import OutboxBackend
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import SandboxDataset
from reporting import snapshot
from reporting.config import Config
from reporting.models import Report
from reporting.overrides import CustomerSettings, ReportSettings
from tests.conftest import PERIOD_END as PERIOD_END_TEXT
from tests.conftest import load_json

PERIOD_END = date.fromisoformat(PERIOD_END_TEXT)
EXEC_PDF = b"%PDF-1.7 the executive report"


class Crash(BaseException):
    """The process dying between a step's side effect and its log entry."""


class Watching:
    """The outbox backend, recording every call as (step, key) — the technical steps are the
    backend's own send_email/archive with the technical parcel — and 'dying' after ``crash``."""

    def __init__(self, backend: OutboxBackend, crash: str | None = None):
        self.backend, self.crash = backend, crash
        self.calls: list[tuple[str, str]] = []
        self.parcels: dict[str, Parcel] = {}

    async def _do(self, name: str, method: str, parcel: Parcel, key: str) -> StepResult:
        step = f"tech_{name}" if parcel.variant == "technical" else name
        assert key.endswith(f":{step}")  # each step under its own delivery key
        self.calls.append((step, key))
        self.parcels[step] = parcel
        result: StepResult = await getattr(self.backend, method)(parcel, key)
        if step == self.crash:
            raise Crash(step)
        return result

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        return await self._do("email", "send_email", parcel, key)

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        return await self._do("channel", "post_channel", parcel, key)

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        return await self._do("archive", "archive", parcel, key)


class Settings:
    """``bot.admin_settings.LiveSettings`` as the deliverer reads it."""

    def __init__(self, saved: ReportSettings):
        self.now = saved

    async def refresh(self) -> ReportSettings:
        return self.now

    def executive(self, code: str) -> tuple[str, ...]:
        return self.now.customer(code).executive

    def technical(self, code: str) -> tuple[str, ...]:
        return self.now.customer(code).technical


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    yield eng
    await eng.dispose()


@pytest.fixture
def config() -> Config:
    return sandbox_config(SandboxDataset(PERIOD_END), "sqlite+aiosqlite:///unused.db")


def report_of(demo_out: Path, code: str) -> Report:
    return snapshot.from_dict(load_json(demo_out, code))


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def mail(path: Path) -> Any:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(BytesIO(data)).pages).split())


# ---- the demo: INITECH's IT manager ---------------------------------------------------------------


def test_the_demo_sends_initech_one_executive_and_one_technical_email(demo_out: Path) -> None:
    outbox = demo_out / "outbox"
    ex = mail(outbox / "mail" / f"INITECH-weekly-{PERIOD_END_TEXT}.eml")
    te = mail(outbox / "mail" / f"INITECH-weekly-{PERIOD_END_TEXT}-technical.eml")
    assert (ex["To"], ex["Cc"]) == ("cto@initech.example", "am-initech@northwind.example")
    assert (te["To"], te["Cc"]) == ("it-manager@initech.example", None)
    assert te["Reply-To"] == ex["Reply-To"]  # replies reach the same account engineer
    assert te["Subject"] == "Initech: weekly technical report, Week of Mon 9 Nov \u2013 Sun 15 Nov 2026"
    assert ex["X-Reportbot-Delivery-Id"].endswith(":email") and te["X-Reportbot-Delivery-Id"].endswith(":tech_email")
    [ex_pdf] = list(ex.iter_attachments())
    [te_pdf] = list(te.iter_attachments())
    assert te_pdf.get_filename() == f"INITECH-weekly-{PERIOD_END_TEXT}-technical.pdf"
    assert "Attached is the weekly technical report for" in te.get_body(("plain",)).get_content()
    ex_text, te_text = pdf_text(ex_pdf.get_content()), pdf_text(te_pdf.get_content())
    assert "WEEKLY SERVICE REPORT" in ex_text and "Technical detail" not in ex_text
    assert "WEEKLY TECHNICAL REPORT" in te_text and "Security: every incident" in te_text
    # the technical PDF sent is the one the draft wrote
    assert (
        te_pdf.get_content() == (demo_out / "INITECH" / f"INITECH-weekly-{PERIOD_END_TEXT}-technical.pdf").read_bytes()
    )
    # the customer channel keeps the executive report; the archive holds both, date-stamped
    assert [p.name for p in (outbox / "channels" / "initech-shared" / "files").iterdir()] == [ex_pdf.get_filename()]
    year = outbox / "sharepoint" / "Documents" / "Customers" / "INITECH" / "2026"
    assert sorted(p.name for p in year.iterdir()) == sorted([ex_pdf.get_filename(), te_pdf.get_filename()])
    assert (year / te_pdf.get_filename()).read_bytes() == te_pdf.get_content()
    # nobody else in the sandbox has technical recipients: no technical email for them
    assert [p.name for p in (outbox / "mail").glob("*-technical.eml")] == [te_pdf.get_filename()[:-4] + ".eml"]


# ---- resumable, exactly once -----------------------------------------------------------------------


@pytest.mark.parametrize("crash_after", ALL_STEPS)
async def test_a_crash_after_any_step_resumes_without_sending_anything_twice(
    crash_after: str, engine: AsyncEngine, config: Config, demo_out: Path, tmp_path: Path
) -> None:
    root = tmp_path / "outbox"
    log = await DeliveryLog.open(engine)
    report = report_of(demo_out, "INITECH")
    first = Watching(OutboxBackend(config, root), crash=crash_after)
    with pytest.raises(Crash):
        await Deliverer(config, log, first).deliver("i1", "INITECH", PERIOD_END, report, EXEC_PDF, "Sam")
    assert await log.unfinished() == ["i1"]
    again = Watching(OutboxBackend(config, root))
    steps = await Deliverer(config, log, again).deliver("i1", "INITECH", PERIOD_END, report, EXEC_PDF, "Sam")
    assert {s: st.status for s, st in steps.items()} == dict.fromkeys(ALL_STEPS, "done")
    # the resumed run repeats only the step whose outcome the crash lost, under the same key
    done_before = ALL_STEPS[: ALL_STEPS.index(crash_after)]
    assert [s for s, _ in again.calls] == [s for s in ALL_STEPS if s not in done_before]
    assert Counter(s for s, _ in first.calls + again.calls) == Counter({**dict.fromkeys(ALL_STEPS, 1), crash_after: 2})
    assert steps[crash_after].attempts == 2
    assert files(root) == [
        "channels/initech-shared/INITECH-weekly-2026-11-16.json",
        "channels/initech-shared/files/INITECH-weekly-2026-11-16.pdf",
        "mail/INITECH-weekly-2026-11-16-technical.eml",
        "mail/INITECH-weekly-2026-11-16.eml",
        "sharepoint/Documents/Customers/INITECH/2026/INITECH-weekly-2026-11-16-technical.pdf",
        "sharepoint/Documents/Customers/INITECH/2026/INITECH-weekly-2026-11-16.pdf",
    ]
    # a third run (a repeated approve, another restart) calls the backend for nothing
    third = Watching(OutboxBackend(config, root))
    await Deliverer(config, log, third).deliver("i1", "INITECH", PERIOD_END, report, EXEC_PDF, "Sam")
    assert third.calls == []


async def test_the_technical_parcel_carries_the_technical_pdf_and_its_recipients(
    engine: AsyncEngine, config: Config, demo_out: Path, tmp_path: Path
) -> None:
    rendered: list[Report] = []

    async def technical_pdf(report: Report) -> bytes:
        rendered.append(report)
        return b"%PDF-1.7 technical"

    watch = Watching(OutboxBackend(config, tmp_path / "outbox"))
    deliverer = Deliverer(config, await DeliveryLog.open(engine), watch, technical_pdf=technical_pdf)
    await deliverer.deliver("i1", "INITECH", PERIOD_END, report_of(demo_out, "INITECH"), EXEC_PDF, "Sam")
    assert [r.audience for r in rendered] == ["technical"]  # rendered once, for both technical steps
    tech, ex = watch.parcels["tech_email"], watch.parcels["email"]
    assert tech.pdf == b"%PDF-1.7 technical" and ex.pdf == EXEC_PDF and watch.parcels["channel"].pdf == EXEC_PDF
    assert tech.recipients == ("it-manager@initech.example",) and tech.file_name.endswith("-technical.pdf")
    assert watch.parcels["tech_archive"] is tech and ex.variant == "executive"


async def test_no_technical_recipients_no_technical_steps(
    engine: AsyncEngine, config: Config, demo_out: Path, tmp_path: Path
) -> None:
    root = tmp_path / "outbox"
    watch = Watching(OutboxBackend(config, root))
    steps = await Deliverer(config, await DeliveryLog.open(engine), watch).deliver(
        "a1", "ACME", PERIOD_END, report_of(demo_out, "ACME"), EXEC_PDF, "Sam"
    )
    assert set(steps) == set(STEPS)
    assert [s for s, _ in watch.calls] == list(STEPS)
    assert not any("technical" in f for f in files(root))


async def test_saved_settings_override_the_files_technical_recipients(
    engine: AsyncEngine, config: Config, demo_out: Path, tmp_path: Path
) -> None:
    root = tmp_path / "outbox"
    saved = ReportSettings(
        version=3,
        customers={
            "INITECH": CustomerSettings(technical=("ops@initech.example", "soc@initech.example")),
            "ACME": CustomerSettings(technical=("it@acme.example",)),  # the file names nobody for ACME
        },
    )
    deliverer = Deliverer(config, await DeliveryLog.open(engine), OutboxBackend(config, root), settings=Settings(saved))
    for draft, code in (("i1", "INITECH"), ("a1", "ACME")):
        steps = await deliverer.deliver(draft, code, PERIOD_END, report_of(demo_out, code), EXEC_PDF, "Sam")
        assert set(steps) == set(ALL_STEPS) and all(s.status == "done" for s in steps.values())
    assert (
        mail(root / "mail" / "INITECH-weekly-2026-11-16-technical.eml")["To"]
        == "ops@initech.example, soc@initech.example"
    )
    assert mail(root / "mail" / "ACME-weekly-2026-11-16-technical.eml")["To"] == "it@acme.example"
    assert mail(root / "mail" / "ACME-weekly-2026-11-16.eml")["To"] == "cto@acme.example"  # executive as before


async def test_the_files_executive_recipients_replace_cto_and_account_owner(
    engine: AsyncEngine, config: Config, demo_out: Path, tmp_path: Path
) -> None:
    update = {"recipients": {"executive": ("ceo@acme.example", "cfo@acme.example"), "technical": ()}}
    custom = config.model_copy(
        update={
            "customers": tuple(
                c.model_copy(update={"recipients": c.recipients.model_copy(update=update["recipients"])})
                if c.code == "ACME"
                else c
                for c in config.customers
            )
        }
    )
    root = tmp_path / "outbox"
    await Deliverer(custom, await DeliveryLog.open(engine), OutboxBackend(custom, root)).deliver(
        "a1", "ACME", PERIOD_END, report_of(demo_out, "ACME"), EXEC_PDF, "Sam"
    )
    msg = mail(root / "mail" / "ACME-weekly-2026-11-16.eml")
    assert (msg["To"], msg["Cc"]) == ("ceo@acme.example, cfo@acme.example", None)


async def test_a_technical_step_begun_for_recipients_since_removed_is_not_sent(
    engine: AsyncEngine, config: Config, demo_out: Path, tmp_path: Path
) -> None:
    root = tmp_path / "outbox"
    log = await DeliveryLog.open(engine)
    report = report_of(demo_out, "ACME")
    with_it = Settings(ReportSettings(version=1, customers={"ACME": CustomerSettings(technical=("it@acme.example",))}))
    crashing = Watching(OutboxBackend(config, root / "first"), crash="tech_email")
    with pytest.raises(Crash):
        await Deliverer(config, log, crashing, settings=with_it).deliver(
            "a1", "ACME", PERIOD_END, report, EXEC_PDF, "Sam"
        )
    # the admin clears the list before the restart: nothing more goes to anyone technical
    watch = Watching(OutboxBackend(config, root))
    steps = await Deliverer(config, log, watch, settings=Settings(ReportSettings(version=2))).deliver(
        "a1", "ACME", PERIOD_END, report, EXEC_PDF, "Sam"
    )
    assert [s for s, _ in watch.calls] == ["channel", "archive"]
    assert steps["tech_email"].status == "done" and "not sent" in (steps["tech_email"].detail or "")
    assert "tech_archive" not in steps and await log.unfinished() == []
    state = SimpleNamespace(calls=[])

    async def set_state(draft_id: str, value: str, **kw: Any) -> None:
        state.calls.append(value)

    state.set_state = set_state
    handoff = DeliveryHandoff(Deliverer(config, log, watch), state)
    await handoff(
        SimpleNamespace(id="a1", customer_code="ACME", period_end=PERIOD_END, decided_by="Sam"), report, EXEC_PDF
    )
    assert state.calls == ["delivering", "delivered"] and len(watch.calls) == 2  # nothing repeated


async def test_the_handoff_waits_for_the_technical_steps_before_delivered(
    engine: AsyncEngine, config: Config, demo_out: Path, tmp_path: Path
) -> None:
    log = await DeliveryLog.open(engine)
    report = report_of(demo_out, "INITECH")
    states: list[str] = []

    async def set_state(draft_id: str, value: str, **kw: Any) -> None:
        states.append(value)

    draft = SimpleNamespace(id="i1", customer_code="INITECH", period_end=PERIOD_END, decided_by="Sam")
    state = SimpleNamespace(set_state=set_state)
    with pytest.raises(Crash):
        await DeliveryHandoff(Deliverer(config, log, Watching(OutboxBackend(config, tmp_path), "tech_archive")), state)(
            draft, report, EXEC_PDF
        )
    assert states == ["delivering"]  # email, channel and archive done, the technical archive not: not delivered
    await DeliveryHandoff(Deliverer(config, log, OutboxBackend(config, tmp_path)), state)(draft, report, EXEC_PDF)
    assert states == ["delivering", "delivering", "delivered"]

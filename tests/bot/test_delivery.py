"""Delivery to the outbox through the real steps: exactly one of each, after any crash, and
never another customer's recipients, channel or folder."""

from __future__ import annotations

import asyncio
import email
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.delivery import (
    STEPS,
    Deliverer,
    DeliveryBusy,
    DeliveryLog,
    Parcel,
    PermanentError,
    StepResult,
    delivery_leases,
)
from bot.outbox import OutboxBackend
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import SandboxDataset
from reporting import snapshot
from reporting.models import Report
from tests.conftest import load_json

PERIOD_END = date(2026, 11, 16)


class Crash(BaseException):
    """Stands for the process dying between a step's side effect and its log entry."""


class CrashAfter:
    """The outbox, but the 'process dies' right after ``step``'s side effect is done."""

    def __init__(self, backend: OutboxBackend, step: str):
        self.backend, self.step = backend, step

    async def _do(self, step: str, parcel: Parcel, key: str) -> StepResult:
        result: StepResult = await getattr(
            self.backend, {"email": "send_email", "channel": "post_channel", "archive": "archive"}[step]
        )(parcel, key)
        if step == self.step:
            raise Crash(step)
        return result

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        return await self._do("email", parcel, key)

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        return await self._do("channel", parcel, key)

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        return await self._do("archive", parcel, key)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    yield eng
    await eng.dispose()


@pytest.fixture
def config() -> Any:
    return sandbox_config(SandboxDataset(PERIOD_END), "sqlite+aiosqlite:///unused.db")


def report_of(demo_out: Path, code: str) -> Report:
    return snapshot.from_dict(load_json(demo_out, code))


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("crash_after", STEPS)
async def test_a_crash_after_any_step_still_ends_with_exactly_one_of_each(
    crash_after: str, engine: AsyncEngine, config: Any, demo_out: Path, tmp_path: Path
) -> None:
    root = tmp_path / "outbox"
    log = await DeliveryLog.open(engine)
    report = report_of(demo_out, "ACME")
    pdf = b"%PDF-1.7 acme"
    with pytest.raises(Crash):
        await Deliverer(config, log, CrashAfter(OutboxBackend(config, root), crash_after)).deliver(
            "d1", "ACME", PERIOD_END, report, pdf, "Sam Approver"
        )
    assert await log.unfinished() == ["d1"]  # what a restart resumes
    steps = await Deliverer(config, log, OutboxBackend(config, root)).deliver(
        "d1", "ACME", PERIOD_END, report, pdf, "Sam Approver"
    )
    assert {s: st.status for s, st in steps.items()} == {"email": "done", "channel": "done", "archive": "done"}
    assert steps[crash_after].attempts == 2 and all(st.attempts == 1 for s, st in steps.items() if s != crash_after)
    assert files(root) == [
        "channels/acme-shared/ACME-weekly-2026-11-16.json",
        "channels/acme-shared/files/ACME-weekly-2026-11-16.pdf",
        "mail/ACME-weekly-2026-11-16.eml",
        "sharepoint/Documents/Customers/ACME/2026/ACME-weekly-2026-11-16.pdf",
    ]
    # a third run (a repeated approve, another restart) does nothing at all
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    await Deliverer(config, log, OutboxBackend(config, root)).deliver(
        "d1", "ACME", PERIOD_END, report, pdf, "Sam Approver"
    )
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


async def test_email_goes_only_to_the_customers_own_recipients(
    engine: AsyncEngine, config: Any, demo_out: Path, tmp_path: Path
) -> None:
    root = tmp_path / "outbox"
    log = await DeliveryLog.open(engine)
    await Deliverer(config, log, OutboxBackend(config, root)).deliver(
        "g1", "GLOBEX", PERIOD_END, report_of(demo_out, "GLOBEX"), b"%PDF globex", "Sam"
    )
    msg = email.message_from_bytes((root / "mail" / "GLOBEX-weekly-2026-11-16.eml").read_bytes(), policy=policy.default)
    assert msg["To"] == "cto@globex.example"  # the CTO reads it; the account owner is copied
    assert msg["Cc"] == "am-globex@northwind.example"
    engineer = next(c.account_engineer for c in config.customers if c.code == "GLOBEX")
    assert engineer is not None and msg["Reply-To"] == f"{engineer.name} <{engineer.email}>"
    assert msg["From"] == "reports@northwind.example"
    assert msg["Subject"] == "Globex Corporation: weekly report, Week of Mon 9 Nov \u2013 Sun 15 Nov 2026"
    assert msg["X-Reportbot-Delivery-Id"] == "reportbot:g1:email"
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "GLOBEX-weekly-2026-11-16.pdf" and attachment.get_content() == b"%PDF globex"
    html = msg.get_body(("html",)).get_content()
    assert "Globex Corporation" in html and "week of Mon 9 Nov \u2013 Sun 15 Nov 2026" in html
    text = msg.get_body(("plain",)).get_content()
    for part in (html, text):  # the named contact, in both parts of the note
        assert "Your contact at Northwind" in part and engineer.name in part and engineer.email in part
    assert not any("acme" in f.lower() for f in files(root))


async def test_unknown_customer_and_missing_recipients_stop_delivery(
    engine: AsyncEngine, config: Any, demo_out: Path, tmp_path: Path
) -> None:
    log = await DeliveryLog.open(engine)
    deliverer = Deliverer(config, log, OutboxBackend(config, tmp_path / "outbox"))
    with pytest.raises(KeyError):
        await deliverer.deliver("x", "NOSUCH", PERIOD_END, report_of(demo_out, "ACME"), b"%PDF", "Sam")
    bare = config.model_copy(
        update={
            "customers": tuple(
                c.model_copy(update={"cto_email": "", "account_owner_email": ""}) if c.code == "WAYNE" else c
                for c in config.customers
            )
        }
    )
    steps = await Deliverer(bare, log, OutboxBackend(bare, tmp_path / "outbox")).deliver(
        "w1", "WAYNE", PERIOD_END, report_of(demo_out, "WAYNE"), b"%PDF", "Sam"
    )
    assert steps["email"].status == "failed" and "no cto_email or account_owner_email" in (steps["email"].detail or "")
    assert "channel" not in steps  # delivery stopped at the failed step
    with pytest.raises(PermanentError):
        await OutboxBackend(bare, tmp_path / "o2").send_email(
            Parcel("w2", "WAYNE", bare.customer("WAYNE"), PERIOD_END, report_of(demo_out, "WAYNE"), b"%PDF", "Sam"), "k"
        )


def test_addressing_cto_in_to_account_owner_in_cc(config: Any, demo_out: Path) -> None:
    from bot.outbox import addressing

    globex = config.customer("GLOBEX")

    def to(**update: Any) -> Any:
        c = globex.model_copy(update=update)
        return addressing(Parcel("a", "GLOBEX", c, PERIOD_END, report_of(demo_out, "GLOBEX"), b"%PDF", "Sam"))

    both = to()
    assert both.to == ("cto@globex.example",) and both.cc == ("am-globex@northwind.example",)
    assert both.describe() == "cto@globex.example (cc am-globex@northwind.example)"
    no_cto = to(cto_email="")
    assert no_cto.to == ("am-globex@northwind.example",) and no_cto.cc == ()
    same = to(account_owner_email="cto@globex.example")
    assert same.to == ("cto@globex.example",) and same.cc == ()
    assert to(account_engineer=None).reply_to is None


@pytest.mark.parametrize("killed_after", STEPS)
def test_killed_process_resumes_with_exactly_one_of_each(killed_after: str, demo_out: Path, tmp_path: Path) -> None:
    """The delivery process is killed right after each step in turn; a restart finishes the
    report with one email, one channel post and one archive file."""
    import json
    import subprocess
    import sys

    db, outbox = tmp_path / "store.db", tmp_path / "outbox"
    report = demo_out / "ACME" / "ACME-weekly-2026-11-16.json"
    cmd = [sys.executable, "-m", "tests.bot.crash_delivery", str(db), str(outbox), str(report)]
    died = subprocess.run([*cmd, killed_after], capture_output=True, timeout=60)  # noqa: S603
    assert died.returncode == 137, died.stderr.decode()[-500:]
    resumed = subprocess.run(cmd, capture_output=True, timeout=60, check=True)  # noqa: S603
    steps = json.loads(resumed.stdout)
    assert {s: v[0] for s, v in steps.items()} == {"email": "done", "channel": "done", "archive": "done"}
    assert steps[killed_after][1] == 2  # the interrupted step ran again (same key, same file)
    assert files(outbox) == [
        "channels/acme-shared/ACME-weekly-2026-11-16.json",
        "channels/acme-shared/files/ACME-weekly-2026-11-16.pdf",
        "mail/ACME-weekly-2026-11-16.eml",
        "sharepoint/Documents/Customers/ACME/2026/ACME-weekly-2026-11-16.pdf",
    ]


async def test_production_serve_delivers_through_graph_and_the_sandbox_through_the_outbox(tmp_path: Path) -> None:
    from bot.announce import ChannelAnnouncer
    from bot.delivery import DeliveryHandoff
    from bot.graph import GraphBackend
    from bot.service import LocalHandoff, open_service
    from bot.settings import BotSettings
    from reporting.config import parse_config

    def cfg(mailbox: str) -> Any:
        return parse_config(
            {
                "msp": {"name": "M", "timezone": "Europe/London"},
                "store": {"url": f"sqlite:///{tmp_path / (mailbox or 'none')}.db"},
                "teams": {
                    "app_id": "6f1c0b1e-0000-4000-8000-00000000b07a",
                    "app_password": "p",
                    "tenant_id": "t-1",
                    "link_secret": "s" * 32,
                    "review_channel": "19:review@thread.tacv2",
                },
                "graph": {"mailbox": mailbox, "sharepoint_site": "contoso.sharepoint.com:/sites/Reports"},
            },
            "<test>",
            env={},
        )

    for mailbox, expected in (("reports@contoso.example", GraphBackend), ("", None)):
        config = cfg(mailbox)
        async with open_service(config, BotSettings.from_config(config), tmp_path / "out") as service:
            handoff = service.review.handoff
            if expected is None:
                assert isinstance(handoff, LocalHandoff)  # no [graph] mailbox: approved PDFs are filed locally
            else:
                assert isinstance(handoff, DeliveryHandoff) and isinstance(handoff.deliverer.backend, expected)
                backend = handoff.deliverer.backend
                assert isinstance(backend.announce, ChannelAnnouncer)  # the bot's card post, exactly once
                shared = SimpleNamespace(code="ACME", teams_channel="19:acme@thread.tacv2")
                assert await backend.channel_team(shared) == ""  # neither configured nor heard of
                await service.state.remember_team("19:acme@thread.tacv2", "aad-group-acme")
                assert await backend.channel_team(shared) == "aad-group-acme"  # as Teams told the bot


class Gate(OutboxBackend):
    """The outbox, whose email step waits until ``go`` is set (a slow Graph)."""

    def __init__(self, config: Any, root: Path):
        super().__init__(config, root)
        self.entered, self.go = asyncio.Event(), asyncio.Event()
        self.sends = 0

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        self.sends += 1
        self.entered.set()
        await self.go.wait()
        return await super().send_email(parcel, key)


async def test_two_instances_never_deliver_one_draft_at_once(
    engine: AsyncEngine, config: Any, demo_out: Path, tmp_path: Path
) -> None:
    """Instance A is mid-email (slow Graph) when B, just started, resumes the same draft: B gets
    DeliveryBusy and sends nothing; once A is done, B's next try finds every step done."""
    log = await DeliveryLog.open(engine)
    report, pdf = report_of(demo_out, "ACME"), b"%PDF-1.7 acme"
    a_backend, b_backend = Gate(config, tmp_path / "outbox"), Gate(config, tmp_path / "outbox")
    b_backend.go.set()
    a = Deliverer(config, log, a_backend, owner="host-a:1:aaaaaa")
    b = Deliverer(config, log, b_backend, owner="host-b:1:bbbbbb")
    first = asyncio.ensure_future(a.deliver("d1", "ACME", PERIOD_END, report, pdf, "Sam"))
    await asyncio.wait_for(a_backend.entered.wait(), 10)
    with pytest.raises(DeliveryBusy, match="host-a:1:aaaaaa"):
        await b.deliver("d1", "ACME", PERIOD_END, report, pdf, "Sam")
    assert b_backend.sends == 0
    a_backend.go.set()
    steps = await asyncio.wait_for(first, 10)
    assert all(steps[s].status == "done" for s in STEPS)
    again = await b.deliver("d1", "ACME", PERIOD_END, report, pdf, "Sam")  # A released its lease
    assert all(again[s].status == "done" for s in STEPS) and b_backend.sends == 0
    assert len(list((tmp_path / "outbox" / "mail").rglob("*.eml"))) == 1


async def test_a_lease_of_a_dead_process_or_an_expired_one_is_taken_over(
    engine: AsyncEngine, config: Any, demo_out: Path, tmp_path: Path
) -> None:
    import socket
    import sys

    log = await DeliveryLog.open(engine)
    host = socket.gethostname()
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")  # a pid that no longer runs
    await gone.wait()
    assert await log.take_lease("d1", f"{host}:{gone.pid}:dead00", 60) is None
    assert await log.take_lease("d1", f"{host}:{os.getpid()}:mine00", 60) is None, "a dead holder on this host"
    assert await log.take_lease("d1", "elsewhere:7:other0", 60) == f"{host}:{os.getpid()}:mine00"
    assert await log.take_lease("d2", "elsewhere:7:other0", 0.2) is None
    assert await log.take_lease("d2", f"{host}:{os.getpid()}:mine00", 60) == "elsewhere:7:other0", "alive, in lease"
    await asyncio.sleep(0.3)
    assert await log.take_lease("d2", f"{host}:{os.getpid()}:mine00", 60) is None, "another host's lease ran out"
    # a restarted container: same host and pid, a new life
    assert await log.take_lease("d2", f"{host}:{os.getpid()}:reborn", 60) is None


async def test_an_instance_paused_past_its_lease_does_no_further_step(
    engine: AsyncEngine, config: Any, demo_out: Path, tmp_path: Path
) -> None:
    """A is paused inside its email step longer than the lease (its heartbeat paused too); B takes
    the delivery over and finishes it; A, woken, finds the lease gone and stops before the next
    step: one email, one channel post, one archived file."""
    log = await DeliveryLog.open(engine)
    report, pdf = report_of(demo_out, "ACME"), b"%PDF-1.7 acme"
    a_backend = Gate(config, tmp_path / "outbox")
    a = Deliverer(config, log, a_backend, owner="host-a:1:aaaaaa", lease_seconds=30)
    b = Deliverer(config, log, OutboxBackend(config, tmp_path / "outbox"), owner="host-b:1:bbbbbb")
    first = asyncio.ensure_future(a.deliver("d1", "ACME", PERIOD_END, report, pdf, "Sam"))
    await asyncio.wait_for(a_backend.entered.wait(), 10)
    async with engine.begin() as conn:  # A's lease runs out while it is paused
        await conn.execute(delivery_leases.update().values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    steps = await b.deliver("d1", "ACME", PERIOD_END, report, pdf, "Sam")
    assert all(steps[s].status == "done" for s in STEPS)
    a_backend.go.set()  # A wakes: its email step returns (the outbox write repeats the same file)
    with pytest.raises(DeliveryBusy):
        await asyncio.wait_for(first, 10)
    outbox = tmp_path / "outbox"
    assert len(list((outbox / "mail").rglob("*.eml"))) == 1
    assert len([p for p in (outbox / "channels" / "acme-shared").iterdir() if p.is_file()]) == 1  # one post
    assert len(list((outbox / "sharepoint").rglob("*.pdf"))) == 1

"""The Google path end to end: ``reportbot demo`` with ``email = "gmail"``, ``archive = "gdrive"``
against the loopback Google; a process killed after Gmail accepted a send / Drive created the
file, then restarted; ``config check``'s delegation probes; mixed backends."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import bot.cli
from bot.cli import main
from bot.delivery import Parcel, StepResult
from bot.google.backend import GoogleDelivery, RoutedBackend, route
from connectors.sandbox.config import sandbox_config_dict
from reporting.config import Config, parse_config
from tests.bot.fake_google import (
    SCOPE_DRIVE,
    SCOPE_GMAIL_READONLY,
    SCOPE_GMAIL_SEND,
    FakeGoogle,
    FakeGoogleThread,
)
from tests.bot.google_setup import (
    ARCHIVIST,
    SENDER,
    config_dict,
    google_tables,
    key_file,
    make_config,
    parcel,
    setup_google,
)
from tests.conftest import PERIOD_END, WEEK_DAY
from tests.processes import run_async

ROOT = Path(__file__).resolve().parents[2]


def test_demo_with_gmail_and_drive_delivers_12_messages_and_12_archived_files_and_initechs_technical_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with FakeGoogleThread() as google:
        root = setup_google(google)["root"]
        key = key_file(google, tmp_path)

        def with_google(dataset: Any, store_url: str, sources: Any = None) -> Config:
            data = sandbox_config_dict(dataset, store_url, sources)
            data.update(google_tables(google.origin, key, root=root))
            return parse_config(data, "<sandbox + google>", env={})

        monkeypatch.setattr(bot.cli, "sandbox_config", with_google)
        assert main(["demo", "--out", str(out), "--week", WEEK_DAY]) == 0
    assert google.unexpected == []
    customers = {c["code"]: c for c in sandbox_config_dict(_dataset(), "sqlite+aiosqlite:///x.db")["customers"]}
    assert len(customers) == 12

    messages = google.parsed(SENDER)
    assert len(messages) == 13  # and INITECH's technical report, to its IT manager (the sandbox's one)
    technical = [m for m in messages if "technical report" in str(m["Subject"])]
    assert len(technical) == 1
    [tech_pdf] = [p for p in technical[0].walk() if p.get_content_type() == "application/pdf"]
    assert tech_pdf.get_filename() == f"INITECH-weekly-{PERIOD_END}-technical.pdf"
    assert [a.addr_spec for a in technical[0]["To"].addresses] == ["it-manager@initech.example"]
    assert technical[0]["Cc"] is None
    assert tech_pdf.get_content() == (out / "INITECH" / f"INITECH-weekly-{PERIOD_END}-technical.pdf").read_bytes()
    assert technical[0]["Message-ID"] not in {m["Message-ID"] for m in messages if m is not technical[0]}
    by_code = {}
    for msg in messages:
        if msg is technical[0]:
            continue
        [pdf] = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
        code = pdf.get_filename().split("-weekly-")[0]
        by_code[code] = msg
        c = customers[code]
        assert [a.addr_spec for a in msg["To"].addresses] == [c["cto_email"]]
        assert [a.addr_spec for a in msg["Cc"].addresses] == [c["account_owner_email"]]
        assert msg["Reply-To"].addresses[0].addr_spec == c["account_engineer"]["email"]
        types = [p.get_content_type() for p in msg.walk() if not p.is_multipart()]
        assert types == ["text/plain", "text/html", "application/pdf"]
        body = pdf.get_content()
        assert body.startswith(b"%PDF-") and b"%%EOF" in body[-1024:]
        assert body == (out / code / f"{code}-weekly-{PERIOD_END}.pdf").read_bytes()  # the approved final PDF
    assert sorted(by_code) == sorted(customers)

    files = google.stored()
    assert sorted(files) == sorted(
        [f"Report archive/Customers/{code}/2026/{code}-weekly-{PERIOD_END}.pdf" for code in customers]
        + [f"Report archive/Customers/INITECH/2026/INITECH-weekly-{PERIOD_END}-technical.pdf"]
    )
    for path, f in files.items():
        code = path.split("/")[2]
        name = path.split("/")[-1]
        assert f.content == (out / code / name).read_bytes() and len(f.revisions) == 1
    # one token per scope for the whole run: 12 look-ups + 12 sends + 12 archives (~70 calls)
    assert sorted(c["scope"] for c in google.token_requests) == sorted(
        [SCOPE_GMAIL_READONLY, SCOPE_GMAIL_SEND, SCOPE_DRIVE]
    )
    assert len([r for r in google.requests if r.path != "/token"]) >= 12 * 2 + 12 * 3
    outbox = out / "outbox"
    assert list((outbox / "mail").glob("*.eml")) == [] and list((outbox / "sharepoint").rglob("*.pdf")) == []
    assert len(list((outbox / "channels").glob("*/*.json"))) == 12  # the channel step: still Teams (the outbox here)


def _dataset() -> Any:
    from connectors.sandbox.dataset import SandboxDataset
    from tests.conftest import ANCHOR

    return SandboxDataset(ANCHOR)


# -- a process killed after the side effect -----------------------------------------------------------


async def run_child(*args: str) -> tuple[int, str]:
    code, out, err = await run_async(
        sys.executable, "-m", "tests.bot.crash_google_delivery", *args, within=120, cwd=str(ROOT)
    )
    assert code in (0, 137), err.decode()[-3000:]
    return code, out.decode()


@pytest.mark.parametrize("point", ["email", "archive"])
async def test_killed_after_the_send_or_the_create_the_restart_ends_with_exactly_one(
    google: FakeGoogle, tmp_path: Path, point: str
) -> None:
    root = setup_google(google)["root"]
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config_dict(google.origin, key_file(google, tmp_path), root=root)))
    db = str(tmp_path / "crash.db")
    code, _ = await run_child(db, str(config_path), point)
    assert code == 137, f"the process was meant to die after {point}"
    assert len(google.sent(SENDER)) == 1
    assert len(google.stored()) == (1 if point == "archive" else 0)
    code, out = await run_child(db, str(config_path))  # the restart
    assert code == 0
    steps = json.loads(out)
    assert {s: v[0] for s, v in steps.items()} == {"email": "done", "channel": "done", "archive": "done"}, steps
    assert len(google.sent(SENDER)) == 1  # exactly one message
    assert list(google.stored()) == ["Report archive/Clients/Acme/2026/ACME-weekly-2026-11-16.pdf"]  # exactly one file
    [f] = google.stored().values()
    assert len(f.revisions) == 1
    if point == "email":
        assert steps["email"][1] == 2 and steps["email"][2].endswith("(already sent)")
    else:
        assert steps["archive"][1] == 2 and steps["archive"][2].endswith("(already archived)")


# -- config check ---------------------------------------------------------------------------------------


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    def value(v: Any) -> str:
        return "true" if v is True else "false" if v is False else json.dumps(v)

    lines = []
    for table in ("msp", "delivery", "gmail", "gdrive"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {value(v)}" for k, v in data[table].items()]
    for c in data["customers"]:
        lines.append("[[customers]]")
        lines += [f"{k} = {value(v)}" for k, v in c.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def config_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *, prepare: Any = None, key_info: Any = None
) -> tuple[int, list[str]]:
    with FakeGoogleThread() as google:
        root = setup_google(google)["root"]
        if prepare is not None:
            prepare(google, root)
        key = key_file(google, tmp_path, key_info(google) if key_info else None)
        path = write_toml(tmp_path / "reportbot.toml", config_dict(google.origin, key, root=root))
        code = main(["config", "check", "--config", str(path)])
    err = capsys.readouterr()
    return code, [line for line in (err.out + err.err).splitlines() if line.startswith(("ok:", "error:"))]


def test_config_check_mints_each_scope_reads_the_profile_and_lists_the_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = config_check(tmp_path, capsys)
    assert code == 0, lines
    assert lines == [
        f"ok: gmail: a token as {SENDER} for {SCOPE_GMAIL_SEND}",
        f"ok: gmail: a token as {SENDER} for {SCOPE_GMAIL_READONLY}",
        f"ok: gmail: mailbox {SENDER} (0 messages)",
        f"ok: gdrive: a token as {ARCHIVIST} for {SCOPE_DRIVE}",
        f"ok: gdrive: folder 'Report archive' (fold00001) may be written by {ARCHIVIST}; 0 items in it",
    ]


def test_config_check_bad_key_no_delegation_no_folder_permission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    code, lines = config_check(tmp_path, capsys, key_info=lambda g: g.service_account_info(key=other))
    assert code == 2 and len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "Invalid JWT Signature" in lines[0] and "create a new JSON key" in lines[0]

    def no_drive_delegation(google: FakeGoogle, root: str) -> None:
        google.grants[google.client_id].discard(SCOPE_DRIVE)

    code, lines = config_check(tmp_path, capsys, prepare=no_drive_delegation)
    assert code == 2 and lines[-1].startswith(
        "error: gdrive: Google refused a token as archive@northwind.example "
        "(unauthorized_client): in Google Admin console > Security > API "
        "controls > Domain-wide delegation, add client ID "
    )
    assert lines[-1].endswith(f"with scopes {SCOPE_DRIVE}")

    def read_only(google: FakeGoogle, root: str) -> None:
        google.share(ARCHIVIST, root, "reader")

    code, lines = config_check(tmp_path, capsys, prepare=read_only)
    assert code == 2 and lines[-1].startswith(
        f"error: Drive, the archive root: {ARCHIVIST} may not write in the folder fold00001 (gdrive.root_folder_id)"
    )
    assert lines[-1].endswith(f"give {ARCHIVIST} Editor access there")

    def not_shared(google: FakeGoogle, root: str) -> None:
        google.access.clear()

    code, lines = config_check(tmp_path, capsys, prepare=not_shared)
    assert code == 2 and f"{ARCHIVIST} cannot see the folder fold00001" in lines[-1]
    assert f"share it with {ARCHIVIST} as Editor" in lines[-1]


# -- mixed backends -------------------------------------------------------------------------------------


class Recording:
    """A backend that records which step it was asked to do (the routing is under test, not it)."""

    def __init__(self, name: str) -> None:
        self.name, self.calls = name, []  # type: ignore[var-annotated]

    async def send_email(self, parcel: Parcel, key: str) -> StepResult:
        self.calls.append("email")
        return StepResult(self.name)

    async def post_channel(self, parcel: Parcel, key: str) -> StepResult:
        self.calls.append("channel")
        return StepResult(self.name)

    async def archive(self, parcel: Parcel, key: str) -> StepResult:
        self.calls.append("archive")
        return StepResult(self.name)


@pytest.mark.parametrize(
    ("email", "archive", "expected"),
    [
        ("graph", "sharepoint", ("base", "base", "base")),
        ("gmail", "gdrive", ("google", "base", "google")),
        ("graph", "gdrive", ("base", "base", "google")),
        ("gmail", "sharepoint", ("google", "base", "base")),
        ("outbox", "gdrive", ("outbox", "base", "google")),
        ("gmail", "outbox", ("google", "base", "outbox")),
    ],
)
async def test_each_step_is_routed_to_its_own_backend(
    google: FakeGoogle, tmp_path: Path, email: str, archive: str, expected: tuple[str, str, str]
) -> None:
    root = setup_google(google)["root"]
    config = make_config(google, key_file(google, tmp_path), root=root, email=email, archive=archive)
    base, outbox, fake_google = Recording("base"), Recording("outbox"), Recording("google")
    backend = route(config, base, outbox=outbox, google=fake_google)  # type: ignore[arg-type]
    p = parcel(config)
    got = (
        (await backend.send_email(p, "k")).detail,
        (await backend.post_channel(p, "k")).detail,
        (await backend.archive(p, "k")).detail,
    )
    assert got == expected
    assert isinstance(backend, RoutedBackend) or expected == ("base", "base", "base")


async def test_graph_mail_with_a_drive_archive_builds_only_the_drive_half(google: FakeGoogle, tmp_path: Path) -> None:
    root = setup_google(google)["root"]
    config = make_config(google, key_file(google, tmp_path), root=root, email="graph", archive="gdrive")
    d = GoogleDelivery(config)
    try:
        assert d.gmail is None and d.drive is not None
        result = await d.archive(parcel(config), "reportbot:m1:archive")
    finally:
        await d.aclose()
    assert result.detail == "archived to Drive Clients/Acme/2026/ACME-weekly-2026-11-16.pdf"
    assert [c["scope"] for c in google.token_requests] == [SCOPE_DRIVE] and google.sent(SENDER) == []


def test_endpoint_overrides_are_refused_unless_allowed(tmp_path: Path) -> None:
    data = config_dict("http://127.0.0.1:9", tmp_path / "k.json", root="r")
    data["gmail"]["allow_endpoint_overrides"] = False
    with pytest.raises(
        ValueError,
        match=r"gmail\.token_uri: endpoint overrides are refused unless "
        r"gmail\.allow_endpoint_overrides = true",
    ):
        parse_config(data, "<test>", env={})


def test_config_check_offline_reads_the_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = config_dict("http://127.0.0.1:9", tmp_path / "missing.json", root="r")
    path = write_toml(tmp_path / "reportbot.toml", data)
    assert main(["config", "check", "--offline", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: gmail.credentials_file: cannot read {tmp_path / 'missing.json'}" in err
    (tmp_path / "missing.json").write_text('{"type": "authorized_user"}')
    assert main(["config", "check", "--offline", "--config", str(path)]) == 2
    assert "gmail.credentials_file: not a service account key" in capsys.readouterr().err


async def test_a_missing_folder_permission_is_one_line_on_the_card(google: FakeGoogle, tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.delivery import Deliverer, DeliveryLog
    from bot.outbox import OutboxBackend
    from cards.review import DeliveryStepView, review_card
    from tests.bot.test_gmail import card_texts

    root = setup_google(google)["root"]
    google.access.clear()  # the archive folder was never shared with the archivist
    config = make_config(google, key_file(google, tmp_path), root=root)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    d = GoogleDelivery(config)
    try:
        p = parcel(config)
        backend = route(config, OutboxBackend(config, tmp_path / "outbox"), google=d)
        steps = await Deliverer(config, await DeliveryLog.open(engine), backend).deliver(
            p.draft_id, p.code, p.period_end, p.report, p.pdf, "Sam"
        )
    finally:
        await d.aclose()
        await engine.dispose()
    assert [steps[s].status for s in ("email", "channel", "archive")] == ["done", "done", "failed"]
    detail = str(steps["archive"].detail)
    assert "\n" not in detail and f"{ARCHIVIST} cannot see the folder {root} (gdrive.root_folder_id)" in detail
    assert f"share it with {ARCHIVIST} as Editor" in detail
    card = review_card(
        p.report,
        draft_id="d1",
        version=2,
        state="failed",
        commentary="",
        pdf_url=None,
        steps=[DeliveryStepView("Archive", "failed", detail)],
    )
    assert detail in card_texts(card)  # shown whole, not cut


async def test_serve_routes_each_step_as_configured(tmp_path: Path) -> None:
    from bot.delivery import DeliveryHandoff
    from bot.graph import GraphBackend
    from bot.outbox import OutboxBackend
    from bot.service import open_service
    from bot.settings import BotSettings

    fake = FakeGoogle()  # only its key: nothing is contacted while serve starts
    key = key_file(fake, tmp_path)

    def cfg(name: str, mailbox: str, delivery: dict[str, str] | None) -> Config:
        data: dict[str, Any] = {
            "msp": {"name": "M", "timezone": "Europe/London"},
            "store": {"url": f"sqlite:///{tmp_path / name}.db"},
            "teams": {
                "app_id": "6f1c0b1e-0000-4000-8000-00000000b07a",
                "app_password": "p",
                "tenant_id": "t-1",
                "link_secret": "s" * 32,
                "review_channel": "19:review@thread.tacv2",
            },
            "graph": {"mailbox": mailbox, "sharepoint_site": "contoso.sharepoint.com:/sites/Reports"},
        }
        if delivery is not None:
            data.update(google_tables("https://google.invalid", key, root="folder-1", **delivery))
        return parse_config(data, "<test>", env={})

    cases = [
        ("google-both", "", {"email": "gmail", "archive": "gdrive"}, (GoogleDelivery, GraphBackend, GoogleDelivery)),
        (
            "graph-mail-drive",
            "reports@contoso.example",
            {"email": "graph", "archive": "gdrive"},
            (GraphBackend, GraphBackend, GoogleDelivery),
        ),
        (
            "gmail-sharepoint",
            "",
            {"email": "gmail", "archive": "sharepoint"},
            (GoogleDelivery, GraphBackend, GraphBackend),
        ),
        ("gmail-outbox", "", {"email": "gmail", "archive": "outbox"}, (GoogleDelivery, GraphBackend, OutboxBackend)),
    ]
    for name, mailbox, delivery, (email, channel, archive) in cases:
        config = cfg(name, mailbox, delivery)
        async with open_service(config, BotSettings.from_config(config), tmp_path / "out") as service:
            handoff = service.review.handoff
            assert isinstance(handoff, DeliveryHandoff)
            backend = handoff.deliverer.backend
            assert isinstance(backend, RoutedBackend), name
            assert (type(backend.email), type(backend.channel), type(backend.archive_backend)) == (
                email,
                channel,
                archive,
            ), name
    config = cfg("default", "reports@contoso.example", None)  # no [delivery]: today's Graph backend, unwrapped
    async with open_service(config, BotSettings.from_config(config), tmp_path / "out") as service:
        assert isinstance(service.review.handoff.deliverer.backend, GraphBackend)  # type: ignore[attr-defined]

"""``reportbot config check --live`` through the real CLI entry (``bot.cli.main``), against the
loopback Entra ID (``tests.bot.fake_entra``: TLS, MSAL for the bot's Bot Connector token and
azure-identity for Graph's, the Graph token a JWT with ``roles``), the loopback Graph
(``tests.bot.fake_graph``: msgraph-sdk for the mailbox look-up, the archive probe and the
channels' files folders) and a SQLite store holding what Teams' installation events told the bot.

Every request goes to 127.0.0.1; each test names the Graph requests it expects."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main
from bot.graph import graph_scope
from bot.graph.permissions import required_permissions
from bot.live_check import Line, LiveCheck, _roles
from bot.state import ReviewState
from manifest.builder import RSC_PERMISSIONS
from reporting.config import Config, parse_config
from reporting.store import HistoryStore
from tests.bot.fake_entra import FakeEntra
from tests.bot.fake_graph import FakeGraph
from tests.bot.harness import BOT_APP_ID, REVIEW_CHANNEL, ROLLUP_CHANNEL, TENANT_ID

SECRET = "tests-only-live-secret"
LINK_SECRET = "tests-only-link-secret-32-bytes!!"
MAILBOX = "reports@northwind.example"
SITE = ("northwind.sharepoint.com", "/sites/Customers")
MSP_TEAM = REVIEW_CHANNEL.aad_group_id  # the MSP's own team: review and roll-up channels
TEAMS = {"ACME": "team-acme-0001", "GLOBEX": "team-globex-0002"}
CHANNELS = {"ACME": "19:acme-shared@thread.tacv2", "GLOBEX": "19:globex-shared@thread.tacv2"}
ALL_ROLES = ["Mail.Send", "Mail.ReadWrite", "Sites.Selected", "Files.ReadWrite.All"]

CONFIG = """
[msp]
name = "Northwind Managed Services"
timezone = "Europe/London"

[store]
url = "{store}"

[teams]
app_id = "{app_id}"
app_password = "${{LIVE_APP_PASSWORD}}"
tenant_id = "{tenant}"
review_channel = "{review}"
rollup_channel = "{rollup}"
link_secret = "${{LIVE_LINK_SECRET}}"
login_url = "{login}"
allow_endpoint_overrides = true

[graph]
mailbox = "{mailbox}"
sharepoint_site = "{site}"
base_url = "{graph}"
authority = "{authority}"
ca_bundle = "{ca}"
allow_endpoint_overrides = true
channel_teams = {{ ACME = "{acme_team}" }}

[[customers]]
code = "ACME"
name = "Acme Corp"
cto_email = "cto@acme.example"
teams_channel = "{acme}"

[[customers]]
code = "GLOBEX"
name = "Globex Corporation"
cto_email = "cto@globex.example"
teams_channel = "{globex}"
sharepoint_folder = "Customers/Globex Corp"
"""


@dataclass
class Deployment:
    entra: FakeEntra
    graph: FakeGraph
    db: Path
    archive_drive: str

    def config_file(self, tmp: Path, store: str | None = None) -> Path:
        path = tmp / "reportbot.toml"
        path.write_text(
            CONFIG.format(
                store=store or f"sqlite:///{self.db}",
                app_id=BOT_APP_ID,
                tenant=TENANT_ID,
                review=REVIEW_CHANNEL.channel_id,
                rollup=ROLLUP_CHANNEL.channel_id,
                login=self.entra.authority,
                mailbox=MAILBOX,
                site=f"{SITE[0]}:{SITE[1]}",
                graph=self.graph.base_url,
                authority=self.entra.url,
                ca=self.entra.ca_file,
                acme_team=TEAMS["ACME"],
                acme=CHANNELS["ACME"],
                globex=CHANNELS["GLOBEX"],
            )
        )
        return path

    def grant(self, roles: list[str]) -> None:
        """The application permissions consented to the app: the roles of its Graph tokens."""
        self.entra.roles[graph_scope(self.graph.base_url)] = roles


@pytest.fixture
def entra(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEntra]:
    fake = FakeEntra(TENANT_ID, BOT_APP_ID, SECRET).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_file))  # MSAL (the bot's token) trusts the test's certificate
    monkeypatch.setenv("LIVE_APP_PASSWORD", SECRET)
    monkeypatch.setenv("LIVE_LINK_SECRET", LINK_SECRET)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
async def deployment(tmp_path: Path, entra: FakeEntra) -> AsyncIterator[Deployment]:
    graph = await FakeGraph().start()
    graph.tokens = entra.issued  # Graph accepts the tokens Entra ID issued, nothing else
    graph.add_mailbox(MAILBOX)
    site = graph.add_site(*SITE)
    drive = graph.drives[site["drives"][0]]
    graph._new_item(drive, "root", "Customers", folder=True)  # the archive's common folder exists
    graph.add_channel(MSP_TEAM, REVIEW_CHANNEL.channel_id, "Report review")
    graph.add_channel(MSP_TEAM, ROLLUP_CHANNEL.channel_id, "weekly-reports")
    for code in TEAMS:
        graph.add_channel(TEAMS[code], CHANNELS[code], f"{code.title()} shared")
    db = tmp_path / "reportbot.db"
    store = await HistoryStore.open(f"sqlite+aiosqlite:///{db}")
    state = await ReviewState.open(store.engine)
    for team_id, group in (
        (REVIEW_CHANNEL.team_id, MSP_TEAM),
        ("19:team-acme@thread.tacv2", TEAMS["ACME"]),
        ("19:team-globex@thread.tacv2", TEAMS["GLOBEX"]),
    ):  # what the installation events told the bot (tests/bot/test_field.py sends the events themselves)
        info = {"service_url": "https://smba.example/", "tenant_id": TENANT_ID, "aad_group_id": group, "bot_id": "28:x"}
        await state.remember_install(team_id, info)
    await state.remember_team(CHANNELS["GLOBEX"], TEAMS["GLOBEX"])  # someone mentioned the bot there
    await store.close()
    dep = Deployment(entra, graph, db, drive.id)
    dep.grant(ALL_ROLES)
    try:
        yield dep
    finally:
        await graph.close()
    assert graph.unexpected == [], f"requests the fake Graph does not implement: {graph.unexpected}"


async def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    """``reportbot config check --live --config PATH`` in a thread (the fakes serve on this loop);
    the exit code, the live lines and everything printed."""
    code = await asyncio.to_thread(main, ["config", "check", "--live", "--config", str(path)])
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if re.match(r"^(ok|FAIL|note) ", line)]
    return code, lines, out + err


def line(lines: list[str], prefix: str) -> str:
    found = [x for x in lines if x.split(": ", 1)[0].split(None, 1)[1] == prefix]
    assert len(found) == 1, f"one line for {prefix!r} in {lines}"
    return found[0]


async def test_a_ready_deployment_passes_every_check(
    tmp_path: Path, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, everything = await check(deployment.config_file(tmp_path), capsys)
    print("\n".join(lines))
    assert code == 0, everything
    assert not [x for x in lines if x.startswith("FAIL")]
    assert line(lines, "bot connector").startswith(f"ok   bot connector: app {BOT_APP_ID} has a token")
    assert line(lines, "graph token").startswith("ok   graph token:")
    for permission in ("Mail.Send", "Mail.ReadWrite", "Files.ReadWrite.All"):
        assert line(lines, f"permission {permission}").startswith("ok ")
    archive_role = line(lines, "permission Files.ReadWrite.All or Sites.ReadWrite.All or Sites.Selected")
    assert archive_role.startswith("ok   ") and "Files.ReadWrite.All is in the token's roles" in archive_role
    for rsc in ("permission TeamsTab.ReadWrite.All", "permission ChannelMessage.Read.All"):  # RSC: never in a token
        assert line(lines, rsc).startswith("note ") and ".Group" in line(lines, rsc)
    assert line(lines, "mailbox").startswith(f"ok   mailbox: {MAILBOX} answers")
    assert re.match(
        r"ok   archive: wrote and deleted the probe Documents/Customers/reportbot-config-check-", line(lines, "archive")
    )
    for key, team in (
        ("teams.review_channel", MSP_TEAM),
        ("teams.rollup_channel", MSP_TEAM),
        ("customers[ACME].teams_channel", TEAMS["ACME"]),
        ("customers[GLOBEX].teams_channel", TEAMS["GLOBEX"]),
    ):
        assert line(lines, f"channel {key}").endswith(f"is in team {team}, where the app is installed")
    assert line(lines, "store").startswith(
        f"ok   store: sqlite+aiosqlite:///{deployment.db} answers; 3 team installation"
    )
    assert len(lines) == 15  # the bot, the Graph token, 6 permissions, mailbox, archive, 4 channels, the store
    assert "live: 13 ok, 0 failed" in everything
    assert SECRET not in everything and LINK_SECRET not in everything
    assert not [t for t in deployment.entra.issued if t in everything]  # no token printed either
    calls = deployment.graph.calls()
    probe = [c for c in calls if "reportbot-config-check-" in c]
    assert len(probe) == 1 and probe[0].startswith("PUT /drives/")  # the probe written once ...
    assert [c for c in calls if c.startswith("DELETE /drives/")]  # ... and deleted
    assert deployment.graph.files(deployment.archive_drive) == {}  # nothing left behind
    assert f"GET /users/{MAILBOX}/messages" in " ".join(calls)
    assert f"GET /teams/{TEAMS['ACME']}/channels/{CHANNELS['ACME']}/filesFolder" in calls
    # the bot's token was asked for the Bot Connector, Graph's for Graph; both from the loopback Entra ID
    assert deployment.entra.scopes == ["https://api.botframework.com/.default", graph_scope(deployment.graph.base_url)]


async def test_a_missing_graph_permission_fails_its_line_and_the_exit_code(
    tmp_path: Path, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.grant([r for r in ALL_ROLES if r != "Mail.Send"])
    code, lines, everything = await check(deployment.config_file(tmp_path), capsys)
    assert code == 1, everything
    failed = [x for x in lines if x.startswith("FAIL")]
    assert failed == [line(lines, "permission Mail.Send")]
    assert "not in the Graph token's roles; needed for: send as the reports mailbox" in failed[0]
    assert f"Add the Microsoft Graph application permission Mail.Send to app {BOT_APP_ID}" in failed[0]
    assert "live: 12 ok, 1 failed" in everything


async def test_a_wrong_bot_secret_fails_the_bot_connector_line_with_what_to_fix(
    tmp_path: Path, deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVE_APP_PASSWORD", "not-the-secret")
    code, lines, everything = await check(deployment.config_file(tmp_path), capsys)
    assert code == 1
    bot = line(lines, "bot connector")
    assert bot.startswith("FAIL bot connector: Microsoft Entra ID at https://127.0.0.1:")
    assert "AADSTS7000215: Invalid client secret provided." in bot
    assert f"teams.app_password is not a current client secret of app {BOT_APP_ID}" in bot
    assert "Certificates & secrets" in bot
    # [graph] auth = "secret" is the same password: Graph refuses it too, and says the same
    assert line(lines, "graph token").startswith("FAIL graph token:") and "AADSTS7000215" in line(lines, "graph token")
    assert line(lines, "mailbox") == "FAIL mailbox: not checked: no Graph token (see 'graph token' above)"
    assert line(lines, "store").startswith("ok   store:")
    assert "not-the-secret" not in everything and "Traceback" not in everything
    assert deployment.graph.requests == []  # nothing reached Graph without a token


async def test_an_unreachable_store_fails_its_line_without_a_traceback(
    tmp_path: Path, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://reportbot:store-password@127.0.0.1:{port}/reportbot"
    code, lines, everything = await check(deployment.config_file(tmp_path, store=url), capsys)
    assert code == 1
    store = line(lines, "store")
    assert store.startswith(
        f"FAIL store: store.url: cannot open the store at postgresql+asyncpg://reportbot:***@127.0.0.1:{port}"
    )
    assert "Traceback" not in everything and "store-password" not in everything
    assert line(lines, "channel teams.review_channel").endswith("not checked: the store did not answer (see 'store')")
    assert line(lines, "bot connector").startswith("ok ") and line(lines, "archive").startswith("ok ")


def test_live_and_offline_together_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[msp]\nname = "N"\n')
    assert main(["config", "check", "--live", "--offline", "--config", str(path)]) == 2
    assert "give one of them" in capsys.readouterr().err


# -- the permission list: one place, derived from the configuration, mirrored by the docs -------------


def _config(**tables: object) -> Config:
    raw: dict[str, object] = {"msp": {"name": "N"}, "teams": {"app_id": BOT_APP_ID, "tenant_id": TENANT_ID}, **tables}
    return parse_config(raw, env={})


def test_the_required_permissions_follow_the_configuration() -> None:
    full = _config(graph={"mailbox": MAILBOX}, customers=[{"code": "ACME", "name": "A", "teams_channel": "19:a"}])
    assert [p.any_of for p in required_permissions(full)] == [
        ("Mail.Send",),
        ("Mail.ReadWrite",),
        ("Files.ReadWrite.All", "Sites.ReadWrite.All", "Sites.Selected"),
        ("Files.ReadWrite.All",),
        ("TeamsTab.ReadWrite.All",),
        ("ChannelMessage.Read.All",),
    ]
    google = _config(delivery={"email": "outbox", "archive": "outbox"}, graph={"mailbox": MAILBOX})
    assert required_permissions(google) == ()  # no customer channel, nothing through Graph
    assert required_permissions(_config()) == ()  # no Graph at all: approved PDFs filed locally
    rbac = _config(graph={"mailbox": MAILBOX, "mail_permissions": "exchange_rbac"})
    assert [p.exchange_role for p in required_permissions(rbac)][:2] == [
        "Application Mail.Send",
        "Application Mail.ReadWrite",
    ]


def test_the_docs_table_mirrors_the_list_and_the_rsc_names_are_the_manifests() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "delivery.md").read_text()
    section = docs.split("## Permissions (application, admin-consented)", 1)[1]
    table = section.split("| need | permission |", 1)[1].split("\n\n", 1)[0]
    rows = {r.split("|")[1].strip().replace("`", ""): r for r in table.splitlines()[2:]}
    full = _config(graph={"mailbox": MAILBOX}, customers=[{"code": "ACME", "name": "A", "teams_channel": "19:a"}])
    manifest = {name for name, _ in RSC_PERMISSIONS}
    for p in required_permissions(full):
        assert p.need in rows, f"docs/delivery.md has no row for {p.need!r}"
        for name in (*p.any_of, *p.rsc):
            assert f"`{name}`" in rows[p.need], f"{name} missing from the docs row {p.need!r}"
        assert set(p.rsc) <= manifest
    assert "bot.graph.permissions.required_permissions" in docs


def test_exchange_rbac_mail_permissions_must_not_also_be_consented_tenant_wide() -> None:
    config = _config(graph={"mailbox": MAILBOX, "mail_permissions": "exchange_rbac"})
    check = LiveCheck(config)
    send, _ = required_permissions(config)[:2]
    scoped = check._permission(send, {"Files.ReadWrite.All"})
    assert scoped.status == "note" and f"Test-ServicePrincipalAuthorization -Identity {BOT_APP_ID}" in scoped.message
    both = check._permission(send, {"Mail.Send"})
    assert both == Line("FAIL", "permission Mail.Send", both.message) and "restricts nothing" in both.message


def test_the_roles_are_read_from_the_tokens_payload_only() -> None:
    entra = FakeEntra(TENANT_ID, BOT_APP_ID, SECRET, roles={"https://graph.microsoft.com/.default": ["Mail.Send"]})
    token = entra._jwt("https://graph.microsoft.com/.default")
    assert _roles(token) == {"Mail.Send"}
    assert _roles("opaque-token") is None and _roles("a.!!!.c") is None
    entra.close()

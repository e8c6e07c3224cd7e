"""``@reportbot settings`` and ``@reportbot test CODE`` end to end, over the real service wiring.

``reportbot serve --sandbox`` as ``bot.cli`` runs it (``open_service`` + ``start_serving``: the
store, the engine with its PDF workers, the review workflow, the outbox delivery, the batch)
against the vendor simulators for ACME and GLOBEX, with Teams-shaped activities (tenant, team,
channel, ``from.aadObjectId``) signed and POSTed over real HTTP, and a loopback Bot Connector
that answers ``TeamsInfo.get_member`` from its ``members`` map.

Settings: a non-admin is refused (nothing stored); a 51st recipient and malformed addresses are
refused on the card with the field and the value; an admin saves recipients, a period, a disabled
customer and the MSP's name (a new version with who and what changed); a second admin's stale form
is refused with the current values; the next batch skips the disabled customer and drafts ACME
for its newest fortnight (the saved period), and the approved report goes to the saved recipients
with the saved MSP name; ``config check`` prints the overrides.

Test sends: ``test ACME`` and the card's button email the last complete week's report, marked
TEST, to the requester alone — one .eml, nothing archived or posted, no delivery recorded, the
week's draft untouched; an unknown code gets the unknown-customer card; a requester Teams has no
address for is told so.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from bot.admin_settings import overrides_in_force
from bot.cli import main
from cards.verbs import VERB_SETTINGS_SAVE, VERB_SETTINGS_TEST
from tests.bot import test_resume
from tests.bot.harness import (
    APPROVER,
    ENGINEER,
    REVIEW_CHANNEL,
    STRANGER,
    FakeConnector,
    TeamsUser,
    card_action,
    channel_message,
    installation_update,
    personal_message,
)
from tests.bot.test_resume import WEEK_DAY, Serving, Setup, serving, sql, until
from tests.bot.test_review_e2e import actions, card_of, text_of

setup = test_resume.setup  # the fixture: simulators for ACME and GLOBEX, a loopback Graph (unused here)

ADMIN = TeamsUser("29:1admin-mri", "Robin Admin", "aad-admin-0004")
ADMIN2 = TeamsUser("29:1admin2-mri", "Kim Admin", "aad-admin-0005")
ADMIN_EMAIL = "robin.admin@northwind.example"
PERIOD_END = "2026-11-16"


@pytest.fixture
async def sv(setup: Setup) -> AsyncIterator[Serving]:
    admins = frozenset({ADMIN.aad_object_id, ADMIN2.aad_object_id})
    async with serving(setup, sandbox=True, admins=admins) as running:
        r = await running.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        yield running


def outbox(setup: Setup) -> Path:
    return setup.out / "outbox"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def customer_mails(setup: Setup) -> list[Path]:
    """The outbox's customer report emails (not the MSP's own service-desk summaries the batch sends)."""
    return [p for p in files_under(outbox(setup) / "mail") if not p.name.startswith(("owner-", "manager-"))]


async def say(sv: Serving, connector: FakeConnector, activity: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a message; what the bot sent back in that conversation for it."""
    before = len(connector.calls)
    r = await sv.client.post(activity)
    assert r.status_code in (200, 201), r.text
    return [c.body for c in connector.calls[before:] if c.kind in ("send", "reply")]


async def settings_form(sv: Serving, connector: FakeConnector, user: TeamsUser = ADMIN) -> tuple[dict[str, Any], str]:
    """``@reportbot settings`` in the review channel: the card and the id of its message."""
    before = len(connector.calls)
    r = await sv.client.post(channel_message("settings", service_url=connector.service_url, user=user))
    assert r.status_code in (200, 201), r.text
    [call] = [c for c in connector.calls[before:] if c.kind in ("send", "reply") and card_of(c.body)]
    return card_of(call.body), call.result_id  # type: ignore[return-value]


def inputs(card: dict[str, Any]) -> dict[str, Any]:
    """Every Input.* of the card by id, with the value it shows (what Teams would submit)."""
    out: dict[str, Any] = {}

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if str(x.get("type", "")).startswith("Input.") and "id" in x:
                out[x["id"]] = x.get("value", "")
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(card)
    return out


async def submit(
    sv: Serving, connector: FakeConnector, card: dict[str, Any], message_id: str, user: TeamsUser, **changes: Any
) -> dict[str, Any]:
    """Press Save on ``card`` with ``changes`` typed into its inputs: the card the bot answers."""
    data = {**actions(card)[VERB_SETTINGS_SAVE]["data"], **inputs(card), **changes}
    r = await sv.client.post(
        card_action(VERB_SETTINGS_SAVE, data, service_url=connector.service_url, reply_to_id=message_id, user=user)
    )
    assert r.status_code == 200, r.text
    return r.json()["value"]  # type: ignore[no-any-return]


async def stored_versions(sv: Serving) -> list[tuple[Any, ...]]:
    return await sql(
        sv.service, "select version, saved_by_id, saved_by_name, changes from report_settings order by version"
    )


async def test_only_admins_see_and_save_settings_and_bad_values_are_refused_with_the_reason(
    setup: Setup, sv: Serving
) -> None:
    connector = setup.connector
    # a stranger in a personal chat and an engineer (not an admin) in the review channel: refused
    [refusal] = await say(sv, connector, personal_message("settings", service_url=connector.service_url, user=STRANGER))
    assert "Only the configured admins" in text_of(card_of(refusal))  # type: ignore[arg-type]
    assert "Input.Text" not in text_of(card_of(refusal))  # type: ignore[arg-type]
    engineer_card, _ = await settings_form(sv, connector, ENGINEER)
    assert "Only the configured admins" in text_of(engineer_card)

    card, message_id = await settings_form(sv, connector)
    fields = inputs(card)
    assert {"msp_name", "internal_reports.owners", "internal_reports.managers"} <= set(fields)
    for code in ("ACME", "GLOBEX"):
        for name in ("enabled", "period", "executive", "technical"):
            assert f"customers.{code}.{name}" in fields
    assert fields["customers.ACME.enabled"] == "true" and fields["customers.ACME.period"] == "file"  # the file's
    assert "Nothing saved yet" in text_of(card)
    assert set(actions(card)) == {VERB_SETTINGS_SAVE, VERB_SETTINGS_TEST}

    # a non-admin submitting an admin's form (a forwarded card, a crafted invoke): refused, nothing stored
    refused = await submit(sv, connector, card, message_id, ENGINEER, **{"customers.ACME.enabled": "false"})
    assert "Only the configured admins" in text_of(refused) and "nothing was saved" in text_of(refused)
    assert await stored_versions(sv) == []

    # a 51st recipient: refused on the card, naming the field; nothing stored
    many = "\n".join(f"person{i}@acme.example" for i in range(51))
    over = await submit(sv, connector, card, message_id, ADMIN, **{"customers.ACME.executive": many})
    assert "Not saved" in text_of(over)
    assert "customers.ACME.recipients.executive: 51 addresses; at most 50" in text_of(over)
    assert await stored_versions(sv) == []

    # malformed addresses and a header injection: each refused with the field and the (neutralised) value
    hostile = "ok@acme.example\nbad@@acme.example\nEvil<evil@attacker.example>\r\nBcc:all@attacker.example"
    bad = await submit(sv, connector, card, message_id, ADMIN, **{"customers.GLOBEX.executive": hostile})
    shown = text_of(bad)
    assert "customers.GLOBEX.recipients.executive: 'bad@@acme.example' is not a plain email address" in shown
    assert "'Evil\\\\<evil@attacker.example\\\\>'" in shown  # quoted, Markdown-escaped on the card
    assert "'Bcc:all@attacker.example'" in shown
    assert await stored_versions(sv) == []
    assert inputs(bad)["customers.GLOBEX.executive"] == ""  # the stored value, not the refused text

    # a customer's address among the internal reports' recipients (they name technicians): refused
    leak = await submit(
        sv,
        connector,
        card,
        message_id,
        ADMIN,
        **{"internal_reports.managers": "lead@northwind.example cto@acme.example"},
    )
    assert "Not saved" in text_of(leak)
    assert "internal\\\\_reports.managers: cto@acme.example is an address of customer ACME" in text_of(leak)
    assert await stored_versions(sv) == []

    # an invisible bidi override in the MSP name: refused
    name_bad = await submit(sv, connector, card, message_id, ADMIN, msp_name="Contoso\u202e")
    assert "msp\\\\_name: " in text_of(name_bad) and "control or invisible character" in text_of(name_bad)
    assert "\u202e" not in text_of(name_bad)
    assert await stored_versions(sv) == []


async def test_saved_settings_take_effect_in_the_next_run_and_are_versioned(
    setup: Setup, sv: Serving, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = setup.connector
    card, message_id = await settings_form(sv, connector)
    stale_copy = card  # ADMIN2 opened the same version-0 form meanwhile

    saved = await submit(
        sv,
        connector,
        card,
        message_id,
        ADMIN,
        msp_name="Contoso Managed Services",
        **{
            "customers.ACME.executive": "ceo@acme.example, it-lead@acme.example",
            "customers.ACME.period": "fortnight",
            "customers.GLOBEX.enabled": "false",
            "internal_reports.owners": "owner@northwind.example",
        },
    )
    assert "Saved as version 1 by Robin Admin" in text_of(saved)
    assert actions(saved)[VERB_SETTINGS_SAVE]["data"]["settings_version"] == 1
    [(version, by_id, by_name, changes)] = await stored_versions(sv)
    assert (version, by_id, by_name) == (1, ADMIN.aad_object_id, ADMIN.name)
    assert json.loads(changes) == {
        "msp_name": {"from": "", "to": "Contoso Managed Services"},
        "customers.ACME.recipients.executive": {"from": [], "to": ["ceo@acme.example", "it-lead@acme.example"]},
        "customers.ACME.period": {"from": "", "to": "fortnight"},  # "": the file's (week)
        "customers.GLOBEX.enabled": {"from": True, "to": False},
        "internal_reports.owners": {"from": [], "to": ["owner@northwind.example"]},
    }

    # two admins at once: the second one's form showed version 0 — refused with the current values
    stale = await submit(sv, connector, stale_copy, message_id, ADMIN2, msp_name="Kim's MSP")
    assert "Someone saved the settings meanwhile (version 1 is current); nothing was saved" in text_of(stale)
    assert inputs(stale)["msp_name"] == "Contoso Managed Services"
    assert actions(stale)[VERB_SETTINGS_SAVE]["data"]["settings_version"] == 1
    assert len(await stored_versions(sv)) == 1

    # config check prints the overrides in force
    lines = await overrides_in_force(setup.config.store.url)
    text = "\n".join(lines)
    assert "version 1 saved in Teams by Robin Admin (aad-admin-0004)" in text
    assert "customers.GLOBEX.enabled = false" in text
    assert "customers.ACME.recipients.executive = ceo@acme.example, it-lead@acme.example" in text
    assert "customers.ACME.period = fortnight" in text

    # the next batch: GLOBEX (disabled) skipped; ACME drafted for its newest fortnight that has ended
    # fortnights end on Mondays 14 days apart from Mon 1 Jan 2024: WEEK_DAY's week ends Mon 16 Nov 2026,
    # which is one (1050 days = 75 x 14 after the anchor): the fortnight Mon 2 Nov - Sun 15 Nov
    result = await sv.service.batch.run(WEEK_DAY)
    assert sorted(result.drafted) == ["ACME"]
    assert await sql(sv.service, "select customer_code, period_kind, period_end from drafts") == [
        ("ACME", "fortnight", "2026-11-16")
    ]
    [(draft_id, draft_version, card_id)] = await sql(sv.service, "select id, version, card_activity_id from drafts")
    review_posts = [c for c in connector.calls if c.kind == "send" and card_of(c.body) and "ACME" in text_of(c.body)]
    assert any("Fortnight of Mon 2 Nov \u2013 Sun 15 Nov 2026" in text_of(c.body) for c in review_posts)
    assert (setup.out / "ACME" / "ACME-fortnightly-2026-11-16.pdf").exists()

    # approved: the email goes to the saved executive recipients, with the saved MSP name
    r = await sv.client.post(
        card_action(
            "approve",
            {"draft_id": draft_id, "version": draft_version, "customer": "ACME"},
            service_url=connector.service_url,
            reply_to_id=card_id,
            user=APPROVER,
        )
    )
    assert r.status_code == 200, r.text

    async def delivered() -> bool:
        return await sql(sv.service, "select state from drafts where id = :d", d=draft_id) == [("delivered",)]

    # after the roll-up the MSP's own summaries went out: the owner report to the saved owners; the
    # manager report to nobody (none saved, and this set-up's file has none)
    owner = email.message_from_bytes((outbox(setup) / "mail" / "owner-2026-11-16.eml").read_bytes())
    assert owner["To"] == "owner@northwind.example"
    assert not setup.config.internal_reports.managers
    assert not (outbox(setup) / "mail" / "manager-2026-11-16.eml").exists()

    await until(delivered, 60, "ACME's delivery")
    [eml] = [f for f in files_under(outbox(setup) / "mail") if f.name.startswith("ACME-")]
    assert eml.name == "ACME-fortnightly-2026-11-16.eml"
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "ceo@acme.example, it-lead@acme.example"
    assert msg["Cc"] is None  # the file's cto_email / account_owner_email are not used any more
    note = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Contoso Managed Services" in note
    [attachment] = list(msg.iter_attachments())
    pdf_text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(attachment.get_content())).pages)
    assert "Prepared by Contoso Managed Services" in pdf_text
    assert "Fortnight of Mon 2 Nov" in pdf_text and "15 Nov 2026" in pdf_text

    # and `reportbot config check` itself prints them (a config file with the same store)
    cfg = setup.out.parent / "check.toml"
    cfg.write_text(f'[msp]\nname = "Northwind"\n[store]\nurl = "{setup.config.store.url}"\n', encoding="utf-8")
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["config", "check", "--config", str(cfg), "--offline"]) == 0
    printed = capsys.readouterr().out
    assert "settings: version 1 saved in Teams by Robin Admin" in printed
    assert "customers.GLOBEX.enabled = false" in printed


async def test_a_test_report_goes_to_the_requester_only_and_is_not_the_weeks_delivery(
    setup: Setup, sv: Serving
) -> None:
    connector = setup.connector
    connector.members[ADMIN.id] = {
        "id": ADMIN.id,
        "name": ADMIN.name,
        "aadObjectId": ADMIN.aad_object_id,
        "email": ADMIN_EMAIL,
        "userPrincipalName": "robin@northwind.onmicrosoft.example",
    }
    result = await sv.service.batch.run(WEEK_DAY)  # the week's real drafts exist: the test must not touch them
    assert sorted(result.drafted) == ["ACME", "GLOBEX"]
    drafts_before = await sql(sv.service, "select id, version, state, updated_at from drafts order by customer_code")

    said = await say(sv, connector, channel_message("test ACME", service_url=connector.service_url, user=ADMIN))
    assert any("Making the TEST report of ACME" in (b.get("text") or "") for b in said)
    assert any(ADMIN_EMAIL in (b.get("text") or "") for b in said)
    await sv.service.bot.wait_background()
    told = [c.body.get("text") or "" for c in connector.calls if c.kind in ("send", "reply")]
    assert any("TEST report of ACME (Week of Mon 9 Nov" in t and f"sent to {ADMIN_EMAIL} only" in t for t in told)

    # exactly one customer report .eml, to the requester alone; nothing archived, nothing posted
    # (besides it: the MSP's own service-desk summaries, which the batch delivered after the roll-up)
    [eml] = customer_mails(setup)
    assert eml.name == f"ACME-weekly-{PERIOD_END}-TEST.eml"
    assert files_under(outbox(setup) / "sharepoint") == [] and files_under(outbox(setup) / "channels") == []
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert msg["To"] == ADMIN_EMAIL and msg["Cc"] is None and msg["Bcc"] is None and msg["Reply-To"] is None
    assert str(msg["Subject"]).startswith("TEST \u2014 ")
    assert "TEST" in msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == f"ACME-weekly-{PERIOD_END}-TEST.pdf"
    pages = PdfReader(io.BytesIO(attachment.get_content())).pages
    assert "TEST \u2014 WEEKLY SERVICE REPORT" in pages[0].extract_text()

    # never the week's delivery: no deliveries row, the drafts as they were, no channel post by the bot
    assert await sql(sv.service, "select count(*) from deliveries where draft_id not like 'internal-%'") == [(0,)]
    assert await sql(sv.service, "select id, version, state, updated_at from drafts order by customer_code") == (
        drafts_before
    )
    assert not [c for c in connector.calls if c.conversation_id and "acme-shared" in c.conversation_id]

    # the settings card's button does the same for GLOBEX (answered with the card at once)
    card, message_id = await settings_form(sv, connector)
    button = next(
        a for a in _all_actions(card) if a.get("verb") == VERB_SETTINGS_TEST and a["data"] == {"customer": "GLOBEX"}
    )
    r = await sv.client.post(
        card_action(
            VERB_SETTINGS_TEST, button["data"], service_url=connector.service_url, reply_to_id=message_id, user=ADMIN
        )
    )
    assert r.status_code == 200, r.text
    assert "Making the TEST report of GLOBEX" in text_of(r.json()["value"])
    await sv.service.bot.wait_background()
    mails = customer_mails(setup)
    assert [p.name for p in mails] == [f"ACME-weekly-{PERIOD_END}-TEST.eml", f"GLOBEX-weekly-{PERIOD_END}-TEST.eml"]
    globex = email.message_from_bytes(mails[1].read_bytes(), policy=email.policy.default)
    assert globex["To"] == ADMIN_EMAIL
    assert files_under(outbox(setup) / "sharepoint") == [] and files_under(outbox(setup) / "channels") == []
    assert await sql(sv.service, "select count(*) from deliveries where draft_id not like 'internal-%'") == [(0,)]

    # an unknown code: the unknown-customer card; nothing made
    [unknown] = await say(sv, connector, channel_message("test ACMEE", service_url=connector.service_url, user=ADMIN))
    assert "Unknown customer" in text_of(card_of(unknown)) and "ACME" in text_of(card_of(unknown))  # type: ignore[arg-type]

    # a requester Teams has no address for (the connector does not know the member): told, nothing sent
    said = await say(sv, connector, personal_message("test ACME", service_url=connector.service_url, user=ADMIN2))
    assert any("Teams has no email address for you" in (b.get("text") or "") for b in said)
    await sv.service.bot.wait_background()
    assert len(customer_mails(setup)) == 2

    # someone neither admin nor engineer: refused
    said = await say(sv, connector, personal_message("test ACME", service_url=connector.service_url, user=STRANGER))
    assert any("Only the configured admins and engineers" in (b.get("text") or "") for b in said)
    assert REVIEW_CHANNEL.channel_id  # (the review channel is where the commands above were typed)


def _all_actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("type") == "Action.Execute":
                out.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(card)
    return out

"""The MSP's own service-desk summaries, delivered: emailed to ``[internal_reports]`` and posted in
#weekly-reports after the roll-up, once per week.

The real service wiring (``open_service`` + ``start_serving``) against the vendor simulators (ACME
and GLOBEX on ConnectWise), a loopback Microsoft Graph (the mailbox: every email is counted there)
and a loopback Bot Connector that the app's installation event (Teams' JSON) points at. The
Monday batch drafts the week, posts the roll-up, then the owner and manager reports go to their
addresses and a card with both PDFs' links goes to the roll-up channel. A batch re-run, a second
life of the service, and a crash during the post send nothing twice; an address of a customer
stops that email; ``reportbot run --internal --deliver`` does the same into the outbox.
"""

from __future__ import annotations

import email
import json
from collections.abc import AsyncIterator
from datetime import date
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.admin_settings import SettingsStore
from bot.internal_delivery import delivery_id
from reporting.config import ConfigError, InternalReportsConfig, parse_config
from reporting.overrides import ReportSettings
from tests.bot.harness import ROLLUP_CHANNEL, FakeConnector, FakeOpenIdServer, installation_update
from tests.bot.test_resume import MAILBOX, WEEK_DAY, Setup, make_setup, serving, sql, until
from tests.bot.test_review_e2e import card_of, text_of

OWNERS = ("owner@northwind.example", "md@northwind.example")
MANAGERS = ("service-desk-manager@northwind.example",)
WEEK_END = date(2026, 11, 16)
DID = delivery_id(WEEK_END)


@pytest.fixture
async def setup(tmp_path: Path, oidc: FakeOpenIdServer, connector: FakeConnector) -> AsyncIterator[Setup]:
    async with make_setup(tmp_path, oidc, connector, f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as s:
        lists = InternalReportsConfig(owners=OWNERS, managers=MANAGERS)
        s.config = s.config.model_copy(update={"internal_reports": lists})
        yield s


def summaries_sent(setup: Setup) -> list[dict[str, Any]]:
    return [m for m in setup.graph.sent(MAILBOX) if "service desk" in m["subject"]]


def to_of(message: dict[str, Any]) -> list[str]:
    return [r["emailAddress"]["address"] for r in message.get("toRecipients") or []]


def summary_posts(connector: FakeConnector, kind: str = "send") -> list[Any]:
    return [
        c
        for c in connector.calls
        if c.kind == kind and card_of(c.body) and "Service desk summary" in text_of(card_of(c.body))  # type: ignore[arg-type]
    ]


async def test_the_batch_delivers_the_summaries_once_after_the_rollup(setup: Setup) -> None:
    async with serving(setup) as sv:
        r = await sv.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        result = await sv.service.batch.run(WEEK_DAY)
        assert result.rollup_posted and result.internal_done

        # the emails: owner report to the owners, manager report to the managers, nothing else
        sent = summaries_sent(setup)
        by_name = {m["_attachments"][0]["name"]: m for m in sent}
        assert sorted(by_name) == ["manager-2026-11-16.pdf", "owner-2026-11-16.pdf"]
        assert to_of(by_name["owner-2026-11-16.pdf"]) == list(OWNERS)
        assert to_of(by_name["manager-2026-11-16.pdf"]) == list(MANAGERS)
        for m in sent:
            assert not m.get("ccRecipients") and not m.get("bccRecipients")
            assert m["subject"].startswith("MSP-internal — Northwind Managed Services: service desk")
            assert "Week of Mon 9 Nov – Sun 15 Nov 2026" in m["subject"]
            assert "not for customers" in m["body"]["content"]
        customers = {c.cto_email for c in setup.config.customers} | {
            c.account_owner_email for c in setup.config.customers
        }
        assert all(not set(to_of(m)) & customers for m in sent)
        owner_pdf = by_name["owner-2026-11-16.pdf"]["_attachments"][0]["_content"]
        manager_pdf = by_name["manager-2026-11-16.pdf"]["_attachments"][0]["_content"]
        assert owner_pdf.startswith(b"%PDF") and manager_pdf != owner_pdf

        # the post: in the roll-up channel, after the roll-up, with the headline and both PDFs
        sends = [c for c in setup.connector.calls if c.kind == "send"]
        rollup_at = next(i for i, c in enumerate(sends) if "Weekly roll-up" in text_of(card_of(c.body) or {}))
        [post] = summary_posts(setup.connector)
        assert sends.index(post) > rollup_at
        assert post.conversation_id == ROLLUP_CHANNEL.channel_id
        card = card_of(post.body)
        assert card is not None
        assert "Tickets opened / closed" in text_of(card) and "MSP-internal" in text_of(card)
        assert "Owner report emailed: sent to owner@northwind.example, md@northwind.example" in text_of(card)
        links = {a["title"]: a["url"] for a in card["actions"]}
        assert sorted(links) == ["Manager report (PDF)", "Owner report (PDF)"]
        for title, pdf in (("Owner report (PDF)", owner_pdf), ("Manager report (PDF)", manager_pdf)):
            url = links[title]
            assert url.startswith(f"{sv.service.settings.public_url}/internal/")
            got = await sv.client.get(url)
            assert got.status_code == 200 and got.content == pdf  # the very PDF emailed, from the store
            # an internal link is no customer link, and the other way round
            assert (await sv.client.get(url.replace("/internal/", "/reports/"))).status_code == 403
        assert await sql(
            sv.service, "select step, status from deliveries where draft_id = :d order by step", d=DID
        ) == [("manager_email", "done"), ("owner_email", "done"), ("post", "done")]

        # the batch again: the week is finished, nothing is sent or posted again
        calls = len(setup.connector.calls)
        again = await sv.service.batch.run(WEEK_DAY)
        assert not again.internal_done and len(summaries_sent(setup)) == 2
        assert summary_posts(setup.connector) == [post] and len(setup.connector.calls) == calls

        # even asked directly (a catch-up, the CLI on the same store): delivered before, nothing done
        assert sv.service.internal is not None
        steps = await sv.service.internal.run(sv.service.review.engine.period_for(setup.config.customers[0], WEEK_DAY))
        assert {s.status for s in steps.values()} == {"done"} and len(summaries_sent(setup)) == 2

    # a second life of the service on the same store: its batch finds the week done
    async with serving(setup) as sv:
        await sv.service.batch.run(WEEK_DAY)
        await sv.service.resumer.wait()
    assert len(summaries_sent(setup)) == 2 and len(summary_posts(setup.connector)) == 1


async def test_a_crash_during_the_post_is_resumed_without_a_second_email_or_post(setup: Setup) -> None:
    async with serving(setup) as sv:
        r = await sv.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        await sv.service.batch.run(WEEK_DAY)
        [post] = summary_posts(setup.connector)
        # as after a crash between posting the card and recording it: the step left running
        async with sv.service.store.engine.begin() as conn:
            await conn.execute(
                text("update deliveries set status = 'running' where draft_id = :d and step = 'post'"), {"d": DID}
            )
    since = len(setup.connector.calls)
    async with serving(setup, first_delay=0.2) as sv:  # the next start resumes it in the background
        await until(
            lambda: _post_done(sv),
            60,
            "the resumed post of the service desk summaries",
        )
        await sv.service.resumer.wait()
    assert len(summaries_sent(setup)) == 2  # the emails were done: not sent again
    edits = [c for c in setup.connector.calls[since:] if c.kind == "update" and c.activity_id == post.result_id]
    assert edits and not [c for c in setup.connector.calls[since:] if c.kind == "send"]  # edited, not posted again
    assert "Service desk summary" in text_of(card_of(edits[-1].body) or {})


async def _post_done(sv: Any) -> bool:
    return bool(
        await sql(
            sv.service, "select 1 from deliveries where draft_id = :d and step = 'post' and status = 'done'", d=DID
        )
    )


async def test_an_address_of_a_customer_stops_that_email(setup: Setup) -> None:
    async with serving(setup) as sv:
        # saved in the store as if by an admin's card (the card itself refuses it, see below)
        store = await SettingsStore.open(sv.service.store.engine)
        await store.save(0, ReportSettings(managers=("cto@acme.example", "lead@northwind.example")), "id", "Admin")
        r = await sv.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        await sv.service.batch.run(WEEK_DAY)
        [(status, detail)] = await sql(
            sv.service, "select status, detail from deliveries where draft_id = :d and step = 'manager_email'", d=DID
        )
    assert status == "failed" and "cto@acme.example (ACME)" in detail and "never go to a customer" in detail
    sent = summaries_sent(setup)
    assert [to_of(m) for m in sent] == [list(OWNERS)]  # the owner report went; the manager report to nobody
    [post] = summary_posts(setup.connector)
    assert "Manager report not emailed: not sent: cto@acme.example (ACME)" in text_of(card_of(post.body) or {})


def test_the_config_refuses_customer_addresses_and_long_lists() -> None:
    base = {
        "msp": {"name": "M"},
        "customers": [{"code": "ACME", "name": "Acme", "domain": "acme.example", "cto_email": "boss@acme.io"}],
    }
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "internal_reports": {"owners": ["boss@acme.io"], "managers": ["x@eu.acme.example"]}})
    assert "internal_reports.owners[0]: boss@acme.io is an address of customer ACME" in str(err.value)
    assert "internal_reports.managers[0]: x@eu.acme.example is an address of customer ACME" in str(err.value)
    with pytest.raises(ConfigError, match=r"internal_reports.managers: 51 addresses; at most 50"):
        parse_config({**base, "internal_reports": {"managers": [f"m{i}@msp.example" for i in range(51)]}})
    with pytest.raises(ConfigError, match=r"internal_reports.owners: item 0: 'Boss <b@msp.example>'"):
        parse_config({**base, "internal_reports": {"owners": ["Boss <b@msp.example>"]}})
    ok = parse_config({**base, "internal_reports": {"owners": ["a@msp.example", "A@msp.example"]}})
    assert ok.internal_reports.owners == ("a@msp.example",)


# --------------------------------------------------------------------------- the CLI, into the outbox


def _eml(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_run_internal_deliver_emails_and_posts_into_the_outbox_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    out = tmp_path / "out"
    assert main(["run", "--internal", "--deliver", "--week", "2026-11-10", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "owner_email: done: sent to owner@northwind.example" in said
    assert "manager_email: done: sent to service-desk-manager@northwind.example" in said
    assert "post: done: posted to the outbox" in said
    owner = _eml(out / "outbox" / "mail" / "owner-2026-11-16.eml")
    manager = _eml(out / "outbox" / "mail" / "manager-2026-11-16.eml")
    assert owner["To"] == "owner@northwind.example" and manager["To"] == "service-desk-manager@northwind.example"
    [attached] = list(manager.iter_attachments())
    assert attached.get_payload(decode=True) == (out / "internal" / "manager-2026-11-16.pdf").read_bytes()
    post = json.loads((out / "outbox" / "internal-2026-11-16.json").read_text())
    assert post["channel"] == "rollup" and post["files"]["owner"].endswith("owner-2026-11-16.pdf")
    assert "Service desk summary" in json.dumps(post["card"])
    assert not list((out / "outbox").glob("channels/*"))  # nothing in any customer's channel
    first = {p.name: p.stat().st_mtime_ns for p in (out / "outbox").rglob("*") if p.is_file()}

    assert main(["run", "--internal", "--deliver", "--week", "2026-11-10", "--out", str(out)]) == 0
    assert "delivered before; nothing sent again" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "outbox").rglob("*") if p.is_file()} == first

    assert main(["run", "ACME", "--deliver", "--out", str(out)]) == 2
    assert "--deliver goes with --internal" in capsys.readouterr().err


def test_the_email_body_names_the_audience_and_neutralises_vendor_text() -> None:
    from bot.internal_delivery import InternalSummary, internal_letter
    from bot.outbox import html_to_text
    from reporting.internal import Headline

    h = Headline(
        "Northwind", WEEK_END, "Week of Mon 9 Nov – Sun 15 Nov 2026 (Europe/London)", 2, 1, 10, 9, 3,
        90.0, 95.0, 90.0, 0.5, 4.0, ("Category <script>x</script>\u202e is big",),
    )  # fmt: skip
    mail = internal_letter(
        InternalSummary(h, {"owner": b"%PDF", "manager": b"%PDF"}), "manager", MANAGERS, "Northwind", "#1F4E79"
    )
    assert mail.attachment_name == "manager-2026-11-16.pdf" and mail.to.to == MANAGERS
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html and "\u202e" not in mail.html
    words = " ".join(html_to_text(mail.html).split())
    assert "for the managers at Northwind only; not for customers. It names technicians." in words
    assert "1 could not be read" in words and "SLA attainment (target 90 %): 95.0 %" in words

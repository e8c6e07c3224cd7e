"""The customer email's "View online" and "Download PDF" links, end to end.

The real service wiring (``open_service`` + ``start_serving``) against the vendor simulators, a
loopback Graph (channel and archive) and Bot Connector, with ``[delivery] email = "outbox"``, so
the email is an .eml file a test can open: the approver's click → the final PDF → the email. The
email's two links are then fetched from the running app over loopback HTTP: the same bytes as
the attachment, and the report as a web page. Later changes of the draft (a failed delivery
retried from the card: version moves on, the final PDF rendered again) do not break them; a new
final render with other content supersedes them (410); an edited, forged, other-kind or expired
link is refused with a page, never a traceback.
"""

from __future__ import annotations

import email
import hashlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from bot.links import CUSTOMER_DOMAIN, ArtefactLinkSigner, ArtefactRef, LinkError, LinkSigner, ReportLinks
from bot.outbox import cover_note, html_to_text
from bot.published import CustomerLinks
from cards.verbs import VERB_RETRY
from reporting.config import DeliveryConfig
from reporting.drafts import DraftState
from reporting.models import Commentary
from tests.bot.harness import APPROVER, LINK_SECRET, FakeConnector, FakeOpenIdServer, card_action, installation_update
from tests.bot.test_resume import WEEK_DAY, Setup, approve, make_setup, serving, sql, state_is, until

NAME = "ACME-weekly-2026-11-16"
COMMENTARY = "Leeds WAN fault closed with the ISP on Thursday."


@pytest.fixture
async def setup(tmp_path: Path, oidc: FakeOpenIdServer, connector: FakeConnector) -> AsyncIterator[Setup]:
    async with make_setup(tmp_path, oidc, connector, f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as s:
        s.config = s.config.model_copy(update={"delivery": DeliveryConfig(email="outbox")})
        yield s


def parts(eml: Path) -> tuple[str, str, bytes]:
    msg = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    html_part, text_part = msg.get_body(("html",)), msg.get_body(("plain",))
    assert html_part is not None and text_part is not None
    [attachment] = list(msg.iter_attachments())
    text = text_part.get_content().replace("\r\n", "\n")
    return html_part.get_content(), text, attachment.get_payload(decode=True)


def links_in(html: str) -> dict[str, str]:
    return {text: href for href, text in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', html)}


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _token(url: str) -> str:
    return url.split("/")[-2]


async def test_the_email_links_serve_the_delivered_report_and_survive_later_changes(setup: Setup) -> None:
    async with serving(setup, report_links=True) as sv:
        r = await sv.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        result = await sv.service.batch.run(WEEK_DAY)
        assert "ACME" in result.drafted
        [(draft_id, version, card_id)] = await sql(
            sv.service, "select id, version, card_activity_id from drafts where customer_code = 'ACME'"
        )
        r = await sv.client.post(
            card_action(
                "approve",
                {"draft_id": draft_id, "version": version, "customer": "ACME", "commentary": COMMENTARY},
                service_url=setup.connector.service_url,
                reply_to_id=card_id,
                user=APPROVER,
            )
        )
        assert r.status_code == 200, r.text
        await until(lambda: state_is(sv.service, draft_id, "delivered"), 90, "ACME's delivery")

        eml = setup.out / "outbox" / "mail" / f"{NAME}.eml"
        html, text, attached = parts(eml)
        links = links_in(html)
        view, pdf = links["View online"], links["Download PDF"]
        base = sv.service.settings.public_url
        assert (
            view == f"{base}/reports/{_token(view)}/{NAME}.html" and pdf == f"{base}/reports/{_token(pdf)}/{NAME}.pdf"
        )
        # the plain-text part carries the same two links, and both parts name the organisation and dates
        assert f"\nView online <{view}>\nDownload PDF <{pdf}>\n" in text
        for part in (html_to_text(html), text):
            assert "Organisation: Acme Manufacturing" in " ".join(part.split())
            assert "Period: Mon 9 Nov – Sun 15 Nov 2026" in " ".join(part.split())
        assert "work until" in text

        # the PDF link: the attachment's bytes, from the store (this instance's --out copy removed)
        (setup.out / "ACME" / f"{NAME}.pdf").unlink()
        got = await sv.client.get(path_of(pdf))
        assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
        assert got.content == attached
        assert got.headers["content-disposition"] == f'inline; filename="{NAME}.pdf"'
        [(stored_sha,)] = await sql(
            sv.service, "select sha256 from artefacts where customer_code = 'ACME' and name = 'pdf'"
        )
        assert hashlib.sha256(attached).hexdigest() == stored_sha
        # the web page: the final report (the approver's commentary is in it), fetching nothing
        page = await sv.client.get(path_of(view))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert "Acme Manufacturing" in page.text and COMMENTARY in page.text
        assert "Week of Mon 9 Nov – Sun 15 Nov 2026" in page.text

        # a later state change: the delivery marked failed and retried from the card — the draft's
        # version moves on (its review-card links die), the final PDF is rendered again
        [(v_before,)] = await sql(sv.service, "select version from drafts where id = :d", d=draft_id)
        draft_link = LinkSigner.from_settings(sv.service.settings).url(draft_id, v_before, f"{NAME}.pdf")
        await sv.service.state.set_state(draft_id, DraftState.FAILED, reason="Archive: a test")
        [(v_failed,)] = await sql(sv.service, "select version from drafts where id = :d", d=draft_id)
        r = await sv.client.post(
            card_action(
                VERB_RETRY,
                {"draft_id": draft_id, "version": v_failed, "customer": "ACME"},
                service_url=setup.connector.service_url,
                reply_to_id=card_id,
                user=APPROVER,
            )
        )
        assert r.status_code == 200, r.text
        await until(lambda: state_is(sv.service, draft_id, "delivered"), 90, "the retried delivery")
        await sv.service.review.wait_background()
        [(v_after,)] = await sql(sv.service, "select version from drafts where id = :d", d=draft_id)
        assert v_after > v_before
        assert (await sv.client.get(path_of(draft_link))).status_code == 404  # the review card's link is stale
        again = await sv.client.get(path_of(pdf))
        assert again.status_code == 200 and again.content == attached  # the emailed one is not
        assert (await sv.client.get(path_of(view))).status_code == 200
        assert len(list((setup.out / "outbox" / "mail").glob("*.eml"))) == 1

        # refused links: a page, with the status that says why
        token = _token(pdf)
        payload, mac = token.split(".")
        edited = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}"
        forged = ArtefactLinkSigner(
            b"another-secret-of-32-bytes-xxxxx", 3600, base, domain=CUSTOMER_DOMAIN, prefix="/reports"
        ).url(ArtefactRef("ACME", date(2026, 11, 16), "pdf", stored_sha), f"{NAME}.pdf")
        draft_kind = LinkSigner.from_settings(sv.service.settings).token(draft_id, v_after)  # another kind of link
        expired = ArtefactLinkSigner.customer(sv.service.settings, now=lambda: time.time() - 31 * 86400).url(
            ArtefactRef("ACME", date(2026, 11, 16), "pdf", stored_sha), f"{NAME}.pdf"
        )
        for path, status, words in (
            (f"/reports/{edited}/{NAME}.pdf", 403, "This link is not valid"),
            (path_of(forged), 403, "This link is not valid"),
            (f"/reports/{draft_kind}/{NAME}.pdf", 403, "This link is not valid"),
            (f"/reports/{token[:20]}/{NAME}.html", 403, "This link is not valid"),
            (f"/files/{token}/{NAME}.pdf", 403, "forbidden"),  # and an email link is no draft link
            (path_of(expired), 410, "This link has expired"),
        ):
            refused = await sv.client.get(path)
            assert refused.status_code == status, (path, refused.text)
            assert words in refused.text and "Traceback" not in refused.text

        # the week rendered again with other content: the emailed link is superseded, and says so
        report = await sv.service.review.report(await sv.service.state.get(draft_id))  # type: ignore[arg-type]
        changed = replace(report, commentary=Commentary("A corrected note.", "Sam", datetime.now(UTC)))
        await sv.service.review.engine.write(changed, setup.out, kind="final")
        for url in (pdf, view):
            gone = await sv.client.get(path_of(url))
            assert gone.status_code == 410 and "This report has been replaced" in gone.text


async def test_without_a_public_url_the_email_has_no_links_and_reads_well(setup: Setup) -> None:
    async with serving(setup) as sv:  # report_links False: [teams] public_url not configured
        r = await sv.client.post(installation_update(service_url=setup.connector.service_url))
        assert r.status_code in (200, 201), r.text
        await sv.service.batch.run(WEEK_DAY)
        [(draft_id, version, card_id)] = await sql(
            sv.service, "select id, version, card_activity_id from drafts where customer_code = 'ACME'"
        )
        await approve(sv.client, setup, draft_id, version, card_id)
        await until(lambda: state_is(sv.service, draft_id, "delivered"), 90, "ACME's delivery")
    html, text, _ = parts(setup.out / "outbox" / "mail" / f"{NAME}.eml")
    assert "View online" not in html and "/reports/" not in html and "http" not in text
    assert "in the attached PDF (ACME-weekly-2026-11-16.pdf)." in " ".join(text.split())
    assert "Organisation: Acme Manufacturing" in " ".join(text.split())


# --------------------------------------------------------------------------- the signer, the note


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


REF = ArtefactRef("ACME", date(2026, 11, 16), "pdf", "ab" * 32)


def test_artefact_links_round_trip_expire_and_keep_to_their_domain() -> None:
    clock = Clock(1_000_000)
    signer = ArtefactLinkSigner(
        LINK_SECRET, 3600, "https://bot.example.com/", domain=CUSTOMER_DOMAIN, prefix="reports", now=clock
    )
    links = signer.links(REF, "ACME-weekly-2026-11-16.pdf")
    assert links.pdf_url.startswith("https://bot.example.com/reports/") and links.pdf_url.endswith(
        "/ACME-weekly-2026-11-16.pdf"
    )
    assert links.view_url.endswith("/ACME-weekly-2026-11-16.html") and _token(links.view_url) == _token(links.pdf_url)
    assert links.expires == datetime.fromtimestamp(1_003_600, UTC)
    assert signer.verify(_token(links.pdf_url)) == REF
    other_domain = ArtefactLinkSigner(
        LINK_SECRET,
        3600,
        "https://bot.example.com/",
        domain=b"reportbot/internal-summary-link/v1\x00",
        prefix="internal",
        now=clock,
    )
    with pytest.raises(LinkError, match="tampered"):
        other_domain.verify(_token(links.pdf_url))
    with pytest.raises(LinkError, match="tampered"):  # a draft link's token, same secret
        signer.verify(LinkSigner(LINK_SECRET, 3600, "https://bot.example.com", now=clock).token("d1", 1))
    clock.t += 3600
    with pytest.raises(LinkError, match="expired"):
        signer.verify(_token(links.pdf_url))
    with pytest.raises(ValueError):
        ArtefactLinkSigner(LINK_SECRET, 3600, "x", domain=b"no-terminator", prefix="reports")
    with pytest.raises(ValueError):
        signer.links(replace(REF, sha256="not-a-sha"))


def test_a_test_send_carries_no_links_even_when_a_delivery_would(tmp_path: Path) -> None:
    from bot.delivery import Parcel
    from connectors.sandbox.config import sandbox_config
    from connectors.sandbox.dataset import SandboxDataset
    from tests.cards.factories import make_report

    config = sandbox_config(SandboxDataset(date(2026, 11, 16)), f"sqlite:///{tmp_path / 'h.db'}")
    report = make_report()
    signer = ArtefactLinkSigner(LINK_SECRET, 86400, "https://bot.example.com", domain=CUSTOMER_DOMAIN, prefix="reports")
    make = CustomerLinks(signer)
    base = Parcel("d1", "ACME", config.customer("ACME"), report.period.end_date, report, b"%PDF-1.7", "Sam")
    delivered = replace(base, links=make(base))
    assert isinstance(delivered.links, ReportLinks)
    assert "View online" in cover_note(config, delivered)
    test = replace(base, test=True, recipients=("sam@northwind.example",))
    assert make(test) is None
    forced = replace(test, links=delivered.links)  # even a parcel that carries links: none in a test's note
    note = cover_note(config, forced)
    assert "TEST" in note and "View online" not in note and "/reports/" not in note

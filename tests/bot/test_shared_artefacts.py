"""Two bot instances on one PostgreSQL store, each with its own ``--out`` folder: what one renders,
the other serves and delivers.

The real service wiring twice (``open_service`` + ``start_serving``, as two ``reportbot serve``
processes run it, here on one loop), against the vendor simulators, a loopback Microsoft Graph and
Bot Connector, with Teams-shaped activities. Instance A drafts the week; the approver's click
reaches instance B, which renders the final PDF and delivers it through Graph; the signed link of
the PDF works on both. Then a delivery A started and dropped mid-way (a crash) is resumed by B,
whose ``--out`` never held that PDF: it comes from the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.links import LinkSigner
from tests.bot.harness import FakeConnector, FakeOpenIdServer, installation_update
from tests.bot.test_resume import (
    MAILBOX,
    WEEK_DAY,
    Setup,
    approve,
    crash_mid_delivery,
    make_setup,
    serving,
    sql,
    state_is,
    until,
)
from tests.bot.test_review_e2e import card_of, text_of
from tests.scheduler import test_two_processes

pytestmark = pytest.mark.postgres
database = test_two_processes.database  # the fixture: a fresh PostgreSQL database, dropped afterwards


@pytest.fixture
async def shared(
    tmp_path: Path, oidc: FakeOpenIdServer, connector: FakeConnector, database: str
) -> AsyncIterator[Setup]:
    async with make_setup(tmp_path, oidc, connector, database) as s:
        yield s


async def test_a_draft_made_on_one_instance_is_served_and_delivered_by_the_other(shared: Setup) -> None:
    out_a, out_b = shared.out.parent / "out-a", shared.out.parent / "out-b"
    async with serving(shared, out=out_a) as a, serving(shared, out=out_b) as b:
        r = await a.client.post(installation_update(service_url=shared.connector.service_url))
        assert r.status_code in (200, 201), r.text
        result = await a.service.batch.run(WEEK_DAY)
        assert sorted(result.drafted) == ["ACME", "GLOBEX"]
        [(draft_id, version, card_id)] = await sql(
            a.service, "select id, version, card_activity_id from drafts where customer_code = 'ACME'"
        )
        name = "ACME-weekly-2026-11-16.pdf"
        assert (out_a / "ACME" / name).exists() and not (out_b / "ACME").exists()

        # the draft's signed link, on either instance
        token = LinkSigner.from_settings(a.service.settings).token(draft_id, version)
        on_a = await a.client.http.get(f"/files/{token}/{name}")
        on_b = await b.client.http.get(f"/files/{token}/{name}")
        assert on_a.status_code == on_b.status_code == 200, (on_a.text, on_b.text)
        assert on_b.content == on_a.content == (out_a / "ACME" / name).read_bytes()
        # and as a web page, rendered from the stored report by whichever instance is asked
        for inst in (a, b):
            page = await inst.client.http.get(f"/view/{token}/ACME-weekly-2026-11-16.html")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"].startswith("default-src 'none'")
            assert "Acme Manufacturing" in page.text and page.text.count("<svg") >= 3
        assert (await a.client.http.get(f"/view/{token[:-2]}xx/x.html")).status_code == 403
        # the review card links both: "View in browser" first, the PDF last
        card = next(
            card_of(c.body)
            for c in shared.connector.calls
            if c.kind == "send" and card_of(c.body) and "Acme Manufacturing" in text_of(card_of(c.body))  # type: ignore[arg-type]
        )
        links = [(x["title"], x["url"]) for x in card["actions"] if x["type"] == "Action.OpenUrl"]  # type: ignore[index]
        assert [t for t, _ in links] == ["View in browser", "Open draft PDF"], links
        view_path = "/" + links[0][1].split("/", 3)[3]
        assert view_path.startswith("/view/") and view_path.endswith(".html")
        assert (await b.client.http.get(view_path)).status_code == 200

        # the approver's click reaches instance B
        await approve(b.client, shared, draft_id, version, card_id)
        await until(lambda: state_is(b.service, draft_id, "delivered"), 60, "ACME's delivery through instance B")
        final_b = out_b / "ACME" / name
        assert final_b.exists(), "B rendered the final PDF"
        [email] = shared.graph.sent(MAILBOX)
        assert email  # one email, sent by B

        # the final PDF's link, on both: A's folder still holds the draft, the store the final
        [(version_now,)] = await sql(a.service, "select version from drafts where id = :d", d=draft_id)
        token = LinkSigner.from_settings(b.service.settings).token(draft_id, version_now)
        on_a = await a.client.http.get(f"/files/{token}/{name}")
        on_b = await b.client.http.get(f"/files/{token}/{name}")
        assert on_a.status_code == on_b.status_code == 200
        assert on_a.content == on_b.content == final_b.read_bytes() != (out_a / "ACME" / name).read_bytes()


async def test_a_delivery_dropped_by_one_instance_is_resumed_by_the_other_from_the_store(shared: Setup) -> None:
    out_a, out_b = shared.out.parent / "out-a", shared.out.parent / "out-b"
    draft_id, _ = await crash_mid_delivery(shared, out=out_a)  # A: approved, its email step left running
    assert (out_a / "ACME" / "ACME-weekly-2026-11-16.pdf").exists()
    async with serving(shared, out=out_b, first_delay=0.2, max_delay=1.0) as b:
        await until(lambda: state_is(b.service, draft_id, "delivered"), 60, "B to resume ACME's delivery")
        assert not (out_b / "ACME").exists()  # the PDF came from the store, not from B's folder
        assert len(shared.graph.sent(MAILBOX)) == 1
        [(steps,)] = await sql(
            b.service, "select count(*) from deliveries where draft_id = :d and status = 'done'", d=draft_id
        )
        assert steps == 3

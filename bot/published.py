"""Delivered artefacts at their own signed links: the customer email's "View online" and
"Download PDF", and the internal summaries' link in #weekly-reports.

A link (``bot.links.ArtefactLinkSigner``) names a customer-week's stored artefact by its SHA-256.
It is served from the store (``reporting.store.HistoryStore.published``), so any instance sharing
the store serves it, whichever one delivered: the PDF as stored, and the web page
(``reporting.html``) rendered from the snapshot saved in the same transaction as that PDF.
While the stored artefact is the one the link names, the link works — whatever happens to the
draft afterwards (a retried delivery, a later card action, a restart). When the week has been
rendered again with other bytes, the link is *superseded* (:class:`Gone`), and says so.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from bot.links import ArtefactLinkSigner, ArtefactRef, ReportLinks
from reporting import snapshot
from reporting.html import render_html
from reporting.models import Branding
from reporting.store import HistoryStore, Published

REPORT_ARTEFACT = "pdf"  # the customer report's PDF in the store's ``artefacts`` (what ``Engine.write`` saves)
INTERNAL_CODE = "__internal__"  # the pseudo customer code the MSP's own summaries are stored under


class Gone(Exception):  # noqa: N818 - a condition
    """A genuine link whose artefact is no longer what it named. ``reason``: ``superseded`` (the
    week was rendered again with other bytes) or ``missing`` (nothing stored under that name)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PublishedArtefacts:
    """What the link routes serve: the named artefact as stored now, when it is still the one
    the link was made for. ``branding()`` is the MSP's branding in force (its name from the
    admins' settings), for the web page."""

    def __init__(self, store: HistoryStore, branding: Callable[[], Branding]) -> None:
        self.store = store
        self.branding = branding

    async def _current(self, ref: ArtefactRef) -> Published:
        found = await self.store.published(ref.code, ref.period_end, ref.name, ref.period_kind)
        if found is None:
            raise Gone("missing")
        if found.artefact.sha256 != ref.sha256:
            raise Gone("superseded")
        return found

    async def pdf(self, ref: ArtefactRef) -> bytes:
        """The artefact's bytes; :class:`Gone` when it is not the one ``ref`` names."""
        return (await self._current(ref)).artefact.content

    async def page(self, ref: ArtefactRef) -> str:
        """The report stored with the artefact, as one self-contained web page."""
        found = await self._current(ref)
        if found.payload is None:
            raise Gone("missing")
        report = snapshot.from_dict(found.payload)
        return await asyncio.to_thread(render_html, report, self.branding())


class CustomerLinks:
    """The email's links for a delivery (``bot.delivery.Deliverer``'s ``links``): bound to the
    final PDF being delivered (its SHA-256 is the stored artefact's), valid for ``[delivery]
    customer_link_days``. A test send gets none: a test's PDF is never stored, and nothing in a
    test email outlives the test."""

    def __init__(self, signer: ArtefactLinkSigner) -> None:
        self.signer = signer

    def __call__(self, parcel: Any) -> ReportLinks | None:
        if getattr(parcel, "test", False):
            return None
        kind = parcel.report.period.kind
        ref = ArtefactRef(parcel.code, parcel.period_end, REPORT_ARTEFACT, sha256(parcel.pdf), kind)
        return self.signer.links(ref, parcel.file_name)

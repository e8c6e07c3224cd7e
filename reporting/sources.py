"""What the engine consumes from a source: the connector protocol and its error tree.

A connector serves one configured source (``[sources.<name>]``) and produces one or more report
sections. Errors are translated once, by category, so the collector can say what a reader
should do about a missing section:

- ``SourceUnavailable``: timeout, 5xx, refused connection, an answer that is not the vendor's
  (an HTML page from a proxy) — try again later.
- ``SourceAuthError``: credentials rejected, expired or not configured — a human must act.
- ``SourceDataError``: the answer does not have the documented shape (a renamed field), or the
  customer's id is unknown there — the vendor changed something or the mapping is wrong.

The connectors (``connectors/``) implement this protocol and raise these errors; ``reporting/``
knows nothing else about them (dependencies point from ``connectors/`` to ``reporting/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from reporting.config import CustomerConfig
from reporting.models import Period, SectionData, Targets


class ConnectorError(Exception):
    """Base of connector failures. ``str()`` is shown to engineers: no secrets, no bodies."""

    category = "error"

    def __init__(self, system: str, message: str):
        self.system = system
        super().__init__(f"{system}: {message}")


class SourceUnavailable(ConnectorError):
    category = "unavailable"


class SourceAuthError(ConnectorError):
    category = "auth"


class SourceDataError(ConnectorError):
    category = "data"


@dataclass(frozen=True)
class SourceRecord:
    """A customer-level entity in a source (host group, company, client, tenant...)."""

    system: str
    id: str
    name: str


@runtime_checkable
class Connector(Protocol):
    """What the collector, ``config check`` and the unmapped-customer sweep need from a source.

    Constructors never raise: a table that cannot work (a missing credential) fails in these
    calls, as an unavailable section with its reason, so ``serve`` still starts and the other
    sources still report.
    """

    name: str  # the [sources.<name>] key, shown as the section's source
    sections: frozenset[str]  # which report sections this connector can produce

    async def fetch_section(
        self, section: str, customer: CustomerConfig, period: Period, targets: Targets
    ) -> SectionData:
        """The section's data for ``customer`` over ``[period.start, period.end)``."""
        ...

    async def customer_records(self) -> list[SourceRecord]:
        """Every customer-level entity the source holds, to find ones no customer maps to."""
        ...

    async def probe(self) -> str:
        """One authenticated call that proves the source answers: what it is, in a few words."""
        ...

    async def check_id(self, cid: str) -> str | None:
        """What ``customers.ids.<source> = cid`` names there (for ``config check`` and the sweep),
        or None if nothing — in every id form ``fetch_section`` accepts (a Datto company name,
        a LibreNMS group name, UptimeRobot monitor ids...)."""
        ...

    def accepts_id(self, record: SourceRecord, cid: str) -> bool:
        """Whether ``cid`` (a configured id) names ``record`` in one of the forms the connector
        accepts besides ``record.id`` itself: the sweep does not warn about it."""
        ...

    async def aclose(self) -> None: ...

"""The one interface every source connector implements, and its error tree.

A connector serves one configured source (``[sources.<name>]``) and produces one or more report
sections. Errors are translated once, by category, so the collector can say what a reader
should do about a missing section:

- ``SourceUnavailable``: timeout, 5xx, refused connection — try again later.
- ``SourceAuthError``: credentials rejected or expired — a human must act.
- ``SourceDataError``: the answer does not have the documented shape, or the customer's id is
  unknown there — the vendor changed something or the mapping is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from reporting.config import CustomerConfig, SourceConfig
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


class Connector(Protocol):
    """What the collector needs from a source."""

    name: str  # the [sources.<name>] key, shown as the section's source
    sections: frozenset[str]  # which report sections this connector can produce

    async def fetch_section(self, section: str, customer: CustomerConfig, period: Period, targets: Targets) -> SectionData:
        """The section's data for ``customer`` over ``[period.start, period.end)``."""
        ...

    async def customer_records(self) -> list[SourceRecord]:
        """Every customer-level entity the source holds, to find ones no customer maps to."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class ConnectorContext:
    """Shared resources handed to connector factories (one per batch).

    ``client_factory`` makes the ``httpx.AsyncClient`` of a source (tests inject a
    ``MockTransport`` here; default: ``connectors.http.new_client``). ``sleep`` is what retry
    back-off waits with (tests make it instant and record the waits).
    """

    sandbox: Any = None  # connectors.sandbox.dataset.SandboxDataset when the sandbox is configured
    client_factory: Callable[[SourceConfig], Any] | None = None
    sleep: Callable[[float], Awaitable[None]] | None = None


ConnectorFactory = Callable[[str, SourceConfig, ConnectorContext], Connector]

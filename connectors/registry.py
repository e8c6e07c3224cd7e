"""The explicit connector registry: ``[sources.<name>] type`` -> connector factory."""

from __future__ import annotations

from connectors.base import ConnectorFactory
from connectors.sandbox.inprocess import SandboxConnector

CONNECTORS: dict[str, ConnectorFactory] = {
    "sandbox": SandboxConnector,
}

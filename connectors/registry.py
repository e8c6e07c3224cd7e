"""The explicit connector registry: one entry per system, naming its connector, its options
model (validated when the config is loaded), its loopback simulator and its sections.

``[sources.<name>] type`` (default: the table's name) picks the entry. The simulator is named
by module and class and imported only when a sandbox starts (aiohttp stays off the run path).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from connectors.base import ConnectorFactory
from connectors.cloudflare.connector import CloudflareConnector
from connectors.cloudflare.options import CloudflareOptions
from connectors.connectwise.connector import ConnectWiseConnector
from connectors.connectwise.options import ConnectWiseOptions
from connectors.datto.connector import DattoConnector
from connectors.datto.options import DattoOptions
from connectors.defender.connector import DefenderConnector
from connectors.defender.options import DefenderOptions
from connectors.halo.connector import HaloConnector
from connectors.halo.options import HaloOptions
from connectors.librenms.connector import LibreNMSConnector
from connectors.librenms.options import LibreNMSOptions
from connectors.sentinel.connector import SentinelConnector
from connectors.sentinel.options import SentinelOptions
from connectors.statuscheck.connector import StatusCheckConnector
from connectors.statuscheck.options import StatusCheckOptions
from connectors.veeam.connector import VeeamConnector
from connectors.veeam.options import VeeamOptions
from connectors.zabbix.connector import ZabbixConnector
from connectors.zabbix.options import ZabbixOptions
from reporting.config import SourceOptions


@dataclass(frozen=True)
class System:
    """One source system: what builds it, what its table may hold, what fakes it, what it feeds."""

    name: str
    connector: ConnectorFactory
    options: type[SourceOptions]
    sections: frozenset[str]
    simulator: str | None  # "module:Class" of its loopback simulator (None: no wire format)

    def simulator_class(self) -> Any:
        if self.simulator is None:
            raise LookupError(f"{self.name} has no simulator")
        module, _, cls = self.simulator.partition(":")
        return getattr(importlib.import_module(module), cls)


class SandboxOptions(SourceOptions):
    """``type = "sandbox"``: the in-process oracle feed (no network)."""

    url_required = False
    system: str = Field(default="", description="which system's records to serve")


def _sim(system: str, cls: str) -> str:
    return f"connectors.{system}.simulator:{cls}"


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System("zabbix", ZabbixConnector, ZabbixOptions, frozenset({"uptime"}), _sim("zabbix", "ZabbixSimulator")),
        System(
            "librenms", LibreNMSConnector, LibreNMSOptions, frozenset({"uptime"}), _sim("librenms", "LibreNMSSimulator")
        ),
        System(
            "connectwise",
            ConnectWiseConnector,
            ConnectWiseOptions,
            frozenset({"tickets", "changes"}),
            _sim("connectwise", "ConnectWiseSimulator"),
        ),
        System("halo", HaloConnector, HaloOptions, frozenset({"tickets", "changes"}), _sim("halo", "HaloSimulator")),
        System("datto", DattoConnector, DattoOptions, frozenset({"backups"}), _sim("datto", "DattoSimulator")),
        System("veeam", VeeamConnector, VeeamOptions, frozenset({"backups"}), _sim("veeam", "VeeamSimulator")),
        System(
            "defender",
            DefenderConnector,
            DefenderOptions,
            frozenset({"security"}),
            _sim("defender", "DefenderSimulator"),
        ),
        System(
            "sentinel",
            SentinelConnector,
            SentinelOptions,
            frozenset({"security"}),
            _sim("sentinel", "SentinelSimulator"),
        ),
        System(
            "cloudflare",
            CloudflareConnector,
            CloudflareOptions,
            frozenset({"sites"}),
            _sim("cloudflare", "CloudflareSimulator"),
        ),
        System(
            "statuscheck",
            StatusCheckConnector,
            StatusCheckOptions,
            frozenset({"sites"}),
            _sim("statuscheck", "StatusCheckSimulator"),
        ),
    )
}
"""system -> its entry (the sandbox's vendor systems are exactly these)."""

CONNECTORS: dict[str, ConnectorFactory] = {name: s.connector for name, s in SYSTEMS.items()}
"""``[sources.<name>] type`` -> connector factory (the vendor systems; ``sandbox`` is separate)."""

OPTIONS: dict[str, type[SourceOptions]] = {name: s.options for name, s in SYSTEMS.items()} | {"sandbox": SandboxOptions}
"""``type`` -> options model, for ``reporting.config.load_config(source_types=...)``."""

"""The explicit connector registry: ``[sources.<name>] type`` -> connector factory."""

from __future__ import annotations

from connectors.base import ConnectorFactory
from connectors.cloudflare.connector import CloudflareConnector
from connectors.connectwise.connector import ConnectWiseConnector
from connectors.datto.connector import DattoConnector
from connectors.defender.connector import DefenderConnector
from connectors.halo.connector import HaloConnector
from connectors.librenms.connector import LibreNMSConnector
from connectors.sentinel.connector import SentinelConnector
from connectors.statuscheck.connector import StatusCheckConnector
from connectors.veeam.connector import VeeamConnector
from connectors.zabbix.connector import ZabbixConnector

CONNECTORS: dict[str, ConnectorFactory] = {
    "zabbix": ZabbixConnector,
    "librenms": LibreNMSConnector,
    "connectwise": ConnectWiseConnector,
    "halo": HaloConnector,
    "datto": DattoConnector,
    "veeam": VeeamConnector,
    "defender": DefenderConnector,
    "sentinel": SentinelConnector,
    "cloudflare": CloudflareConnector,
    "statuscheck": StatusCheckConnector,
}

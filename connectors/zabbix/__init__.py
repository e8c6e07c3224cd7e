"""Zabbix 6.0 – 7.x: the JSON-RPC client, the uptime mapper and the loopback simulator."""

from connectors.zabbix.connector import ZabbixConnector

__all__ = ["ZabbixConnector"]

"""Veeam: Backup & Replication REST v1 or the Service Provider Console REST v3 (``api = "vbr" | "vspc"``)."""

from connectors.veeam.connector import VeeamConnector

__all__ = ["VeeamConnector"]

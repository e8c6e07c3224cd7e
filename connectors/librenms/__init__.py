"""LibreNMS API v0: device-group uptime from recorded outages and scheduled maintenance."""

from connectors.librenms.connector import LibreNMSConnector

__all__ = ["LibreNMSConnector"]

"""Status checks: public-site availability from UptimeRobot (API v2 getMonitors)."""

from connectors.statuscheck.connector import StatusCheckConnector

__all__ = ["StatusCheckConnector"]

"""Cloudflare API v4: public-site availability from standalone Health Checks and their analytics."""

from connectors.cloudflare.connector import CloudflareConnector

__all__ = ["CloudflareConnector"]

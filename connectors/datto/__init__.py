"""Datto BCDR (Datto Partner Portal REST API v1): the backups section."""

from connectors.datto.connector import DattoConnector

__all__ = ["DattoConnector"]

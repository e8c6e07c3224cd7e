"""HaloPSA REST API: tickets and changes.

``client.py`` speaks the API (OAuth2 client credentials with a cached, early-renewed token;
``pageinate``/``page_size``/``page_no`` paging in ``{"record_count", "tickets"}`` envelopes);
``connector.py`` maps clients and tickets to the report's sections; ``simulator.py`` serves the
sandbox MSP in the same wire format.
"""

from connectors.halo.connector import HaloConnector

__all__ = ["HaloConnector"]

"""ConnectWise PSA (Manage) REST API 3.0: tickets and changes.

``client.py`` speaks the API (Basic auth with company+public:private keys and a ``clientId``
header, ``conditions`` queries, ``page``/``pageSize`` paging that follows the ``Link`` header,
the ``{"code", "message", "errors"}`` error body); ``connector.py`` maps companies and tickets to
the report's sections; ``simulator.py`` serves the sandbox MSP in the same wire format.
"""

from connectors.connectwise.connector import ConnectWiseConnector

__all__ = ["ConnectWiseConnector"]

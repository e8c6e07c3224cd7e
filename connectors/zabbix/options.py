"""``[sources.<name>] type = "zabbix"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.http import HttpOptions


class ZabbixOptions(HttpOptions):
    api_token: SecretStr | None = None  # an API token (Users → API tokens); missing: sections unavailable
    page_size: int = Field(default=1000, ge=1, le=100_000)
    site_tag: str = "site"
    class_tag: str = "class"
    down_tag: str = "scope=availability"
    down_name: str = ""
    sla_tag: str = "customer"
    customer_group_prefix: str = "Customers/"
    server_timezone: str | None = None

"""``[sources.<name>] type = "librenms"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from pydantic import SecretStr

from connectors.http import HttpOptions


class LibreNMSOptions(HttpOptions):
    token: SecretStr | None = None  # X-Auth-Token; missing: sections unavailable
    server_timezone: str = "UTC"
    site_field: str = "location"
    class_field: str = "type"
    class_labels: dict[str, str] = {}
    use_maintenance: bool = True

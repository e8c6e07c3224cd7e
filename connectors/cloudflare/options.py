"""``[sources.<name>] type = "cloudflare"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from connectors.http import HttpOptions


class CloudflareOptions(HttpOptions):
    token: SecretStr | None = None  # an API token; missing: sections unavailable
    check_label: Literal["address", "name"] = "address"
    per_page: int = Field(default=50, ge=1, le=1000)

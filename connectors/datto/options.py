"""``[sources.<name>] type = "datto"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.http import HttpOptions


class DattoOptions(HttpOptions):
    public_key: str | None = None  # missing credentials: sections unavailable
    secret_key: SecretStr | None = None
    per_page: int = Field(default=100, ge=1, le=1000)

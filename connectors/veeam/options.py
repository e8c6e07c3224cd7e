"""``[sources.<name>] type = "veeam"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from connectors.http import HttpOptions


class VeeamOptions(HttpOptions):
    api: Literal["vbr", "vspc"] = "vbr"
    username: str | None = None  # VBR; missing credentials: sections unavailable
    password: SecretStr | None = None
    api_key: SecretStr | None = None  # VSPC
    api_version: str | None = None
    page_size: int | None = Field(default=None, ge=1, le=10_000)

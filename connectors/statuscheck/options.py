"""``[sources.<name>] type = "statuscheck"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from connectors.http import HttpOptions


class StatusCheckOptions(HttpOptions):
    api_key: SecretStr | None = None  # missing: sections unavailable
    provider: Literal["uptimerobot"] = "uptimerobot"
    check_label: Literal["friendly_name", "url"] = "friendly_name"
    logs_lookback_days: float = Field(default=7.0, ge=0)
    ratio_tolerance: float = Field(default=0.001, ge=0)
    page_limit: int = Field(default=50, ge=1, le=50)

"""``[sources.<name>] type = "sentinel"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from connectors.aad.options import EntraOptions


class SentinelOptions(EntraOptions):
    tenant_id: str | None = None  # the managing tenant (Azure Lighthouse)
    api_version: str | None = None
    subscriptions_api_version: str | None = None
    workspaces_api_version: str | None = None

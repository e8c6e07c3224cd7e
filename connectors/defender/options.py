"""``[sources.<name>] type = "defender"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from connectors.aad.options import EntraOptions


class DefenderOptions(EntraOptions):
    partner_tenant_id: str | None = None

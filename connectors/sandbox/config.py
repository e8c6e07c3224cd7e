"""The configuration of the sandbox MSP, built from the dataset (what ``reportbot demo`` and a
config-less ``reportbot run`` use)."""

from __future__ import annotations

from typing import Any

from connectors.sandbox.dataset import MSP_NAME, MSP_TIMEZONE, SandboxDataset
from reporting.config import Config, parse_config


def sandbox_config_dict(dataset: SandboxDataset, store_url: str) -> dict[str, Any]:
    systems = sorted({s for c in dataset.customers for s in c.stack.values()})
    return {
        "msp": {"name": MSP_NAME, "timezone": MSP_TIMEZONE, "brand_color": "#1F4E79"},
        "store": {"url": store_url},
        "collect": {"timeout_seconds": 20},
        "sources": {s: {"type": "sandbox", "system": s} for s in systems},
        "customers": [
            {
                "code": c.code,
                "name": c.name,
                "domain": c.domain,
                "timezone": c.timezone,
                "cto_email": f"cto@{c.domain}",
                "account_owner_email": f"am-{c.code.lower()}@northwind.example",
                "teams_channel": f"{c.code.lower()}-shared",
                "sharepoint_folder": f"Customers/{c.code}",
                "ids": dict(c.ids),
                "sources": dict(c.stack),
            }
            for c in dataset.customers
        ],
    }


def sandbox_config(dataset: SandboxDataset, store_url: str) -> Config:
    return parse_config(sandbox_config_dict(dataset, store_url), "<sandbox>", env={})

"""The configuration of the sandbox MSP, built from the dataset (what ``reportbot demo`` and a
config-less ``reportbot run`` use)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from connectors.sandbox.dataset import MSP_NAME, MSP_TIMEZONE, SandboxDataset
from reporting.config import Config, check_sources, is_secret_key, parse_config

#: the sandbox MSP's account engineers, one per customer in turn (each customer's named contact)
ENGINEERS = (
    ("Priya Shah", "priya.shah@northwind.example"),
    ("Tomasz Nowak", "tomasz.nowak@northwind.example"),
    ("Aiko Tanaka", "aiko.tanaka@northwind.example"),
    ("Daniel Okafor", "daniel.okafor@northwind.example"),
)

#: the sandbox customers whose IT manager receives the technical report (it-manager@<domain>);
#: the others get the executive report alone, so the demo delivers both kinds
TECHNICAL_AUDIENCE = frozenset({"INITECH"})


def sandbox_config_dict(
    dataset: SandboxDataset, store_url: str, sources: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``sources``: the simulators' ``[sources.*]`` (``SimulatorFarm.sources()``). Without it the
    tables are placeholders naming the system only: enough to select customers and validate a
    command before the simulators start (the CLI swaps in the farm's tables before collecting)."""
    systems = sorted({s for c in dataset.customers for s in c.stack.values()})
    return {
        "msp": {"name": MSP_NAME, "timezone": MSP_TIMEZONE, "brand_color": "#1F4E79"},
        "store": {"url": store_url},
        "graph": {
            "mailbox": "reports@northwind.example",
            "sharepoint_site": "northwind.example:/sites/Customers",
            "sharepoint_library": "Documents",
        },
        "collect": {"timeout_seconds": 20},
        # the MSP's own service-desk summaries (owner report, manager report): MSP addresses only
        "internal_reports": {
            "owners": ["owner@northwind.example"],
            "managers": ["service-desk-manager@northwind.example"],
        },
        "sources": sources if sources is not None else {s: {"type": s} for s in systems},
        "customers": [
            {
                "code": c.code,
                "name": c.name,
                "domain": c.domain,
                "tenant_id": c.ids.get("defender", ""),
                "timezone": c.timezone,
                "cto_email": f"cto@{c.domain}",
                "account_owner_email": f"am-{c.code.lower()}@northwind.example",
                "account_engineer": dict(zip(("name", "email"), ENGINEERS[i % len(ENGINEERS)], strict=True)),
                # the sandbox's IT manager for the technical report (one customer, so the demo shows both)
                **({"recipients": {"technical": [f"it-manager@{c.domain}"]}} if c.code in TECHNICAL_AUDIENCE else {}),
                "teams_channel": f"{c.code.lower()}-shared",
                "sharepoint_folder": f"Customers/{c.code}",
                "ids": dict(c.ids),
                "sources": dict(c.stack),
            }
            for i, c in enumerate(dataset.customers)
        ],
    }


def sandbox_config(dataset: SandboxDataset, store_url: str, sources: dict[str, dict[str, Any]] | None = None) -> Config:
    from connectors.registry import OPTIONS  # the sandbox's tables obey the same models as anyone's

    config = parse_config(sandbox_config_dict(dataset, store_url, sources), "<sandbox>", env={})
    if sources is not None:  # without: placeholders, swapped for the farm's tables before collecting
        check_sources(config, OPTIONS, "<sandbox>")
    return config


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON's escapes are valid TOML escapes
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _table(lines: list[str], header: str, values: dict[str, Any]) -> None:
    lines.append(header)
    lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items())
    lines.append("")


def sandbox_config_files(dataset: SandboxDataset, sources: dict[str, dict[str, Any]], db_path: Path) -> tuple[str, str]:
    """The sandbox configuration as a TOML file whose credentials are ``${VAR}`` references,
    and the matching ``VAR=value`` lines for the environment (what ``reportbot sandbox`` writes)."""
    env: dict[str, str] = {}
    refs: dict[str, dict[str, Any]] = {}
    for system, table in sources.items():
        refs[system] = {}
        for k, v in table.items():
            if isinstance(v, str) and k not in ("type", "url", "system") and is_secret_key(k):
                var = f"REPORTBOT_SANDBOX_{system}_{k}".upper().replace("-", "_")
                env[var] = v
                refs[system][k] = "${" + var + "}"
            else:
                refs[system][k] = v
    cfg = sandbox_config_dict(dataset, f"sqlite:///{db_path.resolve()}", refs)
    lines = ["# Written by `reportbot sandbox`: the sandbox MSP, pointed at its vendor simulators on 127.0.0.1.", ""]
    _table(lines, "[msp]", cfg["msp"])
    _table(lines, "[store]", cfg["store"])
    _table(lines, "[collect]", cfg["collect"])
    for name, table in sorted(cfg["sources"].items()):
        _table(lines, f"[sources.{name}]", table)
    for c in cfg["customers"]:
        _table(lines, "[[customers]]", {k: v for k, v in c.items() if k not in ("ids", "sources")})
        _table(lines, "[customers.ids]", c["ids"])
        _table(lines, "[customers.sources]", c["sources"])
    return "\n".join(lines), "".join(f"{k}={v}\n" for k, v in sorted(env.items()))

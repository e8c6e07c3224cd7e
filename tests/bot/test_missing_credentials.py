"""Issue 13, must-show 5: every connector built with its credentials missing. ``serve`` (its
``open_service``, as ``reportbot serve --config`` runs it) still starts and answers ``/healthz``,
and each of those sources' sections is unavailable with the reason — the key to set."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import httpx

from bot.service import open_service, start_serving
from connectors.registry import OPTIONS, SYSTEMS
from reporting.config import check_sources, parse_config
from reporting.period import week_containing
from tests.bot.harness import FakeCredentialsFactory, make_settings
from tests.bot.test_graph_delivery import FakeCredential
from tests.conftest import WEEK_DAY

# what each connector names when its credentials are not in the table
NOT_SET = {
    "zabbix": "sources.zabbix.api_token is not set",
    "librenms": "sources.librenms.token is not set",
    "connectwise": "sources.connectwise.company_id is not set",
    "halo": "sources.halo.client_id is not set",
    "datto": "sources.datto.public_key is not set",
    "veeam": "sources.veeam.username is not set",
    "defender": "sources.defender.client_id is not set",
    "sentinel": "sources.sentinel.client_id is not set",
    "cloudflare": "sources.cloudflare.token is not set",
    "statuscheck": "sources.statuscheck.api_key is not set",
}
STACKS = {  # two customers between them use all ten systems
    "ACME": {
        "uptime": "zabbix",
        "tickets": "connectwise",
        "changes": "connectwise",
        "backups": "datto",
        "security": "defender",
        "sites": "cloudflare",
    },
    "GLOBEX": {
        "uptime": "librenms",
        "tickets": "halo",
        "changes": "halo",
        "backups": "veeam",
        "security": "sentinel",
        "sites": "statuscheck",
    },
}
IDS = {
    "zabbix": "Customers/Acme",
    "connectwise": "251",
    "datto": "70401",
    "defender": "00000001-0000-4000-8000-000000000001",
    "cloudflare": "0" * 32,
    "librenms": "104",
    "halo": "48",
    "veeam": "GLOBEX-",
    "sentinel": "/subscriptions/6f2a9c1e-3b4d-4e5f-8a7b-9c0d1e2f3a4b/resourceGroups/rg/providers/"
    "Microsoft.OperationalInsights/workspaces/law",
    "statuscheck": "globex.example",
}


async def test_every_connector_without_credentials_serve_starts_and_says_why(tmp_path: Path, oidc) -> None:
    assert set(NOT_SET) == set(SYSTEMS)
    raw = {
        "msp": {"name": "Northwind", "timezone": "Europe/London"},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "collect": {"timeout_seconds": 5},
        "sources": {s: {"type": s, "url": "http://127.0.0.1:9/api"} for s in SYSTEMS},  # and no credentials
        "customers": [
            {"code": code, "name": code.title(), "ids": {s: IDS[s] for s in set(stack.values())}, "sources": stack}
            for code, stack in STACKS.items()
        ],
    }
    raw["sources"]["halo"]["change_ticket_type_id"] = 3  # not a credential: set, so changes too wait on them
    config = parse_config(raw, "<test>", env={})
    check_sources(config, OPTIONS, "<test>")  # missing credentials are not a config error: the url is there
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = make_settings(oidc=oidc, service_urls=["http://127.0.0.1:1/"], port=port)
    async with open_service(
        config,
        settings,
        tmp_path / "out",
        graph_token_credential=FakeCredential(),
        credentials_factory=FakeCredentialsFactory(settings.app_id),
    ) as service:
        runner = await start_serving(service, sock=sock)
        try:
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            seen = set()
            for code in STACKS:
                customer = config.customer(code)
                period = week_containing(date.fromisoformat(WEEK_DAY), "Europe/London")
                report = await service.review.engine.build(customer, period)
                for name, section in report.sections.items():
                    system = STACKS[code][name]
                    assert section.status == "unavailable" and section.source == system, (code, name, section)
                    assert NOT_SET[system] in (section.error or ""), (code, name, section.error)
                    assert "credentials" in (section.error or "")  # the advice: a human must set them
                    seen.add(system)
            assert seen == set(SYSTEMS)
        finally:
            await runner.cleanup()

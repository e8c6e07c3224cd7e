"""A small, fixed report for golden card tests (the sandbox reports carry today's
``generated_at`` and so cannot be golden)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reporting.models import (
    Backups,
    Change,
    Changes,
    CustomerRef,
    Flag,
    OpenIncident,
    Period,
    ProtectedItem,
    Report,
    Section,
    Security,
    SiteCheck,
    Sites,
    Tickets,
    Uptime,
    UptimeGroup,
)

TZ = "Europe/London"
END = datetime(2026, 11, 16, tzinfo=ZoneInfo(TZ))
START = END - timedelta(days=7)
AS_OF = datetime(2026, 11, 16, 6, 0, tzinfo=ZoneInfo(TZ))


def make_report(
    *,
    name: str = "Acme Corp",
    code: str = "ACME",
    flags: tuple[Flag, ...] | None = None,
    change_titles: tuple[str, ...] = ("Patch Tuesday rollout", "Replace core switch"),
    incident_titles: tuple[str, ...] = ("Suspicious sign-in",),
    summary: tuple[str, ...] = (
        "1 item needs attention this week.",
        "Uptime was 99.41 %, short of the 99.90 % target.",
    ),
    uptime_unavailable: bool = False,
    protected: tuple[ProtectedItem, ...] | None = None,
) -> Report:
    uptime = (
        Section("uptime", "unavailable", "zabbix", AS_OF, error="zabbix: API answered HTTP 502 on 3 attempts")
        if uptime_unavailable
        else Section(
            "uptime",
            "ok",
            "zabbix",
            AS_OF,
            Uptime(99.41, 99.9, (UptimeGroup("HQ", 99.2, 80.0, 12),), (UptimeGroup("server", 99.5, 50.0, 6),)),
        )
    )
    items = tuple(
        Change(str(300 + i), title, START + timedelta(days=1, hours=i)) for i, title in enumerate(change_titles)
    )
    open_items = tuple(
        OpenIncident(str(15 + i), title, "high", START + timedelta(days=4)) for i, title in enumerate(incident_titles)
    )
    if protected is None:
        protected = (
            ProtectedItem("ACME-DC01", END - timedelta(hours=2), 2.0, "ok", 7),
            ProtectedItem("ACME-FS01", END - timedelta(hours=60), 60.0, "stale", 4, 0, 3),
        )
    sections = {
        "uptime": uptime,
        "tickets": Section("tickets", "ok", "connectwise", AS_OF, Tickets(28, 25, 6, 2, 92.0, {"High": 3, "Low": 25})),
        "changes": Section("changes", "ok", "connectwise", AS_OF, Changes(len(items), items)),
        "backups": Section("backups", "ok", "datto", AS_OF, Backups(85.7, protected, 28, 2)),
        "security": Section(
            "security",
            "ok",
            "defender",
            AS_OF,
            Security(
                2, len(open_items), {"high": 1, "medium": 1, "low": 0, "informational": 0}, 65.2, -8.0, open_items
            ),
        ),
        "sites": Section(
            "sites",
            "ok",
            "cloudflare",
            AS_OF,
            Sites((SiteCheck("www.acme.example", 100.0, 0.0), SiteCheck("portal.acme.example", 98.81, 120.0))),
        ),
    }
    if flags is None:
        flags = (
            Flag("sla_drop", "high", "uptime", "Uptime fell 4.0 points to 99.41 %."),
            Flag("backup_stale", "medium", "backups", "ACME-FS01 has no successful backup for 60 h."),
            Flag("ticket_trend_worse", "low", "tickets", "Tickets opened rose 40 %."),
        )
    return Report(
        customer=CustomerRef(code, name, TZ),
        period=Period(START, END, TZ),
        sections=sections,
        flags=flags,
        generated_at=AS_OF,
        summary=summary,
        recommendations=("Review the uptime drop with the network team.",),
    )

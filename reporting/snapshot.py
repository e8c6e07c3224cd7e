"""Report <-> JSON snapshot (the ``.json`` output file and the history store's payload).

The key names are the contract in ``shared/design.md``; ``from_dict`` reads back exactly what
``to_dict`` writes, so a stored week can be re-rendered or compared without re-collecting.
Keys added later (the technical report's ``uptime.devices``, ``tickets.items``, ``backups.runs``,
``security.incidents``, the outage timeline...) are only ever added: a snapshot written before
them loads with those lists empty.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from reporting.models import (
    BackupRunItem,
    Backups,
    Change,
    Changes,
    Commentary,
    CustomerRef,
    DeviceUptime,
    DownSpell,
    Flag,
    IncidentItem,
    OpenIncident,
    OutageEvent,
    Period,
    PlannedChange,
    ProtectedItem,
    Report,
    Section,
    SectionData,
    Security,
    SiteCheck,
    Sites,
    TicketItem,
    Tickets,
    Uptime,
    UptimeGroup,
    WaitingTicket,
    WeekPoint,
)
from reporting.period import period_kind

SCHEMA_VERSION = 1


class SnapshotError(ValueError):
    """A stored snapshot does not have the shape this version writes."""


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _round(value: float | None, digits: int = 6) -> float | None:
    """Enough digits that a figure re-rendered from the snapshot prints as it did first (no
    double rounding at the precision shown: 95.9649 must not come back as 95.965 -> 95.97)."""
    return None if value is None else round(value, digits)


def _groups(rows: tuple[UptimeGroup, ...], key: str) -> list[dict[str, Any]]:
    return [
        {
            key: g.name,
            "uptime_pct": _round(g.uptime_pct),
            "downtime_minutes": _round(g.downtime_minutes, 3),
            "devices": g.devices,
        }
        for g in rows
    ]


def _outages_to(events: tuple[OutageEvent, ...]) -> list[dict[str, Any]]:
    return [
        {
            "site": o.site,
            "start": _dt(o.start),
            "end": _dt(o.end),
            "minutes": _round(o.minutes, 3),
            "devices": list(o.devices),
            "site_devices": o.site_devices,
            "ongoing": o.ongoing,
        }
        for o in events
    ]


def _outages_from(rows: list[dict[str, Any]] | None) -> tuple[OutageEvent, ...]:
    """Absent in snapshots written before the timeline existed: no entries."""
    return tuple(
        OutageEvent(
            o["site"],
            datetime.fromisoformat(o["start"]),
            datetime.fromisoformat(o["end"]),
            tuple(o.get("devices", ())),
            o.get("site_devices", 0),
            bool(o.get("ongoing", False)),
        )
        for o in rows or ()
    )


def _devices_to(rows: tuple[DeviceUptime, ...]) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "name": d.name,
            "site": d.site,
            "class": d.device_class,
            "uptime_pct": _round(d.uptime_pct),
            "downtime_minutes": _round(d.downtime_minutes, 3),
            "monitored_minutes": _round(d.monitored_minutes, 3),
            "outages": [
                {"start": _dt(o.start), "end": _dt(o.end), "minutes": _round(o.minutes, 3), "ongoing": o.ongoing}
                for o in d.outages
            ],
        }
        for d in rows
    ]


def _devices_from(rows: list[dict[str, Any]] | None) -> tuple[DeviceUptime, ...]:
    """Absent in snapshots written before the technical report: no rows."""
    return tuple(
        DeviceUptime(
            id=str(d.get("id", "")),
            name=d["name"],
            site=d["site"],
            device_class=d["class"],
            uptime_pct=d["uptime_pct"],
            downtime_minutes=d["downtime_minutes"],
            monitored_minutes=d["monitored_minutes"],
            outages=tuple(
                DownSpell(
                    datetime.fromisoformat(o["start"]), datetime.fromisoformat(o["end"]), bool(o.get("ongoing", False))
                )
                for o in d.get("outages", ())
            ),
        )
        for d in rows or ()
    )


def _ticket_items_to(rows: tuple[TicketItem, ...]) -> list[dict[str, Any]]:
    return [
        {
            "id": t.id,
            "title": t.title,
            "priority": t.priority,
            "created": _dt(t.created),
            "closed": _dt(t.closed),
            "age_hours": _round(t.age_hours, 3),
            "sla": t.sla,
            "resolve_by": _dt(t.resolve_by),
        }
        for t in rows
    ]


def _ticket_items_from(rows: list[dict[str, Any]] | None) -> tuple[TicketItem, ...]:
    return tuple(
        TicketItem(
            id=t["id"],
            title=t["title"],
            priority=t["priority"],
            created=datetime.fromisoformat(t["created"]),
            closed=_parse_dt(t.get("closed")),
            age_hours=t["age_hours"],
            sla=t["sla"],
            resolve_by=_parse_dt(t.get("resolve_by")),
        )
        for t in rows or ()
    )


def section_data_to_dict(data: SectionData) -> dict[str, Any]:
    if isinstance(data, Uptime):
        return {
            "overall_pct": _round(data.overall_pct),
            "overall_source": data.overall_source,
            "target_pct": data.target_pct,
            "by_site": _groups(data.by_site, "site"),
            "by_class": _groups(data.by_class, "class"),
            "outages": _outages_to(data.outages),
            "devices": _devices_to(data.devices),
        }
    if isinstance(data, Tickets):
        return {
            "opened": data.opened,
            "closed": data.closed,
            "backlog": data.backlog,
            "sla_breaches": data.sla_breaches,
            "sla_attainment_pct": _round(data.sla_attainment_pct),
            "target_pct": data.target_pct,
            "by_priority": dict(data.by_priority),
            "waiting": None
            if data.waiting is None
            else [{"id": w.id, "title": w.title, "created": _dt(w.created), "status": w.status} for w in data.waiting],
            "items": _ticket_items_to(data.items),
        }
    if isinstance(data, Changes):
        return {
            "count": data.count,
            "items": [{"id": c.id, "title": c.title, "closed_at": _dt(c.closed_at)} for c in data.items],
            "planned": [{"id": c.id, "title": c.title, "start": _dt(c.start)} for c in data.planned],
        }
    if isinstance(data, Backups):
        return {
            "success_rate_pct": _round(data.success_rate_pct),
            "runs_total": data.runs_total,
            "runs_warning": data.runs_warning,
            "run_history": data.run_history,
            "protected": [
                {
                    "name": p.name,
                    "last_success": _dt(p.last_success),
                    "rpo_hours": _round(p.rpo_hours, 3),
                    "status": p.status,
                    "runs_ok": p.runs_ok,
                    "runs_warning": p.runs_warning,
                    "runs_failed": p.runs_failed,
                    "last_offsite": _dt(p.last_offsite),
                    "verified": p.verified,
                    "verified_at": _dt(p.verified_at),
                    "last_run": _dt(p.last_run),
                }
                for p in data.protected
            ],
            "runs": [
                {"item": r.item, "ended": _dt(r.ended), "status": r.status, "recovery_point": _dt(r.recovery_point)}
                for r in data.runs
            ],
        }
    if isinstance(data, Security):
        return {
            "incidents_new": data.incidents_new,
            "incidents_open": data.incidents_open,
            "by_severity": dict(data.by_severity),
            "secure_score_pct": _round(data.secure_score_pct),
            "secure_score_change": _round(data.secure_score_change),
            "open_items": [
                {"id": i.id, "title": i.title, "severity": i.severity, "created": _dt(i.created)}
                for i in data.open_items
            ],
            "incidents": [
                {
                    "id": i.id,
                    "title": i.title,
                    "severity": i.severity,
                    "status": i.status,
                    "created": _dt(i.created),
                    "resolved": _dt(i.resolved),
                }
                for i in data.incidents
            ],
        } | ({"score_note": data.score_note} if data.score_note is not None else {})
    if isinstance(data, Sites):
        out: dict[str, Any] = {
            "target_pct": data.target_pct,
            "basis": data.basis,
            "checks": [
                {
                    "name": c.name,
                    "availability_pct": _round(c.availability_pct),
                    "downtime_minutes": _round(c.downtime_minutes, 3),
                }
                | ({"status_now": c.status_now} if c.status_now is not None else {})
                for c in data.checks
            ],
        }
        if data.note is not None:
            out["note"] = data.note
        if data.outages:
            out["outages"] = _outages_to(data.outages)
        return out
    raise TypeError(f"not a section payload: {type(data).__name__}")


def section_data_from_dict(name: str, d: dict[str, Any]) -> SectionData:
    if name == "uptime":
        return Uptime(
            overall_pct=d["overall_pct"],
            overall_source=d.get("overall_source", "device-weighted"),
            target_pct=d["target_pct"],
            by_site=tuple(
                UptimeGroup(g["site"], g["uptime_pct"], g["downtime_minutes"], g["devices"]) for g in d["by_site"]
            ),
            by_class=tuple(
                UptimeGroup(g["class"], g["uptime_pct"], g["downtime_minutes"], g["devices"]) for g in d["by_class"]
            ),
            outages=_outages_from(d.get("outages")),
            devices=_devices_from(d.get("devices")),
        )
    if name == "tickets":
        return Tickets(
            opened=d["opened"],
            closed=d["closed"],
            backlog=d["backlog"],
            sla_breaches=d["sla_breaches"],
            sla_attainment_pct=d["sla_attainment_pct"],
            by_priority=dict(d["by_priority"]),
            target_pct=d.get("target_pct", 90.0),
            waiting=None
            if d.get("waiting", []) is None
            else tuple(
                WaitingTicket(w["id"], w["title"], datetime.fromisoformat(w["created"]), w.get("status", ""))
                for w in d.get("waiting", [])
            ),
            items=_ticket_items_from(d.get("items")),
        )
    if name == "changes":
        return Changes(
            count=d["count"],
            items=tuple(Change(c["id"], c["title"], datetime.fromisoformat(c["closed_at"])) for c in d["items"]),
            planned=tuple(
                PlannedChange(c["id"], c["title"], datetime.fromisoformat(c["start"])) for c in d.get("planned", [])
            ),
        )
    if name == "backups":
        return Backups(
            success_rate_pct=d["success_rate_pct"],
            runs_total=d.get("runs_total", 0),
            runs_warning=d.get("runs_warning", 0),
            run_history=d.get("run_history", True),
            protected=tuple(
                ProtectedItem(
                    name=p["name"],
                    last_success=_parse_dt(p["last_success"]),
                    rpo_hours=p["rpo_hours"],
                    status=p["status"],
                    runs_ok=p.get("runs_ok", 0),
                    runs_warning=p.get("runs_warning", 0),
                    runs_failed=p.get("runs_failed", 0),
                    last_offsite=_parse_dt(p.get("last_offsite")),
                    verified=p.get("verified"),
                    verified_at=_parse_dt(p.get("verified_at")),
                    last_run=_parse_dt(p.get("last_run")),
                )
                for p in d["protected"]
            ),
            runs=tuple(
                BackupRunItem(
                    r["item"], datetime.fromisoformat(r["ended"]), r["status"], _parse_dt(r.get("recovery_point"))
                )
                for r in d.get("runs", ())
            ),
        )
    if name == "security":
        return Security(
            incidents_new=d["incidents_new"],
            incidents_open=d["incidents_open"],
            by_severity=dict(d["by_severity"]),
            secure_score_pct=d["secure_score_pct"],
            secure_score_change=d["secure_score_change"],
            open_items=tuple(
                OpenIncident(i["id"], i["title"], i["severity"], datetime.fromisoformat(i["created"]))
                for i in d.get("open_items", [])
            ),
            score_note=d.get("score_note"),
            incidents=tuple(
                IncidentItem(
                    i["id"],
                    i["title"],
                    i["severity"],
                    datetime.fromisoformat(i["created"]),
                    _parse_dt(i.get("resolved")),
                    i.get("status", ""),
                )
                for i in d.get("incidents", ())
            ),
        )
    if name == "sites":
        return Sites(
            target_pct=d.get("target_pct", 99.5),
            basis=d.get("basis", "period"),
            note=d.get("note"),
            checks=tuple(
                SiteCheck(c["name"], c["availability_pct"], c["downtime_minutes"], c.get("status_now"))
                for c in d["checks"]
            ),
            outages=_outages_from(d.get("outages")),
        )
    raise SnapshotError(f"unknown section {name!r}")


def section_to_dict(section: Section) -> dict[str, Any]:
    out: dict[str, Any] = {"status": section.status, "source": section.source, "as_of": _dt(section.as_of)}
    if section.error is not None:
        out["error"] = section.error
    if section.data is not None:
        out.update(section_data_to_dict(section.data))
    return out


_META_KEYS = {"status", "source", "as_of", "error"}


def section_from_dict(name: str, d: dict[str, Any]) -> Section:
    data = None
    if d["status"] == "ok":
        data = section_data_from_dict(name, {k: v for k, v in d.items() if k not in _META_KEYS})
    as_of = _parse_dt(d["as_of"])
    if as_of is None:
        raise SnapshotError(f"section {name!r} has no as_of")
    return Section(
        name=name,  # type: ignore[arg-type]  # a stored section's name
        status=d["status"],
        source=d["source"],
        as_of=as_of,
        data=data,
        error=d.get("error"),
    )


def to_dict(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "customer": {"code": report.customer.code, "name": report.customer.name, "timezone": report.customer.timezone},
        "period": {
            "start": _dt(report.period.start),
            "end": _dt(report.period.end),
            "timezone": report.period.timezone,
            "hours": report.period.hours,
            "kind": report.period.kind,
        },
        "generated_at": _dt(report.generated_at),
        "audience": report.audience,
        "sections": {name: section_to_dict(s) for name, s in report.sections.items()},
        "flags": [
            {"code": f.code, "severity": f.severity, "section": f.section, "message": f.message}
            | ({"codes": list(f.codes)} if f.codes != (f.code,) else {})
            for f in report.flags
        ],
        "summary": list(report.summary),
        "recommendations": list(report.recommendations),
        "engineer_actions": list(report.engineer_actions),
        "history": [
            {
                "period_end": w.period_end.isoformat(),
                "uptime_pct": w.uptime_pct,
                "tickets_opened": w.tickets_opened,
                "tickets_closed": w.tickets_closed,
                "backlog": w.backlog,
                "secure_score_pct": _round(w.secure_score_pct),
                "sla_attainment_pct": _round(w.sla_attainment_pct),
                "sla_breaches": w.sla_breaches,
                "backup_success_pct": _round(w.backup_success_pct),
                "incidents_new": w.incidents_new,
                "uptime_target_pct": w.uptime_target_pct,
            }
            for w in report.history
        ],
        "commentary": None,
    }
    if report.customer.contact_email:  # written only when set: older snapshots lack the keys
        out["customer"].update(contact_name=report.customer.contact_name, contact_email=report.customer.contact_email)
    if report.partial_as_of is not None:  # written only when set: older snapshots lack the key
        out["partial_as_of"] = _dt(report.partial_as_of)
    if report.commentary is not None:
        out["commentary"] = {
            "text": report.commentary.text,
            "author": report.commentary.author,
            "at": _dt(report.commentary.at),
        }
    return out


def from_dict(d: dict[str, Any]) -> Report:
    try:
        tz = d["period"]["timezone"]
        period = Period(
            start=datetime.fromisoformat(d["period"]["start"]),
            end=datetime.fromisoformat(d["period"]["end"]),
            timezone=tz,
            kind=period_kind(d["period"].get("kind", "week")),  # older snapshots: weeks
        )
        commentary = None
        if d.get("commentary"):
            c = d["commentary"]
            commentary = Commentary(text=c["text"], author=c["author"], at=datetime.fromisoformat(c["at"]))
        return Report(
            customer=CustomerRef(
                code=d["customer"]["code"],
                name=d["customer"]["name"],
                timezone=d["customer"].get("timezone", tz),
                contact_name=d["customer"].get("contact_name", ""),
                contact_email=d["customer"].get("contact_email", ""),
            ),
            period=period,
            sections={name: section_from_dict(name, s) for name, s in d["sections"].items()},
            flags=tuple(
                Flag(f["code"], f["severity"], f["section"], f["message"], tuple(f.get("codes") or ()))
                for f in d["flags"]
            ),
            generated_at=datetime.fromisoformat(d["generated_at"]),
            summary=tuple(d.get("summary", [])),
            recommendations=tuple(d.get("recommendations", [])),
            history=tuple(
                WeekPoint(
                    period_end=date.fromisoformat(w["period_end"]),
                    uptime_pct=w["uptime_pct"],
                    tickets_opened=w["tickets_opened"],
                    tickets_closed=w["tickets_closed"],
                    backlog=w["backlog"],
                    secure_score_pct=w.get("secure_score_pct"),
                    sla_attainment_pct=w.get("sla_attainment_pct"),
                    sla_breaches=w.get("sla_breaches"),
                    backup_success_pct=w.get("backup_success_pct"),
                    incidents_new=w.get("incidents_new"),
                    uptime_target_pct=w.get("uptime_target_pct"),
                )
                for w in d.get("history", [])
            ),
            commentary=commentary,
            audience=d.get("audience", "executive"),
            engineer_actions=tuple(d.get("engineer_actions", [])),
            partial_as_of=_parse_dt(d.get("partial_as_of")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise SnapshotError(f"snapshot is malformed: {err!r}") from err

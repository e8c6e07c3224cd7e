"""The formulas of reporting.metrics against hand computations."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from reporting.metrics import (
    BackupRun,
    Device,
    IncidentRecord,
    Outage,
    ScoreSnapshot,
    SiteCheckRecord,
    TicketRecord,
    backups_section,
    changes_section,
    security_section,
    sites_section,
    tickets_section,
    uptime_section,
)
from reporting.period import last_complete_week_day, previous_period, week_containing

LON = ZoneInfo("Europe/London")
P = week_containing(date(2026, 11, 10), "Europe/London")  # Mon 9 Nov 00:00 – Mon 16 Nov 00:00 GMT


def t(day: int, hour: float) -> datetime:
    return datetime(2026, 11, 9, tzinfo=LON) + timedelta(days=day, hours=hour)


def test_dst_weeks_are_167_and_169_hours() -> None:
    assert week_containing(date(2026, 3, 25), "Europe/London").hours == 167  # clocks go forward 29 Mar
    assert week_containing(date(2026, 10, 21), "Europe/London").hours == 169  # clocks go back 25 Oct
    assert week_containing(date(2026, 10, 28), "America/New_York").hours == 169  # US: Sun 1 Nov
    assert week_containing(date(2026, 11, 3), "America/New_York").hours == 168
    assert P.hours == 168
    assert previous_period(P).end == P.start


def test_last_complete_week_is_per_timezone() -> None:
    # Sunday 22 Nov 2026 20:00 UTC is already Monday 23 Nov in Sydney
    now = datetime(2026, 11, 22, 20, 0, tzinfo=ZoneInfo("UTC"))
    assert week_containing(last_complete_week_day(now, "Europe/London"), "Europe/London").end_date == date(2026, 11, 16)
    assert week_containing(last_complete_week_day(now, "Australia/Sydney"), "Australia/Sydney").end_date == date(
        2026, 11, 23
    )


def test_uptime_device_weighted_and_maintenance_excluded() -> None:
    devs = [
        Device("a", "fw1", "HQ", "firewall"),
        Device("b", "sw1", "HQ", "switch"),
        Device("c", "sw2", "Branch", "switch"),
    ]
    outages = [
        Outage("a", t(1, 10), t(1, 12)),  # 2 h down
        Outage("b", t(6, 2), t(6, 4), planned=True),  # maintenance: excluded from both
        Outage("b", t(6, 2.5), t(6, 5)),  # 2.5 h down, 1.5 h inside maintenance -> 1 h counts
        Outage("c", t(-1, 20), t(0, 3)),  # started before the period: 3 h inside it
        Outage("c", t(6, 23), None),  # still down at period end: 1 h inside it
    ]
    u = uptime_section(devs, outages, P, 99.5)
    week = 168 * 60
    hq = {g.name: g for g in u.by_site}["HQ"]
    assert hq.downtime_minutes == 180  # 2 h + 1 h
    assert abs(hq.uptime_pct - 100 * (2 * week - 120 - 180) / (2 * week - 120)) < 1e-9
    branch = {g.name: g for g in u.by_site}["Branch"]
    assert branch.downtime_minutes == 240
    total_monitored = 3 * week - 120
    assert abs(u.overall_pct - 100 * (total_monitored - 420) / total_monitored) < 1e-9
    assert {g.name for g in u.by_class} == {"firewall", "switch"}
    assert u.overall_source == "device-weighted"
    assert uptime_section(devs, outages, P, 99.5, sla_pct=99.1, sla_name="ACME weekly").overall_pct == 99.1


def test_tickets_definitions() -> None:
    tickets = [
        TicketRecord("1", "a", "High", t(0, 9), t(0, 12), t(0, 17)),  # met
        TicketRecord("2", "b", "High", t(0, 9), t(1, 12), t(0, 17)),  # closed late: breach
        TicketRecord("3", "c", "Low", t(-3, 9), t(2, 9), t(0, 9)),  # opened last week, closed late this week
        TicketRecord("4", "d", "Low", t(5, 9), None, t(6, 9)),  # open at end, past target: breach
        TicketRecord("5", "e", "Low", t(6, 9), None, t(9, 9)),  # open, not yet due
        TicketRecord("6", "f", "Low", t(6, 9), t(8, 9), t(9, 9)),  # closed after the period: backlog
        TicketRecord("7", "g", "Medium", t(1, 9), t(1, 20), t(1, 10), met_sla=True),  # PSA's own verdict wins
        TicketRecord("8", "chg", "Change", t(1, 9), t(1, 11), None, is_change=True),
    ]
    tk = tickets_section(tickets, P, 90.0)
    assert (tk.opened, tk.closed, tk.backlog) == (6, 4, 3)
    assert tk.sla_attainment_pct == 50.0  # 1 and 7 of 1, 2, 3, 7
    assert tk.sla_breaches == 3  # 2, 3 closed late + 4 open past target
    assert tk.by_priority == {"High": 2, "Low": 3, "Medium": 1}
    ch = changes_section(tickets, P)
    assert ch.count == 1 and ch.items[0].title == "chg"
    assert tickets_section([], P, 90.0).sla_attainment_pct is None

    # tickets the PSA keeps out of SLA measurement: counted as opened/closed/backlog, never in the SLA
    excluded = [
        TicketRecord("9", "x", "Low", t(0, 9), t(3, 9), t(0, 10), sla_excluded=True),  # closed late, excluded
        TicketRecord("10", "y", "Low", t(0, 9), None, t(0, 10), sla_excluded=True),  # open past target, excluded
    ]
    tk2 = tickets_section(tickets + excluded, P, 90.0)
    assert (tk2.opened, tk2.closed, tk2.backlog) == (8, 5, 4)
    assert tk2.sla_attainment_pct == 50.0 and tk2.sla_breaches == 3
    assert tickets_section(excluded[:1], P, 90.0).sla_attainment_pct is None


def test_backups_statuses_and_rpo() -> None:
    runs = [
        BackupRun("ok", t(6, 22.5), "success", t(6, 22)),
        BackupRun("warn", t(6, 22.5), "warning", t(6, 22)),
        BackupRun("stale", t(4, 12.5), "success", t(4, 12)),  # 60 h before end
        BackupRun("failed", t(5, 22.5), "success", t(5, 22)),
        BackupRun("failed", t(6, 22.5), "failed", None),
        BackupRun("neverok", t(6, 22.5), "failed", None),
        BackupRun("ok", t(7, 22.5), "success", t(7, 22)),  # after the period: ignored
    ]
    b = backups_section(["ok", "warn", "stale", "failed", "neverok", "idle"], runs, P, 48)
    by = {p.name: p for p in b.protected}
    assert by["ok"].status == "ok" and by["ok"].rpo_hours == 2
    assert by["warn"].status == "ok"
    assert by["stale"].status == "stale" and by["stale"].rpo_hours == 60
    assert by["failed"].status == "failed" and by["failed"].rpo_hours == 26
    assert by["neverok"].status == "never" and by["neverok"].runs_failed == 1
    assert by["idle"].status == "never" and by["idle"].runs_failed == 0 and by["idle"].last_success is None
    assert b.runs_total == 6 and b.runs_warning == 1
    assert abs(b.success_rate_pct - 100 * 4 / 6) < 1e-9


def test_security_new_open_and_score_change() -> None:
    inc = [
        IncidentRecord("1", "x", "high", t(4, 14), None),
        IncidentRecord("2", "y", "medium", t(1, 9), t(1, 12)),
        IncidentRecord("3", "z", "low", t(-2, 9), t(8, 0)),  # older, open at end
        IncidentRecord("4", "w", "Informational", t(2, 9), t(2, 10)),
    ]
    scores = [ScoreSnapshot(t(-1, 1), 150, 250), ScoreSnapshot(t(3, 1), 130, 250), ScoreSnapshot(t(8, 1), 10, 250)]
    s = security_section(inc, scores, P)
    assert s.incidents_new == 3 and s.incidents_open == 2
    assert s.by_severity == {"high": 1, "medium": 1, "low": 0, "informational": 1}
    assert s.open_items[0].severity == "high"
    assert s.secure_score_pct == 52.0 and abs(s.secure_score_change - (-8.0)) < 1e-9
    assert security_section([], [], P).secure_score_change is None


def test_site_availability() -> None:
    checks = [SiteCheckRecord("www", ((t(1, 13), t(1, 15)), (t(1, 14), t(1, 14.5)), (t(-1, 23), t(0, 1))))]
    s = sites_section(checks, P, 99.5)
    assert s.checks[0].downtime_minutes == 180
    assert abs(s.checks[0].availability_pct - 100 * (168 - 3) / 168) < 1e-9


def test_next_week_planned_changes_and_tickets_waiting_on_the_customer() -> None:
    tickets = [
        TicketRecord("20", "patch", "Change", t(3, 10), None, None, is_change=True, scheduled=t(8, 22)),  # next week
        TicketRecord("21", "fw", "Change", t(3, 10), None, None, is_change=True, scheduled=t(7, 0)),  # at end: in
        TicketRecord("22", "late", "Change", t(3, 10), None, None, is_change=True, scheduled=t(14, 0)),  # horizon: out
        TicketRecord(
            "23", "past", "Change", t(3, 10), None, None, is_change=True, scheduled=t(6, 23)
        ),  # this week: out
        TicketRecord("24", "done", "Change", t(3, 10), t(5, 9), None, is_change=True, scheduled=t(8, 0)),  # closed: out
        TicketRecord("25", "after", "Change", t(7, 1), None, None, is_change=True, scheduled=t(9, 0)),  # raised later
        TicketRecord("26", "unplanned", "Change", t(3, 10), None, None, is_change=True),  # no start date
        TicketRecord("30", "quote", "Low", t(4, 15), None, t(7, 15), waiting_on_customer=True, status="Waiting"),
        TicketRecord("31", "older", "Low", t(1, 9), None, t(4, 9), waiting_on_customer=True, status="Waiting"),
        TicketRecord("32", "closed", "Low", t(1, 9), t(2, 9), t(4, 9), waiting_on_customer=True),  # closed: out
        TicketRecord("33", "new", "Low", t(8, 9), None, t(9, 9), waiting_on_customer=True),  # raised after end
        TicketRecord("34", "ours", "Low", t(2, 9), None, t(5, 9)),  # open, not waiting on them
    ]
    ch = changes_section(tickets, P)
    assert [(c.id, c.start) for c in ch.planned] == [("21", t(7, 0)), ("20", t(8, 22))]
    assert ch.count == 1  # 24, closed in the period, is an executed change
    tk = tickets_section(tickets, P, 90.0)
    assert [(w.id, w.created, w.status) for w in tk.waiting] == [
        ("31", t(1, 9), "Waiting"),
        ("30", t(4, 15), "Waiting"),
    ]
    assert changes_section([], P).planned == () and tickets_section([], P, 90.0).waiting == ()

"""Issue 14, item 3 (must-show 4): an outage timeline from the monitoring events — each outage
with its start, end and length in the customer's timezone, its site and devices, the overlapping
outages of one site's devices merged — and backups that say when they stopped running."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pypdf import PdfReader

from reporting import fmt, snapshot
from reporting.metrics import Device, Outage, SiteCheckRecord, sites_section, uptime_section
from reporting.models import Uptime
from reporting.period import week_containing
from tests.conftest import PERIOD_END, load_json

LONDON = "Europe/London"
PERIOD = week_containing(date(2026, 11, 10), LONDON)  # Mon 9 Nov – Sun 15 Nov 2026 (GMT)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _pdf_text(path: Path) -> str:
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages).split())


def test_acme_has_one_entry_for_the_leeds_wan_outage(demo_out: Path) -> None:
    payload = load_json(demo_out, "ACME")
    report = snapshot.from_dict(payload)
    up = report.sections["uptime"].data
    assert isinstance(up, Uptime)
    leeds = [o for o in up.outages if o.site == "Leeds plant" and len(o.devices) == o.site_devices]
    assert len(leeds) == 1, up.outages
    [o] = leeds
    assert (fmt.when(o.start, LONDON), fmt.when(o.end, LONDON), fmt.duration(o.minutes)) == (
        "Wed 11 Nov 06:00",
        "Thu 12 Nov 02:12",
        "20 h 12 min",
    )
    assert o.site_devices == 4 and not o.ongoing
    # no other entry overlaps it: the four devices' outages are one
    assert not [x for x in up.outages if x is not o and x.site == o.site and x.start < o.end and x.end > o.start]
    md = (demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| Leeds plant | Wed 11 Nov 06:00 |")]
    assert rows == [rows[0]] and "| Thu 12 Nov 02:12 | 20 h 12 min | all 4 devices" in rows[0]
    assert "Downtime (device-minutes, summed over devices)" in md and "Device downtime" not in md
    pdf = _pdf_text(demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.pdf")
    assert pdf.count("Wed 11 Nov 06:00 Thu 12 Nov 02:12 20 h 12 min") == 1
    assert "Device-minutes (summed over devices)" in pdf and "Downtime minutes (all devices)" not in pdf
    # the stored timeline is the one rendered: the JSON carries it (new keys; old snapshots lack them)
    assert [row["minutes"] for row in payload["sections"]["uptime"]["outages"]].count(1212.0) == 1


def test_globex_says_when_its_last_backup_ran(demo_out: Path) -> None:
    report = snapshot.from_dict(load_json(demo_out, "GLOBEX"))
    said = "no backup of GLOBEX-FS01 ran after Fri 13 Nov 12:00"
    sentence = next(s for s in report.summary if "backups succeeded" in s.lower())
    assert said.lower() in sentence.lower()
    assert "of the runs that ran" in sentence
    md = (demo_out / "GLOBEX" / f"GLOBEX-weekly-{PERIOD_END}.md").read_text()
    assert "**No backup of GLOBEX-FS01 ran after Fri 13 Nov 12:00** (60 h before the week ended)." in md
    pdf = _pdf_text(demo_out / "GLOBEX" / f"GLOBEX-weekly-{PERIOD_END}.pdf")
    assert "No backup of GLOBEX-FS01 ran after Fri 13 Nov 12:00 (60 h before the week ended)" in pdf


def test_every_monitored_customer_has_a_timeline_that_matches_its_downtime(demo_out: Path) -> None:
    """Zabbix and LibreNMS customers alike (the sandbox's connectors against their simulators)."""
    seen = set()
    reported = [p for p in demo_out.iterdir() if p.is_dir() and (p / f"{p.name}-weekly-{PERIOD_END}.json").exists()]
    for code_dir in sorted(reported):
        payload = load_json(demo_out, code_dir.name)
        up = payload["sections"]["uptime"]
        if up["status"] != "ok":
            continue
        seen.add(up["source"])
        report = snapshot.from_dict(payload)
        u = report.sections["uptime"].data
        assert isinstance(u, Uptime)
        for g in u.by_site:
            events = [o for o in u.outages if o.site == g.name]
            assert bool(events) == (g.downtime_minutes > 0), (code_dir.name, g.name)
            # a site's outages last at most its device-minutes, at least its device-minutes over its devices
            total = sum(o.minutes for o in events)
            assert g.downtime_minutes / g.devices - 0.01 <= total <= g.downtime_minutes + 0.01, (code_dir.name, g.name)
    assert {"zabbix", "librenms"} <= seen


def test_overlapping_device_outages_of_one_site_are_one_outage() -> None:
    devices = [
        Device("a", "fw", "Leeds", "firewall"),
        Device("b", "sw", "Leeds", "switch"),
        Device("c", "srv", "York", "server"),
    ]
    outages = [
        Outage("a", _at(11, 6), _at(11, 9)),
        Outage("b", _at(11, 8), _at(11, 10, 30)),  # overlaps a: one outage 06:00–10:30
        Outage("b", _at(12, 1), _at(12, 1, 5)),  # later, alone: a second outage
        Outage("c", _at(11, 7), _at(11, 8)),  # another site: its own entry
        Outage("a", _at(13, 2), _at(13, 4), planned=True),  # maintenance: no outage
        Outage("a", _at(13, 3), _at(13, 3, 20)),  # a reboot inside maintenance: no outage
        Outage("c", _at(15, 23), None),  # still down when the week ends
    ]
    u = uptime_section(devices, outages, PERIOD, 99.5)
    lines = [fmt.outage_line(o, LONDON) for o in u.outages]
    assert lines == [
        "Leeds: Wed 11 Nov 06:00 to Wed 11 Nov 10:30 (4 h 30 min), all 2 devices (fw, sw)",
        "York: Wed 11 Nov 07:00 to Wed 11 Nov 08:00 (1 h), all 1 device (srv)",
        "Leeds: Thu 12 Nov 01:00 to Thu 12 Nov 01:05 (5 min), 1 of 2 devices: sw",
        "York: Sun 15 Nov 23:00 still down when the week ended (1 h), all 1 device (srv)",
    ]
    leeds = next(g for g in u.by_site if g.name == "Leeds")
    assert leeds.downtime_minutes == 180 + 150 + 5  # device-minutes: summed, 30 min counted twice
    sites = sites_section(
        [SiteCheckRecord("www", ((_at(10, 9), _at(10, 9, 4)), (_at(10, 9, 2), _at(10, 9, 7))))], PERIOD, 99.5
    )
    assert [(fmt.when(o.start, LONDON), o.minutes) for o in sites.outages] == [("Tue 10 Nov 09:00", 7.0)]


def test_timeline_survives_the_snapshot_and_old_snapshots_load(demo_out: Path) -> None:
    payload = load_json(demo_out, "ACME")
    report = snapshot.from_dict(payload)
    again = snapshot.from_dict(snapshot.to_dict(report))
    assert again == report
    for name in ("uptime", "sites"):  # (the timeline is outside the dataclasses' equality)
        assert again.sections[name].data.outages == report.sections[name].data.outages  # type: ignore[union-attr]
        assert report.sections[name].data.outages  # type: ignore[union-attr]
    runs = [p.last_run for p in report.sections["backups"].data.protected]  # type: ignore[union-attr]
    assert all(runs) and runs == [p.last_run for p in again.sections["backups"].data.protected]  # type: ignore[union-attr]
    old = load_json(demo_out, "ACME")
    old["sections"]["uptime"].pop("outages")
    old["sections"]["sites"].pop("outages", None)
    for p in old["sections"]["backups"]["protected"]:
        p.pop("last_run")
    back = snapshot.from_dict(old)
    u = back.sections["uptime"].data
    assert isinstance(u, Uptime) and u.outages == ()
    assert back.period.end - back.period.start == timedelta(days=7)

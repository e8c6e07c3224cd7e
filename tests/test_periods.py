"""Issue 16, item 2: periods of 7, 14 or 30 days or a calendar month, per customer.

The shapes by hand (fortnights and 30-day periods on Mondays counted from Mon 1 Jan 2024, months
on the 1st, DST lengths, the previous period of the same kind, what the schedule drafts); then a
14-day and a 30-day window across the October 2026 DST change, read by the real Zabbix and
ConnectWise connectors over HTTP from their simulators, equal to the in-process oracle and to a
hand count of the sandbox records.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from bot.cli import main
from connectors.base import ConnectorContext
from connectors.connectwise.connector import ConnectWiseConnector
from connectors.connectwise.simulator import ConnectWiseSimulator
from connectors.sandbox.dataset import SandboxDataset
from connectors.zabbix.simulator import ZabbixSimulator
from reporting import fmt
from reporting.config import CustomerConfig, SourceConfig
from reporting.models import PERIOD_KINDS, Period, Targets, Tickets, Uptime
from reporting.period import (
    ANCHOR,
    PeriodError,
    batch_period,
    day_in,
    last_complete,
    period_containing,
    period_kind,
    previous_period,
)
from tests.connectors.test_connectwise import oracle as cw_oracle
from tests.connectors.test_zabbix import collect_uptime, oracle_async, zabbix_sla_pct

LONDON = "Europe/London"


def local(d: date, tz: str = LONDON) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz))


def test_fortnights_end_on_mondays_14_days_apart_from_the_anchor() -> None:
    assert ANCHOR == date(2024, 1, 1) and ANCHOR.weekday() == 0
    p = period_containing(date(2026, 11, 20), LONDON, "fortnight")
    assert (p.start, p.end, p.kind) == (local(date(2026, 11, 16)), local(date(2026, 11, 30)), "fortnight")
    assert (date(2026, 11, 30) - ANCHOR).days == 1064 == 76 * 14
    for offset in range(14):  # every day of it names the same fortnight
        assert period_containing(date(2026, 11, 16) + timedelta(days=offset), LONDON, "fortnight") == p
    # consecutive fortnights never overlap and leave no gap
    prev = previous_period(p)
    assert prev.end == p.start and prev.start == local(date(2026, 11, 2))
    assert period_containing(date(2026, 11, 30), LONDON, "fortnight").start == p.end
    assert fmt.week(p) == "Fortnight of Mon 16 Nov \u2013 Sun 29 Nov 2026"
    assert p.file_word == "fortnightly"


def test_thirty_days_end_on_mondays_four_weeks_apart() -> None:
    p = period_containing(date(2026, 11, 20), LONDON, "30d")
    assert p.end == local(date(2026, 11, 30)) and p.start == local(date(2026, 10, 31))  # a Saturday
    assert p.days == 30 and p.end.weekday() == 0
    prev = previous_period(p)
    assert prev.end == local(date(2026, 11, 2)) and prev.days == 30
    # Sat 31 Oct and Sun 1 Nov belong to both; a date there names the one that ends first
    assert p.start < prev.end
    assert period_containing(date(2026, 11, 1), LONDON, "30d") == prev
    assert period_containing(date(2026, 11, 2), LONDON, "30d") == p
    assert period_containing(day_in(p), LONDON, "30d") == p
    assert period_containing(day_in(prev), LONDON, "30d") == prev
    nxt = period_containing(date(2026, 12, 1), LONDON, "30d")
    assert nxt.end == local(date(2026, 12, 28)) and previous_period(nxt) == p
    assert fmt.week(p) == "30 days, Sat 31 Oct \u2013 Sun 29 Nov 2026"
    assert p.file_word == "30day"


def test_a_month_is_the_calendar_month_in_the_customers_timezone() -> None:
    nov = period_containing(date(2026, 11, 17), LONDON, "month")
    assert (nov.start, nov.end) == (local(date(2026, 11, 1)), local(date(2026, 12, 1)))
    assert nov.end_date == date(2026, 12, 1) and nov.file_word == "monthly"
    assert fmt.week(nov) == "November 2026"
    octo = previous_period(nov)
    assert (octo.start, octo.end) == (local(date(2026, 10, 1)), local(date(2026, 11, 1)))
    assert octo.hours == 31 * 24 + 1  # clocks went back on Sun 25 Oct: 745 h
    dec = period_containing(date(2026, 12, 31), LONDON, "month")
    assert dec.end == local(date(2027, 1, 1)) and previous_period(dec) == nov
    assert previous_period(period_containing(date(2027, 1, 5), LONDON, "month")) == dec
    mar = period_containing(date(2026, 3, 2), "America/New_York", "month")
    assert mar.hours == 31 * 24 - 1  # US clocks went forward on Sun 8 Mar
    # a month in Sydney starts while it is still the previous month in UTC
    syd = period_containing(date(2026, 11, 1), "Australia/Sydney", "month")
    assert syd.start.astimezone(UTC) == datetime(2026, 10, 31, 13, 0, tzinfo=UTC)


def test_dst_lengths_of_14_and_30_days() -> None:
    f = period_containing(date(2026, 10, 25), LONDON, "fortnight")
    assert (f.start, f.end) == (local(date(2026, 10, 19)), local(date(2026, 11, 2)))
    assert f.hours == 14 * 24 + 1 == 337  # one hour longer: built from local dates, not by adding hours
    t = period_containing(date(2026, 10, 25), LONDON, "30d")
    assert (t.start, t.end) == (local(date(2026, 10, 3)), local(date(2026, 11, 2)))
    assert t.hours == 30 * 24 + 1
    spring = period_containing(date(2026, 3, 29), LONDON, "fortnight")
    assert spring.hours == 14 * 24 - 1


def test_what_the_schedule_drafts() -> None:
    # Tuesday 1 Dec 2026 06:00 London: November has ended; the last complete week ended Mon 30 Nov
    now = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert last_complete(now, LONDON, "month").end_date == date(2026, 12, 1)
    assert last_complete(now, LONDON, "fortnight").end_date == date(2026, 11, 30)
    assert last_complete(now, LONDON, "30d").end_date == date(2026, 11, 30)
    assert last_complete(now, LONDON, "week").end_date == date(2026, 11, 30)
    # 05:59 UTC on the 1st in Los Angeles is still 30 Nov: its November has not ended
    assert last_complete(now, "America/Los_Angeles", "month").end_date == date(2026, 11, 1)
    # the batch of the week of Mon 23 Nov, run on that Tuesday: each kind's newest ended period
    week_day = date(2026, 11, 29)
    assert batch_period(week_day, LONDON, "week", now).end_date == date(2026, 11, 30)
    assert batch_period(week_day, LONDON, "month", now).end_date == date(2026, 12, 1)
    # the same batch run late on Mon 30 Nov: November is not over, October is the newest month
    monday = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert batch_period(week_day, LONDON, "month", monday).end_date == date(2026, 11, 1)
    # an old batch (the week of Mon 9 Nov) never reaches beyond the week after it
    assert batch_period(date(2026, 11, 10), LONDON, "fortnight", now).end_date == date(2026, 11, 16)
    assert batch_period(date(2026, 11, 10), LONDON, "month", now).end_date == date(2026, 11, 1)


def test_unknown_period_kinds_are_refused_by_name() -> None:
    assert PERIOD_KINDS == ("week", "fortnight", "30d", "month")
    with pytest.raises(PeriodError, match="unknown period 'yearly': use one of week, fortnight, 30d, month"):
        period_kind("yearly")


def _union(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _length(intervals: list[tuple[datetime, datetime]]) -> float:
    return sum((b - a).total_seconds() for a, b in intervals)


def _hand_uptime(dataset: SandboxDataset, code: str, period: Period) -> float:
    """100 x (monitored - down) / monitored over every device, in UTC seconds: monitored is the
    window less planned maintenance, down the unplanned outages outside maintenance."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    assert (end - start).total_seconds() == period.days * 86400 + 3600  # the extra DST hour counts
    g = dataset.gen(code)
    monitored = down = 0.0
    for d in g.devices:

        def clipped(planned: bool, device: str = d.id) -> list[tuple[datetime, datetime]]:
            ivs = [
                (max(o.start.astimezone(UTC), start), min((o.end or end).astimezone(UTC), end))
                for o in g.outages
                if o.device_id == device and o.planned == planned
            ]
            return _union([iv for iv in ivs if iv[0] < iv[1]])

        maint, outages = clipped(True), clipped(False)
        monitored += (end - start).total_seconds() - _length(maint)
        both = _union(maint + outages)
        down += _length(both) - _length(maint)  # outage time not already maintenance
    return 100.0 * (monitored - down) / monitored


def _hand_tickets(dataset: SandboxDataset, code: str, period: Period) -> tuple[int, int, int]:
    """Opened, closed and open at the end, counted straight from the sandbox's ticket records."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    tickets = [t for t in dataset.gen(code).tickets if not t.is_change]

    def inside(ts: datetime | None) -> bool:
        return ts is not None and start <= ts.astimezone(UTC) < end

    opened = sum(1 for t in tickets if inside(t.created))
    closed = sum(1 for t in tickets if inside(t.closed))
    backlog = sum(
        1 for t in tickets if t.created.astimezone(UTC) < end and (t.closed is None or t.closed.astimezone(UTC) >= end)
    )
    return opened, closed, backlog


@pytest.mark.parametrize("kind", ["fortnight", "30d"])
async def test_14_and_30_days_across_dst_equal_the_oracle_and_a_hand_count(kind: str) -> None:
    """ACME (Zabbix SLA path) and GLOBEX (Zabbix event path), both on ConnectWise: the window that
    holds Sun 25 Oct 2026, when London's clocks went back."""
    dataset = SandboxDataset(date(2026, 11, 30))
    async with ZabbixSimulator(dataset) as zsim, ConnectWiseSimulator(dataset) as csim:
        con = ConnectWiseConnector("connectwise", SourceConfig(**csim.source_config()), ConnectorContext())
        try:
            for code in ("ACME", "GLOBEX"):
                c = next(c for c in dataset.customers_in("zabbix") if c.code == code)
                period = period_containing(date(2026, 10, 25), c.timezone, kind)
                assert period.hours == period.days * 24 + 1
                got = (await collect_uptime(zsim, dataset, code, period)).section
                assert got.ok and isinstance(got.data, Uptime), got.error
                want = await oracle_async(dataset, code, period)
                if code == "ACME":  # the SLA path: Zabbix's own figure, by hand from the records
                    assert abs(got.data.overall_pct - zabbix_sla_pct(dataset, code, period)) < 1e-6
                    assert got.data.by_site == want.by_site
                else:
                    assert got.data == want
                if code == "GLOBEX":  # device-weighted, by hand: maintenance is neither up nor down
                    assert abs(got.data.overall_pct - _hand_uptime(dataset, code, period)) < 1e-9
                cust = CustomerConfig(code=code, name=c.name, ids={"connectwise": c.ids["connectwise"]})
                tickets = await con.fetch_section("tickets", cust, period, Targets())
                assert isinstance(tickets, Tickets)
                assert tickets == await cw_oracle(dataset, c, "tickets", period)
                assert (tickets.opened, tickets.closed, tickets.backlog) == _hand_tickets(dataset, code, period)
                assert tickets.opened > 0
        finally:
            await con.aclose()


WEEK_WORDS = re.compile(r"\b(this week|last week|next week's|the week|weekly|week end|week of|w/c)\b", re.IGNORECASE)
ALLOWED = ("Next week", "coming week")  # the planned-changes part is the next 7 days, whatever the period


@pytest.mark.parametrize(
    ("kind", "label", "kicker", "name"),
    [
        ("month", "October 2026", "MONTHLY SERVICE REPORT", "ACME-monthly-2026-11-01"),
        (
            "fortnight",
            "Fortnight of Mon 5 Oct \u2013 Sun 18 Oct 2026",
            "FORTNIGHTLY SERVICE REPORT",
            "ACME-fortnightly-2026-10-19",
        ),
        ("30d", "30 days, Sat 3 Oct \u2013 Sun 1 Nov 2026", "30-DAY SERVICE REPORT", "ACME-30day-2026-11-02"),
    ],
)
def test_a_report_of_another_period_says_so_and_never_calls_it_a_week(
    kind: str, label: str, kicker: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run ACME --period KIND --week DATE`` on the sandbox: the file carries the kind, and the PDF
    (every page) and the Markdown name the period and speak of it, not of a week."""
    out = tmp_path / "out"
    assert main(["run", "ACME", "--period", kind, "--week", "2026-10-14", "--out", str(out)]) == 0
    for variant, stem, top in (
        ("executive", name, kicker),
        ("technical", f"{name}-technical", kicker.replace("SERVICE", "TECHNICAL")),
    ):
        pdf = out / "ACME" / f"{stem}.pdf"
        assert pdf.exists(), capsys.readouterr().err
        text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
        md = (out / "ACME" / f"{stem}.md").read_text(encoding="utf-8")
        assert top in text and label in text and label in md
        for where, body in (("PDF", text), ("Markdown", md)):
            for allowed in ALLOWED:
                body = body.replace(allowed, "")
            found = WEEK_WORDS.findall(body)
            assert not found, f"{where} of the {variant} {kind} report speaks of a week: {found}"
    payload = json.loads((out / "ACME" / f"{name}.json").read_text(encoding="utf-8"))
    assert payload["period"]["kind"] == kind


@pytest.mark.parametrize("kind", ["fortnight", "month"])
def test_executive_and_technical_of_two_customers_for_a_fortnight_and_a_month(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ACME and GLOBEX: the technical PDF lists every ticket and every device of the period (from
    the sandbox's own records) and is the executive PDF page for page up to its detail."""
    out = tmp_path / "out"
    assert main(["run", "ACME", "GLOBEX", "--period", kind, "--week", "2026-10-14", "--out", str(out)]) == 0, (
        capsys.readouterr().err
    )
    dataset = SandboxDataset(date(2026, 10, 19))  # the CLI's sandbox for --week 2026-10-14
    word = {"fortnight": "fortnightly", "month": "monthly"}[kind]
    for code in ("ACME", "GLOBEX"):
        c = next(c for c in dataset.customers_in("zabbix") if c.code == code)
        period = period_containing(date(2026, 10, 14), c.timezone, kind)
        stem = out / code / f"{code}-{word}-{period.end_date.isoformat()}"
        ex = [p.extract_text() for p in PdfReader(f"{stem}.pdf").pages]
        te = [p.extract_text() for p in PdfReader(f"{stem}-technical.pdf").pages]
        how = next(i for i, t in enumerate(ex) if "\nHow to read this report\n" in t)

        def norm(text: str) -> str:
            text = re.sub(r"Page \d+ of \d+", "Page", text)
            return text.replace(" technical report for", " service report for")

        assert [norm(t) for t in te[1:how]] == [norm(t) for t in ex[1:how]], code
        detail = " ".join("\n".join(te[how:]).split())
        g = dataset.gen(code)
        for d in g.devices:
            assert re.search(rf"\b{re.escape(d.name)} ", detail), (code, d.name)
        expected = [
            t
            for t in g.tickets
            if not t.is_change
            and (
                period.start <= t.created < period.end
                or (t.closed is not None and period.start <= t.closed < period.end)
                or (t.created < period.end and (t.closed is None or t.closed >= period.end))
            )
        ]
        assert len(expected) > 20, (code, len(expected))
        for t in expected:
            assert f"{t.id} {t.title} {t.priority} " in detail, (code, t.id, t.title)
        opened, closed, backlog = _hand_tickets(dataset, code, period)
        w = fmt.words(period)
        assert f"{opened} opened {w.this}" in detail and f"{backlog} open at {w.at_end}" in detail, code

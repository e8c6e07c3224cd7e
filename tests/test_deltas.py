"""Delta arithmetic: example cases and properties (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from reporting.config import Thresholds
from reporting.deltas import FLAG_CODES, compute_flags
from reporting.models import Section, Tickets, Uptime, UptimeGroup
from reporting.period import week_containing
from reporting.summary import executive_summary

NOW = datetime(2026, 11, 16, 6, tzinfo=UTC)
TH = Thresholds()
DELTA_CODES = {"sla_drop", "ticket_trend_worse", "no_baseline"}


def uptime(pct: float, target: float = 99.5) -> Section:
    return Section("uptime", "ok", "zabbix", NOW, Uptime(pct, target, (UptimeGroup("HQ", pct, 0, 3),), ()))


def tickets(opened: int, backlog: int, att: float | None) -> Section:
    return Section("tickets", "ok", "connectwise", NOW, Tickets(opened, opened, backlog, 0, att, {}, 90.0))


def codes(flags) -> list[str]:
    return [f.code for f in flags]


def test_sla_drop_threshold_is_inclusive_and_configurable() -> None:
    assert "sla_drop" in codes(compute_flags({"uptime": uptime(96.9)}, {"uptime": uptime(99.9)}, TH, "UTC"))
    assert "sla_drop" not in codes(compute_flags({"uptime": uptime(97.0)}, {"uptime": uptime(99.9)}, TH, "UTC"))
    th = Thresholds(sla_drop_points=1.0)
    assert "sla_drop" in codes(compute_flags({"uptime": uptime(98.5, 90)}, {"uptime": uptime(99.5, 90)}, th, "UTC"))


def test_ticket_trend_needs_both_rise_and_growing_backlog() -> None:
    prev = {"tickets": tickets(20, 5, 95)}
    assert "ticket_trend_worse" in codes(compute_flags({"tickets": tickets(25, 6, 95)}, prev, TH, "UTC"))
    assert "ticket_trend_worse" not in codes(compute_flags({"tickets": tickets(25, 5, 95)}, prev, TH, "UTC"))
    assert "ticket_trend_worse" not in codes(compute_flags({"tickets": tickets(24, 9, 95)}, prev, TH, "UTC"))


def test_first_week_has_no_delta_flags() -> None:
    flags = compute_flags({"uptime": uptime(90.0), "tickets": tickets(100, 50, 95)}, None, TH, "UTC")
    assert "no_baseline" in codes(flags)
    assert "sla_drop" not in codes(flags) and "ticket_trend_worse" not in codes(flags)


def test_unavailable_section_flags_and_is_never_compared() -> None:
    cur = {"uptime": Section("uptime", "unavailable", "zabbix", NOW, error="zabbix: timeout")}
    flags = compute_flags(cur, {"uptime": uptime(99.9)}, TH, "UTC")
    assert codes(flags) == ["data_unavailable"]


def test_a_drop_below_target_is_one_item_that_says_both() -> None:
    flags = compute_flags({"uptime": uptime(95.5)}, {"uptime": uptime(99.9)}, TH, "UTC")
    up = [f for f in flags if f.section == "uptime"]
    assert len(up) == 1
    assert up[0].code == "sla_drop" and up[0].severity == "high"
    assert up[0].codes == ("sla_drop", "sla_below_target")
    assert "fell 4.4 points" in up[0].message and "below the 99.5 % target" in up[0].message
    # a drop that stays above target is the drop alone; below target without a drop is its own flag
    only_drop = compute_flags({"uptime": uptime(95.5, 90)}, {"uptime": uptime(99.9, 90)}, TH, "UTC")
    assert [f.codes for f in only_drop if f.section == "uptime"] == [("sla_drop",)]
    only_below = compute_flags({"uptime": uptime(99.0)}, {"uptime": uptime(99.2)}, TH, "UTC")
    assert [f.codes for f in only_below if f.section == "uptime"] == [("sla_below_target",)]
    tk = compute_flags({"tickets": tickets(10, 2, 70)}, {"tickets": tickets(10, 2, 95)}, TH, "UTC")
    assert [f.codes for f in tk if f.section == "tickets"] == [("sla_drop", "sla_below_target")]
    gone = {n: Section(n, "unavailable", "x", NOW, error="e") for n in ("changes", "backups", "security", "sites")}
    current = {"uptime": uptime(95.5), "tickets": tickets(10, 2, 95), **gone}
    summary = executive_summary(current, flags, {"uptime": uptime(99.9)})
    assert summary[0] == "1 item needs attention this week."  # one outage, one item; our data gaps are not counted


pcts = st.floats(min_value=0, max_value=100, allow_nan=False)
counts = st.integers(min_value=0, max_value=10_000)
maybe_pct = st.none() | pcts


@given(u=pcts, target=pcts, opened=counts, backlog=counts, att=maybe_pct)
def test_a_week_compared_with_itself_has_no_delta_flags(
    u: float, target: float, opened: int, backlog: int, att: float | None
) -> None:
    week = {"uptime": uptime(u, target), "tickets": tickets(opened, backlog, att)}
    flags = compute_flags(week, week, TH, "UTC")
    assert not (set(codes(flags)) & DELTA_CODES)
    assert set(codes(flags)) <= set(FLAG_CODES)


@given(u=pcts, opened=counts, backlog=counts, att=maybe_pct)
def test_missing_previous_week_never_raises(u: float, opened: int, backlog: int, att: float | None) -> None:
    week = {"uptime": uptime(u), "tickets": tickets(opened, backlog, att)}
    flags = compute_flags(week, None, TH, "UTC")
    assert codes(flags).count("no_baseline") == 1


@given(u1=pcts, u2=pcts, o1=counts, o2=counts, b1=counts, b2=counts)
def test_flags_are_sorted_by_severity_and_messages_are_sentences(
    u1: float, u2: float, o1: int, o2: int, b1: int, b2: int
) -> None:
    flags = compute_flags(
        {"uptime": uptime(u1), "tickets": tickets(o1, b1, 90)},
        {"uptime": uptime(u2), "tickets": tickets(o2, b2, 90)},
        TH,
        "UTC",
    )
    order = {"high": 0, "medium": 1, "low": 2}
    assert [order[f.severity] for f in flags] == sorted(order[f.severity] for f in flags)
    assert all(f.message.endswith(".") for f in flags)


@given(
    devices=st.lists(
        st.tuples(st.integers(0, 3), st.floats(0, 200, allow_nan=False), st.floats(0, 200, allow_nan=False)),
        min_size=1,
        max_size=6,
    )
)
def test_uptime_percentages_stay_within_0_and_100(devices: list[tuple[int, float, float]]) -> None:
    from datetime import timedelta

    from reporting.metrics import Device, Outage, uptime_section

    period = week_containing(date(2026, 11, 10), "Europe/London")
    devs = [Device(str(i), f"d{i}", f"s{site}", "switch") for i, (site, _, _) in enumerate(devices)]
    outs = [
        Outage(str(i), period.start + timedelta(hours=a), period.start + timedelta(hours=a + b))
        for i, (_, a, b) in enumerate(devices)
    ]
    u = uptime_section(devs, outs, period, 99.5)
    for g in (*u.by_site, *u.by_class):
        assert 0.0 <= g.uptime_pct <= 100.0
    assert 0.0 <= u.overall_pct <= 100.0


def test_summary_is_three_to_five_sentences() -> None:
    week = {"uptime": uptime(99.9), "tickets": tickets(10, 2, 95)}
    for name in ("changes", "backups", "security", "sites"):
        week[name] = Section(name, "unavailable", "x", NOW, error="x: down")  # type: ignore[arg-type]
    flags = compute_flags(week, None, TH, "UTC")
    s = executive_summary(week, flags, None)
    assert 3 <= len(s) <= 5

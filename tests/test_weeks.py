"""Issue 14, item 5: a week that has not ended is refused (exit 2, nothing written) unless
``--allow-partial``, which labels the report "partial, as of <time>" everywhere; and one label
for a week wherever a person reads it ("Week of Mon 23 Nov – Sun 29 Nov 2026")."""

from __future__ import annotations

import email
import json
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from bot.cli import main
from bot.delivery import Parcel
from bot.outbox import cover_note, subject
from cards.customer import channel_card
from cards.review import review_card
from cards.status import status_card
from connectors.sandbox.config import sandbox_config
from connectors.sandbox.dataset import SandboxDataset
from reporting import fmt, snapshot
from reporting.engine import Engine
from reporting.models import Branding
from reporting.period import WeekNotEnded, partial_read, week_containing
from reporting.rollup import rollup_markdown
from reporting.store import HistoryStore
from tests.conftest import PERIOD_END, load_json
from tests.test_cli import EXAMPLE, EXAMPLE_ENV

TODAY = datetime.now(UTC).date().isoformat()
FUTURE = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize("week", [FUTURE, TODAY], ids=["future", "current"])
def test_run_of_a_week_not_ended_is_refused_and_writes_nothing(
    week: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", "ACME", "--week", week, "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert line.startswith("reportbot: ACME: the week ") and "nothing was written" in line
    assert ("has not started" if week == FUTURE else "has not ended") in line
    assert not out.exists()
    assert main(["demo", "--week", week, "--out", str(out)]) == 2
    assert "nothing was written" in _one_line(capsys)
    assert not out.exists()


def test_run_all_with_a_config_file_is_refused_before_the_store_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = tmp_path / "c.toml"
    cfg.write_text(EXAMPLE.read_text().replace('url = "sqlite:///reportbot.db"', f'url = "sqlite:///{tmp_path}/h.db"'))
    out = tmp_path / "o"
    assert main(["run", "--all", "--config", str(cfg), "--out", str(out), "--week", TODAY]) == 2
    assert "--allow-partial" in _one_line(capsys)
    assert not out.exists() and not (tmp_path / "h.db").exists()


async def test_the_engine_refuses_too_so_the_bot_and_the_scheduler_write_nothing(tmp_path: Path) -> None:
    """The bot's ``run`` and the scheduler draft through ``Engine.draft``: same refusal, no file, no row."""
    dataset = SandboxDataset(date.fromisoformat(PERIOD_END))
    config = sandbox_config(dataset, f"sqlite:///{tmp_path / 'h.db'}")
    store = await HistoryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    inside = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)  # Thursday of the week of Mon 9 Nov
    engine = Engine(config, {}, store, Branding("M"), lambda r, b: b"%PDF", now=lambda: inside)
    try:
        with pytest.raises(WeekNotEnded, match="the week Mon 9 Nov \u2013 Sun 15 Nov 2026 has not ended"):
            await engine.draft(config.customer("ACME"), date(2026, 11, 10), tmp_path / "out", None)
        await engine.backfill(config.customer("ACME"), date(2026, 11, 24), 3)  # weeks after 12 Nov: skipped
        assert await store.count() == 0
        assert not (tmp_path / "out").exists()
    finally:
        engine.close()
        await store.close()


def test_a_partial_week_is_read_to_the_last_midnight() -> None:
    period = week_containing(date(2026, 11, 12), "Europe/London")
    read = partial_read(period, datetime(2026, 11, 12, 10, 17, 33, tzinfo=UTC))
    assert (read.start, read.end.isoformat()) == (period.start, "2026-11-12T00:00:00+00:00")
    monday = partial_read(period, datetime(2026, 11, 9, 8, 5, 59, tzinfo=UTC))  # the week's first day: to the minute
    assert monday.end.isoformat() == "2026-11-09T08:05:00+00:00"


def _pdf_text(path: Path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(path).pages)


def _parcel(report: Any, config: Any) -> Parcel:
    return Parcel(
        "d1",
        report.customer.code,
        config.customer(report.customer.code),
        report.period.end_date,
        report,
        b"%PDF",
        "Sam",
    )


def test_allow_partial_labels_the_report_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", "ACME", "--week", TODAY, "--out", str(out), "--allow-partial"]) == 0
    capsys.readouterr()
    period = week_containing(date.fromisoformat(TODAY), "Europe/London")
    base = out / "ACME" / f"ACME-weekly-{period.end_date.isoformat()}"  # file names keep <period_end>
    payload = json.loads(base.with_suffix(".json").read_text())
    report = snapshot.from_dict(payload)
    assert report.partial_as_of is not None and report.partial_as_of <= datetime.now(UTC)
    label = fmt.partial(report.partial_as_of, "Europe/London")
    assert label.startswith("partial, as of ")
    week = f"{fmt.week(period)} ({label})"
    markdown = base.with_suffix(".md").read_text()
    assert f"weekly report ({label})" in markdown.splitlines()[0] and week in markdown
    pages = PdfReader(base.with_suffix(".pdf")).pages
    assert all(label in " ".join(p.extract_text().split()) for p in pages)  # the cover, and every page's running header
    config = sandbox_config(SandboxDataset(period.end_date), f"sqlite:///{tmp_path / 'h.db'}")
    parcel = _parcel(report, config)
    assert week in subject(parcel) and label in cover_note(config, parcel)
    channel = json.dumps(channel_card(report, file_url=None, key="k", msp_name="M"), ensure_ascii=False)
    review = json.dumps(
        review_card(report, draft_id="d1", version=1, state="drafted", commentary="", pdf_url=None), ensure_ascii=False
    )
    assert week in channel and week in review


def test_one_label_for_the_week(demo_out: Path) -> None:
    """The planted week (Mon 9 – Sun 15 Nov 2026) named the same in every place a person reads it."""
    week = "Week of Mon 9 Nov \u2013 Sun 15 Nov 2026"
    report = snapshot.from_dict(load_json(demo_out, "ACME"))
    assert report.partial_as_of is None and fmt.report_week(report) == week
    md = (demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.md").read_text()
    assert week in md and "week ending" not in md
    assert week in " ".join(_pdf_text(demo_out / "ACME" / f"ACME-weekly-{PERIOD_END}.pdf").split())
    mail = email.message_from_bytes(
        (demo_out / "outbox" / "mail" / f"ACME-weekly-{PERIOD_END}.eml").read_bytes(), policy=policy.default
    )
    assert week in str(mail["Subject"]) and "week of Mon 9 Nov" in mail.get_body(("html",)).get_content()
    assert week in (demo_out / f"rollup-{PERIOD_END}.md").read_text()
    assert week in rollup_markdown([], "M", date.fromisoformat(PERIOD_END))
    assert week in json.dumps(
        status_card([], period_end=date.fromisoformat(PERIOD_END), tz="Europe/London"), ensure_ascii=False
    )
    # the trend names each earlier week by its Monday: the week of 2 Nov is "2 Nov", never its end "9 Nov"
    trend = next(line for line in md.splitlines() if line.startswith("Trend (tickets"))
    assert "week of 2 Nov:" in trend and "9 Nov" not in trend


def test_week_labels_across_a_new_year() -> None:
    period = week_containing(date(2026, 12, 30), "Europe/London")
    assert fmt.week(period) == "Week of Mon 28 Dec 2026 \u2013 Sun 3 Jan 2027"
    assert fmt.week_ending(date(2027, 1, 4)) == fmt.week(period)
    assert fmt.week_monday(date(2027, 1, 4)) == "28 Dec"

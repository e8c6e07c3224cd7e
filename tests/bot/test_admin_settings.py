"""The settings store: versions by compare-and-set (two admins at once: one wins), a save that
changes nothing stores nothing, and what ``config check`` prints with and without saved settings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.admin_settings import SettingsStore, StaleSettings, overrides_in_force
from reporting.overrides import CustomerSettings, ReportSettings
from reporting.store import HistoryStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SettingsStore]:
    history = await HistoryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        yield await SettingsStore.open(history.engine)
    finally:
        await history.close()


async def test_two_admins_saving_the_same_version_at_once_one_wins(store: SettingsStore) -> None:
    a = ReportSettings(msp_name="A's name")
    b = ReportSettings(customers={"ACME": CustomerSettings(enabled=False)})
    results = await asyncio.gather(
        store.save(0, a, "aad-a", "Admin A"), store.save(0, b, "aad-b", "Admin B"), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, ReportSettings)]
    lost = [r for r in results if isinstance(r, StaleSettings)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].current.version == 1
    current = await store.current()
    assert current.version == 1 and current.msp_name == won[0].msp_name
    [saved] = await store.history()
    assert saved.saved_by_id in ("aad-a", "aad-b") and saved.saved_at.tzinfo is not None


async def test_versions_record_who_and_what_changed_and_an_unchanged_save_stores_nothing(
    store: SettingsStore,
) -> None:
    first = await store.save(0, ReportSettings(msp_name="Contoso"), "aad-a", "Admin A")
    assert first.version == 1
    same = await store.save(1, ReportSettings(msp_name="Contoso"), "aad-b", "Admin B")
    assert same.version == 1 and len(await store.history()) == 1
    second = await store.save(
        1, ReportSettings(msp_name="Contoso", owners=("o@msp.example",)), "aad-b", "Admin B\u202e\r\n"
    )
    assert second.version == 2
    latest, oldest = await store.history()
    assert latest.changes == {"internal_reports.owners": {"from": [], "to": ["o@msp.example"]}}
    assert latest.saved_by_name == "Admin B " and "\u202e" not in latest.saved_by_name  # neutralised
    assert oldest.changes == {"msp_name": {"from": "", "to": "Contoso"}}
    with pytest.raises(StaleSettings):
        await store.save(1, ReportSettings(msp_name="late"), "aad-a", "Admin A")
    assert json.dumps((await store.current()).to_json())  # what is stored is plain JSON


async def test_config_check_lines(store: SettingsStore, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    assert await overrides_in_force(url) == ["settings: none saved in Teams; the file's values are in force"]
    missing = await overrides_in_force(f"sqlite+aiosqlite:///{tmp_path / 'nowhere.db'}")
    assert "the store file does not exist yet" in missing[0]
    assert not (tmp_path / "nowhere.db").exists()  # config check creates nothing
    await store.save(
        0,
        ReportSettings(customers={"ACME": CustomerSettings(period="month", technical=("it@acme.example",))}),
        "aad-a",
        "Admin A",
    )
    lines = await overrides_in_force(url)
    assert lines[0].startswith("settings: version 1 saved in Teams by Admin A (aad-a) at ")
    assert "  customers.ACME.period = month" in lines
    assert "  customers.ACME.recipients.technical = it@acme.example" in lines
    # the technical report is sent to them now: no "stored only" note under that line
    technical = lines.index("  customers.ACME.recipients.technical = it@acme.example")
    assert technical + 1 == len(lines) or not lines[technical + 1].startswith("    (stored")


def test_reportbot_run_takes_the_saved_msp_name_and_run_all_skips_a_disabled_customer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example configuration (ACME only), its sources unreachable (sections unavailable, the
    report still written), its store holding settings an admin saved in Teams."""
    from bot.cli import main
    from tests.conftest import WEEK_DAY
    from tests.test_cli import EXAMPLE_ENV

    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    example = (Path(__file__).resolve().parents[2] / "docs" / "example-config.toml").read_text()
    text = example.replace('url = "sqlite:///reportbot.db"', f'url = "sqlite:///{tmp_path}/h.db"')
    text = text.replace("https://zabbix.northwind.example/zabbix", "http://127.0.0.1:9/zabbix")
    text = text.replace(
        "https://api-eu.myconnectwise.net/v4_6_release/apis/3.0", "http://127.0.0.1:9/v4_6_release/apis/3.0"
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)

    async def save(settings: ReportSettings, expected: int) -> None:
        history = await HistoryStore.open(f"sqlite+aiosqlite:///{tmp_path}/h.db")
        try:
            await (await SettingsStore.open(history.engine)).save(expected, settings, "aad-a", "Admin A")
        finally:
            await history.close()

    asyncio.run(save(ReportSettings(msp_name="Contoso Managed Services"), 0))
    out = tmp_path / "o"
    assert main(["run", "ACME", "--config", str(cfg), "--out", str(out), "--week", WEEK_DAY]) == 0
    md = (out / "ACME" / "ACME-weekly-2026-11-16.md").read_text()
    assert "Contoso Managed Services" in md

    disabled = ReportSettings(msp_name="Contoso Managed Services", customers={"ACME": CustomerSettings(enabled=False)})
    asyncio.run(save(disabled, 1))
    (out / "ACME" / "ACME-weekly-2026-11-16.md").unlink()
    capsys.readouterr()
    assert main(["run", "--all", "--config", str(cfg), "--out", str(out), "--week", WEEK_DAY]) == 0
    assert "skipped (reports disabled in the settings): ACME" in capsys.readouterr().err
    assert not (out / "ACME" / "ACME-weekly-2026-11-16.md").exists()

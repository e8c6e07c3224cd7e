from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from reporting.output import write_atomic
from tests.conftest import WEEK_DAY


def test_unknown_code_is_one_line_exit_2_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", "ACME", "ACMEE", "--out", str(out), "--week", WEEK_DAY]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "reportbot: unknown customer code 'ACMEE'; did you mean ACME?"
    assert not out.exists()


def test_bad_week_and_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ACME", "--out", str(tmp_path), "--week", "last monday"]) == 2
    assert "--week takes a date as YYYY-MM-DD" in capsys.readouterr().err
    cfg = tmp_path / "c.toml"
    cfg.write_text('[msp]\nname = "M"\ntimezone = "Nowhere/City"\n')
    assert main(["run", "--all", "--config", str(cfg), "--out", str(tmp_path)]) == 2
    assert f"{cfg}: msp.timezone: unknown timezone 'Nowhere/City'" in capsys.readouterr().err


def test_config_check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTBOT_APP_PASSWORD", "s")
    monkeypatch.setenv("ZABBIX_TOKEN", "t")
    example = Path(__file__).resolve().parent.parent / "docs" / "example-config.toml"
    assert main(["config", "check", "--config", str(example)]) == 0
    captured = capsys.readouterr()
    assert "1 customers, 2 sources (2 sources contacted); 0 errors, 1 warnings" in captured.out
    assert "no source for backups, security, sites" in captured.err


def test_run_with_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real config (not the sandbox) drives the same engine; missing sections are unavailable, not zero."""
    monkeypatch.setenv("REPORTBOT_APP_PASSWORD", "s")
    monkeypatch.setenv("ZABBIX_TOKEN", "t")
    example = (Path(__file__).resolve().parent.parent / "docs" / "example-config.toml").read_text()
    cfg = tmp_path / "c.toml"
    cfg.write_text(example.replace('url = "sqlite:///reportbot.db"', f'url = "sqlite:///{tmp_path}/h.db"'))
    # the example's sandbox sources need the sandbox dataset, which a config run does not load
    assert main(["run", "ACME", "--config", str(cfg), "--out", str(tmp_path / "o"), "--week", WEEK_DAY]) == 1


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "A" / "A-weekly.pdf"

    write_atomic(target, b"%PDF-complete")
    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"%PDF-complete"
    assert [p.name for p in target.parent.iterdir()] == ["A-weekly.pdf"]

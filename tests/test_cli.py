from __future__ import annotations

import json
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


EXAMPLE_ENV = {
    "REPORTBOT_APP_PASSWORD": "s",
    "REPORTBOT_LINK_SECRET": "l" * 32,
    "ZABBIX_API_TOKEN": "t",
    "CW_PUBLIC_KEY": "p",
    "CW_PRIVATE_KEY": "k",
    "CW_CLIENT_ID": "c",
}


def test_config_check_offline(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    example = Path(__file__).resolve().parent.parent / "docs" / "example-config.toml"
    assert main(["config", "check", "--offline", "--config", str(example)]) == 0
    captured = capsys.readouterr()
    assert "1 customers, 2 sources (offline: sources not contacted); 0 errors, 1 warnings" in captured.out
    assert "no source for backups, security, sites" in captured.err


def test_run_with_a_config_file_whose_sources_are_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real config drives the same engine; sources that cannot be reached give unavailable
    sections with a reason (never zeros), and the report is still written."""
    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    example = (Path(__file__).resolve().parent.parent / "docs" / "example-config.toml").read_text()
    cfg = tmp_path / "c.toml"
    text = example.replace('url = "sqlite:///reportbot.db"', f'url = "sqlite:///{tmp_path}/h.db"')
    text = text.replace(
        "https://zabbix.northwind.example/zabbix", "http://127.0.0.1:9/zabbix"
    )  # nothing listens on port 9
    text = text.replace(
        "https://api-eu.myconnectwise.net/v4_6_release/apis/3.0", "http://127.0.0.1:9/v4_6_release/apis/3.0"
    )
    text = text.replace("[collect]\ntimeout_seconds = 60", "[collect]\ntimeout_seconds = 5")
    cfg.write_text(text)
    assert main(["run", "ACME", "--config", str(cfg), "--out", str(tmp_path / "o"), "--week", WEEK_DAY]) == 0
    snap = json.loads((tmp_path / "o" / "ACME" / "ACME-weekly-2026-11-16.json").read_text())
    up = snap["sections"]["uptime"]
    assert up["status"] == "unavailable" and up["error"].startswith("zabbix: ") and "cannot connect" in up["error"]
    assert "overall_pct" not in up
    assert snap["sections"]["tickets"]["error"].startswith("connectwise: ")


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "A" / "A-weekly.pdf"

    write_atomic(target, b"%PDF-complete")
    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"%PDF-complete"
    assert [p.name for p in target.parent.iterdir()] == ["A-weekly.pdf"]


EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "example-config.toml"
BROKEN = {  # must-show 4: each a one-line error naming the file and the key
    "typo'd key": (
        'api_token = "${ZABBIX_API_TOKEN}"',
        'api_tokn = "${ZABBIX_API_TOKEN}"',
        "sources.zabbix.api_tokn: unknown key",
    ),
    "missing url": (
        'url = "https://zabbix.northwind.example/zabbix"\n',
        "",
        "sources.zabbix.url: required key is missing",
    ),
    "wrong type": ('change_board = "Change Management"', 'page_size = "three"', "sources.connectwise.page_size: "),
    "unknown type": ('type = "zabbix"', 'type = "zabix"', "sources.zabbix.type: no connector named 'zabix'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_config_check_offline_and_run_refuse_a_broken_source_table(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    old, new, key = BROKEN[case]
    cfg = tmp_path / "c.toml"
    text = EXAMPLE.read_text().replace('url = "sqlite:///reportbot.db"', f'url = "sqlite:///{tmp_path}/h.db"')
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    out = tmp_path / "o"
    for argv in (
        ["config", "check", "--offline", "--config", str(cfg)],
        ["run", "--all", "--config", str(cfg), "--out", str(out), "--week", WEEK_DAY],
    ):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"reportbot: {cfg}: {key}"), (argv, captured.err)
        assert captured.out == ""
    assert not out.exists() and not (tmp_path / "h.db").exists()


def test_a_run_whose_store_is_unreachable_names_the_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in EXAMPLE_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        EXAMPLE.read_text().replace('url = "sqlite:///reportbot.db"', 'url = "postgresql://nobody:x@127.0.0.1:9/none"')
    )
    out = tmp_path / "o"
    assert main(["run", "ACME", "--config", str(cfg), "--out", str(out), "--week", WEEK_DAY]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"reportbot: {cfg}: store.url: "), err
    assert not out.exists()

"""`reportbot manifest` and `reportbot serve` refusals, through the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from bot.cli import main

CONFIG = """
[msp]
name = "Northwind Managed Services"
timezone = "Europe/London"
brand_color = "#1F4E79"
[store]
url = "sqlite:///{tmp}/s.db"
[teams]
app_id = "{app_id}"
app_password = "${{BOT_PASSWORD}}"
tenant_id = "9a8b7c6d-0000-4000-8000-0000000000aa"
public_url = "https://reportbot.northwind.example"
link_secret = "${{LINK_SECRET}}"
"""


def write(tmp: Path, app_id: str) -> Path:
    path = tmp / "c.toml"
    path.write_text(CONFIG.format(tmp=tmp, app_id=app_id))
    return path


def test_manifest_from_config_and_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_PASSWORD", "p")
    monkeypatch.setenv("LINK_SECRET", "s" * 32)
    app_id = "6f1c0b1e-0000-4000-8000-00000000b07a"
    out = tmp_path / "app.zip"
    assert main(["manifest", "--config", str(write(tmp_path, app_id)), "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["bots"][0]["botId"] == app_id
    assert "reportbot.northwind.example" in manifest["validDomains"]
    assert main(["manifest", "--out", str(tmp_path / "sandbox.zip")]) == 0
    assert "00000000-0000-0000-0000-000000000000" in capsys.readouterr().out


def test_serve_refuses_to_run_without_authentication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_PASSWORD", "p")
    monkeypatch.setenv("LINK_SECRET", "s" * 32)
    assert main(["serve", "--config", str(write(tmp_path, ""))]) == 2
    err = capsys.readouterr().err
    assert "teams.app_id: not set; the bot refuses to run without authentication" in err
    assert main(["serve", "--sandbox", "--host", "0.0.0.0", "--config", str(write(tmp_path, ""))]) == 2  # noqa: S104
    assert "the sandbox listens on 127.0.0.1 only" in capsys.readouterr().err
    assert main(["serve"]) == 2

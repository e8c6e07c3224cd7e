"""The sandbox as a user drives it: simulators on 127.0.0.1, `config check` against them, faults."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bot.cli import main
from connectors.sandbox.config import sandbox_config_files
from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.base import Faults
from connectors.sim.farm import SimulatorFarm, parse_fault_specs
from tests.conftest import PERIOD_END, WEEK_DAY


@pytest.fixture(scope="module")
def farm_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The ten simulators running in a thread of their own, and the config `reportbot sandbox` writes."""
    yield from _farm(tmp_path_factory.mktemp("sandbox"))


def _farm(tmp: Path, faults: dict[str, Faults] | None = None) -> Iterator[tuple[Path, dict[str, str]]]:
    ready = threading.Event()
    state: dict[str, object] = {}

    def serve() -> None:
        async def run() -> None:
            stop = asyncio.Event()
            state["loop"], state["stop"] = asyncio.get_running_loop(), stop
            async with SimulatorFarm(SandboxDataset(date.fromisoformat(PERIOD_END)), faults=faults) as farm:
                toml, env = sandbox_config_files(farm.dataset, farm.sources(), tmp / "sandbox.db")
                (tmp / "sandbox.toml").write_text(toml)
                state["env"] = dict(line.split("=", 1) for line in env.splitlines())
                ready.set()
                await stop.wait()

        try:
            asyncio.run(run())
        except BaseException as err:  # surface a start-up failure to the test, not a timeout
            state["error"] = err
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30), "the simulators did not start"
    if "error" in state:
        raise state["error"]  # type: ignore[misc]
    yield tmp / "sandbox.toml", state["env"]  # type: ignore[misc]
    state["loop"].call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
    thread.join(10)


def test_written_config_keeps_secrets_out_of_the_file(farm_config: tuple[Path, dict[str, str]]) -> None:
    path, env = farm_config
    text = path.read_text()
    assert env and all(value not in text for value in env.values())
    assert "${REPORTBOT_SANDBOX_ZABBIX_API_TOKEN}" in text


def test_config_check_contacts_every_source(
    farm_config: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, env = farm_config
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["config", "check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    for system in (
        "zabbix",
        "librenms",
        "connectwise",
        "halo",
        "datto",
        "veeam",
        "defender",
        "sentinel",
        "cloudflare",
        "statuscheck",
    ):
        assert f"ok: sources.{system}: " in out, system
    assert "ok: customers[ACME].ids.zabbix = 'Customers/Acme Manufacturing' -> Acme Manufacturing" in out
    assert (
        "ok: customers[WONKA].ids.veeam = 'WONKA-' -> 4 jobs (WONKA-APP01, WONKA-DC01, WONKA-FS01, …)" in out
    )  # a VBR job-name prefix
    assert "Initrode" in err  # a customer in the sources that no entry maps: a warning, not an error
    assert "0 errors" in out

    # a wrong id is an error naming the key, with the close match
    broken = path.with_name("broken.toml")
    broken.write_text(
        path.read_text().replace('zabbix = "Customers/Acme Manufacturing"', 'zabbix = "Customers/Acme Manufactoring"')
    )
    assert main(["config", "check", "--config", str(broken)]) == 2
    out, err = capsys.readouterr()
    assert (
        "error: customers[ACME].ids.zabbix: 'Customers/Acme Manufactoring' is not a customer in zabbix; close: "
        "Customers/Acme Manufacturing" in err
    )

    # a refused credential is an error naming the source
    monkeypatch.setenv("REPORTBOT_SANDBOX_HALO_CLIENT_SECRET", "wrong-secret-value")
    assert main(["config", "check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "error: sources.halo: halo:" in err and "wrong-secret-value" not in err + out


def test_injected_faults_end_as_unavailable_sections_with_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "ACME",
            "--week",
            WEEK_DAY,
            "--out",
            str(out),
            "--backfill",
            "0",
            "--sim-faults",
            "connectwise:status=503,count=1000",
            "--sim-faults",
            "cloudflare:html=1,count=1000",
        ]
    )
    assert code == 0
    snap = json.loads((out / "ACME" / f"ACME-weekly-{PERIOD_END}.json").read_text())
    s = snap["sections"]
    assert s["tickets"]["status"] == s["changes"]["status"] == "unavailable"
    assert s["tickets"]["error"].startswith("connectwise: GET ") and "HTTP 503" in s["tickets"]["error"]
    assert s["sites"]["status"] == "unavailable" and "HTML" in s["sites"]["error"]
    assert s["uptime"]["status"] == s["backups"]["status"] == s["security"]["status"] == "ok"
    assert {f["code"] for f in snap["flags"]} >= {"data_unavailable", "sla_below_target"}


def test_fault_specs_are_checked() -> None:
    assert parse_fault_specs(["*:latency_ms=100"])["halo"].latency_ms == 100
    with pytest.raises(ValueError, match="unknown system 'zabix'"):
        parse_fault_specs(["zabix:status=503"])
    with pytest.raises(ValueError, match="unknown fault 'statu'"):
        parse_fault_specs(["zabbix:statu=503"])
    assert main(["run", "ACME", "--config", "x.toml", "--sim-faults", "zabbix:status=503"]) == 2


def test_run_all_with_one_source_hanging_forever_ends_within_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Must-show 3: Zabbix accepts every request and never answers. `run --all` (12 customers, 8 on
    Zabbix) returns within timeout_seconds + 15 s, writes every draft and the roll-up, the Zabbix
    sections say why they are missing, and the sweep's one line says its warnings are left out."""
    timeout = 5
    farm = _farm(tmp_path, {"zabbix": Faults(hang=3600, count=10**9)})
    path, env = next(farm)
    try:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        path.write_text(path.read_text().replace("timeout_seconds = 20", f"timeout_seconds = {timeout}"))
        assert f"timeout_seconds = {timeout}" in path.read_text()
        out = tmp_path / "out"
        t0 = time.monotonic()
        code = main(["run", "--all", "--config", str(path), "--week", WEEK_DAY, "--out", str(out)])
        elapsed = time.monotonic() - t0
        _, err = capsys.readouterr()
        t1 = time.monotonic()  # config check's probes sit under the same timeout
        assert main(["config", "check", "--config", str(path)]) == 2
        assert time.monotonic() - t1 < timeout + 10
        assert f"error: sources.zabbix: no answer within {timeout} s (timeout_seconds)" in capsys.readouterr().err
    finally:
        next(farm, None)  # stop the simulators
    print(f"run --all with zabbix hanging: {elapsed:.1f} s (timeout {timeout} s)")
    assert code == 0 and elapsed < timeout + 15, elapsed
    assert (out / f"rollup-{PERIOD_END}.md").exists()
    on_zabbix = 0
    for snap_path in out.glob(f"*/*-weekly-{PERIOD_END}.json"):
        s = json.loads(snap_path.read_text())["sections"]["uptime"]
        if s["source"] == "zabbix":
            on_zabbix += 1
            assert s["status"] == "unavailable" and f"no answer within {timeout} s" in s["error"], s
    assert on_zabbix == 8 and len(list(out.glob(f"*/*-weekly-{PERIOD_END}.json"))) == 12
    assert f"warning: zabbix: no customer list within {timeout} s; its unmapped-customer warnings are left out" in err

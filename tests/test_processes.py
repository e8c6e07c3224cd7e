"""The leftover-process check itself (tests/processes.py): it finds this run's orphans, and only
this run's processes, and a test that leaves one running fails with its command line."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests import processes

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def orphan(shell: str) -> int:
    """Start ``shell`` with a process in the background and let the shell exit: that process is
    re-parented (to init), as a killed parent's children are. Returns its pid once it runs its
    last command (``env ... sleep`` is ``env``, with env's environment, until it execs sleep)."""
    done = processes.run(["sh", "-c", f"{shell} >/dev/null 2>&1 & echo $!"], timeout=30, text=True)
    pid = int(done.stdout)
    deadline = time.monotonic() + 10
    while not processes._cmdline(pid).startswith("sleep ") and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.kill(pid, signal.SIGKILL)


def test_an_orphan_of_this_run_is_found_by_the_id_it_inherited() -> None:
    pid = orphan("sleep 301")
    try:
        st = processes._stat(pid)
        assert st is not None and st[0] != os.getpid(), "re-parented away from pytest"
        found = {p.pid: p for p in processes.ours().values()}
        assert pid in found and found[pid].cmdline == "sleep 301"
    finally:
        end(pid)


def test_a_process_of_another_run_is_not_counted_whatever_its_command_line() -> None:
    """Another agent's `reportbot serve` or simulators on this machine are not this run's."""
    pid = orphan(f"env -u {processes.MARKER} sleep 302")
    try:
        assert processes._stat(pid) is not None
        assert pid not in {p.pid for p in processes.ours().values()}
        other = orphan(f"env {processes.MARKER}=12345-othr0000 sleep 302")
        try:
            assert other not in {p.pid for p in processes.ours().values()}
        finally:
            end(other)
    finally:
        end(pid)


def test_a_child_that_drops_the_id_still_counts_while_it_descends_from_pytest() -> None:
    import subprocess

    child = subprocess.Popen(["sleep", "303"], env={"PATH": os.environ.get("PATH", "")})  # noqa: S603, S607
    try:
        assert child.pid in {p.pid for p in processes.ours().values()}
    finally:
        child.kill()
        child.wait()
    assert child.pid not in {p.pid for p in processes.ours().values()}


def test_a_test_that_leaves_a_process_running_fails_naming_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    (tmp_path / "test_inner.py").write_text(
        "import subprocess\n"
        "from pathlib import Path\n\n"
        "def test_leaks() -> None:\n"
        "    p = subprocess.Popen(['sleep', '304'], start_new_session=True)\n"
        f"    Path({str(pidfile)!r}).write_text(str(p.pid))\n\n"
        "def test_clean() -> None:\n"
        "    pass\n"
    )
    done = processes.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.processes", "-p", "no:cacheprovider", "test_inner.py"],
        timeout=120,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REPORTBOT_TEST_GRACE": "1"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "processes started by this test are still running" in done.stdout, done.stdout
    assert "sleep 304" in done.stdout and "ERROR test_inner.py::test_leaks" in done.stdout, done.stdout
    assert "2 passed, 1 error" in done.stdout, done.stdout
    st = processes._stat(int(pidfile.read_text()))
    assert st is None or st[1] == "Z", "the check ended the process it reported"

"""``kill -TERM`` of a real ``reportbot serve`` process in the middle of a batch: within 10 s
neither it nor any process it started (the PDF workers, the multiprocessing resource tracker)
is left, and the batch claims it held are released for another instance at once.

The serve process runs the twelve-customer sandbox configuration against the vendor
simulators served by this test (slowed down, so there is a middle of the batch to stop it in),
with its store in SQLite. Its descendants are read from ``/proc`` (Linux, as CI); every process seen is
killed in a ``finally`` should the test fail.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.scheduler.test_two_processes import Farm, free_ports, serve, write_config

GONE_WITHIN = 10.0


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> start time (to tell a reused pid apart)."""
    parents: dict[int, int] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] != "Z":
                parents[int(entry)], starts[int(entry)] = st[0], st[2]
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = starts[pid]
                frontier.append(pid)
    return found


def alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == start and st[1] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def claims(db: Path) -> list[tuple[str, str, datetime]]:
    conn = sqlite3.connect(db, timeout=5)
    try:
        rows = conn.execute("select customer_code, status, lease_until from batch_claims").fetchall()
    except sqlite3.OperationalError:  # serve has not created the table yet
        return []
    finally:
        conn.close()
    return [(code, status, datetime.fromisoformat(lease).replace(tzinfo=UTC)) for code, status, lease in rows]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_serve_leaves_no_process_behind(sig: signal.Signals, tmp_path: Path) -> None:
    """SIGTERM: serve stops in order (exit status 0) and releases its claims. SIGKILL: no code of
    serve runs, yet its PDF workers end with it (the kernel's parent-death signal) and the
    resource tracker with them."""
    db = tmp_path / "store.db"
    seen: dict[int, int] = {}
    with Farm() as farm:
        farm.latency(150)  # a batch of ~10 s: SIGTERM lands in its middle
        config, env = write_config(farm, tmp_path, f"sqlite:///{db}", lease=30)
        (port,) = free_ports(1)
        (tmp_path / "out").mkdir()
        proc = serve(config, env, port, tmp_path / "out")
        try:
            deadline = time.monotonic() + 120
            while True:  # until the PDF workers render and customer-weeks are being collected
                assert proc.poll() is None, (tmp_path / f"serve-{port}.log").read_text()[-2000:]
                assert time.monotonic() < deadline, f"no PDF workers started: {seen}"
                seen.update(descendants(proc.pid))
                workers = [p for p in seen if "multiprocessing.spawn" in cmdline(p)]
                trackers = [p for p in seen if "resource_tracker" in cmdline(p)]
                collecting = db.exists() and any(s == "collecting" for _, s, _ in claims(db))
                if len(workers) >= 2 and trackers and collecting:
                    break
                time.sleep(0.2)
            seen.update(descendants(proc.pid))
            t0 = time.monotonic()
            stopped_at = datetime.now(UTC)
            proc.send_signal(sig)
            while time.monotonic() - t0 < GONE_WITHIN:
                if proc.poll() is None:
                    seen.update(descendants(proc.pid))  # anything started while it stops counts too
                left = [p for p, start in seen.items() if alive(p, start)]
                if proc.poll() is not None and not left:
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - t0
            left = {p: cmdline(p) for p, start in seen.items() if alive(p, start)}
            print(
                f"\n{sig.name}: serve exited with {proc.poll()}; it and its {len(seen)} descendants "
                f"({len(workers)} PDF workers, {len(trackers)} resource tracker) gone in {elapsed:.2f} s"
            )
            expected = 0 if sig == signal.SIGTERM else -signal.SIGKILL  # SIGTERM: an orderly exit
            assert proc.poll() == expected, f"serve did not exit within {GONE_WITHIN:g} s"
            assert left == {}, f"left behind after {GONE_WITHIN:g} s: {left}"
            assert elapsed < GONE_WITHIN
        finally:
            for pid, start in seen.items():
                if alive(pid, start):
                    os.kill(pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    unfinished = [(code, lease) for code, status, lease in claims(db) if status == "collecting"]
    assert unfinished, "the signal came in the middle of the batch"
    released = [
        lease <= datetime.now(UTC) and (lease - stopped_at).total_seconds() < GONE_WITHIN for _, lease in unfinished
    ]
    # after SIGTERM the customer-weeks it was collecting are free for another instance at once;
    # after SIGKILL they are taken over when their lease (30 s) runs out
    assert released == [sig == signal.SIGTERM] * len(unfinished), unfinished


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "Ctrl-C"])
def test_a_stopped_sandbox_serve_takes_its_simulators_with_it(how: str, tmp_path: Path) -> None:
    """``reportbot serve --sandbox`` without a config serves the sandbox's vendor simulators from a
    child process of its own. Stopped (SIGTERM), killed (SIGKILL: no code of serve runs, the
    child reads end-of-file on its pipe to serve) or interrupted from a terminal (SIGINT to the
    whole process group: the child ignores it and serve stops it in order), serve leaves no
    process behind, and nothing but serve's own exit prints a traceback."""
    import subprocess
    import sys

    import httpx

    (port,) = free_ports(1)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "bot.cli", "serve", "--sandbox", "--port", str(port), "--out", str(tmp_path / "o")],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell's foreground job
        )
    seen: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 120
        while True:  # until it answers, its simulators running in their child process
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, f"serve did not start: {log.read_text()[-2000:]}"
            seen.update(descendants(proc.pid))
            farm = [p for p in seen if "multiprocessing.spawn" in cmdline(p)]
            try:
                up = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                up = False
            if farm and up:
                break
            time.sleep(0.2)
        seen.update(descendants(proc.pid))
        t0 = time.monotonic()
        if how == "Ctrl-C":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
        while time.monotonic() - t0 < GONE_WITHIN:
            if proc.poll() is not None and not [p for p, start in seen.items() if alive(p, start)]:
                break
            time.sleep(0.05)
        left = {p: cmdline(p) for p, start in seen.items() if alive(p, start)}
        expected = -signal.SIGKILL if how == "SIGKILL" else 0
        assert proc.poll() == expected, f"serve did not exit within {GONE_WITHIN:g} s: {log.read_text()[-2000:]}"
        assert left == {}, f"left behind after {GONE_WITHIN:g} s: {left}"
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        for pid, start in seen.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

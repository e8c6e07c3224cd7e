"""The processes a test run starts, and the check that none of them outlives its test.

A process belongs to this run when it descends from the pytest process (parent pid lineage) or
carries this run's id in ``$REPORTBOT_TEST_RUN``, which every child inherits from the pytest
process and keeps when its parent dies and it is re-parented to init: the orphans this check is
for. Nothing else on the machine counts, however alike its command line: other worktrees' test
runs, other agents' servers, the machine's own services (each has an id of its own, or none).
The run's ids are a ``:``-separated list, so a pytest started by a test counts for both runs.

``leftovers`` reads ``/proc`` (Linux, as CI); elsewhere it finds nothing. tests/conftest.py uses
:func:`no_process_outlives_its_test` (autouse) and :func:`no_process_outlives_the_run` (session);
``python -m pytest -p tests.processes`` loads both into a run without that conftest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MARKER = "REPORTBOT_TEST_RUN"
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
ROOT = os.getpid()
# what a test signalled (serve's PDF workers, the farm) may take this long to go
GRACE_SECONDS = float(os.environ.get("REPORTBOT_TEST_GRACE", "10"))
PROC = Path("/proc")

os.environ[MARKER] = ":".join(filter(None, [os.environ.get(MARKER, ""), RUN_ID]))


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    start: int  # clock ticks after boot: tells a reused pid apart
    cmdline: str

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of ``pid``, from ``/proc/<pid>/stat``; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # read once per process per scan: kept cheap
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # after "pid (comm) ", which may hold spaces
    return int(fields[1]), fields[0].decode(), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _carries(pid: int, run_id: str) -> bool:
    """Whether ``pid`` started with ``run_id`` among the ids of ``$REPORTBOT_TEST_RUN``."""
    try:
        env = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return False
    prefix = MARKER.encode() + b"="
    for entry in env.split(b"\0"):
        if entry.startswith(prefix):
            return run_id.encode() in entry[len(prefix) :].split(b":")
    return False


def ours(run_id: str = RUN_ID, root: int = ROOT) -> dict[tuple[int, int], Process]:
    """The live processes of the run ``run_id`` whose pytest process is ``root``, but ``root``
    itself and its multiprocessing resource tracker (it serves the whole run and ends with it)."""
    if not PROC.is_dir():
        return {}
    root_stat = _stat(root)
    since = root_stat[2] if root_stat else 0
    live: dict[int, tuple[int, int]] = {}
    for entry in os.listdir(PROC):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] not in ("Z", "X") and st[2] >= since:  # none older than the run is its own
                live[int(entry)] = (st[0], st[2])
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in live.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    frontier = [root]
    while frontier:
        for pid in children.get(frontier.pop(), []):
            if pid not in found:
                found.add(pid)
                frontier.append(pid)
    found |= {pid for pid in live if pid != root and pid not in found and _carries(pid, run_id)}
    out: dict[tuple[int, int], Process] = {}
    for pid in found:
        proc = Process(pid, live[pid][0], live[pid][1], _cmdline(pid))
        if proc.ppid == root and "multiprocessing.resource_tracker" in proc.cmdline:
            continue
        out[proc.key] = proc
    return out


def alive(proc: Process) -> bool:
    st = _stat(proc.pid)
    return st is not None and st[2] == proc.start and st[1] not in ("Z", "X")


def leftovers(before: set[tuple[int, int]], within: float = GRACE_SECONDS) -> list[Process]:
    """This run's processes that were not there ``before`` and are still alive after ``within``
    seconds (polled: an empty answer costs one scan)."""
    deadline = time.monotonic() + within
    while True:
        left = [p for key, p in ours().items() if key not in before]
        if not left or time.monotonic() >= deadline:
            return sorted(left, key=lambda p: p.pid)
        time.sleep(0.1)


def kill(procs: Sequence[Process]) -> None:
    """SIGKILL each of ``procs`` that is still the process it was (by pid and start time)."""
    for proc in procs:
        if alive(proc):
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(proc.pid, signal.SIGKILL)


def describe(procs: Sequence[Process]) -> str:
    return "\n".join(f"  pid {p.pid} (parent {p.ppid}): {p.cmdline or '?'}" for p in procs)


def stop(*procs: subprocess.Popen[Any] | None, timeout: float = 20.0) -> None:
    """End ``procs`` in order, all at once: SIGTERM (and SIGCONT, should one be stopped), then wait
    up to ``timeout`` for each. One still running then is SIGKILLed with its whole process group (it
    was started with ``start_new_session``) and reaped. What a process that did exit left running
    is not killed here: :func:`no_process_outlives_its_test` reports it."""
    running = [p for p in procs if p is not None and p.poll() is None]
    for proc in running:
        for sig in (signal.SIGTERM, signal.SIGCONT):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                break
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait(10)


def kill_group(proc: subprocess.Popen[Any] | Any) -> None:
    """SIGKILL the process group ``proc`` (a Popen or an asyncio process) leads
    (``start_new_session=True``): it and every process it started that did not leave the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is empty: all reaped
        os.killpg(proc.pid, signal.SIGKILL)


def run(argv: Sequence[str], *, timeout: float, text: bool = False, **kw: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(argv, capture_output=True)`` in a process group of its own: past ``timeout``
    (or on any error while waiting) the whole group is killed, not only the child as
    ``subprocess.run`` does (npm's own children went on), and the child reaped; then the error
    propagates. A child that exits leaves its group alone: what it left running is for
    :func:`no_process_outlives_its_test` to report."""
    stdin = kw.pop("input", None)
    with subprocess.Popen(  # noqa: S603 - the callers' fixed argv, no shell
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        start_new_session=True,
        **kw,
    ) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except BaseException:
            kill_group(proc)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


async def run_async(*argv: str, within: float, **kw: Any) -> tuple[int, bytes, bytes]:
    """The asyncio form of :func:`run`: (exit status, stdout, stderr). Past ``within`` seconds, or when the
    test is cancelled, the process group is killed and the child reaped before the error propagates
    (``asyncio.wait_for(proc.communicate())`` alone left the child running)."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True, **kw
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    except BaseException:
        kill_group(proc)
        await asyncio.shield(proc.wait())
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_run() -> Iterator[None]:
    """At the end of the run, after every fixture's teardown: no process of the run is left."""
    before = set(ours())
    yield
    left = leftovers(before)
    if left:
        kill(left)
        pytest.fail(f"processes the test run started are still running at its end:\n{describe(left)}")


@pytest.fixture(autouse=True)
def no_process_outlives_its_test() -> Iterator[None]:
    """Fails the test that leaves a process running (and ends those processes, so the next test
    starts clean); the command lines are in the failure."""
    before = set(ours())
    yield
    left = leftovers(before)
    if left:
        kill(left)
        pytest.fail(f"processes started by this test are still running {GRACE_SECONDS:g} s after it:\n{describe(left)}")

"""All the vendor simulators of the sandbox, started together on 127.0.0.1.

``reportbot demo``, a config-less ``reportbot run``, ``reportbot sandbox`` and the tests start a
:class:`SimulatorFarm` over the sandbox dataset; its :meth:`sources` are the
``[sources.<system>]`` tables that point the real connectors at the simulators. One code path
for sandbox and production: only the URLs and credentials differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from connectors.registry import SYSTEMS
from connectors.sandbox.dataset import CUSTOMERS, SandboxDataset
from connectors.sim.base import Faults, Simulator
from reporting.children import sigint_ignored_by_children

SIMULATORS: dict[str, type[Simulator]] = {name: s.simulator_class() for name, s in SYSTEMS.items() if s.simulator}
"""system -> its loopback simulator (the sandbox's ``[sources.<system>]`` point at these)."""


class SimulatorFarm:
    def __init__(
        self, dataset: SandboxDataset, systems: Iterable[str] | None = None, faults: dict[str, Faults] | None = None
    ):
        self.dataset = dataset
        wanted = (
            sorted(systems) if systems is not None else sorted({s for c in dataset.customers for s in c.stack.values()})
        )
        unknown = [s for s in wanted if s not in SIMULATORS]
        if unknown:
            raise ValueError(f"no simulator for {', '.join(unknown)} (known: {', '.join(SIMULATORS)})")
        sims = {s: SIMULATORS[s](dataset) for s in wanted}  # type: ignore[call-arg]  # each takes the dataset
        self.sims: dict[str, Simulator] = sims
        for system, f in (faults or {}).items():
            if system in self.sims:
                self.sims[system].faults = f

    async def start(self) -> SimulatorFarm:
        try:
            for sim in self.sims.values():
                await sim.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        for sim in self.sims.values():
            await sim.stop()

    async def __aenter__(self) -> SimulatorFarm:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def sources(self) -> dict[str, dict[str, Any]]:
        """``[sources.<system>]`` for every system, pointing the real connector at its simulator."""
        return {s: sim.source_config() for s, sim in self.sims.items()}

    def requests(self) -> dict[str, int]:
        return {s: len(sim.log) for s, sim in self.sims.items()}


def parse_fault_specs(specs: Iterable[str]) -> dict[str, Faults]:
    """``["zabbix:status=503,count=3", "*:latency_ms=100"]`` -> per-system Faults ("*": all)."""
    out: dict[str, Faults] = {}
    for spec in specs:
        system, sep, rest = spec.partition(":")
        if not sep or not system:
            raise ValueError(f"fault spec {spec!r} must look like SYSTEM:key=value,... (or *:latency_ms=100)")
        systems = list(SIMULATORS) if system == "*" else [system]
        for s in systems:
            if s not in SIMULATORS:
                raise ValueError(f"unknown system {s!r} in fault spec (known: {', '.join(SIMULATORS)})")
            out[s] = Faults.parse(rest)
    return out


def _serve_in_child(anchor_end: str, synthetic: int, fault_specs: list[str], conn: Any) -> None:
    """Child process: run the farm, send its ``sources()`` back, serve until told to stop."""
    import asyncio
    from datetime import date

    async def main() -> None:
        dataset = SandboxDataset(date.fromisoformat(anchor_end), synthetic=synthetic)
        async with SimulatorFarm(dataset, faults=parse_fault_specs(fault_specs)) as farm:
            conn.send(("ready", farm.sources()))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)  # any message (or EOF) stops the farm

    try:
        asyncio.run(main())
    except EOFError:  # the parent is gone (its end of the pipe closed, as the kernel does on SIGKILL)
        pass
    except BaseException as err:  # report a start-up failure to the parent instead of hanging it
        with contextlib.suppress(OSError):  # unless it is gone
            conn.send(("error", f"{type(err).__name__}: {err}"))
        raise


class FarmProcess:
    """The simulators in a child process of their own (``spawn``), as the vendors' servers are
    in production: the batch and the simulators then use separate cores instead of sharing one
    event loop. ``sources`` is set once it has started.

    The child ends with its parent however the parent ends. Leaving the ``async with`` sends it
    "stop" (and kills it 10 s later should it still run). A parent killed outright (SIGKILL, an
    out-of-memory kill) runs no code, but the kernel closes its end of the pipe, and the child,
    which waits on that pipe, reads end-of-file and stops its simulators. That works on every
    platform ``spawn`` does, and the child still stops in order; Linux's parent-death signal
    (``prctl(PR_SET_PDEATHSIG)``, as the PDF workers use) would add nothing but a kill without
    cleanup, tied to the parent's thread rather than its process. The pipe is the parent's alone:
    ``spawn`` starts children from a fresh interpreter, which inherits no descriptor of it. Ctrl-C
    in a terminal reaches the parent only (:func:`reporting.children.sigint_ignored_by_children`)."""

    def __init__(self, dataset: SandboxDataset, fault_specs: Iterable[str] = (), start_timeout: float = 60.0):
        self.anchor_end = dataset.anchor_end.isoformat()
        self.synthetic = len(dataset.customers) - len(CUSTOMERS)
        self.fault_specs = list(fault_specs)
        self.start_timeout = start_timeout
        self.sources: dict[str, dict[str, Any]] = {}
        self._proc: Any = None
        self._conn: Any = None

    async def __aenter__(self) -> FarmProcess:
        import asyncio
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve_in_child,
            args=(self.anchor_end, self.synthetic, self.fault_specs, child),
            name="reportbot-simulators",
            daemon=True,
        )
        with sigint_ignored_by_children():
            self._proc.start()
        child.close()
        self._conn = parent
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, parent.poll, self.start_timeout)
        if not ready:
            await self.__aexit__()
            raise RuntimeError(f"the vendor simulators did not start within {self.start_timeout:g} s")
        kind, payload = parent.recv()
        if kind != "ready":
            await self.__aexit__()
            raise RuntimeError(f"the vendor simulators failed to start: {payload}")
        self.sources = payload
        return self

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        if self._conn is not None:
            try:
                self._conn.send("stop")
            except (BrokenPipeError, OSError):
                pass
            self._conn.close()
        if self._proc is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._proc.join, 10)
            if self._proc.is_alive():
                self._proc.kill()
            self._proc = None

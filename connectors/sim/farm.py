"""All the vendor simulators of the sandbox, started together on 127.0.0.1.

``reportbot demo``, a config-less ``reportbot run``, ``reportbot sandbox`` and the tests start a
:class:`SimulatorFarm` over the sandbox dataset; its :meth:`sources` are the
``[sources.<system>]`` tables that point the real connectors at the simulators. One code path
for sandbox and production: only the URLs and credentials differ.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from connectors.sandbox.dataset import SandboxDataset
from connectors.sim.base import Faults, Simulator

SIMULATORS: dict[str, str] = {
    "zabbix": "connectors.zabbix.simulator:ZabbixSimulator",
    "librenms": "connectors.librenms.simulator:LibreNMSSimulator",
    "connectwise": "connectors.connectwise.simulator:ConnectWiseSimulator",
    "halo": "connectors.halo.simulator:HaloSimulator",
    "datto": "connectors.datto.simulator:DattoSimulator",
    "veeam": "connectors.veeam.simulator:VeeamSimulator",
    "defender": "connectors.defender.simulator:DefenderSimulator",
    "sentinel": "connectors.sentinel.simulator:SentinelSimulator",
    "cloudflare": "connectors.cloudflare.simulator:CloudflareSimulator",
    "statuscheck": "connectors.statuscheck.simulator:StatusCheckSimulator",
}
"""system -> "module:Class" of its loopback simulator (imported when the farm starts)."""


def simulator_class(system: str) -> type[Simulator] | None:
    target = SIMULATORS.get(system)
    if target is None:
        return None
    module, _, name = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            return None  # not written yet: the system stays on the in-process sandbox feed
        raise
    cls = getattr(mod, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, Simulator) else None


class SimulatorFarm:
    def __init__(self, dataset: SandboxDataset, systems: Iterable[str] | None = None, faults: dict[str, Faults] | None = None):
        self.dataset = dataset
        wanted = sorted(systems) if systems is not None else sorted({s for c in dataset.customers for s in c.stack.values()})
        self.sims: dict[str, Simulator] = {}
        self.in_process: list[str] = []
        for system in wanted:
            cls = simulator_class(system)
            if cls is None:
                self.in_process.append(system)
            else:
                self.sims[system] = cls(dataset)  # type: ignore[call-arg]
        for system, f in (faults or {}).items():
            if system in self.sims:
                self.sims[system].faults = f
            elif system in self.in_process:
                raise ValueError(f"{system} has no simulator yet to inject faults into")

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
        """``[sources.<system>]`` for every system: the simulator's, or the in-process feed."""
        out: dict[str, dict[str, Any]] = {s: sim.source_config() for s, sim in self.sims.items()}
        out.update({s: {"type": "sandbox", "system": s} for s in self.in_process})
        return out

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

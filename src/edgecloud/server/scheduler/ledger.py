"""The plan's working copy of host usage: what is left on each host as VMs are placed.

Hosts are addressed by their index in the snapshot; the arrays are plain lists because
the stack reads them once per candidate host. CPU is kept in integer percent of a core
(rounded against the VM: demands up, free capacity down) so sums are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from edgecloud.server.scheduler.snapshot import (
    Snapshot,
    VmDemand,
    cpu_percent,
    free_cpu_percent,
    static_attributes,
    usage_attributes,
)


class Need(NamedTuple):
    """Describe what a VM takes from a host: CPU in percent of a core, memory and disk in MiB."""

    cpu: int
    memory_mb: int
    disk_mb: int

    @classmethod
    def of(cls, vm: VmDemand) -> Need:
        """Return the need of a VM."""
        return cls(cpu_percent(vm.cpu), vm.memory_mb, vm.disk_mb)

    @classmethod
    def least(cls, needs: Iterable[Need]) -> Need:
        """Return the smallest need in every dimension: a host short of it takes no VM."""
        every = list(needs)
        if not every:
            return cls(0, 0, 0)
        return cls(
            min(n.cpu for n in every),
            min(n.memory_mb for n in every),
            min(n.disk_mb for n in every),
        )


class Ledger:
    """Keep what is left on each host of a snapshot while a plan places VMs."""

    def __init__(self, snapshot: Snapshot) -> None:
        hosts = snapshot.hosts
        self.hosts = hosts
        self.ids = [host.id for host in hosts]
        self.index = {host.id: i for i, host in enumerate(hosts)}
        self.free_cpu = [free_cpu_percent(host) for host in hosts]
        self.free_memory = [host.free_memory_mb for host in hosts]
        self.free_disk = [host.free_disk_mb for host in hosts]
        self.running = [host.running_vms for host in hosts]
        # Bumped on every change of a host: entries of ordered views that carry an older
        # stamp are stale, and cached attributes are rebuilt.
        self.stamp = [0] * len(hosts)
        self._static: dict[int, dict[str, Any]] = {}
        self._current: dict[int, tuple[int, dict[str, Any]]] = {}

    def fits(self, i: int, need: Need) -> bool:
        """Return whether host i has room for the need (disk only when both are known)."""
        if self.free_cpu[i] < need.cpu or self.free_memory[i] < need.memory_mb:
            return False
        disk = self.free_disk[i]
        return disk is None or not need.disk_mb or disk >= need.disk_mb

    def take(self, i: int, need: Need) -> None:
        """Record a VM with this need placed on host i."""
        self.free_cpu[i] -= need.cpu
        self.free_memory[i] -= need.memory_mb
        disk = self.free_disk[i]
        if disk is not None:
            self.free_disk[i] = disk - need.disk_mb
        self.running[i] += 1
        self.stamp[i] += 1

    def static(self, i: int) -> dict[str, Any]:
        """Return the attributes of host i that no placement changes (built once)."""
        attrs = self._static.get(i)
        if attrs is None:
            attrs = self._static[i] = static_attributes(self.hosts[i])
        return attrs

    def attributes(self, i: int) -> dict[str, Any]:
        """Return every attribute of host i as the plan has it now."""
        stamp = self.stamp[i]
        cached = self._current.get(i)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        attrs = dict(self.static(i))
        attrs.update(
            usage_attributes(
                self.hosts[i],
                self.free_cpu[i],
                self.free_memory[i],
                self.free_disk[i],
                self.running[i],
            )
        )
        self._current[i] = (stamp, attrs)
        return attrs

"""What the scheduler reads: a frozen snapshot of hosts and clusters, and the VMs to place.

Units. The views keep the store's units: CPU in cores (floats, 0.5 is half a core) and
memory and disk in MiB. The attributes that SCHED_REQUIREMENTS and SCHED_RANK see follow
OpenNebula where it has a convention, so templates written for it keep their meaning:

- CPU attributes are in percent of one core, as in OpenNebula (1 CPU = 100):
  ``MAX_CPU``, ``TOTAL_CPU``, ``USED_CPU``, ``FREE_CPU``;
- memory attributes are in MiB (OpenNebula's host share counts KiB; MiB is the unit of a
  VM's ``MEMORY``, so ``FREE_MEMORY > 2048`` reads like the template it guards):
  ``MAX_MEMORY``, ``TOTAL_MEMORY``, ``USED_MEMORY``, ``FREE_MEMORY``; ``FREE_DISK`` in MiB;
- ``MAX_*`` is the total minus the cluster's reservation; ``USED_*`` is what placed VMs
  ask for (allocation, not monitored load); ``FREE_* = MAX_* - USED_*``;
- also ``ID``, ``NAME``, ``CLUSTER_ID``, ``HYPERVISOR``, ``STATE``, ``RUNNING_VMS``, and
  every attribute of the host's template (upper-cased keys). The computed names win over
  template attributes of the same name, so a template cannot fake free capacity.

Hosts in state INIT (0) or MONITORED (2) take VMs; ERROR (3), DISABLED (4), OFFLINE (8)
and the rest do not (OpenNebula's HostState numbers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

INIT = 0
MONITORED = 2
ELIGIBLE_STATES = frozenset({INIT, MONITORED})
FAKE_HYPERVISOR = "fake"  # the fake driver runs VMs of any kind

# The attributes that change as VMs are placed: expressions reading them are evaluated
# against the plan's working copy, the others once per host.
USAGE_ATTRIBUTES = frozenset(
    {"USED_CPU", "FREE_CPU", "USED_MEMORY", "FREE_MEMORY", "RUNNING_VMS", "FREE_DISK"}
)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Show the scheduler a cluster: what it keeps back on each of its hosts."""

    id: int
    reserved_cpu: float = 0.0
    reserved_memory_mb: int = 0
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HostView:
    """Show the scheduler a host: capacity, usage, state and template attributes.

    ``free_disk_mb`` None means not known (not monitored yet): disk is then not checked.
    ``cluster`` is filled in by Snapshot from its clusters; it carries the reservation.
    """

    id: int
    name: str
    cluster_id: int
    state: int
    hypervisor: str
    total_cpu: float
    total_memory_mb: int
    used_cpu: float = 0.0
    used_memory_mb: int = 0
    running_vms: int = 0
    free_disk_mb: int | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    cluster: ClusterView | None = field(default=None, repr=False, compare=False)
    # Other guest kinds the host runs besides its own (a kvm host with lxc installed).
    kinds: tuple[str, ...] = ()

    @property
    def max_cpu(self) -> float:
        """Return the CPUs VMs may use: the total minus the cluster's reservation."""
        return self.total_cpu - (self.cluster.reserved_cpu if self.cluster else 0.0)

    @property
    def max_memory_mb(self) -> int:
        """Return the MiB VMs may use: the total minus the cluster's reservation."""
        return self.total_memory_mb - (self.cluster.reserved_memory_mb if self.cluster else 0)

    @property
    def free_cpu(self) -> float:
        """Return the CPUs left for new VMs after usage and the cluster's reservation."""
        return self.max_cpu - self.used_cpu

    @property
    def free_memory_mb(self) -> int:
        """Return the MiB left for new VMs after usage and the cluster's reservation."""
        return self.max_memory_mb - self.used_memory_mb

    @property
    def eligible(self) -> bool:
        """Return whether the host's state lets it take VMs."""
        return self.state in ELIGIBLE_STATES


@dataclass(frozen=True, slots=True)
class VmDemand:
    """Describe a VM to place: its size, its kind and where it may go.

    ``cluster_ids`` None means any cluster; ``host_id`` pins the VM to that one host
    (a deploy to a chosen host), which must still pass every filter.
    """

    vm_id: int
    cpu: float
    memory_mb: int
    disk_mb: int = 0
    hypervisor: str = "kvm"
    cluster_ids: frozenset[int] | None = None
    requirements: str = ""
    rank: str = ""
    host_id: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """Hold the hosts and clusters a plan is computed from, indexed by cluster and id."""

    hosts: Sequence[HostView]
    clusters: Mapping[int, ClusterView] = field(default_factory=dict)
    by_cluster: Mapping[int, tuple[HostView, ...]] = field(init=False, repr=False)
    by_id: Mapping[int, HostView] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hosts = tuple(_bound(host, self.clusters.get(host.cluster_id)) for host in self.hosts)
        grouped: dict[int, list[HostView]] = {}
        for host in hosts:
            grouped.setdefault(host.cluster_id, []).append(host)
        object.__setattr__(self, "hosts", hosts)
        object.__setattr__(self, "by_cluster", {c: tuple(hs) for c, hs in grouped.items()})
        object.__setattr__(self, "by_id", {host.id: host for host in hosts})

    def hosts_in(self, cluster_ids: frozenset[int] | None) -> Iterator[HostView]:
        """Yield the hosts of these clusters (all hosts for None)."""
        if cluster_ids is None:
            yield from self.hosts
            return
        for cluster_id in sorted(cluster_ids):
            yield from self.by_cluster.get(cluster_id, ())

    def host(self, host_id: int) -> HostView | None:
        """Return the host with this id, if the snapshot has it."""
        return self.by_id.get(host_id)


def _bound(host: HostView, cluster: ClusterView | None) -> HostView:
    """Return the host carrying its cluster (for the reservation)."""
    return host if host.cluster is cluster else replace(host, cluster=cluster)


def cpu_percent(cpu: float) -> int:
    """Return a VM's CPU demand in percent of a core, rounded up so plans never overcommit."""
    return math.ceil(round(cpu * 100, 6))


def free_cpu_percent(host: HostView) -> int:
    """Return a host's free CPU in percent of a core, rounded down."""
    return math.floor(round(host.free_cpu * 100, 6))


def static_attributes(host: HostView) -> dict[str, Any]:
    """Return the attributes of a host that do not change while a plan is computed."""
    attrs = {str(key).upper(): value for key, value in host.attributes.items()}
    attrs.update(
        ID=host.id,
        NAME=host.name,
        CLUSTER_ID=host.cluster_id,
        HYPERVISOR=host.hypervisor,
        STATE=host.state,
        TOTAL_CPU=round(host.total_cpu * 100, 6),
        MAX_CPU=round(host.max_cpu * 100, 6),
        TOTAL_MEMORY=host.total_memory_mb,
        MAX_MEMORY=host.max_memory_mb,
    )
    return attrs


def usage_attributes(
    host: HostView, free_cpu: int, free_memory_mb: int, free_disk_mb: int | None, running: int
) -> dict[str, Any]:
    """Return the usage attributes of a host given its working free CPU (percent) and MiB."""
    max_cpu = round(host.max_cpu * 100, 6)
    attrs: dict[str, Any] = {
        "FREE_CPU": free_cpu,
        "USED_CPU": max_cpu - free_cpu,
        "FREE_MEMORY": free_memory_mb,
        "USED_MEMORY": host.max_memory_mb - free_memory_mb,
        "RUNNING_VMS": running,
    }
    if free_disk_mb is not None:
        attrs["FREE_DISK"] = free_disk_mb
    return attrs


def host_attributes(host: HostView) -> dict[str, Any]:
    """Return every attribute an expression sees on a host as the snapshot has it."""
    attrs = static_attributes(host)
    attrs.update(
        usage_attributes(
            host, free_cpu_percent(host), host.free_memory_mb, host.free_disk_mb, host.running_vms
        )
    )
    return attrs
